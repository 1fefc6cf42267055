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

import re
import struct
import zlib
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from ..errors import CorruptMediaError, ImageTooLargeError, UnsupportedMediaError
from .detect import GIF, JPEG, MOV, MP4, PDF, PNG, WEBM, WEBP, MediaKind

__all__ = ["Checker", "ImageLayout", "PdfCheck", "StreamCheck", "check_file", "checker_for"]

# Requests a parser yields to the driver (the first item of each request tuple).
_NEED = 0  # (op, n, msg): the next n bytes, sent back as bytes
_NEED_OR_EOF = 1  # like _NEED, but b"" is sent back when the stream ends exactly here
_SKIP = 2  # (op, n, msg): pass over n bytes
_CRC = 3  # (op, n, msg, crc): pass over n bytes, send back their running CRC-32
_SCAN = 4  # (op, 0, msg, wanted, lazy): JPEG: the next marker; see StreamCheck._scan
_SUBBLOCKS = 5  # (op, 0, msg): GIF: pass over data sub-blocks up to the terminator
_TO_END = 6  # (op,): every byte to the end belongs to the last box; None is sent at the end
_REST = 7  # (op, policy): the file is complete; None is sent at the end

_ANY, _ZEROS, _NOTHING = "any", "zeros", "nothing"  # what may follow a complete file

Request = tuple[Any, ...]
Parser = Generator[Request, Any, None]

# A JPEG marker in entropy-coded data: 0xFF then neither stuffing, a restart marker nor fill.
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


@dataclass(frozen=True, slots=True)
class ImageLayout:
    """An image's dimensions as its structure declares them.

    Attributes:
        width: Width Pillow reports (a GIF's screen, grown to its first frame).
        height: Height Pillow reports.
        canvas_pixels: The largest canvas any frame needs (what decoding allocates).
        frames: Frames counted (1 for a still image).
    """

    width: int
    height: int
    canvas_pixels: int
    frames: int = 1


def _truncated(name: str, where: str) -> str:
    return f"{name} ends {where}: truncated?"


