"""Builders of small, real media files for tests and benchmarks (Pillow and container headers)."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image
from sqlalchemy import text

if TYPE_CHECKING:
    from .store import MediaStore


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (32, 24), color: object = "red") -> bytes:
    """A real image made by Pillow (``fmt``: JPEG, PNG, GIF, WEBP)."""
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)  # type: ignore[arg-type]
    return buf.getvalue()


def noisy_jpeg(size: tuple[int, int] = (64, 48), seed: int = 0) -> bytes:
    """A JPEG with unique content per ``seed`` (random pixels), for distinct test files."""
    rnd = os.urandom(size[0] * size[1] * 3) if seed < 0 else _seeded(size[0] * size[1] * 3, seed)
    buf = io.BytesIO()
    Image.frombytes("RGB", size, rnd).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def photo(seed: int = 0, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A natural-looking picture, different per ``seed``: a colour gradient sky, overlapping
    shapes at several scales, a blur and a little grain (like a photo's, so perceptual hashes
    behave as on photos, unlike a flat or noise-only image)."""
    import random

    from PIL import ImageDraw, ImageFilter

    rng = random.Random(seed)
    top, bottom = (tuple(rng.randrange(256) for _ in range(3)) for _ in range(2))
    mask = Image.linear_gradient("L").resize(size)
    picture = Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), mask)
    draw = ImageDraw.Draw(picture)
    width, height = size
    for scale in (0.5, 0.25, 0.1):
        for _ in range(8):
            x, y = rng.randrange(width), rng.randrange(height)
            w, h = (int(d * scale * (0.3 + rng.random())) + 1 for d in size)
            colour = tuple(rng.randrange(256) for _ in range(3))
            shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
            shape((x - w // 2, y - h // 2, x + w // 2, y + h // 2), fill=colour)
    picture = picture.filter(ImageFilter.GaussianBlur(max(size) / 400))
    grain = Image.effect_noise(size, 12).convert("RGB")
    return Image.blend(picture, grain, 0.06)


def _seeded(n: int, seed: int) -> bytes:
    import random

    return random.Random(seed).randbytes(n)


def ftyp_box(major: bytes, compatible: tuple[bytes, ...] = ()) -> bytes:
    """An ISO-BMFF ``ftyp`` box."""
    body = major + b"\x00\x00\x02\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body


def box(btype: bytes, *children: bytes) -> bytes:
    """An ISO-BMFF box of type ``btype`` around its (already built) children or payload."""
    body = b"".join(children)
    return struct.pack(">I", 8 + len(body)) + btype + body


def _full_box(btype: bytes, body: bytes, version: int = 0) -> bytes:
    return box(btype, bytes([version, 0, 0, 0]), body)


def _sample_entry(handler: bytes, size: tuple[int, int]) -> bytes:
    if handler == b"vide":  # a visual sample entry (avc1), as ISO/IEC 14496-12 lays it out
        body = bytes(6) + struct.pack(">H", 1) + bytes(16) + struct.pack(">HH", *size)
        body += struct.pack(">II", 0x00480000, 0x00480000) + bytes(4) + struct.pack(">H", 1)
        body += bytes(32) + struct.pack(">Hh", 0x18, -1)
        return box(b"avc1", body)
    body = bytes(6) + struct.pack(">H", 1) + bytes(8) + struct.pack(">HH", 2, 16) + bytes(4)
    return box(b"mp4a", body + struct.pack(">I", 44100 << 16))


def _track(handler: bytes, track_id: int, sample_size: int, offset: int, *, qt: bool) -> bytes:
    """A ``trak`` with one sample of ``sample_size`` bytes at file offset ``offset``."""
    width, height = (320, 240) if handler == b"vide" else (0, 0)
    tkhd = _full_box(
        b"tkhd",
        bytes(8)
        + struct.pack(">II", track_id, 0)
        + struct.pack(">I", 1000)
        + bytes(16)
        + struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
        + struct.pack(">II", width << 16, height << 16),
    )
    mdhd = _full_box(b"mdhd", bytes(8) + struct.pack(">II", 1000, 1000) + b"\x55\xc4" + bytes(2))
    component = b"mhlr" if qt else bytes(4)
    hdlr = _full_box(b"hdlr", component + handler + bytes(12) + b"handler\x00")
    header = _full_box(b"vmhd", bytes(8)) if handler == b"vide" else _full_box(b"smhd", bytes(4))
    dinf = box(b"dinf", _full_box(b"dref", struct.pack(">I", 1) + _full_box(b"url ", b"")))
    stbl = box(
        b"stbl",
        _full_box(b"stsd", struct.pack(">I", 1) + _sample_entry(handler, (width, height))),
        _full_box(b"stts", struct.pack(">III", 1, 1, 1000)),
        _full_box(b"stsc", struct.pack(">IIII", 1, 1, 1, 1)),
        _full_box(b"stsz", struct.pack(">III", 0, 1, sample_size)),
        _full_box(b"stco", struct.pack(">II", 1, offset)),
    )
    minf = box(b"minf", header, dinf, stbl)
    return box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, minf))


