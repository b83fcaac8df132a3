"""Uploaded photos and documents: type checked by content, size bounded, stored by hash."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from maintenance.errors import InvalidInput

_SIGNATURES: list[tuple[bytes, str]] = [
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"%PDF-", "application/pdf"),
]


@dataclass(frozen=True)
class StoredFile:
    """Where an upload went and what it is."""

    path: Path
    content_type: str
    size: int
    sha256: str


def sniff(data: bytes) -> str | None:
    """The content type the bytes really have (JPEG, PNG, WebP, PDF), or None."""
    for magic, kind in _SIGNATURES:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def store_upload(directory: Path, data: bytes, limit: int) -> StoredFile:
    """Check and store an upload; InvalidInput for an empty, oversized or unsupported file."""
    if not data:
        raise InvalidInput("the file is empty")
    if len(data) > limit:
        raise InvalidInput(f"the file is larger than {limit // (1024 * 1024)} MiB")
    kind = sniff(data)
    if kind is None:
        raise InvalidInput("only JPEG, PNG, WebP photos and PDF documents are accepted")
    digest = hashlib.sha256(data).hexdigest()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / digest
    if not path.exists():
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    return StoredFile(path, kind, len(data), digest)
