"""The sending rate of the whole deployment, shared by every dispatcher through the database.

``dispatch.rate_per_second`` is what Twilio allows the sender (about 80 a second for a WhatsApp
sender), so it is a limit for all dispatchers together, however many run. One row of
``dispatch_budget`` holds ``next_slot``: the first moment (seconds since the epoch) not yet
reserved by any dispatcher. A dispatcher reserves a block of k send slots with one atomic
statement::

    UPDATE dispatch_budget SET next_slot = max(next_slot, now) + k / rate RETURNING next_slot

(``greatest()`` on PostgreSQL), and owns the slots ``start + i / rate`` (i < k) of the block that
ends at the returned value: no other dispatcher can have them. It sends each message no earlier
than its slot. Blocks are small (at most ``dispatch.concurrency`` slots and at most one second's
worth), so several dispatchers interleave fairly and an idle one holds nothing back.

A 429 from Twilio (``pause``) moves ``next_slot`` to after Twilio's ``Retry-After`` (one second
when Twilio names none): every dispatcher's next block starts after it, so all of them pause.
Slots already handed out before the pause are at most one block per dispatcher.

Slot times are wall-clock seconds, the same in every process of a machine; dispatchers on
several machines need their clocks kept in step (NTP does it), or the rate is off by the skew
for the length of one block.

The clock is injectable (``clock``) so tests can pace on a fake clock.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.db import Database
from bot.models import DispatchBudget

log = logging.getLogger(__name__)

BUDGET_ID = 1
# Pause after a 429 whose answer names no Retry-After.
DEFAULT_RETRY_AFTER = 1.0
# A block is at most this many seconds of sending, so dispatchers interleave.
BLOCK_SECONDS = 1.0
# Slots that passed longer ago than this are dropped instead of sent at once in a burst (a
# dispatcher that was held up, e.g. waiting for a claim, comes back with stale slots).
STALE_SLOT_SECONDS = 0.25

_table = DispatchBudget.__table__


def _greatest(dialect: str, a, b):
    return func.greatest(a, b) if dialect == "postgresql" else func.max(a, b)


class Budget:
    """The shared budget of send slots; one per dispatcher, all on the same row."""

    def __init__(self, db: Database, rate: float, *,
                 clock: Callable[[], float] = time.time) -> None:
        if rate <= 0:
            raise ValueError("rate must be above 0")
        self.db = db
        self.rate = rate
        self.clock = clock

    def reserve(self, k: int) -> float:
        """Reserve ``k`` consecutive slots; return the time of the first (the others follow
        every 1/rate seconds)."""
        span = k / self.rate
        now = self.clock()
        with self.db.session() as session:
            dialect = session.get_bind().dialect.name
            stmt = (update(_table).where(_table.c.id == BUDGET_ID)
                    .values(next_slot=_greatest(dialect, _table.c.next_slot, now) + span)
                    .returning(_table.c.next_slot))
            end = session.execute(stmt).scalar()
            if end is None:
                self._create(session, dialect)
                end = session.execute(stmt).scalar_one()
        return end - span

    def pause(self, seconds: float | None) -> float:
        """Nobody sends before ``seconds`` from now (a 429's Retry-After); return that time."""
        until = self.clock() + (DEFAULT_RETRY_AFTER if seconds is None else max(0.0, seconds))
        with self.db.session() as session:
            dialect = session.get_bind().dialect.name
            stmt = (update(_table).where(_table.c.id == BUDGET_ID)
                    .values(next_slot=_greatest(dialect, _table.c.next_slot, until))
                    .returning(_table.c.next_slot))
            if session.execute(stmt).scalar() is None:
                self._create(session, dialect)
                session.execute(stmt)
        log.warning("sending paused for every dispatcher until %.1f s from now (Twilio asked "
                    "to slow down)", until - self.clock())
        return until

    def next_slot(self) -> float | None:
        """The first slot nobody has reserved yet (None before the first reservation)."""
        with self.db.session() as session:
            return session.scalar(select(_table.c.next_slot).where(_table.c.id == BUDGET_ID))

    @staticmethod
    def _create(session, dialect: str) -> None:
        values = {"id": BUDGET_ID, "next_slot": 0.0}
        if dialect == "postgresql":
            session.execute(pg_insert(_table).values(**values).on_conflict_do_nothing())
        else:
            session.execute(sqlite_insert(_table).values(**values).on_conflict_do_nothing())


def block_size(rate: float, concurrency: int) -> int:
    """Slots reserved at a time: no more than the requests in flight, nor a second's worth."""
    return max(1, min(concurrency, math.ceil(rate * BLOCK_SECONDS)))


class SlotTaker:
    """One dispatcher's view of the budget: hands out its reserved slots one at a time.

    Used by the one thread that submits sends. ``take`` returns the time the next send may
    start; ``invalidate`` drops what is left of the block (after a pause).
    """

    def __init__(self, budget: Budget, block: int) -> None:
        self.budget = budget
        self.block = block
        self._start = 0.0
        self._next = 0
        self._left = 0

    def take(self) -> float:
        interval = 1.0 / self.budget.rate
        while True:
            if self._left <= 0:
                self._start = self.budget.reserve(self.block)
                self._next = 0
                self._left = self.block
            slot = self._start + self._next * interval
            self._next += 1
            self._left -= 1
            if slot >= self.budget.clock() - STALE_SLOT_SECONDS:
                return slot
            # Held up past this slot: drop the rest of the block rather than burst.
            self._left = 0

    def invalidate(self) -> None:
        self._left = 0
