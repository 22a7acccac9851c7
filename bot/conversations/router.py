"""The entry point for every inbound message: record it, then decide who answers.

Order: keywords first (they work at any time, also in the middle of a check-in), then the open
conversation's current state, then the fallback (logged for staff, answered with the menu at
most once a day). Media without text (voice notes, pictures, stickers, documents, videos,
locations, contacts) is logged and answered with a request to type, and the open question stays
open; a tapped quick-reply button counts as the answer it stands for (``Inbound.text``). A number
on no roster gets an explanation, unless it sends ``GABUNG <kode>``.

Before all that, a message from an active staff user's phone goes to the staff commands
(``staff``: SIARAN, REKAP, YA/BATAL); when the number is also a graduate's, only those commands
do, and anything else is the graduate's.

The graduate's row is locked for the whole transaction (``SELECT … FOR UPDATE`` on PostgreSQL;
on SQLite ``BEGIN IMMEDIATE`` already serialises writers), so one graduate's messages are
handled one at a time even when two web workers receive them together.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.catalog import text
from bot.config import Settings
from bot.conversations import checkin, join, keywords, staff
from bot.conversations.turn import CHECKIN_FLOW, Turn
from bot.models import INBOUND, MSG_RECEIVED, Conversation, Graduate, Message, utcnow
from bot.outbox import enqueue
from bot.understand import Keyword, parse_keyword

log = logging.getLogger(__name__)

MENU_EVERY = timedelta(days=1)


@dataclass
class Inbound:
    """One message as Twilio delivered it, already checked and normalised."""

    phone: str  # E.164
    body: str
    message_sid: str
    media: list[tuple[str, str]] = field(default_factory=list)  # (url, content type)
    profile_name: str | None = None
    button_payload: str | None = None  # a tapped quick-reply button: its payload ("1", "ya")
    button_text: str | None = None  # ... and its label

    @property
    def text(self) -> str:
        """What the sender said: the typed body; for a tapped button with no body, the answer
        the button stands for (its payload, else its label)."""
        body = (self.body or "").strip()
        return (body or (self.button_payload or "").strip()
                or (self.button_text or "").strip())


def handle_inbound(session: Session, settings: Settings, inbound: Inbound) -> None:
    """Record ``inbound`` and enqueue the answer; the caller commits (one transaction)."""
    now = utcnow()
    staff_user = staff.find_staff(session, inbound.phone)  # locked before the graduate
    graduate = session.scalar(
        select(Graduate).where(Graduate.phone == inbound.phone).with_for_update())
    if staff_user is not None:
        if staff.is_staff_message(staff_user, inbound.text, graduate is not None):
            message = _record(session, inbound, None, now)
            log.info("message %s is a staff command of staff user %s", message.id,
                     staff_user.id)
            staff.handle_staff_message(session, settings, staff_user, inbound.text, now)
            return
        # Also a graduate, writing as one: a broadcast waiting for YA is cancelled.
        staff.cancel_pending(session, settings, staff_user, now, reason="other message")
    message = _record(session, inbound, graduate, now)
    if graduate is None:
        _from_unknown_number(session, settings, inbound, message, now)
        return
    graduate.last_inbound_at = now
    turn = Turn(session, settings, graduate, inbound.text, now,
                session.get(Conversation, graduate.id), inbound=message)
    if not turn.text:
        log.info("graduate %s sent %s without text (message %s)", graduate.id,
                 message.media_type or "an empty message", message.id)
        turn.say("media_please_type")
        return
    keyword = parse_keyword(turn.text)
    if turn.joining:
        _while_joining(turn, keyword)
        return
    if keyword is not None and keywords.handle_keyword(turn, keyword):
        return
    if turn.conversation is not None:
        if turn.conversation.flow == CHECKIN_FLOW and checkin.handle_reply(turn):
            return
        # A finished, expired or unknown conversation: forget it and answer as if none.
        turn.end_conversation()
    _fallback(turn, message)


def _record(session: Session, inbound: Inbound, graduate: Graduate | None,
            now: datetime) -> Message:
    """Store the inbound row; a repeated MessageSid fails here (unique) before any handling."""
    media_url, media_type = inbound.media[0] if inbound.media else (None, None)
    if len(inbound.media) > 1:
        log.info("message %s carries %d media; only the first is stored", inbound.message_sid,
                 len(inbound.media))
    message = Message(direction=INBOUND, status=MSG_RECEIVED, kind="inbound",
                      twilio_sid=inbound.message_sid, phone=inbound.phone,
                      body=inbound.body or inbound.button_text or inbound.button_payload or "",
                      media_url=media_url, media_type=media_type,
                      graduate_id=graduate.id if graduate else None,
                      cohort_id=graduate.cohort_id if graduate else None,
                      created_at=now, updated_at=now)
    session.add(message)
    session.flush()
    return message


def _from_unknown_number(session: Session, settings: Settings, inbound: Inbound,
                         message: Message, now: datetime) -> None:
    keyword = parse_keyword(inbound.text) if inbound.text else None
    if keyword is not None and keyword.name == "join" and (keyword.argument or "").strip():
        join.start_join(session, settings, inbound.phone, keyword.argument or "",
                        inbound.profile_name, message, now)
        return
    log.info("message %s from %s, a number on no roster", message.id, inbound.phone)
    enqueue(session, phone=inbound.phone, kind="reply",
            body=text(settings.app.language, "unknown_number"))


def _while_joining(turn: Turn, keyword: Keyword | None) -> None:
    """Waiting for a name: GABUNG switches cohort, BERHENTI opts out, other keywords are not
    names (the name is asked again), and anything else is the name."""
    if keyword is None:
        join.answer_name(turn)
    elif keyword.name == "join":
        join.change_cohort(turn, keyword.argument)
    elif keyword.name == "stop":
        keywords.opt_out(turn, keyword.argument)
    else:
        turn.say("join.hint_name")


def _fallback(turn: Turn, message: Message) -> None:
    """A message outside any conversation: kept for staff; the menu at most once a day."""
    graduate = turn.graduate
    log.info("graduate %s wrote outside a conversation (message %s)", graduate.id, message.id)
    if not graduate.can_receive:
        return
    if graduate.last_menu_at is not None and turn.now - graduate.last_menu_at < MENU_EVERY:
        return
    keywords.show_menu(turn, None)

