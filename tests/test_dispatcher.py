"""The outbox dispatcher: the real twilio SDK against the loopback fake, a real database.

Time is a fake clock (``FakeClock``) wherever backoff or pacing matters, so no test sleeps for
the seconds a retry would really wait; threads are awaited with deadlines.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bot.db import Database
from bot.dispatcher import Dispatcher
from bot.models import (
    MSG_FAILED,
    MSG_PENDING,
    MSG_QUEUED,
    MSG_SENDING,
    MSG_SUPPRESSED,
    Message,
    utcnow,
)
from bot.outbox import SENDING_LEASE, backoff_delay, enqueue
from bot.pacing import Budget, SlotTaker
from bot.transports import OutboundRequest, SendResult, fake_sid
from bot.transports.twilio import TwilioTransport
from tests.factories import make_cohort, make_graduates

CHECKIN_TEMPLATE = "HX" + "c" * 32


class FakeClock:
    """Wall clock and monotonic clock that only move when told to (or when slept on)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or utcnow() + timedelta(seconds=1)
        self._mono = 1000.0
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds


class RecordingTransport:
    """A transport that notes the (fake) time of every send, and can fail chosen numbers."""

    name = "recording"

    def __init__(self, clock: FakeClock | None = None, explode_for: str | None = None) -> None:
        self.clock = clock
        self.explode_for = explode_for
        self.sent: list[tuple[float | None, OutboundRequest]] = []

    def send(self, req: OutboundRequest) -> SendResult:
        if req.to == self.explode_for:
            raise RuntimeError("transport bug")
        self.sent.append((self.clock.monotonic() if self.clock else None, req))
        return SendResult(fake_sid(), "sent")


def _outbox(db: Database, count: int, kind: str = "reply", body: str = "Halo {name}",
            content_variables: bool = False, first_phone: int = 6281200000001,
            cohort_name: str = "Menjahit 1") -> list[int]:
    """``count`` graduates of one cohort, one pending message each; returns the message ids."""
    with db.session() as session:
        cohort = make_cohort(session, name=cohort_name)
        grads = make_graduates(session, cohort, count, first_phone=first_phone)
        messages = [enqueue(session, graduate=g, kind=kind, body=body.format(name=g.name),
                            content_variables={"1": g.name, "2": cohort.name}
                            if content_variables else None)
                    for g in grads]
        return [m.id for m in messages]


def _rows(db: Database) -> list[Message]:
    with db.session() as session:
        return list(session.scalars(select(Message).order_by(Message.id)))


def _row(db: Database, message_id: int) -> Message:
    with db.session() as session:
        return session.get(Message, message_id)


def _dispatcher(settings, db, clock: FakeClock, **kw) -> Dispatcher:
    return Dispatcher(settings, db, clock=clock.now, sleep=clock.sleep,
                      monotonic=clock.monotonic, **kw)


def _drain(dispatcher: Dispatcher, db: Database, clock: FakeClock, passes: int = 10) -> int:
    """Run passes, moving the clock past any backoff, until nothing is pending; return sent."""
    sent = 0
    for _ in range(passes):
        sent += dispatcher.run_once()
        if not any(m.status in (MSG_PENDING, MSG_SENDING) for m in _rows(db)):
            return sent
        clock.advance(601)
    raise AssertionError("the outbox did not drain")


# --- sending through Twilio -----------------------------------------------------------------

def test_pending_message_goes_to_twilio_and_row_gets_sid_and_queued(twilio_settings, db,
                                                                    twilio_fake):
    [message_id] = _outbox(db, 1, body="Apa kabar, {name}?")

    sent = Dispatcher(twilio_settings, db).run_once()

    assert sent == 1
    [accepted] = twilio_fake.accepted
    assert accepted["to"] == "whatsapp:+6281200000001"
    assert accepted["from"] == "whatsapp:+14155238886"
    assert accepted["body"] == "Apa kabar, Lulusan Menjahit 1 1?"
    assert accepted["status_callback"] == "http://kabar.test/twilio/status"
    row = _row(db, message_id)
    assert row.twilio_sid == accepted["sid"]
    assert row.status == MSG_QUEUED
    assert row.attempts == 1
    assert row.sent_at is not None
    assert row.claimed_by  # which dispatcher sent it


