"""Streaming completeness checks: is a file of a sniffed kind whole and well-formed?

Each check is fed the file's chunks as they stream through ingest (:meth:`StreamCheck.feed`)
and says at the end (:meth:`StreamCheck.finish`) whether the structure was complete. The
checks read headers, segment, chunk, box and element structure and the file's end, never pixels
or sample data: payloads are skipped by their declared length, so a 512 MiB MP4 costs a few
box headers, and the state kept is bounded (a header being read, the last 1 KiB of a PDF).

What each format must show:

- JPEG: well-formed segments from SOI through the scans to an EOI marker.
- PNG: chunks with correct CRCs from IHDR to IEND; APNG frame control consistent (one acTL
  before the image data, sequence numbers in order, as many fcTL as declared frames, frames
  inside the canvas, each with its data).
- GIF: blocks up to the trailer, with at least one image, every frame within the pixel cap.
- WebP: the RIFF size equals the file's, chunks tile it, and the VP8/VP8L/VP8X/ANMF
  dimensions agree with each other.
- MP4/MOV: top-level boxes tile the file (a last box of size 0 runs to the end), a ``moov``
  is present and one of its tracks has a video handler (audio-only is refused as unsupported).
- WebM: an EBML header and a Segment (unknown sizes allowed) whose Tracks hold a video track.
- PDF: ``%%EOF`` within the last 1 KiB, or an incremental-update section after the last one.

Extra bytes after a complete file are allowed where real files have them: after a JPEG's EOI
(motion photos, MPO), after PNG's IEND and GIF's trailer, zero padding after the last MP4 box.
Failures raise :class:`~mediastore.errors.CorruptMediaError` with a reason a person can act
on, :class:`~mediastore.errors.UnsupportedMediaError` for audio-only videos, and
:class:`~mediastore.errors.ImageTooLargeError` for frames above the pixel cap.

``deep=True`` also walks container internals (MP4 boxes inside ``moov`` and fragments, sample
chunk offsets inside the file, WebM master elements), for ``verify --deep``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO, Protocol

from .detect import GIF, JPEG, MOV, MP4, PDF, PNG, WEBM, WEBP, MediaKind
from .images import parse_gif, parse_jpeg, parse_png, parse_webp
from .mp4 import parse_isobmff
from .pdf import PdfCheck
from .stream import ImageLayout, MediaMetadata, Parser, StreamCheck
from .webm import parse_webm

__all__ = [
    "Checker",
    "ImageLayout",
    "MediaMetadata",
    "PdfCheck",
    "StreamCheck",
    "check_file",
    "checker_for",
]

_PARSERS: dict[MediaKind, Callable[[StreamCheck], Parser]] = {
    JPEG: parse_jpeg, PNG: parse_png, GIF: parse_gif, WEBP: parse_webp,
    MP4: parse_isobmff, MOV: parse_isobmff, WEBM: parse_webm,
}  # fmt: skip


class Checker(Protocol):
    """A completeness check: fed every chunk of a stream, then asked for its verdict.

    After :meth:`finish` passed, ``metadata`` holds what the file said about its content
    (:class:`MediaMetadata`), read in the same pass; None for a kind that records none.
    """

    layout: ImageLayout | None
    metadata: MediaMetadata | None

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        """Consume the next chunk."""

    def finish(self) -> ImageLayout | None:
        """Verdict on the stream that ended; the image layout, if any."""


def checker_for(kind: MediaKind, *, max_pixels: int, deep: bool = False) -> Checker:
    """A fresh completeness check for a stream of ``kind``.

    Args:
        kind: The sniffed kind.
        max_pixels: Frames and canvases above this many pixels are refused.
        deep: Also walk container internals (slower; for ``verify --deep``).

    Returns:
        An object to :meth:`~StreamCheck.feed` every chunk, then :meth:`~StreamCheck.finish`.
    """
    if kind == PDF:
        return PdfCheck()
    return StreamCheck(kind, _PARSERS[kind], max_pixels=max_pixels, deep=deep)


def check_file(
    fileobj: BinaryIO,
    kind: MediaKind,
    *,
    max_pixels: int,
    deep: bool = False,
    chunk_size: int = 1 << 20,
) -> ImageLayout | None:
    """Run the completeness check over an open binary file, from its current position.

    Returns:
        The image layout (None for other kinds).

    Raises:
        CorruptMediaError / UnsupportedMediaError / ImageTooLargeError: as
            :meth:`StreamCheck.finish`.
    """
    check = checker_for(kind, max_pixels=max_pixels, deep=deep)
    while chunk := fileobj.read(chunk_size):
        check.feed(chunk)
    return check.finish()
