"""How fast a check-in round is queued for many graduates, beside the raw insert rate.

    .venv/bin/python benchmarks/rounds.py [--graduates 20000 100000] [--cohort-size 200]
                                          [--database-url URL]

For each size: a fresh migrated database (SQLite in a temporary folder, or the PostgreSQL
database given, emptied first), graduates inserted directly in cohorts of ``--cohort-size``,
then ``bot.checkins.start_rounds_now`` for every cohort (what ``kabar checkin send --all
--now`` runs) in one session, timed. Beside it, on SQLite, the raw rate: Python's sqlite3
``executemany`` inserting the same number of rows as wide as an outbox row into a table of the
same shape, in one transaction. Prints prompts per second, the ratio raw / Kabar, and checks
one prompt, one open report and one conversation per graduate.
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


def kabar_round(url: str, graduates: int, cohort_size: int) -> tuple[float, int]:
    """Seconds to queue one round for ``graduates``; and the prompts queued."""
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
    started = time.perf_counter()
    with db.session() as session:
        results = start_rounds_now(session, settings, None, ignore_quiet_hours=True)
    seconds = time.perf_counter() - started
    prompts = sum(r.prompts for _line, r in results if r is not None)
    with db.session() as session:
        counts = (session.scalar(select(func.count(Message.id))),
                  session.scalar(select(func.count(ProgressReport.id))),
                  session.scalar(select(func.count(Conversation.graduate_id))))
    db.dispose()
    assert counts == (graduates, graduates, graduates), counts
    return seconds, prompts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graduates", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--cohort-size", type=int, default=200)
    parser.add_argument("--database-url", help="PostgreSQL URL (emptied!); default SQLite")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kabar-rounds-") as folder:
        for graduates in args.graduates:
            url = args.database_url or f"sqlite:///{folder}/kabar-{graduates}.db"
            seconds, prompts = kabar_round(url, graduates, args.cohort_size)
            kabar = prompts / seconds
            line = (f"{graduates} graduates in {graduates // args.cohort_size} cohorts: round "
                    f"queued in {seconds:.2f} s ({kabar:,.0f} prompts/s)")
            if not args.database_url:
                raw = raw_rate(graduates, Path(folder))
                line += (f"; raw sqlite3 insert {raw:,.0f} rows/s; ratio raw/Kabar "
                         f"{raw / kabar:.1f}x")
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