def test_kind_with_template_goes_out_as_content_sid_and_variables(twilio_settings, db,
                                                                  twilio_fake):
    settings = twilio_settings.with_overrides(twilio={"templates": {"checkin": CHECKIN_TEMPLATE}})
    [checkin_id] = _outbox(db, 1, kind="checkin", content_variables=True)
    [reply_id] = _outbox(db, 1, kind="reply", body="Terima kasih", first_phone=6281300000001,
                         cohort_name="Menjahit 2")

    assert Dispatcher(settings, db).run_once() == 2

    by_to = {m["to"]: m for m in twilio_fake.accepted}
    checkin = by_to["whatsapp:+6281200000001"]
    assert checkin["content_sid"] == CHECKIN_TEMPLATE
    assert checkin["content_variables"] == {"1": "Lulusan Menjahit 1 1", "2": "Menjahit 1"}
    assert checkin["body"] is None
    reply = by_to["whatsapp:+6281300000001"]
    assert (reply["content_sid"], reply["body"]) == (None, "Terima kasih")
    assert _row(db, checkin_id).content_sid == CHECKIN_TEMPLATE  # what went out is on record
    assert _row(db, reply_id).content_sid is None


def test_rate_limited_message_is_retried_and_delivered_exactly_once(twilio_settings, db,
                                                                    twilio_fake):
    [message_id] = _outbox(db, 1)
    twilio_fake.fail_next(1, http_status=429, code=20429)
    clock = FakeClock()
    dispatcher = _dispatcher(twilio_settings, db, clock)

    assert dispatcher.run_once() == 0
    waiting = _row(db, message_id)
    assert (waiting.status, waiting.attempts, waiting.error_code) == (MSG_PENDING, 1, "20429")
    assert clock.now() + timedelta(seconds=1) <= waiting.next_attempt_at
    assert waiting.next_attempt_at <= clock.now() + timedelta(seconds=2)
    assert dispatcher.run_once() == 0  # not due yet: nothing is sent early

    clock.advance(2)
    assert dispatcher.run_once() == 1

    row = _row(db, message_id)
    assert len(twilio_fake.accepted) == 1
    assert (row.status, row.attempts, row.twilio_sid) == (
        MSG_QUEUED, 2, twilio_fake.accepted[0]["sid"])
    assert row.error_code is None


def test_burst_of_503s_over_20_messages_sends_each_exactly_once(twilio_settings, db,
                                                                twilio_fake):
    ids = _outbox(db, 20)
    twilio_fake.fail_next(30, http_status=503, code=20503)
    clock = FakeClock()

    sent = _drain(_dispatcher(twilio_settings, db, clock), db, clock)

    rows = _rows(db)
    assert sent == 20
    assert Counter(m["to"] for m in twilio_fake.accepted) == Counter(
        {f"whatsapp:+{6281200000001 + i}": 1 for i in range(20)})
    assert all(r.status == MSG_QUEUED for r in rows)
    assert {r.twilio_sid for r in rows} == {m["sid"] for m in twilio_fake.accepted}
    assert sum(r.attempts for r in rows) == 20 + 30  # every 503 cost one attempt, no more
    assert len(ids) == len(rows)


def test_permanent_error_fails_that_message_and_the_others_still_go(twilio_settings, db,
                                                                    twilio_fake):
    ids = _outbox(db, 5)
    twilio_fake.fail_for("+6281200000003", http_status=400, code=21211)

    assert Dispatcher(twilio_settings, db).run_once() == 4

    failed = _row(db, ids[2])
    assert (failed.status, failed.error_code, failed.attempts) == (MSG_FAILED, "21211", 1)
    assert "Invalid 'To' Phone Number" in failed.error_message
    assert failed.twilio_sid is None
    assert [_row(db, i).status for i in ids] == [MSG_QUEUED] * 2 + [MSG_FAILED] + [MSG_QUEUED] * 2
    assert len(twilio_fake.accepted) == 4


