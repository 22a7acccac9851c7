"""Concurrent, paced dispatch: requests in flight at once, one rate for every dispatcher.

The real twilio SDK against the loopback fake of Twilio answering with a delay, a real
database, and for the crash and the shared rate real ``kabar dispatch`` processes. Every test
waits on a condition with a deadline; timing figures are the benchmark's (benchmarks/dispatch.py).
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from sqlalchemy import select

from bot import health
from bot.checkins import open_round
from bot.db import Database
from bot.dispatcher import Dispatcher
from bot.models import MSG_PENDING, MSG_QUEUED, MSG_SENDING, Message, Process, utcnow
from bot.outbox import enqueue
from bot.pacing import Budget
from bot.transports import OutboundRequest, TransportError
from bot.transports.twilio import TwilioTransport, parse_retry_after
from tests.factories import make_cohort, make_graduates
from tests.live import wait_for
from tests.test_crash_safety import (
    FIRST_PHONE,
    DispatchProcess,
    _in_flight,
    _numbers,
    _per_number,
    _write_config,
)


def _outbox(db: Database, count: int) -> list[int]:
    with db.session() as session:
        cohort = make_cohort(session, name="Menjahit 1")
        grads = make_graduates(session, cohort, count, first_phone=FIRST_PHONE)
        # Replies inside the graduates' window go out as plain text.
        for g in grads:
            g.last_inbound_at = utcnow()
        return [enqueue(session, graduate=g, kind="reply", body=f"Halo {g.name}").id
                for g in grads]


def _rows(db: Database) -> list[Message]:
    with db.session() as session:
        return list(session.scalars(select(Message).order_by(Message.id)))


def _accepted_posts(fake) -> list[dict]:
    return [r for r in fake.requests if r["method"] == "POST" and r.get("sid")]


def _assert_each_sent_once_with_its_sid(db: Database, fake, count: int) -> None:
    assert _per_number(fake) == Counter({n: 1 for n in _numbers(count)})
    sids = {m["to"].removeprefix("whatsapp:"): m["sid"] for m in fake.accepted}
    rows = _rows(db)
    assert {r.phone: r.twilio_sid for r in rows} == sids
    assert all(r.status == MSG_QUEUED for r in rows)


def test_requests_overlap_up_to_the_concurrency_and_each_goes_once(twilio_settings, db,
                                                                    twilio_fake):
    settings = twilio_settings.with_overrides(dispatch={"concurrency": 8})
    _outbox(db, 40)
    twilio_fake.latency = 0.2

    assert Dispatcher(settings, db).run_once() == 40

    assert twilio_fake.max_in_flight == 8  # eight requests at Twilio at once, never more
    _assert_each_sent_once_with_its_sid(db, twilio_fake, 40)
    assert all(r.attempts == 1 for r in _rows(db))


def test_stop_lets_requests_in_flight_finish_and_gives_the_rest_back(twilio_settings, db,
                                                                      twilio_fake):
    settings = twilio_settings.with_overrides(dispatch={"concurrency": 4})
    _outbox(db, 30)
    twilio_fake.latency = 0.3
    stop = threading.Event()
    dispatcher = Dispatcher(settings, db)
    thread = threading.Thread(target=dispatcher.run_once, kwargs={"stop_event": stop})
    thread.start()
    try:
        assert twilio_fake.wait_for(lambda f: f.in_flight >= 4 and f.accepted_count() >= 4,
                                    timeout=10)
        stop.set()
    finally:
        stop.set()
        thread.join(timeout=20)
    assert not thread.is_alive()

    rows = _rows(db)
    sent = {m["to"].removeprefix("whatsapp:"): m["sid"] for m in twilio_fake.accepted}
    assert 4 <= len(sent) < 30
    assert Counter(m["to"] for m in twilio_fake.accepted).most_common(1)[0][1] == 1
    for row in rows:
        if row.phone in sent:  # in flight at the stop: finished and recorded
            assert (row.status, row.twilio_sid) == (MSG_QUEUED, sent[row.phone])
        else:  # claimed but not sent: given back as it was
            assert (row.status, row.attempts, row.claimed_by) == (MSG_PENDING, 0, None)
    assert not any(r.status == MSG_SENDING for r in rows)


def test_429_with_retry_after_pauses_every_dispatcher_then_the_message_goes_once(
        twilio_settings, db, twilio_fake):
    settings = twilio_settings.with_overrides(dispatch={"concurrency": 4,
                                                        "rate_per_second": 20.0})
    _outbox(db, 30)
    twilio_fake.latency = 0.01
    twilio_fake.retry_after = "2"
    twilio_fake.fail_next(1, 429, 20429)
    stop = threading.Event()
    databases = [Database(settings.database.url) for _ in range(2)]
    dispatchers = [Dispatcher(settings, d, worker_id=f"host:1:worker{n}")
                   for n, d in enumerate(databases)]
    threads = [threading.Thread(target=d.run_forever, args=(stop,)) for d in dispatchers]
    for thread in threads:
        thread.start()
    try:
        assert twilio_fake.wait_for(lambda f: f.accepted_count() >= 30, timeout=30)
        wait_for(lambda: all(r.status == MSG_QUEUED for r in _rows(db)), timeout=10,
                 message="every row to be recorded")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=20)
        for database in databases:
            database.dispose()
    assert not any(t.is_alive() for t in threads)

    [limited] = [r for r in twilio_fake.requests if r.get("answer") == 429]
    at = limited["at"]
    posts = [r["at"] - at for r in twilio_fake.requests if r["method"] == "POST"]
    # Slots handed out before the pause (a block of at most 4 per dispatcher, 0.2 s) may still
    # go; after that nothing until Twilio's two seconds have passed, from either dispatcher.
    assert not [t for t in posts if 0.5 < t < 1.95]
    assert [t for t in posts if t >= 1.95]
    _assert_each_sent_once_with_its_sid(db, twilio_fake, 30)
    retried = [r for r in _rows(db) if r.phone == limited["form"]["To"].removeprefix(
        "whatsapp:")]
    assert [r.attempts for r in retried] == [2]


def test_retry_after_is_read_from_twilio_429(twilio_settings, twilio_fake):
    twilio_fake.retry_after = "7"
    twilio_fake.fail_next(1, 429, 20429)
    transport = TwilioTransport(twilio_settings)

    with pytest.raises(TransportError) as raised:
        transport.send(OutboundRequest(message_id=1, to="+6281200000001", body="Halo"))

    assert raised.value.rate_limited and raised.value.retryable
    assert raised.value.retry_after == 7.0


def test_retry_after_as_seconds_or_http_date():
    now = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
    assert parse_retry_after("3", now) == 3.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True),
                             now) == 30.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None


def test_budget_hands_out_each_slot_once_across_dispatchers(db):
    clock = [1000.0]
    budgets = [Budget(db, 10.0, clock=lambda: clock[0]) for _ in range(2)]

    starts = [budgets[0].reserve(5), budgets[1].reserve(5), budgets[0].reserve(2)]

    assert starts == [1000.0, 1000.5, 1001.0]  # one after the other, never overlapping
    budgets[1].pause(3.0)
    assert budgets[0].reserve(1) == 1003.0  # the pause holds back the other one too


def test_serving_dispatcher_reports_itself_and_is_forgotten_on_stop(settings, db):
    settings = settings.with_overrides(dispatch={"concurrency": 3, "rate_per_second": 50.0})
    dispatcher = Dispatcher(settings, db, worker_id="host:42:abcdef01")
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run_forever, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: health.report(db)["dispatchers"], timeout=10,
                 message="the dispatcher's heartbeat")
        [shown] = health.report(db)["dispatchers"]
        assert shown["name"] == "host:42:abcdef01" and shown["alive"]
        assert shown["detail"] == {"in_flight": 0, "sent": 0, "concurrency": 3,
                                   "rate_per_second": 50.0, "last_error": None}
    finally:
        stop.set()
        thread.join(timeout=10)
    with db.session() as session:
        assert session.scalars(select(Process)).all() == []


# --- real processes -------------------------------------------------------------------------

def _config(tmp_path, settings, fake, **dispatch):
    """The crash tests' configuration with these ``[dispatch]`` keys."""
    path = _write_config(tmp_path / "config.toml", settings.database.url, fake)
    text = path.read_text(encoding="utf-8").replace("rate_per_second = 20.0\n", "")
    dispatch.setdefault("rate_per_second", 20.0)
    extra = "".join(f"{k} = {v}\n" for k, v in dispatch.items())
    path.write_text(text.replace("[dispatch]\n", "[dispatch]\n" + extra, 1), encoding="utf-8")
    return path


