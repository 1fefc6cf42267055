"""Completeness checks of WebM (Matroska) files."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from ..errors import UnsupportedMediaError
from .stream import (
    NEED,
    NEED_OR_EOF,
    REST,
    ZEROS,
    Parser,
    Request,
    StreamCheck,
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
        first = yield ((NEED_OR_EOF if eof_ok else NEED), 1, where)
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


def parse_webm(c: StreamCheck) -> Parser:
    movie = _Matroska()
    where = "inside its EBML header"
    if (yield from _read_id(c, where)) != _EBML_ID:
        raise c.corrupt("could not be parsed: no EBML header")
    size = yield from _read_size(c, where)
    if size == _UNKNOWN:
        raise c.corrupt("could not be parsed: EBML header of unknown size")
    yield from c.skip(size, where)
    while True:
        first = yield (NEED_OR_EOF, 1, "inside a top-level element")
        if not first:
            break
        if first == b"\x00":  # zero padding after the last element
            yield (REST, ZEROS)
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