def test_message_fails_when_attempts_are_used_up(twilio_settings, db, twilio_fake):
    settings = twilio_settings.with_overrides(dispatch={"max_attempts": 3})
    [message_id] = _outbox(db, 1)
    twilio_fake.fail_next(10, http_status=503, code=20503)
    clock = FakeClock()

    assert _drain(_dispatcher(settings, db, clock), db, clock) == 0

    row = _row(db, message_id)
    assert (row.status, row.attempts, row.error_code) == (MSG_FAILED, 3, "20503")
    assert row.error_message.startswith("gave up after 3 attempts")
    assert twilio_fake.accepted == []
    assert len(twilio_fake.requests) == 3


def test_connection_lost_before_twilio_accepted_is_looked_up_then_sent_again(twilio_settings,
                                                                             db, twilio_fake):
    [message_id] = _outbox(db, 1)
    twilio_fake.drop_connection_next(1)  # closed before accepting: the sender cannot tell
    clock = FakeClock()
    dispatcher = _dispatcher(twilio_settings, db, clock)

    assert dispatcher.run_once() == 0
    waiting = _row(db, message_id)
    assert (waiting.status, waiting.claimed_by, waiting.error_code) == (MSG_SENDING, None, None)
    assert "no answer from Twilio" in waiting.error_message
    assert waiting.next_attempt_at > clock.now()  # looked up after the usual backoff
    assert dispatcher.run_once() == 0  # not due yet: nothing asked, nothing sent
    assert [r["method"] for r in twilio_fake.requests] == ["POST"]

    clock.advance(2)
    assert dispatcher.run_once() == 1

    assert [r["method"] for r in twilio_fake.requests] == ["POST", "GET", "POST"]
    [accepted] = twilio_fake.accepted
    row = _row(db, message_id)
    assert (row.status, row.attempts, row.twilio_sid) == (MSG_QUEUED, 2, accepted["sid"])


def test_answer_lost_after_twilio_accepted_is_found_and_not_sent_again(twilio_settings, db,
                                                                       twilio_fake):
    ids = _outbox(db, 3)
    twilio_fake.drop_connection_next(1, after_accept=True)  # one message's answer is lost
    clock = FakeClock()
    dispatcher = _dispatcher(twilio_settings, db, clock)

    assert dispatcher.run_once() == 2
    # The three go out at once: whichever reached Twilio first lost its answer.
    [lost_id] = [i for i in ids if _row(db, i).status == MSG_SENDING]
    clock.advance(2)
    assert dispatcher.run_once() == 1  # found at Twilio: counted as taken, not sent again

    assert [r["method"] for r in twilio_fake.requests] == ["POST", "POST", "POST", "GET"]
    assert Counter(m["to"] for m in twilio_fake.accepted) == Counter(
        {f"whatsapp:+{6281200000001 + i}": 1 for i in range(3)})
    lost = _row(db, lost_id)
    assert (lost.status, lost.attempts, lost.twilio_sid) == (
        MSG_QUEUED, 1, twilio_fake.accepted[0]["sid"])
    assert twilio_fake.accepted[0]["to"] == f"whatsapp:{lost.phone}"
    assert lost.sent_at is not None


def test_unsettled_message_waits_while_twilio_cannot_be_asked(twilio_settings, db, twilio_fake):
    [message_id] = _outbox(db, 1)
    twilio_fake.drop_connection_next(1, after_accept=True)
    clock = FakeClock()
    dispatcher = _dispatcher(twilio_settings, db, clock)
    assert dispatcher.run_once() == 0
    twilio_fake.stop()  # Twilio unreachable: the message list cannot be read
    clock.advance(2)

    assert dispatcher.run_once() == 0

    row = _row(db, message_id)
    assert (row.status, row.claimed_by, row.twilio_sid) == (MSG_SENDING, None, None)
    assert row.next_attempt_at > clock.now()  # asked again later, never sent blindly
    assert row.attempts == 1
    assert len(twilio_fake.accepted) == 1


def test_refused_connection_is_retried_without_looking_up(twilio_settings, db, twilio_fake):
    [message_id] = _outbox(db, 1)
    twilio_fake.stop()  # nothing listens: the request never reached Twilio

    assert Dispatcher(twilio_settings, db).run_once() == 0

    row = _row(db, message_id)
    assert (row.status, row.attempts, row.claimed_by) == (MSG_PENDING, 1, None)
    assert "no answer from Twilio" in row.error_message


