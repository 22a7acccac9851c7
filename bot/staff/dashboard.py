"""Dashboard: per institution and cohort, the numbers staff report on."""

from __future__ import annotations

from flask import render_template
from flask_login import login_required

from bot import get_db
from bot.staff import bp
from bot.staff.auth import visible_cohorts


@bp.get("/dashboard")
@login_required
def dashboard():
    with get_db().read_session() as session:
        cohorts = visible_cohorts(session)
        return render_template("staff/dashboard.html", cohorts=cohorts)