class StreamCheck:
    """Drives one format parser over a stream of chunks, with bounded state.

    Attributes:
        kind: The media kind being checked.
        pos: Bytes of the stream consumed so far.
        layout: Dimensions of an image, once its header has been read (else None).
    """

    def __init__(
        self, kind: MediaKind, parser: Callable[[StreamCheck], Parser], *, max_pixels: int,
        deep: bool = False,
    ) -> None:  # fmt: skip
        self.kind = kind
        self.name = _NAMES[kind.extension]
        self.max_pixels = max_pixels
        self.deep = deep
        self.pos = 0
        self.layout: ImageLayout | None = None
        self._buf = bytearray()
        self._left = 0  # bytes still to pass for _SKIP / _CRC / _SUBBLOCKS
        self._crc = 0
        self._pending_ff = False  # _SCAN: the last byte seen was a 0xFF
        self._marker = -1  # _SCAN: the marker whose length or body is being passed, or -1
        self._length = b""  # _SCAN: the length bytes of that marker read so far
        self._stash: memoryview | None = None  # _SCAN: scan data not looked at yet
        self._gen = parser(self)
        self._req: Request | None = next(self._gen)
        self._prepare()

    # --- parser helpers ------------------------------------------------------------------------
    def need(self, n: int, msg: str) -> Generator[Request, Any, bytes]:
        """The next ``n`` bytes (``msg`` says what a stream ending here was inside)."""
        if not n:
            return b""
        data: bytes = yield (_NEED, n, msg)
        return data

    def skip(self, n: int, msg: str) -> Generator[Request, Any, None]:
        """Pass over ``n`` bytes."""
        if n:
            yield (_SKIP, n, msg)

    def corrupt(self, reason: str) -> CorruptMediaError:
        """A CorruptMediaError naming the format."""
        return CorruptMediaError(f"{self.name} {reason}")

    def set_image(self, width: int, height: int, *, canvas: int | None = None) -> None:
        """Record an image's size; refuse it when it exceeds the pixel cap.

        Raises:
            ImageTooLargeError: the canvas has more pixels than ``max_pixels``.
        """
        pixels = canvas if canvas is not None else width * height
        self.check_pixels(width, height, pixels)
        self.layout = ImageLayout(width, height, pixels)

    def check_pixels(self, width: int, height: int, pixels: int | None = None) -> None:
        """Refuse a frame or canvas above the pixel cap.

        Raises:
            ImageTooLargeError: more pixels than ``max_pixels``.
        """
        pixels = width * height if pixels is None else pixels
        if pixels > self.max_pixels:
            raise ImageTooLargeError(
                f"image of {width}x{height} = {pixels} pixels exceeds the cap of "
                f"{self.max_pixels} (decompression bomb guard)"
            )

    # --- driver --------------------------------------------------------------------------------
    def _prepare(self) -> None:
        req = self._req
        if req is not None and req[0] in (_SKIP, _CRC, _SUBBLOCKS):
            self._left = req[1]
            self._crc = req[3] if req[0] == _CRC else 0

    def _send(self, value: object) -> None:
        try:
            self._req = self._gen.send(value)
        except StopIteration:
            self._req = None
        self._prepare()

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        """Consume the next chunk of the stream.

        The chunk must stay unchanged until the next :meth:`feed` or :meth:`finish` (a
        reader's ring of RING_SIZE + 1 buffers guarantees it): JPEG scan data is looked at
        one call late, so that a file whose last chunk ends in its EOI marker need not be
        scanned at all (see :meth:`_scan`).

        Raises:
            CorruptMediaError, UnsupportedMediaError, ImageTooLargeError: as soon as the
                structure read so far is wrong.
        """
        if self._stash is not None:
            stashed, self._stash = self._stash, None
            self._feed_view(stashed, 0, lazy=False)
        self._feed_view(memoryview(chunk), 0, lazy=True)

    def _feed_view(self, view: memoryview, i: int, *, lazy: bool) -> None:
        n = len(view)
        while i < n:
            req = self._req
            if req is None:  # the parser finished early: nothing more is looked at
                self.pos += n - i
                return
            op = req[0]
            if op in (_NEED, _NEED_OR_EOF):
                take = min(req[1] - len(self._buf), n - i)
                self._buf += view[i : i + take]
                i += take
                if len(self._buf) == req[1]:
                    data = bytes(self._buf)
                    self._buf.clear()
                    self.pos += req[1]
                    self._send(data)
            elif op in (_SKIP, _CRC):
                take = min(self._left, n - i)
                if op == _CRC:
                    self._crc = zlib.crc32(view[i : i + take], self._crc)
                i += take
                self._left -= take
                self.pos += take
                if not self._left:
                    self._send(self._crc if op == _CRC else None)
            elif op == _SCAN:
                if lazy and req[4] and self._marker < 0 and not self._pending_ff:
                    self._stash = view[i:]
                    return
                i = self._scan(view, i)
            elif op == _SUBBLOCKS:
                i = self._subblocks(view, i)
            elif op == _TO_END:
                self.pos += n - i
                return
            else:  # _REST
                self._rest(view[i:], req[1])
                self.pos += n - i
                return

    def _scan(self, view: memoryview, i: int) -> int:
        """JPEG: find the next marker; pass over segments the parser did not ask for.

        Sends ``(code, 0)`` for a marker without a length (EOI, SOI, TEM, reserved codes),
        ``(code, length)`` for one in the request's ``wanted`` set or with a bad length (its
        body then still to read), and passes over every other segment itself: one round trip
        per segment the parser cares about, not three per segment.
        """
        if self._marker >= 0:
            return self._segment(view, i)
        if self._pending_ff:
            code = view[i]
            self.pos += 1
            if code == 0xFF:
                return i + 1
            self._pending_ff = False
            if code and not 0xD0 <= code <= 0xD7:
                self._marker_found(code)
            return i + 1
        found = _JPEG_MARKER.search(view, i)
        if found is None:
            end = len(view)
            self._pending_ff = view[end - 1] == 0xFF
            self.pos += end - i
            return end
        at = found.start()
        self.pos += at + 2 - i
        self._marker_found(view[at + 1])
        return at + 2

    def _marker_found(self, code: int) -> None:
        if code < 0xC0 or code in (0xD8, 0xD9):
            self._send((code, 0))
        else:
            self._marker, self._length = code, b""

    def _segment(self, view: memoryview, i: int) -> int:
        n = len(view)
        if len(self._length) < 2:
            take = min(2 - len(self._length), n - i)
            self._length += view[i : i + take].tobytes()
            self.pos += take
            i += take
            if len(self._length) < 2:
                return i
            length = self._length[0] << 8 | self._length[1]
            assert self._req is not None
            if length < 2 or self._marker in self._req[3]:
                code, self._marker = self._marker, -1
                self._send((code, length))
                return i
            self._left = length - 2
        take = min(self._left, n - i)
        self._left -= take
        self.pos += take
        if not self._left:
            self._marker = -1
        return i + take

    def _subblocks(self, view: memoryview, i: int) -> int:
        n = len(view)
        left = self._left
        start = i
        while i < n:
            if left:
                step = min(left, n - i)
                i += step
                left -= step
                continue
            size = view[i]
            i += 1
            if not size:
                self._left = 0
                self.pos += i - start
                self._send(None)
                return i
            left = size
        self._left = left
        self.pos += i - start
        return i

    def _rest(self, tail: memoryview, policy: str) -> None:
        if policy == _ZEROS and tail.tobytes().strip(b"\x00"):
            raise self.corrupt(f"has non-zero bytes after its last box (at byte {self.pos})")
        if policy == _NOTHING:
            raise self.corrupt(
                f"has {len(tail)}+ bytes after the end its header declares (byte {self.pos})"
            )

    def finish(self) -> ImageLayout | None:
        """Say whether the stream that ended was complete.

        Returns:
            The layout of an image (None for other kinds).

        Raises:
            CorruptMediaError: the file ends early, or misses a required part.
            UnsupportedMediaError: a video without a video track.
            ImageTooLargeError: a frame above the pixel cap.
        """
        if self._stash is not None:
            stashed, self._stash = self._stash, None
            if stashed[-2:].tobytes() == b"\xff\xd9":  # scan data holds no FF D9: an EOI
                self.pos += len(stashed)
                self._send((0xD9, 0))
            else:
                self._feed_view(stashed, 0, lazy=False)
        while self._req is not None:
            op = self._req[0]
            if op == _SCAN and self._marker >= 0:
                where = f"inside its {_jpeg_segment(self._marker)} segment"
                raise CorruptMediaError(_truncated(self.name, where))
            if op not in (_TO_END, _REST, _NEED_OR_EOF):
                raise CorruptMediaError(_truncated(self.name, self._req[2]))
            # the parser sees the end: b"" (or a short read) where it allowed it, else None
            data = bytes(self._buf)
            self._buf.clear()
            self._send(data if op == _NEED_OR_EOF else None)
        return self.layout


