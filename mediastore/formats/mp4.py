"""Completeness checks of ISO base media files: MP4 and QuickTime MOV."""

from __future__ import annotations

import struct
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from ..errors import CorruptMediaError, UnsupportedMediaError
from .stream import (
    NEED_OR_EOF,
    REST,
    TO_END,
    ZEROS,
    Parser,
    Request,
    StreamCheck,
    truncated,
)

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


def parse_isobmff(c: StreamCheck) -> Parser:
    movie = _Movie()
    while True:
        header = yield (NEED_OR_EOF, 8, "inside a box header")
        if len(header) < 8:  # the end: after the last box, or a few zero bytes of padding
            if header.strip(b"\x00"):
                raise CorruptMediaError(truncated(c.name, "inside a box header"))
            break
        if header == bytes(8):  # zero padding after the last box
            yield (REST, ZEROS)
            break
        btype, payload = yield from _box_header(c, header, None)
        if payload is None:  # size 0: the last box runs to the end of the file
            if btype == b"moov":
                raise c.corrupt("moov box of size 0 (running to the end) cannot be read")
            yield (TO_END,)
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
