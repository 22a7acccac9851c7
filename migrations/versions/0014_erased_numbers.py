"""erased numbers: a hash per number whose graduate was erased on request

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 14:45:00
"""
from alembic import op
import sqlalchemy as sa
import bot.models  # noqa: F401 (UTCDateTime)


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('erased_numbers',
    sa.Column('phone_hash', sa.String(length=64), nullable=False),
    sa.Column('erased_at', bot.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('erased_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('phone_hash', name=op.f('pk_erased_numbers'))
    )


def downgrade() -> None:
    op.drop_table('erased_numbers')
