"""search patient date

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 23:50:00

The table starts empty: ``INDEX_FORMAT`` 2 makes every type's index fingerprint stale,
so ``fhir-ai db upgrade`` (and ``serve``) reindexes every type once, filling it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "search_patient_date",
        sa.Column("resource_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=255), nullable=False),
        sa.Column("low", sa.DateTime(timezone=False), nullable=False),
        sa.Column("high", sa.DateTime(timezone=False), nullable=False),
        sa.ForeignKeyConstraint(["resource_pk"], ["resource.pk"], ondelete="CASCADE"),
    )  # fmt: skip
    with op.batch_alter_table("search_patient_date", schema=None) as batch_op:
        batch_op.create_index(
            "ix_search_patient_date_lookup",
            ["resource_type", "param", "patient_id", "high", "resource_pk"],
            unique=False,
        )
        batch_op.create_index(
            "ix_search_patient_date_by_resource",
            ["resource_pk", "param", "patient_id", "high", "resource_type"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("search_patient_date", schema=None) as batch_op:
        batch_op.drop_index("ix_search_patient_date_by_resource")
        batch_op.drop_index("ix_search_patient_date_lookup")
    op.drop_table("search_patient_date")
