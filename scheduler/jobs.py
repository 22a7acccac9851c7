"""The scheduler's job functions.

The job store pickles a reference to each function ("scheduler.jobs:run_checkin") and its
plain arguments, so they live at module level and take nothing that cannot be pickled: the
settings and the database come from ``configure`` (called by ``scheduler.service``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.config import Settings
from bot.db import Database
from bot.models import utcnow

log = logging.getLogger(__name__)


@dataclass
class JobContext:
    settings: Settings
    db: Database
    scheduler: Any = None  # the running scheduler, for run_reconcile
    clock: Callable[[], datetime] = utcnow


_context: JobContext | None = None


def configure(settings: Settings, db: Database, scheduler: Any = None,
              clock: Callable[[], datetime] = utcnow) -> None:
    """Give the job functions their settings, database, scheduler and clock."""
    global _context
    _context = JobContext(settings=settings, db=db, scheduler=scheduler, clock=clock)


def reset() -> None:
    """Forget the context (tests)."""
    global _context
    _context = None


def context() -> JobContext:
    if _context is None:
        raise RuntimeError("scheduler.jobs.configure(settings, db) was not called")
    return _context


def run_checkin(cohort_id: int, at: datetime | None = None) -> int:
    """Start the cohort's round for its latest fire time; the number of prompts (0 if it ran).

    The round is stamped with the fire time, not the run time, so a duplicate or late run of
    the same fire time finds the round already there and sends nothing. ``at``: the fire time
    as of that moment instead of now (a run a dead scheduler left unfinished, run again).
    """
    from bot.checkins import latest_fire_time, open_round, round_label
    from bot.models import Cohort

    ctx = context()
    now = ctx.clock()
    with ctx.db.session() as session:
        cohort = session.get(Cohort, cohort_id)
        if cohort is None or not cohort.active:
            log.info("cohort %s is gone or inactive: no round (its job is removed at the next "
                     "reconcile)", cohort_id)
            return 0
        cron = cohort.checkin_schedule or ctx.settings.scheduler.default_checkin
        scheduled_for = latest_fire_time(cron, cohort.timezone, at or now)
        started = open_round(session, ctx.settings, cohort, scheduled_for, trigger="schedule",
                             now=now)
        if started is None:
            log.info("%s: the round for %s already exists, nothing sent", cohort.name,
                     f"{scheduled_for:%Y-%m-%d %H:%M %Z}")
            return 0
        log.info("%s", round_label(started))
        return started.prompts


def run_reminders() -> int:
    """Remind graduates who have not answered an open check-in."""
    from bot.checkins import send_reminders

    ctx = context()
    with ctx.db.session() as session:
        count = send_reminders(session, ctx.settings, ctx.clock())
    if count:
        log.info("%d check-in reminders queued", count)
    return count


def run_expiry() -> int:
    """Close check-ins nobody finished in time."""
    from bot.checkins import expire_checkins

    ctx = context()
    with ctx.db.session() as session:
        count = expire_checkins(session, ctx.settings, ctx.clock())
    if count:
        log.info("%d open check-ins expired", count)
    return count


def run_retention() -> dict[str, int]:
    """Apply the ``[privacy]`` retention settings (old message bodies, unknown numbers)."""
    from bot.privacy import apply_retention

    ctx = context()
    with ctx.db.session() as session:
        done = apply_retention(session, ctx.settings, ctx.clock())
    if any(done.values()):
        log.info("privacy retention: %d message bodies emptied, %d messages from unknown "
                 "numbers deleted", done["bodies_emptied"], done["unknown_deleted"])
    return done


def run_reconcile() -> None:
    """Bring the cohort jobs in line with the cohorts table."""
    from scheduler.service import reconcile_jobs

    ctx = context()
    if ctx.scheduler is None:
        raise RuntimeError("run_reconcile needs the scheduler: configure(..., scheduler=...)")
    reconcile_jobs(ctx.scheduler, ctx.settings, ctx.db)
