"""A cohort's traffic read like a WhatsApp group chat, and the bubbles a graduate's page reuses.

Messages are shown oldest to newest in pages of ``PAGE_SIZE``, ordered by ``(created_at, id)``
and paged by keyset: ``?before=<message id>`` loads older ones, ``?after=<message id>`` newer
ones; no OFFSET, so the last page of a cohort with 100,000 messages costs what the first does
(given an index on ``messages (cohort_id, created_at, id)``; a graduate's history uses
``ix_messages_graduate_created``).
The newest page asks ``/staff/cohorts/<id>/poll?after=<id>`` every few seconds for messages that
arrived since (rendered here, escaped, as HTML in a small JSON answer).

Every text a graduate wrote goes through Jinja's autoescape; only Kabar's own outbound texts get
WhatsApp's ``*bold*`` and ``_italic_``, applied after escaping (``wa_format``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from flask import abort, jsonify, render_template, request
from flask_login import login_required
from markupsafe import Markup, escape
from sqlalchemy import case, func, select, tuple_
from sqlalchemy.orm import Session

from bot import get_settings
from bot.cleaning import id_value
from bot.models import (
    INBOUND,
    MSG_DELIVERED,
    MSG_FAILED,
    MSG_QUEUED,
    MSG_READ,
    MSG_SENT,
    MSG_SUPPRESSED,
    MSG_UNDELIVERED,
    Cohort,
    Graduate,
    Institution,
    Message,
)
from bot.staff import bp
from bot.staff.auth import cohort_or_404, scoped_cohort_ids
from bot.staff.formats import date_text, datetime_text
from bot.staff.i18n import t
from bot.staff.reads import page_session

PAGE_SIZE = 50
POLL_LIMIT = 100
POLL_SECONDS = 5


# --- dates in the app's time zone -----------------------------------------------------------

def local(moment: datetime) -> datetime:
    return moment.astimezone(get_settings().tz)


def month_name(month: int, short: bool = False) -> str:
    return t("timeline.months_short" if short else "timeline.months").split()[month - 1]


def day_label(day: date) -> str:
    """``Senin, 03/06/2024`` / ``Monday, 03/06/2024``."""
    weekday = t("timeline.weekdays").split()[day.weekday()]
    return f"{weekday}, {date_text(day)}"


def short_date(day: date) -> str:
    """``03/06/2024`` (bot.staff.formats.date_text)."""
    return date_text(day)


def when(moment: datetime | None) -> str:
    """A stored time as ``03/06/2024 14:05`` in the app's zone ('' for None)."""
    return datetime_text(moment)


@bp.app_template_global("display_phone")
def display_phone(e164: str) -> str:
    """``+6281234567890`` as ``0812-3456-7890``, as Indonesians write it; others unchanged."""
    if not (e164.startswith("+62") and e164[1:].isdigit()):
        return e164
    national = "0" + e164[3:]
    return f"{national[:4]}-{national[4:8]}-{national[8:]}" if len(national) > 8 else national


# --- bubbles --------------------------------------------------------------------------------

_BOLD = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])")


def wa_format(text: str) -> Markup:
    """Kabar's own text with WhatsApp's *bold* and _italic_; escaped first, so still only text."""
    safe = str(escape(text))
    safe = _BOLD.sub(r"<strong>\1</strong>", safe)
    return Markup(_ITALIC.sub(r"<em>\1</em>", safe))


@dataclass
class Bubble:
    id: int
    outbound: bool
    who: str  # the graduate's name, or "Kabar · <kind>"
    graduate_id: int | None
    body: str | Markup
    media_url: str | None
    media_type: str | None
    time: str  # 14:05
    stamp: str  # full local date and time, for the tooltip
    ticks: str
    tick_class: str
    tick_title: str
    day: str | None  # a day separator to draw before this bubble


def kind_label(kind: str) -> str:
    key = f"timeline.kinds.{kind}"
    text = t(key)
    return kind if text == key else text


