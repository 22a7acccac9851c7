"""How fast the outbox goes out through a Twilio that answers in 100 ms, beside a plain loop.

    .venv/bin/python benchmarks/dispatch.py [--recipients 2000] [--loop-messages 150]
                                            [--database-url URL]

A loopback stand-in of Twilio's Messages API (``tests/twilio_fake.py``: a real threaded HTTP
server on 127.0.0.1 in this process, the twilio SDK talks to it unchanged) answers every
message in 100 ms. A fresh migrated database (SQLite in a temporary folder by default, or the
PostgreSQL database given, emptied first) holds ``--recipients`` graduates; before each run the
outbox is refilled with one due message per graduate. Dispatchers are real ``kabar dispatch``
processes (``--once``: send what is due, then exit), so the stand-in and the dispatchers do not
share an interpreter. Rates are counted at the stand-in, from its first to its last accepted
message (a process's start-up is not in them).

(a) the loop a script would write: ``for g in graduates: client.messages.create(...)`` with the
    twilio SDK, ``--loop-messages`` of them (it takes 100 ms each);
(b) one dispatcher, unpaced (``rate_per_second`` 1,000,000, ``concurrency`` 64): msg/s, and the
    ratio to (a). Target at least 40 times the loop, no message twice;
(c) one dispatcher paced at 80/s: the rate achieved must be within 5 % of 80/s;
(d) ``kill -9`` of a dispatcher while requests are in flight (the stand-in holds its answers
    from the 500th message on), then a second dispatcher after the claim lease: no message
    twice at the stand-in and none lost (every row recorded with the stand-in's SID);
(e) PostgreSQL only: four dispatcher processes beside one, each with the default
    ``concurrency`` 16, unpaced: four must be faster.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import delete, insert, select, text  # noqa: E402
from twilio.http.http_client import TwilioHttpClient  # noqa: E402
from twilio.rest import Client  # noqa: E402

from bot.db import Database  # noqa: E402
from bot.migrate import upgrade  # noqa: E402
from bot.models import (  # noqa: E402
    OUTBOUND,
    Base,
    Cohort,
    DispatchBudget,
    Graduate,
    Institution,
    Message,
    utcnow,
)
from tests.twilio_fake import TwilioFake  # noqa: E402

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "benchmark-token-0123456789abcdef"
SENDER = "whatsapp:+14155238886"
LATENCY = 0.1
RATIO_TARGET = 40.0
PACED_RATE = 80.0
PACED_TOLERANCE = 0.05
KILL_AFTER = 500
UNPACED = 1_000_000.0


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


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


def seed(db: Database, graduates: int) -> list[str]:
    phones = [f"+62813{i:08d}" for i in range(graduates)]
    with db.session() as session:
        inst = Institution(name="LPKS Benchmark")
        session.add(inst)
        session.flush()
        cohort = Cohort(name="Menjahit 1", institution_id=inst.id, skill="menjahit",
                        checkin_schedule="0 9 1 * *", join_code="BENCH234")
        session.add(cohort)
        session.flush()
        # Each wrote in the last day: replies go out as plain text in the window.
        session.execute(insert(Graduate), [
            {"cohort_id": cohort.id, "name": f"Lulusan {i}", "phone": phone,
             "skill": "menjahit", "last_inbound_at": utcnow()}
            for i, phone in enumerate(phones)])
    return phones


def refill(db: Database) -> int:
    """One due reply per graduate, nothing else in the outbox."""
    now = utcnow()
    with db.session() as session:
        session.execute(delete(Message))
        session.execute(delete(DispatchBudget))
        grads = session.execute(select(Graduate.id, Graduate.cohort_id, Graduate.phone,
                                       Graduate.name)).all()
        session.execute(insert(Message), [
            {"direction": OUTBOUND, "graduate_id": g.id, "cohort_id": g.cohort_id,
             "phone": g.phone, "kind": "reply", "body": f"Terima kasih, {g.name}.",
             "status": "pending", "next_attempt_at": now, "attempts": 0}
            for g in grads])
    return len(grads)


def reset(fake: TwilioFake) -> None:
    with fake._lock:
        fake.accepted.clear()
        fake.requests.clear()
        fake._resources.clear()
        fake.max_in_flight = 0
    fake.latency = LATENCY


def write_config(path: Path, url: str, fake: TwilioFake, *, rate: float, concurrency: int,
                 lease: float = 120.0) -> Path:
    path.write_text(f"""
