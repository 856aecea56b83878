"""human handoff

Revision ID: 0601_handoff
Revises: 0001_foundation
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.storage.db
from sqlalchemy.dialects import postgresql

revision: str = '0601_handoff'
down_revision: str | Sequence[str] | None = '0001_foundation'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('handoff',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('open_key', sa.String(length=128), nullable=True),
    sa.Column('member_id', sa.String(length=128), nullable=False),
    sa.Column('member_name', sa.String(length=128), server_default='', nullable=False),
    sa.Column('chat_id', sa.String(length=200), nullable=False),
    sa.Column('chat_type', sa.String(length=8), server_default='single', nullable=False),
    sa.Column('chat_name', sa.String(length=128), server_default='', nullable=False),
    sa.Column('reason', sa.String(length=12), server_default='request', nullable=False),
    sa.Column('trigger', sa.String(length=64), server_default='', nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('event_key', sa.String(length=255), server_default='', nullable=False),
    sa.Column('status', sa.String(length=8), server_default='open', nullable=False),
    sa.Column('notified', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('messages', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('follow_ups', sa.Integer(), server_default='0', nullable=False),
    sa.Column('opened_at', bot.storage.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('hold_until', bot.storage.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('escalated_at', bot.storage.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('taken_by', sa.String(length=128), nullable=True),
    sa.Column('taken_at', bot.storage.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_by', sa.String(length=128), nullable=True),
    sa.Column('closed_at', bot.storage.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('close_reason', sa.String(length=12), server_default='', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_handoff')),
    sa.UniqueConstraint('open_key', name=op.f('uq_handoff_open_key'))
    )
    with op.batch_alter_table('handoff', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_handoff_member_id'), ['member_id'], unique=False)
        batch_op.create_index('ix_handoff_status_opened', ['status', 'opened_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('handoff', schema=None) as batch_op:
        batch_op.drop_index('ix_handoff_status_opened')
        batch_op.drop_index(batch_op.f('ix_handoff_member_id'))

    op.drop_table('handoff')