def _movie_header(
    ftyp: bytes, payload: int, handlers: tuple[bytes, ...], *, qt: bool = False
) -> bytes:
    """ftyp, a moov whose tracks index the mdat that follows, and that mdat's header."""

    def moov(offset: int) -> bytes:
        mvhd = _full_box(
            b"mvhd",
            bytes(8)
            + struct.pack(">II", 1000, 1000)
            + struct.pack(">IH", 0x10000, 0x100)
            + bytes(10)
            + struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
            + bytes(24)
            + struct.pack(">I", len(handlers) + 1),
        )
        share = payload // max(1, len(handlers))
        tracks = [
            _track(h, i + 1, share, offset + i * share, qt=qt) for i, h in enumerate(handlers)
        ]
        return box(b"moov", mvhd, *tracks)

    data_offset = len(ftyp) + len(moov(0)) + 8
    return ftyp + moov(data_offset) + struct.pack(">I", 8 + payload) + b"mdat"


_MP4_COMPATIBLE = (b"isom", b"iso2", b"avc1", b"mp41")


def mp4_header(
    payload: int, *, major: bytes = b"isom", handlers: tuple[bytes, ...] = (b"vide",)
) -> bytes:
    """The start of an MP4 whose ``mdat`` holds ``payload`` bytes: append them to complete it.

    For streams too large to build in memory (benchmarks, constant-memory tests).
    """
    return _movie_header(ftyp_box(major, _MP4_COMPATIBLE), payload, handlers)


def mp4_bytes(
    payload: int = 4096,
    *,
    major: bytes = b"isom",
    seed: int = 0,
    handlers: tuple[bytes, ...] = (b"vide",),
) -> bytes:
    """A real MP4 structure: ``ftyp``, a ``moov`` with one track per handler (a video track by
    default) indexing the ``mdat``, then the ``mdat`` of ``payload`` random bytes."""
    return mp4_header(payload, major=major, handlers=handlers) + _seeded(payload, seed)


def mov_bytes(payload: int = 4096, seed: int = 0) -> bytes:
    """A QuickTime file: ``qt  `` ftyp, a ``moov`` with a video track, an ``mdat``."""
    ftyp = ftyp_box(b"qt  ", (b"qt  ",))
    return _movie_header(ftyp, payload, (b"vide",), qt=True) + _seeded(payload, seed)


def _vint_size(size: int) -> bytes:
    """An EBML size: one byte when it fits, else eight."""
    if size < 0x7F:
        return bytes([0x80 | size])
    return b"\x01" + size.to_bytes(7, "big")


def _ebml_element(elem_id: bytes, payload: bytes) -> bytes:
    return elem_id + _vint_size(len(payload)) + payload


_UNKNOWN_SIZE = b"\x01\xff\xff\xff\xff\xff\xff\xff"


def _webm_track(number: int, track_type: int) -> bytes:
    fields = (
        _ebml_element(b"\xd7", bytes([number]))  # TrackNumber
        + _ebml_element(b"\x73\xc5", bytes([number]))  # TrackUID
        + _ebml_element(b"\x83", bytes([track_type]))  # TrackType: 1 video, 2 audio
    )
    if track_type == 1:
        fields += _ebml_element(b"\x86", b"V_VP8") + _ebml_element(
            b"\xe0", _ebml_element(b"\xb0", b"\x01\x40") + _ebml_element(b"\xba", b"\xf0")
        )  # Video: PixelWidth 320, PixelHeight 240
    else:
        fields += _ebml_element(b"\x86", b"A_OPUS")
    return _ebml_element(b"\xae", fields)