def _ticks(message: Message) -> tuple[str, str, str]:
    """(symbol, css class, tooltip) for an outbound message's delivery status."""
    status = message.status
    if status in (MSG_FAILED, MSG_UNDELIVERED):
        detail = t("timeline.status.failed", code=message.error_code or "-")
        if message.error_message:
            detail += f" – {message.error_message}"
        return "!", "failed", detail
    if status == MSG_READ:
        return "✓✓", "read", t("timeline.status.read")
    if status == MSG_DELIVERED:
        return "✓✓", "delivered", t("timeline.status.delivered")
    if status in (MSG_SENT, MSG_QUEUED):
        return "✓", "sent", t("timeline.status.sent")
    if status == MSG_SUPPRESSED:
        return "⊘", "suppressed", t("timeline.status.suppressed")
    return "🕓", "pending", t("timeline.status.pending")


def bubbles(rows: list[tuple[Message, str | None]], previous_day: date | None = None,
            names: bool = True) -> list[Bubble]:
    """View models for (message, graduate name) rows in display order, with day separators."""
    made = []
    for message, name in rows:
        moment = local(message.created_at)
        day = moment.date()
        outbound = message.direction != INBOUND
        if outbound:
            ticks = _ticks(message)
            to = f" → {name}" if names and name else ""
            who = f"Kabar{to} · {kind_label(message.kind)}"
            body: str | Markup = wa_format(message.body or "")
            if not message.body and message.content_sid:
                body = t("timeline.template", sid=message.content_sid)
        else:
            ticks = ("", "", "")
            who = (name or message.phone) if names else ""
            body = message.body or ""
        media = message.media_url
        made.append(Bubble(
            id=message.id, outbound=outbound, who=who, graduate_id=message.graduate_id,
            body=body,
            media_url=media if media and media.startswith(("https://", "http://")) else None,
            media_type=(message.media_type or t("timeline.media")) if media else None,
            time=f"{moment:%H:%M}", stamp=when(message.created_at), ticks=ticks[0],
            tick_class=ticks[1], tick_title=ticks[2],
            day=day_label(day) if day != previous_day else None))
        previous_day = day
    return made


# --- keyset pages ---------------------------------------------------------------------------

@dataclass
class Page:
    bubbles: list[Bubble]
    older: int | None  # ?before= for the page before this one
    newer: int | None  # ?after= for the page after this one
    latest: bool  # the newest page (new messages may be polled for)
    last_id: int  # the highest message id matching, for polling


def message_page(session: Session, where, before: int | None = None,
                 after: int | None = None, names: bool = True) -> Page:
    """One page of the messages matching ``where`` (a condition on Message), oldest first.

    Without a cursor the newest page; ``before`` pages back from that message, ``after``
    forward. The cursor is looked up within ``where``: another cohort's message is a 404.
    """
    if before is not None:
        after = None
    query = (select(Message, Graduate.name)
             .outerjoin(Graduate, Message.graduate_id == Graduate.id).where(where))
    cursor_id = before if before is not None else after
    if cursor_id is not None:
        at = session.scalar(select(Message.created_at).where(where, Message.id == cursor_id))
        if at is None:
            abort(404)
        if before is not None:
            # A row-value comparison, so the (cohort_id, created_at, id) index bounds it.
            query = query.where(tuple_(Message.created_at, Message.id) < tuple_(at, cursor_id))
        else:
            query = query.where(tuple_(Message.created_at, Message.id) > tuple_(at, cursor_id))
    if after is not None:  # forward from the cursor
        rows = session.execute(query.order_by(Message.created_at, Message.id)
                               .limit(PAGE_SIZE + 1)).all()
        more_newer, more_older, rows = len(rows) > PAGE_SIZE, True, rows[:PAGE_SIZE]
    else:  # back from the cursor, or from the newest
        rows = session.execute(query.order_by(Message.created_at.desc(), Message.id.desc())
                               .limit(PAGE_SIZE + 1)).all()
        more_older, more_newer = len(rows) > PAGE_SIZE, before is not None
        rows = list(reversed(rows[:PAGE_SIZE]))
    latest = not more_newer
    last_id = (session.scalar(select(func.max(Message.id)).where(where)) or 0) if latest else 0
    return Page(bubbles=bubbles([(m, n) for m, n in rows], names=names),
                older=rows[0][0].id if rows and more_older else None,
                newer=rows[-1][0].id if rows and more_newer else None,
                latest=latest, last_id=last_id)


