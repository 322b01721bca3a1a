"""This server's public URLs, as clients see them."""

from __future__ import annotations

from flask import request

from fhir_ai.settings import Settings


def public_url(settings: Settings, path: str = "") -> str:
    """``path`` under ``FHIR_AI_PUBLIC_BASE_URL``, else under the root the request names."""
    return (settings.public_base_url or request.host_url).rstrip("/") + path
