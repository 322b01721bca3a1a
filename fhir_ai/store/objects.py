"""The object store port and its file-system adapter: blobs addressed by their SHA-256.

Writing the same bytes twice stores them once; a blob is written to a temporary file
and renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol

from fhir_ai.errors import NotFound


class ObjectStore(Protocol):
    """Immutable blobs by content address."""

    def put(self, data: bytes) -> str:
        """Store ``data``; its key (the hex SHA-256)."""

    def get(self, key: str) -> bytes:
        """The blob with ``key``; :class:`NotFound` if there is none."""

    def path(self, key: str) -> Path | None:
        """A local file holding the blob, when the store has one (for streaming)."""


def content_key(data: bytes) -> str:
    """The content address of ``data``."""
    return hashlib.sha256(data).hexdigest()


class FileObjectStore:
    """Blobs under ``root/ab/cd/<sha256>``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _file(self, key: str) -> Path:
        if len(key) != 64 or not all(c in "0123456789abcdef" for c in key):
            raise NotFound("No such object")
        return self.root / key[:2] / key[2:4] / key

    def put(self, data: bytes) -> str:
        """Store ``data`` once; its key."""
        key = content_key(data)
        target = self._file(key)
        if target.exists():
            return key
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return key

    def get(self, key: str) -> bytes:
        """The blob with ``key``."""
        try:
            return self._file(key).read_bytes()
        except FileNotFoundError as error:
            raise NotFound("No such object") from error

    def path(self, key: str) -> Path | None:
        """The file of the blob (None when absent)."""
        target = self._file(key)
        return target if target.exists() else None