def _leave_sending(db: Database, message_id: int, claimed_at: datetime, attempts: int = 1,
                   worker: str = "crashed-worker") -> None:
    with db.session() as session:
        row = session.get(Message, message_id)
        row.status, row.attempts, row.claimed_at, row.claimed_by = (
            MSG_SENDING, attempts, claimed_at, worker)


def test_abandoned_rows_are_checked_against_twilio_before_sending_again(twilio_settings, db,
                                                                        twilio_fake):
    """A dispatcher died mid-batch: one request had reached Twilio, one had not; one row has
    used its last attempt; one belongs to a live dispatcher still within its lease."""
    reached, never_sent, last_try, live = _outbox(db, 4)
    now = utcnow()
    stale = now - SENDING_LEASE - timedelta(seconds=5)
    for message_id, attempts in ((reached, 1), (never_sent, 1), (last_try, 5)):
        _leave_sending(db, message_id, stale, attempts=attempts)
    _leave_sending(db, live, now, worker="live-worker")
    # The crashed dispatcher's request that Twilio took (its answer was never recorded).
    crashed = TwilioTransport(twilio_settings).send(OutboundRequest(
        message_id=reached, to="+6281200000001", body="Halo Lulusan Menjahit 1 1"))

    assert Dispatcher(twilio_settings, db).run_once() == 2  # one found, one sent again

    assert Counter(m["to"] for m in twilio_fake.accepted) == Counter(
        {"whatsapp:+6281200000001": 1, "whatsapp:+6281200000002": 1})
    found = _row(db, reached)
    assert (found.status, found.twilio_sid, found.attempts) == (MSG_QUEUED, crashed.sid, 1)
    resent = _row(db, never_sent)
    assert (resent.status, resent.attempts) == (MSG_QUEUED, 2)
    assert resent.twilio_sid == twilio_fake.accepted_to("+6281200000002")[0]["sid"]
    gave_up = _row(db, last_try)
    assert (gave_up.status, gave_up.twilio_sid) == (MSG_FAILED, None)
    assert gave_up.error_message.startswith("gave up after 5 attempts")
    assert (_row(db, live).status, _row(db, live).claimed_by) == (MSG_SENDING, "live-worker")


def test_lookup_ignores_sids_of_other_rows_and_other_texts(twilio_settings, db, twilio_fake):
    with db.session() as session:
        cohort = make_cohort(session)
        [grad] = make_graduates(session, cohort, 1)
        first = enqueue(session, graduate=grad, kind="reply", body="Terima kasih")
        second = enqueue(session, graduate=grad, kind="reply", body="Terima kasih")
        other = enqueue(session, graduate=grad, kind="reply", body="Menu")
    transport = TwilioTransport(twilio_settings)
    sent_first = transport.send(OutboundRequest(first.id, grad.phone, "Terima kasih"))
    sent_other = transport.send(OutboundRequest(other.id, grad.phone, "Menu"))
    with db.session() as session:
        for message_id, sid in ((first.id, sent_first.sid), (other.id, sent_other.sid)):
            row = session.get(Message, message_id)
            row.status, row.twilio_sid = MSG_QUEUED, sid
    _leave_sending(db, second.id, utcnow() - SENDING_LEASE * 2)

    assert Dispatcher(twilio_settings, db).run_once() == 1

    # The same text's SID belongs to the first row and "Menu" is another text: sent again.
    row = _row(db, second.id)
    assert (row.status, row.attempts) == (MSG_QUEUED, 2)
    assert len(twilio_fake.accepted_to(grad.phone)) == 3
    assert row.twilio_sid not in {sent_first.sid, sent_other.sid}


def test_transport_without_a_record_sends_an_abandoned_row_again(settings, db):
    [message_id] = _outbox(db, 1)
    _leave_sending(db, message_id, utcnow() - SENDING_LEASE * 2)
    transport = RecordingTransport()

    assert Dispatcher(settings, db, transport=transport).run_once() == 1

    assert len(transport.sent) == 1
    assert (_row(db, message_id).status, _row(db, message_id).attempts) == ("sent", 2)


