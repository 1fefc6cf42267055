"""Completeness checks of WebM (Matroska) files, and their metadata.

The metadata comes from Info (TimecodeScale, Duration, DateUTC; read whole when at most
64 KiB), each TrackEntry (TrackNumber, TrackType, CodecID, DefaultDuration and Video's
PixelWidth/PixelHeight/DisplayWidth/DisplayHeight/DisplayUnit) and the header of every block
in the Clusters (a few bytes each: track, timecode, lacing). The first video track (in Tracks
order) is the one described; the first audio track gives the audio codec.

A file without Info's Duration (ffmpeg writing to a pipe, browsers' MediaRecorder) gets the
end of its last block as its duration: the largest Cluster timecode plus block timecode, plus
that block's BlockDuration, or its track's DefaultDuration, when either is declared (else the
block's start: the duration then falls short by at most one block).
"""

from __future__ import annotations

import struct
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from ..errors import CorruptMediaError, UnsupportedMediaError
from ..records import aspect_text
from .stream import (
    CHUNK,
    EPOCH_2001,
    NEED,
    NEED_OR_EOF,
    REST,
    ZEROS,
    MediaMetadata,
    Parser,
    Request,
    StreamCheck,
    bit_rate,
    since,
    truncated,
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


_INFO, _TIMECODE, _SIMPLE_BLOCK, _BLOCK_GROUP, _BLOCK, _BLOCK_DURATION = (
    0x1549A966, 0xE7, 0xA3, 0xA0, 0xA1, 0x9B,
)  # fmt: skip
_MAX_INFO = 1 << 16  # an Info larger than this is not read
_MAX_VIDEO = 4096  # nor a track's Video element larger than this
_MAX_TRACKS = 64  # tracks whose DefaultDuration is kept


@dataclass(slots=True)
class _Track:
    """What a TrackEntry says."""

    number: int = 0
    kind: int = 0  # TrackType: 1 video, 2 audio
    codec: str = ""
    default_duration: int = 0  # nanoseconds per frame
    video: bytes = b""  # the Video element's content


@dataclass(slots=True)
class _Matroska:
    segment: bool = False
    tracks: list[int] | None = None
    scale: int = 1_000_000  # TimecodeScale: nanoseconds per timecode tick
    duration: float | None = None  # Info's Duration, in ticks
    date: int = 0  # DateUTC: nanoseconds since 2001
    video: _Track | None = None
    audio: _Track | None = None
    defaults: dict[int, int] = field(default_factory=dict)  # track number -> DefaultDuration
    cluster_time: int = 0  # the Cluster's timecode, in ticks
    frames: int = 0  # of the video track
    end_ns: int = 0  # the end of the last block seen
    unreadable_blocks: bool = False  # a Cluster whose elements did not fit: frames unknown

    def add_track(self, track: _Track) -> None:
        if track.kind == 1 and self.video is None:
            self.video = track
        elif track.kind == 2 and self.audio is None:
            self.audio = track
        if track.default_duration and len(self.defaults) < _MAX_TRACKS:
            self.defaults[track.number] = track.default_duration


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
            elem = yield from _live_cluster(c, movie, end)
            if elem < 0 and live:
                return
            continue
        if size == _UNKNOWN:
            raise c.corrupt(f"could not be parsed: element 0x{elem:X} of unknown size")
        if elem == _TRACKS:
            yield from _tracks(c, movie, c.pos + size)
        elif elem == _INFO and size <= _MAX_INFO:
            _info(c, movie, (yield from c.need(size, "inside its Info")))
        elif elem == _CLUSTER:
            yield from _cluster(c, movie, c.pos + size)
        elif c.deep and elem in _EBML_MASTERS:
            yield from _ebml_children(c, elem, c.pos + size)
        else:
            yield from c.skip(size, f"inside its {_ebml_name(elem)}")
        elem = -1


def _live_cluster(
    c: StreamCheck, movie: _Matroska, end: int | None
) -> Generator[Request, Any, int]:
    """Walk an unknown-size Cluster; return the ID that ends it (-1: the end)."""
    return (yield from _walk_cluster(c, movie, end, live=True))


def _cluster(c: StreamCheck, movie: _Matroska, end: int) -> Parser:
    """A Cluster of known size: note its timecode and its blocks.

    The check used to pass over such a Cluster (a deep check walked its children), so a
    child that does not fit only stops the count here, and the deep check still refuses it.
    """
    yield from _walk_cluster(c, movie, end, live=False)


def _walk_cluster(
    c: StreamCheck, movie: _Matroska, end: int | None, *, live: bool
) -> Generator[Request, Any, int]:
    """Feed a Cluster's bytes to a :class:`_ClusterWalk` a chunk at a time: one round trip
    per chunk, not four per block."""
    walk = _ClusterWalk(c, movie, c.pos, end, live=live)
    where = "inside a Cluster" if live else "inside its Cluster"
    while end is None or c.pos < end:
        view = yield (CHUNK, -1 if end is None else end - c.pos, where)
        if not view:
            break  # the end of the stream, in an unknown-size Segment
        if walk.feed(view):
            return walk.found
    walk.close(where)
    return -1


#: The value bits of an EBML size of 1 to 8 bytes (all ones: "unknown size"); 0 and 9: none.
_SIZE_MASKS = [0] + [(1 << (7 * width)) - 1 for width in range(1, 9)] + [0]


class _ClusterWalk:
    """The children of one Cluster read from the chunks as they pass, by plain indexing.

    Only the few bytes a block's header needs are looked at (and kept, at most 28, when
    they straddle two chunks); block data is passed over. A known-size Cluster whose child
    does not fit it stops the count (unless the check is deep: then it is refused); an
    unknown-size Cluster (``live``) ends at the first level-1 ID, and a child it cannot
    parse is refused, as before.
    """

    __slots__ = (
        "base",
        "block",
        "c",
        "carry",
        "duration",
        "end",
        "found",
        "group_end",
        "live",
        "movie",
        "skip",
    )  # fmt: skip

    def __init__(
        self, c: StreamCheck, movie: _Matroska, start: int, end: int | None, *, live: bool
    ) -> None:
        self.c, self.movie, self.live = c, movie, live
        self.base = start  # the file offset of the next byte fed (of ``carry`` if any)
        self.end = end  # the Cluster's end, or a live Cluster's Segment's end, or None
        self.carry = b""  # an element header cut by the end of a chunk
        self.skip = 0  # bytes of the current element still to pass over
        self.group_end: int | None = None  # the end of the BlockGroup being read
        self.block: tuple[int, int, int] | None = None  # its Block's header
        self.duration: int | None = None  # its BlockDuration
        self.found = -1  # the level-1 ID that ended a live Cluster

    def feed(self, view: memoryview) -> bool:
        """Read a chunk; True when a live Cluster ended in it (the rest is given back)."""
        data: bytes | memoryview = self.carry + view.tobytes() if self.carry else view
        self.carry = b""
        base, n, i = self.base, len(data), 0
        movie = self.movie
        video = movie.video.number if movie.video is not None else -1
        # the fast path: a SimpleBlock, not laced, of a one-byte track number, in the Cluster
        fast_end = n - 14  # room for its ID, size (at most 8 bytes) and 4 header bytes
        while True:
            if self.skip:
                step = min(self.skip, n - i)
                i += step
                self.skip -= step
                if self.skip:
                    break
            while i <= fast_end and data[i] == 0xA3 and self.group_end is None:
                first = data[i + 1]
                width = 9 - first.bit_length() if first else 9
                at = i + 1 + width
                size = int.from_bytes(data[i + 1 : at], "big") & _SIZE_MASKS[width]
                track = data[at]
                if (
                    width > 8
                    or size < 4
                    or size == _SIZE_MASKS[width]
                    or (self.end is not None and base + at + size > self.end)
                    or not track & 0x80
                    or data[at + 3] & 0x06
                ):
                    break  # the general path reads it
                track &= 0x7F
                if track == video:
                    movie.frames += 1
                timecode = data[at + 1] << 8 | data[at + 2]
                if timecode & 0x8000:
                    timecode -= 0x10000
                end = (movie.cluster_time + timecode) * movie.scale + movie.defaults.get(track, 0)
                if end > movie.end_ns:
                    movie.end_ns = end
                step = min(size, n - at)
                i = at + step
                self.skip = size - step
                if self.skip:
                    break
            if self.skip:
                continue
            pos = base + i
            if self.group_end is not None and pos >= self.group_end:
                self._close_group()
                continue
            if i >= n:
                break
            in_group = self.group_end is not None
            limit = self.group_end if in_group else self.end
            first = data[i]
            width = 9 - first.bit_length() if first else 9
            if width > 4 or (limit is not None and pos + width >= limit):
                self._unfit(pos, limit)
                continue
            if i + width > n:
                self.carry = bytes(data[i:])
                break
            elem = int.from_bytes(data[i : i + width], "big")
            if self.live and not in_group and elem in _SEGMENT_CHILDREN:
                self.found = elem
                self.c.give_back(n - i - width)
                return True
            at = i + width
            if at >= n:
                self.carry = bytes(data[i:])
                break
            first = data[at]
            size_width = 9 - first.bit_length() if first else 9
            if size_width > 8 or (limit is not None and pos + width + size_width > limit):
                self._unfit(pos, limit)
                continue
            if at + size_width > n:
                self.carry = bytes(data[i:])
                break
            size = int.from_bytes(data[at : at + size_width], "big") & _SIZE_MASKS[size_width]
            at += size_width
            body = base + at
            if size == _SIZE_MASKS[size_width] or (limit is not None and body + size > limit):
                self._unfit(pos, limit)
                continue
            if elem == _BLOCK_GROUP and not in_group:
                self.group_end, self.block, self.duration = body + size, None, None
                i = at
                continue
            if in_group:
                want = min(size, 16) if elem in (_BLOCK, _BLOCK_DURATION) else 0
            elif elem == _SIMPLE_BLOCK:
                want = min(size, 16)
            else:
                want = size if elem == _TIMECODE and size <= 8 else 0
            if at + want > n:
                self.carry = bytes(data[i:])
                break
            if want:
                self._element(elem, size, data[at : at + want])
            i = at + want
            self.skip = size - want
        self.base = base + n - len(self.carry)
        return False

    def _element(self, elem: int, size: int, head: bytes | memoryview) -> None:
        if elem == _TIMECODE:
            self.movie.cluster_time = int.from_bytes(head, "big")
        elif elem == _BLOCK_DURATION:
            if size <= 8:
                self.duration = int.from_bytes(head, "big")
        else:
            block = _block_header(head)
            if elem == _BLOCK:
                self.block = block
            elif block is None:
                self.movie.unreadable_blocks = True
            else:
                _count_block(self.movie, block, None)

    def _unfit(self, pos: int, limit: int | None) -> None:
        """A child that does not fit its parent (or cannot be parsed) at ``pos``."""
        c = self.c
        in_group = self.group_end is not None
        if c.deep or (self.live and not in_group) or limit is None:
            parent = _BLOCK_GROUP if in_group else _CLUSTER
            raise c.corrupt(f"element at byte {pos} overruns its parent 0x{parent:X}")
        self.movie.unreadable_blocks = True
        self.skip = limit - pos  # to the end of the BlockGroup or Cluster

    def _close_group(self) -> None:
        if self.block is not None:
            _count_block(self.movie, self.block, self.duration)
        self.group_end = None

    def close(self, where: str) -> None:
        """The Cluster's bytes all passed (or the stream ended)."""
        if self.group_end is not None and self.base >= self.group_end and not self.skip:
            self._close_group()
        if self.carry or self.skip or self.group_end is not None:
            raise CorruptMediaError(truncated(self.c.name, where))


def _block_header(data: bytes | memoryview) -> tuple[int, int, int] | None:
    """(track number, signed timecode, frames) of a (Simple)Block's header, or None."""
    if not data or not data[0]:
        return None
    width = 9 - data[0].bit_length()
    if len(data) < width + 3:
        return None
    track = int.from_bytes(data[:width], "big") & ((1 << (7 * width)) - 1)
    timecode, flags = struct.unpack_from(">hB", data, width)
    frames = 1
    if flags & 0x06:  # laced: the frame count minus one follows
        if len(data) < width + 4:
            return None
        frames = data[width + 3] + 1
    return track, timecode, frames


def _count_block(movie: _Matroska, block: tuple[int, int, int], duration: int | None) -> None:
    """Count a video block's frames; move the end of the file's blocks."""
    track, timecode, frames = block
    if movie.video is not None and track == movie.video.number:
        movie.frames += frames
    end = (movie.cluster_time + timecode + (duration or 0)) * movie.scale
    if duration is None:
        end += movie.defaults.get(track, 0)
    movie.end_ns = max(movie.end_ns, end)


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
        track = _Track()
        while c.pos < entry_end:
            sub = yield from _read_id(c, where)
            sub_size = yield from _read_size(c, where)
            if sub_size == _UNKNOWN or c.pos + sub_size > entry_end:
                raise c.corrupt(f"track entry element at byte {c.pos} overruns its track")
            if sub == _TRACK_TYPE and 0 < sub_size <= 8:
                track.kind = int.from_bytes((yield from c.need(sub_size, where)), "big")
                movie.tracks.append(track.kind)
            elif sub in _TRACK_FIELDS and sub_size <= _TRACK_FIELDS[sub]:
                _track_field(track, sub, (yield from c.need(sub_size, where)))
            else:
                yield from c.skip(sub_size, where)
        movie.add_track(track)


#: TrackEntry children read for metadata, and their largest size read.
_TRACK_FIELDS = {0xD7: 8, 0x86: 64, 0x23E383: 8, 0xE0: _MAX_VIDEO}


def _track_field(track: _Track, elem: int, data: bytes) -> None:
    if elem == 0xD7:
        track.number = int.from_bytes(data, "big")
    elif elem == 0x86:
        track.codec = data.rstrip(b"\x00").decode("ascii", "replace")
    elif elem == 0x23E383:
        track.default_duration = int.from_bytes(data, "big")
    else:
        track.video = data


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
    _webm_checks(c, movie)
    c.metadata = _webm_metadata(movie, c.pos)


def _webm_checks(c: StreamCheck, movie: _Matroska) -> None:
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


# --- metadata ----------------------------------------------------------------------------------
def _elements(data: bytes, base: int, parent: int) -> tuple[dict[int, bytes], str | None]:
    """The children of a master element held in ``data`` (the first of each ID), and what
    is wrong with them if they do not tile it (``base``: the offset of ``data`` in the file)."""
    found: dict[int, bytes] = {}
    at = 0
    while at < len(data):
        elem, at_size = _vint(data, at, keep_marker=True)
        size, at_data = _vint(data, at_size, keep_marker=False)
        if elem is None or size is None or at_data + size > len(data):
            return found, f"element at byte {base + at} overruns its parent 0x{parent:X}"
        found.setdefault(elem, data[at_data : at_data + size])
        at = at_data + size
    return found, None


def _vint(data: bytes, at: int, *, keep_marker: bool) -> tuple[int | None, int]:
    """(value, offset after it) of an EBML variable-size integer (an ID keeps its marker)."""
    if at >= len(data) or not data[at]:
        return None, at
    width = 9 - data[at].bit_length()
    if at + width > len(data) or (keep_marker and width > 4):
        return None, at
    first = data[at] if keep_marker else data[at] & (0xFF >> width)
    return int.from_bytes(bytes([first]) + data[at + 1 : at + width], "big"), at + width


def _info(c: StreamCheck, movie: _Matroska, data: bytes) -> None:
    """Info's TimecodeScale, Duration and DateUTC (a deep check also wants it tiled)."""
    found, wrong = _elements(data, c.pos - len(data), _INFO)
    if wrong is not None and c.deep:
        raise CorruptMediaError(wrong)
    scale = int.from_bytes(found.get(0x2AD7B1, b""), "big")
    if scale:
        movie.scale = scale
    duration = found.get(0x4489, b"")
    if len(duration) in (4, 8):
        (movie.duration,) = struct.unpack(">f" if len(duration) == 4 else ">d", duration)
    date = found.get(0x4461, b"")
    if len(date) == 8:
        (movie.date,) = struct.unpack(">q", date)


_VIDEO_CODECS = {
    "V_VP8": "vp8", "V_VP9": "vp9", "V_AV1": "av1", "V_MPEG4/ISO/AVC": "h264",
    "V_MPEGH/ISO/HEVC": "hevc", "V_MPEG4/ISO/ASP": "mpeg4", "V_MPEG4/ISO/SP": "mpeg4",
    "V_MPEG4/ISO/AP": "mpeg4", "V_THEORA": "theora", "V_MPEG2": "mpeg2video",
    "V_MJPEG": "mjpeg", "V_PRORES": "prores",
}  # fmt: skip
_AUDIO_CODECS = {
    "A_OPUS": "opus", "A_VORBIS": "vorbis", "A_MPEG/L3": "mp3", "A_MPEG/L2": "mp2",
    "A_FLAC": "flac", "A_AC3": "ac3", "A_EAC3": "eac3", "A_DTS": "dts", "A_ALAC": "alac",
    "A_PCM/INT/LIT": "pcm_s16le", "A_PCM/FLOAT/IEEE": "pcm_f32le",
}  # fmt: skip


def _codec(codec: str, table: dict[str, str]) -> str | None:
    if codec.startswith("A_AAC"):  # A_AAC, A_AAC/MPEG4/LC...
        return "aac"
    return table.get(codec)


def _webm_metadata(movie: _Matroska, size: int) -> MediaMetadata:
    """The metadata Info, Tracks and the blocks declared."""
    duration = _webm_duration(movie)
    video, audio = movie.video, movie.audio
    if video is None:
        return MediaMetadata(duration=duration, bit_rate=bit_rate(size, duration))
    width, height, display, aspect = _video_size(video.video)
    frames = None if movie.unreadable_blocks else movie.frames
    rate = 1e9 / video.default_duration if video.default_duration else None
    if rate is None and frames and duration:
        rate = frames / duration
    return MediaMetadata(
        width=width,
        height=height,
        display_width=display[0],
        display_height=display[1],
        pixel_aspect=aspect,
        duration=duration,
        frames=frames,
        frame_rate=rate,
        video_codec=_codec(video.codec, _VIDEO_CODECS),
        has_audio=audio is not None,
        audio_codec=None if audio is None else _codec(audio.codec, _AUDIO_CODECS),
        bit_rate=bit_rate(size, duration),
        creation_time=since(EPOCH_2001, movie.date / 1e9),
    )


def _webm_duration(movie: _Matroska) -> float | None:
    """Seconds: Info's Duration, else the end of the last block (see the module's doc)."""
    if movie.duration is not None and movie.duration > 0:
        return movie.duration * movie.scale / 1e9
    if movie.unreadable_blocks or not movie.end_ns:
        return None
    return movie.end_ns / 1e9


def _video_size(
    video: bytes,
) -> tuple[int | None, int | None, tuple[int | None, int | None], str | None]:
    """(PixelWidth, PixelHeight, displayed size, pixel aspect ratio) of a track's Video
    element.

    DisplayWidth/DisplayHeight in pixels (DisplayUnit 0, the default) are the displayed
    size, and with the pixel size give the pixel aspect ratio; in another unit they are only
    the picture's aspect ratio, applied to the height.
    """
    found, _wrong = _elements(video, 0, 0xE0)
    width = int.from_bytes(found.get(0xB0, b""), "big") or None
    height = int.from_bytes(found.get(0xBA, b""), "big") or None
    shown_w = int.from_bytes(found.get(0x54B0, b""), "big")
    shown_h = int.from_bytes(found.get(0x54BA, b""), "big")
    unit = int.from_bytes(found.get(0x54B2, b""), "big")
    if not width or not height:
        return width, height, (None, None), None
    if not shown_w or not shown_h:
        return width, height, (width, height), None
    if unit == 0:
        return width, height, (shown_w, shown_h), aspect_text(shown_w * height, shown_h * width)
    return width, height, (max(1, round(height * shown_w / shown_h)), height), None
