"""knowledge base tables

Revision ID: 0101_knowledge
Revises: 0001_foundation
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.storage.db
from sqlalchemy.dialects import postgresql

revision: str = '0101_knowledge'
down_revision: str | Sequence[str] | None = '0001_foundation'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('kb_cooldown',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('chat_id', sa.String(length=160), nullable=False),
    sa.Column('entry_id', sa.String(length=64), nullable=False),
    sa.Column('answered_at', bot.storage.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_cooldown')),
    sa.UniqueConstraint('chat_id', 'entry_id', name='uq_kb_cooldown_chat_entry')
    )
    with op.batch_alter_table('kb_cooldown', schema=None) as batch_op:
        batch_op.create_index('ix_kb_cooldown_answered_at', ['answered_at'], unique=False)

    op.create_table('kb_entry',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('entry_id', sa.String(length=64), nullable=False),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('state', sa.String(length=12), server_default='active', nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.Column('overrides', sa.String(length=255), server_default='', nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', bot.storage.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=128), nullable=False),
    sa.Column('updated_at', bot.storage.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_entry')),
    sa.UniqueConstraint('entry_id', name=op.f('uq_kb_entry_entry_id'))
    )
    op.create_table('kb_group',
    sa.Column('chat_id', sa.String(length=160), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('changed_by', sa.String(length=128), nullable=False),
    sa.Column('changed_at', bot.storage.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('chat_id', name=op.f('pk_kb_group'))
    )
    op.create_table('kb_miss',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('norm', sa.String(length=500), nullable=False),
    sa.Column('chat_id', sa.String(length=160), nullable=False),
    sa.Column('chat_type', sa.String(length=8), nullable=False),
    sa.Column('member_id', sa.String(length=128), nullable=False),
    sa.Column('member_name', sa.String(length=128), server_default='', nullable=False),
    sa.Column('outcome', sa.String(length=12), nullable=False),
    sa.Column('best_entry', sa.String(length=64), server_default='', nullable=False),
    sa.Column('best_score', sa.Float(), server_default='0', nullable=False),
    sa.Column('picked_entry', sa.String(length=64), nullable=True),
    sa.Column('at', bot.storage.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_miss'))
    )
    with op.batch_alter_table('kb_miss', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kb_miss_at'), ['at'], unique=False)

    op.create_table('kb_suggestion',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('chat_id', sa.String(length=160), nullable=False),
    sa.Column('member_id', sa.String(length=128), nullable=False),
    sa.Column('question', sa.Text(), nullable=False),
    sa.Column('entries', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('miss_id', sa.Integer(), nullable=True),
    sa.Column('created_at', bot.storage.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', bot.storage.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_suggestion')),
    sa.UniqueConstraint('chat_id', 'member_id', name='uq_kb_suggestion_chat_member')
    )
    with op.batch_alter_table('kb_suggestion', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kb_suggestion_expires_at'), ['expires_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('kb_suggestion', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kb_suggestion_expires_at'))

    op.drop_table('kb_suggestion')
    with op.batch_alter_table('kb_miss', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kb_miss_at'))

    op.drop_table('kb_miss')
    op.drop_table('kb_group')
    op.drop_table('kb_entry')
    with op.batch_alter_table('kb_cooldown', schema=None) as batch_op:
        batch_op.drop_index('ix_kb_cooldown_answered_at')

    op.drop_table('kb_cooldown')
