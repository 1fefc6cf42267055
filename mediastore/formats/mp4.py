"""Completeness checks of ISO base media files (MP4 and QuickTime MOV), and their metadata.

The metadata comes from the boxes the check already walks (``moov`` and its tracks) plus
the few it reads on the way: ``mvhd``, ``tkhd``, ``mdhd``, ``stsd`` (at most 64 KiB),
``stsz``, ``mvex`` (``mehd``, ``trex``) and, in fragmented files, each ``moof``'s ``tfhd`` and
``trun``. The first track whose ``mdia/hdlr`` says ``vide`` is the video track (QuickTime's
second ``hdlr``, in ``minf``, names a data handler and is not looked at); the first ``soun``
track gives the audio codec.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from ..errors import CorruptMediaError, UnsupportedMediaError
from ..records import aspect_text
from .stream import (
    EPOCH_1904,
    NEED_OR_EOF,
    REST,
    TO_END,
    ZEROS,
    MediaMetadata,
    Parser,
    Request,
    StreamCheck,
    bit_rate,
    since,
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


_MAX_SAMPLE_DESCRIPTIONS = 1 << 16  # an stsd box larger than this is not read
_MAX_TRACKS = 64  # tracks whose fragment sums are kept
_TRUN_BATCH = 4096  # trun entries read at a time


@dataclass(slots=True)
class _Track:
    """What one ``trak`` says, while it is walked."""

    track_id: int = 0
    handler: str = ""
    rotation: int | None = 0
    timescale: int = 0
    duration: int = 0  # mdhd, in timescale units
    samples: int | None = None  # stsz
    entry: bytes = b""  # the first sample description of stsd


@dataclass(slots=True)
class _Fragments:
    """Sums over the ``trun`` boxes of one track (fragmented files)."""

    samples: int = 0
    ticks: int | None = 0  # sample durations in the track's timescale; None: not all known


@dataclass(slots=True)
class _Movie:
    moov: bool = False
    handlers: list[str] | None = None
    compressed: bool = False  # QuickTime cmov: tracks not readable without inflating
    max_offset: int = 0  # deepest sample chunk offset (deep check)
    timescale: int = 0  # mvhd
    duration: int = 0  # mvhd, in its timescale
    created: int = 0  # mvhd, seconds since 1904
    fragment_duration: int = 0  # mehd, in the mvhd timescale
    track: _Track | None = None  # the trak being walked
    video: _Track | None = None  # the first video track
    audio: _Track | None = None  # the first audio track
    trex: dict[int, int] = field(default_factory=dict)  # track ID -> default sample duration
    fragments: dict[int, _Fragments] = field(default_factory=dict)  # by track ID
    traf: tuple[int, int | None] = (0, None)  # the traf walked: track ID, default duration
    unreadable_fragment: bool = False  # a moof whose boxes did not fit: sums unknown

    def add_handler(self, handler: bytes) -> None:
        if self.handlers is None:
            self.handlers = []
        self.handlers.append(handler.decode("latin-1"))
        if self.track is not None:
            self.track.handler = handler.decode("latin-1")

    def end_track(self) -> None:
        """The trak walked is over: keep it if it is the first video or audio track."""
        track, self.track = self.track, None
        if track is None:
            return
        if track.handler == "vide" and self.video is None:
            self.video = track
        elif track.handler == "soun" and self.audio is None:
            self.audio = track


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
        elif btype == b"moof" and movie.moov:
            yield from _fragment(c, movie, c.pos + payload)
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
        if btype == b"trak":
            movie.end_track()
            movie.track = _Track()
            yield from _walk_boxes(c, movie, btype, c.pos + payload)
            movie.end_track()
        elif btype in containers:
            yield from _walk_boxes(c, movie, btype, c.pos + payload)
        elif btype == b"mvex":  # not walked by the check at ingest: read without failing it
            yield from _fragment(c, movie, c.pos + payload)
        elif btype in _METADATA_BOXES and parent in _METADATA_BOXES[btype]:
            data = yield from c.need(min(payload, _METADATA_BOXES[btype][parent]), where)
            _read_box(movie, btype, data)
            yield from c.skip(payload - len(data), where)
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
    _movie_checks(c, movie)
    movie.end_track()
    c.metadata = None if movie.compressed else _movie_metadata(movie, c.pos)


def _movie_checks(c: StreamCheck, movie: _Movie) -> None:
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


# --- metadata ----------------------------------------------------------------------------------
#: Boxes read for metadata: type -> {parent: bytes read (the rest is skipped)}.
_METADATA_BOXES = {
    b"mvhd": {b"moov": 32}, b"mehd": {b"mvex": 12}, b"trex": {b"mvex": 16},
    b"tkhd": {b"trak": 96}, b"mdhd": {b"mdia": 32},
    b"stsz": {b"stbl": 12}, b"stz2": {b"stbl": 12}, b"stsd": {b"stbl": _MAX_SAMPLE_DESCRIPTIONS},
}  # fmt: skip


def _read_box(movie: _Movie, btype: bytes, data: bytes) -> None:
    """Note what a metadata box says; a box too short to say it is ignored."""
    with contextlib.suppress(struct.error, IndexError):
        _BOX_READERS[btype](movie, data)


def _times(data: bytes) -> tuple[int, int, int]:
    """(creation time, timescale, duration) of an mvhd or mdhd box (version 0 or 1)."""
    if data[0] == 1:
        created, _modified, timescale, duration = struct.unpack(">QQIQ", data[4:32])
    else:
        created, _modified, timescale, duration = struct.unpack(">IIII", data[4:20])
    if duration in (0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF):  # "unknown"
        duration = 0
    return created, timescale, duration


def _mvhd(movie: _Movie, data: bytes) -> None:
    movie.created, movie.timescale, movie.duration = _times(data)


def _mdhd(movie: _Movie, data: bytes) -> None:
    if movie.track is not None:
        _created, movie.track.timescale, movie.track.duration = _times(data)


def _mehd(movie: _Movie, data: bytes) -> None:
    fmt = ">Q" if data[0] == 1 else ">I"
    (movie.fragment_duration,) = struct.unpack_from(fmt, data, 4)


def _trex(movie: _Movie, data: bytes) -> None:
    track_id, _description, duration = struct.unpack(">III", data[4:16])
    if len(movie.trex) < _MAX_TRACKS:
        movie.trex[track_id] = duration


def _tkhd(movie: _Movie, data: bytes) -> None:
    if movie.track is None:
        return
    wide = data[0] == 1
    (movie.track.track_id,) = struct.unpack_from(">I", data, 20 if wide else 12)
    a, b, _u, c, d = struct.unpack_from(">5i", data, 52 if wide else 40)
    movie.track.rotation = _rotation(a, b, c, d)


def _rotation(a: int, b: int, c: int, d: int) -> int | None:
    """Clockwise degrees of a track matrix that only rotates (None for scaling or a mirror).

    The matrix maps a frame's (x, y) to (a*x + c*y, b*x + d*y) on a screen whose y axis
    points down, so (a, b) = (0, 1) turns the frame a quarter clockwise.
    """
    if a == d and b == -c and (a == 0) != (b == 0) and abs(a + b) == 0x10000:
        return {(1, 0): 0, (0, 1): 90, (-1, 0): 180, (0, -1): 270}[(a >> 16, b >> 16)]
    return None


def _stsz(movie: _Movie, data: bytes) -> None:
    if movie.track is not None:
        (movie.track.samples,) = struct.unpack_from(">I", data, 8)


def _stsd(movie: _Movie, data: bytes) -> None:
    """Keep the first sample description (read once the track's handler is known)."""
    (size,) = struct.unpack_from(">I", data, 8)
    if movie.track is not None and 16 <= size <= len(data) - 8:
        movie.track.entry = data[8 : 8 + size]


_BOX_READERS = {
    b"mvhd": _mvhd, b"mdhd": _mdhd, b"mehd": _mehd, b"trex": _trex, b"tkhd": _tkhd,
    b"stsz": _stsz, b"stz2": _stsz, b"stsd": _stsd,
}  # fmt: skip


# --- fragments (moof) --------------------------------------------------------------------------
def _fragment(c: StreamCheck, movie: _Movie, end: int) -> Parser:
    """Walk a ``moof`` (or a ``traf`` in it) for its ``tfhd`` and ``trun`` boxes, or an
    ``mvex`` for its ``mehd`` and ``trex``.

    The check never looked inside fragments, so nothing read here may fail it: a child box
    that does not fit ends the walk, the rest of the box is passed over, and the fragment
    sums are marked unknown.
    """
    where = "inside its 'moof' box"
    while end - c.pos >= 8:
        size, btype = struct.unpack(">I4s", (yield from c.need(8, where)))
        if not 8 <= size <= end - c.pos + 8:
            movie.unreadable_fragment = True
            break
        payload = size - 8
        if btype == b"traf":
            movie.traf = (0, None)
            yield from _fragment(c, movie, c.pos + payload)
        elif btype == b"tfhd":
            data = yield from c.need(min(payload, 28), where)
            movie.traf = _tfhd(data)
            yield from c.skip(payload - len(data), where)
        elif btype == b"trun":
            yield from _trun(c, movie, payload, where)
        elif btype in (b"mehd", b"trex"):  # in an mvex
            data = yield from c.need(min(payload, 16), where)
            _read_box(movie, btype, data)
            yield from c.skip(payload - len(data), where)
        else:
            yield from c.skip(payload, where)
    yield from c.skip(end - c.pos, where)


def _tfhd(data: bytes) -> tuple[int, int | None]:
    """(track ID, default sample duration or None) of a track fragment header."""
    if len(data) < 8:
        return 0, None
    flags, track_id = struct.unpack(">II", data[:8])
    at = 8 + (8 if flags & 0x01 else 0) + (4 if flags & 0x02 else 0)
    if not flags & 0x08 or len(data) < at + 4:
        return track_id, None
    return track_id, struct.unpack_from(">I", data, at)[0]


def _trun(c: StreamCheck, movie: _Movie, payload: int, where: str) -> Parser:
    """Add a track run's samples and their durations to its track's sums."""
    head = yield from c.need(min(payload, 8), where)
    left = payload - len(head)
    track_id, default = movie.traf
    sums = movie.fragments.get(track_id)
    if sums is None and len(movie.fragments) < _MAX_TRACKS:
        sums = movie.fragments[track_id] = _Fragments()
    if len(head) < 8 or sums is None:
        yield from c.skip(left, where)
        return
    flags, count = struct.unpack(">II", head)
    optional = (4 if flags & 0x01 else 0) + (4 if flags & 0x04 else 0)
    width = 4 * bin(flags & 0xF00).count("1")
    if optional + count * width > left:
        sums.ticks = None
        yield from c.skip(left, where)
        return
    sums.samples += count
    yield from c.skip(optional, where)
    left -= optional
    ticks: int | None
    if flags & 0x100:
        ticks = yield from _trun_durations(c, count, width, where)
        left -= count * width
    else:
        default = default if default is not None else movie.trex.get(track_id)
        ticks = None if default is None else count * default
    sums.ticks = None if sums.ticks is None or ticks is None else sums.ticks + ticks
    yield from c.skip(left, where)


def _trun_durations(
    c: StreamCheck, count: int, width: int, where: str
) -> Generator[Request, Any, int]:
    """Sum of the sample durations of a trun's entries, read a batch at a time."""
    total = 0
    while count:
        batch = min(count, _TRUN_BATCH)
        data = yield from c.need(batch * width, where)
        total += sum(struct.unpack_from(">I", data, i * width)[0] for i in range(batch))
        count -= batch
    return total


# --- the metadata of a movie -------------------------------------------------------------------
def _movie_metadata(movie: _Movie, size: int) -> MediaMetadata:
    """The metadata the boxes read declared (None where a box was missing or unreadable)."""
    video = movie.video
    fragmented = bool(movie.fragments) or bool(movie.trex) or movie.unreadable_fragment
    duration = _movie_duration(movie, fragmented)
    if video is None:
        return MediaMetadata(duration=duration, bit_rate=bit_rate(size, duration))
    codec, width, height, aspect = _visual_entry(video.entry)
    frames, track_seconds = _video_frames(movie, video)
    display = _display(width, height, aspect, video.rotation)
    audio = movie.audio
    return MediaMetadata(
        width=width,
        height=height,
        rotation=video.rotation,
        display_width=display[0],
        display_height=display[1],
        pixel_aspect=aspect_text(*aspect) if aspect is not None else None,
        duration=duration,
        frames=frames,
        frame_rate=frames / track_seconds if frames and track_seconds else None,
        video_codec=codec,
        has_audio=audio is not None,
        audio_codec=None if audio is None else _audio_codec(audio.entry),
        bit_rate=bit_rate(size, duration),
        creation_time=since(EPOCH_1904, movie.created),
    )


def _movie_duration(movie: _Movie, fragmented: bool) -> float | None:
    """Seconds: ``mvhd``'s duration; for a fragmented file ``mehd``'s, else the longest
    track's samples (``mdhd`` plus every ``trun``)."""
    if not movie.timescale:
        return None
    if not fragmented:
        return movie.duration / movie.timescale or None
    if movie.fragment_duration:
        return movie.fragment_duration / movie.timescale
    longest = None
    for track in (movie.video, movie.audio):
        seconds = None if track is None else _track_seconds(movie, track)
        if seconds is not None and (longest is None or seconds > longest):
            longest = seconds
    return longest or None


def _track_seconds(movie: _Movie, track: _Track) -> float | None:
    """A track's duration: its ``mdhd`` duration plus its fragments' sample durations."""
    sums = movie.fragments.get(track.track_id, _Fragments())
    if not track.timescale or sums.ticks is None or movie.unreadable_fragment:
        return None
    return (track.duration + sums.ticks) / track.timescale


def _video_frames(movie: _Movie, video: _Track) -> tuple[int | None, float | None]:
    """(frames, seconds) of the video track: ``stsz`` samples plus fragment samples."""
    if movie.unreadable_fragment:
        return None, None
    sums = movie.fragments.get(video.track_id, _Fragments())
    frames = (video.samples or 0) + sums.samples
    if video.samples is None and not sums.samples:
        return None, None
    return frames, _track_seconds(movie, video)


def _display(
    width: int | None, height: int | None, aspect: tuple[int, int] | None, rotation: int | None
) -> tuple[int | None, int | None]:
    """The size shown: the width stretched by the pixel aspect ratio, then rotated."""
    if not width or not height:
        return None, None
    if aspect is not None and aspect[0] > 0 and aspect[1] > 0:
        width = max(1, round(width * aspect[0] / aspect[1]))
    if rotation in (90, 270):
        return height, width
    return width, height


#: Sample description types, as ffmpeg names their codecs.
_VIDEO_CODECS = {
    b"avc1": "h264", b"avc3": "h264", b"hvc1": "hevc", b"hev1": "hevc", b"dvh1": "hevc",
    b"dvhe": "hevc", b"av01": "av1", b"vp08": "vp8", b"vp09": "vp9", b"mp4v": "mpeg4",
    b"jpeg": "mjpeg", b"mjpa": "mjpeg", b"mjpb": "mjpeg", b"s263": "h263", b"h263": "h263",
    b"apch": "prores", b"apcn": "prores", b"apcs": "prores", b"apco": "prores",
    b"ap4h": "prores", b"ap4x": "prores",
}  # fmt: skip
_AUDIO_CODECS = {
    b"Opus": "opus", b"ac-3": "ac3", b"ec-3": "eac3", b"fLaC": "flac", b".mp3": "mp3",
    b"alac": "alac", b"samr": "amr_nb", b"sawb": "amr_wb", b"sowt": "pcm_s16le",
    b"twos": "pcm_s16be",
}  # fmt: skip
#: MPEG-4 object types (esds) of the codecs an ``mp4a`` or ``mp4v`` entry may hold.
_OBJECT_TYPES = {
    0x20: "mpeg4", 0x21: "h264", 0x40: "aac", 0x66: "aac", 0x67: "aac", 0x68: "aac",
    0x69: "mp3", 0x6B: "mp3", 0x6A: "mpeg1video", 0x60: "mpeg2video", 0x61: "mpeg2video",
    0x6C: "mjpeg", 0xA5: "ac3", 0xA6: "eac3", 0xAD: "opus", 0xDD: "vorbis",
}  # fmt: skip


def _visual_entry(
    entry: bytes,
) -> tuple[str | None, int | None, int | None, tuple[int, int] | None]:
    """(codec, coded width, height, pixel aspect) of a visual sample description."""
    if len(entry) < 86:
        return None, None, None, None
    fourcc = entry[4:8]
    width, height = struct.unpack_from(">HH", entry, 32)
    children = dict(_child_boxes(entry, 86))
    aspect = None
    if len(children.get(b"pasp", b"")) >= 8:
        aspect = struct.unpack_from(">II", children[b"pasp"])
    codec = _VIDEO_CODECS.get(fourcc)
    if fourcc == b"mp4v" and b"esds" in children:
        codec = _OBJECT_TYPES.get(_object_type(children[b"esds"]) or 0x20)
    return codec, width or None, height or None, aspect


def _audio_codec(entry: bytes) -> str | None:
    """The codec of an audio sample description (an ``mp4a``'s from its ``esds``)."""
    if len(entry) < 36:
        return None
    fourcc = entry[4:8]
    if fourcc != b"mp4a":
        return _AUDIO_CODECS.get(fourcc)
    version = struct.unpack_from(">H", entry, 16)[0]  # QuickTime sound description version
    children = dict(_child_boxes(entry, 36 + {1: 16, 2: 36}.get(version, 0)))
    if b"wave" in children:  # QuickTime keeps the esds inside a wave box
        children.update(_child_boxes(children[b"wave"], 0))
    return _OBJECT_TYPES.get(_object_type(children.get(b"esds", b"")) or 0)


def _child_boxes(data: bytes, at: int) -> list[tuple[bytes, bytes]]:
    """The (type, payload) of the boxes in ``data`` from ``at``, up to one that does not fit."""
    found: list[tuple[bytes, bytes]] = []
    while at + 8 <= len(data) and len(found) < 64:
        size, btype = struct.unpack_from(">I4s", data, at)
        if size < 8 or at + size > len(data):
            break
        found.append((btype, data[at + 8 : at + size]))
        at += size
    return found


def _object_type(esds: bytes) -> int | None:
    """The object type of an ``esds`` box's decoder configuration (None if unreadable)."""
    at = 4  # version and flags
    while at < len(esds):
        tag = esds[at]
        at, length = _descriptor_length(esds, at + 1)
        if tag == 0x03:  # ES descriptor: ES ID, flags and their optional fields, then children
            if at + 3 > len(esds):
                return None
            flags = esds[at + 2]
            at += 3 + (2 if flags & 0x80 else 0) + (2 if flags & 0x20 else 0)
            if flags & 0x40:
                at += 1 + (esds[at] if at < len(esds) else 0)
        elif tag == 0x04:  # decoder configuration: its first byte is the object type
            return esds[at] if at < len(esds) else None
        else:
            at += length
    return None


def _descriptor_length(data: bytes, at: int) -> tuple[int, int]:
    """(offset after it, value) of an MPEG-4 descriptor length (1-4 bytes of 7 bits)."""
    length = 0
    for _ in range(4):
        if at >= len(data):
            break
        byte = data[at]
        at += 1
        length = length << 7 | byte & 0x7F
        if not byte & 0x80:
            break
    return at, length
