"""Completeness checks of the image formats (JPEG, PNG and APNG, GIF, WebP), and their metadata.

The metadata: frames and their total duration (GIF Graphic Control delays, APNG ``fcTL``
delays, WebP ``ANMF`` durations), and the EXIF orientation and DateTimeOriginal of a JPEG's
APP1 ``Exif`` segment, a PNG's ``eXIf`` chunk or a WebP's ``EXIF`` chunk (each at most 64 KiB,
read as it passes and parsed here, never raising: unreadable EXIF gives None).

GIF delays follow the browsers (Chromium and Firefox): a frame delay of 0 or 1 centisecond,
or a frame without a Graphic Control Extension, plays for 10 centiseconds. APNG and WebP
delays are counted as declared.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Generator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

from ..errors import CorruptMediaError
from .stream import (
    ANY,
    CRC,
    NOTHING,
    REST,
    SCAN,
    SOF,
    SUBBLOCKS,
    ImageLayout,
    MediaMetadata,
    Parser,
    Request,
    StreamCheck,
    jpeg_segment_name,
)

# --- JPEG --------------------------------------------------------------------------------------

_WANT_HEADER = frozenset(SOF | {0xDA, 0xE1})  # before the frame header: SOF, SOS and APP1
_WANT_SCAN = frozenset({0xDA})  # afterwards: scans only


def parse_jpeg(c: StreamCheck) -> Parser:
    yield from c.need(2, "inside its SOI marker")
    sized = scanned = False
    exif = _NO_EXIF
    header_end = "before any image data (header could not be parsed)"
    while True:
        msg = "before its EOI marker" if scanned else header_end
        # once in the scans, a stream whose end is an EOI needs no scan (StreamCheck.feed)
        marker, length = yield (SCAN, 0, msg, _WANT_SCAN if sized else _WANT_HEADER, scanned)
        if marker == 0xD9:
            if not scanned:
                raise c.corrupt("could not be parsed: EOI marker before any image data")
            c.metadata = _image_metadata(c, exif)
            yield (REST, ANY)
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
        where = f"inside its {jpeg_segment_name(marker)} segment"
        if marker == 0xDA:
            if not sized:
                raise c.corrupt("could not be parsed: scan before its frame header (SOF)")
            scanned = True
            yield from c.skip(length - 2, where)
            continue
        if marker == 0xE1:
            exif = yield from _jpeg_app1(c, length - 2, where, exif)
            continue
        body = yield from c.need(length - 2, where)  # the first SOF: the frame header
        if len(body) < 6:
            raise c.corrupt("could not be parsed: frame header (SOF) too short")
        height, width = struct.unpack(">HH", body[1:5])
        if not width or not height:
            raise c.corrupt(f"could not be parsed: frame header declares {width}x{height}")
        c.set_image(width, height)
        sized = True


def _jpeg_app1(
    c: StreamCheck, size: int, where: str, exif: _Exif
) -> Generator[Request, Any, _Exif]:
    """An APP1 segment: the first one that holds EXIF is read (XMP and others are skipped)."""
    if exif is not _NO_EXIF or size < 6:
        yield from c.skip(size, where)
        return exif
    head = yield from c.need(6, where)
    if head != b"Exif\x00\x00":
        yield from c.skip(size - 6, where)
        return exif
    return read_exif((yield from c.need(size - 6, where)))


# --- EXIF --------------------------------------------------------------------------------------
class _Exif(NamedTuple):
    """What the EXIF of an image says (None where it does not say it, or is unreadable)."""

    orientation: int | None
    capture_time: datetime | None


_NO_EXIF = _Exif(None, None)
_ORIENTATION, _EXIF_IFD = 0x0112, 0x8769
_DATE_TIME_ORIGINAL, _OFFSET_TIME_ORIGINAL, _SUBSEC_TIME_ORIGINAL = 0x9003, 0x9011, 0x9291
_MAX_EXIF = 1 << 16  # an eXIf or EXIF chunk larger than this is not read
_MAX_IFD_ENTRIES = 1024
_TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}


def read_exif(tiff: bytes) -> _Exif:
    """Orientation and DateTimeOriginal of an EXIF TIFF structure.

    Only IFD0 and the EXIF IFD it points to are read, so no chain of offsets can loop; an
    offset out of range, a wrong type or any other garbage gives None for what it held.
    """
    try:
        return _read_tiff(tiff[6:] if tiff.startswith(b"Exif\x00\x00") else tiff)
    except (struct.error, IndexError, ValueError, OverflowError):
        return _NO_EXIF


def _read_tiff(tiff: bytes) -> _Exif:
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None:
        return _NO_EXIF
    magic, first = struct.unpack_from(order + "HI", tiff, 2)
    if magic != 42:
        return _NO_EXIF
    ifd0 = _ifd(tiff, order, first)
    orientation = ifd0.get(_ORIENTATION)
    if not isinstance(orientation, int) or not 1 <= orientation <= 8:
        orientation = None
    pointer = ifd0.get(_EXIF_IFD)
    exif_ifd = _ifd(tiff, order, pointer) if isinstance(pointer, int) and pointer else {}
    return _Exif(orientation, _capture_time(exif_ifd))


def _ifd(tiff: bytes, order: str, offset: int) -> dict[int, int | bytes]:
    """The entries of the IFD at ``offset``: one number, or the bytes of a string."""
    (count,) = struct.unpack_from(order + "H", tiff, offset)
    found: dict[int, int | bytes] = {}
    for i in range(min(count, _MAX_IFD_ENTRIES)):
        at = offset + 2 + 12 * i
        tag, kind, n = struct.unpack_from(order + "HHI", tiff, at)
        size = _TIFF_TYPE_SIZES.get(kind, 0) * n
        if kind in (3, 4) and n == 1:
            found[tag] = struct.unpack_from(order + ("H" if kind == 3 else "I"), tiff, at + 8)[0]
        elif kind == 2 and 0 < size <= 4:
            found[tag] = tiff[at + 8 : at + 8 + size]
        elif kind == 2 and size:
            (where,) = struct.unpack_from(order + "I", tiff, at + 8)
            if where + size <= len(tiff):
                found[tag] = tiff[where : where + size]
    return found


def _capture_time(exif_ifd: dict[int, int | bytes]) -> datetime | None:
    """DateTimeOriginal, with SubSecTimeOriginal and OffsetTimeOriginal when present."""
    stamp = exif_ifd.get(_DATE_TIME_ORIGINAL)
    if not isinstance(stamp, bytes):
        return None
    try:
        taken = datetime.strptime(stamp[:19].decode("ascii"), "%Y:%m:%d %H:%M:%S")
    except (UnicodeDecodeError, ValueError):
        return None
    subsec = exif_ifd.get(_SUBSEC_TIME_ORIGINAL)
    if isinstance(subsec, bytes):
        digits = subsec.rstrip(b"\x00 ")[:6]
        if digits.isdigit():
            taken = taken.replace(microsecond=int(digits.ljust(6, b"0")))
    offset = exif_ifd.get(_OFFSET_TIME_ORIGINAL)
    zone = _utc_offset(offset) if isinstance(offset, bytes) else None
    return taken if zone is None else taken.replace(tzinfo=zone)


def _utc_offset(text: bytes) -> timezone | None:
    """The zone of an EXIF offset such as ``+09:00`` (None if it is not one)."""
    text = text.rstrip(b"\x00 ")
    if len(text) != 6 or text[:1] not in (b"+", b"-") or text[3:4] != b":":
        return None
    if not (text[1:3].isdigit() and text[4:6].isdigit()):
        return None
    minutes = int(text[1:3]) * 60 + int(text[4:6])
    if minutes >= 24 * 60:
        return None
    return timezone(timedelta(minutes=-minutes if text[:1] == b"-" else minutes))


def _image_metadata(
    c: StreamCheck, exif: _Exif = _NO_EXIF, duration_ms: float | None = None
) -> MediaMetadata:
    """An image's metadata: its layout, EXIF and, when animated, its frames' total duration."""
    layout = c.layout
    assert layout is not None  # set by the header every parser requires
    width, height = layout.width, layout.height
    animated = layout.frames > 1
    turned = exif.orientation is not None and exif.orientation >= 5  # 5-8 swap the sides
    return MediaMetadata(
        width=width,
        height=height,
        display_width=height if turned else width,
        display_height=width if turned else height,
        orientation=exif.orientation,
        duration=duration_ms / 1000 if animated and duration_ms is not None else None,
        frames=layout.frames,
        animated=animated,
        capture_time=exif.capture_time,
    )


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
    duration_ms: float = 0.0  # the frames' delays


def parse_png(c: StreamCheck) -> Parser:
    yield from c.need(8, "inside its signature")
    apng: _Apng | None = None
    idat = False
    first = True
    exif = _NO_EXIF
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
        elif ctype == b"eXIf" and length <= _MAX_EXIF:
            data = yield from c.need(length, where)
            crc = zlib.crc32(ctype + data)
        elif ctype == b"IDAT" and not idat and length >= 2:
            data = yield from c.need(2, where)
            _png_zlib_header(c, data)
            crc = yield (CRC, length - 2, where, zlib.crc32(ctype + data))
        elif ctype == b"fdAT" and apng is not None and length >= 4:
            data = yield from c.need(4, where)
            crc = yield (CRC, length - 4, where, zlib.crc32(ctype + data))
        elif length:
            data = b""
            crc = yield (CRC, length, where, zlib.crc32(ctype))
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
        if ctype == b"eXIf" and exif is _NO_EXIF:
            exif = read_exif(data)
        apng = _png_animation(c, ctype, data, apng, idat=idat)
    if not idat:
        raise c.corrupt("has no image data (IDAT)")
    if apng is not None:
        if apng.data_pending:
            raise CorruptMediaError("APNG frame control (fcTL) without frame data")
        if apng.fctl != apng.frames:
            raise CorruptMediaError(f"APNG declares {apng.frames} frames but has {apng.fctl}")
    c.metadata = _image_metadata(c, exif, None if apng is None else apng.duration_ms)
    yield (REST, ANY)


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
    _seq, width, height, x, y, delay_num, delay_den, dispose, blend = struct.unpack(
        ">IIIIIHHBB", data
    )
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
    apng.duration_ms += delay_num * 1000 / (delay_den or 100)  # a denominator of 0 means 100
    if apng.fctl > apng.frames:
        raise CorruptMediaError(f"APNG has more frames than the {apng.frames} it declares")
    apng.data_pending = True
    c.layout = ImageLayout(layout.width, layout.height, layout.canvas_pixels, apng.fctl)


# --- GIF ---------------------------------------------------------------------------------------
def parse_gif(c: StreamCheck) -> Parser:
    header = yield from c.need(13, "inside its header")
    screen_w, screen_h, flags = struct.unpack("<HHB", header[6:11])
    if flags & 0x80:
        yield from c.skip(3 << ((flags & 7) + 1), "inside its colour table")
    canvas_w, canvas_h = screen_w, screen_h
    frames = 0
    delay = total_cs = 0  # the next frame's delay, and the frames' total (centiseconds)
    where = "before its trailer"
    while True:
        intro = (yield from c.need(1, where))[0]
        if intro == 0x3B:
            break
        if intro == 0x21:
            label = (yield from c.need(1, where))[0]
            if label == 0xF9:  # Graphic Control: the next frame's delay, in its first block
                delay = yield from _gif_delay(c, where)
            else:
                yield (SUBBLOCKS, 0, f"inside an extension block, {where}")
            continue
        if intro != 0x2C:
            raise c.corrupt(f"could not be parsed: byte 0x{intro:02X} at {c.pos - 1}, not a block")
        x, y, w, h, iflags = struct.unpack("<HHHHB", (yield from c.need(9, where)))
        canvas_w, canvas_h = max(canvas_w, x + w), max(canvas_h, y + h)
        c.check_pixels(canvas_w, canvas_h)
        if not frames:
            c.set_image(canvas_w, canvas_h)
        frames += 1
        total_cs += delay if delay > 1 else 10  # as browsers play 0 and 1 (see the module doc)
        delay = 0
        if iflags & 0x80:
            yield from c.skip(3 << ((iflags & 7) + 1), f"inside a colour table, {where}")
        code_size = (yield from c.need(1, where))[0]
        if not 1 <= code_size <= 11:
            raise c.corrupt(f"could not be parsed: frame {frames} has LZW code size {code_size}")
        yield (SUBBLOCKS, 0, f"inside frame {frames}'s image data, {where}")
    if not frames:
        raise c.corrupt("has no image before its trailer")
    assert c.layout is not None
    first = c.layout
    c.layout = ImageLayout(first.width, first.height, canvas_w * canvas_h, frames)
    c.metadata = _image_metadata(c, duration_ms=total_cs * 10)
    yield (REST, ANY)


def _gif_delay(c: StreamCheck, where: str) -> Generator[Request, Any, int]:
    """The delay (centiseconds) of a Graphic Control Extension whose label was read; its
    sub-blocks are passed over as any extension's (0 when the block is too short to say)."""
    inside = f"inside an extension block, {where}"
    size = (yield from c.need(1, inside))[0]
    if not size:  # the terminator: an empty extension
        return 0
    block = yield from c.need(size, inside)
    yield (SUBBLOCKS, 0, inside)
    return int.from_bytes(block[1:3], "little") if size >= 3 else 0