# --- JPEG --------------------------------------------------------------------------------------
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


_WANT_HEADER = frozenset(_SOF | {0xDA})  # before the frame header: SOF and SOS
_WANT_SCAN = frozenset({0xDA})  # afterwards: scans only


def _jpeg(c: StreamCheck) -> Parser:
    yield from c.need(2, "inside its SOI marker")
    sized = scanned = False
    header_end = "before any image data (header could not be parsed)"
    while True:
        msg = "before its EOI marker" if scanned else header_end
        # once in the scans, a stream whose end is an EOI needs no scan (StreamCheck.feed)
        marker, length = yield (_SCAN, 0, msg, _WANT_SCAN if sized else _WANT_HEADER, scanned)
        if marker == 0xD9:
            if not scanned:
                raise c.corrupt("could not be parsed: EOI marker before any image data")
            yield (_REST, _ANY)
            return
        if marker == 0x01:  # TEM: no length
            continue
        if marker == 0xD8 or marker < 0xC0:  # SOI again, or a reserved code: no JPEG marker
            raise c.corrupt(f"could not be parsed: marker 0xFF{marker:02X} at byte {c.pos - 2}")
        if length < 2:
            raise c.corrupt(
                f"could not be parsed: segment 0xFF{marker:02X} at byte {c.pos - 4} "
                f"declares length {length}"
            )
        where = f"inside its {_jpeg_segment(marker)} segment"
        if marker == 0xDA:
            if not sized:
                raise c.corrupt("could not be parsed: scan before its frame header (SOF)")
            scanned = True
            yield from c.skip(length - 2, where)
            continue
        body = yield from c.need(length - 2, where)  # the first SOF: the frame header
        if len(body) < 6:
            raise c.corrupt("could not be parsed: frame header (SOF) too short")
        height, width = struct.unpack(">HH", body[1:5])
        if not width or not height:
            raise c.corrupt(f"could not be parsed: frame header declares {width}x{height}")
        c.set_image(width, height)
        sized = True


def _jpeg_segment(marker: int) -> str:
    if marker in _SOF:
        return f"SOF{marker - 0xC0} (frame header)"
    if 0xE0 <= marker <= 0xEF:
        return f"APP{marker - 0xE0}"
    names = {0xC4: "DHT", 0xDB: "DQT", 0xDA: "SOS (scan header)", 0xDD: "DRI", 0xFE: "COM"}
    return names.get(marker, f"0xFF{marker:02X}")


# --- PNG ---------------------------------------------------------------------------------------
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_READ = {b"IHDR", b"acTL", b"fcTL", b"IEND"}  # chunks whose content is parsed
_PNG_DEPTHS = {0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}


@dataclass(slots=True)
class _Apng:
    """APNG control state (only when acTL came before the image data)."""

    frames: int = 0
    fctl: int = 0
    seq: int = 0
    data_pending: bool = False  # an fcTL whose frame data has not come yet


def _png(c: StreamCheck) -> Parser:
    yield from c.need(8, "inside its signature")
    apng: _Apng | None = None
    idat = False
    first = True
    while True:
        header = yield from c.need(8, "inside a chunk header, before IEND")
        length, ctype = struct.unpack(">I4s", header)
        name = ctype.decode("latin-1")
        if not ctype.isalpha() or length > 0x7FFFFFFF:
            raise c.corrupt(
                f"could not be parsed: no valid chunk at byte {c.pos - 8} "
                f"(type {ctype!r}, length {length})"
            )
        where = f"inside its {name} chunk"
        if first and ctype != b"IHDR" and ctype != b"CgBI":
            raise c.corrupt(f"could not be parsed: first chunk is {name}, not IHDR")
        if ctype in _PNG_READ:
            if length > 64:
                raise c.corrupt(f"could not be parsed: {name} chunk of {length} bytes")
            data = yield from c.need(length, where)
            crc = zlib.crc32(ctype + data)
        elif ctype == b"IDAT" and not idat and length >= 2:
            data = yield from c.need(2, where)
            _png_zlib_header(c, data)
            crc = yield (_CRC, length - 2, where, zlib.crc32(ctype + data))
        elif ctype == b"fdAT" and apng is not None and length >= 4:
            data = yield from c.need(4, where)
            crc = yield (_CRC, length - 4, where, zlib.crc32(ctype + data))
        elif length:
            data = b""
            crc = yield (_CRC, length, where, zlib.crc32(ctype))
        else:
            data, crc = b"", zlib.crc32(ctype)
        (stored,) = struct.unpack(">I", (yield from c.need(4, where)))
        if stored != crc:
            raise c.corrupt(f"{name} chunk at byte {c.pos - length - 12} fails its CRC check")
        if ctype == b"CgBI":
            continue
        if first:
            _png_ihdr(c, data)
            first = False
            continue
        if ctype == b"IDAT":
            if apng is not None and apng.fctl:
                apng.data_pending = False
            idat = True
        if ctype == b"IEND":
            break
        apng = _png_animation(c, ctype, data, apng, idat=idat)
    if not idat:
        raise c.corrupt("has no image data (IDAT)")
    if apng is not None:
        if apng.data_pending:
            raise CorruptMediaError("APNG frame control (fcTL) without frame data")
        if apng.fctl != apng.frames:
            raise CorruptMediaError(f"APNG declares {apng.frames} frames but has {apng.fctl}")
    yield (_REST, _ANY)


