"""cds card indicator

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 01:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("cds_card", sa.Column("indicator", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cds_card") as batch:
        batch.drop_column("indicator")
