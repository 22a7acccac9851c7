"""Heartbeats of Kabar's long-running processes: dispatchers and schedulers.

Each process has a name (``host:pid:random``, as ``bot.dispatcher.default_worker_id``) and
writes a row in ``processes`` every few seconds with ``beat``: its kind, its role now (a
scheduler "leader" or "standby", a dispatcher "sending" or "idle") and a few figures. Health
checks (``/healthz``) and ``kabar status`` read them with ``snapshot``; a process whose last beat
is older than ``STALE_AFTER`` is shown as gone, and rows gone for a day are pruned.

A heartbeat is best effort: a database hiccup is logged and the process goes on; its row just
ages until the next beat succeeds.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update

from bot.db import Database
from bot.models import Process, utcnow

log = logging.getLogger(__name__)

# How often processes beat, and after how long without a beat one is taken for gone.
BEAT_EVERY = timedelta(seconds=5)
STALE_AFTER = timedelta(seconds=30)
PRUNE_AFTER = timedelta(days=1)


def process_name() -> str:
    """``host:pid:random``: unique per process start, readable in logs and on ``/healthz``."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def beat(db: Database, name: str, kind: str, role: str = "",
         detail: dict[str, Any] | None = None, *, now: datetime | None = None) -> bool:
    """Record that process ``name`` is alive now, in its own transaction; False if it failed."""
    now = now or utcnow()
    try:
        with db.session() as session:
            changed = session.execute(
                update(Process).where(Process.name == name)
                .values(beat_at=now, role=role, detail=detail)
                .execution_options(synchronize_session=False)).rowcount
            if not changed:
                host, _, rest = name.partition(":")
                pid = rest.partition(":")[0]
                session.add(Process(name=name, kind=kind, host=host[:100],
                                    pid=int(pid) if pid.isdigit() else os.getpid(),
                                    role=role, started_at=now, beat_at=now, detail=detail))
        return True
    except Exception:
        log.warning("%s %s: could not record its heartbeat", kind, name, exc_info=True)
        return False


def forget(db: Database, name: str) -> None:
    """Remove a process's row when it stops cleanly (best effort)."""
    try:
        with db.session() as session:
            session.execute(delete(Process).where(Process.name == name))
    except Exception:
        log.warning("process %s: could not remove its heartbeat row", name, exc_info=True)


def prune(db: Database, *, now: datetime | None = None) -> int:
    """Delete rows of processes not heard from for PRUNE_AFTER; how many."""
    now = now or utcnow()
    with db.session() as session:
        return session.execute(delete(Process).where(
            Process.beat_at < now - PRUNE_AFTER)).rowcount or 0


@dataclass(frozen=True)
class ProcessState:
    name: str
    kind: str
    host: str
    pid: int
    role: str
    started_at: datetime
    beat_at: datetime
    seconds_since_beat: float
    alive: bool
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "host": self.host, "pid": self.pid,
                "role": self.role, "started_at": self.started_at.isoformat(),
                "beat_at": self.beat_at.isoformat(),
                "seconds_since_beat": round(self.seconds_since_beat, 1), "alive": self.alive,
                "detail": self.detail}


def snapshot(db: Database, *, now: datetime | None = None) -> list[ProcessState]:
    """Every process heard from in the last day, scheduler first, newest beat first."""
    now = now or utcnow()
    with db.read_session() as session:
        rows = session.scalars(select(Process).where(Process.beat_at >= now - PRUNE_AFTER)
                               .order_by(Process.kind.desc(), Process.beat_at.desc())).all()
        return [ProcessState(name=p.name, kind=p.kind, host=p.host, pid=p.pid, role=p.role,
                             started_at=p.started_at, beat_at=p.beat_at,
                             seconds_since_beat=(now - p.beat_at).total_seconds(),
                             alive=now - p.beat_at <= STALE_AFTER, detail=p.detail or {})
                for p in rows]
