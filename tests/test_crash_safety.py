"""Crash safety: no message lost and none sent twice when a dispatcher dies or answers are lost.

The first test runs the real ``kabar dispatch`` command against the loopback fake of Twilio,
kills it with SIGKILL in the middle of a 20-graduate round (while Twilio has accepted a message
whose answer the dispatcher never got), starts it again and checks that every graduate got the
prompt exactly once. The second drives a dispatcher through 429 and 503 bursts and lost answers
over 50 messages and prints the figures (run with ``-s`` to see them).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.checkins import open_round
from bot.db import Database
from bot.dispatcher import Dispatcher
from bot.models import MSG_QUEUED, Message, utcnow
from bot.outbox import enqueue
from bot.transports import OutboundRequest, SendResult
from bot.transports.twilio import TwilioTransport
from tests.conftest import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN
from tests.factories import make_cohort, make_graduates
from tests.live import wait_for
from tests.twilio_fake import TwilioFake

CHECKIN_TEMPLATE = "HX" + "1" * 32
FIRST_PHONE = 6281200000001


def _rows(db: Database) -> list[Message]:
    with db.session() as session:
        return list(session.scalars(select(Message).order_by(Message.id)))


def _numbers(count: int) -> list[str]:
    return [f"+{FIRST_PHONE + i}" for i in range(count)]


def _per_number(fake: TwilioFake) -> Counter:
    return Counter(m["to"].removeprefix("whatsapp:") for m in fake.accepted)


# --- SIGKILL --------------------------------------------------------------------------------

def _kabar_command() -> list[str]:
    """The installed ``kabar`` console script of this interpreter, else the same entry point."""
    script = Path(sys.executable).parent / "kabar"
    if script.exists():
        return [str(script)]
    found = shutil.which("kabar")
    if found:
        return [found]
    return [sys.executable, "-c", "from bot.cli import main; main()"]


def _write_config(path: Path, database_url: str, fake: TwilioFake) -> Path:
    path.write_text(f"""
[app]
secret_key = "crash-test-secret"
public_url = "https://kabar.example.go.id"

[database]
url = {json.dumps(database_url)}

[transport]
kind = "twilio"

[twilio]
account_sid = "{TEST_ACCOUNT_SID}"
auth_token = "{TEST_AUTH_TOKEN}"
whatsapp_from = "whatsapp:+14155238886"
api_base_url = "{fake.url}"

[twilio.templates]
checkin = "{CHECKIN_TEMPLATE}"

[scheduler]
quiet_hours = ""

