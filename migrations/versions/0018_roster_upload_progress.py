"""roster_uploads: the progress and outcome of an import applied in the background

Revision ID: 0018
Revises: 0015
Create Date: 2026-12-04 19:00:00
"""
from alembic import op
import sqlalchemy as sa
import bot.models  # noqa: F401 (UTCDateTime)


revision = '0018'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('roster_uploads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('worker', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('rows_total', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('rows_done', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('progress_at', bot.models.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('finished_at', bot.models.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('outcome', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('roster_uploads', schema=None) as batch_op:
        batch_op.drop_column('outcome')
        batch_op.drop_column('finished_at')
        batch_op.drop_column('progress_at')
        batch_op.drop_column('rows_done')
        batch_op.drop_column('rows_total')
        batch_op.drop_column('worker')
