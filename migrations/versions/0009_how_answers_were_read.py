"""how each answer was read: the job title beside the employer, a reading per field

``progress_reports.readings`` says for each field whether it came from a numbered choice, a
tapped button, clear words, a guess, a follow-up question, a staff correction or a meaning
staff taught Kabar; ``graduates.answer_guessed`` lets the dashboard leave out statuses that
were guessed (copied from ``progress_reports.status_guessed``), and
``progress_reports.not_understood`` puts a graduate whose status Kabar could not read three
times on the dashboard's call list. Reports stored before this revision have no readings (shown as unknown).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 14:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch): SQLite adds these in place, without copying the tables.
    op.add_column('progress_reports', sa.Column('job_title', sa.Text(), nullable=True))
    op.add_column('progress_reports', sa.Column('readings', sa.JSON(), nullable=True))
    op.add_column('progress_reports', sa.Column('status_guessed', sa.Boolean(),
                                                server_default='0', nullable=False))
    op.add_column('progress_reports', sa.Column('not_understood', sa.Boolean(),
                                                server_default='0', nullable=False))
    op.add_column('graduates', sa.Column('answer_guessed', sa.Boolean(), server_default='0',
                                         nullable=False))
    op.create_index('ix_progress_reports_not_understood', 'progress_reports', ['graduate_id'],
                    sqlite_where=sa.text('not_understood = 1'),
                    postgresql_where=sa.text('not_understood = true'))


def downgrade() -> None:
    op.drop_index('ix_progress_reports_not_understood', table_name='progress_reports')
    with op.batch_alter_table('graduates') as batch:
        batch.drop_column('answer_guessed')
    with op.batch_alter_table('progress_reports') as batch:
        batch.drop_column('not_understood')
        batch.drop_column('status_guessed')
        batch.drop_column('readings')
        batch.drop_column('job_title')