def poll(session: Session, where, after: int, names: bool = True) -> dict:
    """Messages recorded since message ``after`` (by id), rendered as bubbles."""
    previous = session.scalar(select(Message.created_at).where(where, Message.id == after)) \
        if after else None
    rows = session.execute(
        select(Message, Graduate.name).outerjoin(Graduate, Message.graduate_id == Graduate.id)
        .where(where, Message.id > after).order_by(Message.id).limit(POLL_LIMIT)).all()
    made = bubbles([(m, n) for m, n in rows],
                   previous_day=local(previous).date() if previous else None, names=names)
    html = render_template("staff/timeline_poll.html", bubbles=made) if made else ""
    return {"html": html, "last_id": rows[-1][0].id if rows else after}


def count_if(condition):
    """COUNT of the rows where ``condition`` holds (portable: no FILTER clause needed)."""
    return func.count(case((condition, 1)))


def cursor_arg(name: str) -> int | None:
    value = request.args.get(name, "")
    if not value:
        return None
    number = id_value(value)
    if number is None:
        abort(404)
    return number


# --- views ----------------------------------------------------------------------------------

@bp.get("/cohorts")
@login_required
def timeline_index():
    """Every visible cohort with its graduates and its last message (no count of messages:
    that would read every message of every cohort)."""
    with page_session() as session:
        allowed = scoped_cohort_ids(session)
        last = (select(Message.created_at).where(Message.cohort_id == Cohort.id)
                .order_by(Message.id.desc()).limit(1).correlate(Cohort).scalar_subquery())
        query = (select(Cohort.id, Cohort.name, Cohort.skill, Cohort.active,
                        Institution.name.label("institution"), last.label("last_at"))
                 .join(Institution, Cohort.institution_id == Institution.id)
                 .order_by(Institution.name, Cohort.name))
        graduates = (select(Graduate.cohort_id, func.count().label("n"),
                            count_if(Graduate.opted_out.is_(True)).label("out"))
                     .where(Graduate.active.is_(True)).group_by(Graduate.cohort_id))
        if allowed is not None:
            query = query.where(Cohort.id.in_(allowed))
            graduates = graduates.where(Graduate.cohort_id.in_(allowed))
        cohorts = session.execute(query).all()
        people = {row.cohort_id: row for row in session.execute(graduates)}
        return render_template("staff/timeline_index.html", cohorts=cohorts, people=people,
                               when=when)


@bp.get("/cohorts/<int:cohort_id>")
@login_required
def timeline(cohort_id: int):
    """The cohort's messages, both directions, like a group chat; newest at the bottom."""
    with page_session() as session:
        cohort = cohort_or_404(session, cohort_id)
        page = message_page(session, Message.cohort_id == cohort.id,
                            before=cursor_arg("before"), after=cursor_arg("after"))
        members = session.execute(
            select(Graduate.id, Graduate.name, Graduate.opted_out)
            .where(Graduate.cohort_id == cohort.id, Graduate.active.is_(True))
            .order_by(Graduate.name)).all()
        return render_template("staff/timeline.html", cohort=cohort,
                               institution=cohort.institution.name, page=page, members=members,
                               poll_seconds=POLL_SECONDS)


@bp.get("/cohorts/<int:cohort_id>/poll")
@login_required
def timeline_poll(cohort_id: int):
    """JSON: the bubbles of messages newer (by id) than ``?after=``."""
    with page_session() as session:
        cohort = cohort_or_404(session, cohort_id)
        return jsonify(poll(session, Message.cohort_id == cohort.id, cursor_arg("after") or 0))
