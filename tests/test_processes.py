"""Heartbeats of dispatchers and schedulers (bot.processes)."""

from datetime import timedelta

from bot import processes
from bot.models import utcnow


def test_a_beat_is_recorded_updated_and_aged(db):
    name = processes.process_name()
    t0 = utcnow()
    assert processes.beat(db, name, "dispatcher", "idle", {"sent": 0}, now=t0)
    assert processes.beat(db, name, "dispatcher", "sending", {"sent": 7},
                          now=t0 + timedelta(seconds=5))
    [state] = processes.snapshot(db, now=t0 + timedelta(seconds=6))
    assert (state.name, state.kind, state.role, state.detail) == (name, "dispatcher", "sending",
                                                                 {"sent": 7})
    assert state.alive and state.started_at == t0
    [later] = processes.snapshot(db, now=t0 + timedelta(seconds=60))
    assert not later.alive
    assert processes.prune(db, now=t0 + timedelta(days=2)) == 1
    assert processes.snapshot(db, now=t0 + timedelta(days=2)) == []


def test_forget_removes_the_row(db):
    name = processes.process_name()
    processes.beat(db, name, "scheduler", "leader")
    processes.forget(db, name)
    assert processes.snapshot(db) == []
