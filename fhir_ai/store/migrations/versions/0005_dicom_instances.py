"""dicom instances

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 00:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dicom_instance",
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("series_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("sop_class_uid", sa.String(length=64), nullable=False),
        sa.Column("transfer_syntax_uid", sa.String(length=64), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=True),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("study_date", sa.String(length=8), nullable=True),
        sa.Column("instance_number", sa.Integer(), nullable=True),
        sa.Column("object_key", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("stored_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sop_instance_uid"),
    )
    for column in ("study_instance_uid", "series_instance_uid", "patient_id", "study_date"):
        op.create_index(f"ix_dicom_instance_{column}", "dicom_instance", [column])


def downgrade() -> None:
    op.drop_table("dicom_instance")
