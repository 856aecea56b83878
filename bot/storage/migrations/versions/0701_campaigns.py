"""campaigns: segment sends, their tasks and recipients, channel codes

Revision ID: 0701_campaigns
Revises: 0001_foundation
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.storage.db
from sqlalchemy.dialects import postgresql

revision: str = '0701_campaigns'
down_revision: str | Sequence[str] | None = '0001_foundation'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('campaign_send',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('segment', sa.String(length=200), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('customers', sa.Integer(), server_default='0', nullable=False),
    sa.Column('staff', sa.Integer(), server_default='0', nullable=False),
    sa.Column('skipped_today', sa.Integer(), server_default='0', nullable=False),
    sa.Column('skipped_no_staff', sa.Integer(), server_default='0', nullable=False),
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('created_at', bot.storage.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('due_at', bot.storage.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_send'))
    )
    op.create_table('campaign_task',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('send_id', BIG_ID, nullable=False),
    sa.Column('staff', sa.String(length=128), nullable=False),
    sa.Column('outbox_key', sa.String(length=255), nullable=False),
    sa.Column('customers', sa.Integer(), server_default='0', nullable=False),
    sa.Column('state', sa.String(length=12), server_default='queued', nullable=False),
    sa.Column('msgid', sa.String(length=128), server_default='', nullable=False),
    sa.Column('sent', sa.Integer(), server_default='0', nullable=False),
    sa.Column('failed', sa.Integer(), server_default='0', nullable=False),
    sa.Column('unsent', sa.Integer(), server_default='0', nullable=False),
    sa.Column('polls', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_poll_at', bot.storage.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('created_at', bot.storage.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_task'))
    )
    with op.batch_alter_table('campaign_task', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_campaign_task_send_id'), ['send_id'], unique=False)
        batch_op.create_index('ix_campaign_task_poll', ['state', 'next_poll_at'], unique=False)
    op.create_table('campaign_recipient',
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('member_id', sa.String(length=128), nullable=False),
    sa.Column('send_id', BIG_ID, nullable=False),
    sa.PrimaryKeyConstraint('day', 'member_id', name=op.f('pk_campaign_recipient'))
    )
    op.create_table('channel',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=30), nullable=False),
    sa.Column('staff', JSON, nullable=False),
    sa.Column('config_id', sa.String(length=64), server_default='', nullable=False),
    sa.Column('qr_code', sa.String(length=500), server_default='', nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', bot.storage.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_channel')),
    sa.UniqueConstraint('name', name=op.f('uq_channel_name')),
    sa.UniqueConstraint('state', name=op.f('uq_channel_state'))
    )
    op.create_table('channel_contact',
    sa.Column('channel_id', BIG_ID, nullable=False),
    sa.Column('member_id', sa.String(length=128), nullable=False),
    sa.Column('staff', sa.String(length=128), server_default='', nullable=False),
    sa.Column('added_at', bot.storage.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('channel_id', 'member_id', name=op.f('pk_channel_contact'))
    )


def downgrade() -> None:
    op.drop_table('channel_contact')
    op.drop_table('channel')
    op.drop_table('campaign_recipient')
    with op.batch_alter_table('campaign_task', schema=None) as batch_op:
        batch_op.drop_index('ix_campaign_task_poll')
        batch_op.drop_index(batch_op.f('ix_campaign_task_send_id'))
    op.drop_table('campaign_task')
    op.drop_table('campaign_send')
