"""The one error hierarchy. Each error knows its HTTP status and FHIR issue code."""

from __future__ import annotations

from typing import ClassVar


class FhirAiError(Exception):
    """Base of every error the application raises on purpose."""

    http_status: ClassVar[int] = 500
    issue_code: ClassVar[str] = "exception"

    def __init__(self, message: str, *, expression: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.expression = expression


class InvalidRequest(FhirAiError):
    """The request cannot be understood (bad JSON, bad parameter, wrong shape)."""

    http_status = 400
    issue_code = "invalid"


class UnsupportedParameter(InvalidRequest):
    """A search parameter the server does not know, under ``handling=strict``."""

    issue_code = "not-supported"


class InvalidResource(FhirAiError):
    """The resource parsed but breaks a rule of FHIR or of this server."""

    http_status = 422
    issue_code = "invalid"


class Forbidden(FhirAiError):
    """The caller may not do this (a write outside the compartment it is confined to, say)."""

    http_status = 403
    issue_code = "forbidden"


class NotFound(FhirAiError):
    """No such resource, version or type."""

    http_status = 404
    issue_code = "not-found"


class Gone(FhirAiError):
    """The resource existed and was deleted."""

    http_status = 410
    issue_code = "deleted"


class Conflict(FhirAiError):
    """The write conflicts with the current state of the server."""

    http_status = 409
    issue_code = "conflict"


class PreconditionFailed(FhirAiError):
    """A version check (If-Match) or a conditional operation's criteria failed."""

    http_status = 412
    issue_code = "conflict"


class NotAcceptable(FhirAiError):
    """No representation the client accepts."""

    http_status = 406
    issue_code = "not-supported"


class UnsupportedMediaType(FhirAiError):
    """The request body's content type is not FHIR JSON."""

    http_status = 415
    issue_code = "not-supported"


class PayloadTooLarge(FhirAiError):
    """The request body exceeds the configured limit."""

    http_status = 413
    issue_code = "too-costly"


class MethodNotAllowed(FhirAiError):
    """The interaction is not supported on this resource type."""

    http_status = 405
    issue_code = "not-supported"


class ServiceUnavailable(FhirAiError):
    """A dependency (database, broker) is not reachable."""

    http_status = 503
    issue_code = "transient"


class ConfigurationError(FhirAiError):
    """The process is missing a setting it needs to start (for example the broker URL)."""

    http_status = 500
    issue_code = "exception"


class PrefetchUnavailable(FhirAiError):
    """Data a CDS service requires could be neither found in prefetch nor fetched (412)."""

    http_status = 412
    issue_code = "processing"


class DicomRejected(FhirAiError):
    """A DICOM instance refused at ingestion or analysis, with its PS3.4 failure reason.

    ``failure_reason`` is the DICOM status code STOW-RS reports in FailureReason
    (0xC000 cannot understand, 0xC122 transfer syntax not supported, 0xA900 data set
    does not match the SOP class / study, 0x0122 SOP class not supported, 0x0110
    processing failure).
    """

    http_status = 422
    issue_code = "invalid"

    def __init__(self, message: str, *, failure_reason: int = 0xC000) -> None:
        super().__init__(message)
        self.failure_reason = failure_reason


class NotAnalysable(FhirAiError):
    """Stored, but no model applies (an SR, a SEG, an ECG, an unrouted body part)."""

    http_status = 422
    issue_code = "not-supported"
