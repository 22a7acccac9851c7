"""console sessions that end, login throttling, random join codes, joins awaiting approval

- staff_users.session_version: a console session carries the version it was signed in with;
  sign-out, a password change and (de)activation bump it, which ends every copy of the cookie.
- throttles: failed sign-ins per client address and per name, GABUNG attempts per number.
- graduates.join_status: "pending" while a self-join waits for staff approval.
- Every existing cohort gets a random join code: the old ones were the cohort's name in
  capitals, which anyone could guess.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 14:30:00
"""
import secrets

from alembic import op
import sqlalchemy as sa

import bot.models  # noqa: F401 (UTCDateTime)


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

ALPHABET = 'ABCDEFGHJKMNPQRSTUVWXYZ23456789'  # as bot.joincodes, frozen here


def upgrade() -> None:
    with op.batch_alter_table('staff_users') as batch:
        batch.add_column(sa.Column('session_version', sa.Integer(), server_default='0',
                                   nullable=False))
    with op.batch_alter_table('graduates') as batch:
        batch.add_column(sa.Column('join_status', sa.String(length=16), nullable=True))
        batch.create_index('ix_graduates_join_status', ['join_status'])
    op.create_table(
        'throttles',
        sa.Column('key', sa.String(length=240), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('window_start', bot.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('blocked_until', bot.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('audited', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_throttles')),
    )
    bind = op.get_bind()
    cohorts = sa.table('cohorts', sa.column('id', sa.Integer), sa.column('join_code', sa.String))
    ids = [row[0] for row in bind.execute(sa.select(cohorts.c.id))]
    used: set[str] = set()
    for cohort_id in ids:
        code = ''.join(secrets.choice(ALPHABET) for _ in range(8))
        while code in used:
            code = ''.join(secrets.choice(ALPHABET) for _ in range(8))
        used.add(code)
        bind.execute(cohorts.update().where(cohorts.c.id == cohort_id).values(join_code=code))


def downgrade() -> None:
    op.drop_table('throttles')
    with op.batch_alter_table('graduates') as batch:
        batch.drop_index('ix_graduates_join_status')
        batch.drop_column('join_status')
    with op.batch_alter_table('staff_users') as batch:
        batch.drop_column('session_version')
