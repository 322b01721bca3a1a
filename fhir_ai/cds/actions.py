"""Action resources checked as FHIR R4 before a response leaves (CDS Hooks rule 130).

A suggestion whose action carries an invalid resource is dropped whole (a suggestion's
actions are applied together), and so is an invalid system action; the card itself, its
information for the clinician, is kept. Such a resource is a defect of the service, so
it is logged as an error (service, where, the validator's paths; never the resource).
"""

from __future__ import annotations

import logging

from fhir_ai.cds.models import Action, Card, CdsResponse
from fhir_ai.errors import InvalidResource
from fhir_ai.fhir.resources import validate_resource

logger = logging.getLogger("fhir_ai.cds")


def without_invalid_actions(response: CdsResponse, service_id: str) -> CdsResponse:
    """``response`` without the suggestions and system actions whose resource is not R4."""
    cards = [_checked_card(card, index, service_id) for index, card in enumerate(response.cards)]
    actions = [
        action
        for index, action in enumerate(response.systemActions)
        if _valid(action, f"systemActions[{index}]", service_id)
    ]
    if cards == response.cards and actions == response.systemActions:
        return response
    return CdsResponse(cards=cards, systemActions=actions, extension=response.extension)


def _checked_card(card: Card, index: int, service_id: str) -> Card:
    kept = [
        suggestion
        for number, suggestion in enumerate(card.suggestions)
        if all(
            _valid(action, f"cards[{index}].suggestions[{number}]", service_id)
            for action in suggestion.actions
        )
    ]
    if len(kept) == len(card.suggestions):
        return card
    return card.model_copy(
        update={"suggestions": kept, "selectionBehavior": card.selectionBehavior if kept else None}
    )


def _valid(action: Action, where: str, service_id: str) -> bool:
    if action.resource is None:
        return True
    try:
        validate_resource(action.resource)
    except InvalidResource as error:
        logger.error(
            "invalid action resource dropped",
            extra={
                "service": service_id,
                "where": where,
                "resource_type": action.resource.get("resourceType"),
                "problems": _paths(error.message),
            },
        )
        return False
    return True


def _paths(message: str) -> list[str]:
    """The element paths the validator named (its messages may quote values)."""
    return [part.split(":", 1)[0].strip() for part in message.split(";")][:10]
