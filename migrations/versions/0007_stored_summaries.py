"""stored summaries: each graduate's latest answer and help request, each round's counts

The dashboard, job targeting by status and the reply log read these instead of aggregating
every progress report on each view (bot.summaries keeps them current). The backfill below
computes them once from the reports already stored.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 20:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

ROUND_COUNTS = """
UPDATE checkin_rounds SET
  prompted = (SELECT count(*) FROM progress_reports p WHERE p.round_id = checkin_rounds.id),
  responded = (SELECT count(p.responded_at) FROM progress_reports p
               WHERE p.round_id = checkin_rounds.id),
  rating_sum = (SELECT coalesce(sum(p.skill_rating), 0) FROM progress_reports p
                WHERE p.round_id = checkin_rounds.id),
  ratings = (SELECT count(p.skill_rating) FROM progress_reports p
             WHERE p.round_id = checkin_rounds.id)
"""
LATEST_ANSWER = """
UPDATE graduates SET
  answer_report_id = (
    SELECT p.id FROM progress_reports p JOIN checkin_rounds r ON r.id = p.round_id
    WHERE p.graduate_id = graduates.id AND p.employment_status IS NOT NULL
    ORDER BY r.scheduled_for DESC, p.id DESC LIMIT 1),
  help_report_id = (
    SELECT h.id FROM progress_reports h
    WHERE trim(coalesce(h.needs_help, '')) <> '' AND h.id = (
      SELECT p.id FROM progress_reports p JOIN checkin_rounds r ON r.id = p.round_id
      WHERE p.graduate_id = graduates.id
        AND (p.completed_at IS NOT NULL OR trim(coalesce(p.needs_help, '')) <> '')
      ORDER BY r.scheduled_for DESC, p.id DESC LIMIT 1))
"""
WHAT_IT_SAYS = """
UPDATE graduates SET
  answer_status = (SELECT p.employment_status FROM progress_reports p
                   WHERE p.id = graduates.answer_report_id),
  answer_uses_skill = (SELECT p.uses_training_skill FROM progress_reports p
                       WHERE p.id = graduates.answer_report_id)
"""


def upgrade() -> None:
    # Plain ADD COLUMN (no batch): SQLite adds these in place, without copying the tables.
    for name in ('prompted', 'responded', 'rating_sum', 'ratings'):
        op.add_column('checkin_rounds', sa.Column(name, sa.Integer(), server_default='0',
                                                  nullable=False))
    op.add_column('graduates', sa.Column('answer_report_id', sa.Integer(), nullable=True))
    op.add_column('graduates', sa.Column('answer_status', sa.String(length=16), nullable=True))
    op.add_column('graduates', sa.Column('answer_uses_skill', sa.Boolean(), nullable=True))
    op.add_column('graduates', sa.Column('help_report_id', sa.Integer(), nullable=True))
    op.execute(ROUND_COUNTS)
    op.execute(LATEST_ANSWER)
    op.execute(WHAT_IT_SAYS)


def downgrade() -> None:
    with op.batch_alter_table('graduates', schema=None) as batch_op:
        for name in ('help_report_id', 'answer_uses_skill', 'answer_status',
                     'answer_report_id'):
            batch_op.drop_column(name)
    with op.batch_alter_table('checkin_rounds', schema=None) as batch_op:
        for name in ('ratings', 'rating_sum', 'responded', 'prompted'):
            batch_op.drop_column(name)
