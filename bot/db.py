"""Engine and sessions.

SQLite runs in WAL mode with a busy timeout and foreign keys on, and every transaction starts
with ``BEGIN IMMEDIATE``: the writer lock is taken up front, so two processes never deadlock
upgrading a read to a write (they queue on the busy timeout instead). The exception is
``Database.single_statement``, for a transaction of exactly one statement (the webhook's
insert): SQLite runs it as its own transaction and holds the lock only while it runs, not for
the Python around it (the webhook took 35 % more requests a second). PostgreSQL needs none of
this; there the outbox is claimed with ``FOR UPDATE SKIP LOCKED``.

On PostgreSQL the console's pages may read from a streaming replica (``database.read_url``):
``Database.replica_session`` hands out a read session on the replica while it answers and is
no more than ``database.replica_max_lag_seconds`` behind the primary (``replica_state``);
otherwise, and always without a replica, it is ``read_session`` on the primary. Everything that
writes, and every reader outside the console's pages, uses the primary.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 15_000


def make_engine(url: str, **kwargs) -> Engine:
    """Create an engine for ``url`` with Kabar's connection settings.

    SQL parameters are never shown in errors or logs (``hide_parameters``): they hold phone
    numbers and message text.
    """
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if url.startswith("postgresql"):
        # Kabar's queries are short; PostgreSQL's JIT compiles the dashboard's aggregates on
        # every view for more than it saves (about 40 ms of 270 on 200,000 messages).
        kwargs.setdefault("connect_args", {"options": "-c jit=off"})
    return create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Take over transaction control from pysqlite so BEGIN IMMEDIATE can be issued.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        options = conn.get_execution_options()
        if options.get("kabar_single_statement", False):
            # One statement is its own transaction in SQLite: it takes the writer lock only
            # while it runs, not from BEGIN to COMMIT (the webhook's insert).
            return
        # Readers (exports, pages) take no writer lock; WAL lets them run beside a writer.
        conn.exec_driver_sql("BEGIN" if options.get("kabar_readonly", False)
                             else "BEGIN IMMEDIATE")


@contextmanager
def _transaction(factory: sessionmaker, **options) -> Iterator[Session]:
    session = factory(**options)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


class ReadOnlySession(RuntimeError):
    """A read session was asked to write; use ``Database.session`` for that."""


def _refuse_writes(session: Session, _context, _instances) -> None:
    if session.new or session.deleted or any(session.is_modified(o) for o in session.dirty):
        raise ReadOnlySession("a read session may not write (use Database.session)")


def advisory_key(text: str) -> int:
    """A stable signed 32-bit key for a PostgreSQL advisory lock on ``text`` (a number, a SID)."""
    return zlib.crc32(text.encode("utf-8")) - 2**31


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


# How far behind the primary a replica is: every REPLICA_CHECK_SECONDS a web process notes the
# primary's WAL position, and the replica is as far behind as the oldest position noted that
# it has not replayed yet (0 when it has replayed them all). This also sees a replica that
# stopped receiving (replication broken), which the replica's own figures do not show.
PRIMARY_POSITION_SQL = "SELECT pg_current_wal_lsn()::text"
REPLICA_POSITION_SQL = "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text"
REPLICA_CHECK_SECONDS = 2.0
# A state older than this means the look itself is stuck (a replica that does not answer).
REPLICA_STATE_STALE = 3 * REPLICA_CHECK_SECONDS
NOT_LOOKED_AT = "has not been looked at yet"


def wal_position(lsn: str | None) -> int:
    """PostgreSQL's ``X/Y`` WAL position as a number (0 for none)."""
    if not lsn:
        return 0
    high, low = lsn.split("/")
    return (int(high, 16) << 32) | int(low, 16)


