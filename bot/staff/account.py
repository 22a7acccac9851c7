"""The signed-in user's own account: change the password (``/staff/password``).

A new password ends every other session of the user (``StaffUser.session_version``); this
browser stays signed in with the new version.
"""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask import session as cookie
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import PasswordField
from wtforms.validators import Length

from bot import get_db
from bot.models import StaffUser, audit
from bot.staff import bp
from bot.staff.auth import VERSION_KEY
from bot.staff.i18n import t
from bot.staffusers import MIN_PASSWORD_LENGTH


class OwnPasswordForm(FlaskForm):
    current = PasswordField("current", validators=[Length(max=200)])
    new = PasswordField("new", validators=[Length(max=200)])
    repeat = PasswordField("repeat", validators=[Length(max=200)])


@bp.route("/password", methods=["GET", "POST"])
@login_required
def own_password():
    form = OwnPasswordForm()
    errors: dict[str, str] = {}
    if form.validate_on_submit():
        with get_db().session() as session:
            user = session.get(StaffUser, current_user.id)
            if not user.check_password(form.current.data or ""):
                errors["current"] = t("security.password.error_current")
            elif len(form.new.data or "") < MIN_PASSWORD_LENGTH:
                errors["new"] = t("security.password.error_short", n=MIN_PASSWORD_LENGTH)
            elif form.new.data != form.repeat.data:
                errors["repeat"] = t("security.password.error_repeat")
            else:
                user.set_password(form.new.data)
                audit(session, user.name, "staff.password_change", user_id=user.id)
                session.flush()
                cookie[VERSION_KEY] = user.session_version  # this browser stays signed in
                flash(t("security.password.changed"))
                return redirect(url_for("staff.own_password"), 303)
    elif form.is_submitted():
        errors["current"] = t("security.password.error_current")
    status = 422 if errors else 200
    return render_template("staff/own_password.html", form=form, errors=errors,
                           min_password=MIN_PASSWORD_LENGTH), status
