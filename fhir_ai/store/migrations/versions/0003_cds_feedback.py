"""cds cards and feedback

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 22:33:02.199098
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('cds_card',
    sa.Column('card_uuid', sa.String(length=64), nullable=False),
    sa.Column('service_id', sa.String(length=128), nullable=False),
    sa.Column('hook_instance', sa.String(length=128), nullable=False),
    sa.Column('model_version', sa.String(length=128), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('card_uuid')
    )
    op.create_table('cds_feedback',
    sa.Column('pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('service_id', sa.String(length=128), nullable=False),
    sa.Column('card_uuid', sa.String(length=64), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('outcome_timestamp', sa.DateTime(), nullable=False),
    sa.Column('accepted_suggestions', sa.JSON(), nullable=True),
    sa.Column('override_reason', sa.JSON(), nullable=True),
    sa.Column('model_version', sa.String(length=128), nullable=True),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('pk'),
    sa.UniqueConstraint('service_id', 'card_uuid', 'outcome', 'outcome_timestamp', name='uq_cds_feedback_event')
    )
    with op.batch_alter_table('cds_feedback', schema=None) as batch_op:
        batch_op.create_index('ix_cds_feedback_service_outcome', ['service_id', 'outcome'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('cds_feedback', schema=None) as batch_op:
        batch_op.drop_index('ix_cds_feedback_service_outcome')

    op.drop_table('cds_feedback')
    op.drop_table('cds_card')
