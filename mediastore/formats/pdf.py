"""Completeness check of PDF files."""

from __future__ import annotations

import re

from ..errors import CorruptMediaError
from .stream import (
    ImageLayout,
    truncated,
)

# --- PDF ---------------------------------------------------------------------------------------
_PDF_TAIL = 1024
_PDF_UPDATE = re.compile(rb"\bxref\b|\btrailer\b")


class PdfCheck:
    """PDF: ``%%EOF`` near the end (the header was checked by the sniffer).

    Keeps the last 1 KiB, where the last ``%%EOF`` is, and whether an incremental-update
    section (``xref`` / ``trailer``) starts after it.
    """

    def __init__(self) -> None:
        self.layout: ImageLayout | None = None
        self.pos = 0
        self._tail = b""
        self._last_eof = -1
        self._update_after_eof = False

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        """Consume the next chunk (only its last 1 KiB is kept)."""
        data = bytes(chunk)
        carry = self._tail[-16:]  # a marker split between two chunks
        window = carry + data
        base = self.pos - len(carry)
        at = window.rfind(b"%%EOF")
        if at >= 0 and base + at > self._last_eof:
            self._last_eof = base + at
            self._update_after_eof = False
        if self._last_eof >= 0 and not self._update_after_eof:
            since = max(0, self._last_eof + 5 - base)
            self._update_after_eof = _PDF_UPDATE.search(window, since) is not None
        self.pos += len(data)
        self._tail = (self._tail + data[-_PDF_TAIL:])[-_PDF_TAIL:]

    def finish(self) -> ImageLayout | None:
        """Refuse a PDF without its end marker.

        Returns:
            None (a PDF has no image layout).

        Raises:
            CorruptMediaError: no ``%%EOF`` in the last 1 KiB nor before an update section.
        """
        if b"%%EOF" in self._tail or (self._last_eof >= 0 and self._update_after_eof):
            return None
        raise CorruptMediaError(truncated("PDF", "without its %%EOF end marker"))
