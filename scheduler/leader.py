"""Which ``kabar scheduler`` process leads: a lock only one process can hold at a time.

Several scheduler processes may run against one database; the one holding the lock runs the
APScheduler jobs, the others stand by and try again every ``RETRY_EVERY``.

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock(1262649682, 1)``, the
  two-number form, so it never meets the one-number locks Kabar takes per phone number) held
  on a connection of its own, outside the pool, for as long as the process leads. PostgreSQL
  releases it when that session ends: the process was killed, its host died, or the server
  dropped the connection (the session asks the server to probe an idle client every few
  seconds, so a host cut off from the network loses the lock in about 15 s, not hours).
- SQLite: ``flock`` on a lock file beside the database file (``kabar.db`` →
  ``kabar.db.scheduler-lock``); the kernel releases it when the process dies, however it dies.
  The file holds the name of the process that leads, for whoever looks.
- An in-memory SQLite database belongs to one process: its lock is always granted.

A leader confirms it still holds the lock every ``CONFIRM_EVERY``; ``scheduler.service`` stops
its jobs when a confirmation fails or none succeeded for ``STEP_DOWN_AFTER``, and a process that
takes the lock over from a leader that may still be alive waits ``TAKEOVER_DELAY`` (longer than
that) before it starts any job.
"""

from __future__ import annotations

import fcntl
import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

# pg_try_advisory_lock(key1, key2): "KBAR" as a number, and 1 for the scheduler's leadership.
LOCK_KEYS = (0x4B424152, 1)
LOCK_FILE_SUFFIX = ".scheduler-lock"

RETRY_EVERY = timedelta(seconds=2)  # a standby tries to take the lock this often
CONFIRM_EVERY = timedelta(seconds=1)  # a leader checks it still holds the lock this often
STEP_DOWN_AFTER = timedelta(seconds=3)  # a leader unsure this long stops its jobs
TAKEOVER_DELAY = timedelta(seconds=5)  # a new leader waits this long after a live leader


class LeaderLock(Protocol):
    description: str

    def acquire(self) -> bool:
        """Take the lock if nobody holds it; True when this process holds it now."""

    def confirm(self) -> bool:
        """True while this process still holds the lock (False after any doubt)."""

    def release(self) -> None:
        """Give the lock up (idempotent, never raises)."""


class PostgresLock:
    """A session-level advisory lock on a dedicated connection."""

    def __init__(self, url: str, name: str) -> None:
        self.description = (f"PostgreSQL advisory lock ({LOCK_KEYS[0]}, {LOCK_KEYS[1]}) of "
                            f"database {make_url(url).database}")
        options = " ".join([
            "-c jit=off",
            # The server probes this connection when it is idle and gives up on a client that
            # stopped answering after about 5 + 3 × 3 s, releasing the lock for a standby.
            "-c tcp_keepalives_idle=5", "-c tcp_keepalives_interval=3",
            "-c tcp_keepalives_count=3",
            "-c statement_timeout=5000",
        ])
        self.engine = create_engine(
            url, poolclass=NullPool, hide_parameters=True,
            connect_args={"options": options, "application_name": f"kabar scheduler {name}"[:63],
                          "connect_timeout": 5, "keepalives": 1, "keepalives_idle": 5,
                          "keepalives_interval": 2, "keepalives_count": 2,
                          "tcp_user_timeout": 5000})
        self._conn: Connection | None = None

    def acquire(self) -> bool:
        try:
            if self._conn is None:
                self._conn = self.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT")
            got = bool(self._conn.scalar(text("SELECT pg_try_advisory_lock(:a, :b)"),
                                         {"a": LOCK_KEYS[0], "b": LOCK_KEYS[1]}))
        except Exception as exc:
            log.warning("scheduler lock: cannot ask PostgreSQL (%s: %s)", type(exc).__name__,
                        str(exc).splitlines()[0] if str(exc) else "")
            self._close()
            return False
        if not got:
            # Keep the connection for the next try; hold nothing on it.
            return False
        return True

    def confirm(self) -> bool:
        if self._conn is None:
            return False
        try:
            return bool(self._conn.scalar(text(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid() AND granted AND classid = :a AND objid = :b "
                "AND objsubid = 2)"), {"a": LOCK_KEYS[0], "b": LOCK_KEYS[1]}))
        except Exception as exc:
            log.error("scheduler lock: lost the connection that holds it (%s)",
                      type(exc).__name__)
            self._close()
            return False

    def holder(self) -> str | None:
        """The application name of the session holding the lock, if any (for the log)."""
        if self._conn is None:
            return None
        try:
            return self._conn.scalar(text(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a "
                "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.classid = :a AND l.objid = :b AND l.objsubid = 2 LIMIT 1"),
                {"a": LOCK_KEYS[0], "b": LOCK_KEYS[1]})
        except Exception:
            self._close()
            return None

    def release(self) -> None:
        # Closing the session releases every lock it holds, however often it was taken.
        self._close()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()  # do not wait on a connection that may be dead
                conn.close()
            except Exception:
                log.debug("scheduler lock: closing its connection failed", exc_info=True)

    def dispose(self) -> None:
        self._close()
        self.engine.dispose()


class FileLock:
    """``flock`` on a file beside the SQLite database, held by an open file descriptor."""

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name
        self.description = f"lock file {path}"
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is not None:
            return self.confirm()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            log.error("scheduler lock: cannot open %s (%s)", self.path, exc.strerror)
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{self.name}\n".encode())
        except OSError:
            log.warning("scheduler lock: could not write the leader's name to %s", self.path)
        return True

    def confirm(self) -> bool:
        """Held, and the file at the path is still the one locked (not deleted or replaced)."""
        if self._fd is None:
            return False
        try:
            return os.fstat(self._fd).st_ino == os.stat(self.path).st_ino
        except OSError:
            return False

    def holder(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8").strip() or None
        except OSError:
            return None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)  # closing the descriptor releases the flock
            except OSError:
                pass

    def dispose(self) -> None:
        self.release()


class ProcessLock:
    """For a database only this process can open (in-memory SQLite): always granted."""

    description = "this process (in-memory database)"

    def acquire(self) -> bool:
        return True

    def confirm(self) -> bool:
        return True

    def holder(self) -> str | None:
        return None

    def release(self) -> None:
        pass

    def dispose(self) -> None:
        pass


def lock_file_path(url: str) -> Path | None:
    """Where the SQLite lock file of ``url`` is (None for an in-memory database)."""
    database = make_url(url).database
    if database in (None, "", ":memory:") or database.startswith("file::memory:"):
        return None
    return Path(database).resolve().with_name(Path(database).name + LOCK_FILE_SUFFIX)


def lock_for(url: str, name: str) -> PostgresLock | FileLock | ProcessLock:
    """The leadership lock for the database at ``url``, for process ``name``."""
    backend = make_url(url).get_backend_name()
    if backend == "postgresql":
        return PostgresLock(url, name)
    if backend == "sqlite":
        path = lock_file_path(url)
        return ProcessLock() if path is None else FileLock(path, name)
    raise ValueError(f"database.url: no scheduler lock for {backend} databases "
                     "(PostgreSQL or SQLite)")
