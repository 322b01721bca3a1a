"""covering per-resource search index

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 22:18:36.479751
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('search_date', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_search_date_resource'))
        batch_op.create_index('ix_search_date_by_resource', ['resource_pk', 'param', 'low', 'high', 'resource_type'], unique=False)

    with op.batch_alter_table('search_reference', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_search_reference_resource'))
        batch_op.create_index('ix_search_reference_by_resource', ['resource_pk', 'param', 'target_id', 'target_type', 'resource_type'], unique=False)

    with op.batch_alter_table('search_string', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_search_string_resource'))
        batch_op.create_index('ix_search_string_by_resource', ['resource_pk', 'param', 'value', 'resource_type'], unique=False)

    with op.batch_alter_table('search_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_search_token_resource'))
        batch_op.create_index('ix_search_token_by_resource', ['resource_pk', 'param', 'code', 'system', 'resource_type'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('search_token', schema=None) as batch_op:
        batch_op.drop_index('ix_search_token_by_resource')
        batch_op.create_index(batch_op.f('ix_search_token_resource'), ['resource_pk'], unique=False)

    with op.batch_alter_table('search_string', schema=None) as batch_op:
        batch_op.drop_index('ix_search_string_by_resource')
        batch_op.create_index(batch_op.f('ix_search_string_resource'), ['resource_pk'], unique=False)

    with op.batch_alter_table('search_reference', schema=None) as batch_op:
        batch_op.drop_index('ix_search_reference_by_resource')
        batch_op.create_index(batch_op.f('ix_search_reference_resource'), ['resource_pk'], unique=False)

    with op.batch_alter_table('search_date', schema=None) as batch_op:
        batch_op.drop_index('ix_search_date_by_resource')
        batch_op.create_index(batch_op.f('ix_search_date_resource'), ['resource_pk'], unique=False)

