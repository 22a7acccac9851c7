"""The inbox: every incoming message is a row first, then handled by a worker.

The webhook only checks the signature and records the message (one ``INSERT … ON CONFLICT DO
NOTHING`` on the Twilio SID, so a repeated delivery is stored once) and answers at once. The
dispatcher loop (``kabar dispatch``, or the one inside ``kabar scheduler`` or ``kabar demo``)
then handles recorded messages in arrival order: conversation step, progress report, replies
into the outbox, all in one transaction per message. This is the shape of RapidPro's courier
and mailroom: the web tier never loses a message to a slow or failing handler, and it scales
apart from the work.

Inbound lifecycle::

    RECEIVED (recorded, waiting) > HANDLED
                                 \\> (error: retried after a pause) > ERROR (kept for staff)

Messages of one sender are handled one at a time and in order: a message is skipped while an
earlier one of the same number is still waiting, and on PostgreSQL a transaction-scoped
advisory lock on the number keeps two workers apart.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Engine, exists, func, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.config import Settings
from bot.db import Database, advisory_key
from bot.models import INBOUND, MSG_ERROR, MSG_HANDLED, MSG_RECEIVED, Message, utcnow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
RETRY_AFTER = timedelta(seconds=5)


def record_inbound(connection, values: dict[str, Any]) -> bool:
    """Insert one inbound message row; False when its Twilio SID was already recorded."""
    now = utcnow()
    row = {**_ROW_DEFAULTS, "created_at": now, "updated_at": now, "next_attempt_at": now,
           **values}
    return connection.execute(_insert_statement(connection.dialect.name), row).rowcount == 1


_ROW_DEFAULTS = {"direction": INBOUND, "status": MSG_RECEIVED, "kind": "inbound",
                 "attempts": 0, "graduate_id": None, "cohort_id": None, "meta": None,
                 "media_url": None, "media_type": None}


@cache
def _insert_statement(dialect: str):
    """One statement per dialect, built once (this runs for every incoming message)."""
    table = Message.__table__
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    return insert.on_conflict_do_nothing(index_elements=[table.c.twilio_sid])


def waiting_ids(session: Session, now: datetime, limit: int) -> list[int]:
    """Ids of recorded messages due for handling, oldest first."""
    return list(session.scalars(
        select(Message.id).where(Message.status == MSG_RECEIVED,
                                 Message.direction == INBOUND,
                                 or_(Message.next_attempt_at.is_(None),
                                     Message.next_attempt_at <= now))
        .order_by(Message.id).limit(limit)))


def handle_waiting(db: Database, settings: Settings, limit: int = 200,
                   clock=utcnow) -> int:
    """Handle up to ``limit`` waiting inbound messages; return how many were handled."""
    from bot.conversations.router import handle_recorded

    now = clock()
    with db.read_session() as session:
        ids = waiting_ids(session, now, limit)
    handled = 0
    for message_id in ids:
        try:
            with db.session() as session:
                message = _take(session, message_id)
                if message is None:
                    continue
                handle_recorded(session, settings, message)
                message.status = MSG_HANDLED
                handled += 1
        except Exception as exc:  # the handler failed: keep the message, retry, then park it
            log.exception("inbound message %s could not be handled", message_id)
            _record_failure(db, message_id, exc, clock())
    return handled


def _take(session: Session, message_id: int) -> Message | None:
    """Lock the message for handling, or None if another worker has it or must go first."""
    query = select(Message).where(Message.id == message_id, Message.status == MSG_RECEIVED)
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        query = query.with_for_update(skip_locked=True)
    message = session.scalar(query)
    if message is None:
        return None
    if postgres and not session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"),
                                       {"k": advisory_key(message.phone)}):
        return None
    earlier = session.scalar(select(exists().where(
        Message.phone == message.phone, Message.direction == INBOUND,
        Message.status == MSG_RECEIVED, Message.id < message.id)))
    return None if earlier else message


def _record_failure(db: Database, message_id: int, exc: Exception, now: datetime) -> None:
    with db.session() as session:
        message = session.get(Message, message_id)
        if message is None or message.status != MSG_RECEIVED:
            return
        message.attempts += 1
        message.error_message = f"{type(exc).__name__}: {exc}"[:1000]
        if message.attempts >= MAX_ATTEMPTS:
            message.status = MSG_ERROR
        else:
            pause = RETRY_AFTER * (2 ** (message.attempts - 1))
            message.next_attempt_at = now + pause * (1 + random.random() / 2)


def backlog(engine: Engine) -> int:
    """How many inbound messages wait to be handled (for health checks and benchmarks)."""
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(Message).where(
            Message.status == MSG_RECEIVED, Message.direction == INBOUND))
