"""Engine and sessions.

SQLite runs in WAL mode with a busy timeout and foreign keys on, and every transaction starts
with ``BEGIN IMMEDIATE``: the writer lock is taken up front, so two processes never deadlock
upgrading a read to a write (they queue on the busy timeout instead). The exception is
``Database.single_statement``, for a transaction of exactly one statement (the webhook's
insert): SQLite runs it as its own transaction and holds the lock only while it runs, not for
the Python around it (the webhook took 35 % more requests a second). PostgreSQL needs none of
this; there the outbox is claimed with ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

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
def _transaction(factory: sessionmaker) -> Iterator[Session]:
    session = factory()
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


class Database:
    """The engine and a session factory, built once from the settings and passed around."""

    def __init__(self, url: str, **engine_kwargs) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.read_sessions = sessionmaker(
            self.engine.execution_options(kabar_readonly=True), expire_on_commit=False)
        event.listen(self.read_sessions, "before_flush", _refuse_writes)
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

    def create_all(self) -> None:
        """Create every table directly (tests); deployments use ``kabar db upgrade``."""
        from bot.models import Base

        Base.metadata.create_all(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()
