"""The one ingest path: stream -> hash -> temp file -> checks. Files, bytes, downloads, legacy
imports and repairs all come through :func:`stage`; the store then moves the staged file into
place and commits its row (:meth:`MediaStore._commit`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .blobs import LocalBlobStore, LocalTemp
from .errors import FileTooLargeError
from .hashing import READ_CHUNK, Digests
from .probe import image_size
from .sniff import HEAD_SIZE, MediaKind, kind_for_hint, sniff

log = logging.getLogger(__name__)

Chunks = Iterable[bytes | memoryview]
#: Called with the number of bytes consumed so far.
ByteProgress = Callable[[int], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Staged:
    """A complete temp file, hashed, typed and checked, not yet in place."""

    temp: LocalTemp
    kind: MediaKind
    md5: str
    sha256: str
    size: int
    width: int | None
    height: int | None


def read_chunks(fh: BinaryIO, chunk_size: int = READ_CHUNK) -> Iterator[memoryview]:
    """Chunks of an open binary file, read into one reused buffer.

    Each chunk is only valid until the next one is requested (ingest consumes it at once).
    """
    buf = bytearray(chunk_size)
    view = memoryview(buf)
    while n := fh.readinto(buf):  # type: ignore[attr-defined]
        yield view[:n]


def bytes_chunks(data: bytes | bytearray | memoryview, chunk_size: int) -> Iterator[memoryview]:
    """``data`` as slices of at most ``chunk_size`` bytes (no copies)."""
    view = memoryview(data)
    for start in range(0, len(view), chunk_size):
        yield view[start : start + chunk_size]


def stage(
    chunks: Chunks,
    blobs: LocalBlobStore,
    *,
    max_size: int,
    max_pixels: int,
    mime_hint: str | None = None,
    progress: ByteProgress | None = None,
) -> Staged:
    """Stream ``chunks`` into a temp file, hashing as they pass, and check what arrived.

    The type is sniffed as soon as the first ``HEAD_SIZE`` bytes are in, so a large body that
    is not media (an HTML error page, a ZIP) is refused before it is read to the end.

    Raises:
        UnsupportedMediaError: empty, unsupported, or larger than ``max_size``.
        ImageTooLargeError / CorruptMediaError: an image that fails the Pillow checks.
        StorageError: the temp file could not be written.
        Anything ``chunks`` raises (a download error) passes through.
        In every case the temp file is removed.
    """
    temp = blobs.create_temp()
    try:
        digests = Digests()
        head = bytearray()
        kind: MediaKind | None = None
        for chunk in chunks:
            if digests.size + len(chunk) > max_size:
                raise FileTooLargeError(
                    f"content exceeds the maximum file size of {max_size} bytes"
                )
            if kind is None:
                head += chunk[: HEAD_SIZE - len(head)]
                if len(head) >= HEAD_SIZE:
                    kind = sniff(bytes(head))
            digests.update(chunk)
            temp.write(chunk)
            if progress is not None:
                progress(digests.size)
        if kind is None:
            kind = sniff(bytes(head))
        _log_hint_mismatch(kind, mime_hint)
        width = height = None
        if kind.media_type == "image":
            width, height = image_size(temp.path, kind, max_pixels=max_pixels)
        return Staged(
            temp=temp, kind=kind, md5=digests.md5, sha256=digests.sha256,
            size=digests.size, width=width, height=height,
        )  # fmt: skip
    except BaseException:
        blobs.discard(temp)
        raise


def _log_hint_mismatch(kind: MediaKind, mime_hint: str | None) -> None:
    hinted = kind_for_hint(mime_type=mime_hint)
    if mime_hint and hinted != kind:
        log.debug("content is %s although %s was announced", kind.mime_type, mime_hint)


def file_chunks(path: Path) -> Iterator[memoryview]:
    """Chunks of the file at ``path`` (opened here, closed when the iterator ends)."""
    with open(path, "rb", buffering=0) as fh:
        yield from read_chunks(fh)
