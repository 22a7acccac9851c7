"""Delivery tracking: Twilio's status callbacks applied to the outbound messages.

Twilio posts ``MessageSid``, ``MessageStatus`` and, on a failure, ``ErrorCode`` to
``/twilio/status`` (``bot.webhook``) each time a message moves on. The same callback may come
twice and callbacks may come out of order, so a status only ever moves a message forward:

    queued < sent < undelivered/failed < delivered < read

A failure overrides queued and sent, never delivered or read (the phone had it); a late ``sent``
never overwrites ``read``; a repeated callback changes nothing.

A callback can also arrive before the dispatcher has stored the SID on the row (the dispatcher
records the SID after Twilio answers, in its own transaction). So every callback is kept as a
``DeliveryEvent``, and ``catch_up`` (called by ``bot.outbox.mark_sent``) applies the stored
events of a SID once the row has it. On PostgreSQL both sides take a transaction-level advisory
lock on the SID, so a callback and the dispatcher recording the same SID at the same moment
cannot miss each other; on SQLite every writer is serialised already (``bot.db``).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from bot.db import advisory_key
from bot.models import (
    MSG_DELIVERED,
    MSG_FAILED,
    MSG_PENDING,
    MSG_QUEUED,
    MSG_READ,
    MSG_SENDING,
    MSG_SENT,
    MSG_SUPPRESSED,
    MSG_UNDELIVERED,
    OUTBOUND,
    DeliveryEvent,
    Message,
    utcnow,
)

log = logging.getLogger(__name__)

# How far along each status is. A callback applies only when it ranks above the row's status.
RANK = {
    MSG_PENDING: 0,
    MSG_SENDING: 0,
    MSG_QUEUED: 1,
    MSG_SENT: 2,
    MSG_UNDELIVERED: 3,
    MSG_FAILED: 3,
    MSG_DELIVERED: 4,
    MSG_READ: 5,
}
FAILURES = (MSG_UNDELIVERED, MSG_FAILED)
# Twilio's words for statuses Kabar records as queued: it has the message, nothing more yet.
TWILIO_ALIASES = {"accepted": MSG_QUEUED, "scheduled": MSG_QUEUED, "sending": MSG_QUEUED,
                  "canceled": MSG_FAILED}

# What staff should read for the error codes WhatsApp senders meet most often.
ERROR_HINTS = {
    "21610": "the recipient has unsubscribed (replied STOP)",
    "63003": "WhatsApp could not find this number",
    "63016": "outside the 24-hour window a template is needed (free-form text refused)",
    "63018": "the sender's rate limit was exceeded",
    "63024": "not a valid WhatsApp recipient",
    "63032": "WhatsApp did not deliver this message to the user",
    "63049": "Meta chose not to deliver this marketing message",
}

# Namespace of the advisory locks taken on a SID (PostgreSQL), so they meet no other lock.
_LOCK_NAMESPACE = 0x4B42  # "KB"

COUNT_KEYS = ("queued", "sent", "delivered", "read", "failed", "suppressed")
_COUNTED_AS = {
    MSG_PENDING: "queued",
    MSG_SENDING: "queued",
    MSG_QUEUED: "queued",
    MSG_SENT: "sent",
    MSG_DELIVERED: "delivered",
    MSG_READ: "read",
    MSG_UNDELIVERED: "failed",
    MSG_FAILED: "failed",
    MSG_SUPPRESSED: "suppressed",
}


def normalize_status(status: str) -> str | None:
    """Twilio's ``MessageStatus`` as a Kabar message status, or None when it is not one."""
    status = (status or "").strip().lower()
    status = TWILIO_ALIASES.get(status, status)
    return status if status in RANK and status not in (MSG_PENDING, MSG_SENDING) else None


