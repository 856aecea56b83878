"""indexes for the report: tier changes by member and by time, memberships by member, group sizes

Revision ID: 0404_report_indexes
Revises: 0403_member_notes_churn
Create Date: 2026-12-07 22:25:00
"""

from collections.abc import Sequence

from alembic import op


revision: str = '0404_report_indexes'
down_revision: str | Sequence[str] | None = '0403_member_notes_churn'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('tier_change', schema=None) as batch_op:
        batch_op.drop_index('ix_tier_change_member')
        batch_op.create_index('ix_tier_change_member_at', ['member_id', 'at', 'direction', 'to_tier'], unique=False)
        batch_op.drop_index('ix_tier_change_at')
        batch_op.create_index('ix_tier_change_at_member', ['at', 'member_id', 'direction', 'from_tier'], unique=False)
    with op.batch_alter_table('group_membership', schema=None) as batch_op:
        batch_op.create_index('ix_group_membership_chat_present', ['chat_id', 'joined_at', 'left_at'], unique=False)
        batch_op.drop_index('ix_group_membership_member')
        batch_op.create_index('ix_group_membership_member_joined', ['member_id', 'joined_at', 'chat_id', 'join_scene'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('group_membership', schema=None) as batch_op:
        batch_op.drop_index('ix_group_membership_member_joined')
        batch_op.create_index('ix_group_membership_member', ['member_id'], unique=False)
        batch_op.drop_index('ix_group_membership_chat_present')
    with op.batch_alter_table('tier_change', schema=None) as batch_op:
        batch_op.drop_index('ix_tier_change_at_member')
        batch_op.create_index('ix_tier_change_at', ['at'], unique=False)
        batch_op.drop_index('ix_tier_change_member_at')
        batch_op.create_index('ix_tier_change_member', ['member_id'], unique=False)
