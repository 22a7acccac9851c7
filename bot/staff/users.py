"""Staff users: list, add, change role / institution / WhatsApp number, reset password, deactivate.

Admins only. A viewer needs an institution (the one they see); admins and staff see every
institution, so theirs is cleared. An admin cannot deactivate themselves or change their own role
(the console must always keep an admin who can undo a mistake). Every change is audited.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask import session as cookie
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import PasswordField, SelectField, StringField

from bot import get_db
from bot.models import STAFF_ROLES, Institution, StaffUser, audit
from bot.phones import PhoneError, normalize_phone
from bot.staff import bp
from bot.staff.auth import VERSION_KEY, admin_only
from bot.staff.i18n import t
from bot.staff.reads import page_session
from bot.staffusers import MIN_PASSWORD_LENGTH, StaffError, add_staff


class UserForm(FlaskForm):
    """Role, institution and number (adding also takes a name and a password)."""

    name = StringField("name")
    role = SelectField("role", choices=STAFF_ROLES, validate_choice=False)
    institution_id = StringField("institution_id")
    phone = StringField("phone")
    password = PasswordField("password")


class PasswordForm(FlaskForm):
    password = PasswordField("password")


def _institutions(session) -> list[Institution]:
    return list(session.scalars(select(Institution).order_by(Institution.name)))


def _check(session, form: UserForm, user: StaffUser | None) -> tuple[dict[str, Any], dict]:
    """Cleaned values and errors per field (``name`` and ``password`` only when adding)."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    if user is None:
        name = " ".join((form.name.data or "").split())
        if not name or len(name) > 200:
            errors["name"] = t("users.error_name")
        elif session.scalar(select(StaffUser).where(StaffUser.name == name)) is not None:
            errors["name"] = t("users.error_name_taken", name=name)
        values["name"] = name
        if len(form.password.data or "") < MIN_PASSWORD_LENGTH:
            errors["password"] = t("users.error_password", n=MIN_PASSWORD_LENGTH)
        values["password"] = form.password.data or ""
    role = form.role.data
    if role not in STAFF_ROLES:
        errors["role"] = t("users.error_role")
    values["role"] = role
    inst = None
    raw = (form.institution_id.data or "").strip()
    if raw:
        inst = session.get(Institution, int(raw)) if raw.isdigit() else None
        if inst is None:
            errors["institution_id"] = t("users.error_institution")
    if role == "viewer" and inst is None and "institution_id" not in errors:
        errors["institution_id"] = t("users.error_viewer_institution")
    values["institution"] = inst if role == "viewer" else None
    phone = (form.phone.data or "").strip()
    values["phone"] = None
    if phone:
        try:
            values["phone"] = normalize_phone(phone)
        except PhoneError:
            errors["phone"] = t("users.error_phone", value=phone)
        else:
            holder = session.scalar(select(StaffUser).where(StaffUser.phone == values["phone"]))
            if holder is not None and holder is not user:
                errors["phone"] = t("users.error_phone_taken", phone=values["phone"],
                                    name=holder.name)
    return values, errors


def _list(session, form: UserForm, errors: dict[str, str], status: int = 200):
    users = list(session.scalars(select(StaffUser).order_by(StaffUser.active.desc(),
                                                           StaffUser.name)))
    return render_template("staff/users.html", users=users, form=form, errors=errors,
                           roles=STAFF_ROLES, institutions=_institutions(session)), status


@bp.get("/users")
@admin_only
def users():
    """Every staff user, and the form to add one."""
    with page_session() as session:
        form = UserForm()
        form.role.data = "staff"
        return _list(session, form, {})


@bp.post("/users")
@admin_only
def users_add():
    """Add a staff user (``staff_add`` in the audit log)."""
    form = UserForm()
    with get_db().session() as session:
        if not form.validate_on_submit():
            abort(400)
        values, errors = _check(session, form, None)
        if errors:
            return _list(session, form, errors, 422)
        inst = values["institution"]
        try:
            user, _created = add_staff(session, name=values["name"], role=values["role"],
                                       password=values["password"],
                                       institution=inst.name if inst else None,
                                       phone=values["phone"], actor=current_user.name)
        except StaffError as exc:  # checked above; kept as the last word on what is valid
            return _list(session, form, {"name": str(exc)}, 422)
        flash(t("users.added", name=user.name))
    return redirect(url_for("staff.users"))


