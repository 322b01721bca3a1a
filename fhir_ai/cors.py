"""CORS for browser-based EHRs: allow-listed origins; preflights need no JWT."""

from __future__ import annotations

from flask import Flask, Response, request

ALLOWED_METHODS = "GET, POST, PUT, DELETE, OPTIONS"
ALLOWED_HEADERS = (
    "Authorization, Content-Type, Accept, Prefer, If-Match, If-None-Exist, X-Request-ID"
)
EXPOSED_HEADERS = "Location, Content-Location, ETag, Last-Modified, X-Request-ID"


def register_cors(app: Flask, origins: tuple[str, ...]) -> None:
    """Answer CORS for ``origins`` (exact matches) on every route."""
    allowed = frozenset(origin.rstrip("/") for origin in origins)

    @app.after_request
    def add_cors_headers(response: Response) -> Response:
        origin = request.headers.get("Origin")
        response.vary.add("Origin")
        if origin is None or origin not in allowed:
            return response
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
        return response
