"""knowledge base: questions answered, suggested, missed and picked per day and chat

Revision ID: 0102_kb_outcomes
Revises: 0101_knowledge
Create Date: 2026-12-07 17:17:51.012219
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0102_kb_outcomes'
down_revision: str | Sequence[str] | None = '0101_knowledge'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('kb_outcome_day',
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('chat_id', sa.String(length=160), nullable=False),
    sa.Column('outcome', sa.String(length=12), nullable=False),
    sa.Column('count', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('day', 'chat_id', 'outcome', name=op.f('pk_kb_outcome_day'))
    )


def downgrade() -> None:
    op.drop_table('kb_outcome_day')
