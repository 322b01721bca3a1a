"""multipart/related bodies (RFC 2387) as STOW-RS sends and WADO-RS returns them."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from werkzeug.http import parse_options_header

from fhir_ai.errors import InvalidRequest, UnsupportedMediaType


@dataclass(frozen=True, slots=True)
class Part:
    """One body part: its Content-Type (lower-cased media type) and bytes."""

    media_type: str
    body: bytes


def related_boundary(content_type: str | None, expected_type: str) -> str:
    """The boundary of a ``multipart/related; type=<expected_type>`` Content-Type."""
    media_type, options = parse_options_header(content_type or "")
    if media_type.lower() != "multipart/related":
        raise UnsupportedMediaType(
            f'STOW-RS takes multipart/related; type="{expected_type}", not {media_type or "none"}'
        )
    part_type = options.get("type", expected_type).lower()
    if part_type != expected_type:
        raise UnsupportedMediaType(
            f"This server stores only {expected_type} parts (PS3.10 files), not {part_type}"
        )
    boundary = options.get("boundary")
    if not boundary:
        raise InvalidRequest("The multipart/related Content-Type has no boundary")
    return str(boundary)


def split_parts(body: bytes, boundary: str) -> Iterator[Part]:
    """The parts of ``body`` in order; a malformed body is an :class:`InvalidRequest`."""
    delimiter = b"--" + boundary.encode("latin-1")
    start = body.find(delimiter)
    if start < 0:
        raise InvalidRequest("The multipart body has no part (boundary not found)")
    position = start + len(delimiter)
    while True:
        if body[position : position + 2] == b"--":
            return
        end = body.find(b"\r\n" + delimiter, position)
        if end < 0:
            raise InvalidRequest("The multipart body ends without its closing boundary")
        yield _part(body[position:end])
        position = end + 2 + len(delimiter)


def _part(raw: bytes) -> Part:
    raw = raw.removeprefix(b"\r\n")
    head, separator, payload = raw.partition(b"\r\n\r\n")
    if not separator:
        if raw.startswith(b"\r\n"):  # a part with no headers at all
            return Part("", raw[2:])
        raise InvalidRequest("A multipart part has no blank line after its headers")
    media_type = ""
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-type":
            media_type = parse_options_header(value.strip())[0].lower()
    return Part(media_type, payload)


def related_body(parts: Iterable[tuple[str, bytes]], part_type: str) -> tuple[str, Iterator[bytes]]:
    """A multipart/related body (streamed) and its Content-Type, from (type, bytes) parts."""
    boundary = secrets.token_hex(16)
    content_type = f'multipart/related; type="{part_type}"; boundary={boundary}'

    def chunks() -> Iterator[bytes]:
        for media_type, payload in parts:
            yield f"--{boundary}\r\nContent-Type: {media_type}\r\n\r\n".encode("latin-1")
            yield payload
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode("latin-1")

    return content_type, chunks()