def _png_zlib_header(c: StreamCheck, data: bytes) -> None:
    """The image data must start a zlib stream: deflate, a valid window, the check bits."""
    cmf, flg = data[0], data[1]
    if cmf & 0x0F != 8 or cmf >> 4 > 7 or (cmf << 8 | flg) % 31 or flg & 0x20:
        raise c.corrupt("image data (IDAT) does not start a zlib stream: broken data stream")


def _png_ihdr(c: StreamCheck, data: bytes) -> None:
    if len(data) != 13:
        raise c.corrupt(f"could not be parsed: IHDR of {len(data)} bytes")
    width, height, depth, color, method, filt, interlace = struct.unpack(">IIBBBBB", data)
    if not 0 < width <= 0x7FFFFFFF or not 0 < height <= 0x7FFFFFFF:
        raise c.corrupt(f"could not be parsed: IHDR declares {width}x{height}")
    if depth not in _PNG_DEPTHS.get(color, ()) or method or filt or interlace > 1:
        raise c.corrupt(
            f"could not be parsed: IHDR has colour type {color}, bit depth {depth}, "
            f"compression {method}, filter {filt}, interlace {interlace}"
        )
    c.set_image(width, height)


def _png_animation(
    c: StreamCheck, ctype: bytes, data: bytes, apng: _Apng | None, *, idat: bool
) -> _Apng | None:
    """Track APNG frame control; return the (new) APNG state."""
    if ctype == b"acTL":
        if apng is not None:
            raise CorruptMediaError("APNG has more than one acTL chunk")
        if idat:  # after the image data: a static PNG to every decoder
            return None
        frames, _plays = struct.unpack(">II", data) if len(data) == 8 else (0, 0)
        if not frames:
            raise CorruptMediaError("APNG declares 0 frames")
        return _Apng(frames=frames)
    if apng is None or ctype not in (b"fcTL", b"fdAT"):
        return apng
    if len(data) < 4:
        raise CorruptMediaError(f"APNG {ctype.decode()} chunk too short for its sequence number")
    (seq,) = struct.unpack(">I", data[:4])
    if seq != apng.seq:
        raise CorruptMediaError(f"APNG chunk sequence number {seq} where {apng.seq} was expected")
    apng.seq += 1
    if ctype == b"fdAT":
        if not apng.fctl or not idat:
            raise CorruptMediaError("APNG frame data (fdAT) before its frame control (fcTL)")
        apng.data_pending = False
        return apng
    _png_fctl(c, data, apng, idat=idat)
    return apng


def _png_fctl(c: StreamCheck, data: bytes, apng: _Apng, *, idat: bool) -> None:
    if len(data) != 26:
        raise CorruptMediaError(f"APNG fcTL chunk of {len(data)} bytes")
    _seq, width, height, x, y, _dn, _dd, dispose, blend = struct.unpack(">IIIIIHHBB", data)
    if apng.data_pending:
        raise CorruptMediaError("APNG frame control (fcTL) without frame data")
    layout = c.layout
    assert layout is not None  # set by IHDR
    if not width or not height or x + width > layout.width or y + height > layout.height:
        raise c.corrupt(
            f"APNG frame {apng.fctl} of {width}x{height} at ({x}, {y}) is outside the "
            f"{layout.width}x{layout.height} canvas"
        )
    if not idat and (x, y, width, height) != (0, 0, layout.width, layout.height):
        raise CorruptMediaError("APNG default image's frame does not cover the canvas")
    if dispose > 2 or blend > 1:
        raise CorruptMediaError(
            f"APNG frame {apng.fctl} has dispose op {dispose}, blend op {blend}"
        )
    apng.fctl += 1
    if apng.fctl > apng.frames:
        raise CorruptMediaError(f"APNG has more frames than the {apng.frames} it declares")
    apng.data_pending = True
    c.layout = ImageLayout(layout.width, layout.height, layout.canvas_pixels, apng.fctl)


# --- GIF ---------------------------------------------------------------------------------------
def _gif(c: StreamCheck) -> Parser:
    header = yield from c.need(13, "inside its header")
    screen_w, screen_h, flags = struct.unpack("<HHB", header[6:11])
    if flags & 0x80:
        yield from c.skip(3 << ((flags & 7) + 1), "inside its colour table")
    canvas_w, canvas_h = screen_w, screen_h
    frames = 0
    where = "before its trailer"
    while True:
        intro = (yield from c.need(1, where))[0]
        if intro == 0x3B:
            break
        if intro == 0x21:
            yield from c.need(1, where)  # label
            yield (_SUBBLOCKS, 0, f"inside an extension block, {where}")
            continue
        if intro != 0x2C:
            raise c.corrupt(f"could not be parsed: byte 0x{intro:02X} at {c.pos - 1}, not a block")
        x, y, w, h, iflags = struct.unpack("<HHHHB", (yield from c.need(9, where)))
        canvas_w, canvas_h = max(canvas_w, x + w), max(canvas_h, y + h)
        c.check_pixels(canvas_w, canvas_h)
        if not frames:
            c.set_image(canvas_w, canvas_h)
        frames += 1
        if iflags & 0x80:
            yield from c.skip(3 << ((iflags & 7) + 1), f"inside a colour table, {where}")
        code_size = (yield from c.need(1, where))[0]
        if not 1 <= code_size <= 11:
            raise c.corrupt(f"could not be parsed: frame {frames} has LZW code size {code_size}")
        yield (_SUBBLOCKS, 0, f"inside frame {frames}'s image data, {where}")
    if not frames:
        raise c.corrupt("has no image before its trailer")
    assert c.layout is not None
    first = c.layout
    c.layout = ImageLayout(first.width, first.height, canvas_w * canvas_h, frames)
    yield (_REST, _ANY)


