"""How fast a standby scheduler takes over after ``kill -9``, and what ``/healthz`` costs.

    .venv/bin/python benchmarks/takeover.py [--kills 5] [--messages 200000]
                                            [--database-url URL]

A fresh migrated database (SQLite in a temporary folder, or the PostgreSQL database given,
emptied first) with a paket of 2,000 graduates. Two real ``python -m scheduler`` processes (the
``kabar scheduler`` command, dispatcher off); then ``--kills`` times: the leader is killed with
SIGKILL and the time until the standby's heartbeat row says "leader" is measured (polled every
20 ms), and a new standby is started for the next kill. Target: every takeover under 30 s.

Then ``--messages`` outbound messages (a fifth due now, the rest sent) and the median of 50
calls of ``bot.health.report`` (what ``/healthz`` answers), beside a target of 100 ms: the
report must stay cheap however large the message table grows.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select, text  # noqa: E402

from bot.db import Database  # noqa: E402
from bot.health import report  # noqa: E402
from bot.migrate import upgrade  # noqa: E402
from bot.models import Base, Cohort, Graduate, Institution, Message, Process, utcnow  # noqa: E402

TAKEOVER_TARGET = 30.0
REPORT_TARGET_MS = 100.0


def fresh_database(url: str | None, folder: Path) -> str:
    if url is None:
        url = f"sqlite:///{folder / 'kabar.db'}"
    else:
        db = Database(url)
        Base.metadata.drop_all(db.engine)
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version, apscheduler_jobs CASCADE"))
        db.dispose()
    upgrade(url)
    return url


def seed(db: Database, graduates: int) -> None:
    with db.session() as session:
        inst = Institution(name="LPKS Benchmark")
        session.add(inst)
        session.flush()
        cohort = Cohort(name="Menjahit 1", institution_id=inst.id, skill="menjahit",
                        checkin_schedule="0 9 1 * *", join_code="BENCH234")
        session.add(cohort)
        session.flush()
        session.execute(insert(Graduate), [
            {"cohort_id": cohort.id, "name": f"Lulusan {i}", "phone": f"+62813{i:08d}",
             "skill": "menjahit"} for i in range(graduates)])


def write_config(path: Path, url: str) -> Path:
    path.write_text(f"""
[app]
secret_key = "benchmark"
public_url = "http://127.0.0.1"
[database]
url = "{url}"
[transport]
kind = "simulator"
[scheduler]
run_dispatcher = false
""", encoding="utf-8")
    return path


def start(config: Path, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KABAR_", "TWILIO_"))}
    return subprocess.Popen([sys.executable, "-m", "scheduler", "--config", str(config)],
                            stdout=log.open("a"), stderr=subprocess.STDOUT, cwd=ROOT,
                            env={**env, "PYTHONUNBUFFERED": "1"})


def role(db: Database, pid: int) -> str | None:
    with db.read_session() as session:
        return session.scalar(select(Process.role).where(Process.pid == pid,
                                                         Process.kind == "scheduler"))


def wait(predicate, timeout: float, what: str, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"FAIL: {what} did not happen within {timeout:.0f} s")
        time.sleep(interval)


def takeovers(db: Database, config: Path, folder: Path, kills: int) -> list[float]:
    log = folder / "schedulers.log"
    leader = start(config, log)
    wait(lambda: role(db, leader.pid) == "leader", 60, "the first leader")
    standby = start(config, log)
    times = []
    try:
        for n in range(kills):
            wait(lambda: role(db, standby.pid) == "standby", 60, "the standby")  # noqa: B023
            leader.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            leader.wait(timeout=10)
            wait(lambda: role(db, standby.pid) == "leader", 120,  # noqa: B023
                 f"takeover {n + 1}")
            times.append(time.monotonic() - killed)
            print(f"  kill {n + 1}: the standby led {times[-1]:.2f} s after kill -9",
                  flush=True)
            leader, standby = standby, start(config, log)
    finally:
        for proc in (leader, standby):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return times


def report_cost(db: Database, messages: int) -> tuple[float, dict]:
    now = utcnow()
    rows = []
    for i in range(messages):
        due = i % 5 == 0
        rows.append({"direction": "out", "phone": f"+62813{i % 2000:08d}", "kind": "checkin",
                     "body": "Halo", "status": "pending" if due else "delivered",
                     "next_attempt_at": now - timedelta(seconds=i % 600) if due else None,
                     "created_at": now})
    with db.session() as session:
        for start_at in range(0, len(rows), 20000):
            session.execute(insert(Message), rows[start_at:start_at + 20000])
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE messages"))
    report(db)  # warm
    timings = []
    for _ in range(50):
        began = time.perf_counter()
        found = report(db)
        timings.append((time.perf_counter() - began) * 1000)
    return statistics.median(timings), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--graduates", type=int, default=2000)
    parser.add_argument("--database-url", default=None,
                        help="PostgreSQL database to use (it is emptied); default SQLite")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="kabar-takeover-"))
    try:
        url = fresh_database(args.database_url, folder)
        db = Database(url)
        seed(db, args.graduates)
        backend = db.engine.dialect.name
        print(f"{backend}: {args.kills} kills of the leading scheduler", flush=True)
        times = takeovers(db, write_config(folder / "kabar.toml", url), folder, args.kills)
        worst = max(times)
        print(f"{backend}: takeover after kill -9: median {statistics.median(times):.2f} s, "
              f"max {worst:.2f} s (target under {TAKEOVER_TARGET:.0f} s): "
              f"{'PASS' if worst < TAKEOVER_TARGET else 'FAIL'}")
        median_ms, found = report_cost(db, args.messages)
        print(f"{backend}: /healthz report with {args.messages:,} messages "
              f"({found['outbox']['due_now']:,} due now): median {median_ms:.1f} ms "
              f"(target under {REPORT_TARGET_MS:.0f} ms): "
              f"{'PASS' if median_ms < REPORT_TARGET_MS else 'FAIL'}")
        db.dispose()
        if worst >= TAKEOVER_TARGET or median_ms >= REPORT_TARGET_MS:
            sys.exit(1)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
