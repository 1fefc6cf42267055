"""MD5 (the address) and SHA-256 (the collision check), computed in one streaming pass."""

from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path
from typing import BinaryIO

from .errors import InvalidMD5Error

_MD5_RE = re.compile(r"[0-9a-f]{32}")
READ_CHUNK = 64 * 1024  # reads of 128 KiB and more measured several times slower here


def normalize_md5(value: str) -> str:
    """Return ``value`` lower-cased if it is an MD5 hex digest.

    Raises:
        InvalidMD5Error: anything but 32 hex characters (e.g. ``../../etc/passwd``).
    """
    if not isinstance(value, str):
        raise InvalidMD5Error(
            f"md5 must be a string of 32 hex characters, got {type(value).__name__}"
        )
    lowered = value.strip().lower()
    if not _MD5_RE.fullmatch(lowered):
        raise InvalidMD5Error(f"not an md5 (32 hex characters): {value!r}")
    return lowered


class Digests:
    """MD5 and SHA-256 of one stream, fed chunk by chunk."""

    __slots__ = ("_md5", "_sha256", "md5_update", "sha256_update", "size")

    def __init__(self) -> None:
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha256 = hashlib.sha256()
        # the two updates may run on different threads (see ingest); the caller keeps size
        self.md5_update = self._md5.update
        self.sha256_update = self._sha256.update
        self.size = 0

    @property
    def md5(self) -> str:
        """Lowercase hex MD5 so far."""
        return self._md5.hexdigest()

    @property
    def sha256(self) -> str:
        """Lowercase hex SHA-256 so far."""
        return self._sha256.hexdigest()


def md5_of_bytes(data: bytes) -> str:
    """Lowercase hex MD5 of ``data``."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def md5_of_file(path: str | Path) -> str:
    """Lowercase hex MD5 of a file, read in 64 KiB chunks into one reused buffer."""
    with open(path, "rb", buffering=0) as fh:
        return md5_of_stream(fh)


class HashStopped(Exception):
    """A hash given up half-way because its caller is stopping (see :func:`md5_of_stream`)."""


def md5_of_stream(fh: BinaryIO, *, stop: threading.Event | None = None) -> str:
    """Lowercase hex MD5 of an open binary file, read to its end into one reused buffer.

    Raises:
        HashStopped: ``stop`` was set (checked before each chunk): a large file's hash
            ends within a chunk of its caller being interrupted.
    """
    digest = hashlib.md5(usedforsecurity=False)
    buf = bytearray(READ_CHUNK)
    view = memoryview(buf)
    while n := fh.readinto(buf):  # type: ignore[attr-defined]
        if stop is not None and stop.is_set():
            raise HashStopped
        digest.update(view[:n])
    return digest.hexdigest()
