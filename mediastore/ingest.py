"""The one ingest path: stream -> type and structure check, hash, temp file -> checks. Files,
bytes, downloads, legacy imports and repairs all come through :func:`stage`; the store then
moves the staged file into place and commits its row (:mod:`mediastore.lifecycle`).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .blobs.base import BlobStore, TempBlob
from .config import DEFAULT_CHUNK_SIZE
from .errors import FileTooLargeError
from .formats.detect import HEAD_SIZE, MediaKind, kind_for_hint, sniff
from .formats.probe import decode_image, image_size
from .formats.structure import Checker, ImageLayout, checker_for
from .hashing import Digests
from .records import MediaMetadata
from .types import ByteProgress

log = logging.getLogger(__name__)

Chunks = Iterable[bytes | memoryview]


@dataclass(frozen=True, slots=True, kw_only=True)
class Staged:
    """A complete temp file, hashed, typed and checked, not yet in place."""

    temp: TempBlob
    kind: MediaKind
    md5: str
    sha256: str
    size: int
    width: int | None
    height: int | None
    #: what the structure walk read of the content in the same pass (None: nothing)
    metadata: MediaMetadata | None = None


#: Chunks a file reader may have in flight: the pipeline consumes a chunk at most this many
#: chunks after it was handed over, so a reader can reuse a ring of RING_SIZE + 1 buffers.
RING_SIZE = 3
#: Below this many bytes hashing and writing run inline; above, each on its own thread.
PIPELINE_THRESHOLD = 8 << 20
#: Written data is pushed to disk in windows of this size, so the final fsync has little left.
WRITEBACK_WINDOW = 8 << 20
#: Largest read of a file too big to read whole. Hashing, writing and the next read then
#: share about a megabyte in flight, which stays in the CPU's cache: reads of 1 MiB made a
#: 1 GiB add_file 10-15% slower (3 sets of interleaved runs, AMD EPYC, e.g. 414 -> 463 MB/s
#: median of 6), and 128 KiB or less was slower again (more hand-offs per byte).
FILE_READ_SIZE = 256 << 10


def read_chunks(fh: BinaryIO, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[memoryview]:
    """Chunks of an open binary file, read into a small ring of reused buffers.

    Reusing buffers avoids a fresh large allocation per read (served by mmap on our VMs, and
    several times slower). A chunk stays valid until RING_SIZE more chunks have been taken,
    which is all :func:`stage` needs.
    """
    ring = [bytearray(chunk_size) for _ in range(RING_SIZE + 1)]
    views = [memoryview(b) for b in ring]
    i = 0
    while n := fh.readinto(ring[i]):  # type: ignore[attr-defined]
        yield views[i][:n]
        i = (i + 1) % len(ring)


def bytes_chunks(data: bytes | bytearray | memoryview, chunk_size: int) -> Iterator[memoryview]:
    """``data`` as slices of at most ``chunk_size`` bytes (no copies)."""
    view = memoryview(data)
    for start in range(0, len(view), chunk_size):
        yield view[start : start + chunk_size]


class _Worker:
    """A thread applying one function to every chunk, at most RING_SIZE chunks behind."""

    def __init__(self, fn: Callable[[bytes | memoryview], object], name: str) -> None:
        self._fn = fn
        self._queue: queue.SimpleQueue[bytes | memoryview | None] = queue.SimpleQueue()
        self._slots = threading.Semaphore(RING_SIZE)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"mediastore-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self.error is None:
                try:
                    self._fn(chunk)
                except BaseException as exc:  # re-raised in the feeding thread
                    self.error = exc
            self._slots.release()

    def put(self, chunk: bytes | memoryview) -> None:
        self._slots.acquire()
        self._queue.put(chunk)

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join()


class _Sink:
    """MD5, SHA-256 and the temp-file write of one stream, overlapped once it is large.

    hashlib and os.write release the GIL, so on separate threads the three run in parallel;
    MD5, the slowest, then sets the pace instead of the sum of all three.
    """

    def __init__(self, temp: TempBlob) -> None:
        self.digests = Digests()
        self._temp = temp
        self._workers: list[_Worker] = []
        self._flushed = 0

    def feed(self, chunk: bytes | memoryview) -> None:
        if not self._workers and self.digests.size >= PIPELINE_THRESHOLD:
            self._workers = [
                _Worker(self.digests.md5_update, "md5"),
                _Worker(self.digests.sha256_update, "sha256"),
                _Worker(self._write, "write"),
            ]
        self.digests.size += len(chunk)
        if not self._workers:
            self.digests.md5_update(chunk)
            self.digests.sha256_update(chunk)
            self._write(chunk)
            return
        for worker in self._workers:
            if worker.error is not None:
                raise worker.error
            worker.put(chunk)

    def _write(self, chunk: bytes | memoryview) -> None:
        self._temp.write(chunk)
        if self._temp.written - self._flushed >= 2 * WRITEBACK_WINDOW:
            # start writeback of the older window now, in the background
            self._temp.start_writeback(self._flushed, WRITEBACK_WINDOW)
            self._flushed += WRITEBACK_WINDOW

    def close(self) -> None:
        """Wait for the workers; raise the first error any of them hit."""
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.stop()
        for worker in workers:
            if worker.error is not None:
                raise worker.error


class _Typer:
    """Sniffs a stream from its first HEAD_SIZE bytes, then feeds its completeness check.

    Bytes that arrive before the type is known are kept in the head and fed to the check
    once the type is; afterwards each chunk goes straight to the check, in the same pass.
    """

    def __init__(self, max_pixels: int, *, deep: bool = False) -> None:
        self._max_pixels = max_pixels
        self._deep = deep
        self._head = bytearray()
        self.kind: MediaKind | None = None
        self._check: Checker | None = None

    def feed(self, chunk: bytes | memoryview) -> None:
        if self._check is not None:
            self._check.feed(chunk)
            return
        taken = HEAD_SIZE - len(self._head)
        self._head += chunk[:taken]
        if len(self._head) >= HEAD_SIZE:
            self._start()
            assert self._check is not None
            if len(chunk) > taken:
                self._check.feed(memoryview(chunk)[taken:])  # a view: no copy of the rest

    def _start(self) -> None:
        self.kind = sniff(bytes(self._head))
        self._check = checker_for(self.kind, max_pixels=self._max_pixels, deep=self._deep)
        self._check.feed(self._head)
        self._head = bytearray()

    def finish(self) -> tuple[MediaKind, ImageLayout | None, MediaMetadata | None]:
        """The kind, an image's layout and what the file says about its content; raises if
        the stream was not a complete file."""
        if self._check is None:
            self._start()
        assert self.kind is not None and self._check is not None
        layout = self._check.finish()
        return self.kind, layout, self._check.metadata


def stage(
    chunks: Chunks,
    blobs: BlobStore,
    *,
    max_size: int,
    max_pixels: int,
    mime_hint: str | None = None,
    progress: ByteProgress | None = None,
    deep: bool = False,
) -> Staged:
    """Stream ``chunks`` into a temp file, hashing as they pass, and check what arrived.

    ``deep`` (the store's ``verify_deep``) holds new content to what ``verify --deep``
    checks: containers are walked box by box in the same pass, and an image has every frame
    decoded by Pillow (from memory when it came whole, else read back from the temp file,
    which is still in the page cache), so nothing that would fail ``verify --deep`` is stored.

    The type is sniffed as soon as the first ``HEAD_SIZE`` bytes are in, so a large body that
    is not media (an HTML error page, a ZIP) is refused before it is read to the end. Each
    chunk then passes the format's completeness check (:mod:`mediastore.formats.structure`) as it
    streams, so truncated or broken files are refused without a second read.

    Raises:
        UnsupportedMediaError: empty, unsupported (an audio-only "video" too), or larger than
            ``max_size``.
        ImageTooLargeError: an image or any of its frames over ``max_pixels``.
        CorruptMediaError: incomplete or malformed structure, or an image Pillow cannot parse.
        StorageError: the temp file could not be written.
        Anything ``chunks`` raises (a download error) passes through.
        In every case the temp file is removed.
    """
    temp = blobs.create_temp()
    sink = _Sink(temp)
    digests = sink.digests
    try:
        typer = _Typer(max_pixels, deep=deep)
        whole: bytes | None = None  # the content, when it arrived as one immutable chunk
        try:
            for count, chunk in enumerate(chunks):
                whole = chunk if count == 0 and isinstance(chunk, bytes) else None
                if digests.size + len(chunk) > max_size:
                    raise FileTooLargeError(
                        f"content exceeds the maximum file size of {max_size} bytes"
                    )
                typer.feed(chunk)
                sink.feed(chunk)
                if progress is not None:
                    progress(digests.size)
        finally:
            sink.close()
        kind, layout, metadata = typer.finish()
        _log_hint_mismatch(kind, mime_hint)
        width = height = None
        if kind.media_type == "video" and metadata is not None:
            width, height = _pixels(metadata.width), _pixels(metadata.height)  # coded size
        elif kind.media_type == "image":
            # a small image that came in one chunk is probed from memory, not read back
            source = temp.path if whole is None else whole
            width, height = image_size(source, kind, max_pixels=max_pixels, layout=layout)
            if deep:
                decode_image(source, kind, layout)
        temp.sha256 = digests.sha256  # an object store sends it with the upload
        return Staged(
            temp=temp,
            kind=kind,
            md5=digests.md5,
            sha256=digests.sha256,
            size=digests.size,
            width=width,
            height=height,
            metadata=metadata,
        )
    except BaseException:
        blobs.discard(temp)
        raise


def _pixels(value: int | None) -> int | None:
    """A video's declared side, None unless it fits the catalog's column (any file may
    declare any number)."""
    return value if value is not None and 0 < value < 1 << 31 else None


def _log_hint_mismatch(kind: MediaKind, mime_hint: str | None) -> None:
    hinted = kind_for_hint(mime_type=mime_hint)
    if mime_hint and hinted != kind:
        log.debug("content is %s although %s was announced", kind.mime_type, mime_hint)


def file_chunks(path: Path, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes | memoryview]:
    """Chunks of the file at ``path`` (opened here, closed when the iterator ends)."""
    with open(path, "rb", buffering=0) as fh:
        yield from open_file_chunks(fh, chunk_size=chunk_size)


def open_file_chunks(
    fh: BinaryIO, size: int | None = None, *, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> Iterator[bytes | memoryview]:
    """Chunks of an open file of ``size`` bytes (default: its fstat), whole if it fits in one.

    A small file read whole costs one read and arrives as ``bytes``, which lets an image
    be probed from memory; allocating the reader's ring of buffers, and reading the image
    header back from the temp file, would cost more than the rest of its ingest. A larger
    file is read in pieces of at most FILE_READ_SIZE.
    """
    if (os.fstat(fh.fileno()).st_size if size is None else size) <= chunk_size:
        yield fh.read()
    else:
        yield from read_chunks(fh, min(chunk_size, FILE_READ_SIZE))