@dataclass(frozen=True)
class ReplicaState:
    """What the last look at the replica found; ``usable`` when pages may read from it."""

    usable: bool
    lag_seconds: float | None
    reason: str  # why it is not usable ("" when it is)
    checked_at: float

    def as_dict(self) -> dict:
        return {"usable": self.usable, "lag_seconds": self.lag_seconds,
                "reason": self.reason or None}


class Database:
    """The engine and a session factory, built once from the settings and passed around.

    ``read_url`` (PostgreSQL only) is a streaming replica the console's pages may read from
    (``replica_session``) while it is no more than ``max_lag_seconds`` behind.
    """

    def __init__(self, url: str, *, read_url: str = "", max_lag_seconds: float = 10.0,
                 monotonic: Callable[[], float] = time.monotonic, watch_replica: bool = True,
                 **engine_kwargs) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.read_sessions = sessionmaker(
            self.engine.execution_options(kabar_readonly=True), expire_on_commit=False)
        event.listen(self.read_sessions, "before_flush", _refuse_writes)
        self.read_url = read_url
        self.max_lag_seconds = max_lag_seconds
        self._monotonic = monotonic
        self._replica_lock = threading.Lock()
        self._replica_state: ReplicaState | None = None
        self._positions: deque[tuple[float, int]] = deque(maxlen=2000)  # (when, WAL position)
        self._watch_replica = watch_replica
        self._watcher: threading.Thread | None = None
        self._watcher_pid = 0
        self._stop_watching = threading.Event()
        self.replica_engine: Engine | None = None
        self.replica_sessions: sessionmaker | None = None
        if read_url:
            # A replica that does not answer must not hold a page up for long: connecting
            # gives up after 3 s, and a connection whose packets go unanswered after 5 s.
            self.replica_engine = make_engine(read_url, connect_args={
                "options": "-c jit=off -c default_transaction_read_only=on",
                "connect_timeout": 3, "tcp_user_timeout": 5000, "keepalives": 1,
                "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 2})
            self.replica_sessions = sessionmaker(
                self.replica_engine.execution_options(kabar_readonly=True),
                expire_on_commit=False)
            event.listen(self.replica_sessions, "before_flush", _refuse_writes)
        # For exactly one statement (the webhook's insert): no transaction around it on
        # SQLite, where a single statement is atomic by itself; PostgreSQL is unchanged.
        self.single_statement = self.engine.execution_options(kabar_single_statement=True)

    def session(self) -> AbstractContextManager[Session]:
        """A session that commits when the block ends cleanly and rolls back otherwise."""
        return _transaction(self.sessions)

    def read_session(self) -> AbstractContextManager[Session]:
        """A session for reading (exports, pages): on SQLite it holds no writer lock.

        It never writes: SQLite refuses to upgrade a read transaction to a write at once
        ("database is locked") when another process wrote in between, so a flush with changes
        raises ``ReadOnlySession``. Write the audit entry of a read (an export) afterwards, in
        its own transaction (``bot.auditing.record``).
        """
        return _transaction(self.read_sessions)

    def replica_session(self) -> AbstractContextManager[Session]:
        """A read session on the replica when there is one it may read from, else
        ``read_session`` on the primary (see ``replica_state``)."""
        if self.replica_sessions is not None and self.replica_state().usable:
            return self._replica_transaction()
        return self.read_session()

    @contextmanager
    def _replica_transaction(self) -> Iterator[Session]:
        connection = None
        try:
            # Connected before the page runs: a replica gone since it was last looked at
            # sends this page to the primary, not into an error.
            connection = self.replica_engine.connect()
        except SQLAlchemyError as exc:
            self._set_replica_state(ReplicaState(
                False, None, f"cannot be reached ({type(exc).__name__})", self._monotonic()))
        if connection is None:
            with self.read_session() as session:
                yield session
            return
        try:
            with _transaction(self.replica_sessions, bind=connection) as session:
                yield session
        finally:
            connection.close()

    def replica_state(self, *, fresh: bool = False) -> ReplicaState | None:
        """The replica's state; None without a replica.

        A web process looks at the replica every ``REPLICA_CHECK_SECONDS`` in a thread of its
        own, so no page waits for that; ``fresh`` looks now. Not usable when it has not been
        looked at yet, cannot be reached, does not answer a look within
        ``REPLICA_STATE_STALE``, is not in recovery (a promoted replica is no longer fed by
        the primary), or is more than ``max_lag_seconds`` behind (see ``wal_position``)."""
        if self.replica_engine is None:
            return None
        if fresh:
            return self._look_at_replica()
        now = self._monotonic()
        if not self._watch_replica:
            state = self._replica_state
            if state is None or now - state.checked_at >= REPLICA_CHECK_SECONDS:
                state = self._look_at_replica()
            return state
        self._start_watching()
        state = self._replica_state
        if state is None:
            return ReplicaState(False, None, NOT_LOOKED_AT, now)
        if now - state.checked_at > REPLICA_STATE_STALE:
            return ReplicaState(False, state.lag_seconds,
                                f"has not answered for {now - state.checked_at:.0f} s",
                                state.checked_at)
        return state

    def _start_watching(self) -> None:
        pid = os.getpid()  # a forked web worker starts its own
        if self._watcher is not None and self._watcher_pid == pid and self._watcher.is_alive():
            return
        with self._replica_lock:
            if self._watcher is not None and self._watcher_pid == pid \
                    and self._watcher.is_alive():
                return
            self._stop_watching = threading.Event()
            self._watcher = threading.Thread(target=self._watch, args=(self._stop_watching,),
                                             name="kabar-replica-watch", daemon=True)
            self._watcher_pid = pid
            self._watcher.start()

    def _watch(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self._look_at_replica()
            except Exception:  # the watch goes on whatever one look ran into
                log.exception("looking at the read replica failed")
            stop.wait(REPLICA_CHECK_SECONDS)

    def _look_at_replica(self) -> ReplicaState:
        now = self._monotonic()
        try:
            with self.engine.connect() as conn:
                primary = wal_position(conn.execute(text(PRIMARY_POSITION_SQL)).scalar())
        except SQLAlchemyError:
            primary = None  # the primary's own trouble shows on every page anyway
        try:
            with self.replica_engine.connect() as conn:
                recovering, replayed = conn.execute(text(REPLICA_POSITION_SQL)).one()
        except SQLAlchemyError as exc:
            state = ReplicaState(False, None, f"cannot be reached ({type(exc).__name__})", now)
        else:
            replayed = wal_position(replayed)
            with self._replica_lock:
                if primary is not None:
                    self._positions.append((now, primary))
                waiting = [(at, pos) for at, pos in self._positions if pos > replayed]
                self._positions = deque(waiting, maxlen=self._positions.maxlen)
            lag = round(now - waiting[0][0], 1) if waiting else 0.0
            if not recovering:
                state = ReplicaState(False, lag, "is not a replica (not in recovery)", now)
            elif lag > self.max_lag_seconds:
                state = ReplicaState(False, lag, f"is {lag:.0f} s behind the primary", now)
            else:
                state = ReplicaState(True, lag, "", now)
        self._set_replica_state(state)
        return state

    def _set_replica_state(self, state: ReplicaState) -> None:
        previous, self._replica_state = self._replica_state, state
        if not state.usable and (previous is None or previous.usable):
            log.warning("the read replica %s: the console reads from the primary meanwhile",
                        state.reason)
        elif state.usable and previous is not None and not previous.usable:
            log.info("the read replica answers again, %.1f s behind: the console reads from "
                     "it again", state.lag_seconds)

    def create_all(self) -> None:
        """Create every table directly (tests); deployments use ``kabar db upgrade``."""
        from bot.models import Base

        Base.metadata.create_all(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()
        if self.replica_engine is not None:
            self._stop_watching.set()
            self.replica_engine.dispose()
