"""The roster: graduates listed and searched, imported from a file, added, edited, deactivated.

Staff and admins change the roster; viewers read their own institution's graduates only (a POST
is a 403, a graduate or cohort outside the scope a 404). An upload is previewed, then imported
once confirmed (``bot.staff.rosterimport``); every change is written to the audit log in the
same transaction.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from sqlalchemy import and_, or_, select
from wtforms import BooleanField, SelectField, StringField

from bot import MAX_REQUEST_BYTES, get_db
from bot.models import Cohort, Graduate, audit
from bot.phones import PhoneError, normalize_phone
from bot.privacy import erased_numbers
from bot.staff import bp
from bot.staff.auth import can_write, cohort_or_404, graduate_or_404, scoped_cohort_ids
from bot.staff.i18n import t
from bot.staff.reads import page_session
from bot.staff.replylog import cohort_choices, console_link, int_arg

PAGE_SIZE = 50
LANGUAGES = ("id", "en")
STATES = ("active", "inactive", "opted_out")


class UploadForm(FlaskForm):
    roster = FileField("roster", validators=[FileRequired()])


class GraduateForm(FlaskForm):
    """Checked by ``_check`` (the messages are the console's, in the user's language)."""

    name = StringField("name")
    phone = StringField("phone")
    cohort_id = SelectField("cohort_id", coerce=str, validate_choice=False)
    skill = StringField("skill")
    language = SelectField("language", choices=LANGUAGES, validate_choice=False)
    # The number was erased on its owner's request (UU PDP) and that person asked to return.
    returning = BooleanField("returning")


# --- the list -----------------------------------------------------------------------------

def _phone_digits(text: str) -> str | None:
    """'0812-345' -> '62812345': what a typed (part of a) number looks like in E.164."""
    if not text or any(ch not in "+0123456789 -().'" for ch in text):
        return None
    digits = "".join(ch for ch in text if ch.isdigit())
    if len(digits) < 4:
        return None
    return "62" + digits[1:] if digits.startswith("0") else digits


@bp.get("/roster")
@login_required
def roster():
    """Graduates by name, filtered by text, cohort and state; 50 a page (keyset on name, id)."""
    with page_session() as session:
        cohorts = cohort_choices(session)
        cohort_id = int_arg("cohort_id")
        if cohort_id is not None:
            cohort_or_404(session, cohort_id)
        q = " ".join((request.args.get("q") or "").split())[:200]
        state = request.args.get("state", "")
        state = state if state in STATES else ""
        stmt = select(Graduate)
        scope = scoped_cohort_ids(session)
        if scope is not None:
            stmt = stmt.where(Graduate.cohort_id.in_(scope))
        if cohort_id is not None:
            stmt = stmt.where(Graduate.cohort_id == cohort_id)
        if q:
            matches = [Graduate.name.icontains(q, autoescape=True)]
            digits = _phone_digits(q)
            if digits:
                matches.append(Graduate.phone.contains(digits, autoescape=True))
            stmt = stmt.where(or_(*matches))
        if state == "active":
            stmt = stmt.where(Graduate.active.is_(True), Graduate.opted_out.is_(False))
        elif state == "inactive":
            stmt = stmt.where(Graduate.active.is_(False))
        elif state == "opted_out":
            stmt = stmt.where(Graduate.opted_out.is_(True))
        after = int_arg("after")
        if after is not None:
            mark = graduate_or_404(session, after)
            stmt = stmt.where(or_(Graduate.name > mark.name,
                                  and_(Graduate.name == mark.name, Graduate.id > mark.id)))
        found = list(session.scalars(stmt.order_by(Graduate.name, Graduate.id)
                                     .limit(PAGE_SIZE + 1)))
        graduates = found[:PAGE_SIZE]
        args = {k: v for k, v in {"q": q, "cohort_id": cohort_id, "state": state}.items() if v}
        return render_template(
            "staff/roster.html", graduates=graduates, cohorts=cohorts,
            by_id={c.id: c for c in cohorts}, q=q, cohort_id=cohort_id, state=state,
            states=STATES, upload=UploadForm(), link=console_link,
            next_url=url_for("staff.roster", **args, after=graduates[-1].id)
            if len(found) > PAGE_SIZE else None,
            first_url=url_for("staff.roster", **args) if after is not None else None)


# --- upload -------------------------------------------------------------------------------

@bp.errorhandler(413)
def too_large(_error):
    """A file over the request limit: back to the roster with the limit in words."""
    flash(t("roster.upload_too_large", limit=MAX_REQUEST_BYTES // (1024 * 1024)))
    return redirect(url_for("staff.roster"))


# --- add and edit -------------------------------------------------------------------------

def _check(session, form: GraduateForm, graduate: Graduate | None,
           cohorts: dict[int, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The cleaned values and the errors per field."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    name = " ".join((form.name.data or "").split())
    if not name:
        errors["name"] = t("roster.error_name")
    elif len(name) > 200:
        errors["name"] = t("roster.error_too_long")
    values["name"] = name
    try:
        phone = normalize_phone(form.phone.data or "")
    except PhoneError:
        errors["phone"] = t("roster.error_phone", value=form.phone.data or "")
    else:
        holder = session.scalar(select(Graduate).where(Graduate.phone == phone))
        if holder is not None and holder is not graduate:
            errors["phone"] = t("roster.error_phone_taken", phone=phone, name=holder.name)
        elif (graduate is None or graduate.phone != phone) and not form.returning.data and \
                (erased := erased_numbers(session, [phone]).get(phone)) is not None:
            # Never a silent return: staff confirm that the person asked to come back.
            errors["phone"] = t("roster.error_phone_erased", phone=phone,
                                day=erased.strftime("%d/%m/%Y"))
            errors["returning"] = "1"
        values["phone"] = phone
    cohort_id = int(form.cohort_id.data) if (form.cohort_id.data or "").isdigit() else None
    if cohort_id not in cohorts:
        errors["cohort_id"] = t("roster.error_cohort")
    values["cohort_id"] = cohort_id
    skill = " ".join((form.skill.data or "").split())
    if len(skill) > 200:
        errors["skill"] = t("roster.error_too_long")
    values["skill"] = skill or (cohorts[cohort_id].skill if cohort_id in cohorts else None)
    language = form.language.data
    if language not in LANGUAGES:
        errors["language"] = t("roster.error_language")
    values["language"] = language
    return values, errors


def _render_form(form: GraduateForm, cohorts: list[Any], graduate: Graduate | None,
                 errors: dict[str, str], status: int = 200):
    return render_template("staff/roster_form.html", form=form, cohorts=cohorts,
                           graduate=graduate, errors=errors, languages=LANGUAGES), status


@bp.route("/roster/new", methods=["GET", "POST"])
@can_write
def roster_new():
    """Add one graduate by hand."""
    form = GraduateForm()
    with get_db().session() as session:
        cohorts = cohort_choices(session)
        if request.method == "GET":
            form.language.data = "id"
            form.cohort_id.data = request.args.get("cohort_id", "")
            return _render_form(form, cohorts, None, {})
        if not form.validate_on_submit():
            abort(400)
        values, errors = _check(session, form, None, {c.id: c for c in cohorts})
        if errors:
            return _render_form(form, cohorts, None, errors, 422)
        graduate = Graduate(**values)
        session.add(graduate)
        session.flush()
        cohort = session.get(Cohort, values["cohort_id"])
        audit(session, current_user.name, "graduate.add", graduate_id=graduate.id,
              name=graduate.name, phone=graduate.phone, cohort=cohort.name,
              institution=cohort.institution.name)
        flash(t("roster.added", name=graduate.name))
    return redirect(url_for("staff.roster", q=graduate.name))


@bp.route("/roster/<int:graduate_id>/edit", methods=["GET", "POST"])
@can_write
def roster_edit(graduate_id: int):
    """Change a graduate's name, number, cohort, skill or language."""
    form = GraduateForm()
    with get_db().session() as session:
        graduate = graduate_or_404(session, graduate_id)
        cohorts = cohort_choices(session)
        if request.method == "GET":
            form.name.data, form.phone.data = graduate.name, graduate.phone
            form.cohort_id.data = str(graduate.cohort_id or "")
            form.skill.data, form.language.data = graduate.skill or "", graduate.language
            return _render_form(form, cohorts, graduate, {})
        if not form.validate_on_submit():
            abort(400)
        by_id = {c.id: c for c in cohorts}
        values, errors = _check(session, form, graduate, by_id)
        if errors:
            return _render_form(form, cohorts, graduate, errors, 422)
        changes: dict[str, list[Any]] = {}
        for key, value in values.items():
            old = getattr(graduate, key)
            if old != value:
                if key == "cohort_id":
                    changes["cohort"] = [by_id[old].name if old in by_id else old,
                                         by_id[value].name]
                else:
                    changes[key] = [old, value]
                setattr(graduate, key, value)
        if changes:
            audit(session, current_user.name, "graduate.edit", graduate_id=graduate.id,
                  name=graduate.name, changes=changes)
            flash(t("roster.saved", name=graduate.name))
        else:
            flash(t("roster.unchanged", name=graduate.name))
    return redirect(url_for("staff.roster", q=graduate.name))


@bp.post("/roster/<int:graduate_id>/active")
@can_write
def roster_active(graduate_id: int):
    """Deactivate (no more messages, kept with history) or reactivate a graduate."""
    wanted = request.form.get("active") == "1"
    with get_db().session() as session:
        graduate = graduate_or_404(session, graduate_id)
        if graduate.active != wanted:
            graduate.active = wanted
            audit(session, current_user.name,
                  "graduate.reactivate" if wanted else "graduate.deactivate",
                  graduate_id=graduate.id, name=graduate.name, phone=graduate.phone)
        flash(t("roster.reactivated" if wanted else "roster.deactivated", name=graduate.name))
    return redirect(request.form.get("back") if _local(request.form.get("back"))
                    else url_for("staff.roster"))


def _local(target: str | None) -> bool:
    return (bool(target) and target.startswith("/staff/roster")
            and not any(bad in target for bad in ("//", "\\", "..")))
