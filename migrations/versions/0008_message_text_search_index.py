"""PostgreSQL: a trigram index for the reply log's text search

A search for words no message contains otherwise reads every message body (about 400 ms on
200,000 messages); with the index it reads none. pg_trgm ships with PostgreSQL and is a
trusted extension since version 13, so the database owner may create it. Where it cannot be
created the migration says so and goes on: the search still works, only slower. SQLite gets
nothing (its LIKE over 200,000 bodies takes about 50 ms).

The index is not in bot.models: it exists only on PostgreSQL, and migrations/env.py leaves it
out of the comparison with the models.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 20:45:00
"""
import logging

from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

INDEX = 'ix_messages_body_trgm'
CREATE = f'CREATE INDEX IF NOT EXISTS {INDEX} ON messages USING gin (body gin_trgm_ops);'
log = logging.getLogger('alembic.runtime.migration')


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != 'postgresql':
        return
    try:
        with bind.begin_nested():
            bind.exec_driver_sql('CREATE EXTENSION IF NOT EXISTS pg_trgm')
    except Exception as exc:  # noqa: BLE001 - any refusal leaves the search as it was
        log.warning('pg_trgm could not be created (%s); the reply log search will read '
                    'every message. A superuser can add the index later in this database: '
                    'CREATE EXTENSION pg_trgm; %s', str(exc).splitlines()[0], CREATE)
        return
    op.execute(CREATE)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f'DROP INDEX IF EXISTS {INDEX}')
