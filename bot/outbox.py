"""The outbox: the only way Kabar sends anything.

A message is first a row (``enqueue``, committed with the change that caused it); a dispatcher
then claims due rows, sends them through the transport and records the outcome
(``bot.dispatcher``). Because the row exists before the request, a crash never loses a message,
and the row's id is the idempotency key that keeps it from going out twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.models import (
    MSG_PENDING,
    MSG_SUPPRESSED,
    OUTBOUND,
    Graduate,
    Message,
    utcnow,
)

# Kinds a graduate did not ask for: these need an approved template outside the 24-hour window.
BUSINESS_INITIATED = ("checkin", "reminder", "job_opening", "announcement")
# Kinds that go out even to an opted-out graduate (the confirmation of the opt-out itself).
ALWAYS_SENT = ("optout_confirm",)


def enqueue(
    session: Session,
    *,
    graduate: Graduate | None = None,
    phone: str | None = None,
    kind: str,
    body: str,
    dedupe_key: str | None = None,
    round_id: int | None = None,
    broadcast_id: int | None = None,
    content_variables: dict[str, Any] | None = None,
    not_before: datetime | None = None,
) -> Message | None:
    """Record one outbound message; return it, or None when ``dedupe_key`` was already used.

    A graduate who opted out gets a SUPPRESSED row (visible to staff, never sent), except for
    the kinds in ALWAYS_SENT.
    """
    if graduate is None and phone is None:
        raise ValueError("enqueue needs a graduate or a phone number")
    if dedupe_key is not None and session.scalar(
            select(Message.id).where(Message.dedupe_key == dedupe_key)) is not None:
        return None
    suppressed = graduate is not None and not graduate.can_receive and kind not in ALWAYS_SENT
    message = Message(
        direction=OUTBOUND,
        graduate_id=graduate.id if graduate else None,
        cohort_id=graduate.cohort_id if graduate else None,
        phone=graduate.phone if graduate else phone,
        kind=kind,
        body=body,
        content_variables=content_variables,
        dedupe_key=dedupe_key,
        status=MSG_SUPPRESSED if suppressed else MSG_PENDING,
        round_id=round_id,
        broadcast_id=broadcast_id,
        next_attempt_at=not_before or utcnow(),
    )
    if dedupe_key is None:
        session.add(message)
        session.flush()
        return message
    try:
        with session.begin_nested():
            session.add(message)
    except IntegrityError:
        # Another process enqueued the same purpose between our check and our insert.
        return None
    return message
