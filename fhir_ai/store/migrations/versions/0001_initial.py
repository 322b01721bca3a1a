"""initial resource store and search index

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 21:38:02.359066
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('resource',
    sa.Column('pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('last_updated', sa.DateTime(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('content', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.PrimaryKeyConstraint('pk'),
    sa.UniqueConstraint('resource_type', 'id', name='uq_resource_type_id')
    )
    with op.batch_alter_table('resource', schema=None) as batch_op:
        batch_op.create_index('ix_resource_type_updated', ['resource_type', 'last_updated'], unique=False)

    op.create_table('resource_version',
    sa.Column('resource_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('last_updated', sa.DateTime(), nullable=False),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('content', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.ForeignKeyConstraint(['resource_pk'], ['resource.pk'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('resource_pk', 'version_id')
    )
    op.create_table('search_date',
    sa.Column('resource_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=64), nullable=False),
    sa.Column('low', sa.DateTime(), nullable=False),
    sa.Column('high', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['resource_pk'], ['resource.pk'], ondelete='CASCADE')
    )
    with op.batch_alter_table('search_date', schema=None) as batch_op:
        batch_op.create_index('ix_search_date_lookup', ['resource_type', 'param', 'low', 'high', 'resource_pk'], unique=False)
        batch_op.create_index('ix_search_date_resource', ['resource_pk'], unique=False)

    op.create_table('search_reference',
    sa.Column('resource_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=64), nullable=False),
    sa.Column('target_type', sa.String(length=64), nullable=True),
    sa.Column('target_id', sa.String(length=255), nullable=True),
    sa.Column('target_url', sa.String(length=1024), nullable=True),
    sa.ForeignKeyConstraint(['resource_pk'], ['resource.pk'], ondelete='CASCADE')
    )
    with op.batch_alter_table('search_reference', schema=None) as batch_op:
        batch_op.create_index('ix_search_reference_lookup', ['resource_type', 'param', 'target_id', 'target_type', 'resource_pk'], unique=False)
        batch_op.create_index('ix_search_reference_resource', ['resource_pk'], unique=False)
        batch_op.create_index('ix_search_reference_target', ['target_type', 'target_id'], unique=False)

    op.create_table('search_string',
    sa.Column('resource_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=255), nullable=False),
    sa.Column('exact', sa.String(length=1024), nullable=False),
    sa.ForeignKeyConstraint(['resource_pk'], ['resource.pk'], ondelete='CASCADE')
    )
    with op.batch_alter_table('search_string', schema=None) as batch_op:
        batch_op.create_index('ix_search_string_lookup', ['resource_type', 'param', 'value', 'resource_pk'], unique=False)
        batch_op.create_index('ix_search_string_resource', ['resource_pk'], unique=False)

    op.create_table('search_token',
    sa.Column('resource_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('param', sa.String(length=64), nullable=False),
    sa.Column('system', sa.String(length=255), nullable=True),
    sa.Column('code', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['resource_pk'], ['resource.pk'], ondelete='CASCADE')
    )
    with op.batch_alter_table('search_token', schema=None) as batch_op:
        batch_op.create_index('ix_search_token_lookup', ['resource_type', 'param', 'code', 'system', 'resource_pk'], unique=False)
        batch_op.create_index('ix_search_token_resource', ['resource_pk'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('search_token', schema=None) as batch_op:
        batch_op.drop_index('ix_search_token_resource')
        batch_op.drop_index('ix_search_token_lookup')

    op.drop_table('search_token')
    with op.batch_alter_table('search_string', schema=None) as batch_op:
        batch_op.drop_index('ix_search_string_resource')
        batch_op.drop_index('ix_search_string_lookup')

    op.drop_table('search_string')
    with op.batch_alter_table('search_reference', schema=None) as batch_op:
        batch_op.drop_index('ix_search_reference_target')
        batch_op.drop_index('ix_search_reference_resource')
        batch_op.drop_index('ix_search_reference_lookup')

    op.drop_table('search_reference')
    with op.batch_alter_table('search_date', schema=None) as batch_op:
        batch_op.drop_index('ix_search_date_resource')
        batch_op.drop_index('ix_search_date_lookup')

    op.drop_table('search_date')
    op.drop_table('resource_version')
    with op.batch_alter_table('resource', schema=None) as batch_op:
        batch_op.drop_index('ix_resource_type_updated')

    op.drop_table('resource')
