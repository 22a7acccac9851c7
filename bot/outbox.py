"""The outbox: the only way Kabar sends anything.

A message is first a row (``enqueue``, committed with the change that caused it); a dispatcher
then claims due rows, sends them through the transport and records the outcome
(``bot.dispatcher``). Because the row exists before the request, a crash never loses a message,
and the row's id is the idempotency key that keeps it from going out twice.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.delivery import catch_up, lock_sids
from bot.models import (
    MSG_FAILED,
    MSG_PENDING,
    MSG_SENDING,
    MSG_SUPPRESSED,
    OUTBOUND,
    DeliveryEvent,
    Graduate,
    Message,
    utcnow,
)
from bot.transports import TransportError

log = logging.getLogger(__name__)

_messages = Message.__table__

# Kinds a graduate did not ask for: these need an approved template outside the 24-hour window.
BUSINESS_INITIATED = ("checkin", "reminder", "job_opening", "announcement")
# Kinds that go out even to an opted-out graduate: the confirmation of the opt-out itself, and
# the answer to an opted-out graduate who writes: how to come back (bot.conversations.optedout).
ALWAYS_SENT = ("optout_confirm", "optout_reminder")


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


# --- dispatching ------------------------------------------------------------------------------
#
# A dispatcher claims due rows (PENDING → SENDING, committed before any request), sends each and
# records the outcome in its own short transaction: mark_sent, mark_retry or mark_failed.
#
# A row whose outcome is unknown is never simply sent again: the provider may have it. That is
# a row left SENDING past its lease (the dispatcher died between the request and recording the
# answer), or one whose request may have reached the provider without an answer coming back
# (``mark_unknown``: SENDING, no dispatcher, ``claimed_at`` kept as the time of that attempt).
# A dispatcher claims such rows with ``claim_unsettled`` and asks the provider
# (``Transport.find_sent``) for a message to that recipient since ``claimed_at``: found, the row
# is marked sent with that SID (``mark_sent``); not found, it goes back to the outbox as a retry
# (``mark_not_sent``); the provider cannot be asked, it waits and is asked again
# (``defer_unsettled``).

# Default of ``dispatch.claim_lease_seconds``: how long a row may stay SENDING before it is
# considered abandoned by a crashed dispatcher and checked against the provider. Longer than a
# claimed batch plus one request can take (the Twilio transport times out after 10 s).
SENDING_LEASE = timedelta(seconds=120)
# Retry backoff: 2 s, 4 s, 8 s ... capped at 10 minutes, with jitter (see backoff_delay).
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_FACTOR = 2.0
BACKOFF_CAP_SECONDS = 600.0
DEFAULT_MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class ClaimedGraduate:
    last_inbound_at: datetime | None


@dataclass(frozen=True)
class ClaimedRow:
    """What a claimed outbox row needs to be sent (``bot.transports.request_for`` reads it as it
    reads a ``Message``), without loading ORM objects."""

    id: int
    phone: str
    kind: str
    body: str
    content_sid: str | None
    content_variables: dict[str, Any] | None
    graduate_id: int | None
    graduate: ClaimedGraduate | None


def claim_due(session: Session, limit: int, worker_id: str, now: datetime) -> list[ClaimedRow]:
    """Claim up to ``limit`` due outbox rows for ``worker_id`` and commit; return them by id.

    Due means PENDING with ``next_attempt_at`` at or before ``now``. Claimed rows become SENDING
    with ``claimed_at``/``claimed_by`` set and one more attempt counted, and the claim is
    committed before the caller sends anything, so no other dispatcher can take the same row:
    PostgreSQL skips rows another claim has locked (``FOR UPDATE SKIP LOCKED``), and SQLite
    serialises writers (``BEGIN IMMEDIATE``, see ``bot.db``).

    A row whose graduate has opted out (or was deactivated) since it was enqueued becomes
    SUPPRESSED instead of being claimed, unless its kind is in ALWAYS_SENT.

    Core statements (one read with the graduates' windows, one UPDATE for the claimed rows):
    this runs for every batch a dispatcher sends and must cost little.
    """
    m, g = _messages, Graduate.__table__
    stmt = (select(m.c.id, m.c.phone, m.c.kind, m.c.body, m.c.content_sid,
                   m.c.content_variables, m.c.graduate_id, g.c.last_inbound_at,
                   g.c.opted_out, g.c.active)
            .select_from(m.outerjoin(g, g.c.id == m.c.graduate_id))
            .where(m.c.status == MSG_PENDING,
                   or_(m.c.next_attempt_at.is_(None), m.c.next_attempt_at <= now))
            .order_by(m.c.id)
            .limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=m)
    claimed: list[ClaimedRow] = []
    while not claimed:
        rows = session.execute(stmt).all()
        if not rows:
            break
        suppressed = []
        for row in rows:
            if (row.graduate_id is not None and row.kind not in ALWAYS_SENT
                    and (row.opted_out or not row.active)):
                suppressed.append(row.id)
                log.info("outbox: message %s to graduate %s suppressed (opted out or "
                         "inactive)", row.id, row.graduate_id)
                continue
            claimed.append(ClaimedRow(
                id=row.id, phone=row.phone, kind=row.kind, body=row.body,
                content_sid=row.content_sid, content_variables=row.content_variables,
                graduate_id=row.graduate_id,
                graduate=(ClaimedGraduate(row.last_inbound_at) if row.graduate_id is not None
                          else None)))
        if suppressed:  # a batch of only these: read the next one
            session.execute(update(m).where(m.c.id.in_(suppressed))
                            .values(status=MSG_SUPPRESSED))
    if claimed:
        session.execute(update(m).where(m.c.id.in_([r.id for r in claimed]))
                        .values(status=MSG_SENDING, claimed_at=now, claimed_by=worker_id,
                                attempts=func.coalesce(m.c.attempts, 0) + 1))
    session.commit()
    return claimed


def _unreachable_graduates(session: Session, graduate_ids: set[int]) -> set[int]:
    if not graduate_ids:
        return set()
    return set(session.scalars(
        select(Graduate.id).where(Graduate.id.in_(graduate_ids),
                                  or_(Graduate.opted_out.is_(True), Graduate.active.is_(False)))))


def mark_sent(session: Session, message_id: int, sid: str, status: str, *,
              content_sid: str | None = None, now: datetime | None = None) -> Message:
    """Record that the provider accepted the message: its SID, its status and when.

    ``content_sid`` records which template went out when the row did not name one itself.
    Status callbacks that arrived before the SID was stored are applied now
    (``bot.delivery.catch_up``). The caller commits.
    """
    message = _get(session, message_id)
    if message.status != MSG_SENDING:
        log.warning("outbox: message %s was %s, not sending, when its send succeeded (sid %s)",
                    message_id, message.status, sid)
    message.twilio_sid = sid
    message.status = status
    message.sent_at = now or utcnow()
    message.next_attempt_at = None
    message.error_code = None
    message.error_message = None
    if content_sid and not message.content_sid:
        message.content_sid = content_sid
    session.flush()
    catch_up(session, message)
    return message


_RECORD_SENT = (update(_messages)
                .where(_messages.c.id == bindparam("b_id"))
                .values(twilio_sid=bindparam("b_sid"), status=bindparam("b_status"),
                        sent_at=bindparam("b_at"), next_attempt_at=None, error_code=None,
                        error_message=None,
                        content_sid=func.coalesce(_messages.c.content_sid, bindparam("b_csid"))))


def mark_sent_many(session: Session, sent: list[tuple[int, str, str, str | None, datetime]]
                   ) -> None:
    """``mark_sent`` for many rows at once: (message id, SID, status, content SID, when) each.

    One UPDATE per row sent as one batch (no ORM rows are loaded), then the callbacks that came
    before their SIDs were stored are applied to the few rows that have any. The caller
    commits; the whole batch is one transaction.
    """
    if not sent:
        return
    sids = [sid for _, sid, _, _, _ in sent]
    lock_sids(session, sids)
    session.execute(_RECORD_SENT, [{"b_id": mid, "b_sid": sid, "b_status": status,
                                    "b_csid": csid, "b_at": at}
                                   for mid, sid, status, csid, at in sent])
    early = set(session.scalars(select(DeliveryEvent.sid).where(DeliveryEvent.sid.in_(sids))
                                .distinct()))
    for message_id, sid, *_ in sent:
        if sid in early:
            catch_up(session, _get(session, message_id))


def backoff_delay(attempts: int, rand: Callable[[], float] = random.random) -> timedelta:
    """Wait before the next try after ``attempts`` tries: 2 s × 2^(attempts-1), at most 10 min.

    With "equal jitter": half the delay is fixed and half random, so many messages failing at
    once (a 429 burst) do not all come back in the same second.
    """
    delay = min(BACKOFF_CAP_SECONDS,
                BACKOFF_BASE_SECONDS * BACKOFF_FACTOR ** max(0, attempts - 1))
    return timedelta(seconds=delay / 2 + rand() * delay / 2)


def mark_retry(session: Session, message_id: int, error: TransportError | Exception,
               now: datetime, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS,
               rand: Callable[[], float] = random.random) -> Message:
    """Put a message whose send failed for a passing reason back in the outbox, or give up.

    It becomes PENDING again with ``next_attempt_at`` after the backoff, keeping the last error
    on the row; once it has had ``max_attempts`` tries it becomes FAILED instead. The caller
    commits.
    """
    message = _get(session, message_id)
    code, reason = _error_parts(error)
    if message.attempts >= max_attempts:
        return mark_failed(session, message_id, code,
                           f"gave up after {message.attempts} attempts: {reason}")
    message.status = MSG_PENDING
    message.next_attempt_at = now + backoff_delay(message.attempts, rand)
    message.error_code = code
    message.error_message = reason
    message.claimed_at = None
    message.claimed_by = None
    session.flush()
    return message


def mark_failed(session: Session, message_id: int, code: str | None, reason: str) -> Message:
    """Record a permanent failure with the provider's error code, for staff. The caller commits."""
    message = _get(session, message_id)
    message.status = MSG_FAILED
    message.error_code = code
    message.error_message = reason
    message.next_attempt_at = None
    message.claimed_at = None
    message.claimed_by = None
    session.flush()
    return message


def release_claims(session: Session, message_ids: list[int]) -> int:
    """Give back claimed rows that were never sent (a dispatcher stopping mid-batch).

    They return to PENDING, due at once, and the attempt counted by the claim is taken back.
    Only rows still SENDING are touched. The caller commits; returns how many were released.
    """
    released = 0
    for message_id in message_ids:
        message = session.get(Message, message_id)
        if message is None or message.status != MSG_SENDING:
            continue
        message.status = MSG_PENDING
        message.attempts = max(0, message.attempts - 1)
        message.claimed_at = None
        message.claimed_by = None
        released += 1
    session.flush()
    return released


def mark_unknown(session: Session, message_id: int, error: TransportError | Exception,
                 now: datetime, *, rand: Callable[[], float] = random.random) -> Message:
    """Record a send whose outcome is unknown: the request may have reached the provider.

    The row stays SENDING but no dispatcher holds it (``claimed_by`` empty), ``claimed_at``
    stays the time of the attempt, and ``next_attempt_at`` is set after the usual backoff: from
    then on ``claim_unsettled`` hands it to a dispatcher that asks the provider before anything
    is sent again. The error is kept on the row. No attempt limit applies here: the message may
    be out already. The caller commits.
    """
    message = _get(session, message_id)
    if message.status != MSG_SENDING:
        log.warning("outbox: message %s was %s, not sending, when its outcome became unknown",
                    message_id, message.status)
        return message
    code, reason = _error_parts(error)
    message.next_attempt_at = now + backoff_delay(message.attempts, rand)
    message.error_code = code
    message.error_message = reason
    message.claimed_by = None
    session.flush()
    return message


def claim_unsettled(session: Session, limit: int, worker_id: str, now: datetime, *,
                    lease: timedelta = SENDING_LEASE) -> list[Message]:
    """Claim up to ``limit`` rows whose outcome is unknown, to ask the provider; commit.

    Those are SENDING rows due (``next_attempt_at`` passed) that no dispatcher holds: marked
    unknown (``mark_unknown``), or claimed more than ``lease`` ago by a dispatcher that never
    recorded an outcome. The claim sets ``claimed_by`` and holds the row for another ``lease``
    (through ``next_attempt_at``) while ``claimed_at`` keeps the time of the attempt in doubt,
    which is where the provider is searched from; a dispatcher that dies while asking leaves
    the row to be claimed again after that. PostgreSQL skips rows another claim holds
    (``FOR UPDATE SKIP LOCKED``); SQLite serialises writers.
    """
    stmt = (select(Message)
            .where(Message.status == MSG_SENDING,
                   or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= now),
                   or_(Message.claimed_by.is_(None), Message.claimed_at.is_(None),
                       Message.claimed_at < now - lease))
            .order_by(Message.id)
            .limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    rows = list(session.scalars(stmt))
    for message in rows:
        if message.claimed_by is not None:
            log.warning("outbox: message %s was left sending by %s since %s; checking with "
                        "the provider before sending it again", message.id, message.claimed_by,
                        message.claimed_at)
        if message.claimed_at is None:
            message.claimed_at = message.created_at
        message.claimed_by = worker_id
        message.next_attempt_at = now + lease
    session.commit()
    return rows


def recorded_sids(session: Session, phone: str, *, except_id: int | None = None) -> set[str]:
    """Provider SIDs already stored on outbound rows to ``phone`` (other than ``except_id``)."""
    stmt = select(Message.twilio_sid).where(Message.direction == OUTBOUND,
                                            Message.phone == phone,
                                            Message.twilio_sid.is_not(None))
    if except_id is not None:
        stmt = stmt.where(Message.id != except_id)
    return set(session.scalars(stmt))


def mark_not_sent(session: Session, message_id: int, now: datetime, *,
                  max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> Message:
    """The provider has no record of an unsettled row: back to the outbox, due now, as a retry.

    Its next claim counts another attempt; once it has had ``max_attempts`` it fails instead,
    keeping the last error. The caller commits.
    """
    message = _get(session, message_id)
    if message.status != MSG_SENDING:
        log.warning("outbox: message %s was %s, not sending, when it was found unsent",
                    message_id, message.status)
        return message
    reason = message.error_message or "no answer recorded"
    if message.attempts >= max_attempts:
        return mark_failed(session, message_id, message.error_code,
                           f"gave up after {message.attempts} attempts: {reason}")
    log.info("outbox: message %s is not at the provider; back in the outbox (attempt %d of %d "
             "done)", message_id, message.attempts, max_attempts)
    message.status = MSG_PENDING
    message.next_attempt_at = now
    message.claimed_at = None
    message.claimed_by = None
    session.flush()
    return message


def defer_unsettled(session: Session, message_id: int, now: datetime, *,
                    delay: timedelta | None = None,
                    rand: Callable[[], float] = random.random) -> Message:
    """An unsettled row stays unsettled: ask the provider again after ``delay``.

    For when the provider could not be asked (by default the usual backoff) or a dispatcher
    stops before asking (``delay`` 0). The row stays SENDING with its ``claimed_at``, free for
    any dispatcher once due. The caller commits.
    """
    message = _get(session, message_id)
    if message.status != MSG_SENDING:
        return message
    if delay is None:
        delay = backoff_delay(message.attempts, rand)
    message.next_attempt_at = now + delay
    message.claimed_by = None
    session.flush()
    return message


def _get(session: Session, message_id: int) -> Message:
    message = session.get(Message, message_id)
    if message is None:
        raise LookupError(f"outbox message {message_id} does not exist")
    return message


def _error_parts(error: TransportError | Exception) -> tuple[str | None, str]:
    if isinstance(error, TransportError):
        return error.code, error.message
    return None, f"{error.__class__.__name__}: {error}"