def ebml_bytes(
    doctype: bytes = b"webm",
    payload: int = 4096,
    seed: int = 0,
    *,
    live: bool = False,
    tracks: tuple[int, ...] = (1,),
) -> bytes:
    """A WebM (or other Matroska ``doctype``) file with a real structure.

    EBML header, then a Segment holding Info, Tracks (one TrackEntry per type in ``tracks``:
    1 video, 2 audio) and a Cluster whose SimpleBlock carries ``payload`` random bytes.
    ``live`` writes the Segment and Cluster with unknown sizes, as live recordings do.
    """
    header = (
        _ebml_element(b"\x42\x86", b"\x01")  # EBMLVersion
        + _ebml_element(b"\x42\xf7", b"\x01")  # EBMLReadVersion
        + _ebml_element(b"\x42\x82", doctype)  # DocType
        + _ebml_element(b"\x42\x87", b"\x04")  # DocTypeVersion
    )
    info = _ebml_element(b"\x15\x49\xa9\x66", _ebml_element(b"\x2a\xd7\xb1", b"\x0f\x42\x40"))
    track_list = _ebml_element(
        b"\x16\x54\xae\x6b", b"".join(_webm_track(i + 1, t) for i, t in enumerate(tracks))
    )
    block = _ebml_element(b"\xa3", b"\x81\x00\x00\x80" + _seeded(payload, seed))
    cluster_body = _ebml_element(b"\xe7", b"\x00") + block
    if live:
        cluster = b"\x1f\x43\xb6\x75" + _UNKNOWN_SIZE + cluster_body
        segment = b"\x18\x53\x80\x67" + _UNKNOWN_SIZE + info + track_list + cluster
    else:
        cluster = _ebml_element(b"\x1f\x43\xb6\x75", cluster_body)
        segment = _ebml_element(b"\x18\x53\x80\x67", info + track_list + cluster)
    return _ebml_element(b"\x1a\x45\xdf\xa3", header) + segment


def webm_bytes(payload: int = 4096, seed: int = 0, *, live: bool = False) -> bytes:
    """A WebM file with a video track (see :func:`ebml_bytes`)."""
    return ebml_bytes(b"webm", payload, seed, live=live)


def pdf_bytes(text: str = "hello", prefix: bytes = b"") -> bytes:
    """A small valid PDF (made by Pillow), optionally with junk bytes before ``%PDF-``."""
    buf = io.BytesIO()
    Image.new("RGB", (20, 20), "white").save(buf, "PDF", title=text)
    return prefix + buf.getvalue()


def animated_bytes(
    fmt: str = "GIF", frames: int = 3, size: tuple[int, int] = (24, 16), **params: object
) -> bytes:
    """An animated image made by Pillow (``fmt``: GIF, PNG for APNG, WEBP)."""
    colors = ["red", "green", "blue", "white", "black"]
    images = [Image.new("RGB", size, colors[i % len(colors)]) for i in range(frames)]
    buf = io.BytesIO()
    options: dict[str, object] = {"duration": 40, "loop": 0, **params}
    images[0].save(buf, fmt, save_all=True, append_images=images[1:], **options)
    return buf.getvalue()


def gif_with_frame(width: int, height: int, base: bytes | None = None) -> bytes:
    """A GIF (``base``, or a small one) with one more frame declaring ``width`` x ``height``.

    The added frame has a one-pixel image stream; only its declared size is large, as in a
    decompression bomb hidden behind a harmless first frame.
    """
    data = base if base is not None else image_bytes("GIF", size=(8, 8))
    assert data.endswith(b"\x3b")
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x4c\x01\x00"
    return data[:-1] + frame + b"\x3b"


def png_undecodable(size: tuple[int, int] = (16, 16)) -> bytes:
    """A PNG whose chunks and zlib stream are well formed but hold too few pixel bytes: it
    passes ingest's structure walk, and decoding it fails (image file is truncated)."""
    png = image_bytes("PNG", size)
    out, pos = bytearray(png[:8]), 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IDAT":
            data = zlib.compress(b"\x00" * 10)
        crc = struct.pack(">I", zlib.crc32(kind + data))
        out += struct.pack(">I", len(data)) + kind + data + crc
        pos += 12 + length
    return bytes(out)


def png_bomb(width: int = 10_000, height: int = 10_000) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` pixels (68 bytes by default)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


def files_under(path: Path) -> list[Path]:
    """Every regular file below ``path`` (none if it does not exist)."""
    return sorted(p for p in path.rglob("*") if p.is_file())


def catalog_rows(store: MediaStore, table: str = "media") -> int:
    """How many rows ``table`` of the store's catalog holds."""
    with store.catalog.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def assert_nothing_stored(store: MediaStore) -> None:
    """No media file, no temp file, no catalog row: what every refused ingest must leave."""
    assert files_under(store.root / "media") == []
    assert files_under(store.root / "tmp") == []
    assert catalog_rows(store) == 0
    assert catalog_rows(store, "media_urls") == 0