@pytest.mark.slow
def test_kill_9_with_requests_in_flight_then_recovery_sends_each_exactly_once(
        tmp_path, settings, db, twilio_fake):
    with db.session() as session:
        cohort = make_cohort(session, name="Menjahit 1")
        make_graduates(session, cohort, 60, first_phone=FIRST_PHONE)
        open_round(session, settings, cohort, utcnow(), trigger="manual",
                   ignore_quiet_hours=True)
    config = _config(tmp_path, settings, twilio_fake, concurrency=8,
                     rate_per_second=1000.0)
    log = tmp_path / "dispatch.log"
    twilio_fake.latency = 0.05

    first = DispatchProcess(config, log)
    try:
        assert twilio_fake.wait_for(lambda f: f.accepted_count() >= 10, timeout=30), \
            first.output()
        # Twilio now holds its answers: several messages are at Twilio without their SIDs.
        twilio_fake.latency = 30.0
        assert twilio_fake.wait_for(lambda f: _in_flight(f) >= 4, timeout=10), first.output()
        first.kill()
    finally:
        twilio_fake.latency = 0.0
        first.stop()
    accepted = twilio_fake.accepted_count()
    assert accepted < 60
    rows = _rows(db)
    numbers_at_twilio = set(_per_number(twilio_fake))
    assert len([r for r in rows if r.phone in numbers_at_twilio and r.twilio_sid is None]) >= 4

    second = DispatchProcess(config, log)
    try:
        wait_for(lambda: all(r.twilio_sid for r in _rows(db)), timeout=60,
                 message="every prompt to be recorded with a SID after the restart")
    finally:
        second.stop()

    assert _per_number(twilio_fake) == Counter({n: 1 for n in _numbers(60)}), second.output()
    by_number = {m["to"].removeprefix("whatsapp:"): m["sid"] for m in twilio_fake.accepted}
    assert {r.phone: r.twilio_sid for r in _rows(db)} == by_number
    assert "checking with the provider" in second.output()


