"""A large roster import writes in short transactions: the bot's writes go on meanwhile."""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from bot.cli import main
from bot.models import AuditLog, Graduate
from bot.roster_plan import COMMIT_EVERY
from tests.conftest import PG_URL

ROWS = 6 * COMMIT_EVERY


@pytest.mark.skipif(bool(PG_URL), reason="the writer lock is SQLite's")
def test_writes_go_on_while_a_large_roster_is_imported(settings, db, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("lpks;paket;nama;no_wa\n" + "".join(
        f"LPKS Besar;Paket {i % 40};Lulusan {i};0813{i:08d}\n" for i in range(ROWS)),
        encoding="utf-8")
    config = tmp_path / "kabar.toml"
    config.write_text(f"[database]\nurl = {json.dumps(settings.database.url)}\n",
                      encoding="utf-8")
    outcome: dict = {}

    def import_it() -> None:
        outcome["result"] = CliRunner().invoke(main, ["--config", str(config),
                                                      "import-roster", str(roster)])

    path = settings.database.url.removeprefix("sqlite:///")
    other = sqlite3.connect(path, timeout=5.0, isolation_level=None)  # another process's wait
    other.execute("CREATE TABLE IF NOT EXISTS beside_import (at REAL)")
    worker = threading.Thread(target=import_it)
    worker.start()
    waits, seen_partway = [], False
    deadline = time.monotonic() + 120
    while worker.is_alive() and time.monotonic() < deadline:
        started = time.monotonic()
        other.execute("BEGIN IMMEDIATE")  # a write, as the webhook's insert takes the lock
        other.execute("INSERT INTO beside_import VALUES (?)", (started,))
        count = other.execute("SELECT count(*) FROM graduates").fetchone()[0]
        other.execute("COMMIT")
        waits.append(time.monotonic() - started)
        seen_partway = seen_partway or 0 < count < ROWS
    worker.join(timeout=120)
    other.close()
    result = outcome["result"]
    assert result.exit_code == 0, result.output
    assert waits, "the import ended before a single write could be tried beside it"
    assert seen_partway  # chunks were committed while the import went on
    with db.session() as session:
        assert session.scalar(select(func.count(Graduate.id))) == ROWS
        assert session.scalar(select(func.count(AuditLog.id)).where(
            AuditLog.action == "import_roster")) == 1
