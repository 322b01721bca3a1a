"""A new Subscription is checked when it is created: ``requested`` becomes ``active`` when
its channel and criteria are usable, ``error`` (with the reason in ``error``) when not."""

from __future__ import annotations

import logging

from fhir_ai.errors import InvalidResource
from fhir_ai.fhir.service import FhirService
from fhir_ai.store.repository import ResourceStore
from fhir_ai.subscriptions.matching import check

logger = logging.getLogger("fhir_ai.subscriptions")


class SubscriptionActivator:
    """A created-resource hook of the FHIR API."""

    def __init__(self, store: ResourceStore, fhir: FhirService) -> None:
        self.store = store
        self.fhir = fhir

    def __call__(self, resource_type: str, resource_id: str, version: str) -> None:
        """Activate (or refuse) a new ``requested`` Subscription."""
        if resource_type != "Subscription":
            return
        with self.store.session() as session:
            subscription = dict(session.read(resource_type, resource_id).content or {})
            if subscription.get("status") != "requested":
                return
            try:
                check(self.fhir, subscription)
            except InvalidResource as error:
                update = {**subscription, "status": "error", "error": error.message}
            else:
                update = {**subscription, "status": "active"}
            session.update(update, resource_id)
        logger.info("Subscription checked", extra={"status": update["status"]})
