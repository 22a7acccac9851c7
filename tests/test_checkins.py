"""Check-in rounds: who is asked, once per fire time, quiet hours, reminders, expiry."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.checkins import (
    CheckinError,
    cron_trigger,
    expire_checkins,
    latest_fire_time,
    quiet_hours_end,
    send_reminders,
    send_rounds_now,
    start_round,
)
from bot.config import parse_quiet_hours
from bot.dispatcher import Dispatcher
from bot.models import (
    MSG_PENDING,
    REPORT_OPEN,
    REPORT_UNANSWERED,
    CheckInRound,
    Conversation,
    Message,
    ProgressReport,
)
from tests.factories import make_cohort, make_graduates

WIB = ZoneInfo("Asia/Jakarta")
UTC_ZONE = ZoneInfo("UTC")
NIGHT = (21 * 60, 7 * 60)  # 21:00-07:00


def wib(*args) -> datetime:
    return datetime(*args, tzinfo=WIB)


def count(session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def quiet_settings(settings):
    return settings.with_overrides(scheduler={"quiet_hours": "21:00-07:00"})


@pytest.fixture
def cohort_of_20(db):
    with db.session() as session:
        cohort = make_cohort(session, "Menjahit 1")
        make_graduates(session, cohort, 20)
        return cohort.id


def _cohort(session, cohort_id):
    from bot.models import Cohort

    return session.get(Cohort, cohort_id)


# --- quiet hours arithmetic -----------------------------------------------------------------

@pytest.mark.parametrize("local, window, expected", [
    # wrapping midnight: 21:00-07:00
    (wib(2026, 3, 10, 20, 59, 59), NIGHT, None),
    (wib(2026, 3, 10, 21, 0), NIGHT, wib(2026, 3, 11, 7, 0)),
    (wib(2026, 3, 10, 23, 59, 59), NIGHT, wib(2026, 3, 11, 7, 0)),
    (wib(2026, 3, 11, 0, 0), NIGHT, wib(2026, 3, 11, 7, 0)),
    (wib(2026, 3, 11, 6, 59, 59), NIGHT, wib(2026, 3, 11, 7, 0)),
    (wib(2026, 3, 11, 7, 0), NIGHT, None),
    (wib(2026, 3, 11, 12, 0), NIGHT, None),
    # the last day of a month and of a year roll over
    (wib(2026, 12, 31, 22, 0), NIGHT, wib(2027, 1, 1, 7, 0)),
    # a window within one day: 12:00-13:30
    (wib(2026, 3, 10, 11, 59), (720, 810), None),
    (wib(2026, 3, 10, 12, 0), (720, 810), wib(2026, 3, 10, 13, 30)),
    (wib(2026, 3, 10, 13, 29), (720, 810), wib(2026, 3, 10, 13, 30)),
    (wib(2026, 3, 10, 13, 30), (720, 810), None),
    # no quiet hours
    (wib(2026, 3, 10, 23, 0), None, None),
    (wib(2026, 3, 10, 23, 0), (600, 600), None),
])
def test_quiet_hours_end(local, window, expected):
    assert quiet_hours_end(local.astimezone(UTC), window, WIB) == expected


def test_quiet_hours_are_in_the_given_zone():
    # 15:30 UTC is 22:30 in Jakarta (quiet) but 15:30 in UTC (not quiet).
    now = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)
    assert quiet_hours_end(now, NIGHT, "Asia/Jakarta") == wib(2026, 3, 11, 7, 0)
    assert quiet_hours_end(now, NIGHT, UTC_ZONE) is None
    # Jayapura (WIT, UTC+9) is already at 00:30 the next day.
    assert quiet_hours_end(now, NIGHT, "Asia/Jayapura") == datetime(
        2026, 3, 11, 7, 0, tzinfo=ZoneInfo("Asia/Jayapura"))


def test_quiet_hours_end_refuses_naive_time():
    with pytest.raises(ValueError):
        quiet_hours_end(datetime(2026, 3, 10, 22, 0), NIGHT, WIB)


def test_quiet_hours_setting_parses_to_the_window():
    assert parse_quiet_hours("21:00-07:00") == NIGHT


@pytest.mark.parametrize("cron, now, expected", [
    ("0 9 1 * *", wib(2026, 12, 1, 9, 0), wib(2026, 12, 1, 9, 0)),  # exactly at the fire time
    ("0 9 1 * *", wib(2026, 12, 1, 8, 59, 59), wib(2026, 11, 1, 9, 0)),
    ("0 9 1 * *", wib(2026, 12, 15, 10, 0), wib(2026, 12, 1, 9, 0)),
    ("0 9 1 * *", wib(2027, 1, 1, 0, 30), wib(2026, 12, 1, 9, 0)),
    ("*/5 * * * *", wib(2026, 3, 10, 10, 7, 30), wib(2026, 3, 10, 10, 5)),
    # weekdays count as in crontab (1 = Monday, 0 and 7 = Sunday), not as in APScheduler 3
    ("0 9 * * 1", wib(2026, 3, 12, 12, 0), wib(2026, 3, 9, 9, 0)),  # Thu 12 Mar -> Mon 9 Mar
    ("0 9 * * 0", wib(2026, 3, 12, 12, 0), wib(2026, 3, 8, 9, 0)),
    ("0 9 * * 7", wib(2026, 3, 12, 12, 0), wib(2026, 3, 8, 9, 0)),
    ("0 9 * * 1-5", wib(2026, 3, 15, 12, 0), wib(2026, 3, 13, 9, 0)),  # Sun -> Fri
    ("0 9 1 1 *", wib(2026, 6, 1, 0, 0), wib(2026, 1, 1, 9, 0)),  # yearly
])
def test_latest_fire_time(cron, now, expected):
    assert latest_fire_time(cron, "Asia/Jakarta", now.astimezone(UTC)) == expected


@pytest.mark.parametrize("cron", ["0 9 * * 8", "0 9 * * 5-1", "0 9 *", "61 9 * * *"])
def test_a_bad_schedule_is_refused(cron):
    with pytest.raises(ValueError):
        cron_trigger(cron, "Asia/Jakarta")


# --- rounds ---------------------------------------------------------------------------------

def test_round_prompts_every_active_graduate(db, settings, cohort_of_20):
    with db.session() as session:
        round_ = start_round(session, settings, _cohort(session, cohort_of_20),
                             wib(2026, 12, 1, 9, 0))
        round_id = round_.id
    with db.session() as session:
        prompts = session.scalars(select(Message).where(Message.round_id == round_id)).all()
        assert len(prompts) == 20
        assert {m.kind for m in prompts} == {"checkin"}
        assert {m.status for m in prompts} == {MSG_PENDING}
        assert count(session, ProgressReport, ProgressReport.round_id == round_id) == 20
        assert count(session, Conversation) == 20


def test_opted_out_and_inactive_graduates_get_nothing(db, settings):
    with db.session() as session:
        cohort = make_cohort(session)
        stays, leaves, gone = make_graduates(session, cohort, 3)
        leaves.opted_out = True
        gone.active = False
        session.flush()
        round_ = start_round(session, settings, cohort, wib(2026, 12, 1, 9, 0))
        phones = session.scalars(select(Message.phone).where(Message.round_id == round_.id))
        assert list(phones) == [stays.phone]
        assert count(session, Message, Message.graduate_id.in_([leaves.id, gone.id])) == 0
        assert count(session, ProgressReport, ProgressReport.graduate_id == leaves.id) == 0


def test_second_start_for_the_same_fire_time_sends_nothing(db, settings, cohort_of_20):
    fire = wib(2026, 12, 1, 9, 0)
    with db.session() as session:
        assert start_round(session, settings, _cohort(session, cohort_of_20), fire) is not None
    with db.session() as session:
        assert start_round(session, settings, _cohort(session, cohort_of_20), fire) is None
        # the same instant written in another zone is the same fire time
        assert start_round(session, settings, _cohort(session, cohort_of_20),
                           fire.astimezone(UTC)) is None
    with db.session() as session:
        assert count(session, CheckInRound) == 1
        assert count(session, Message) == 20


def test_racing_starts_of_one_fire_time_make_one_round(db, settings, cohort_of_20):
    fire = wib(2026, 12, 1, 9, 0)
    barrier = threading.Barrier(4)
    results, errors = [], []

    def start():
        try:
            barrier.wait(timeout=10)
            with db.session() as session:
                results.append(start_round(session, settings, _cohort(session, cohort_of_20),
                                           fire) is not None)
        except Exception as exc:  # pragma: no cover - shown by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(results) == [False, False, False, True]
    with db.session() as session:
        assert count(session, CheckInRound) == 1
        assert count(session, Message) == 20


def test_a_new_round_closes_the_previous_open_report(db, settings):
    with db.session() as session:
        cohort = make_cohort(session)
        (grad,) = make_graduates(session, cohort, 1)
        first = start_round(session, settings, cohort, wib(2026, 11, 1, 9, 0))
        second = start_round(session, settings, cohort, wib(2026, 12, 1, 9, 0))
        reports = {r.round_id: r.status for r in session.scalars(
            select(ProgressReport).where(ProgressReport.graduate_id == grad.id))}
        assert reports == {first.id: REPORT_UNANSWERED, second.id: REPORT_OPEN}


def test_prompts_started_in_quiet_hours_wait_for_morning(db, quiet_settings, cohort_of_20):
    night = wib(2026, 3, 10, 22, 30)
    with db.session() as session:
        round_ = start_round(session, quiet_settings, _cohort(session, cohort_of_20),
                             wib(2026, 3, 10, 9, 0), now=night.astimezone(UTC))
        round_id = round_.id
    with db.session() as session:
        waits = set(session.scalars(select(Message.next_attempt_at)
                                    .where(Message.round_id == round_id)))
    assert waits == {wib(2026, 3, 11, 7, 0)}
    # The dispatcher sends nothing during the night and everything in the morning.
    assert Dispatcher(quiet_settings, db, clock=lambda: wib(2026, 3, 11, 6, 59)).run_once() == 0
    assert Dispatcher(quiet_settings, db, clock=lambda: wib(2026, 3, 11, 7, 0)).run_once() == 20


def test_ignore_quiet_hours_sends_at_once(db, quiet_settings, cohort_of_20):
    night = wib(2026, 3, 10, 22, 30).astimezone(UTC)
    with db.session() as session:
        start_round(session, quiet_settings, _cohort(session, cohort_of_20),
                    wib(2026, 3, 10, 9, 0), now=night, ignore_quiet_hours=True)
    # nothing held back: all due at once
    assert Dispatcher(quiet_settings, db).run_once() == 20


def test_prompts_started_in_the_day_go_at_once(db, quiet_settings, cohort_of_20):
    day = wib(2026, 3, 10, 9, 0)
    with db.session() as session:
        start_round(session, quiet_settings, _cohort(session, cohort_of_20), day,
                    now=day.astimezone(UTC))
    assert Dispatcher(quiet_settings, db).run_once() == 20


# --- send now (the CLI) ---------------------------------------------------------------------

def test_send_rounds_now_by_name_ignores_case(db, settings, cohort_of_20):
    with db.session() as session:
        lines = send_rounds_now(session, settings, ["  menjahit   1 "])
    assert lines == ["Menjahit 1: 20 prompts queued"]


def test_send_rounds_now_twice_in_a_minute_sends_once(db, settings, cohort_of_20):
    now = wib(2026, 3, 10, 10, 15, 5).astimezone(UTC)
    with db.session() as session:
        send_rounds_now(session, settings, None, now=now)
    with db.session() as session:
        (line,) = send_rounds_now(session, settings, None, now=now + timedelta(seconds=30))
        assert "already" in line
        assert count(session, Message) == 20


def test_send_rounds_now_in_quiet_hours_says_when(db, quiet_settings, cohort_of_20):
    night = wib(2026, 3, 10, 23, 0).astimezone(UTC)
    with db.session() as session:
        lines = send_rounds_now(session, quiet_settings, ["Menjahit 1"], now=night)
    assert lines == ["Menjahit 1: 20 prompts waiting for 07:00 (quiet hours)"]
    with db.session() as session:
        lines = send_rounds_now(session, quiet_settings, ["Menjahit 1"],
                                now=night + timedelta(minutes=5), ignore_quiet_hours=True,
                                force=True)
    assert lines == ["Menjahit 1: 20 prompts queued"]


def test_send_rounds_now_all_active_cohorts(db, settings):
    with db.session() as session:
        make_graduates(session, make_cohort(session, "Menjahit 1"), 2)
        make_graduates(session, make_cohort(session, "Bordir 1", skill="bordir"), 3,
                       first_phone=6281200000101)
        old = make_cohort(session, "Menjahit 0")
        make_graduates(session, old, 1, first_phone=6281200000201)
        old.active = False
    with db.session() as session:
        lines = send_rounds_now(session, settings, None)
    assert sorted(lines) == ["Bordir 1: 3 prompts queued", "Menjahit 1: 2 prompts queued"]


def test_send_rounds_now_unknown_name_lists_known_cohorts(db, settings, cohort_of_20):
    with db.session() as session, pytest.raises(CheckinError) as err:
        send_rounds_now(session, settings, ["Menjahit 9"])
    assert "Menjahit 9" in str(err.value) and "Menjahit 1" in str(err.value)


def test_send_rounds_now_ambiguous_name_asks_for_institution(db, settings):
    with db.session() as session:
        make_graduates(session, make_cohort(session, "Menjahit 1", "LPKS A'nur", join_code="A1"), 1)
        make_graduates(session, make_cohort(session, "Menjahit 1", "LPKS Nisfisano",
                                            join_code="N1"), 2, first_phone=6281200000101)
    with db.session() as session, pytest.raises(CheckinError) as err:
        send_rounds_now(session, settings, ["menjahit 1"])
    assert "Institution/Cohort" in str(err.value)
    assert "LPKS Nisfisano/Menjahit 1" in str(err.value)
    with db.session() as session:
        lines = send_rounds_now(session, settings, ["lpks nisfisano/MENJAHIT 1"])
    assert lines == ["LPKS Nisfisano/Menjahit 1: 2 prompts queued"]


# --- reminders and expiry -------------------------------------------------------------------

def _open_round(db, settings, graduates=3):
    with db.session() as session:
        cohort = make_cohort(session)
        grads = make_graduates(session, cohort, graduates)
        round_ = start_round(session, settings, cohort, wib(2026, 3, 10, 9, 0))
        started = session.scalar(select(func.min(ProgressReport.created_at)))
        return round_.id, [g.id for g in grads], started


def test_one_reminder_after_the_delay(db, settings):
    round_id, grads, started = _open_round(db, settings)
    with db.session() as session:  # the first graduate has answered already
        report = session.scalar(select(ProgressReport).where(
            ProgressReport.graduate_id == grads[0]))
        report.responded_at = started + timedelta(hours=1)
    with db.session() as session:
        assert send_reminders(session, settings, started + timedelta(hours=47)) == 0
    with db.session() as session:
        assert send_reminders(session, settings, started + timedelta(hours=48, minutes=1)) == 2
    with db.session() as session:
        assert send_reminders(session, settings, started + timedelta(hours=60)) == 0
        reminders = session.scalars(select(Message).where(Message.kind == "reminder")).all()
        assert sorted(m.graduate_id for m in reminders) == grads[1:]
        assert all("Lulusan" in m.body for m in reminders)  # the catalog text, with the name
        reminded = session.scalars(select(ProgressReport.reminded_at).where(
            ProgressReport.graduate_id.in_(grads[1:])))
        assert all(r is not None for r in reminded)


def test_no_reminder_to_a_graduate_who_opted_out(db, settings):
    round_id, grads, started = _open_round(db, settings, graduates=2)
    with db.session() as session:
        from bot.models import Graduate

        session.get(Graduate, grads[0]).opted_out = True
    with db.session() as session:
        assert send_reminders(session, settings, started + timedelta(days=3)) == 1
        assert session.scalar(select(Message.graduate_id).where(
            Message.kind == "reminder")) == grads[1]


def test_reminder_in_quiet_hours_waits_for_morning(db, quiet_settings):
    with db.session() as session:
        cohort = make_cohort(session)
        make_graduates(session, cohort, 1)
        start_round(session, quiet_settings, cohort, wib(2026, 3, 10, 9, 0),
                    ignore_quiet_hours=True)
        started = session.scalar(select(ProgressReport.created_at))
    # three days later, at 23:00 in Jakarta
    night = (started + timedelta(days=3)).astimezone(WIB).replace(hour=23, minute=0, second=0,
                                                                microsecond=0)
    with db.session() as session:
        assert send_reminders(session, quiet_settings, night.astimezone(UTC)) == 1
        reminder = session.scalar(select(Message).where(Message.kind == "reminder"))
        assert reminder.next_attempt_at == (night + timedelta(days=1)).replace(hour=7)


def test_open_checkins_expire_after_the_days(db, settings):
    round_id, grads, started = _open_round(db, settings)
    with db.session() as session:
        assert expire_checkins(session, settings, started + timedelta(days=6)) == 0
    with db.session() as session:
        assert expire_checkins(session, settings, started + timedelta(days=7, minutes=1)) == 3
    with db.session() as session:
        statuses = set(session.scalars(select(ProgressReport.status)))
        assert statuses == {REPORT_UNANSWERED}
        assert all(r.closed_at is not None for r in session.scalars(select(ProgressReport)))
        assert count(session, Conversation) == 0
        assert expire_checkins(session, settings, started + timedelta(days=30)) == 0
        # an expired check-in is not reminded either
        assert send_reminders(session, settings, started + timedelta(days=30)) == 0
