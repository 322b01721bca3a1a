"""jti replay cache in the database; cds_card by service

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 00:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('jwt_replay',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('jwt_replay', schema=None) as batch_op:
        batch_op.create_index('ix_jwt_replay_expires', ['expires_at'], unique=False)
    with op.batch_alter_table('cds_card', schema=None) as batch_op:
        batch_op.create_index('ix_cds_card_service', ['service_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('cds_card', schema=None) as batch_op:
        batch_op.drop_index('ix_cds_card_service')
    with op.batch_alter_table('jwt_replay', schema=None) as batch_op:
        batch_op.drop_index('ix_jwt_replay_expires')
    op.drop_table('jwt_replay')
