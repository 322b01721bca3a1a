"""``GET /reports/<id>?exp=&sig=``: one AI imaging report as a page for a clinician.

Opened from a CDS card's signed link (:mod:`fhir_ai.reports.links`), so it needs no SMART
token; a link that is not valid for this report, or has expired, gets 403 with no detail.
Only AI reports this server wrote (security label AIAST) are shown. The page is
self-contained (the Grad-CAM heatmap inline), never cached or sent as a referrer, and
allows no scripts.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, render_template, request

from fhir_ai.audit import audit_context
from fhir_ai.errors import FhirAiError, NotFound
from fhir_ai.fhir.ai_results import is_ai_asserted, read_report
from fhir_ai.fhir.references import FHIR_ID
from fhir_ai.reports.links import ReportLinks
from fhir_ai.store.repository import ResourceStore

_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'"
    ),
}


def create_report_blueprint(store: ResourceStore, links: ReportLinks) -> Blueprint:
    """The ``/reports`` blueprint."""
    bp = Blueprint("reports", __name__, template_folder="templates")

    @bp.get("/<report_id>")
    def view(report_id: str) -> Response:
        if not FHIR_ID.match(report_id) or not links.valid(
            report_id, request.args.get("exp"), request.args.get("sig")
        ):
            return _page("This link is not valid or has expired. Open the card again.", 403)
        audit_context().entities.append(f"DiagnosticReport/{report_id}")
        page = _report_page(store, report_id)
        if page is None:
            return _page("This report is not available.", 404)
        return _respond(render_template("report.html", **page), 200)

    return bp


def _report_page(store: ResourceStore, report_id: str) -> dict[str, Any] | None:
    """What the template shows, or None when there is no such AI report."""
    try:
        with store.session(read_only=True) as session:

            def content(reference: str) -> dict[str, Any]:
                resource_type, _, resource_id = reference.partition("/")
                found = session.read(resource_type, resource_id).content
                if found is None:
                    raise NotFound(f"{reference} has no content")
                return found

            report = content(f"DiagnosticReport/{report_id}")
            if not is_ai_asserted(report):
                return None
            observations = {
                ref["reference"]: content(ref["reference"])
                for ref in report.get("result", [])
                if str(ref.get("reference", "")).startswith("Observation/")
            }
            forms = [
                form
                for form in report.get("presentedForm", [])
                if str(form.get("url", "")).startswith("Binary/")
            ]
            heatmaps = [_inline_image(content(form["url"])) for form in forms]
    except FhirAiError:  # not found, deleted, or a dangling reference
        return None
    return {
        "report": read_report(report, observations),
        "conclusion": report.get("conclusion"),
        "issued": report.get("issued"),
        "heatmaps": [h for h in heatmaps if h],
        "heatmap_title": next((f["title"] for f in forms if f.get("title")), None),
    }


def _inline_image(binary: dict[str, Any]) -> str | None:
    content_type, data = binary.get("contentType"), binary.get("data")
    if content_type not in ("image/png", "image/jpeg") or not isinstance(data, str):
        return None
    return f"data:{content_type};base64,{data}"


def _page(message: str, status: int) -> Response:
    return _respond(render_template("report.html", message=message), status)


def _respond(html: str, status: int) -> Response:
    response = Response(html, status=status, mimetype="text/html")
    response.headers.update(_HEADERS)
    return response