# --- WebP --------------------------------------------------------------------------------------
def _webp(c: StreamCheck) -> Parser:
    header = yield from c.need(12, "inside its RIFF header")
    total = 8 + struct.unpack("<I", header[4:8])[0]
    where = f"before the end its RIFF header declares (byte {total})"
    state = _WebpState()
    while c.pos < total:
        fourcc, size = struct.unpack("<4sI", (yield from c.need(8, where)))
        padded = size + (size & 1)
        if c.pos + padded == total + 1:  # the last chunk's pad byte left out: harmless
            padded = size
        if c.pos + padded > total:
            raise c.corrupt(
                f"chunk {fourcc!r} at byte {c.pos - 8} runs past the RIFF end (byte {total})"
            )
        yield from _webp_chunk(c, state, fourcc, size, padded, where)
    _webp_final(c, state)
    yield (_REST, _NOTHING)


@dataclass(slots=True)
class _WebpState:
    canvas: tuple[int, int] | None = None  # VP8X
    animated: bool = False
    image: tuple[int, int] | None = None  # a still VP8/VP8L bitstream
    frames: int = 0


def _webp_chunk(
    c: StreamCheck, state: _WebpState, fourcc: bytes, size: int, padded: int, where: str
) -> Parser:
    if fourcc == b"VP8X":
        if state.canvas is not None or state.image is not None or size < 10:
            raise c.corrupt("could not be parsed: misplaced or short VP8X chunk")
        data = yield from c.need(10, where)
        width = int.from_bytes(data[4:7], "little") + 1
        height = int.from_bytes(data[7:10], "little") + 1
        state.canvas, state.animated = (width, height), bool(data[0] & 0x02)
        c.set_image(width, height)
        yield from c.skip(padded - 10, where)
    elif fourcc in (b"VP8 ", b"VP8L"):
        if state.image is not None or state.animated:
            raise c.corrupt(f"could not be parsed: unexpected {fourcc.decode()} chunk")
        dims = yield from _webp_bitstream(c, fourcc, size, padded, where)
        state.image = dims
        if state.canvas is None:
            c.set_image(*dims)
        elif dims != state.canvas:
            raise c.corrupt(_disagree(dims, state.canvas))
    elif fourcc == b"ANMF":
        if not state.animated or state.canvas is None or size < 16:
            raise c.corrupt("could not be parsed: animation frame outside an animated WebP")
        yield from _webp_frame(c, state, state.canvas, size, padded, where)
    else:
        yield from c.skip(padded, where)


def _disagree(dims: tuple[int, int], canvas: tuple[int, int]) -> str:
    return f"image of {dims[0]}x{dims[1]} disagrees with its {canvas[0]}x{canvas[1]} canvas (VP8X)"


def _webp_bitstream(
    c: StreamCheck, fourcc: bytes, size: int, padded: int, where: str
) -> Generator[Request, Any, tuple[int, int]]:
    """Dimensions from a VP8 or VP8L bitstream header; the rest of the chunk is skipped."""
    want = 10 if fourcc == b"VP8 " else 5
    if size < want:
        raise c.corrupt(f"{fourcc.decode().strip()} chunk of {size} bytes is too short")
    data = yield from c.need(want, where)
    if fourcc == b"VP8 ":
        if data[0] & 1 or data[3:6] != b"\x9d\x01\x2a":
            raise c.corrupt("could not be parsed: VP8 bitstream is not a key frame")
        width, height = struct.unpack("<HH", data[6:10])
        dims = (width & 0x3FFF, height & 0x3FFF)
    else:
        if data[0] != 0x2F:
            raise c.corrupt("could not be parsed: VP8L bitstream lacks its signature")
        bits = int.from_bytes(data[1:5], "little")
        dims = ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if not dims[0] or not dims[1]:
        raise c.corrupt(f"could not be parsed: bitstream declares {dims[0]}x{dims[1]}")
    yield from c.skip(padded - want, where)
    return dims


def _webp_frame(
    c: StreamCheck, state: _WebpState, canvas: tuple[int, int], size: int, padded: int,
    where: str,
) -> Parser:  # fmt: skip
    data = yield from c.need(16, where)
    x = int.from_bytes(data[0:3], "little") * 2
    y = int.from_bytes(data[3:6], "little") * 2
    width = int.from_bytes(data[6:9], "little") + 1
    height = int.from_bytes(data[9:12], "little") + 1
    state.frames += 1
    if x + width > canvas[0] or y + height > canvas[1]:
        raise c.corrupt(
            f"animation frame {state.frames} of {width}x{height} at ({x}, {y}) is outside "
            f"its {canvas[0]}x{canvas[1]} canvas"
        )
    end = c.pos - 16 + size
    found = None
    while c.pos + 8 <= end:
        fourcc, sub = struct.unpack("<4sI", (yield from c.need(8, where)))
        sub_padded = sub + (sub & 1)
        if c.pos + sub > end:
            raise c.corrupt(f"animation frame {state.frames}'s {fourcc!r} chunk overruns it")
        if fourcc in (b"VP8 ", b"VP8L"):
            found = yield from _webp_bitstream(c, fourcc, sub, min(sub_padded, end - c.pos), where)
            if found != (width, height):
                raise c.corrupt(
                    f"animation frame {state.frames} is {width}x{height} but its bitstream "
                    f"says {found[0]}x{found[1]}"
                )
        else:
            yield from c.skip(min(sub_padded, end - c.pos), where)
    if found is None:
        raise c.corrupt(f"animation frame {state.frames} has no image data")
    yield from c.skip(end - c.pos + (padded - size), where)


