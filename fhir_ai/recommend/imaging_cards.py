"""Cards for AI imaging results: one per report, a pending card, duplicate-imaging advice."""

from __future__ import annotations

from typing import Any

from fhir_ai.cds.models import (
    SUMMARY_MAX_CHARS,
    Action,
    ActionType,
    Card,
    Indicator,
    Link,
    LinkType,
    SelectionBehavior,
    Source,
    Suggestion,
)
from fhir_ai.fhir.ai_results import AiFinding, AiImagingReport
from fhir_ai.recommend.conditions import add_problem
from fhir_ai.recommend.markdown import escape
from fhir_ai.reports.links import report_resource_url

SOURCE = Source(label="fhir-ai imaging AI")
_RESULT_WORD = {"POS": "positive", "NEG": "negative", "IND": "indeterminate"}


def report_card(
    report: AiImagingReport,
    patient_id: str,
    base_url: str,
    problem_codes: frozenset[tuple[str, str]] | None,
    open_url: str,
) -> Card:
    """The card of one AI report; positive findings missing from the problem list are
    offered as provisional Conditions (only when the problem list is known).

    ``open_url`` is what the card's link opens in the clinician's browser (see
    :func:`fhir_ai.reports.links.open_report_url`).
    """
    positive = report.positive
    report_url = report_resource_url(base_url, report.id)
    suggestions = [
        _provisional_condition(finding, patient_id, report_url)
        for finding in positive
        if problem_codes is not None and (finding.system, finding.code) not in problem_codes
    ]
    return Card(
        summary=_summary(report),
        indicator=Indicator.WARNING if positive else Indicator.INFO,
        detail=_detail(report),
        source=SOURCE,
        links=[Link(label="Open the AI report", url=open_url, type=LinkType.ABSOLUTE)],
        suggestions=suggestions,
        selectionBehavior=SelectionBehavior.ANY if suggestions else None,
    )


def pending_card(running: int, delayed: bool = False) -> Card:
    """An info card: analyses of this patient are still running (``delayed``: the job
    queue is unavailable, so they wait longer than usual)."""
    studies = "study is" if running == 1 else "studies are"
    if delayed:
        return Card(
            summary=f"AI analysis of {running} imaging {studies} delayed",
            indicator=Indicator.INFO,
            detail="The analysis service is temporarily unavailable; results will appear "
            "here once it is back. Nothing is needed from you.",
            source=SOURCE,
        )
    return Card(
        summary=f"AI analysis of {running} imaging {studies} still running",
        indicator=Indicator.INFO,
        detail="Results appear here when the analysis finishes; nothing is needed from you.",
        source=SOURCE,
    )


def duplicate_imaging_card(order_title: str, prior: AiImagingReport, open_url: str) -> Card:
    """An info card: the patient already has a recent, AI-analysed study of this kind
    (``open_url`` as in :func:`report_card`)."""
    when = prior.effective.date().isoformat() if prior.effective else "recently"
    return Card(
        summary=_cut(f"Similar imaging on {when} ({prior.title}) already has an AI result"),
        indicator=Indicator.INFO,
        detail=f"The draft order *{escape(order_title)}* resembles a study of {when}.\n\n"
        + _detail(prior),
        source=SOURCE,
        links=[
            Link(
                label="Open the prior AI report",
                url=open_url,
                type=LinkType.ABSOLUTE,
            )
        ],
    )


def attach_prior_study(
    order: dict[str, Any], prior: AiImagingReport, base_url: str
) -> Action | None:
    """A system action: the whole draft order with the prior AI report added to its
    ``supportingInfo`` (None when the order already names it, or has no id to update)."""
    url = report_resource_url(base_url, prior.id)
    existing = order.get("supportingInfo") or []
    if not order.get("id") or any(ref.get("reference") == url for ref in existing):
        return None
    when = prior.effective.date().isoformat() if prior.effective else "recent"
    reference = {"reference": url, "display": f"Prior AI-analysed {prior.title} ({when})"}
    return Action(
        type=ActionType.UPDATE,
        description=f"Attach the prior AI-analysed study of {when} to this order",
        resource={**order, "supportingInfo": [*existing, reference]},
    )


def _summary(report: AiImagingReport) -> str:
    when = report.effective.date().isoformat() if report.effective else "undated study"
    if report.positive:
        found = ", ".join(f"{f.display} likely{_percent(f)}" for f in report.positive)
        return _cut(f"AI: {found} on {report.title} of {when}")
    return _cut(f"AI: no positive finding on {report.title} of {when}")


def _detail(report: AiImagingReport) -> str:
    rows = "\n".join(
        f"| {escape(f.display)} | {_percent(f).strip(' ()') or 'n/a'} | "
        f"{_RESULT_WORD.get(f.interpretation, f.interpretation)} |"
        for f in report.findings
    )
    models = ", ".join(sorted({escape(f.model) for f in report.findings})) or "fhir-ai model"
    limitations = " ".join(
        sorted({escape(f.limitations) for f in report.findings if f.limitations})
    )
    parts = [
        "**AI analysis, not yet reviewed by a radiologist** "
        f"(report status: {escape(report.status)}).",
        "| Finding | Probability | Result |\n|---|---|---|\n" + rows if rows else "",
        f"Model: {models}.",
        f"Limitations: {limitations}" if limitations else "",
    ]
    return "\n\n".join(p for p in parts if p)


def _provisional_condition(finding: AiFinding, patient_id: str, report_url: str) -> Suggestion:
    return add_problem(
        label=_cut(f"Add provisional problem: {finding.display}"),
        description=f"Add {finding.display} to the problem list as provisional (AI)",
        coding={"system": finding.system, "code": finding.code, "display": finding.display},
        display=finding.display,
        patient_id=patient_id,
        verification="provisional",
        evidence=report_url,
    )


def _percent(finding: AiFinding) -> str:
    return f" ({finding.probability:.0%})" if finding.probability is not None else ""


def _cut(text: str) -> str:
    return text if len(text) <= SUMMARY_MAX_CHARS else text[: SUMMARY_MAX_CHARS - 1].rstrip() + "…"