def test_claim_lease_comes_from_the_configuration_and_bounds_the_batch(settings, db):
    settings = settings.with_overrides(dispatch={"claim_lease_seconds": 2,
                                                 "rate_per_second": 20})
    dispatcher = Dispatcher(settings, db)

    assert dispatcher.lease == timedelta(seconds=2)
    assert dispatcher.batch_size == 10  # a quarter of the lease at 20 a second
    assert Dispatcher(settings.with_overrides(dispatch={"claim_lease_seconds": 120}),
                      db).batch_size == 50


def test_two_dispatchers_share_50_messages_and_send_each_exactly_once(twilio_settings, db,
                                                                       twilio_fake):
    settings = twilio_settings.with_overrides(dispatch={"batch_size": 5})
    setup = db
    ids = _outbox(setup, 50)
    twilio_fake.latency = 0.01  # keeps both busy at once
    stop = threading.Event()
    databases = [Database(settings.database.url) for _ in range(2)]
    dispatchers = [Dispatcher(settings, d, worker_id=f"worker-{n}")
                   for n, d in enumerate(databases)]
    threads = [threading.Thread(target=d.run_forever, args=(stop,)) for d in dispatchers]
    for thread in threads:
        thread.start()
    try:
        assert twilio_fake.wait_for(lambda f: f.accepted_count() >= 50, timeout=30)
        deadline = time.monotonic() + 10
        while any(r.status != MSG_QUEUED for r in _rows(setup)):
            assert time.monotonic() < deadline, "rows were not all recorded as queued"
            time.sleep(0.02)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    rows = _rows(setup)
    for database in databases:
        database.dispose()

    assert not any(t.is_alive() for t in threads)
    assert len(twilio_fake.accepted) == 50
    assert len({m["to"] for m in twilio_fake.accepted}) == 50  # no duplicates, none lost
    assert sorted(r.id for r in rows) == sorted(ids)
    assert all(r.attempts == 1 for r in rows)
    assert {r.twilio_sid for r in rows} == {m["sid"] for m in twilio_fake.accepted}
    per_worker = Counter(r.claimed_by for r in rows)
    assert set(per_worker) == {"worker-0", "worker-1"}, per_worker  # both did part of it


# --- opt-out --------------------------------------------------------------------------------

def test_opted_out_graduates_are_never_sent_to(twilio_settings, db, twilio_fake):
    with db.session() as session:
        cohort = make_cohort(session)
        early, late, active = make_graduates(session, cohort, 3)
        early.opted_out = True
        active.last_inbound_at = utcnow()  # inside the 24-hour window: the text, no template
        session.flush()
        before = enqueue(session, graduate=early, kind="announcement", body="Info")
        confirm = enqueue(session, graduate=early, kind="optout_confirm", body="Anda berhenti")
        pending = enqueue(session, graduate=late, kind="announcement", body="Info")
        normal = enqueue(session, graduate=active, kind="announcement", body="Info")
    assert _row(db, before.id).status == MSG_SUPPRESSED
    with db.session() as session:  # opts out after the message was queued
        session.get(type(late), late.id).opted_out = True

    assert Dispatcher(twilio_settings, db).run_once() == 2

    assert sorted((m["to"], m["body"]) for m in twilio_fake.accepted) == [
        ("whatsapp:+6281200000001", "Anda berhenti"), ("whatsapp:+6281200000003", "Info")]
    assert _row(db, before.id).status == MSG_SUPPRESSED
    assert _row(db, pending.id).status == MSG_SUPPRESSED
    assert _row(db, pending.id).twilio_sid is None
    assert _row(db, confirm.id).status == MSG_QUEUED
    assert _row(db, normal.id).status == MSG_QUEUED


# --- pacing, failures, shutdown -------------------------------------------------------------

def test_sends_are_paced_to_the_configured_rate(settings, db):
    # One request in flight, so the fake clock's time at each send is that send's slot.
    settings = settings.with_overrides(dispatch={"rate_per_second": 5.0, "concurrency": 1})
    _outbox(db, 12)
    clock = FakeClock()
    transport = RecordingTransport(clock)
    started = time.monotonic()

    assert _dispatcher(settings, db, clock, transport=transport).run_once() == 12

    times = [t for t, _ in transport.sent]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.2 - 1e-9
    assert max(sum(1 for t in times if start <= t < start + 1) for start in times) <= 5
    assert times[-1] - times[0] == pytest.approx(11 * 0.2)
    assert time.monotonic() - started < 5  # the waiting was on the fake clock