[app]
secret_key = "benchmark"
public_url = "https://kabar.example.go.id"
[database]
url = "{url}"
[transport]
kind = "twilio"
[twilio]
account_sid = "{ACCOUNT_SID}"
auth_token = "{AUTH_TOKEN}"
whatsapp_from = "{SENDER}"
api_base_url = "{fake.url}"
[scheduler]
quiet_hours = ""
[dispatch]
rate_per_second = {rate}
concurrency = {concurrency}
batch_size = {max(50, 2 * concurrency)}
claim_lease_seconds = {lease}
""", encoding="utf-8")
    return path


def kabar() -> list[str]:
    script = Path(sys.executable).parent / "kabar"
    return [str(script)] if script.exists() else [sys.executable, "-c",
                                                   "from bot.cli import main; main()"]


def start(config: Path, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KABAR_", "TWILIO_"))}
    return subprocess.Popen([*kabar(), "--config", str(config), "dispatch", "--once"],
                            stdout=log.open("a"), stderr=subprocess.STDOUT, cwd=ROOT,
                            env={**env, "PYTHONUNBUFFERED": "1"})


def accepted_rate(fake: TwilioFake) -> tuple[int, float]:
    times = sorted(r["at"] for r in fake.requests if r["method"] == "POST" and r.get("sid"))
    if len(times) < 2:
        return len(times), 0.0
    return len(times), (len(times) - 1) / (times[-1] - times[0])


def duplicates(fake: TwilioFake) -> int:
    return sum(n - 1 for n in Counter(m["to"] for m in fake.accepted).values() if n > 1)


def lost(db: Database, fake: TwilioFake) -> int:
    """Rows with no SID, or whose SID is not the stand-in's for that number."""
    sids = {m["to"].removeprefix("whatsapp:"): m["sid"] for m in fake.accepted}
    with db.read_session() as session:
        rows = session.execute(select(Message.phone, Message.twilio_sid)).all()
    return sum(1 for phone, sid in rows if not sid or sids.get(phone) != sid)


def run_dispatchers(configs: list[Path], log: Path, timeout: float = 600) -> float:
    started = time.monotonic()
    procs = [start(c, log) for c in configs]
    for proc in procs:
        proc.wait(timeout=timeout)
    return time.monotonic() - started


