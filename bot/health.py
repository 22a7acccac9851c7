"""What ``/healthz`` and ``kabar status`` report: the scheduler leader, dispatchers, backlogs.

One ``report(db)`` for both, in a few indexed reads: the heartbeat rows of the last day
(``bot.processes``), counts of the inbox and the outbox by status (index ``ix_messages_outbox``
on status and ``next_attempt_at``).

``status`` is "ok" or "degraded". Degraded, with each reason in ``problems``:

- no scheduler leads (no scheduler row with role "leader" beaten within
  ``processes.STALE_AFTER``): no round, reminder or expiry starts;
- more than one scheduler says it leads (two databases mixed up, or clocks far apart);
- messages wait (incoming to handle, or outgoing due now) and no dispatcher is alive;
- a read replica is configured (``database.read_url``) and cannot be read from: it does not
  answer, is not in recovery, or is further behind than ``database.replica_max_lag_seconds``
  (the console reads from the primary meanwhile). ``replica`` then says which, and the lag.

A standby that is missing is not a problem (one scheduler is a valid deployment); ``kabar
status`` shows it. The caller answers 503 when the database cannot be read at all.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select

from bot.db import NOT_LOOKED_AT, Database
from bot.models import (
    INBOUND,
    MSG_PENDING,
    MSG_RECEIVED,
    MSG_SENDING,
    Message,
    utcnow,
)
from bot.outbox import SENDING_LEASE
from bot.processes import STALE_AFTER, ProcessState, snapshot

OK = "ok"
DEGRADED = "degraded"
UNAVAILABLE = "unavailable"


def report(db: Database, *, now: datetime | None = None,
           lease_seconds: float | None = None) -> dict[str, Any]:
    """The health report as a JSON-ready dict (see the module docstring)."""
    now = now or utcnow()
    states = snapshot(db, now=now)
    inbox_waiting, outbox = _backlog(db, now, lease_seconds)
    schedulers = [s for s in states if s.kind == "scheduler"]
    leaders = sorted((s for s in schedulers if s.role == "leader" and s.alive),
                     key=lambda s: s.beat_at, reverse=True)
    standbys = [s for s in schedulers if s.role == "standby" and s.alive]
    dispatchers = [s for s in states if s.kind == "dispatcher"]
    alive_dispatchers = [s for s in dispatchers if s.alive]
    problems = []
    if not leaders:
        last = max((s.beat_at for s in schedulers if s.role in ("leader", "replaced")),
                   default=None)
        problems.append("no scheduler leads: no check-in round, reminder or expiry starts"
                        + (f" (last leader heard from {_ago(now, last)})" if last else
                           " (no scheduler has reported)"))
    elif len(leaders) > 1:
        problems.append(f"{len(leaders)} schedulers say they lead: "
                        + ", ".join(s.name for s in leaders))
    waiting = inbox_waiting + outbox["due_now"]
    if waiting and not alive_dispatchers:
        problems.append(f"no dispatcher is alive and {waiting} messages wait "
                        f"({inbox_waiting} incoming, {outbox['due_now']} outgoing)")
    replica = db.replica_state()
    if replica is not None and replica.reason == NOT_LOOKED_AT:  # a new process: look now
        replica = db.replica_state(fresh=True)
    if replica is not None and not replica.usable:
        problems.append(f"the read replica {replica.reason}: the console reads from the "
                        "primary")
    result = {
        "status": DEGRADED if problems else OK,
        "problems": problems,
        "inbox_waiting": inbox_waiting,
        "scheduler": {
            "leader": _scheduler(leaders[0]) if leaders else None,
            "standbys": [_scheduler(s) for s in standbys],
        },
        "dispatchers": [_dispatcher(s) for s in dispatchers
                        if s.alive or (now - s.beat_at) <= 10 * STALE_AFTER],
        "outbox": outbox,
        "checked_at": now.isoformat(),
    }
    if replica is not None:
        result["replica"] = replica.as_dict()
    return result


def _backlog(db: Database, now: datetime,
             lease_seconds: float | None) -> tuple[int, dict[str, Any]]:
    lease = SENDING_LEASE if lease_seconds is None else timedelta(seconds=lease_seconds)
    due = (Message.status == MSG_PENDING,
           or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= now))
    with db.engine.connect() as conn:
        inbox = conn.scalar(select(func.count()).select_from(Message).where(
            Message.status == MSG_RECEIVED, Message.direction == INBOUND)) or 0
        due_now, oldest = conn.execute(
            select(func.count(), func.min(Message.next_attempt_at)).where(*due)).one()
        sending, unsettled = conn.execute(select(
            func.count(),
            func.count().filter(or_(Message.claimed_by.is_(None),
                                    Message.claimed_at.is_(None),
                                    Message.claimed_at < now - lease)))
            .where(Message.status == MSG_SENDING)).one()
    if isinstance(oldest, str):  # SQLite hands back an aggregate's timestamp as text
        oldest = datetime.fromisoformat(oldest)
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=now.tzinfo)
    return inbox, {
        "due_now": due_now,
        "oldest_due_seconds": round((now - oldest).total_seconds(), 1) if oldest else None,
        "sending": sending,
        "unsettled": unsettled,
    }


def _scheduler(state: ProcessState) -> dict[str, Any]:
    detail = state.detail or {}
    return {"name": state.name, "host": state.host, "pid": state.pid,
            "since": detail.get("leading_since") or detail.get("standby_since")
            or state.started_at.isoformat(),
            "beat_at": state.beat_at.isoformat(),
            "seconds_since_beat": round(state.seconds_since_beat, 1),
            "next_job": detail.get("next_job"), "running": detail.get("running", [])}


def _dispatcher(state: ProcessState) -> dict[str, Any]:
    return {"name": state.name, "host": state.host, "pid": state.pid, "role": state.role,
            "seconds_since_beat": round(state.seconds_since_beat, 1), "alive": state.alive,
            "detail": state.detail}


def _ago(now: datetime, then: datetime) -> str:
    seconds = int((now - then).total_seconds())
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"
