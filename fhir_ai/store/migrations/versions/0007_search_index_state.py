"""search index state

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 21:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "search_index_state",
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("indexed_at", sa.DateTime(timezone=False), nullable=False),
        sa.PrimaryKeyConstraint("resource_type"),
    )


def downgrade() -> None:
    op.drop_table("search_index_state")