# --- WebP --------------------------------------------------------------------------------------
def parse_webp(c: StreamCheck) -> Parser:
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
    yield (REST, NOTHING)


@dataclass(slots=True)
class _WebpState:
    canvas: tuple[int, int] | None = None  # VP8X
    animated: bool = False
    image: tuple[int, int] | None = None  # a still VP8/VP8L bitstream
    frames: int = 0
    duration_ms: int = 0  # the ANMF frames' durations
    exif: _Exif = _NO_EXIF


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
    elif fourcc == b"EXIF" and size <= _MAX_EXIF and state.exif is _NO_EXIF:
        state.exif = read_exif((yield from c.need(size, where)))
        yield from c.skip(padded - size, where)
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
    c: StreamCheck,
    state: _WebpState,
    canvas: tuple[int, int],
    size: int,
    padded: int,
    where: str,
) -> Parser:
    data = yield from c.need(16, where)
    x = int.from_bytes(data[0:3], "little") * 2
    y = int.from_bytes(data[3:6], "little") * 2
    width = int.from_bytes(data[6:9], "little") + 1
    height = int.from_bytes(data[9:12], "little") + 1
    state.frames += 1
    state.duration_ms += int.from_bytes(data[12:15], "little")
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
    c.metadata = _image_metadata(c, state.exif, state.duration_ms if state.animated else None)
