"""PostgreSQL: the text search index leaves out check-in questions and reminders

A round writes one check-in question per graduate, and each went into the trigram index on
message bodies: about 300 trigrams per row, two thirds of the time of queuing a round of a
million graduates (110 s with the index, 54 s without). Those texts are the catalog's, the
same for every graduate but the name, so the reply log's text search no longer looks in them
(``bot.exports.SEARCHED``); what graduates write, Kabar's answers, job openings and
announcements are searched as before, through this index.

The index is rebuilt where 0008 made it (pg_trgm present), unless it already has a WHERE
(built beforehand with CREATE INDEX CONCURRENTLY, docs/deployment.md); SQLite gets nothing.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05 09:05:00
"""
from alembic import op

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None

INDEX = 'ix_messages_body_trgm'
# Must read exactly as bot.exports.SEARCHED renders, or the planner cannot use the index.
PREDICATE = "kind NOT IN ('checkin', 'reminder')"


def _has_trgm() -> bool:
    bind = op.get_bind()
    return bind.dialect.name == 'postgresql' and bind.exec_driver_sql(
        "SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'").scalar() is not None


def _definition() -> str:
    return op.get_bind().exec_driver_sql(
        "SELECT indexdef FROM pg_indexes WHERE indexname = %(name)s",
        {"name": INDEX}).scalar() or ""


def upgrade() -> None:
    if not _has_trgm() or "WHERE" in _definition():
        return  # made beforehand without blocking (docs/deployment.md)
    op.execute(f'DROP INDEX IF EXISTS {INDEX}')
    op.execute(f'CREATE INDEX {INDEX} ON messages USING gin (body gin_trgm_ops) '
               f'WHERE {PREDICATE}')


def downgrade() -> None:
    if not _has_trgm():
        return
    op.execute(f'DROP INDEX IF EXISTS {INDEX}')
    op.execute(f'CREATE INDEX {INDEX} ON messages USING gin (body gin_trgm_ops)')