def _webp_final(c: StreamCheck, state: _WebpState) -> None:
    if state.animated:
        if not state.frames:
            raise c.corrupt("animated WebP has no frames")
    elif state.image is None:
        raise c.corrupt("has no image data (VP8/VP8L chunk)")
    if c.layout is not None and state.frames:
        layout = c.layout
        c.layout = ImageLayout(layout.width, layout.height, layout.canvas_pixels, state.frames)


# --- MP4 / MOV ---------------------------------------------------------------------------------
#: Boxes whose children are walked at ingest (to reach each track's handler and chunk offsets).
_TRACK_PATH = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}
#: Further container boxes walked by a deep check.
_DEEP_CONTAINERS = {
    b"moov", b"trak", b"mdia", b"minf", b"stbl", b"dinf", b"edts", b"mvex", b"moof", b"traf",
    b"mfra", b"udta", b"tref", b"sinf", b"schi", b"gmhd",
}  # fmt: skip
_MAX_CHUNK_OFFSETS = 1 << 16  # stco/co64 entries read per box by a deep check


@dataclass(slots=True)
class _Movie:
    moov: bool = False
    handlers: list[str] | None = None
    compressed: bool = False  # QuickTime cmov: tracks not readable without inflating
    max_offset: int = 0  # deepest sample chunk offset (deep check)

    def add_handler(self, handler: bytes) -> None:
        if self.handlers is None:
            self.handlers = []
        self.handlers.append(handler.decode("latin-1"))


def _box_header(
    c: StreamCheck, header: bytes, limit: int | None
) -> Generator[Request, Any, tuple[bytes, int | None]]:
    """(type, payload size or None for "to the end") of a box whose 8 header bytes were read."""
    size, btype = struct.unpack(">I4s", header)
    start = c.pos - 8
    if not all(0x20 <= b <= 0x7E or b == 0xA9 for b in btype):
        raise c.corrupt(f"could not be parsed: no valid box at byte {start} (type {btype!r})")
    if size == 1:
        (size,) = struct.unpack(">Q", (yield from c.need(8, f"inside the {btype!r} box header")))
        head = 16
    elif size == 0:
        return btype, None
    else:
        head = 8
    if size < head:
        raise c.corrupt(
            f"box {btype!r} at byte {start} declares {size} bytes, less than its header"
        )
    if limit is not None and start + size > limit:
        raise c.corrupt(f"box {btype!r} at byte {start} overruns its parent (ends at {limit})")
    return btype, size - head


def _isobmff(c: StreamCheck) -> Parser:
    movie = _Movie()
    while True:
        header = yield (_NEED_OR_EOF, 8, "inside a box header")
        if len(header) < 8:  # the end: after the last box, or a few zero bytes of padding
            if header.strip(b"\x00"):
                raise CorruptMediaError(_truncated(c.name, "inside a box header"))
            break
        if header == bytes(8):  # zero padding after the last box
            yield (_REST, _ZEROS)
            break
        btype, payload = yield from _box_header(c, header, None)
        if payload is None:  # size 0: the last box runs to the end of the file
            if btype == b"moov":
                raise c.corrupt("moov box of size 0 (running to the end) cannot be read")
            yield (_TO_END,)
            break
        if btype == b"moov":
            movie.moov = True
            yield from _walk_boxes(c, movie, b"moov", c.pos + payload)
        else:
            yield from c.skip(payload, f"inside its {btype.decode('latin-1')!r} box")
    _movie_final(c, movie)


def _walk_boxes(c: StreamCheck, movie: _Movie, parent: bytes, end: int) -> Parser:
    """Walk the children of a container box that ends at byte ``end``."""
    where = f"inside its {parent.decode('latin-1')!r} box"
    containers = _DEEP_CONTAINERS if c.deep else _TRACK_PATH
    while end - c.pos >= 8:
        btype, payload = yield from _box_header(c, (yield from c.need(8, where)), end)
        if payload is None:
            payload = end - c.pos
        if btype in containers:
            yield from _walk_boxes(c, movie, btype, c.pos + payload)
        elif btype == b"hdlr" and parent == b"mdia" and payload >= 12:
            data = yield from c.need(12, where)
            movie.add_handler(data[8:12])
            yield from c.skip(payload - 12, where)
        elif btype == b"cmov":
            movie.compressed = True
            yield from c.skip(payload, where)
        elif btype in (b"stco", b"co64") and payload >= 8:
            yield from _chunk_offsets(c, movie, btype, payload, where)
        elif c.deep and btype == b"meta" and payload >= 4:
            yield from c.skip(4, where)  # a full box: version and flags, then children
            yield from _walk_boxes(c, movie, btype, c.pos + payload - 4)
        else:
            yield from c.skip(payload, where)
    yield from c.skip(end - c.pos, where)  # QuickTime may close a container with 4 zero bytes