def _user_or_404(session, user_id: int) -> StaffUser:
    user = session.get(StaffUser, user_id)
    if user is None:
        abort(404)
    return user


def _edit_page(session, user: StaffUser, form: UserForm, errors: dict[str, str],
               status: int = 200):
    return render_template("staff/users_edit.html", user=user, form=form, errors=errors,
                           password_form=PasswordForm(), roles=STAFF_ROLES,
                           institutions=_institutions(session),
                           is_self=user.id == current_user.id,
                           min_password=MIN_PASSWORD_LENGTH), status


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
@admin_only
def users_edit(user_id: int):
    """Change a user's role, institution and WhatsApp number (``staff.edit``)."""
    form = UserForm()
    with get_db().session() as session:
        user = _user_or_404(session, user_id)
        if request.method == "GET":
            form.role.data = user.role
            form.institution_id.data = str(user.institution_id or "")
            form.phone.data = user.phone or ""
            return _edit_page(session, user, form, {})
        if not form.validate_on_submit():
            abort(400)
        values, errors = _check(session, form, user)
        if user.id == current_user.id and values["role"] != user.role:
            errors["role"] = t("users.error_own_role")
        if errors:
            return _edit_page(session, user, form, errors, 422)
        inst = values["institution"]
        changes: dict[str, list[Any]] = {}
        if user.role != values["role"]:
            changes["role"] = [user.role, values["role"]]
            user.role = values["role"]
        if user.institution_id != (inst.id if inst else None):
            changes["institution"] = [user.institution.name if user.institution else None,
                                      inst.name if inst else None]
            user.institution = inst
        if user.phone != values["phone"]:
            changes["phone"] = [user.phone, values["phone"]]
            user.phone = values["phone"]
        if changes:
            audit(session, current_user.name, "staff.edit", user_id=user.id, name=user.name,
                  changes=changes)
            flash(t("users.saved", name=user.name))
        else:
            flash(t("users.unchanged", name=user.name))
    return redirect(url_for("staff.users"))


@bp.post("/users/<int:user_id>/password")
@admin_only
def users_password(user_id: int):
    """Set a new password for a user (``staff.password_reset``; the password is not logged)."""
    form = PasswordForm()
    with get_db().session() as session:
        user = _user_or_404(session, user_id)
        if not form.validate_on_submit():
            abort(400)
        if len(form.password.data or "") < MIN_PASSWORD_LENGTH:
            edit = UserForm(formdata=None, role=user.role,
                            institution_id=str(user.institution_id or ""),
                            phone=user.phone or "")
            return _edit_page(session, user, edit, {"password": t(
                "users.error_password", n=MIN_PASSWORD_LENGTH)}, 422)
        user.set_password(form.password.data)  # ends every session of the user
        audit(session, current_user.name, "staff.password_reset", user_id=user.id,
              name=user.name)
        if user.id == current_user.id:  # an admin resetting their own: this browser stays in
            session.flush()
            cookie[VERSION_KEY] = user.session_version
        flash(t("users.password_set", name=user.name))
    return redirect(url_for("staff.users"))


@bp.post("/users/<int:user_id>/active")
@admin_only
def users_active(user_id: int):
    """Deactivate a user (signed out at their next request) or reactivate one."""
    wanted = request.form.get("active") == "1"
    with get_db().session() as session:
        user = _user_or_404(session, user_id)
        if user.id == current_user.id and not wanted:
            flash(t("users.error_self_deactivate"))
            return redirect(url_for("staff.users")), 303
        if user.active != wanted:
            user.active = wanted
            audit(session, current_user.name,
                  "staff.reactivate" if wanted else "staff.deactivate",
                  user_id=user.id, name=user.name)
        flash(t("users.reactivated" if wanted else "users.deactivated", name=user.name))
    return redirect(url_for("staff.users"))
