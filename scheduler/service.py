"""Build the scheduler, keep its jobs in step with the cohorts table, run it, lead or stand by.

Jobs live in the ``apscheduler_jobs`` table of Kabar's database (a persistent SQLAlchemy job
store), so a restart keeps each cohort's next fire time and a fire time missed while the process
was down runs once (coalesced) when it comes back, within the misfire grace time. A round is
stamped with its fire time and unique per cohort, so a duplicate run sends nothing.

Jobs:

- ``checkin:<cohort id>``: the cohort's cron schedule in the cohort's time zone;
- ``kabar:reconcile``: re-read the cohorts table every ``scheduler.reconcile_every_seconds``;
- ``kabar:reminders`` and ``kabar:expiry``: every 10 minutes.

Several ``kabar scheduler`` processes may run (``SchedulerNode``): the one holding the lock of
``scheduler.leader`` runs these jobs, the others stand by, each beating its heartbeat
(``bot.processes``) as "leader" or "standby". A leader writes each run of a round, reminders,
expiry or retention into its heartbeat row *before* APScheduler moves the job's next run time
on, and drops it when the run ends; a process that takes over runs those left unfinished by its
dead predecessor again first (a round is unique per cohort and fire time, a reminder per report,
so a run that did finish changes nothing), then starts APScheduler, which runs a fire time
missed meanwhile once (coalesced).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    EVENT_SCHEDULER_SHUTDOWN,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED, BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import column, select, table, update
from sqlalchemy import func as sql

from bot import processes
from bot.config import Settings
from bot.db import Database
from bot.models import CheckInRound, Cohort, Process, utcnow
from bot.schedules import cron_trigger
from scheduler import jobs, leader

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
                    tablename: str = JOBSTORE_TABLE,
                    executor: ThreadPoolExecutor | None = None) -> BaseScheduler:
    """A scheduler whose jobs persist in Kabar's database (not started, no jobs added)."""
    return scheduler_cls(
        jobstores={"default": SQLAlchemyJobStore(engine=db.engine, tablename=tablename)},
        executors={"default": executor or ThreadPoolExecutor(max_workers=4)},
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

LEADER = "leader"
STANDBY = "standby"
REPLACED = "replaced"  # a leader's row, marked by the process that took over from it
PRUNE_EVERY = timedelta(days=1)


def start_background(settings: Settings, db: Database,
                     tablename: str = JOBSTORE_TABLE) -> BackgroundScheduler:
    """Build, configure the job functions, start in a thread, and reconcile (``kabar demo``).

    The one process of the demo leads without a lock: it beats as the leader until the
    scheduler shuts down.
    """
    scheduler = build_scheduler(settings, db, scheduler_cls=BackgroundScheduler,
                                tablename=tablename)
    jobs.configure(settings, db, scheduler=scheduler)
    scheduler.start()
    _log_started(scheduler, reconcile_jobs(scheduler, settings, db))
    _beat_while_running(scheduler, db)
    return scheduler


def _log_started(scheduler: BaseScheduler, counts: dict[str, int]) -> None:
    cohort_jobs = [j for j in scheduler.get_jobs() if j.id.startswith(CHECKIN_PREFIX)]
    log.info("scheduler started: %d cohort check-in jobs (%d added, %d rescheduled, "
             "%d removed)", len(cohort_jobs), counts["added"], counts["rescheduled"],
             counts["removed"])
    for job in sorted(cohort_jobs, key=lambda j: j.name):
        when = f"{job.next_run_time:%Y-%m-%d %H:%M %Z}" if job.next_run_time else "paused"
        log.info("  %s: next %s", job.name, when)


def _beat_while_running(scheduler: BaseScheduler, db: Database) -> None:
    name = processes.process_name()
    since = utcnow().isoformat()
    stopped = threading.Event()

    def on_shutdown(_event) -> None:
        stopped.set()
        processes.forget(db, name)

    def beat_loop() -> None:
        while not stopped.is_set():
            processes.beat(db, name, "scheduler", LEADER,
                           {"leading_since": since, "lock": "none (one process)",
                            "next_job": next_job(db, JOBSTORE_TABLE)})
            stopped.wait(processes.BEAT_EVERY.total_seconds())

    scheduler.add_listener(on_shutdown, EVENT_SCHEDULER_SHUTDOWN)
    threading.Thread(target=beat_loop, name="scheduler-heartbeat", daemon=True).start()


def next_job(db: Database, tablename: str = JOBSTORE_TABLE) -> dict[str, str] | None:
    """The job store's next job (id, name, when), read from its indexed table; None if none."""
    store = table(tablename, column("id"), column("next_run_time"))
    try:
        with db.read_session() as session:
            row = session.execute(select(store.c.id, store.c.next_run_time)
                                  .where(store.c.next_run_time.is_not(None))
                                  .order_by(store.c.next_run_time).limit(1)).first()
            if row is None:
                return None
            job_id, when = row
            name = FIXED_JOB_NAMES.get(job_id, job_id)
            if job_id.startswith(CHECKIN_PREFIX):
                cohort = session.get(Cohort, int(job_id.removeprefix(CHECKIN_PREFIX)))
                name = f"check-in {cohort.name}" if cohort else job_id
    except Exception:
        log.debug("the next job is unknown", exc_info=True)
        return None
    at = datetime.fromtimestamp(float(when), tz=utcnow().tzinfo)
    return {"id": job_id, "name": name, "at": at.isoformat()}


@dataclass(frozen=True)
class Timings:
    """How often a scheduler process tries, confirms and beats (``scheduler.leader``)."""

    retry: timedelta = leader.RETRY_EVERY
    confirm: timedelta = leader.CONFIRM_EVERY
    step_down_after: timedelta = leader.STEP_DOWN_AFTER
    takeover_delay: timedelta = leader.TAKEOVER_DELAY
    beat: timedelta = processes.BEAT_EVERY


class RecordingExecutor(ThreadPoolExecutor):
    """A thread pool that reports each run before APScheduler moves the job's next run on."""

    def __init__(self, on_submit: Callable[[Job, list[datetime]], None],
                 on_refused: Callable[[str], None], max_workers: int = 4) -> None:
        super().__init__(max_workers=max_workers)
        self._on_submit = on_submit
        self._on_refused = on_refused

    def submit_job(self, job: Job, run_times: list[datetime]) -> None:
        self._on_submit(job, run_times)
        try:
            super().submit_job(job, run_times)
        except BaseException:
            self._on_refused(job.id)
            raise


@dataclass
class _State:
    role: str = STANDBY
    since: datetime = field(default_factory=utcnow)
    scheduler: BackgroundScheduler | None = None
    holding: bool = False  # the lock was acquired and not released yet
    confirmed: float = 0.0  # time.monotonic() of the last confirmation
    runs: dict[str, dict[str, str]] = field(default_factory=dict)  # job id -> run record


class SchedulerNode:
    """One ``kabar scheduler`` process: it stands by, leads while it holds the lock, beats.

    ``run(stop)`` loops until ``stop`` is set. A standby tries the lock every ``retry``; a
    leader confirms it every ``confirm`` and stops its jobs at once when a confirmation fails
    (a watchdog thread also stops them when none succeeded for ``step_down_after``, in case
    the confirmation itself hangs on a dead connection). Taking over from a leader whose row
    is still fresh waits ``takeover_delay`` first, so a leader that lost its connection but
    lives has stopped its jobs before any start here.
    """

    def __init__(self, settings: Settings, db: Database, *, name: str | None = None,
                 lock: leader.LeaderLock | None = None, tablename: str = JOBSTORE_TABLE,
                 timings: Timings = Timings(),
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.db = db
        self.name = name or processes.process_name()
        self.lock = lock or leader.lock_for(db.url, self.name)
        self.tablename = tablename
        self.timings = timings
        self.clock = clock
        self.state = _State()
        self._state_lock = threading.RLock()
        self._beat_lock = threading.Lock()
        self._last_prune = None

    @property
    def role(self) -> str:
        return self.state.role

    @property
    def scheduler(self) -> BackgroundScheduler | None:
        return self.state.scheduler

    # --- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Stand by, lead, beat, until ``stop``; then stop the jobs, release, forget the row.

        Three threads, so that none waits on another: this one takes and confirms the lock,
        a heartbeat thread writes the row (it may wait on a busy database without delaying a
        confirmation), and a watchdog stops the jobs when confirmations stop coming.
        """
        helpers = [threading.Thread(target=self._watch, args=(stop,), name="scheduler-watchdog",
                                    daemon=True),
                   threading.Thread(target=self._beat_loop, args=(stop,),
                                    name="scheduler-heartbeat", daemon=True)]
        for helper in helpers:
            helper.start()
        log.info("scheduler %s: standing by until it holds the %s", self.name,
                 self.lock.description)
        next_try = next_confirm = 0.0
        told_holder = None
        try:
            while not stop.is_set():
                now = time.monotonic()
                if self.role == STANDBY:
                    if self.state.holding:
                        self._release()
                    if now >= next_try:
                        next_try = now + self.timings.retry.total_seconds()
                        if self.lock.acquire():
                            self.state.holding = True
                            self._take_over(stop)
                            next_confirm = time.monotonic() + self.timings.confirm.total_seconds()
                        else:
                            holder = getattr(self.lock, "holder", lambda: None)()
                            if holder != told_holder:
                                log.info("scheduler %s: standing by; the lock is held by %s",
                                         self.name, holder or "another process")
                                told_holder = holder
                elif now >= next_confirm:
                    next_confirm = now + self.timings.confirm.total_seconds()
                    if self.lock.confirm():
                        self.state.confirmed = time.monotonic()
                    else:
                        self._step_down(f"it no longer holds the {self.lock.description}")
                stop.wait(0.1)
        finally:
            self._step_down(None, wait=True)
            self._release()
            dispose = getattr(self.lock, "dispose", None)
            if dispose is not None:
                dispose()
            for helper in helpers:
                helper.join(timeout=10)
            processes.forget(self.db, self.name)
            log.info("scheduler %s: stopped", self.name)

    def _beat_loop(self, stop: threading.Event) -> None:
        while True:
            self.beat()
            if self.role == LEADER:
                self._prune_daily()
            if stop.wait(self.timings.beat.total_seconds()):
                return

    def _watch(self, stop: threading.Event) -> None:
        limit = self.timings.step_down_after.total_seconds()
        while not stop.wait(0.2):
            if self.role == LEADER and time.monotonic() - self.state.confirmed > limit:
                self._step_down(f"it could not confirm it holds the {self.lock.description} "
                                f"for {limit:.0f} s")

    def _release(self) -> None:
        self.lock.release()
        self.state.holding = False

    # --- taking over and stepping down ------------------------------------------------------

    def _take_over(self, stop: threading.Event) -> None:
        previous = self._previous_leaders()
        fresh = [p for p in previous
                 if utcnow() - p.beat_at <= processes.STALE_AFTER]
        if fresh:
            delay = self.timings.takeover_delay.total_seconds()
            log.warning("scheduler %s: took the lock from %s; starting its jobs in %.0f s",
                        self.name, ", ".join(p.name for p in fresh), delay)
            processes.beat(self.db, self.name, "scheduler", STANDBY,
                           {"taking_over_from": [p.name for p in fresh]})
            if stop.wait(delay):
                return
            if not self.lock.confirm():
                log.error("scheduler %s: lost the lock again while taking over", self.name)
                self._release()
                return
        scheduler = None
        try:
            jobs.configure(self.settings, self.db, clock=self.clock)
            self._recover(previous)
            self._mark_replaced([p.name for p in previous])
            executor = RecordingExecutor(self._run_started, self._run_ended)
            scheduler = build_scheduler(self.settings, self.db,
                                        scheduler_cls=BackgroundScheduler,
                                        tablename=self.tablename, executor=executor)
            scheduler.add_listener(lambda event: self._run_ended(event.job_id),
                                   EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
            jobs.configure(self.settings, self.db, scheduler=scheduler, clock=self.clock)
            scheduler.start(paused=True)
            counts = reconcile_jobs(scheduler, self.settings, self.db)
            with self._state_lock:
                self.state.runs.clear()
                self.state.confirmed = time.monotonic()
                self.state.scheduler = scheduler
                self.state.since = utcnow()
                self.state.role = LEADER
            scheduler.resume()
        except Exception:
            log.exception("scheduler %s: could not start its jobs; standing by", self.name)
            if scheduler is not None and scheduler.running:
                scheduler.shutdown(wait=False)
            with self._state_lock:
                self.state.role, self.state.scheduler = STANDBY, None
            self._release()
            return
        log.info("scheduler %s: leading (%s)", self.name, self.lock.description)
        self.beat()  # say so now, not at the next regular beat
        _log_started(scheduler, counts)

    def _step_down(self, reason: str | None, wait: bool = False) -> None:
        """Stop the jobs (at once, unless ``wait``) and become a standby."""
        with self._state_lock:
            if self.state.role != LEADER:
                return
            scheduler = self.state.scheduler
            self.state.role, self.state.scheduler = STANDBY, None
            self.state.since = utcnow()
        if scheduler is not None and scheduler.running:
            # Without wait, a run already going finishes in its thread; nothing new starts.
            scheduler.shutdown(wait=wait)
        if reason:
            log.error("scheduler %s: stopped leading: %s; standing by", self.name, reason)
            self.beat()
        else:
            log.info("scheduler %s: stopped leading", self.name)

    def _previous_leaders(self) -> list[Process]:
        """Rows of other schedulers that say they lead: whoever they are, they lost the lock."""
        try:
            with self.db.read_session() as session:
                return list(session.scalars(select(Process).where(
                    Process.kind == "scheduler", Process.role == LEADER,
                    Process.name != self.name)))
        except Exception:
            log.warning("scheduler %s: could not read the previous leader's row", self.name,
                        exc_info=True)
            return []

    def _mark_replaced(self, names: list[str]) -> None:
        if not names:
            return
        try:
            with self.db.session() as session:
                session.execute(update(Process).where(Process.name.in_(names),
                                                      Process.role == LEADER)
                                .values(role=REPLACED)
                                .execution_options(synchronize_session=False))
        except Exception:
            log.warning("scheduler %s: could not mark the previous leader replaced",
                        self.name, exc_info=True)

    # --- runs in flight ---------------------------------------------------------------------

    def _run_started(self, job: Job, run_times: list[datetime]) -> None:
        if job.id == RECONCILE_JOB:
            return
        with self._state_lock:
            self.state.runs[job.id] = {"job": job.id, "at": run_times[-1].isoformat()}
        if not self.beat():
            log.warning("scheduler %s: the run of %s could not be recorded before it started; "
                        "if this process dies during it, it is not run again", self.name,
                        job.id)

    def _run_ended(self, job_id: str) -> None:
        with self._state_lock:
            self.state.runs.pop(job_id, None)

    def _recover(self, previous: list[Process]) -> int:
        """Run again what the previous leaders started and may not have finished; how many."""
        done = 0
        now = self.clock()
        grace = timedelta(seconds=checkin_grace_seconds(self.settings))
        fixed = {REMINDERS_JOB: jobs.run_reminders, EXPIRY_JOB: jobs.run_expiry,
                 RETENTION_JOB: jobs.run_retention}
        for process in previous:
            for record in (process.detail or {}).get("running", []):
                job_id = str(record.get("job", ""))
                try:
                    at = datetime.fromisoformat(str(record.get("at")))
                    if job_id.startswith(CHECKIN_PREFIX):
                        cohort_id = int(job_id.removeprefix(CHECKIN_PREFIX))
                        if now - at > grace:
                            log.warning("%s of %s (fire time %s) did not finish and is past its "
                                        "grace time: not run again", job_id, process.name, at)
                            continue
                        if self._newer_round(cohort_id, at):
                            continue
                        jobs.run_checkin(cohort_id, at=at)
                    elif job_id in fixed:
                        fixed[job_id]()
                    else:
                        continue
                except Exception:
                    log.exception("scheduler %s: running %s again (left by %s) failed",
                                  self.name, job_id, process.name)
                    continue
                done += 1
                log.warning("scheduler %s: ran %s (fire time %s) again: %s died during it",
                            self.name, job_id, record.get("at"), process.name)
        return done

    def _newer_round(self, cohort_id: int, at: datetime) -> bool:
        with self.db.read_session() as session:
            latest = session.scalar(select(sql.max(CheckInRound.scheduled_for))
                                    .where(CheckInRound.cohort_id == cohort_id))
        return latest is not None and latest > at

    # --- heartbeat --------------------------------------------------------------------------

    def beat(self) -> bool:
        """Write this process's heartbeat row now; False if the database refused it."""
        with self._beat_lock:
            with self._state_lock:
                role, since = self.state.role, self.state.since
                runs = list(self.state.runs.values())
            detail: dict[str, Any]
            if role == LEADER:
                detail = {"leading_since": since.isoformat(), "lock": self.lock.description,
                          "next_job": next_job(self.db, self.tablename), "running": runs}
            else:
                detail = {"standby_since": since.isoformat(), "lock": self.lock.description}
            return processes.beat(self.db, self.name, "scheduler", role, detail)

    def _prune_daily(self) -> None:
        now = time.monotonic()
        if self._last_prune is not None and now - self._last_prune < PRUNE_EVERY.total_seconds():
            return
        self._last_prune = now
        try:
            pruned = processes.prune(self.db)
        except Exception:
            log.warning("scheduler %s: pruning old heartbeat rows failed", self.name,
                        exc_info=True)
            return
        if pruned:
            log.info("removed %d heartbeat rows of processes gone for a day", pruned)


FIXED_JOB_NAMES = {RECONCILE_JOB: "reconcile cohort jobs", REMINDERS_JOB: "check-in reminders",
                   EXPIRY_JOB: "check-in expiry", RETENTION_JOB: "privacy retention"}


def run_scheduler(settings: Settings, db: Database, run_dispatcher: bool = True,
                  stop_event: threading.Event | None = None,
                  timings: Timings = Timings()) -> None:
    """Run a scheduler process (leading or standing by) and a dispatcher thread, until SIGINT,
    SIGTERM or ``stop_event``.

    The dispatcher runs whether this process leads or stands by: dispatchers claim outbox rows
    before sending, so any number may run side by side, and a standby's dispatcher keeps
    answering graduates while the leader's process is gone.
    """
    stop = stop_event or threading.Event()
    requested: list[int] = []

    def on_signal(signum, _frame) -> None:
        requested.append(signum)  # only a flag: the main loop below notices it

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    node_stop = threading.Event()
    node_thread = None
    dispatcher_stop = threading.Event()
    dispatcher_thread = None
    try:
        node = SchedulerNode(settings, db, timings=timings)
        node_thread = threading.Thread(target=node.run, args=(node_stop,), name="scheduler")
        node_thread.start()
        if run_dispatcher:
            from bot.dispatcher import Dispatcher

            dispatcher = Dispatcher(settings, db)
            dispatcher_thread = threading.Thread(target=dispatcher.run_forever,
                                                 args=(dispatcher_stop,), name="dispatcher",
                                                 daemon=True)
            dispatcher_thread.start()
        log.info("scheduler running as %s%s; Ctrl-C or SIGTERM stops it", node.name,
                 " with a dispatcher" if run_dispatcher else "")
        while not requested and not stop.is_set() and node_thread.is_alive():
            time.sleep(0.2)
        if requested:
            log.info("%s: stopping", signal.Signals(requested[0]).name)
    finally:
        node_stop.set()
        if node_thread is not None:
            node_thread.join()  # lets a round being written finish
        dispatcher_stop.set()
        if dispatcher_thread is not None:
            dispatcher_thread.join(timeout=30)
        jobs.reset()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("scheduler stopped")
