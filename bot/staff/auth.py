"""Sign-in, roles and scope for the staff console.

Sessions are Flask-Login's; passwords are hashed by Werkzeug (scrypt); every form carries a
CSRF token (Flask-WTF). Failed sign-ins are written to the audit log, and a name with
``MAX_FAILURES`` failures in ``FAILURE_WINDOW`` is refused until the window has passed: the count
lives in the database, so it holds across web workers.

Scope: admins and staff see every institution; a viewer sees only their own institution's
cohorts. Views fetch objects through ``cohort_or_404`` / ``graduate_or_404`` /
``scoped_cohort_ids`` so an object outside the scope is a 404, never a leak.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from urllib.parse import urlsplit

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_login import LoginManager, current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import func, select
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from bot import get_db
from bot.models import AuditLog, Cohort, Graduate, StaffUser, audit, utcnow
from bot.staff import bp
from bot.staff.i18n import t

MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)

login_manager = LoginManager()
csrf = CSRFProtect()


class StaffLogin:
    """The signed-in user as Flask-Login sees it: a detached snapshot of the StaffUser row."""

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def __init__(self, user: StaffUser) -> None:
        self.id = user.id
        self.name = user.name
        self.role = user.role
        self.institution_id = user.institution_id
        self.institution_name = user.institution.name if user.institution else None

    def get_id(self) -> str:
        return str(self.id)

    @property
    def can_write(self) -> bool:
        return self.role in ("admin", "staff")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def scope_institution_id(self) -> int | None:
        """The institution a viewer is limited to; None means every institution."""
        return self.institution_id if self.role == "viewer" else None


def init_app(app) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "staff.login"
    login_manager.login_message = None
    csrf.init_app(app)
    secure = app.extensions["kabar.settings"].app.public_url.startswith("https://")
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=secure, REMEMBER_COOKIE_SECURE=secure,
                      WTF_CSRF_TIME_LIMIT=None)

    @app.context_processor
    def _console_globals():
        return {"t": t}


@login_manager.user_loader
def _load_user(user_id: str) -> StaffLogin | None:
    with get_db().read_session() as session:
        user = session.get(StaffUser, int(user_id)) if user_id.isdigit() else None
        if user is None or not user.active:
            return None
        return StaffLogin(user)


class LoginForm(FlaskForm):
    name = StringField("name", validators=[DataRequired(), Length(max=200)])
    password = PasswordField("password", validators=[DataRequired(), Length(max=200)])


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign in with name and password; too many failures lock the name for a while."""
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        name = form.name.data.strip()
        with get_db().session() as session:
            since = utcnow() - FAILURE_WINDOW
            failures = session.scalar(select(func.count()).select_from(AuditLog).where(
                AuditLog.action == "login_failed", AuditLog.actor == name,
                AuditLog.created_at >= since))
            user = session.scalar(select(StaffUser).where(StaffUser.name == name))
            if failures >= MAX_FAILURES:
                error = t("login.locked", minutes=int(FAILURE_WINDOW.total_seconds() // 60))
                status = 429
            elif user is None or not user.active or not user.check_password(form.password.data):
                audit(session, name, "login_failed", ip=request.remote_addr)
                error, status = t("login.failed"), 401
            else:
                audit(session, user.name, "login", ip=request.remote_addr)
                login_user(StaffLogin(user))
                return redirect(_safe_next(request.args.get("next")))
        return render_template("staff/login.html", form=form, error=error), status
    return render_template("staff/login.html", form=form, error=error)


@bp.post("/logout")
@login_required
def logout():
    logout_user()
    flash(t("login.signed_out"))
    return redirect(url_for("staff.login"))


def _safe_next(target: str | None) -> str:
    """Only local paths under /staff: never redirect a signed-in user to another site."""
    if target and target.startswith("/staff") and not urlsplit(target).netloc:
        return target
    return url_for("staff.dashboard")


def require_role(*roles: str) -> Callable:
    """Allow the view only to these roles (403 for the others); implies login_required."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        @login_required
        def wrapper(*args, **kwargs):
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapper

    return decorate


can_write = require_role("admin", "staff")
admin_only = require_role("admin")


def scoped_cohort_ids(session) -> list[int] | None:
    """Cohort ids the current user may see, or None for every cohort."""
    institution_id = current_user.scope_institution_id
    if institution_id is None:
        return None
    if "scoped_cohort_ids" not in g:
        g.scoped_cohort_ids = list(session.scalars(
            select(Cohort.id).where(Cohort.institution_id == institution_id)))
    return g.scoped_cohort_ids


def visible_cohorts(session) -> list[Cohort]:
    """The cohorts the current user may see, by institution and name."""
    query = select(Cohort).join(Cohort.institution).order_by(Cohort.institution_id, Cohort.name)
    if current_user.scope_institution_id is not None:
        query = query.where(Cohort.institution_id == current_user.scope_institution_id)
    return list(session.scalars(query))


def cohort_or_404(session, cohort_id: int) -> Cohort:
    cohort = session.get(Cohort, cohort_id)
    scope = current_user.scope_institution_id
    if cohort is None or (scope is not None and cohort.institution_id != scope):
        abort(404)
    return cohort


def graduate_or_404(session, graduate_id: int) -> Graduate:
    graduate = session.get(Graduate, graduate_id)
    if graduate is None:
        abort(404)
    allowed = scoped_cohort_ids(session)
    if allowed is not None and graduate.cohort_id not in allowed:
        abort(404)
    return graduate
