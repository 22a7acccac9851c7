"""Build the scheduler, keep its jobs in step with the cohorts table, run it.

Jobs live in the ``apscheduler_jobs`` table of Kabar's database (a persistent SQLAlchemy job
store), so a restart keeps each cohort's next fire time and a fire time missed while the process
was down runs once (coalesced) when it comes back, within the misfire grace time. A round is
stamped with its fire time and unique per cohort, so a duplicate run sends nothing.

Jobs:

- ``checkin:<cohort id>``: the cohort's cron schedule in the cohort's time zone;
- ``kabar:reconcile``: re-read the cohorts table every ``scheduler.reconcile_every_seconds``;
- ``kabar:reminders`` and ``kabar:expiry``: every 10 minutes.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED, BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select

from bot.config import Settings
from bot.db import Database
from bot.models import Cohort
from bot.schedules import cron_trigger
from scheduler import jobs

log = logging.getLogger(__name__)

JOBSTORE_TABLE = "apscheduler_jobs"
CHECKIN_PREFIX = "checkin:"
RECONCILE_JOB = "kabar:reconcile"
REMINDERS_JOB = "kabar:reminders"
EXPIRY_JOB = "kabar:expiry"
RETENTION_JOB = "kabar:retention"  # bot.privacy.apply_retention, once a day
HOUSEKEEPING_EVERY = timedelta(minutes=10)
# A missed round still runs this late (once, coalesced): at least 6 hours, and up to the
# check-in expiry, after which the round would be closed before anyone could answer.
MIN_CHECKIN_GRACE = timedelta(hours=6)


def checkin_job_id(cohort_id: int) -> str:
    return f"{CHECKIN_PREFIX}{cohort_id}"


def checkin_grace_seconds(settings: Settings) -> int:
    expiry = timedelta(days=settings.scheduler.checkin_expires_after_days)
    return int(max(MIN_CHECKIN_GRACE, expiry).total_seconds())


def build_scheduler(settings: Settings, db: Database,
                    scheduler_cls: type[BaseScheduler] = BlockingScheduler,
                    tablename: str = JOBSTORE_TABLE) -> BaseScheduler:
    """A scheduler whose jobs persist in Kabar's database (not started, no jobs added)."""
    return scheduler_cls(
        jobstores={"default": SQLAlchemyJobStore(engine=db.engine, tablename=tablename)},
        executors={"default": ThreadPoolExecutor(max_workers=4)},
        job_defaults={"coalesce": True, "max_instances": 1,
                      "misfire_grace_time": checkin_grace_seconds(settings)},
        timezone=settings.app.timezone,
    )


# --- reconciling ----------------------------------------------------------------------------

def reconcile_jobs(scheduler: BaseScheduler, settings: Settings, db: Database) -> dict[str, int]:
    """Make the scheduler's jobs match the cohorts table; the counts of what changed.

    One cron job per active cohort: added when missing, rescheduled only when its cron
    expression or time zone changed (rescheduling resets the next run time, which would lose a
    missed run), renamed in place, removed for deleted or inactive cohorts. The fixed jobs
    (reconcile, reminders, expiry) are added when missing. The scheduler must be started.
    """
    if scheduler.state == STATE_STOPPED:
        # Before start() the stored jobs are invisible; re-adding them would make start() fail
        # (or, replaced, lose a missed run).
        raise RuntimeError("reconcile_jobs needs a started scheduler: call "
                           "scheduler.start(paused=True) first, then resume()")
    counts = {"added": 0, "rescheduled": 0, "removed": 0}
    with db.session() as session:
        cohorts = [(c.id, c.name, c.checkin_schedule or settings.scheduler.default_checkin,
                    c.timezone or settings.app.timezone)
                   for c in session.scalars(select(Cohort).where(Cohort.active.is_(True)))]
    existing: dict[str, Job] = {job.id: job for job in scheduler.get_jobs()}
    grace = checkin_grace_seconds(settings)
    wanted: set[str] = set()
    for cohort_id, name, cron, zone in cohorts:
        job_id = checkin_job_id(cohort_id)
        wanted.add(job_id)
        try:
            trigger = cron_trigger(cron, zone)
        except (ValueError, LookupError) as exc:
            log.error("cohort %s (%s): check-in schedule %r is not usable (%s); "
                      "its job is left as it was", cohort_id, name, cron, exc)
            continue
        label = f"check-in {name}"
        change = _ensure_job(scheduler, existing.get(job_id), job_id, jobs.run_checkin,
                             trigger, label, args=[cohort_id], misfire_grace_time=grace)
        if change:
            counts[change] += 1
            log.info("%s: %s job %s (%s, %s)", name, change, job_id, cron, zone)
    for job_id in existing:
        if job_id.startswith(CHECKIN_PREFIX) and job_id not in wanted:
            try:
                scheduler.remove_job(job_id)
            except JobLookupError:
                continue  # another scheduler removed it first
            counts["removed"] += 1
            log.info("removed job %s: its cohort is gone or inactive", job_id)
    _ensure_fixed_jobs(scheduler, settings, existing)
    return counts


