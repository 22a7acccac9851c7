"""Sign-in, roles and scope for the staff console.

Sessions are Flask-Login's, in a signed cookie that also carries the user's
``session_version`` and the time of its latest request: sign-out, a password change or reset and
(de)activation bump the version, so every copy of an older cookie is refused, and a session idle
longer than ``app.session_idle_minutes`` ends. Passwords are hashed by Werkzeug (scrypt); every
form carries a CSRF token (Flask-WTF). Sign-in attempts are throttled per client address and
slowed per name (``attempt_login``); the counts live in the database (``bot.throttle``), so they
hold across web workers.

Scope: admins and staff see every institution; a viewer sees only their own institution's
cohorts. Views fetch objects through ``cohort_or_404`` / ``graduate_or_404`` /
``scoped_cohort_ids`` so an object outside the scope is a 404, never a leak.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from urllib.parse import urlsplit

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask import session as cookie
from flask_login import LoginManager, current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from bot import get_db, get_settings
from bot.models import Cohort, Graduate, StaffUser, Throttle, audit, utcnow
from bot.staff import bp
from bot.staff.i18n import t
from bot.throttle import Backoff, blocked_for, count_attempt, forget, locked_row, purge

# Sign-in attempts per client address: 5 free per 15 minutes, then 1 s, 2 s, 4 s … up to
# 15 minutes between attempts (bot.throttle.Backoff).
IP_BACKOFF = Backoff(free=5, window=timedelta(minutes=15))
# Failures of one name (from any address) beyond this many in NAME_WINDOW slow every further
# attempt on that name by NAME_DELAY_STEP more seconds, up to NAME_DELAY_CAP: never a lockout.
NAME_WINDOW = timedelta(minutes=15)
NAME_FREE_FAILURES = 10
NAME_DELAY_STEP = 0.25
NAME_DELAY_CAP = 2.0
# Throttle rows quiet for longer than this are deleted at each good sign-in (GABUNG counts
# last a day).
THROTTLE_KEPT = timedelta(days=2)
# Failed sign-ins written to the audit log per address and window.
AUDITED_PER_WINDOW = 5
VERSION_KEY = "_kabar_sv"  # the user's session_version when this session signed in
SEEN_KEY = "_kabar_seen"  # the time of this session's latest request (seconds)
SEEN_RESOLUTION = 60  # the idle clock is refreshed at most once a minute

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
        self.session_version = user.session_version

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
    """The user of this session, or None when the session has ended: the user is gone or
    inactive, signed out or changed the password since (``session_version``), or the session
    was idle longer than ``app.session_idle_minutes``."""
    if not user_id.isdigit():
        return None
    now = time.time()
    idle = get_settings().app.session_idle_minutes * 60
    seen = cookie.get(SEEN_KEY)
    if not isinstance(seen, int | float) or now - seen > idle:
        return None
    with get_db().read_session() as session:
        user = session.get(StaffUser, int(user_id))
        if user is None or not user.active or cookie.get(VERSION_KEY) != user.session_version:
            return None
        if now - seen > SEEN_RESOLUTION:
            cookie[SEEN_KEY] = int(now)
        return StaffLogin(user)


def start_session(user: StaffLogin) -> None:
    """Sign ``user`` in on this browser, bound to their current session version."""
    login_user(user)
    cookie[VERSION_KEY] = user.session_version
    cookie[SEEN_KEY] = int(time.time())


class LoginForm(FlaskForm):
    name = StringField("name", validators=[DataRequired(), Length(max=200)])
    password = PasswordField("password", validators=[DataRequired(), Length(max=200)])


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign in with name and password, throttled per client address and slowed per name."""
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("staff/login.html", form=form, error=None)
    name = form.name.data.strip()
    outcome = attempt_login(name, form.password.data, request.remote_addr or "-")
    if isinstance(outcome, StaffLogin):
        start_session(outcome)
        return redirect(_safe_next(request.args.get("next")))
    error, status = outcome
    return render_template("staff/login.html", form=form, error=error), status


def attempt_login(name: str, password: str, ip: str) -> StaffLogin | tuple[str, int]:
    """Check one sign-in: the user on success, else the error text and HTTP status.

    1. The client address is counted before the password is checked (its row locked), so
       parallel guesses cannot outrun the count; beyond ``IP_BACKOFF.free`` attempts it waits
       longer and longer (429). Other addresses are not affected: the real user still gets in.
    2. A name with many failures (from any address) is slowed by a delay, never locked.
    3. The password is hashed also for unknown or inactive names, so they answer as slowly.
    4. Failures are audited up to ``AUDITED_PER_WINDOW`` per address and window, then one
       ``login_throttled`` row: a flood adds a handful of rows.
    """
    db = get_db()
    now = utcnow()
    ip_key, name_key = f"ip:{ip}"[:240], f"name:{name.casefold()}"[:240]
    with db.session() as session:
        ip_row = locked_row(session, ip_key, now, IP_BACKOFF.window)
        wait = blocked_for(ip_row, now)
        if wait is None:
            count_attempt(ip_row, now, IP_BACKOFF)
        elif ip_row.audited == AUDITED_PER_WINDOW:
            ip_row.audited += 1
            audit(session, name, "login_throttled", ip=ip, attempts=ip_row.failures)
        name_row = session.get(Throttle, name_key)
        name_failures = name_row.failures if name_row is not None else 0
    if wait is not None:
        seconds = max(1, math.ceil(wait.total_seconds()))
        return t("security.login_throttled", seconds=seconds), 429
    delay = name_delay(name_failures)
    if delay:
        time.sleep(delay)
    with db.session() as session:
        user = session.scalar(select(StaffUser).where(StaffUser.name == name))
        if user is not None:
            good = user.check_password(password) and user.active
        else:
            check_password_hash(_dummy_hash(), password)  # as slow as a real name
            good = False
        if good:
            forget(session, ip_key, name_key)
            purge(session, now, THROTTLE_KEPT)  # counts nobody needs any more
            audit(session, user.name, "login", ip=ip)
            return StaffLogin(user)
        name_row = locked_row(session, name_key, now, NAME_WINDOW)
        name_row.failures += 1
        ip_row = locked_row(session, ip_key, now, IP_BACKOFF.window)
        if ip_row.audited < AUDITED_PER_WINDOW:
            ip_row.audited += 1
            audit(session, name, "login_failed", ip=ip)
    return t("login.failed"), 401


def name_delay(failures: int) -> float:
    """Seconds to wait before checking a password for a name with this many recent failures."""
    if failures < NAME_FREE_FAILURES:
        return 0.0
    return min(NAME_DELAY_CAP, NAME_DELAY_STEP * (failures - NAME_FREE_FAILURES + 1))


_DUMMY: list[str] = []


def _dummy_hash() -> str:
    if not _DUMMY:
        _DUMMY.append(generate_password_hash(secrets.token_hex(16)))
    return _DUMMY[0]


@bp.post("/logout")
@login_required
def logout():
    """Sign out here and everywhere: every copy of this user's session cookie ends."""
    with get_db().session() as session:
        user = session.get(StaffUser, current_user.id)
        if user is not None:
            user.end_sessions()
            audit(session, user.name, "logout", ip=request.remote_addr)
    logout_user()
    cookie.pop(VERSION_KEY, None)
    cookie.pop(SEEN_KEY, None)
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
