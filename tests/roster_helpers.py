"""Holding a roster import still mid-way, so a test can look at it while it is being written."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import select

from bot.models import RosterUpload
from tests.live import wait_for


def big_roster(rows: int) -> str:
    """A roster of ``rows`` new graduates in 7 cohorts of one new institution."""
    return "lpks;paket;nama;no_wa\n" + "".join(
        f"LPKS Besar;Paket {i % 7};Lulusan {i};0813{i:08d}\n" for i in range(rows))


def rows_done(db, token: str) -> int | None:
    with db.read_session() as session:
        return session.scalar(select(RosterUpload.rows_done).where(RosterUpload.token == token))


@contextmanager
def import_held(db, token: str, after: int = 0) -> Iterator[RosterUpload]:
    """Once the upload's import has stored more than ``after`` rows, hold back its next chunk
    until the block ends (its row locked; on SQLite the writer lock); yields the upload as
    it is while held."""
    wait_for(lambda: (rows_done(db, token) or 0) > after, timeout=120, interval=0.005,
             message=f"the import to write more than {after} rows")
    with db.session() as session:
        yield session.scalar(select(RosterUpload).where(RosterUpload.token == token)
                             .with_for_update())