def loop_baseline(fake: TwilioFake, phones: list[str]) -> float:
    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=TwilioHttpClient(timeout=10))
    client.api.base_url = fake.url
    client.edge = client.region = None
    started = time.monotonic()
    for phone in phones:
        client.messages.create(to=f"whatsapp:{phone}", from_=SENDER, body="Terima kasih.")
    return len(phones) / (time.monotonic() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=2000)
    parser.add_argument("--loop-messages", type=int, default=150)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="kabar-dispatch-bench-"))
    fake = TwilioFake(ACCOUNT_SID, AUTH_TOKEN).start()
    results: list[tuple[str, str, str, bool]] = []
    try:
        url = fresh_database(args.database_url, folder)
        db = Database(url)
        phones = seed(db, args.recipients)
        kind = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
        print(f"{kind}, {args.recipients} recipients, stand-in answering in "
              f"{LATENCY * 1000:.0f} ms; load average {loadavg()}", flush=True)
        log = folder / "dispatch.log"

        # (a) the loop
        reset(fake)
        loop = loop_baseline(fake, phones[:args.loop_messages])
        print(f"(a) loop of client.messages.create, {args.loop_messages} messages: "
              f"{loop:.1f} msg/s  [load {loadavg()}]", flush=True)
        results.append(("(a) sequential loop", f"{loop:.1f} msg/s", "(baseline)", True))

        # (b) one dispatcher, unpaced
        reset(fake)
        n = refill(db)
        config = write_config(folder / "b.toml", url, fake, rate=UNPACED, concurrency=64)
        wall = run_dispatchers([config], log)
        count, rate = accepted_rate(fake)
        dup, gone = duplicates(fake), lost(db, fake)
        ok = rate >= RATIO_TARGET * loop and dup == 0 and gone == 0 and count == n
        print(f"(b) one dispatcher, concurrency 64, unpaced: {count} sent, {rate:.0f} msg/s = "
              f"{rate / loop:.1f}x the loop ({wall:.1f} s with start-up), in flight at most "
              f"{fake.max_in_flight}, duplicates {dup}, lost {gone}  [load {loadavg()}]",
              flush=True)
        results.append(("(b) 1 dispatcher unpaced", f"{rate:.0f} msg/s = {rate / loop:.1f}x, "
                         f"dup {dup}, lost {gone}", f">= {RATIO_TARGET:.0f}x, 0 dup", ok))

        # (c) paced at 80/s
        reset(fake)
        n = refill(db)
        config = write_config(folder / "c.toml", url, fake, rate=PACED_RATE, concurrency=16)
        run_dispatchers([config], log)
        count, rate = accepted_rate(fake)
        off = abs(rate - PACED_RATE) / PACED_RATE
        ok = off <= PACED_TOLERANCE and count == n and duplicates(fake) == 0
        print(f"(c) paced at {PACED_RATE:.0f}/s: {count} sent at {rate:.2f} msg/s "
              f"({off * 100:.1f} % off)  [load {loadavg()}]", flush=True)
        results.append((f"(c) paced at {PACED_RATE:.0f}/s", f"{rate:.2f} msg/s "
                        f"({off * 100:.1f} % off)", "within 5 %", ok))

        # (d) kill -9 with requests in flight, then recovery
        reset(fake)
        n = refill(db)
        lease = 2.0
        config = write_config(folder / "d.toml", url, fake, rate=UNPACED, concurrency=64,
                              lease=lease)
        proc = start(config, log)
        if not fake.wait_for(lambda f: f.accepted_count() >= KILL_AFTER, timeout=120):
            raise SystemExit("FAIL: the dispatcher did not get going")
        fake.latency = 30.0  # answers held: requests in flight at Twilio without their SIDs
        fake.wait_for(lambda f: f.in_flight >= 16, timeout=10)
        in_flight = fake.in_flight
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        at_kill = fake.accepted_count()
        fake.latency = LATENCY
        time.sleep(lease + 0.5)  # past the lease: the dead dispatcher's rows are unsettled
        for _ in range(3):
            run_dispatchers([config], log)
            if lost(db, fake) == 0:
                break
            time.sleep(lease + 0.5)
        dup, gone = duplicates(fake), lost(db, fake)
        ok = dup == 0 and gone == 0 and fake.accepted_count() == n
        print(f"(d) kill -9 after {at_kill} accepted with {in_flight} requests in flight, "
              f"then a second dispatcher: {fake.accepted_count()} of {n} at the stand-in, "
              f"duplicates {dup}, lost {gone}  [load {loadavg()}]", flush=True)
        results.append(("(d) kill -9 and recovery", f"dup {dup}, lost {gone}",
                         "0 dup, 0 lost", ok))

        # (e) PostgreSQL: four dispatchers beside one
        if kind == "PostgreSQL":
            rates = {}
            for procs in (1, 4):
                reset(fake)
                n = refill(db)
                configs = [write_config(folder / f"e{procs}-{i}.toml", url, fake, rate=UNPACED,
                                        concurrency=16) for i in range(procs)]
                run_dispatchers(configs, log)
                count, rates[procs] = accepted_rate(fake)
                dup, gone = duplicates(fake), lost(db, fake)
                print(f"(e) {procs} dispatcher(s), concurrency 16 each: {count} sent, "
                      f"{rates[procs]:.0f} msg/s, duplicates {dup}, lost {gone}  "
                      f"[load {loadavg()}]", flush=True)
            ok = rates[4] > rates[1]
            results.append(("(e) 4 dispatchers vs 1", f"{rates[4]:.0f} vs {rates[1]:.0f} msg/s",
                            "4 faster", ok))
        db.dispose()
    except BaseException:
        log_file = folder / "dispatch.log"
        if log_file.exists():
            print(log_file.read_text(errors="replace")[-3000:])
        raise
    finally:
        fake.stop()
        shutil.rmtree(folder, ignore_errors=True)

    print()
    print(f"{'run':28} {'figure':44} {'floor':16} result")
    for name, figure, floor, ok in results:
        print(f"{name:28} {figure:44} {floor:16} {'PASS' if ok else 'FAIL'}")
    print(f"load average at the end: {loadavg()}")
    return 0 if all(ok for *_, ok in results) else 1


if __name__ == "__main__":
    sys.exit(main())
