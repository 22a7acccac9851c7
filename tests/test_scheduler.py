"""The scheduler on a real SQLAlchemy job store: reconciling, restarts, races, missed runs.

Schedulers here are BackgroundSchedulers started paused; a test makes a job due by moving its
next run time into the past and resumes, then waits for the job's events with a deadline. The
job functions get a fixed clock, so the fire time a run computes does not depend on the hour the
tests run at.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import func, inspect, select

from bot.models import CheckInRound, Cohort, Message
from scheduler import jobs
from scheduler.__main__ import command_line
from scheduler.service import (
    EXPIRY_JOB,
    JOBSTORE_TABLE,
    RECONCILE_JOB,
    REMINDERS_JOB,
    RETENTION_JOB,
    build_scheduler,
    checkin_job_id,
    reconcile_jobs,
    run_scheduler,
)
from tests.factories import make_cohort, make_graduates

WIB = ZoneInfo("Asia/Jakarta")
DAILY = "0 9 * * *"
FIRE = datetime(2026, 12, 1, 9, 0, tzinfo=WIB)  # a fire time of DAILY
OTHER_TABLE = "apscheduler_jobs_other"
WAIT = 30  # seconds: a deadline, not a delay


class Events:
    """Collects a scheduler's job events so a test can wait for them."""

    def __init__(self, scheduler) -> None:
        self.items = []
        self.cond = threading.Condition()
        scheduler.add_listener(self, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)

    def __call__(self, event) -> None:
        with self.cond:
            self.items.append(event)
            self.cond.notify_all()

    def of(self, job_id: str) -> list:
        with self.cond:
            return [e for e in self.items if e.job_id == job_id]

    def wait(self, job_id: str, count: int = 1) -> list:
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.of(job_id)) >= count, timeout=WAIT)
        assert ok, f"job {job_id} did not run {count} time(s) within {WAIT}s: {self.items}"
        events = self.of(job_id)
        for event in events:
            assert event.code == EVENT_JOB_EXECUTED, (event, getattr(event, "traceback", ""))
        return events


