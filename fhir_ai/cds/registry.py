"""The explicit, ordered registry of CDS services; discovery is generated from it."""

from __future__ import annotations

from collections.abc import Sequence

from fhir_ai.cds.models import DiscoveryResponse, ServiceDescriptor
from fhir_ai.cds.requests import prefetch_template_problems
from fhir_ai.cds.service import CdsService
from fhir_ai.errors import ConfigurationError, NotFound


class ServiceRegistry:
    """Services by id, checked when registered (unique ids, valid prefetch templates)."""

    def __init__(self, services: Sequence[CdsService]) -> None:
        self._services: dict[str, CdsService] = {}
        for service in services:
            if service.id in self._services:
                raise ConfigurationError(f"CDS service id '{service.id}' is registered twice")
            for hook in service.hooks:
                for key, template in service.prefetch.items():
                    problems = prefetch_template_problems(hook, template)
                    if problems:
                        raise ConfigurationError(
                            f"CDS service '{service.id}' prefetch '{key}': {'; '.join(problems)}"
                        )
            self._services[service.id] = service
        self._discovery = DiscoveryResponse(services=[
            ServiceDescriptor(
                hook=hook,
                id=service.id,
                title=service.title,
                description=service.description,
                prefetch=dict(service.prefetch),
                usageRequirements=service.usage_requirements,
            )
            for service in services
            for hook in service.hooks
        ])  # fmt: skip

    def discovery(self) -> DiscoveryResponse:
        """The discovery response: one entry per service and hook."""
        return self._discovery

    def get(self, service_id: str) -> CdsService:
        """The service with this id, or NotFound."""
        try:
            return self._services[service_id]
        except KeyError:
            raise NotFound("No CDS service with this id", expression="id") from None
