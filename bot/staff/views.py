"""The console's views; each page lives in its own module and registers on the blueprint."""

from __future__ import annotations

from flask import redirect, url_for
from flask_login import login_required

from bot.staff import bp

# (endpoint, text key, roles that see it or None for everyone signed in), in menu order.
NAV = [
    ("staff.dashboard", "nav.dashboard", None),
    ("staff.timeline_index", "nav.timeline", None),
    ("staff.log", "nav.log", None),
    ("staff.learning", "nav.learning", None),
    ("staff.jobs", "nav.jobs", None),
    ("staff.announcements", "nav.announcements", ("admin", "staff")),
    ("staff.schedules", "nav.schedules", None),
    ("staff.roster", "nav.roster", None),
    ("staff.outcomes", "nav.outcomes", None),
    ("staff.tracer", "nav.tracer", None),
    ("staff.audit", "nav.audit", ("admin", "staff")),
    ("staff.joins", "security.joins.nav", ("admin", "staff")),
    ("staff.users", "nav.users", ("admin",)),
]


@bp.app_context_processor
def _nav():
    """Navigation entries the current user may use (pages register themselves in NAV)."""
    from flask_login import current_user

    def nav_items():
        if not current_user.is_authenticated:
            return []
        return [(endpoint, key) for endpoint, key, roles in NAV
                if roles is None or current_user.role in roles]

    return {"nav_items": nav_items}


@bp.get("/")
@login_required
def home():
    return redirect(url_for("staff.dashboard"))


# Pages, one module each (imported for their routes).
from bot.staff import (  # noqa: E402, F401
    account,
    announcements,
    auditlog,
    dashboard,
    graduates,
    jobs,
    joins,
    learning,
    personal_data,
    replylog,
    reports,
    roster,
    rosterimport,
    schedules,
    timeline,
    users,
)