def wait_until(predicate, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def clean_jobstore(db):
    """Job store tables are not part of the models: drop them around each test (PostgreSQL)."""
    def drop():
        with db.engine.begin() as conn:
            for table in (JOBSTORE_TABLE, OTHER_TABLE):
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
    drop()
    yield
    jobs.reset()
    drop()


@pytest.fixture
def schedulers(settings, db):
    """Make paused, started BackgroundSchedulers on the test database; shut down at the end."""
    made = []

    def make(tablename=JOBSTORE_TABLE, clock=lambda: FIRE + timedelta(seconds=30),
             the_settings=settings):
        scheduler = build_scheduler(the_settings, db, scheduler_cls=BackgroundScheduler,
                                    tablename=tablename)
        events = Events(scheduler)
        jobs.configure(the_settings, db, scheduler=scheduler, clock=clock)
        scheduler.start(paused=True)
        made.append(scheduler)
        return scheduler, events

    yield make
    for scheduler in made:
        if scheduler.running:
            scheduler.shutdown(wait=True)


def make_due(scheduler, job_id: str, ago: timedelta = timedelta(seconds=1)) -> None:
    scheduler.modify_job(job_id, next_run_time=datetime.now(UTC) - ago)


def counts(db) -> tuple[int, int]:
    with db.session() as session:
        return (session.scalar(select(func.count()).select_from(CheckInRound)),
                session.scalar(select(func.count()).select_from(Message)))


@pytest.fixture
def cohort_id(db) -> int:
    with db.session() as session:
        cohort = make_cohort(session, "Menjahit 1", schedule=DAILY)
        make_graduates(session, cohort, 5)
        return cohort.id


# --- reconciling ----------------------------------------------------------------------------

def test_reconcile_adds_a_job_per_active_cohort_and_the_fixed_jobs(db, settings, schedulers):
    with db.session() as session:
        default = make_cohort(session, "Menjahit 1")
        own = make_cohort(session, "Bordir 1", schedule="30 8 * * 1")
        own.timezone = "Asia/Makassar"
        make_cohort(session, "Menjahit 0").active = False
        default_id, own_id = default.id, own.id
    scheduler, _ = schedulers()
    assert reconcile_jobs(scheduler, settings, db) == {"added": 2, "rescheduled": 0,
                                                       "removed": 0}
    found = {job.id: job for job in scheduler.get_jobs()}
    assert set(found) == {checkin_job_id(default_id), checkin_job_id(own_id), RECONCILE_JOB,
                          REMINDERS_JOB, EXPIRY_JOB, RETENTION_JOB}
    monthly = found[checkin_job_id(default_id)]
    assert monthly.args == (default_id,) and monthly.name == "check-in Menjahit 1"
    assert monthly.next_run_time.astimezone(WIB).strftime("%d %H:%M") == "01 09:00"
    weekly = found[checkin_job_id(own_id)]
    assert str(weekly.trigger.timezone) == "Asia/Makassar"
    nxt = weekly.next_run_time.astimezone(ZoneInfo("Asia/Makassar"))
    assert (nxt.strftime("%A %H:%M")) == "Monday 08:30"  # crontab weekday 1 is Monday
    # Nothing changed: nothing to do.
    assert reconcile_jobs(scheduler, settings, db) == {"added": 0, "rescheduled": 0,
                                                       "removed": 0}


def test_reconcile_keeps_a_pending_missed_run_and_replaces_only_changed_schedules(
        db, settings, schedulers):
    with db.session() as session:
        a = make_cohort(session, "Menjahit 1", schedule=DAILY)
        b = make_cohort(session, "Menjahit 2", schedule=DAILY)
        a_id, b_id = a.id, b.id
    scheduler, _ = schedulers()
    reconcile_jobs(scheduler, settings, db)
    missed = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    for job_id in (checkin_job_id(a_id), checkin_job_id(b_id)):
        scheduler.modify_job(job_id, next_run_time=missed)
    with db.session() as session:
        session.get(Cohort, b_id).checkin_schedule = "0 10 * * *"
        session.get(Cohort, a_id).name = "Menjahit 1A"  # a rename is not a new schedule
    assert reconcile_jobs(scheduler, settings, db)["rescheduled"] == 1
    a_job = scheduler.get_job(checkin_job_id(a_id))
    b_job = scheduler.get_job(checkin_job_id(b_id))
    assert a_job.next_run_time == missed  # untouched: the missed run will still happen
    assert a_job.name == "check-in Menjahit 1A"
    assert "hour='10'" in str(b_job.trigger)
    assert b_job.next_run_time > datetime.now(UTC)
    assert b_job.next_run_time.astimezone(WIB).strftime("%H:%M") == "10:00"


def test_reconcile_removes_jobs_of_deleted_and_inactive_cohorts(db, settings, schedulers):
    with db.session() as session:
        keep = make_cohort(session, "Menjahit 1")
        stop = make_cohort(session, "Menjahit 2")
        drop = make_cohort(session, "Menjahit 3")
        keep_id, stop_id, drop_id = keep.id, stop.id, drop.id
    scheduler, _ = schedulers()
    reconcile_jobs(scheduler, settings, db)
    with db.session() as session:
        session.get(Cohort, stop_id).active = False
        session.delete(session.get(Cohort, drop_id))
    assert reconcile_jobs(scheduler, settings, db)["removed"] == 2
    assert {j.id for j in scheduler.get_jobs() if j.id.startswith("checkin:")} == {
        checkin_job_id(keep_id)}


def test_a_changed_schedule_is_picked_up_by_the_running_scheduler(db, settings, schedulers,
                                                                   cohort_id):
    fast = settings.with_overrides(scheduler={"reconcile_every_seconds": 1})
    scheduler, events = schedulers(the_settings=fast)
    reconcile_jobs(scheduler, fast, db)
    scheduler.resume()
    with db.session() as session:
        session.get(Cohort, cohort_id).checkin_schedule = "15 14 * * *"
    wait_until(lambda: "hour='14'" in str(scheduler.get_job(checkin_job_id(cohort_id)).trigger),
               "the reconcile job to pick up the new schedule")
    job = scheduler.get_job(checkin_job_id(cohort_id))
    assert job.next_run_time.astimezone(WIB).strftime("%H:%M") == "14:15"
    events.wait(RECONCILE_JOB)  # it was the periodic reconcile job


def test_jobs_persist_in_the_database(db, settings, schedulers, cohort_id):
    first, _ = schedulers()
    reconcile_jobs(first, settings, db)
    next_run = first.get_job(checkin_job_id(cohort_id)).next_run_time
    first.shutdown()
    second, _ = schedulers()
    assert second.get_job(checkin_job_id(cohort_id)).next_run_time == next_run


def test_reconcile_refuses_a_scheduler_that_was_not_started(db, settings):
    scheduler = build_scheduler(settings, db, scheduler_cls=BackgroundScheduler)
    with pytest.raises(RuntimeError, match="start"):
        reconcile_jobs(scheduler, settings, db)


# --- running rounds -------------------------------------------------------------------------

def test_a_due_cohort_job_starts_the_round_for_its_fire_time(db, settings, schedulers,
                                                            cohort_id):
    scheduler, events = schedulers()
    reconcile_jobs(scheduler, settings, db)
    make_due(scheduler, checkin_job_id(cohort_id))
    scheduler.resume()
    (event,) = events.wait(checkin_job_id(cohort_id))
    assert event.retval == 5
    with db.session() as session:
        round_ = session.scalar(select(CheckInRound))
        assert round_.scheduled_for == FIRE and round_.trigger == "schedule"
    assert counts(db) == (1, 5)
    # After the run the job waits for the next fire time.
    assert scheduler.get_job(checkin_job_id(cohort_id)).next_run_time > datetime.now(UTC)


def test_restart_with_the_same_fire_time_due_again_sends_nothing_twice(db, settings, schedulers,
                                                                      cohort_id):
    first, events = schedulers()
    reconcile_jobs(first, settings, db)
    make_due(first, checkin_job_id(cohort_id))
    first.resume()
    events.wait(checkin_job_id(cohort_id))
    first.shutdown(wait=True)
    assert counts(db) == (1, 5)

    # A crash before the store recorded the run: after the restart the fire time is due again.
    second, events = schedulers()
    assert reconcile_jobs(second, settings, db) == {"added": 0, "rescheduled": 0, "removed": 0}
    make_due(second, checkin_job_id(cohort_id))
    second.resume()
    (event,) = events.wait(checkin_job_id(cohort_id))
    assert event.retval == 0
    assert counts(db) == (1, 5)


def test_two_schedulers_firing_the_same_cohort_make_one_round(db, settings, schedulers,
                                                             cohort_id):
    # Two processes that each believe they own the job (separate job stores).
    one, one_events = schedulers()
    two, two_events = schedulers(tablename=OTHER_TABLE)
    for scheduler in (one, two):
        reconcile_jobs(scheduler, settings, db)
        make_due(scheduler, checkin_job_id(cohort_id))
    one.resume()
    two.resume()
    (a,) = one_events.wait(checkin_job_id(cohort_id))
    (b,) = two_events.wait(checkin_job_id(cohort_id))
    assert sorted([a.retval, b.retval]) == [0, 5]
    assert counts(db) == (1, 5)


def test_two_schedulers_sharing_one_job_store_make_one_round(db, settings, schedulers,
                                                            cohort_id):
    one, one_events = schedulers()
    two, two_events = schedulers()
    reconcile_jobs(one, settings, db)
    reconcile_jobs(two, settings, db)
    make_due(one, checkin_job_id(cohort_id))
    one.resume()
    two.resume()
    wait_until(lambda: one_events.of(checkin_job_id(cohort_id))
               or two_events.of(checkin_job_id(cohort_id)), "a run")
    one.shutdown(wait=True)  # lets any run still in progress finish
    two.shutdown(wait=True)
    assert counts(db) == (1, 5)


def test_a_missed_fire_time_runs_once_after_a_late_start(db, settings, schedulers, cohort_id):
    with db.session() as session:
        session.get(Cohort, cohort_id).checkin_schedule = "*/5 * * * *"
    first, _ = schedulers()
    reconcile_jobs(first, settings, db)
    first.shutdown()
    # The process was down for two hours: 24 fire times passed.
    late, events = schedulers(clock=lambda: FIRE + timedelta(minutes=7))
    late.modify_job(checkin_job_id(cohort_id),
                    next_run_time=datetime.now(UTC) - timedelta(hours=2))
    late.resume()
    (event,) = events.wait(checkin_job_id(cohort_id))
    assert event.retval == 5
    wait_until(lambda: late.get_job(checkin_job_id(cohort_id)).next_run_time
               > datetime.now(UTC), "the next run time to move on")
    assert len(events.of(checkin_job_id(cohort_id))) == 1
    with db.session() as session:
        # the round carries the latest fire time before the clock: 09:05
        assert session.scalar(select(CheckInRound.scheduled_for)) == FIRE + timedelta(minutes=5)
    assert counts(db) == (1, 5)


def test_reminder_and_expiry_jobs_run(db, settings, schedulers, cohort_id):
    scheduler, events = schedulers(clock=lambda: datetime.now(UTC) + timedelta(days=3))
    reconcile_jobs(scheduler, settings, db)
    make_due(scheduler, checkin_job_id(cohort_id))
    scheduler.resume()
    events.wait(checkin_job_id(cohort_id))
    make_due(scheduler, REMINDERS_JOB)
    (event,) = events.wait(REMINDERS_JOB)
    assert event.retval == 5
    jobs.configure(settings, db, scheduler=scheduler,
                   clock=lambda: datetime.now(UTC) + timedelta(days=8))
    make_due(scheduler, EXPIRY_JOB)
    (event,) = events.wait(EXPIRY_JOB)
    assert event.retval == 5


def test_the_daily_retention_job_deletes_old_messages_of_unknown_numbers(db, settings,
                                                                        schedulers):
    with db.session() as session:
        session.add(Message(direction="in", phone="+6289999999999", kind="inbound",
                            body="salah sambung", status="handled"))
    scheduler, events = schedulers(clock=lambda: datetime.now(UTC) + timedelta(days=31))
    reconcile_jobs(scheduler, settings, db)
    scheduler.resume()
    make_due(scheduler, RETENTION_JOB)
    (event,) = events.wait(RETENTION_JOB)
    assert event.retval == {"bodies_emptied": 0, "unknown_deleted": 1}


def test_a_job_for_a_deleted_cohort_does_nothing(db, settings):
    jobs.configure(settings, db)
    assert jobs.run_checkin(12345) == 0
    assert counts(db) == (0, 0)


# --- the process ----------------------------------------------------------------------------

def test_run_scheduler_reconciles_dispatches_and_stops(db, settings, cohort_id):
    from bot.checkins import send_rounds_now

    with db.session() as session:
        send_rounds_now(session, settings, ["Menjahit 1"])
    stop = threading.Event()
    runner = threading.Thread(target=run_scheduler, args=(settings, db),
                              kwargs={"stop_event": stop})
    runner.start()
    try:
        def all_sent():
            with db.session() as session:
                return not session.scalar(select(func.count()).select_from(Message)
                                          .where(Message.status == "pending"))
        wait_until(all_sent, "the dispatcher thread to send the prompts")

        def stored_jobs():
            if not inspect(db.engine).has_table(JOBSTORE_TABLE):
                return set()
            with db.engine.connect() as conn:
                return set(conn.exec_driver_sql(f"SELECT id FROM {JOBSTORE_TABLE}").scalars())
        # The process leads (nobody else holds the lock) and reconciles its jobs.
        wait_until(lambda: {checkin_job_id(cohort_id), REMINDERS_JOB} <= stored_jobs(),
                   "the leader to reconcile its jobs")
    finally:
        stop.set()
        runner.join(timeout=WAIT)
    assert not runner.is_alive()


def test_scheduler_process_stops_cleanly_on_sigterm(tmp_path):
    url = f"sqlite:///{tmp_path / 'sched.db'}"
    script = textwrap.dedent(f"""
        import logging
        from bot.config import load_settings
        from bot.db import Database
        from bot.migrate import upgrade
        from scheduler.service import run_scheduler
        logging.basicConfig(level=logging.INFO)
        settings = load_settings(environ={{}}).with_overrides(database={{"url": {url!r}}})
        upgrade(settings.database.url)
        db = Database(settings.database.url)
        run_scheduler(settings, db)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    output = []
    try:
        deadline = time.monotonic() + WAIT
        for line in proc.stdout:
            output.append(line)
            if "scheduler running" in line or time.monotonic() > deadline:
                break
        assert any("scheduler running" in line for line in output), "".join(output)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
    output.append(rest)
    assert proc.returncode == 0, "".join(output)
    assert "scheduler stopped" in "".join(output)


def test_python_m_scheduler_takes_the_kabar_options():
    assert command_line([]) == ["scheduler"]
    assert command_line(["--no-dispatch", "--config", "k.toml", "-v"]) == [
        "--config", "k.toml", "-v", "scheduler", "--no-dispatch"]
    result = subprocess.run([sys.executable, "-m", "scheduler", "--help"], capture_output=True,
                            text=True, timeout=WAIT)
    assert result.returncode == 0, result.stderr
    assert "--no-dispatch" in result.stdout