def apply_status(session: Session, sid: str, status: str, error_code: str | None = None,
                 now: datetime | None = None) -> Message | None:
    """Record one status callback and move the message with this SID forward if it is later.

    Returns the message, or None when no outbound message has the SID yet (the event is kept
    for ``catch_up``). An unknown status raises ValueError. The caller commits.
    """
    normalized = normalize_status(status)
    if normalized is None:
        raise ValueError(f"unknown message status {status!r}")
    error_code = (error_code or "").strip() or None
    _lock_sid(session, sid)
    known = session.scalar(select(DeliveryEvent.id).where(
        DeliveryEvent.sid == sid, DeliveryEvent.status == normalized,
        DeliveryEvent.error_code.is_(None) if error_code is None
        else DeliveryEvent.error_code == error_code).limit(1))
    if known is None:
        session.add(DeliveryEvent(sid=sid, status=normalized, error_code=error_code,
                                  created_at=now or utcnow()))
        session.flush()
    message = _outbound_with_sid(session, sid)
    if message is None:
        log.info("delivery: %s %s for a SID no message has yet; kept for later", sid,
                 normalized)
        return None
    _advance(message, normalized, error_code)
    session.flush()
    return message


def catch_up(session: Session, message: Message) -> Message:
    """Apply the stored callbacks for the message's SID (those that came before the SID was
    stored). Safe to call any number of times. The caller commits."""
    if not message.twilio_sid:
        return message
    _lock_sid(session, message.twilio_sid)
    events = session.scalars(select(DeliveryEvent)
                             .where(DeliveryEvent.sid == message.twilio_sid)
                             .order_by(DeliveryEvent.id)).all()
    for event in events:
        _advance(message, event.status, event.error_code)
    if events:
        log.info("delivery: message %s caught up with %d earlier callbacks, now %s",
                 message.id, len(events), message.status)
        session.flush()
    return message


def delivery_counts(session: Session, *, broadcast_id: int | None = None,
                    round_id: int | None = None) -> dict[str, int]:
    """How a broadcast's (or a round's) messages stand: queued, sent, delivered, read, failed,
    suppressed. Waiting and in-flight rows count as queued, undelivered as failed."""
    stmt = (select(Message.status, func.count(Message.id))
            .where(Message.direction == OUTBOUND)
            .group_by(Message.status))
    if broadcast_id is not None:
        stmt = stmt.where(Message.broadcast_id == broadcast_id)
    if round_id is not None:
        stmt = stmt.where(Message.round_id == round_id)
    counts = dict.fromkeys(COUNT_KEYS, 0)
    for status, n in session.execute(stmt):
        key = _COUNTED_AS.get(status)
        if key is None:
            log.warning("delivery_counts: unexpected status %r on %d messages", status, n)
            continue
        counts[key] += n
    return counts


def describe_error(code: str | None, status: str) -> str:
    """The error message staff see for a failed delivery."""
    hint = ERROR_HINTS.get(code or "")
    if code is None:
        return f"Twilio reported {status}"
    text = f"Twilio reported {status} with error {code}"
    if hint:
        text += f": {hint}"
    return f"{text} (https://www.twilio.com/docs/errors/{code})"


# --- internals -----------------------------------------------------------------------------

def _advance(message: Message, status: str, error_code: str | None) -> bool:
    """Move ``message`` to ``status`` if that is further along; True when it changed."""
    if message.status not in RANK:  # suppressed, received: not a delivery to track
        return False
    if RANK.get(status, -1) <= RANK[message.status]:
        return False
    message.status = status
    if status in FAILURES:
        message.error_code = error_code
        message.error_message = describe_error(error_code, status)
        log.warning("delivery: message %s %s (error %s)", message.id, status, error_code)
    else:
        message.error_code = None
        message.error_message = None
    return True


def _outbound_with_sid(session: Session, sid: str) -> Message | None:
    return session.scalar(select(Message)
                          .where(Message.twilio_sid == sid, Message.direction == OUTBOUND)
                          .with_for_update())


def lock_sids(session: Session, sids: list[str]) -> None:
    """``_lock_sid`` for many SIDs in one statement (the dispatcher recording a batch)."""
    if not sids or session.get_bind().dialect.name != "postgresql":
        return
    session.execute(text("SELECT count(pg_advisory_xact_lock(:ns, k)) "
                         "FROM unnest(CAST(:keys AS integer[])) AS k"),
                    {"ns": _LOCK_NAMESPACE, "keys": [advisory_key(s) for s in sids]})


def _lock_sid(session: Session, sid: str) -> None:
    """Serialise the callbacks and the dispatcher on one SID (PostgreSQL; SQLite already is)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(select(func.pg_advisory_xact_lock(_LOCK_NAMESPACE, advisory_key(sid))))
