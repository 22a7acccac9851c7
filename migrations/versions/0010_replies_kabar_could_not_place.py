"""replies Kabar could not place, and the meanings staff taught it

``unplaced_replies`` keeps each check-in reply that could not be read as an answer, with its
grouping key (``bot.learning.phrase_key``); ``vocabulary_entries`` holds the meanings staff
gave such phrases on the console page, which the check-in reads beside its built-in words.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 14:40:00
"""
from alembic import op
import sqlalchemy as sa

import bot.models  # noqa: F401 (UTCDateTime)


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'vocabulary_entries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('reading', sa.String(length=16), nullable=False),
        sa.Column('phrase', sa.String(length=200), nullable=False),
        sa.Column('meaning', sa.String(length=32), nullable=False),
        sa.Column('created_by', sa.String(length=200), nullable=False),
        sa.Column('created_at', bot.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_vocabulary_entries')),
        sa.UniqueConstraint('reading', 'phrase', name=op.f('uq_vocabulary_entries_reading_phrase')),
    )
    op.create_table(
        'unplaced_replies',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('message_id', sa.Integer(), nullable=True),
        sa.Column('graduate_id', sa.Integer(), nullable=False),
        sa.Column('report_id', sa.Integer(), nullable=True),
        sa.Column('question', sa.String(length=16), nullable=False),
        sa.Column('phrase', sa.String(length=200), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('created_at', bot.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('resolved_at', bot.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('entry_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['entry_id'], ['vocabulary_entries.id'],
                                name=op.f('fk_unplaced_replies_entry_id_vocabulary_entries')),
        sa.ForeignKeyConstraint(['graduate_id'], ['graduates.id'],
                                name=op.f('fk_unplaced_replies_graduate_id_graduates')),
        sa.ForeignKeyConstraint(['message_id'], ['messages.id'],
                                name=op.f('fk_unplaced_replies_message_id_messages')),
        sa.ForeignKeyConstraint(['report_id'], ['progress_reports.id'],
                                name=op.f('fk_unplaced_replies_report_id_progress_reports')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_unplaced_replies')),
    )
    op.create_index(op.f('ix_unplaced_replies_graduate_id'), 'unplaced_replies',
                    ['graduate_id'], unique=False)
    op.create_index('ix_unplaced_replies_open', 'unplaced_replies',
                    ['question', 'phrase', 'graduate_id'],
                    unique=False, sqlite_where=sa.text('resolved_at IS NULL'),
                    postgresql_where=sa.text('resolved_at IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_unplaced_replies_open', table_name='unplaced_replies')
    op.drop_index(op.f('ix_unplaced_replies_graduate_id'), table_name='unplaced_replies')
    op.drop_table('unplaced_replies')
    op.drop_table('vocabulary_entries')
