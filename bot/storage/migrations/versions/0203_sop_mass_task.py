"""sop mass tasks: mass_send steps of one day and staff member merged into one 群发 task

Revision ID: 0203_sop_mass_task
Revises: 0202_sop_survey
Create Date: 2026-12-07 22:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import bot.storage.db


revision: str = '0203_sop_mass_task'
down_revision: str | Sequence[str] | None = '0202_sop_survey'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('sop_mass_task',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('outbox_key', sa.String(length=255), nullable=False),
    sa.Column('script_id', sa.String(length=64), nullable=False),
    sa.Column('step_key', sa.String(length=40), nullable=False),
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('staff', sa.String(length=128), nullable=False),
    sa.Column('recipients', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('customers', sa.Integer(), server_default='0', nullable=False),
    sa.Column('state', sa.String(length=12), server_default='queued', nullable=False),
    sa.Column('msgid', sa.String(length=128), server_default='', nullable=False),
    sa.Column('sent', sa.Integer(), server_default='0', nullable=False),
    sa.Column('failed', sa.Integer(), server_default='0', nullable=False),
    sa.Column('unsent', sa.Integer(), server_default='0', nullable=False),
    sa.Column('polls', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_poll_at', bot.storage.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('detail', sa.Text(), server_default='', nullable=False),
    sa.Column('created_at', bot.storage.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sop_mass_task')),
    sa.UniqueConstraint('outbox_key', name='uq_sop_mass_task_outbox_key')
    )
    with op.batch_alter_table('sop_mass_task', schema=None) as batch_op:
        batch_op.create_index('ix_sop_mass_task_poll', ['state', 'next_poll_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('sop_mass_task', schema=None) as batch_op:
        batch_op.drop_index('ix_sop_mass_task_poll')

    op.drop_table('sop_mass_task')