def _ensure_fixed_jobs(scheduler: BaseScheduler, settings: Settings,
                       existing: dict[str, Job]) -> None:
    every = settings.scheduler.reconcile_every_seconds
    fixed: list[tuple[str, Callable, timedelta, str]] = [
        (REMINDERS_JOB, jobs.run_reminders, HOUSEKEEPING_EVERY, "check-in reminders"),
        (EXPIRY_JOB, jobs.run_expiry, HOUSEKEEPING_EVERY, "check-in expiry"),
        (RETENTION_JOB, jobs.run_retention, timedelta(days=1), "privacy retention"),
    ]
    if every > 0:
        fixed.append((RECONCILE_JOB, jobs.run_reconcile, timedelta(seconds=every),
                      "reconcile cohort jobs"))
    elif RECONCILE_JOB in existing:
        _remove(scheduler, RECONCILE_JOB)
    for job_id, func, interval, name in fixed:
        trigger = IntervalTrigger(seconds=interval.total_seconds(),
                                  timezone=settings.app.timezone)
        # Housekeeping may run however late; coalescing makes it run once.
        _ensure_job(scheduler, existing.get(job_id), job_id, func, trigger, name,
                    misfire_grace_time=None)


def _ensure_job(scheduler: BaseScheduler, job: Job | None, job_id: str, func: Callable,
                trigger, name: str, args: list | None = None,
                misfire_grace_time: int | None = None) -> str | None:
    """Add, reschedule or rename one job as needed; 'added', 'rescheduled' or None."""
    if job is None:
        try:
            scheduler.add_job(func, trigger, id=job_id, name=name, args=args or [],
                              misfire_grace_time=misfire_grace_time, coalesce=True,
                              max_instances=1)
        except ConflictingIdError:
            return None  # another scheduler sharing the job store added it just now
        return "added"
    if _trigger_key(job.trigger) != _trigger_key(trigger):
        try:
            scheduler.reschedule_job(job_id, trigger=trigger)
        except JobLookupError:
            return None
        return "rescheduled"
    if job.name != name:
        try:
            scheduler.modify_job(job_id, name=name)  # keeps next_run_time
        except JobLookupError:
            return None
    return None


def _trigger_key(trigger) -> tuple:
    """What makes two triggers the same schedule (ignoring start dates an interval gets)."""
    if isinstance(trigger, CronTrigger):
        return ("cron", str(trigger), str(trigger.timezone))
    if isinstance(trigger, IntervalTrigger):
        return ("interval", trigger.interval.total_seconds())
    return ("other", repr(trigger))


def _remove(scheduler: BaseScheduler, job_id: str) -> None:
    try:
        scheduler.remove_job(job_id)
    except JobLookupError:
        pass


# --- running --------------------------------------------------------------------------------

def start_background(settings: Settings, db: Database,
                     tablename: str = JOBSTORE_TABLE) -> BackgroundScheduler:
    """Build, configure the job functions, start in a thread, and reconcile (demo, run)."""
    scheduler = build_scheduler(settings, db, scheduler_cls=BackgroundScheduler,
                                tablename=tablename)
    jobs.configure(settings, db, scheduler=scheduler)
    scheduler.start()
    counts = reconcile_jobs(scheduler, settings, db)
    cohort_jobs = [j for j in scheduler.get_jobs() if j.id.startswith(CHECKIN_PREFIX)]
    log.info("scheduler started: %d cohort check-in jobs (%d added, %d rescheduled, "
             "%d removed)", len(cohort_jobs), counts["added"], counts["rescheduled"],
             counts["removed"])
    for job in sorted(cohort_jobs, key=lambda j: j.name):
        when = f"{job.next_run_time:%Y-%m-%d %H:%M %Z}" if job.next_run_time else "paused"
        log.info("  %s: next %s", job.name, when)
    return scheduler


def run_scheduler(settings: Settings, db: Database, run_dispatcher: bool = True,
                  stop_event: threading.Event | None = None) -> None:
    """Run the scheduler (and a dispatcher thread) until SIGINT/SIGTERM or ``stop_event``."""
    stop = stop_event or threading.Event()
    requested: list[int] = []

    def on_signal(signum, _frame) -> None:
        requested.append(signum)  # only a flag: the main loop below notices it

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    scheduler = None
    dispatcher_stop = threading.Event()
    dispatcher_thread = None
    try:
        scheduler = start_background(settings, db)
        if run_dispatcher:
            from bot.dispatcher import Dispatcher

            dispatcher = Dispatcher(settings, db)
            dispatcher_thread = threading.Thread(target=dispatcher.run_forever,
                                                 args=(dispatcher_stop,), name="dispatcher",
                                                 daemon=True)
            dispatcher_thread.start()
        log.info("scheduler running%s; Ctrl-C or SIGTERM stops it",
                 " with a dispatcher" if run_dispatcher else "")
        while not requested and not stop.is_set():
            time.sleep(0.2)
        if requested:
            log.info("%s: stopping", signal.Signals(requested[0]).name)
    finally:
        dispatcher_stop.set()
        if dispatcher_thread is not None:
            dispatcher_thread.join(timeout=30)
        if scheduler is not None:
            scheduler.shutdown(wait=True)  # lets a round being written finish
        jobs.reset()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("scheduler stopped")
