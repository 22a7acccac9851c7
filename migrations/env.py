"""Alembic environment: the URL comes from the config Kabar builds in bot.migrate."""

from alembic import context

from bot.db import make_engine
from bot.models import Base

config = context.config
target_metadata = Base.metadata
# Tables Kabar does not model: APScheduler's job store creates and owns its own.
FOREIGN_TABLES = {"apscheduler_jobs"}
# Indexes that exist only on one database, made by a migration rather than the models.
DATABASE_ONLY_INDEXES = {"ix_messages_body_trgm"}  # PostgreSQL trigram index (0008)


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    if type_ == "index" and name in DATABASE_ONLY_INDEXES:
        return False
    return not (type_ == "table" and name in FOREIGN_TABLES)


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"),
                      target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True, include_object=include_object)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # A batch migration copies a table and drops the old one; with foreign keys on,
            # SQLite refuses to drop a table other rows point at. The pragma only takes effect
            # outside a transaction, so it goes straight to the driver before Alembic begins.
            _sqlite_pragma(connection, "PRAGMA foreign_keys=OFF")
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=True, include_object=include_object)
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")
        if sqlite:
            _sqlite_pragma(connection, "PRAGMA foreign_keys=ON")
    engine.dispose()


def _sqlite_pragma(connection, pragma: str) -> None:
    connection.connection.driver_connection.execute(pragma)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
