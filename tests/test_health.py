"""/healthz and ``kabar status``: the scheduler leader, dispatchers' heartbeats, backlogs."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

from click.testing import CliRunner

from bot import create_app, processes
from bot.cli import main
from bot.db import Database
from bot.models import Message, utcnow
from scheduler import jobs
from scheduler.service import LEADER, REPLACED, STANDBY, SchedulerNode, Timings
from tests.live import wait_for
from tests.test_standby import write_config

QUICK = Timings(retry=timedelta(seconds=0.2), confirm=timedelta(seconds=0.2),
                step_down_after=timedelta(seconds=1), takeover_delay=timedelta(seconds=0.5),
                beat=timedelta(seconds=0.3))


def outbound(status: str, **fields) -> Message:
    return Message(direction="out", phone="+6281200000001", kind="reply", body="x",
                   status=status, **fields)


def test_healthz_shows_the_leader_standbys_dispatchers_and_the_outbox_backlog(client, db):
    now = utcnow()
    processes.beat(db, "web1:10:aaaaaaaa", "scheduler", LEADER,
                   {"leading_since": (now - timedelta(hours=2)).isoformat(),
                    "next_job": {"id": "checkin:1", "name": "check-in Menjahit 1",
                                 "at": (now + timedelta(minutes=5)).isoformat()},
                    "running": []}, now=now - timedelta(seconds=2))
    processes.beat(db, "web2:20:bbbbbbbb", "scheduler", STANDBY,
                   {"standby_since": (now - timedelta(hours=1)).isoformat()}, now=now)
    processes.beat(db, "web3:30:cccccccc", "scheduler", REPLACED, {}, now=now - timedelta(hours=3))
    processes.beat(db, "send1:40:dddddddd", "dispatcher", "sending", {"sent": 12, "in_flight": 3},
                   now=now - timedelta(seconds=1))
    processes.beat(db, "send2:50:eeeeeeee", "dispatcher", "idle", {"sent": 0},
                   now=now - timedelta(seconds=90))
    with db.session() as session:
        session.add_all([
            outbound("pending", next_attempt_at=now - timedelta(seconds=90)),
            outbound("pending", next_attempt_at=now - timedelta(seconds=5)),
            outbound("pending", next_attempt_at=now + timedelta(hours=1)),  # not due yet
            outbound("sending", claimed_by="send1", claimed_at=now),
            outbound("sending", claimed_by="gone", claimed_at=now - timedelta(hours=1)),
            outbound("sending", claimed_by=None, claimed_at=now - timedelta(minutes=1),
                     next_attempt_at=now + timedelta(minutes=1)),  # outcome unknown
            outbound("sent", twilio_sid="SM" + "1" * 32),
            Message(direction="in", phone="+6281200000002", kind="inbound", body="halo",
                    status="received"),
        ])
    reply = client.get("/healthz")
    assert reply.status_code == 200
    found = reply.get_json()
    assert found["status"] == "ok" and found["problems"] == []
    assert found["inbox_waiting"] == 1
    lead = found["scheduler"]["leader"]
    assert lead["name"] == "web1:10:aaaaaaaa" and lead["pid"] == 10
    assert lead["since"] == (now - timedelta(hours=2)).isoformat()
    assert 1 < lead["seconds_since_beat"] < 10
    assert lead["next_job"]["name"] == "check-in Menjahit 1"
    assert [s["name"] for s in found["scheduler"]["standbys"]] == ["web2:20:bbbbbbbb"]
    by_name = {d["name"]: d for d in found["dispatchers"]}
    assert by_name["send1:40:dddddddd"]["alive"] is True
    assert by_name["send1:40:dddddddd"]["role"] == "sending"
    assert by_name["send1:40:dddddddd"]["detail"] == {"sent": 12, "in_flight": 3}
    assert by_name["send2:50:eeeeeeee"]["alive"] is False
    assert by_name["send2:50:eeeeeeee"]["seconds_since_beat"] >= 90
    outbox = found["outbox"]
    assert (outbox["due_now"], outbox["sending"], outbox["unsettled"]) == (2, 3, 2)
    assert 90 <= outbox["oldest_due_seconds"] < 120


def test_healthz_is_degraded_without_a_leader_or_without_a_dispatcher_while_messages_wait(
        client, db):
    now = utcnow()
    # Nothing reported at all, nothing waiting: only the leader is missing.
    found = client.get("/healthz").get_json()
    assert found["status"] == "degraded"
    assert found["problems"] == ["no scheduler leads: no check-in round, reminder or expiry "
                                 "starts (no scheduler has reported)"]
    # The leader died 2 minutes ago; a message waits and the only dispatcher is gone.
    processes.beat(db, "web1:10:aaaaaaaa", "scheduler", LEADER, {},
                   now=now - timedelta(minutes=2))
    processes.beat(db, "send1:40:dddddddd", "dispatcher", "idle", {},
                   now=now - timedelta(minutes=2))
    with db.session() as session:
        session.add(outbound("pending", next_attempt_at=now - timedelta(seconds=1)))
    reply = client.get("/healthz")
    assert reply.status_code == 200  # the web app itself is fine
    found = reply.get_json()
    assert found["status"] == "degraded"
    assert found["scheduler"]["leader"] is None
    assert found["problems"][0].startswith("no scheduler leads")
    assert "last leader heard from 2 min ago" in found["problems"][0]
    assert found["problems"][1] == ("no dispatcher is alive and 1 messages wait "
                                    "(0 incoming, 1 outgoing)")
    # A dispatcher and a leader beat again: ok.
    processes.beat(db, "send1:40:dddddddd", "dispatcher", "sending", {})
    processes.beat(db, "web1:10:aaaaaaaa", "scheduler", LEADER, {})
    assert client.get("/healthz").get_json()["status"] == "ok"
    # Two schedulers that both say they lead: something is wrong (two lock files, say).
    processes.beat(db, "web2:20:bbbbbbbb", "scheduler", LEADER, {})
    found = client.get("/healthz").get_json()
    assert found["status"] == "degraded"
    assert found["problems"][0].startswith("2 schedulers say they lead: ")
    assert found["scheduler"]["leader"]["name"] == "web2:20:bbbbbbbb"  # the latest beat


def test_healthz_shows_a_running_scheduler_process_and_its_next_job(client, db, settings):
    from tests.factories import make_cohort

    with db.session() as session:
        make_cohort(session, "Menjahit 1", schedule="0 9 * * *")
    node = SchedulerNode(settings, db, timings=QUICK)
    stop = threading.Event()
    runner = threading.Thread(target=node.run, args=(stop,))
    runner.start()
    try:
        def leading():
            lead = client.get("/healthz").get_json()["scheduler"]["leader"]
            return lead if lead and lead.get("next_job") else None
        lead = wait_for(leading, timeout=30, message="/healthz to show the leader's next job")
        assert lead["name"] == node.name
        assert lead["next_job"]["name"] in ("reconcile cohort jobs", "check-in Menjahit 1",
                                            "check-in reminders", "check-in expiry")
    finally:
        stop.set()
        runner.join(timeout=30)
        jobs.reset()
    # A clean stop removes its row: nobody leads now.
    assert client.get("/healthz").get_json()["scheduler"]["leader"] is None


def test_healthz_answers_503_with_a_reason_when_the_database_cannot_be_read(settings, tmp_path):
    broken = Database(f"sqlite:///{tmp_path / 'missing' / 'kabar.db'}")
    app = create_app(settings, broken)
    reply = app.test_client().get("/healthz")
    assert reply.status_code == 503
    assert reply.get_json() == {"status": "unavailable",
                                "reason": "the database cannot be read (OperationalError)"}


# --- kabar status ---------------------------------------------------------------------------

def test_kabar_status_prints_the_report_and_exits_non_zero_when_degraded(db, settings,
                                                                         tmp_path):
    config = write_config(tmp_path / "kabar.toml", settings.database.url)
    runner = CliRunner()
    result = runner.invoke(main, ["--config", str(config), "status"])
    assert result.exit_code == 1, result.output
    assert "Kabar: degraded" in result.output
    assert "! no scheduler leads" in result.output
    assert "leader   none" in result.output

    processes.beat(db, "web1:10:aaaaaaaa", "scheduler", LEADER,
                   {"leading_since": utcnow().isoformat(),
                    "next_job": {"id": "kabar:reminders", "name": "check-in reminders",
                                 "at": utcnow().isoformat()}})
    processes.beat(db, "send1:40:dddddddd", "dispatcher", "sending", {"sent": 3})
    result = runner.invoke(main, ["--config", str(config), "status"])
    assert result.exit_code == 0, result.output
    assert "Kabar: ok" in result.output
    assert "leader   web1:10:aaaaaaaa" in result.output
    assert "next: check-in reminders" in result.output
    assert "send1:40:dddddddd  sending  alive" in result.output
    assert "due now 0, sending 0, unsettled 0" in result.output

    result = runner.invoke(main, ["--config", str(config), "status", "--json"])
    assert result.exit_code == 0
    found = json.loads(result.output)
    assert found["status"] == "ok" and found["scheduler"]["leader"]["name"] == "web1:10:aaaaaaaa"


def test_kabar_status_exits_2_when_the_database_cannot_be_read(tmp_path):
    config = write_config(tmp_path / "kabar.toml", f"sqlite:///{tmp_path / 'no' / 'kabar.db'}")
    result = CliRunner().invoke(main, ["--config", str(config), "status", "--json"])
    assert result.exit_code == 2
    found = json.loads(result.output)
    assert found["status"] == "unavailable" and "cannot be read" in found["reason"]