@pytest.mark.slow
def test_two_dispatcher_processes_share_one_rate(tmp_path, settings, db, twilio_fake):
    rate = 20.0
    config = _config(tmp_path, settings, twilio_fake, concurrency=8, rate_per_second=rate)
    procs = [DispatchProcess(config, tmp_path / f"dispatch{n}.log") for n in range(2)]
    try:
        def both_beat():
            with db.session() as session:
                return len(session.scalars(select(Process).where(
                    Process.kind == "dispatcher")).all()) == 2

        wait_for(both_beat, timeout=30, message="both dispatchers to report")
        _outbox(db, 100)
        assert twilio_fake.wait_for(lambda f: f.accepted_count() >= 100, timeout=60)
        wait_for(lambda: all(r.twilio_sid for r in _rows(db)), timeout=20,
                 message="every row to be recorded")
    finally:
        for proc in procs:
            proc.stop()

    times = sorted(r["at"] for r in _accepted_posts(twilio_fake))
    assert len(times) == 100
    average = (len(times) - 1) / (times[-1] - times[0])
    busiest = max(sum(1 for t in times if start <= t < start + 1) for start in times)
    # Alone, each would send at 20 a second: together they still do.
    assert average <= rate * 1.05, average
    # A slot left over by a held-up dispatcher may go up to 0.25 s late (bot.pacing).
    assert busiest <= rate * 1.25 + 1, busiest
    assert len({r.claimed_by for r in _rows(db)}) == 2  # both sent
    _assert_each_sent_once_with_its_sid(db, twilio_fake, 100)


