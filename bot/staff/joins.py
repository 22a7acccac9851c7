"""Join requests and join codes (``/staff/joins``, admin and staff).

A number that sent ``GABUNG <code>`` and its name waits here while ``joining.require_approval``
is on (``bot.conversations.join``): approving makes the graduate active in the paket and sends
the welcome; rejecting keeps the number out (it receives nothing). A request whose code was no
paket's has no paket and can only be rejected. Each paket's join code is shown here, and only
here, with a button that draws a new one (the old code stops working at once).
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select

from bot import get_db
from bot.catalog import text
from bot.conversations.join import PENDING, REJECTED, file_join_messages
from bot.joincodes import new_join_code
from bot.models import Cohort, Conversation, Graduate, audit
from bot.outbox import enqueue
from bot.staff import bp
from bot.staff.auth import can_write, cohort_or_404, visible_cohorts
from bot.staff.i18n import t
from bot.staff.reads import page_session

MAX_LISTED = 500


@bp.get("/joins")
@can_write
def joins():
    with page_session() as session:
        waiting = session.execute(
            select(Graduate, Cohort)
            .outerjoin(Cohort, Graduate.cohort_id == Cohort.id)
            .outerjoin(Conversation, Conversation.graduate_id == Graduate.id)
            .where(Graduate.join_status == PENDING, Conversation.graduate_id.is_(None))
            .order_by(Graduate.created_at, Graduate.id).limit(MAX_LISTED)).all()
        requests = [{"id": g.id, "name": g.name, "phone": g.phone, "asked": g.created_at,
                     "cohort": f"{c.name} ({c.institution.name})" if c else None}
                    for g, c in waiting]
        cohorts = [{"id": c.id, "name": c.name, "institution": c.institution.name,
                    "code": c.join_code, "active": c.active} for c in visible_cohorts(session)]
    return render_template("staff/joins.html", requests=requests, cohorts=cohorts)


def _pending_or_404(session, graduate_id: int) -> Graduate:
    graduate = session.get(Graduate, graduate_id, with_for_update=True)
    if graduate is None or graduate.join_status != PENDING:
        abort(404)
    return graduate


@bp.post("/joins/<int:graduate_id>/approve")
@can_write
def join_approve(graduate_id: int):
    with get_db().session() as session:
        graduate = _pending_or_404(session, graduate_id)
        cohort = session.get(Cohort, graduate.cohort_id) if graduate.cohort_id else None
        if cohort is None:
            flash(t("security.joins.no_cohort"))
            return redirect(url_for("staff.joins"), 303)
        graduate.active = True
        graduate.join_status = None
        file_join_messages(session, graduate)
        enqueue(session, graduate=graduate, kind="reply", body=text(
            graduate.language, "join.welcome", name=graduate.name, cohort=cohort.name))
        audit(session, current_user.name, "join.approve", graduate_id=graduate.id,
              name=graduate.name, phone=graduate.phone, cohort=cohort.name)
        flash(t("security.joins.approved", name=graduate.name, cohort=cohort.name))
    return redirect(url_for("staff.joins"), 303)


@bp.post("/joins/<int:graduate_id>/reject")
@can_write
def join_reject(graduate_id: int):
    with get_db().session() as session:
        graduate = _pending_or_404(session, graduate_id)
        graduate.join_status = REJECTED
        graduate.active = False
        audit(session, current_user.name, "join.reject", graduate_id=graduate.id,
              name=graduate.name, phone=graduate.phone)
        flash(t("security.joins.rejected", name=graduate.name))
    return redirect(url_for("staff.joins"), 303)


@bp.post("/cohorts/<int:cohort_id>/join-code")
@can_write
def join_code_new(cohort_id: int):
    with get_db().session() as session:
        cohort = cohort_or_404(session, cohort_id)
        cohort.join_code = new_join_code(session)
        audit(session, current_user.name, "join.code_new", cohort_id=cohort.id,
              cohort=cohort.name)
        flash(t("security.join_code.regenerated", cohort=cohort.name, code=cohort.join_code))
    return redirect(url_for("staff.joins") + "#codes", 303)
