"""Signed, expiring links to the report view (the "Open the AI report" link of a card).

A card's link opens in the clinician's browser, which holds no SMART token for this
server, so a link to ``/fhir/DiagnosticReport/<id>`` would be refused (or, with the FHIR
API open, show raw JSON). The link instead carries an HMAC-SHA256 of the report id and an
expiry: it opens that one report, for ``report_link_ttl_s`` seconds after the hook call
that issued the card, and nothing else. The key is the same on every web process:
``FHIR_AI_REPORT_LINK_KEY``, or one random key created once in the data directory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from fhir_ai.errors import ConfigurationError
from fhir_ai.settings import Settings

KEY_FILE = "report-link.key"
VIEW_PATH = "/reports"


class ReportLinks:
    """Signs and checks report-view links."""

    def __init__(self, key: bytes, ttl_s: int, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self.ttl_s = ttl_s
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: Settings) -> ReportLinks:
        """With the configured key, or the data directory's (created on first use)."""
        if settings.report_link_key is not None:
            key = settings.report_link_key.get_secret_value().encode()
        else:
            key = _stored_key(settings.data_dir / KEY_FILE)
        return cls(key, settings.report_link_ttl_s)

    def url(self, root_url: str, report_id: str) -> str:
        """The signed view URL of ``DiagnosticReport/<report_id>`` under ``root_url``."""
        expires = int(self._clock()) + self.ttl_s
        signature = self._signature(report_id, expires)  # base64url: nothing to escape
        return f"{root_url}{VIEW_PATH}/{report_id}?exp={expires}&sig={signature}"

    def valid(self, report_id: str, expires: str | None, signature: str | None) -> bool:
        """True if the link was signed here for this report and has not expired."""
        if not expires or not signature or not expires.isdigit() or len(expires) > 12:
            return False
        if int(expires) < self._clock():
            return False
        return hmac.compare_digest(self._signature(report_id, int(expires)), signature)

    def _signature(self, report_id: str, expires: int) -> str:
        message = f"DiagnosticReport/{report_id}|{expires}".encode()
        digest = hmac.digest(self._key, message, hashlib.sha256)
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _stored_key(path: Path) -> bytes:
    """The key in ``path``, created (readable by this user only) if it does not exist."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path)
    key = secrets.token_urlsafe(32)
    with os.fdopen(descriptor, "w") as out:
        out.write(key)
    return key.encode()


def _read_key(path: Path) -> bytes:
    for _ in range(50):  # another process may be writing it this instant
        key = path.read_text().strip()
        if key:
            return key.encode()
        time.sleep(0.01)
    raise ConfigurationError(f"The report link key file {path} is empty")


def open_report_url(links: ReportLinks | None, root_url: str, report_id: str) -> str:
    """Where a CDS card's link to ``DiagnosticReport/<report_id>`` points: the signed report
    view the clinician's browser can open, or the FHIR resource when no view is served."""
    if links is None:
        return report_resource_url(root_url, report_id)
    return links.url(root_url, report_id)


def report_resource_url(root_url: str, report_id: str) -> str:
    """The absolute URL of ``DiagnosticReport/<report_id>`` on this server's FHIR API."""
    return f"{root_url}/fhir/DiagnosticReport/{report_id}"
