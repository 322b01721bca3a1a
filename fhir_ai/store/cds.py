"""What CDS Hooks needs to remember: the cards it issued and the feedback on them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select
from sqlalchemy.exc import IntegrityError

from fhir_ai.store.bulk import insert_rows
from fhir_ai.store.repository import StoreSession
from fhir_ai.store.schema import cds_cards, cds_feedback, naive_utc_now


@dataclass(frozen=True, slots=True)
class IssuedCard:
    """A card the service returned, with the model version behind it."""

    card_uuid: str
    service_id: str
    hook_instance: str
    model_version: str | None
    indicator: str | None = None  # info, warning or critical


@dataclass(frozen=True, slots=True)
class FeedbackEvent:
    """One feedback item, as received."""

    card_uuid: str
    outcome: str
    outcome_timestamp: datetime
    accepted_suggestions: list[str]
    override_reason: dict[str, Any] | None


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def write_issued_cards(session: StoreSession, calls: list[list[IssuedCard]]) -> None:
    """The background writer's sink for issued cards: each record is the cards of one hook
    call (one hand-over per call, not one per card)."""
    _insert_cards(session.connection, [card for cards in calls for card in cards])


def _insert_cards(connection: Connection, cards: Iterable[IssuedCard]) -> None:
    now = naive_utc_now()
    rows = [
        {
            "card_uuid": c.card_uuid,
            "service_id": c.service_id,
            "hook_instance": c.hook_instance,
            "model_version": c.model_version,
            "indicator": c.indicator,
            "created_at": now,
        }
        for c in cards
    ]
    insert_rows(connection, cds_cards, rows)


class CdsStore:
    """Cards issued and feedback received, in the application database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record_cards(self, cards: Iterable[IssuedCard]) -> None:
        """Remember issued cards now (the app hands them to the background writer)."""
        with self.engine.begin() as connection:
            _insert_cards(connection, cards)

    def record_feedback(self, service_id: str, events: Iterable[FeedbackEvent]) -> int:
        """Store feedback idempotently; return how many items were new."""
        new = 0
        with self.engine.begin() as connection:
            for event in events:
                version = connection.execute(
                    select(cds_cards.c.model_version).where(
                        cds_cards.c.card_uuid == event.card_uuid,
                        cds_cards.c.service_id == service_id,
                    )
                ).scalar_one_or_none()
                row = {
                    "service_id": service_id,
                    "card_uuid": event.card_uuid,
                    "outcome": event.outcome,
                    "outcome_timestamp": _naive_utc(event.outcome_timestamp),
                    "accepted_suggestions": event.accepted_suggestions or None,
                    "override_reason": event.override_reason,
                    "model_version": version,
                    "received_at": naive_utc_now(),
                }
                try:
                    with connection.begin_nested():
                        connection.execute(insert(cds_feedback), [row])
                    new += 1
                except IntegrityError:
                    continue  # the same feedback sent again
        return new

    def outcome_counts(self, service_id: str) -> dict[str, int]:
        """Feedback counts per outcome for a service (for accept/override rates)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(cds_feedback.c.outcome, func.count())
                .where(cds_feedback.c.service_id == service_id)
                .group_by(cds_feedback.c.outcome)
            ).all()
        return {outcome: int(count) for outcome, count in rows}

    def feedback_counts(self) -> dict[tuple[str, str], int]:
        """Feedback counts for every service, keyed by ``(service_id, outcome)``."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(cds_feedback.c.service_id, cds_feedback.c.outcome, func.count()).group_by(
                    cds_feedback.c.service_id, cds_feedback.c.outcome
                )
            ).all()
        return {(service_id, outcome): int(count) for service_id, outcome, count in rows}

    def card_counts(self) -> dict[tuple[str, str], int]:
        """Issued-card counts per service and indicator (``unknown`` for older rows)."""
        indicator = func.coalesce(cds_cards.c.indicator, "unknown")
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(cds_cards.c.service_id, indicator, func.count()).group_by(
                    cds_cards.c.service_id, indicator
                )
            ).all()
        return {(service_id, level): int(count) for service_id, level, count in rows}
