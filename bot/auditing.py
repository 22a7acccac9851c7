"""Audit entries for downloads, written in their own short write transaction.

A download (reply-log export, shortlist, ``kabar export``) reads in a read session: on SQLite
that is a plain ``BEGIN`` which takes no writer lock, so it runs beside the bot's writers. Had
it then added its audit entry in the same transaction, SQLite would have to upgrade the read to
a write, and it refuses that at once ("database is locked", no busy wait) whenever another
process wrote in between. So the entry is written after the read, in a transaction of its own
that starts with ``BEGIN IMMEDIATE`` (it queues on the busy timeout) and is retried a few
times with a growing pause when the database stays busy.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy.exc import OperationalError

from bot.db import Database
from bot.models import audit

log = logging.getLogger(__name__)

ATTEMPTS = 5
FIRST_PAUSE = 0.2  # seconds; doubles on each retry


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "database is locked/busy" (or PostgreSQL's lock timeout)."""
    text = str(getattr(exc, "orig", exc)).lower()
    return ("database is locked" in text or "database is busy" in text
            or "lock timeout" in text or "could not obtain lock" in text)


def record(db: Database, actor: str, action: str, **detail: Any) -> None:
    """Write one audit entry in its own transaction, retried while the database is busy."""
    pause = FIRST_PAUSE
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with db.session() as session:
                audit(session, actor, action, **detail)
            return
        except OperationalError as exc:
            if not is_busy(exc) or attempt == ATTEMPTS:
                raise
            log.warning("audit %s: the database is busy; trying again (%d of %d)", action,
                        attempt + 1, ATTEMPTS)
            time.sleep(pause)
            pause *= 2
