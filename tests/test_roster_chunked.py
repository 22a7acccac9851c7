"""A large roster import writes in short transactions: the bot's writes go on meanwhile."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.models import AuditLog, Graduate
from bot.roster_plan import COMMIT_EVERY
from tests.conftest import PG_URL

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
