"""Database tables: current resources, every version, and the search index.

Search parameters are extracted on write into one narrow table per parameter type,
each indexed for the lookups search makes, so a search never scans resources.
Timestamps are stored as naive UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()


def naive_utc_now() -> datetime:
    """Now, as the tables store timestamps (naive UTC)."""
    return datetime.now(UTC).replace(tzinfo=None)


ResourceJson = JSON().with_variant(JSONB(), "postgresql")
Pk = BigInteger().with_variant(Integer(), "sqlite")

resources = Table(
    "resource",
    metadata,
    Column("pk", Pk, primary_key=True, autoincrement=True),
    Column("resource_type", String(64), nullable=False),
    Column("id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime(timezone=False), nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("content", ResourceJson, nullable=True),
    UniqueConstraint("resource_type", "id", name="uq_resource_type_id"),
    Index("ix_resource_type_updated", "resource_type", "last_updated"),
)

#: Every version of every resource. A version's content is kept here once it is no longer
#: current: the current version's row has no content (JSON null: its content is the
#: resource row's, not written twice) until an update or delete supersedes it and copies it
#: here. A DELETE version has none. Rows written before this rule keep their duplicate.
resource_versions = Table(
    "resource_version",
    metadata,
    Column("resource_pk", Pk, ForeignKey("resource.pk", ondelete="CASCADE"), primary_key=True),
    Column("version_id", Integer, primary_key=True),
    Column("last_updated", DateTime(timezone=False), nullable=False),
    Column("method", String(8), nullable=False),
    Column("content", ResourceJson, nullable=True),
)


def _index_table(name: str, *value_columns: Column[object], lookup: tuple[str, ...]) -> Table:
    table = Table(
        name,
        metadata,
        Column("resource_pk", Pk, ForeignKey("resource.pk", ondelete="CASCADE"), nullable=False),
        Column("resource_type", String(64), nullable=False),
        Column("param", String(64), nullable=False),
        *value_columns,
    )
    # Search starts from the most selective parameter through the lookup index, then
    # checks each candidate's other parameters through the covering per-resource index
    # (an index-only probe; it also serves re-indexing on update and delete).
    values = [table.c[column] for column in lookup]
    Index(f"ix_{name}_lookup", table.c.resource_type, table.c.param, *values, table.c.resource_pk)
    Index(f"ix_{name}_by_resource", table.c.resource_pk, table.c.param, *values,
          table.c.resource_type)  # fmt: skip
    return table


search_tokens = _index_table(
    "search_token",
    Column("system", String(255), nullable=True),
    Column("code", String(255), nullable=True),
    lookup=("code", "system"),
)

search_references = _index_table(
    "search_reference",
    Column("target_type", String(64), nullable=True),
    Column("target_id", String(255), nullable=True),
    Column("target_url", String(1024), nullable=True),
    lookup=("target_id", "target_type"),
)
Index("ix_search_reference_target", search_references.c.target_type, search_references.c.target_id)

search_dates = _index_table(
    "search_date",
    Column("low", DateTime(timezone=False), nullable=False),
    Column("high", DateTime(timezone=False), nullable=False),
    lookup=("low", "high"),
)

#: A patient's resources in date order: each date row of a resource again under every
#: Patient its ``patient`` parameter names (``IndexEntries.patient_dates``), so "the
#: newest N of this patient's reports" reads N index entries, not every report of the
#: patient sorted (0.04 against 0.47 ms for a patient with 200 reports on SQLite).
search_patient_dates = _index_table(
    "search_patient_date",
    Column("patient_id", String(255), nullable=False),
    Column("low", DateTime(timezone=False), nullable=False),
    Column("high", DateTime(timezone=False), nullable=False),
    lookup=("patient_id", "high"),
)

search_strings = _index_table(
    "search_string",
    Column("value", String(255), nullable=False),
    Column("exact", String(1024), nullable=False),
    lookup=("value",),
)

cds_cards = Table(
    "cds_card",
    metadata,
    Column("card_uuid", String(64), primary_key=True),
    Column("service_id", String(128), nullable=False),
    Column("hook_instance", String(128), nullable=False),
    Column("model_version", String(128), nullable=True),
    Column("created_at", DateTime(timezone=False), nullable=False),
    Column("indicator", String(16), nullable=True),
    Index("ix_cds_card_service", "service_id"),
)

#: The index fingerprint (``fhir.search.extract.index_fingerprint``) each resource type's
#: search rows were last extracted with.
search_index_state = Table(
    "search_index_state",
    metadata,
    Column("resource_type", String(64), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("indexed_at", DateTime(timezone=False), nullable=False),
)

jwt_replay = Table(
    "jwt_replay",
    metadata,
    Column("key", String(64), primary_key=True),  # sha256 of (iss, jti), hex
    Column("expires_at", BigInteger, nullable=False),  # epoch seconds
    Index("ix_jwt_replay_expires", "expires_at"),
)

cds_feedback = Table(
    "cds_feedback",
    metadata,
    Column("pk", Pk, primary_key=True, autoincrement=True),
    Column("service_id", String(128), nullable=False),
    Column("card_uuid", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("outcome_timestamp", DateTime(timezone=False), nullable=False),
    Column("accepted_suggestions", JSON, nullable=True),
    Column("override_reason", JSON, nullable=True),
    Column("model_version", String(128), nullable=True),
    Column("received_at", DateTime(timezone=False), nullable=False),
    UniqueConstraint(
        "service_id", "card_uuid", "outcome", "outcome_timestamp", name="uq_cds_feedback_event"
    ),
    Index("ix_cds_feedback_service_outcome", "service_id", "outcome"),
)

#: One row per stored DICOM instance: where its bytes are and what QIDO-RS searches on.
dicom_instances = Table(
    "dicom_instance",
    metadata,
    Column("sop_instance_uid", String(64), primary_key=True),
    Column("study_instance_uid", String(64), nullable=False, index=True),
    Column("series_instance_uid", String(64), nullable=False, index=True),
    Column("sop_class_uid", String(64), nullable=False),
    Column("transfer_syntax_uid", String(64), nullable=False),
    Column("modality", String(16), nullable=True),
    Column("patient_id", String(64), nullable=True, index=True),
    Column("study_date", String(8), nullable=True, index=True),
    Column("instance_number", Integer, nullable=True),
    Column("object_key", String(64), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("metadata", ResourceJson, nullable=False),
    Column("stored_at", DateTime, nullable=False),
)