[dispatch]
rate_per_second = 20.0
poll_interval_seconds = 0.1
claim_lease_seconds = 1.0
""", encoding="utf-8")
    return path


class DispatchProcess:
    """``kabar --config FILE dispatch`` as a child process, its log in a file."""

    def __init__(self, config: Path, log: Path) -> None:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("KABAR_", "TWILIO_"))}
        self.log = log
        self._log_file = log.open("ab")
        self.proc = subprocess.Popen([*_kabar_command(), "--config", str(config), "dispatch"],
                                     stdout=self._log_file, stderr=subprocess.STDOUT, env=env)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is given back or recorded."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGINT)  # run_forever ends on KeyboardInterrupt
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log_file.close()

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def _in_flight(fake: TwilioFake) -> int:
    """Messages the fake accepted whose answer it has not sent yet."""
    answered = sum(1 for r in fake.requests if r["method"] == "POST" and r.get("sid")
                   and r.get("answer") != "dropped")
    return len(fake.accepted) - answered


@pytest.mark.slow
def test_sigkill_mid_round_then_restart_sends_each_prompt_exactly_once(tmp_path, settings, db,
                                                                        twilio_fake):
    with db.session() as session:
        cohort = make_cohort(session, name="Menjahit 1")
        make_graduates(session, cohort, 20, first_phone=FIRST_PHONE)
        started = open_round(session, settings, cohort, utcnow(), trigger="manual",
                             ignore_quiet_hours=True)
    assert started.prompts == 20
    config = _write_config(tmp_path / "config.toml", settings.database.url, twilio_fake)
    log = tmp_path / "dispatch.log"

    first = DispatchProcess(config, log)
    try:
        assert twilio_fake.wait_for(lambda f: f.accepted_count() >= 5, timeout=30), \
            first.output()
        # From now on Twilio takes each message but holds its answer: the next one accepted is
        # at Twilio while the dispatcher still waits for its SID. Kill it right then.
        twilio_fake.latency = 30.0
        assert twilio_fake.wait_for(lambda f: _in_flight(f) >= 1, timeout=10), first.output()
        first.kill()
    finally:
        twilio_fake.latency = 0.0
        first.stop()
    accepted_at_kill = twilio_fake.accepted_count()
    assert 5 <= accepted_at_kill < 20
    rows = _rows(db)
    accepted_numbers = set(_per_number(twilio_fake))
    unrecorded = [r for r in rows if r.phone in accepted_numbers and r.twilio_sid is None]
    assert unrecorded, "no message was at Twilio without its SID stored"
    assert all(r.status == "sending" for r in unrecorded)
    assert any(r.twilio_sid is None and r.phone not in accepted_numbers for r in rows)

    second = DispatchProcess(config, log)
    try:
        wait_for(lambda: all(r.twilio_sid for r in _rows(db)), timeout=60,
                 message="every prompt to be recorded with a SID after the restart")
    finally:
        second.stop()

    per_number = _per_number(twilio_fake)
    assert per_number == Counter({n: 1 for n in _numbers(20)}), second.output()
    rows = _rows(db)
    by_number = {m["to"].removeprefix("whatsapp:"): m["sid"] for m in twilio_fake.accepted}
    assert {r.phone: r.twilio_sid for r in rows} == by_number
    assert all(r.status == MSG_QUEUED for r in rows)
    assert all(m["content_sid"] == CHECKIN_TEMPLATE for m in twilio_fake.accepted)
    assert any(r["method"] == "GET" for r in twilio_fake.requests)  # looked up, not guessed
    assert "checking with the provider" in second.output()


# --- injected faults ------------------------------------------------------------------------

class StagedFaults(TwilioTransport):
    """The real Twilio transport, arming the fake's faults at fixed points of the run.

    Before the 1st request: a burst of eight 429s; before the 15th: five answers lost after
    Twilio accepted; before the 25th: a burst of ten 503s; before the 40th: five more lost
    answers and two connections closed before Twilio took the message. Armed from the sending
    thread, so every fault is met whatever the machine's speed.
    """

    STAGES = {
        0: lambda fake: fake.fail_next(8, http_status=429, code=20429),
        15: lambda fake: fake.drop_connection_next(5, after_accept=True),
        25: lambda fake: fake.fail_next(10, http_status=503, code=20503),
        40: lambda fake: (fake.drop_connection_next(5, after_accept=True),
                          fake.drop_connection_next(2)),
    }

    def __init__(self, settings, fake: TwilioFake) -> None:
        super().__init__(settings)
        self.fake = fake
        self.requests = 0

    def send(self, req: OutboundRequest) -> SendResult:
        arm = self.STAGES.get(self.requests)
        if arm is not None:
            arm(self.fake)
        self.requests += 1
        return super().send(req)


def test_429_503_bursts_and_lost_answers_over_50_messages_deliver_each_exactly_once(
        twilio_settings, db, twilio_fake, monkeypatch):
    # The backoff keeps its shape (2 s × 2^n with jitter) at a fiftieth of the scale, so the run
    # takes a second or two instead of minutes; nothing else is changed.
    monkeypatch.setattr("bot.outbox.BACKOFF_BASE_SECONDS", 0.04)
    settings = twilio_settings.with_overrides(dispatch={"rate_per_second": 50.0,
                                                        "batch_size": 10})
    with db.session() as session:
        cohort = make_cohort(session)
        grads = make_graduates(session, cohort, 50, first_phone=FIRST_PHONE)
        for grad in grads:
            enqueue(session, graduate=grad, kind="reply", body=f"Halo {grad.name}")
    stop = threading.Event()
    transport = StagedFaults(settings, twilio_fake)
    dispatcher = Dispatcher(settings, db, transport=transport, worker_id="faulty-network")
    thread = threading.Thread(target=dispatcher.run_forever, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: all(r.twilio_sid for r in _rows(db)), timeout=60,
                 message="all 50 messages to be recorded with a SID")
    finally:
        stop.set()
        thread.join(timeout=20)
    assert not thread.is_alive()

    answers = Counter(r.get("answer") for r in twilio_fake.requests if r["method"] == "POST")
    lost_answers = sum(1 for r in twilio_fake.requests
                       if r.get("answer") == "dropped" and r.get("sid"))
    lookups = sum(1 for r in twilio_fake.requests if r["method"] == "GET")
    per_number = _per_number(twilio_fake)
    rows = _rows(db)
    sent = len(per_number)
    duplicates = sum(count - 1 for count in per_number.values())
    lost = sum(1 for n in _numbers(50) if per_number[n] == 0)
    print(f"\ninjected faults over 50 messages: {answers[429]} × 429, {answers[503]} × 503, "
          f"{lost_answers} answers lost after Twilio accepted, "
          f"{answers['dropped'] - lost_answers} connections dropped before accepting; "
          f"{lookups} look-ups in Twilio's message list")
    print(f"sent {sent}, duplicates {duplicates}, lost {lost}")

    assert (answers[429], answers[503], answers["dropped"], lost_answers) == (8, 10, 12, 10)
    assert (sent, duplicates, lost) == (50, 0, 0)
    assert all(r.status == MSG_QUEUED for r in rows)
    assert {r.twilio_sid for r in rows} == {m["sid"] for m in twilio_fake.accepted}
    assert lookups >= 1
    assert max(r.attempts for r in rows) <= settings.dispatch.max_attempts
    assert all(r.next_attempt_at is None for r in rows)
    assert dispatcher.lease == timedelta(seconds=settings.dispatch.claim_lease_seconds)

