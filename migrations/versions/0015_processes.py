"""processes: dispatchers and schedulers report a heartbeat and their role

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 18:00:00
"""
from alembic import op
import sqlalchemy as sa
import bot.models  # noqa: F401 (UTCDateTime)


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('processes',
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('host', sa.String(length=100), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('started_at', bot.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('beat_at', bot.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_processes'))
    )
    with op.batch_alter_table('processes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_processes_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_processes_beat_at'), ['beat_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('processes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_processes_beat_at'))
        batch_op.drop_index(batch_op.f('ix_processes_kind'))
    op.drop_table('processes')
