"""Action resources checked as FHIR R4 before a response leaves (CDS Hooks rule 130).

A suggestion whose action carries an invalid resource is dropped whole (a suggestion's
actions are applied together), and so is an invalid system action; the card itself, its
information for the clinician, is kept. Such a resource is a defect of the service, so
it is logged as an error (service, where, the validator's paths; never the resource).

Validating a resource as R4 (fhir.resources) costs about 0.1 ms, and the services build
the same action resources again on each view of a chart (a patient's provisional
Condition is the same until the report changes). :class:`ActionCheck` keeps the verdict
of each distinct content it has checked, a pure function of that content, in a bounded
least-recently-used table; a content never seen is validated in full.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import orjson

from fhir_ai.cds.models import Action, Card, CdsResponse
from fhir_ai.errors import InvalidResource
from fhir_ai.fhir.resources import validate_resource

logger = logging.getLogger("fhir_ai.cds")

#: Distinct action resources whose verdict is kept (a few hundred bytes each).
DEFAULT_REMEMBERED = 4096


class ActionCheck:
    """Drops the suggestions and system actions whose resource is not valid R4."""

    def __init__(self, remembered: int = DEFAULT_REMEMBERED) -> None:
        self._problems_of = lru_cache(maxsize=remembered)(_problems_of)

    def without_invalid_actions(self, response: CdsResponse, service_id: str) -> CdsResponse:
        """``response`` without the suggestions and system actions whose resource is not
        R4 (``response`` itself when all are valid)."""
        cards = [
            self._checked_card(card, index, service_id) for index, card in enumerate(response.cards)
        ]
        actions = [
            action
            for index, action in enumerate(response.systemActions)
            if self._valid(action, f"systemActions[{index}]", service_id)
        ]
        if cards == response.cards and actions == response.systemActions:
            return response
        return CdsResponse(cards=cards, systemActions=actions, extension=response.extension)

    def _checked_card(self, card: Card, index: int, service_id: str) -> Card:
        kept = [
            suggestion
            for number, suggestion in enumerate(card.suggestions)
            if all(
                self._valid(action, f"cards[{index}].suggestions[{number}]", service_id)
                for action in suggestion.actions
            )
        ]
        if len(kept) == len(card.suggestions):
            return card
        return card.model_copy(
            update={
                "suggestions": kept,
                "selectionBehavior": card.selectionBehavior if kept else None,
            }
        )

    def _valid(self, action: Action, where: str, service_id: str) -> bool:
        if action.resource is None:
            return True
        problems = self._problems_of(orjson.dumps(action.resource, option=orjson.OPT_SORT_KEYS))
        if problems is None:
            return True
        logger.error(
            "invalid action resource dropped",
            extra={
                "service": service_id,
                "where": where,
                "resource_type": action.resource.get("resourceType"),
                "problems": problems,
            },
        )
        return False


def _problems_of(content: bytes) -> list[str] | None:
    """None for a valid R4 resource (``content`` is its JSON), else the element paths the
    validator named (its messages may quote values, so only the paths are kept)."""
    try:
        validate_resource(orjson.loads(content))
    except InvalidResource as error:
        return [part.split(":", 1)[0].strip() for part in error.message.split(";")][:10]
    return None