def _chunk_offsets(c: StreamCheck, movie: _Movie, btype: bytes, payload: int, where: str) -> Parser:
    head = yield from c.need(8, where)
    (count,) = struct.unpack(">I", head[4:8])
    width = 8 if btype == b"co64" else 4
    if count * width > payload - 8:
        raise c.corrupt(f"{btype.decode()} box declares {count} chunks but holds fewer")
    # the last ones (offsets grow through the file); at ingest only the last one
    read = min(count, _MAX_CHUNK_OFFSETS if c.deep else 1)
    yield from c.skip((count - read) * width, where)
    data = yield from c.need(read * width, where)
    if read:
        offsets = struct.unpack(f">{read}{'Q' if width == 8 else 'I'}", data)
        movie.max_offset = max(movie.max_offset, *offsets)
    yield from c.skip(payload - 8 - count * width, where)


def _movie_final(c: StreamCheck, movie: _Movie) -> None:
    if not movie.moov:
        raise c.corrupt("has no moov box (the index of its streams): truncated or not a video?")
    if movie.max_offset >= c.pos:
        raise c.corrupt(
            f"sample data at byte {movie.max_offset} is past the end of the file "
            f"({c.pos} bytes): truncated?"
        )
    if movie.compressed:
        return
    handlers = movie.handlers or []
    if "vide" in handlers:
        return
    if not handlers:
        raise c.corrupt("has no tracks (no audio or video streams)")
    kinds = ", ".join(sorted(set(handlers)))
    raise UnsupportedMediaError(
        f"{c.name} has no video track (track handlers: {kinds}); audio-only files are not supported"
    )


# --- WebM --------------------------------------------------------------------------------------
_EBML_ID, _SEGMENT, _CLUSTER, _TRACKS = 0x1A45DFA3, 0x18538067, 0x1F43B675, 0x1654AE6B
_TRACK_ENTRY, _TRACK_TYPE, _VOID, _CRC32 = 0xAE, 0x83, 0xEC, 0xBF
#: Level-1 elements (children of Segment): they also end an unknown-size Cluster.
_SEGMENT_CHILDREN = {
    0x114D9B74, 0x1549A966, _TRACKS, _CLUSTER, 0x1C53BB6B, 0x1043A770, 0x1254C367, 0x1941A469,
}  # fmt: skip
#: Master elements whose children a deep check walks (Info, Tracks, Cues, Chapters...).
_EBML_MASTERS = {
    0x114D9B74, 0x4DBB, 0x1549A966, _TRACKS, _TRACK_ENTRY, 0xE0, 0xE1, _CLUSTER, 0xA0,
    0x1C53BB6B, 0xBB, 0xB7, 0x1043A770, 0x45B9, 0xB6, 0x1254C367, 0x7373, 0x63C0, 0x67C8,
    0x1941A469, 0x61A7, 0x6D80, 0x6240, 0x5034, 0x5035,
}  # fmt: skip
_UNKNOWN = -1
_EBML_NAMES = {
    _SEGMENT: "Segment", _CLUSTER: "Cluster", _TRACKS: "Tracks", 0x114D9B74: "SeekHead",
    0x1549A966: "Info", 0x1C53BB6B: "Cues", 0x1043A770: "Chapters", 0x1254C367: "Tags",
    0x1941A469: "Attachments", _TRACK_ENTRY: "TrackEntry", 0xA0: "BlockGroup",
}  # fmt: skip


def _ebml_name(elem: int) -> str:
    return _EBML_NAMES.get(elem, f"element 0x{elem:X}")


@dataclass(slots=True)
class _Matroska:
    segment: bool = False
    tracks: list[int] | None = None


def _read_id(
    c: StreamCheck, where: str, *, eof_ok: bool = False, first: bytes = b""
) -> Generator[Request, Any, int]:
    """An element ID (its marker bits kept), or -1 if the stream ended here and may.

    ``first`` is its first byte when the caller has already read it.
    """
    if not first:
        first = yield ((_NEED_OR_EOF if eof_ok else _NEED), 1, where)
    if not first:
        return -1
    width = 9 - first[0].bit_length() if first[0] else 9
    if width > 4:
        raise c.corrupt(f"could not be parsed: no valid element ID at byte {c.pos - 1}")
    rest = (yield from c.need(width - 1, where)) if width > 1 else b""
    return int.from_bytes(first + rest, "big")


def _read_size(c: StreamCheck, where: str) -> Generator[Request, Any, int]:
    """An element size, or _UNKNOWN for the all-ones "unknown size"."""
    first = (yield from c.need(1, where))[0]
    if not first:
        raise c.corrupt(f"could not be parsed: no valid element size at byte {c.pos - 1}")
    width = 9 - first.bit_length()
    value = first & ((1 << (8 - width)) - 1)
    rest = (yield from c.need(width - 1, where)) if width > 1 else b""
    value = (value << (8 * len(rest))) | int.from_bytes(rest, "big")
    return _UNKNOWN if value == (1 << (7 * width)) - 1 else value


def _webm(c: StreamCheck) -> Parser:
    movie = _Matroska()
    where = "inside its EBML header"
    if (yield from _read_id(c, where)) != _EBML_ID:
        raise c.corrupt("could not be parsed: no EBML header")
    size = yield from _read_size(c, where)
    if size == _UNKNOWN:
        raise c.corrupt("could not be parsed: EBML header of unknown size")
    yield from c.skip(size, where)
    while True:
        first = yield (_NEED_OR_EOF, 1, "inside a top-level element")
        if not first:
            break
        if first == b"\x00":  # zero padding after the last element
            yield (_REST, _ZEROS)
            break
        elem = yield from _read_id(c, "inside a top-level element", first=first)
        size = yield from _read_size(c, "inside a top-level element header")
        if elem == _SEGMENT:
            movie.segment = True
            yield from _segment(c, movie, None if size == _UNKNOWN else c.pos + size)
        elif size == _UNKNOWN:
            raise c.corrupt(f"could not be parsed: top-level element 0x{elem:X} of unknown size")
        else:
            yield from c.skip(size, f"inside top-level element 0x{elem:X}")
    _webm_final(c, movie)


