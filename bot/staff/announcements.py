"""Announcements: a free-text post to one or more cohorts ("the group post"), sent after a
preview of how many graduates receive it and the exact text they read; past posts with their
delivery counts, live while messages are on their way. Admin and staff only.
"""

from __future__ import annotations

from flask import abort, flash, jsonify, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import get_settings
from bot.broadcasts import (
    ANNOUNCEMENT_LIMIT,
    BroadcastError,
    RecipientsChanged,
    announcement_message,
    create_announcement,
    recipients_fingerprint,
    target_recipients,
)
from bot.checkins import cohort_labels
from bot.cleaning import MAX_PAGE
from bot.models import Broadcast
from bot.staff import bp
from bot.staff.auth import can_write, visible_cohorts
from bot.staff.formats import clock_text
from bot.staff.i18n import t
from bot.staff.jobs import page, progress_of, selected_ids, session_for_request, whatsapp_html
from bot.staff.reads import page_session

PER_PAGE = 20


@bp.route("/announcements", methods=["GET", "POST"])
@can_write
def announcements():
    """The post form (POST ``step=preview`` shows the preview, ``step=send`` sends) and the
    past announcements, newest first."""
    settings = get_settings()
    with session_for_request() as session:
        cohorts = [c for c in visible_cohorts(session) if c.active]
        allowed = {c.id for c in cohorts}
        chosen = [i for i in selected_ids(request.form.getlist("cohort")) if i in allowed]
        text = (request.form.get("text") or "").strip()
        error = warning = preview = None
        status = 200
        if request.method == "POST":
            step = request.form.get("step", "preview")
            if not chosen:
                error = t("announcements.error.no_cohort")
            elif not text:
                error = t("announcements.error.empty")
            elif len(text) > ANNOUNCEMENT_LIMIT:
                error = t("announcements.error.too_long", limit=ANNOUNCEMENT_LIMIT,
                          length=len(text))
            elif step == "send":
                try:
                    bc = create_announcement(session, settings, None, text,
                                             actor=current_user.name, cohort_ids=chosen,
                                             expected=request.form.get("fingerprint", ""))
                except RecipientsChanged:
                    session.rollback()
                    warning = t("announcements.error.changed")
                except BroadcastError as exc:
                    session.rollback()
                    error = str(exc)
                else:
                    flash(t("announcements.flash.sent", count=bc.recipient_count))
                    return redirect(url_for("staff.announcements") + f"#send-{bc.id}")
            if error is None:
                preview = _preview(session, cohorts, chosen, text)
                if not preview["count"]:
                    error = t("announcements.error.nobody")
            status = 409 if warning else 400 if error else 200
        number = min(max(1, request.args.get("page", 1, type=int) or 1), MAX_PAGE)
        past, more = _past(session, number)
        return page("staff/announcements.html", cohorts=cohorts, chosen=chosen, text=text,
                    limit=ANNOUNCEMENT_LIMIT, preview=preview, error=error, warning=warning,
                    past=past, page_number=number, more=more), status


def _preview(session: Session, cohorts, chosen: list[int], text: str) -> dict:
    """How many graduates of each chosen cohort receive the post, and what they read."""
    settings = get_settings()
    recipients = target_recipients(session, chosen)
    by_cohort: dict[int, int] = {}
    languages: set[str] = set()
    for graduate in recipients:
        by_cohort[graduate.cohort_id] = by_cohort.get(graduate.cohort_id, 0) + 1
        languages.add(graduate.language or settings.app.language)
    picked = [c for c in cohorts if c.id in chosen]
    labels = cohort_labels(session, picked)
    first = picked[0].name if picked else ""
    ordered = sorted(languages or {settings.app.language},
                     key=lambda lang: (lang != settings.app.language, lang))
    return {
        "count": len(recipients),
        "cohorts": [(labels[c.id], by_cohort.get(c.id, 0)) for c in picked],
        "fingerprint": recipients_fingerprint(recipients),
        # Each graduate reads their own cohort's name; the first cohort stands for all here.
        "messages": [(lang, whatsapp_html(announcement_message(lang, text, first)))
                     for lang in ordered],
    }


def _past(session: Session, number: int) -> tuple[list[dict], bool]:
    rows = list(session.scalars(
        select(Broadcast).where(Broadcast.kind == "announcement")
        .order_by(Broadcast.created_at.desc(), Broadcast.id.desc())
        .offset((number - 1) * PER_PAGE).limit(PER_PAGE + 1)))
    return ([{"broadcast": bc, "message": whatsapp_html(bc.body),
              **progress_of(session, bc, None)} for bc in rows[:PER_PAGE]],
            len(rows) > PER_PAGE)


@bp.get("/announcements/progress")
@can_write
def announcements_progress():
    """Delivery counts of the announcements with the given ids (polled by the page)."""
    ids = selected_ids(request.args.get("ids", "").split(","))[:PER_PAGE]
    if not ids:
        abort(404)
    with page_session() as session:
        found = session.scalars(select(Broadcast).where(
            Broadcast.id.in_(ids), Broadcast.kind == "announcement"))
        data = {str(bc.id): progress_of(session, bc, None) for bc in found}
    response = jsonify({"broadcasts": data, "updated": clock_text()})
    response.headers["Cache-Control"] = "no-store"
    return response

