"""The index of stored DICOM instances: what WADO-RS retrieves and QIDO-RS searches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import IntegrityError

from fhir_ai.store.schema import dicom_instances, naive_utc_now


@dataclass(frozen=True, slots=True)
class StoredInstance:
    """One stored instance: its UIDs, where its bytes are and its metadata (DICOM JSON)."""

    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    modality: str | None
    instance_number: int | None
    object_key: str
    size_bytes: int
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StudyQuery:
    """QIDO-RS study search: PatientID, StudyDate (YYYYMMDD or a range), ModalitiesInStudy."""

    patient_id: str | None = None
    date_from: str | None = None
    date_to: str | None = None
    modality: str | None = None
    study_uid: str | None = None
    limit: int = 100
    offset: int = 0


class DicomIndex:
    """Instance rows in the database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def stored_key(self, sop_instance_uid: str) -> str | None:
        """The object key of an instance already stored, or None."""
        with self.engine.connect() as connection:
            return connection.execute(
                select(dicom_instances.c.object_key).where(
                    dicom_instances.c.sop_instance_uid == sop_instance_uid
                )
            ).scalar_one_or_none()

    def add(self, row: dict[str, Any]) -> bool:
        """Index a new instance (``row`` has the table's columns but ``stored_at``).

        False when another request indexed the same SOP Instance UID first.
        """
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(dicom_instances).values(**row, stored_at=naive_utc_now()))
        except IntegrityError:
            return False
        return True

    def instances(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> list[StoredInstance]:
        """The instances of a study (or of one series, or one instance), in order."""
        table = dicom_instances.c
        query = select(dicom_instances).where(table.study_instance_uid == study_uid)
        if series_uid:
            query = query.where(table.series_instance_uid == series_uid)
        if sop_uid:
            query = query.where(table.sop_instance_uid == sop_uid)
        query = query.order_by(
            table.series_instance_uid, table.instance_number, table.sop_instance_uid
        )
        with self.engine.connect() as connection:
            return [_instance(row) for row in connection.execute(query).mappings()]

    def studies(self, query: StudyQuery) -> list[tuple[str, list[StoredInstance]]]:
        """Studies matching ``query`` (newest first), each with its instances."""
        table = dicom_instances.c
        uids = select(table.study_instance_uid, func.max(table.study_date).label("d"))
        if query.patient_id:
            uids = uids.where(table.patient_id == query.patient_id)
        if query.date_from:
            uids = uids.where(table.study_date >= query.date_from)
        if query.date_to:
            uids = uids.where(table.study_date <= query.date_to)
        if query.modality:
            uids = uids.where(table.modality == query.modality)
        if query.study_uid:
            uids = uids.where(table.study_instance_uid == query.study_uid)
        uids = uids.group_by(table.study_instance_uid)
        uids = uids.order_by(func.max(table.study_date).desc(), table.study_instance_uid)
        with self.engine.connect() as connection:
            found = connection.execute(uids.limit(query.limit).offset(query.offset)).all()
        return [(row[0], self.instances(row[0])) for row in found]


def _instance(row: Any) -> StoredInstance:
    return StoredInstance(
        sop_instance_uid=row["sop_instance_uid"],
        study_instance_uid=row["study_instance_uid"],
        series_instance_uid=row["series_instance_uid"],
        sop_class_uid=row["sop_class_uid"],
        transfer_syntax_uid=row["transfer_syntax_uid"],
        modality=row["modality"],
        instance_number=row["instance_number"],
        object_key=row["object_key"],
        size_bytes=row["size_bytes"],
        metadata=row["metadata"],
    )
