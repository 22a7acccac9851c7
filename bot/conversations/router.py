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
from bot.conversations.optedout import answer_opted_out
from bot.conversations.turn import CHECKIN_FLOW, Turn
from bot.models import Conversation, Graduate, Message, utcnow
from bot.outbox import enqueue
from bot.understand import Keyword, parse_keyword, use_vocabulary

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

    def to_row(self) -> dict:
        """The columns of the inbound Message row that records this message."""
        media_url, media_type = self.media[0] if self.media else (None, None)
        meta = {key: value for key, value in (
            ("profile_name", self.profile_name), ("button_payload", self.button_payload),
            ("button_text", self.button_text),
            # The row's body shows a tapped button's label when nothing was typed.
            ("body_from_button", not self.body and bool(self.button_text or self.button_payload)),
            ("media", [list(m) for m in self.media] if len(self.media) > 1 else None))
            if value}
        return {"twilio_sid": self.message_sid, "phone": self.phone,
                "body": self.body or self.button_text or self.button_payload or "",
                "media_url": media_url, "media_type": media_type, "meta": meta or None}

    @classmethod
    def from_row(cls, message: Message) -> Inbound:
        """The message as it was received, rebuilt from its row."""
        meta = message.meta or {}
        media = [tuple(m) for m in meta.get("media", [])] or (
            [(message.media_url, message.media_type)] if message.media_url else [])
        body = "" if meta.get("body_from_button") else message.body
        return cls(phone=message.phone, body=body, message_sid=message.twilio_sid or "",
                   media=media, profile_name=meta.get("profile_name"),
                   button_payload=meta.get("button_payload"),
                   button_text=meta.get("button_text"))


def handle_recorded(session: Session, settings: Settings, message: Message) -> None:
    """Handle one recorded inbound message and enqueue the answer; the caller commits.

    Called by the inbox worker (``bot.inbox``) once per message, in arrival order per sender.
    """
    use_vocabulary(settings.understanding.vocabulary)
    now = utcnow()
    inbound = Inbound.from_row(message)
    staff_user = staff.find_staff(session, inbound.phone)  # locked before the graduate
    graduate = session.scalar(
        select(Graduate).where(Graduate.phone == inbound.phone).with_for_update())
    if staff_user is not None:
        if staff.is_staff_message(staff_user, inbound.text, graduate is not None):
            log.info("message %s is a staff command of staff user %s", message.id,
                     staff_user.id)
            staff.handle_staff_message(session, settings, staff_user, inbound.text, now)
            return
        # Also a graduate, writing as one: a broadcast waiting for YA is cancelled.
        staff.cancel_pending(session, settings, staff_user, now, reason="other message")
    if graduate is not None:
        message.graduate_id, message.cohort_id = graduate.id, graduate.cohort_id
    if graduate is None:
        _from_unknown_number(session, settings, inbound, message, now)
        return
    # The 24-hour window counts from when the graduate wrote, not from when it was handled.
    if graduate.last_inbound_at is None or graduate.last_inbound_at < message.created_at:
        graduate.last_inbound_at = message.created_at
    turn = Turn(session, settings, graduate, inbound.text, now,
                session.get(Conversation, graduate.id), inbound=message)
    with turn.batched():
        _graduate_message(turn, message, message_text=inbound.text)


# Keywords after which an open check-in question is asked again (the others end the check-in,
# start one, or ask its question themselves).
_INTERRUPTIONS = {"help", "jobs", "interest", "join"}


def _graduate_message(turn: Turn, message: Message, message_text: str) -> None:
    """A graduate's message, in order: media, keywords, job interest, the open check-in
    question, the fallback. After an interruption the open question is asked again."""
    graduate = turn.graduate
    if answer_opted_out(turn):  # replies are suppressed: one hint how to come back instead
        return
    if not message_text:
        log.info("graduate %s sent %s without text (message %s)", graduate.id,
                 message.media_type or "an empty message", message.id)
        turn.say("media_please_type")
        checkin.ask_again(turn, interrupted=True)
        return
    keyword = parse_keyword(message_text)
    if turn.joining:
        _while_joining(turn, keyword)
        return
    if keyword is not None and keywords.handle_keyword(turn, keyword):
        if keyword.name in _INTERRUPTIONS:
            checkin.ask_again(turn, interrupted=True)
        return
    if graduate.can_receive and keywords.interest_without_keyword(turn):
        checkin.ask_again(turn, interrupted=True)
        return
    if turn.conversation is not None:
        if turn.conversation.flow == CHECKIN_FLOW and checkin.handle_reply(turn):
            return
        # A finished, expired or unknown conversation: forget it and answer as if none.
        turn.end_conversation()
    _fallback(turn, message)


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

