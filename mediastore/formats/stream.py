"""The driver of the streaming completeness checks: :class:`StreamCheck` feeds a format's
parser (a generator, one per format family) the bytes it asks for, with bounded state.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import CorruptMediaError, ImageTooLargeError
from ..records import MediaMetadata
from .detect import MediaKind

__all__ = ["MediaMetadata"]  # re-exported: the walks fill the record the store keeps

# Requests a parser yields to the driver (the first item of each request tuple).
NEED = 0  # (op, n, msg): the next n bytes, sent back as bytes
NEED_OR_EOF = 1  # like NEED, but b"" is sent back when the stream ends exactly here
SKIP = 2  # (op, n, msg): pass over n bytes
CRC = 3  # (op, n, msg, crc): pass over n bytes, send back their running CRC-32
SCAN = 4  # (op, 0, msg, wanted, lazy): JPEG: the next marker; see StreamCheck._scan
SUBBLOCKS = 5  # (op, 0, msg): GIF: pass over data sub-blocks up to the terminator
TO_END = 6  # (op,): every byte to the end belongs to the last box; None is sent at the end
REST = 7  # (op, policy): the file is complete; None is sent at the end
CHUNK = 8  # (op, n, msg): the bytes of the current chunk, at most n (n < 0: no limit), as a
#   memoryview valid until the parser's next request; b"" at the end of the stream when
#   n < 0; the parser may give the view's last bytes back (StreamCheck.give_back)

ANY, ZEROS, NOTHING = "any", "zeros", "nothing"  # what may follow a complete file

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


def since(epoch: datetime, seconds: float) -> datetime | None:
    """``epoch`` plus ``seconds``, or None for zero or a time no datetime can hold."""
    if not seconds:
        return None
    try:
        return epoch + timedelta(seconds=seconds)
    except (OverflowError, ValueError):
        return None


#: The epochs of MP4/MOV (``mvhd``) and Matroska (DateUTC) times.
EPOCH_1904 = datetime(1904, 1, 1, tzinfo=UTC)
EPOCH_2001 = datetime(2001, 1, 1, tzinfo=UTC)


def bit_rate(size: int, duration: float | None) -> int | None:
    """Bits per second of a file of ``size`` bytes lasting ``duration`` seconds."""
    return round(size * 8 / duration) if duration else None


def truncated(name: str, where: str) -> str:
    return f"{name} ends {where}: truncated?"


class StreamCheck:
    """Drives one format parser over a stream of chunks, with bounded state.

    Attributes:
        kind: The media kind being checked.
        pos: Bytes of the stream consumed so far.
        layout: Dimensions of an image, once its header has been read (else None).
        metadata: What the file says about its content (:class:`MediaMetadata`), set by the
            parser when its walk ends; read it after :meth:`finish` passed.
    """

    def __init__(
        self,
        kind: MediaKind,
        parser: Callable[[StreamCheck], Parser],
        *,
        max_pixels: int,
        deep: bool = False,
    ) -> None:
        self.kind = kind
        self.name = NAMES[kind.extension]
        self.max_pixels = max_pixels
        self.deep = deep
        self.pos = 0
        self.layout: ImageLayout | None = None
        self.metadata: MediaMetadata | None = None
        self._buf = bytearray()
        self._left = 0  # bytes still to pass for SKIP / CRC / SUBBLOCKS
        self._crc = 0
        self._pending_ff = False  # SCAN: the last byte seen was a 0xFF
        self._marker = -1  # SCAN: the marker whose length or body is being passed, or -1
        self._length = b""  # SCAN: the length bytes of that marker read so far
        self._stash: memoryview | None = None  # SCAN: scan data not looked at yet
        self._given_back = 0  # CHUNK: bytes of the last view the parser did not take
        self._gen = parser(self)
        self._req: Request | None = next(self._gen)
        self._prepare()

    # --- parser helpers ------------------------------------------------------------------------
    def need(self, n: int, msg: str) -> Generator[Request, Any, bytes]:
        """The next ``n`` bytes (``msg`` says what a stream ending here was inside)."""
        if not n:
            return b""
        data: bytes = yield (NEED, n, msg)
        return data

    def skip(self, n: int, msg: str) -> Generator[Request, Any, None]:
        """Pass over ``n`` bytes."""
        if n:
            yield (SKIP, n, msg)

    def give_back(self, n: int) -> None:
        """Hand the last ``n`` bytes of the view a CHUNK request just received back: the
        parser's next request reads them again."""
        self._given_back = n

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
        if req is not None and req[0] in (SKIP, CRC, SUBBLOCKS):
            self._left = req[1]
            self._crc = req[3] if req[0] == CRC else 0

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
            if op in (NEED, NEED_OR_EOF):
                take = min(req[1] - len(self._buf), n - i)
                self._buf += view[i : i + take]
                i += take
                if len(self._buf) == req[1]:
                    data = bytes(self._buf)
                    self._buf.clear()
                    self.pos += req[1]
                    self._send(data)
            elif op in (SKIP, CRC):
                take = min(self._left, n - i)
                if op == CRC:
                    self._crc = zlib.crc32(view[i : i + take], self._crc)
                i += take
                self._left -= take
                self.pos += take
                if not self._left:
                    self._send(self._crc if op == CRC else None)
            elif op == SCAN:
                if lazy and req[4] and self._marker < 0 and not self._pending_ff:
                    self._stash = view[i:]
                    return
                i = self._scan(view, i)
            elif op == CHUNK:
                take = n - i if req[1] < 0 else min(req[1], n - i)
                self.pos += take
                i += take
                self._send(view[i - take : i])
                if self._given_back:
                    i -= self._given_back
                    self.pos -= self._given_back
                    self._given_back = 0
            elif op == SUBBLOCKS:
                i = self._subblocks(view, i)
            elif op == TO_END:
                self.pos += n - i
                return
            else:  # REST
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
        if policy == ZEROS and tail.tobytes().strip(b"\x00"):
            raise self.corrupt(f"has non-zero bytes after its last box (at byte {self.pos})")
        if policy == NOTHING:
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
            if op == SCAN and self._marker >= 0:
                where = f"inside its {jpeg_segment_name(self._marker)} segment"
                raise CorruptMediaError(truncated(self.name, where))
            unbounded_chunk = op == CHUNK and self._req[1] < 0
            if op not in (TO_END, REST, NEED_OR_EOF) and not unbounded_chunk:
                raise CorruptMediaError(truncated(self.name, self._req[2]))
            # the parser sees the end: b"" (or a short read) where it allowed it, else None
            data = bytes(self._buf)
            self._buf.clear()
            self._send(data if op in (NEED_OR_EOF, CHUNK) else None)
        return self.layout


NAMES = {"jpg": "JPEG", "png": "PNG", "gif": "GIF", "webp": "WebP", "mp4": "MP4",
          "mov": "MOV", "webm": "WebM", "pdf": "PDF"}  # fmt: skip


#: JPEG start-of-frame markers (the frame header).
SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_segment_name(marker: int) -> str:
    if marker in SOF:
        return f"SOF{marker - 0xC0} (frame header)"
    if 0xE0 <= marker <= 0xEF:
        return f"APP{marker - 0xE0}"
    names = {0xC4: "DHT", 0xDB: "DQT", 0xDA: "SOS (scan header)", 0xDD: "DRI", 0xFE: "COM"}
    return names.get(marker, f"0xFF{marker:02X}")