def test_pacing_does_not_wait_when_sends_are_already_slow(settings, db):
    clock = FakeClock()
    slots = SlotTaker(Budget(db, 10.0, clock=clock.monotonic), block=1)

    for _ in range(3):
        assert slots.take() == clock.monotonic()  # the slot is now: no wait
        clock.advance(0.5)


def test_unexpected_transport_error_is_retried_and_others_still_sent(settings, db):
    ids = _outbox(db, 3)
    clock = FakeClock()
    transport = RecordingTransport(explode_for="+6281200000002")

    assert _dispatcher(settings, db, clock, transport=transport).run_once() == 2

    broken = _row(db, ids[1])
    assert (broken.status, broken.attempts) == (MSG_PENDING, 1)
    assert "transport bug" in broken.error_message
    assert [r.status for r in _rows(db)] == ["sent", MSG_PENDING, "sent"]


def test_console_dispatcher_prints_each_message(settings, db, capsys):
    settings = settings.with_overrides(transport={"kind": "console"})
    _outbox(db, 2, body="Apa kabar?")

    assert Dispatcher(settings, db).run_once() == 2

    out = capsys.readouterr().out
    assert "→ +6281200000001: Apa kabar?\n" in out
    assert "→ +6281200000002: Apa kabar?\n" in out


def test_simulator_dispatcher_records_rows_as_delivered(settings, db):
    [message_id] = _outbox(db, 1)

    assert Dispatcher(settings, db).run_once() == 1

    row = _row(db, message_id)
    assert row.status == "delivered" and row.twilio_sid.startswith("SM")


def test_stopping_mid_batch_gives_unsent_messages_back(settings, db):
    # One request in flight: the stop comes before the second is handed to a sending thread.
    settings = settings.with_overrides(dispatch={"concurrency": 1})
    ids = _outbox(db, 5)
    stop = threading.Event()

    class StopAfterFirst(RecordingTransport):
        def send(self, req):
            stop.set()
            return super().send(req)

    sent = _dispatcher(settings, db, FakeClock(), transport=StopAfterFirst()).run_once(
        stop_event=stop)

    assert sent == 1
    rest = [_row(db, i) for i in ids[1:]]
    assert [(r.status, r.attempts, r.claimed_by) for r in rest] == [(MSG_PENDING, 0, None)] * 4


def test_run_once_respects_limit(settings, db):
    _outbox(db, 7)

    assert Dispatcher(settings, db).run_once(limit=3) == 3
    assert Counter(r.status for r in _rows(db)) == {"delivered": 3, MSG_PENDING: 4}


class FlakyDatabase:
    """A Database whose first ``failures`` sessions fail, like a database that restarts."""

    def __init__(self, db: Database, failures: int) -> None:
        self._db = db
        self.failures = failures

    def session(self):
        if self.failures > 0:
            self.failures -= 1
            raise OperationalError("SELECT 1", {}, Exception("database is restarting"))
        return self._db.session()

    read_session = session


def test_run_forever_survives_database_errors_and_stops_on_event(settings, db, caplog):
    [message_id] = _outbox(db, 1)
    dispatcher = Dispatcher(settings, FlakyDatabase(db, failures=2))
    dispatcher.error_pause_seconds = 0.01
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run_forever, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while _row(db, message_id).status != "delivered":
            assert time.monotonic() < deadline, "the message was never sent"
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(timeout=10)

    assert not thread.is_alive()
    assert "pass failed" in caplog.text


# --- outbox bookkeeping ---------------------------------------------------------------------

def test_backoff_grows_from_2_seconds_to_a_10_minute_cap_with_jitter():
    assert backoff_delay(1, rand=lambda: 0.0) == timedelta(seconds=1)
    assert backoff_delay(1, rand=lambda: 1.0) == timedelta(seconds=2)
    assert backoff_delay(3, rand=lambda: 1.0) == timedelta(seconds=8)
    assert backoff_delay(30, rand=lambda: 1.0) == timedelta(minutes=10)
    assert backoff_delay(30, rand=lambda: 0.0) == timedelta(minutes=5)