def test_claimed_rows_are_given_back_before_settling_in_the_middle_of_a_pass(settings, db,
                                                                             monkeypatch):
    """Settling asks the provider one message after another and may take longer than the lease:
    rows claimed and not yet sent must not wait through it, or they would be taken for
    abandoned and sent twice."""
    import bot.dispatcher as dispatcher_module
    from bot.transports import SendResult, fake_sid

    monkeypatch.setattr(dispatcher_module, "SETTLE_EVERY_SECONDS", 0.0)
    settings = settings.with_overrides(dispatch={"concurrency": 4})
    ids = _outbox(db, 40)
    sent: list[int] = []

    class Instant:
        name = "instant"

        def send(self, req):
            sent.append(req.message_id)
            return SendResult(fake_sid(), "sent")

    dispatcher = Dispatcher(settings, db, transport=Instant(), worker_id="host:1:me")
    held_while_settling: list[int] = []
    settle = dispatcher.settle

    def checking_settle(stop_event=None):
        with db.session() as session:
            mine = session.scalars(select(Message.id).where(
                Message.status == MSG_SENDING, Message.claimed_by == "host:1:me")).all()
        unsent = set(mine) - set(sent)
        held_while_settling.append(len(unsent) - dispatcher._in_flight)
        return settle(stop_event)

    monkeypatch.setattr(dispatcher, "settle", checking_settle)

    assert dispatcher.run_once() == 40

    assert len(held_while_settling) > 3  # it settled in the middle of the pass
    assert max(held_while_settling) <= 0  # with nothing claimed waiting but what was in flight
    assert Counter(sent) == Counter(ids)


@pytest.mark.slow
def test_sigterm_stops_cleanly_with_requests_in_flight(tmp_path, settings, db, twilio_fake):
    import signal

    config = _config(tmp_path, settings, twilio_fake, concurrency=4, rate_per_second=1000.0)
    proc = DispatchProcess(config, tmp_path / "dispatch.log")
    try:
        wait_for(lambda: _processes(db) == 1, timeout=30, message="the dispatcher to report")
        _outbox(db, 60)
        twilio_fake.latency = 0.3
        assert twilio_fake.wait_for(lambda f: f.accepted_count() >= 8 and f.in_flight >= 4,
                                    timeout=30), proc.output()
        proc.proc.send_signal(signal.SIGTERM)  # what systemd sends
        assert proc.proc.wait(timeout=20) == 0, proc.output()
    finally:
        proc.stop()

    rows = _rows(db)
    sent = {m["to"].removeprefix("whatsapp:"): m["sid"] for m in twilio_fake.accepted}
    assert 8 <= len(sent) < 60
    for row in rows:
        if row.phone in sent:  # in flight at the signal: finished and recorded
            assert (row.status, row.twilio_sid) == (MSG_QUEUED, sent[row.phone])
        else:
            assert (row.status, row.attempts, row.claimed_by) == (MSG_PENDING, 0, None)
    assert _processes(db) == 0  # its heartbeat row is gone


def _processes(db: Database) -> int:
    with db.session() as session:
        return len(session.scalars(select(Process).where(Process.kind == "dispatcher")).all())


def test_one_graduates_messages_go_one_after_the_other_in_their_order(twilio_settings, db,
                                                                      twilio_fake):
    settings = twilio_settings.with_overrides(dispatch={"concurrency": 8})
    with db.session() as session:
        cohort = make_cohort(session, name="Menjahit 1")
        grads = make_graduates(session, cohort, 4, first_phone=FIRST_PHONE)
        for g in grads:
            g.last_inbound_at = utcnow()
            for n in range(1, 4):  # a thank-you, then the next questions
                enqueue(session, graduate=g, kind="reply", body=f"{g.phone} pesan {n}")
    twilio_fake.latency = 0.1

    assert Dispatcher(settings, db).run_once() == 12

    assert twilio_fake.max_in_flight >= 4  # the graduates' messages still overlap
    posts = [r for r in twilio_fake.requests if r["method"] == "POST"]
    for g in grads:
        mine = [r for r in posts if r["form"]["To"] == f"whatsapp:{g.phone}"]
        assert [r["form"]["Body"] for r in mine] == [f"{g.phone} pesan {n}" for n in (1, 2, 3)]
        # Each went to Twilio only after the one before had its answer.
        assert all(b["at"] >= a["at"] + 0.1 for a, b in zip(mine, mine[1:], strict=False))
