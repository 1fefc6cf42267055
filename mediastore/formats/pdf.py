"""Completeness check of PDF files, and their metadata (pages, version, encryption).

The metadata is read as the file streams by, with bounded memory (:class:`_PdfScan`): each
object's dictionary (the text after ``N G obj`` up to ``stream`` or ``endobj``, at most
64 KiB) and each trailer are looked at as they pass and only a few facts are kept, the last
definition of an object number winning (incremental updates redefine objects later in the
file):

- the ``/Root`` of the last trailer or cross-reference stream dictionary that has one, and
  whether any names an ``/Encrypt`` dictionary;
- each catalog (``/Type /Catalog``): its ``/Pages`` reference and ``/Version``;
- each page tree root (``/Type /Pages`` without ``/Parent``): its ``/Count``.

Objects inside object streams (``/Type /ObjStm``, FlateDecode) are read by inflating the
stream as it passes, up to 256 KiB of output. At the end the last trailer's catalog names
the page tree root whose ``/Count`` is the page count. An encrypted PDF keeps its page count:
encryption covers strings and streams, not the dictionaries' numbers (its object streams are
encrypted, so objects inside them are not read).
"""

from __future__ import annotations

import re
import zlib
from typing import Protocol, TypeVar

from ..errors import CorruptMediaError
from .stream import (
    ImageLayout,
    MediaMetadata,
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
        self.metadata: MediaMetadata | None = None
        self.pos = 0
        self._scan: _PdfScan | None = _PdfScan()
        self._tail = b""
        self._last_eof = -1
        self._update_after_eof = False

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        """Consume the next chunk (only its last 1 KiB is kept)."""
        data = bytes(chunk)
        if self._scan is not None:
            try:
                self._scan.feed(data)
            except (ValueError, IndexError, OverflowError):  # garbage: no metadata
                self._scan = None
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
            self.metadata = None if self._scan is None else self._scan.metadata()
            return None
        raise CorruptMediaError(truncated("PDF", "without its %%EOF end marker"))


_T = TypeVar("_T")
_WS = rb"[\x00\t\n\f\r ]"
_OBJ_HEAD = re.compile(rb"(?<!\d)(\d{1,10})" + _WS + rb"+\d{1,5}" + _WS + rb"+$")
_HEADER = re.compile(rb"%PDF-(\d\.\d)")
_ROOT = re.compile(rb"/Root" + _WS + rb"*(\d+)" + _WS + rb"+\d+" + _WS + rb"+R")
_PAGES_REF = re.compile(rb"/Pages" + _WS + rb"*(\d+)" + _WS + rb"+\d+" + _WS + rb"+R")
_VERSION = re.compile(rb"/Version" + _WS + rb"*/(\d\.\d)")
_COUNT = re.compile(rb"/Count" + _WS + rb"*(\d+)")
_N = re.compile(rb"/N" + _WS + rb"*(\d+)")
_FIRST = re.compile(rb"/First" + _WS + rb"*(\d+)")
_CATALOG = re.compile(rb"/Type" + _WS + rb"*/Catalog(?![\w.#-])")
_PAGES = re.compile(rb"/Type" + _WS + rb"*/Pages(?![\w.#-])")
_XREF = re.compile(rb"/Type" + _WS + rb"*/XRef(?![\w.#-])")
_OBJSTM = re.compile(rb"/Type" + _WS + rb"*/ObjStm(?![\w.#-])")
_CAPTURE_MAX = 1 << 16  # dictionary text kept per object
_INFLATE_MAX = 1 << 18  # output kept per object stream
_MAX_NODES = 256  # catalogs and page tree roots remembered
_LOOK_BEHIND = 40  # bytes kept from the previous chunk, for a header split between chunks


class _Inflater(Protocol):
    """What the scan uses of a ``zlib.decompressobj()``."""

    @property
    def eof(self) -> bool: ...
    @property
    def unconsumed_tail(self) -> bytes: ...
    @property
    def unused_data(self) -> bytes: ...
    def decompress(self, data: bytes, /, max_length: int = 0) -> bytes: ...


class _PdfScan:
    """Bounded streaming reader of a PDF's catalog, page tree root and trailers."""

    def __init__(self) -> None:
        self.header: str | None = None
        self.root: int | None = None
        self.encrypted = False
        self.catalogs: dict[int, tuple[int | None, str | None]] = {}
        self.page_roots: dict[int, int] = {}
        self._carry = b""
        self._first = True
        self._capture: bytearray | None = None  # the dictionary text being read
        self._objnum = -1  # its object number (-1: a trailer)
        self._inflate: _Inflater | None = None  # an object stream being inflated
        self._inflated = bytearray()
        self._objstm = (0, 0)  # its /N and /First
        self._eol_pending = False  # the end of line before the stream data is still to pass

    def feed(self, data: bytes) -> None:
        """Consume the next chunk."""
        window = self._carry + data
        if self._first:
            found = _HEADER.search(window, 0, 1024)
            self.header = found.group(1).decode() if found else None
            self._first = False
        at = len(self._carry)
        while at < len(window):
            if self._inflate is not None:
                at = self._inflate_from(window, at)
            elif self._capture is not None:
                at = self._capture_from(window, at)
            else:
                at = self._scan_from(window, at)
        self._carry = window[-_LOOK_BEHIND:]

    def _scan_from(self, window: bytes, at: int) -> int:
        """Find the next object header or trailer; start reading its dictionary."""
        # a word may start in the bytes kept from the previous chunk, and end in this one
        obj = window.find(b"obj", max(0, at - 2))
        while obj >= 0:
            head = _OBJ_HEAD.search(window, max(0, obj - 24), obj)
            if head is not None and window[obj - 3 : obj] != b"end":
                break
            obj = window.find(b"obj", obj + 3)
        # a trailer before that header (searched only that far: no rescan of the window)
        trailer = window.find(b"trailer", max(0, at - 6), len(window) if obj < 0 else obj)
        if trailer >= 0:
            self._start(-1)
            return trailer + 7
        if obj >= 0:
            self._start(int(head.group(1)))  # type: ignore[union-attr]
            return obj + 3
        return len(window)

    def _start(self, objnum: int) -> None:
        self._capture = bytearray()
        self._objnum = objnum

    def _capture_from(self, window: bytes, at: int) -> int:
        """Read the dictionary text up to ``stream``, ``endobj`` (``startxref`` for a
        trailer) or the cap; then look at it. Only the text is copied, not the window."""
        capture = self._capture
        assert capture is not None
        before = len(capture)
        lo = max(0, at - 8) if before else at  # a word split between two chunks
        limit = min(len(window), at + _CAPTURE_MAX - before)
        words = (b"startxref",) if self._objnum < 0 else (b"stream", b"endobj")
        end, word = -1, b""
        for w in words:  # each search stops at the nearest hit so far (stream data is long)
            found = window.find(w, lo, (limit if end < 0 else end) + len(w))
            if found >= 0 and (end < 0 or found < end):
                end, word = found, w
        if end >= 0:
            text = bytes(capture[: before - (at - end)]) if end < at else capture + window[at:end]
            self._capture = None
            self._look(bytes(text), self._objnum, stream=word == b"stream")
            return end + len(word)
        capture += window[at:limit]
        if len(capture) >= _CAPTURE_MAX:
            self._capture = None
            self._look(bytes(capture), self._objnum, stream=False)
        return limit

    def _look(self, text: bytes, objnum: int, *, stream: bool) -> None:
        """Keep what a dictionary says about the trailer, catalog or page tree root."""
        if objnum < 0 or _XREF.search(text):
            root = _ROOT.search(text)
            if root is not None:
                self.root = int(root.group(1))
            self.encrypted = self.encrypted or b"/Encrypt" in text
        elif b"/Type" not in text:
            return
        elif _CATALOG.search(text):
            pages, version = _PAGES_REF.search(text), _VERSION.search(text)
            entry = (int(pages.group(1)) if pages else None, version and version.group(1).decode())
            _remember(self.catalogs, objnum, entry)
        elif _PAGES.search(text):
            count = _COUNT.search(text)
            if b"/Parent" not in text and count is not None:
                _remember(self.page_roots, objnum, int(count.group(1)))
        elif stream and _OBJSTM.search(text) and b"/FlateDecode" in text:
            n, first = _N.search(text), _FIRST.search(text)
            if n is not None and first is not None and b"/DecodeParms" not in text:
                self._objstm = (int(n.group(1)), int(first.group(1)))
                self._inflate, self._inflated = zlib.decompressobj(), bytearray()
                self._eol_pending = True

    def _inflate_from(self, window: bytes, at: int) -> int:
        """Inflate an object stream's data (at most _INFLATE_MAX bytes of output)."""
        if self._eol_pending:  # the end of line after the keyword: CR LF or LF
            self._eol_pending = False
            at += window.startswith(b"\r", at)
            at += window.startswith(b"\n", at)
        inflate = self._inflate
        assert inflate is not None
        data = window[at:]
        try:
            out = inflate.decompress(data, _INFLATE_MAX - len(self._inflated))
        except zlib.error:  # encrypted, or not what its filter says: not read
            self._inflate = None
            return at
        self._inflated += out
        used = len(data) - len(inflate.unconsumed_tail) - len(inflate.unused_data)
        if inflate.eof or len(self._inflated) >= _INFLATE_MAX:
            self._inflate = None
            self._read_objstm(bytes(self._inflated))
            self._inflated = bytearray()
        return at + used

    def _read_objstm(self, data: bytes) -> None:
        """Look at the objects of an inflated object stream (those its output held whole)."""
        n, first = self._objstm
        numbers = data[:first].split()[: 2 * n]
        pairs = [(int(numbers[i]), int(numbers[i + 1])) for i in range(0, len(numbers) - 1, 2)]
        for k, (objnum, offset) in enumerate(pairs):
            end = first + pairs[k + 1][1] if k + 1 < len(pairs) else len(data)
            if first + offset < end <= len(data):
                self._look(data[first + offset : end], objnum, stream=False)

    def metadata(self) -> MediaMetadata:
        """The pages, version and encryption the scan found (None where it did not)."""
        catalog = self.catalogs.get(self.root) if self.root is not None else None
        pages = None
        if catalog is not None and catalog[0] is not None:
            pages = self.page_roots.get(catalog[0])
        version = self.header
        if catalog is not None and catalog[1] is not None:
            later = version is None or _version_key(catalog[1]) > _version_key(version)
            version = catalog[1] if later else version
        return MediaMetadata(pages=pages, pdf_version=version, encrypted=self.encrypted)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _remember(found: dict[int, _T], objnum: int, value: _T) -> None:
    """Keep ``value`` for ``objnum`` (a later definition wins), up to _MAX_NODES numbers."""
    if objnum in found or len(found) < _MAX_NODES:
        found[objnum] = value
