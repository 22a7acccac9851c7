"""Counting attempts per key in the database, so every web worker and dispatcher shares them.

Keys: ``ip:<address>`` and ``name:<login name>`` for console sign-ins (``bot.staff.auth``),
``join:<phone>`` for GABUNG (``bot.conversations.join``). Each key is one ``throttles`` row,
locked while it is counted (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN
IMMEDIATE`` serialises writers), so parallel attempts cannot all read the same old count.

No library fits here: Flask-Limiter (the usual choice) keeps its counters in memory, Redis,
Memcached, MongoDB or etcd, and none of those is part of an embedded or single-server
deployment; memory is per gunicorn worker, so four workers would allow four times the limit.
The counters are small, short-lived rows in the database Kabar already has.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from bot.models import Throttle


@dataclass(frozen=True)
class Backoff:
    """``free`` attempts per ``window``; each attempt beyond waits ``base`` × 2^k seconds
    (k = attempts beyond ``free``, up to ``cap``) before the next is taken. A key is forgotten
    once quiet for ``window`` after its last block ended."""

    free: int
    window: timedelta
    base: float = 1.0
    cap: timedelta = timedelta(minutes=15)

    def block_for(self, attempts: int) -> timedelta:
        beyond = attempts - self.free
        if beyond < 0:
            return timedelta(0)
        seconds = self.base * 2 ** min(beyond, 20)
        return min(timedelta(seconds=seconds), self.cap)


def locked_row(session: Session, key: str, now: datetime, window: timedelta) -> Throttle:
    """The row of ``key``, created if missing and reset when its window has passed; locked."""
    values = {"key": key, "failures": 0, "window_start": now, "blocked_until": None,
              "audited": 0}
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(pg_insert(Throttle).values(**values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite_insert(Throttle).values(**values).on_conflict_do_nothing())
    elif session.get(Throttle, key) is None:
        session.add(Throttle(**values))
        session.flush()
    row = session.scalar(select(Throttle).where(Throttle.key == key).with_for_update()
                         .execution_options(populate_existing=True))
    last = max(row.window_start, row.blocked_until or row.window_start)
    if now - last > window:
        row.failures, row.window_start, row.blocked_until, row.audited = 0, now, None, 0
    return row


def blocked_for(row: Throttle, now: datetime) -> timedelta | None:
    """How long the key is still refused, or None."""
    if row.blocked_until is not None and row.blocked_until > now:
        return row.blocked_until - now
    return None


def count_attempt(row: Throttle, now: datetime, backoff: Backoff) -> None:
    """One more attempt on ``row``; beyond the free ones the key is refused for a while."""
    row.failures += 1
    wait = backoff.block_for(row.failures)
    if wait:
        row.blocked_until = now + wait


def forget(session: Session, *keys: str) -> None:
    session.execute(delete(Throttle).where(Throttle.key.in_(keys)))


def purge(session: Session, now: datetime, older_than: timedelta) -> int:
    """Delete rows quiet for longer than ``older_than``; returns how many."""
    result = session.execute(delete(Throttle).where(
        Throttle.window_start < now - older_than,
        (Throttle.blocked_until.is_(None)) | (Throttle.blocked_until < now - older_than)))
    return result.rowcount or 0
