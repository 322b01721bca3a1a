"""``imaging-order-advisor``: warns of duplicate imaging when an imaging order is drafted."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fhir_ai.cds.models import Action, Card, CdsResponse
from fhir_ai.cds.service import HookCall, utc_now
from fhir_ai.cds.services.results import AiResultsReader
from fhir_ai.recommend.imaging_cards import attach_prior_study, duplicate_imaging_card
from fhir_ai.reports.links import ReportLinks, open_report_url

MAX_PRIOR_STUDIES = 50


@dataclass
class ImagingOrderAdvisor:
    """An info card when a drafted imaging order matches a recent AI-analysed study, and a
    system action attaching that study to the draft order as ``supportingInfo``.

    A draft ServiceRequest matches a report when its ``code`` shares a coding with the
    report's ``code`` (the imaging procedure), within ``window``. The system action only
    adds a reference (what the study is about, who ordered it and whether it is signed do
    not change), so the EHR may apply it without asking; whether to repeat the study stays
    the clinician's decision, which the card informs.
    """

    reader: AiResultsReader
    window: timedelta
    clock: Callable[[], datetime] = utc_now
    id: str = "imaging-order-advisor"
    hooks: tuple[str, ...] = ("order-select", "order-sign")
    title: str = "Duplicate imaging advisor"
    description: str = (
        "When an imaging order is drafted, tells whether the patient already has a recent "
        "study of the same kind analysed by AI, with that result, to avoid duplicate imaging; "
        "proposes (as a system action) to attach that prior result to the draft order."
    )
    prefetch: Mapping[str, str] = field(default_factory=dict)
    required_prefetch: frozenset[str] = frozenset()
    usage_requirements: str | None = None
    version: str = "imaging-order-advisor/2"
    #: Signs the cards' links to the report view (None: links name the FHIR resource).
    links: ReportLinks | None = None

    def evaluate(self, call: HookCall) -> CdsResponse:
        """At most one card and one system action per drafted imaging order."""
        orders = list(_draft_service_requests(call))
        if not orders:
            return CdsResponse.no_guidance()
        reports = self.reader.imaging(
            call.context.patientId, self.clock() - self.window, MAX_PRIOR_STUDIES
        ).reports
        cards: list[Card] = []
        actions: list[Action] = []
        for order in orders:
            codings = {
                (c.get("system"), c.get("code")) for c in order.get("code", {}).get("coding", [])
            }
            prior = next((r for r in reports if r.codings & codings), None)
            if prior is None:
                continue
            title = order.get("code", {}).get("text") or prior.title
            view = open_report_url(self.links, call.base_url, prior.id)
            cards.append(duplicate_imaging_card(title, prior, view))
            action = attach_prior_study(order, prior, call.base_url)
            if action is not None:
                actions.append(action)
        return CdsResponse(cards=cards, systemActions=actions)


def _draft_service_requests(call: HookCall) -> Iterator[dict[str, Any]]:
    bundle = getattr(call.context, "draftOrders", None) or {}
    selections = set(getattr(call.context, "selections", None) or [])
    for entry in bundle.get("entry", []):
        resource = entry.get("resource", {})
        if resource.get("resourceType") != "ServiceRequest" or resource.get("status") != "draft":
            continue
        if selections and f"ServiceRequest/{resource.get('id')}" not in selections:
            continue
        yield resource