def _segment(c: StreamCheck, movie: _Matroska, end: int | None) -> Parser:
    """The Segment's children, up to ``end`` (or the end of the stream when its size is unknown)."""
    where = "inside its Segment"
    live = end is None
    elem = -1
    while live or c.pos < end:  # type: ignore[operator]
        if elem < 0:
            elem = yield from _read_id(c, where, eof_ok=live)
            if elem < 0:
                return  # the end of a live (unknown-size) Segment
        size = yield from _read_size(c, where)
        if end is not None and size != _UNKNOWN and c.pos + size > end:
            raise c.corrupt(f"element 0x{elem:X} at byte {c.pos} overruns its Segment")
        if elem == _CLUSTER and size == _UNKNOWN:
            elem = yield from _live_cluster(c, end)
            if elem < 0 and live:
                return
            continue
        if size == _UNKNOWN:
            raise c.corrupt(f"could not be parsed: element 0x{elem:X} of unknown size")
        if elem == _TRACKS:
            yield from _tracks(c, movie, c.pos + size)
        elif c.deep and elem in _EBML_MASTERS:
            yield from _ebml_children(c, elem, c.pos + size)
        else:
            yield from c.skip(size, f"inside its {_ebml_name(elem)}")
        elem = -1


def _live_cluster(c: StreamCheck, end: int | None) -> Generator[Request, Any, int]:
    """Pass over an unknown-size Cluster; return the ID that ends it (-1: the end)."""
    where = "inside a Cluster"
    while end is None or c.pos < end:
        elem = yield from _read_id(c, where, eof_ok=end is None)
        if elem < 0 or elem in _SEGMENT_CHILDREN:
            return elem
        size = yield from _read_size(c, where)
        if size == _UNKNOWN or (end is not None and c.pos + size > end):
            raise c.corrupt(f"could not be parsed: block 0x{elem:X} at byte {c.pos} overruns")
        yield from c.skip(size, where)
    return -1


def _tracks(c: StreamCheck, movie: _Matroska, end: int) -> Parser:
    where = "inside its Tracks"
    if movie.tracks is None:
        movie.tracks = []
    while c.pos < end:
        elem = yield from _read_id(c, where)
        size = yield from _read_size(c, where)
        if size == _UNKNOWN or c.pos + size > end:
            raise c.corrupt(f"track element at byte {c.pos} overruns its Tracks")
        if elem != _TRACK_ENTRY:
            yield from c.skip(size, where)
            continue
        entry_end = c.pos + size
        while c.pos < entry_end:
            sub = yield from _read_id(c, where)
            sub_size = yield from _read_size(c, where)
            if sub_size == _UNKNOWN or c.pos + sub_size > entry_end:
                raise c.corrupt(f"track entry element at byte {c.pos} overruns its track")
            if sub == _TRACK_TYPE and 0 < sub_size <= 8:
                movie.tracks.append(int.from_bytes((yield from c.need(sub_size, where)), "big"))
            else:
                yield from c.skip(sub_size, where)


def _ebml_children(c: StreamCheck, parent: int, end: int) -> Parser:
    """Deep check: the children of a master element tile it."""
    where = f"inside its {_ebml_name(parent)}"
    while c.pos < end:
        elem = yield from _read_id(c, where)
        size = yield from _read_size(c, where)
        if size == _UNKNOWN or c.pos + size > end:
            raise c.corrupt(f"element 0x{elem:X} at byte {c.pos} overruns its parent 0x{parent:X}")
        if elem in _EBML_MASTERS:
            yield from _ebml_children(c, elem, c.pos + size)
        else:
            yield from c.skip(size, where)


def _webm_final(c: StreamCheck, movie: _Matroska) -> None:
    if not movie.segment:
        raise c.corrupt("has no Segment (no content after its header): truncated?")
    if movie.tracks is None:
        raise c.corrupt("has no Tracks element (no streams): truncated?")
    if 1 in movie.tracks:
        return
    if not movie.tracks:
        raise c.corrupt("has no tracks (no audio or video streams)")
    raise UnsupportedMediaError(
        f"{c.name} has no video track (track types: {sorted(set(movie.tracks))}); audio-only "
        "files are not supported"
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
        raise CorruptMediaError(_truncated("PDF", "without its %%EOF end marker"))


# --- entry points ------------------------------------------------------------------------------
_NAMES = {"jpg": "JPEG", "png": "PNG", "gif": "GIF", "webp": "WebP", "mp4": "MP4",
          "mov": "MOV", "webm": "WebM", "pdf": "PDF"}  # fmt: skip
_PARSERS: dict[MediaKind, Callable[[StreamCheck], Parser]] = {
    JPEG: _jpeg, PNG: _png, GIF: _gif, WEBP: _webp, MP4: _isobmff, MOV: _isobmff, WEBM: _webm,
}  # fmt: skip


class Checker(Protocol):
    """A completeness check: fed every chunk of a stream, then asked for its verdict."""

    layout: ImageLayout | None

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
    fileobj: BinaryIO, kind: MediaKind, *, max_pixels: int, deep: bool = False,
    chunk_size: int = 1 << 20,
) -> ImageLayout | None:  # fmt: skip
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
