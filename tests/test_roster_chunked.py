"""A large roster import writes in short transactions: the bot's writes go on meanwhile, and
an import stopped halfway (killed, or beaten to a number) is finished by importing again."""

from __future__ import annotations

import json
import os
import pty
import re
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.models import AuditLog, Graduate
from bot.roster_plan import COMMIT_EVERY, ImportConflict, apply_plan, plan_roster
from tests.conftest import PG_URL
from tests.live import wait_for

ROWS = 10 * COMMIT_EVERY


@pytest.mark.skipif(bool(PG_URL), reason="the writer lock is SQLite's")
def test_writes_go_on_while_a_large_roster_is_imported(settings, db, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("lpks;paket;nama;no_wa\n" + "".join(
        f"LPKS Besar;Paket {i % 40};Lulusan {i};0813{i:08d}\n" for i in range(ROWS)),
        encoding="utf-8")
    config = tmp_path / "kabar.toml"
    config.write_text(f"[database]\nurl = {json.dumps(settings.database.url)}\n",
                      encoding="utf-8")
    kabar = Path(sys.executable).with_name("kabar")
    path = settings.database.url.removeprefix("sqlite:///")
    other = sqlite3.connect(path, timeout=5.0, isolation_level=None)  # another process's wait
    other.execute("CREATE TABLE IF NOT EXISTS beside_import (at REAL)")
    importer = subprocess.Popen([str(kabar), "--config", str(config), "import-roster",
                                 str(roster)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env={**os.environ, "KABAR_CONFIG": str(config)})
    waits, counts = [], set()
    deadline = time.monotonic() + 120
    while importer.poll() is None and time.monotonic() < deadline:
        started = time.monotonic()
        other.execute("BEGIN IMMEDIATE")  # a write, as the webhook's insert takes the lock
        other.execute("INSERT INTO beside_import VALUES (?)", (started,))
        counts.add(other.execute("SELECT count(*) FROM graduates").fetchone()[0])
        other.execute("COMMIT")
        waits.append(time.monotonic() - started)
        # Paced as the bot's own writers are: SQLite is not fair, and a writer that takes the
        # lock again the instant it lets go would starve the import's next transaction.
        time.sleep(0.01)
    output = importer.communicate(timeout=120)[0]
    other.close()
    assert importer.returncode == 0, output
    assert waits, "the import ended before a single write could be tried beside it"
    # Chunks were committed while the import went on: writes saw some of the rows.
    assert any(0 < count < ROWS for count in counts), sorted(counts)
    with db.session() as session:
        assert session.scalar(select(func.count(Graduate.id))) == ROWS
        assert session.scalar(select(func.count(AuditLog.id)).where(
            AuditLog.action == "import_roster")) == 1


def _roster(path: Path, rows: int) -> Path:
    path.write_text("lpks;paket;nama;no_wa\n" + "".join(
        f"LPKS Besar;Paket {i % 40};Lulusan {i};0813{i:08d}\n" for i in range(rows)),
        encoding="utf-8")
    return path


def _count(db) -> int:
    with db.read_session() as session:
        return session.scalar(select(func.count(Graduate.id)))


@contextmanager
def _writes_held(db):
    """Hold back every write to the graduates (SQLite: the writer lock; PostgreSQL: a table
    lock that lets readers through) until the block ends."""
    with db.engine.connect() as conn:
        conn.begin()  # BEGIN IMMEDIATE on SQLite (bot.db)
        if db.engine.dialect.name != "sqlite":
            conn.exec_driver_sql("LOCK TABLE graduates IN SHARE MODE")
        try:
            yield
        finally:
            conn.rollback()


def test_an_import_killed_midway_is_finished_by_running_it_again(settings, db, tmp_path):
    rows = 20 * COMMIT_EVERY  # chunks enough that the test holds it before it ends
    roster = _roster(tmp_path / "roster.csv", rows)
    config = tmp_path / "kabar.toml"
    config.write_text(f"[database]\nurl = {json.dumps(settings.database.url)}\n",
                      encoding="utf-8")
    command = [str(Path(sys.executable).with_name("kabar")), "--config", str(config),
               "import-roster", str(roster)]
    env = {**os.environ, "KABAR_CONFIG": str(config)}
    importer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=env)
    try:
        wait_for(lambda: _count(db) > 0 or importer.poll() is not None, timeout=120,
                 interval=0.005, message="the first chunk")
        with _writes_held(db):  # the import waits for its next chunk: kill it there
            written = _count(db)
            importer.kill()
            importer.wait(timeout=30)
    finally:
        if importer.poll() is None:
            importer.kill()
        importer.communicate(timeout=30)
    assert 0 < written < rows
    assert _count(db) == written  # what was committed stays
    with db.read_session() as session:
        assert session.scalar(select(func.count(AuditLog.id)).where(
            AuditLog.action == "import_roster")) == 0  # the summary comes last
    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{rows - written} created, 0 updated, {written} unchanged" in rerun.stdout
    with db.read_session() as session:
        assert session.scalar(select(func.count(func.distinct(Graduate.phone)))) == rows
        assert session.scalar(select(func.count(Graduate.id))) == rows
        entries = list(session.scalars(select(AuditLog).where(
            AuditLog.action == "import_roster")))
        assert [e.detail["created"] for e in entries] == [rows - written]


def test_a_number_added_during_the_import_stops_it_and_a_rerun_finishes(db, tmp_path):
    rows = 3 * COMMIT_EVERY
    roster = _roster(tmp_path / "roster.csv", rows)
    with db.read_session() as session:
        plan = plan_roster(session, roster)
    taken = plan.rows[COMMIT_EVERY + 5]  # in the second chunk
    with db.session() as session:  # someone adds that graduate by hand meanwhile
        session.add(Graduate(name="Ditambah Tangan", phone=taken.phone))
    with pytest.raises(ImportConflict) as refused:
        with db.session() as session:
            apply_plan(session, plan, actor="cli", chunked=True)
    assert (f"lines {plan.rows[COMMIT_EVERY].line} to {plan.rows[2 * COMMIT_EVERY - 1].line}"
            in str(refused.value))
    assert "import the file again" in str(refused.value)
    assert _count(db) == COMMIT_EVERY + 1  # the first chunk, and the graduate added by hand
    with db.read_session() as session:
        plan = plan_roster(session, roster)
    assert (len(plan.created), len(plan.changed), plan.unchanged) == (
        rows - COMMIT_EVERY - 1, 1, COMMIT_EVERY)
    with db.session() as session:
        apply_plan(session, plan, actor="cli", chunked=True)
    with db.read_session() as session:
        assert session.scalar(select(func.count(Graduate.id))) == rows
        added = session.scalar(select(Graduate).where(Graduate.phone == taken.phone))
        assert added.name == taken.name and added.cohort is not None


def test_the_terminal_shows_progress_and_a_pipe_only_the_last_line(settings, db, tmp_path):
    rows = 3 * COMMIT_EVERY
    config = tmp_path / "kabar.toml"
    config.write_text(f"[database]\nurl = {json.dumps(settings.database.url)}\n",
                      encoding="utf-8")
    kabar = str(Path(sys.executable).with_name("kabar"))
    env = {**os.environ, "KABAR_CONFIG": str(config)}
    first = _roster(tmp_path / "first.csv", rows)
    piped = subprocess.run([kabar, "import-roster", str(first)], capture_output=True, text=True,
                           env=env, timeout=300)
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr.splitlines() == [piped.stderr.splitlines()[-1]]  # one line, no bar
    assert re.fullmatch(rf"first\.csv: {rows:,} rows read in [\d.]+ s, compared in [\d.]+ s, "
                        r"written in [\d.]+ s \([\d,]+ rows/s\)\n", piped.stderr)
    # On a terminal (a pseudo-terminal here): the rows written of all, and the rate.
    second = tmp_path / "second.csv"
    second.write_text(first.read_text(encoding="utf-8").replace(";0813", ";0814"),
                      encoding="utf-8")
    leader, follower = pty.openpty()
    with os.fdopen(leader, "rb", buffering=0) as terminal:
        process = subprocess.Popen([kabar, "import-roster", str(second)], env=env,
                                   stdout=subprocess.DEVNULL, stderr=follower)
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = terminal.read(4096)
            except OSError:  # the process ended and closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        assert process.wait(timeout=300) == 0
    text = shown.decode("utf-8", "replace")
    assert "reading and comparing" in text
    assert f"{COMMIT_EVERY}/{rows}" in text and f"{rows}/{rows}" in text
    assert re.search(r"[\d,]+ rows/s", text)
    assert f"second.csv: {rows:,} rows read in" in text
