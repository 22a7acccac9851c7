"""How fast a check-in round is queued for many graduates, beside the raw insert rate.

    .venv/bin/python benchmarks/rounds.py [--graduates 20000 100000] [--cohort-size 200]
                                          [--database-url URL] [--broadcast 100000]
                                          [--drop-index NAME ...]

For each size: a fresh migrated database (SQLite in a temporary folder, or the PostgreSQL
database given, emptied first), graduates inserted directly in cohorts of ``--cohort-size``,
then ``bot.checkins.start_rounds_now`` for every cohort (what ``kabar checkin send --all
--now`` runs) in one session, timed. Beside it, on SQLite, the raw rate: Python's sqlite3
``executemany`` inserting the same number of rows as wide as an outbox row into a table of the
same shape, in one transaction. Prints prompts per second, the ratio raw / Kabar, and checks
one prompt, one open report and one conversation per graduate.

Each figure is printed beside its floor with PASS or FAIL:

- SQLite, 20,000 graduates: no worse than 20x the raw sqlite3 insert rate of the same machine;
- SQLite, 100,000 graduates: under 5 s;
- PostgreSQL, 1,000,000 graduates: under 60 s.

Sizes without a floor print "no floor". For the size given by ``--broadcast`` (default
100,000) a job opening is then sent to every cohort (``bot.broadcasts.broadcast_job``, what
the console's confirmation runs, recipients listed and checked included) and timed too.
``--drop-index`` drops an index after the migrations, to measure what it costs per round.
The machine's load average is printed with every figure.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select, text  # noqa: E402

from bot.broadcasts import JobDraft, broadcast_job, create_job  # noqa: E402
from bot.checkins import start_rounds_now  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.db import Database  # noqa: E402
from bot.migrate import upgrade  # noqa: E402
from bot.models import (  # noqa: E402
    Base,
    Cohort,
    Conversation,
    Graduate,
    Institution,
    JobOpening,
    Message,
    ProgressReport,
)

BODY = ("Halo Kak Lulusan Menjahit 12345! 👋 Apa kabar? Kami dari pelatihan *Paket 123* ingin "
        "tahu kabar Anda.\n\nBagaimana status kerja Anda sekarang? Balas dengan angka:\n"
        "1. Sudah bekerja\n2. Usaha sendiri\n3. Belum bekerja, masih mencari\n"
        "4. Lanjut pelatihan atau sekolah")


def raw_rate(rows: int, folder: Path) -> float:
    """Rows per second Python's sqlite3 inserts, as wide as an outbox row, in one go."""
    (folder / f"raw-{rows}.db").unlink(missing_ok=True)
    conn = sqlite3.connect(folder / f"raw-{rows}.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("""CREATE TABLE messages (id INTEGER PRIMARY KEY, direction TEXT,
        graduate_id INTEGER, cohort_id INTEGER, phone TEXT, kind TEXT, body TEXT,
        content_variables TEXT, dedupe_key TEXT UNIQUE, status TEXT, round_id INTEGER,
        next_attempt_at TEXT, attempts INTEGER, created_at TEXT, updated_at TEXT)""")
    data = [("out", i, i // 200, f"+62813{i:08d}", "checkin", BODY,
             '{"1": "Lulusan", "2": "Paket"}', f"checkin:1:{i}", "pending", 1,
             "2026-12-04 09:00:00", 0, "2026-12-04 09:00:00", "2026-12-04 09:00:00")
            for i in range(rows)]
    started = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO messages (direction, graduate_id, cohort_id, phone, kind, "
                     "body, content_variables, dedupe_key, status, round_id, next_attempt_at, "
                     "attempts, created_at, updated_at) VALUES "
                     "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", data)
    conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    return rows / seconds


# (backend, graduates) -> (what is measured, the floor, whether a figure passes it)
FLOORS = {
    ("sqlite", 20_000): ("ratio raw/Kabar", "20.0x", lambda seconds, ratio: ratio <= 20.0),
    ("sqlite", 100_000): ("time", "5 s", lambda seconds, ratio: seconds < 5.0),
    ("postgresql", 1_000_000): ("time", "60 s", lambda seconds, ratio: seconds < 60.0),
}


def load() -> str:
    return "load " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


def kabar_round(url: str, graduates: int, cohort_size: int, drop: list[str] | None = None,
                broadcast: bool = False) -> tuple[float, int, float | None]:
    """Seconds to queue one round for ``graduates``, the prompts queued, and the seconds a
    job broadcast to all of them took (when ``broadcast``)."""
    settings = load_settings(environ={}).with_overrides(
        database={"url": url}, scheduler={"quiet_hours": ""})
    db = Database(url)
    if url.startswith("postgresql"):
        Base.metadata.drop_all(db.engine)
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version, apscheduler_jobs CASCADE"))
        db.dispose()
        db = Database(url)
    upgrade(url)
    if drop:
        with db.engine.begin() as conn:
            for name in drop:
                conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
    with db.session() as session:
        inst = Institution(name="LPKS Provinsi")
        session.add(inst)
        session.flush()
        cohorts = graduates // cohort_size
        session.execute(insert(Cohort), [
            {"institution_id": inst.id, "name": f"Paket {c:04d}", "skill": "menjahit",
             "join_code": f"BENCH{c:05d}", "timezone": "Asia/Jakarta", "active": True}
            for c in range(cohorts)])
        ids = session.scalars(select(Cohort.id).order_by(Cohort.id)).all()
        for start in range(0, graduates, 10_000):
            session.execute(insert(Graduate), [
                {"cohort_id": ids[i // cohort_size], "name": f"Lulusan {i}",
                 "phone": f"+62813{i:08d}", "skill": "menjahit", "language": "id",
                 "active": True, "opted_out": False}
                for i in range(start, min(start + 10_000, graduates))])
    if url.startswith("postgresql"):
        with db.engine.connect() as conn:  # fresh statistics, as autovacuum would have them
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    started = time.perf_counter()
    with db.session() as session:
        results = start_rounds_now(session, settings, None, ignore_quiet_hours=True)
    seconds = time.perf_counter() - started
    prompts = sum(r.prompts for _line, r in results if r is not None)
    with db.session() as session:
        counts = (session.scalar(select(func.count(Message.id))),
                  session.scalar(select(func.count(ProgressReport.id))),
                  session.scalar(select(func.count(Conversation.graduate_id))))
    assert counts == (graduates, graduates, graduates), counts
    sent = None
    if broadcast:
        with db.session() as session:
            job = create_job(session, settings, JobDraft(
                title="Operator jahit", employer="PT Sandang Jaya", location="Bandung"),
                actor="benchmark")
        started = time.perf_counter()
        with db.session() as session:
            job = session.get(JobOpening, job.id)
            bc = broadcast_job(session, settings, job,
                               session.scalars(select(Cohort.id)).all(), actor="benchmark")
            recipients = bc.recipient_count
        sent = time.perf_counter() - started
        with db.session() as session:
            written = session.scalar(select(func.count(Message.id))
                                     .where(Message.kind == "job_opening"))
        assert recipients == written == graduates, (recipients, written)
    db.dispose()
    return seconds, prompts, sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graduates", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--cohort-size", type=int, default=200)
    parser.add_argument("--database-url", help="PostgreSQL URL (emptied!); default SQLite")
    parser.add_argument("--broadcast", type=int, default=100_000,
                        help="time a job broadcast after the round of this size (0: none)")
    parser.add_argument("--drop-index", action="append", default=[],
                        help="drop this index after migrating (to measure its cost)")
    args = parser.parse_args(argv)
    backend = "postgresql" if args.database_url else "sqlite"
    failed = False
    with tempfile.TemporaryDirectory(prefix="kabar-rounds-") as folder:
        for graduates in args.graduates:
            url = args.database_url or f"sqlite:///{folder}/kabar-{graduates}.db"
            seconds, prompts, sent = kabar_round(url, graduates, args.cohort_size,
                                                 args.drop_index,
                                                 broadcast=graduates == args.broadcast)
            kabar = prompts / seconds
            line = (f"{backend} {graduates} graduates in {graduates // args.cohort_size} "
                    f"cohorts: round queued in {seconds:.2f} s ({kabar:,.0f} prompts/s)")
            ratio = None
            if not args.database_url:
                raw = raw_rate(graduates, Path(folder))
                ratio = raw / kabar
                line += f"; raw sqlite3 insert {raw:,.0f} rows/s; ratio raw/Kabar {ratio:.1f}x"
            floor = FLOORS.get((backend, graduates))
            if floor is None:
                line += "; no floor"
            else:
                what, limit, passes = floor
                ok = passes(seconds, ratio)
                failed |= not ok
                line += f"; floor: {what} under {limit}: {'PASS' if ok else 'FAIL'}"
            print(f"{line} [{load()}]", flush=True)
            if sent is not None:
                print(f"{backend} job broadcast to {graduates} recipients in {sent:.2f} s "
                      f"({graduates / sent:,.0f} messages/s); no floor [{load()}]", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
