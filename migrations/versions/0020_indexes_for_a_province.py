"""indexes for a province-size dashboard

Revision ID: 0020
Revises: 0018
Create Date: 2026-12-04 18:30:00.000000

At 100,000 graduates the dashboard's needs-help list sorted every graduate row, and its
opted-out list and count of unreachable graduates' unanswered prompts read them all. Two
partial indexes hold only the rows those read.
"""
from alembic import op
import sqlalchemy as sa


revision = '0020'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('graduates', schema=None) as batch_op:
        batch_op.create_index('ix_graduates_help_report', ['help_report_id'], unique=False,
                              sqlite_where=sa.text('help_report_id IS NOT NULL'),
                              postgresql_where=sa.text('help_report_id IS NOT NULL'))
        batch_op.create_index('ix_graduates_unreachable', ['id'], unique=False,
                              sqlite_where=sa.text('opted_out IS 1 OR active IS 0'),
                              postgresql_where=sa.text('opted_out IS true OR active IS false'))


def downgrade() -> None:
    with op.batch_alter_table('graduates', schema=None) as batch_op:
        batch_op.drop_index('ix_graduates_unreachable')
        batch_op.drop_index('ix_graduates_help_report')
