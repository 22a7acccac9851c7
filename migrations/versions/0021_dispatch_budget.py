"""the sending rate shared by all dispatchers

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 08:00:00.000000

dispatch.rate_per_second was kept by each dispatcher for itself, so two dispatchers sent at
twice the rate Twilio allows the sender. One row now holds the next free send slot of the whole
deployment (bot.pacing); dispatchers reserve slots from it and a 429 pushes it back for all.
"""
from alembic import op
import sqlalchemy as sa


revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'dispatch_budget',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('next_slot', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_dispatch_budget')),
    )


def downgrade() -> None:
    op.drop_table('dispatch_budget')
