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


def _seeded(n: int, seed: int) -> bytes:
    import random

    return random.Random(seed).randbytes(n)


def ftyp_box(major: bytes, compatible: tuple[bytes, ...] = ()) -> bytes:
    """An ISO-BMFF ``ftyp`` box."""
    body = major + b"\x00\x00\x02\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body


def mp4_bytes(payload: int = 4096, *, major: bytes = b"isom", seed: int = 0) -> bytes:
    """An MP4-shaped file: ``ftyp`` then an ``mdat`` box of random bytes."""
    data = _seeded(payload, seed)
    compat = (b"isom", b"iso2", b"avc1", b"mp41")
    return ftyp_box(major, compat) + struct.pack(">I", 8 + len(data)) + b"mdat" + data


def mov_bytes(payload: int = 4096, seed: int = 0) -> bytes:
    """A QuickTime file with a ``qt  `` ftyp brand."""
    data = _seeded(payload, seed)
    return ftyp_box(b"qt  ", (b"qt  ",)) + struct.pack(">I", 8 + len(data)) + b"mdat" + data


def _ebml_element(elem_id: bytes, payload: bytes) -> bytes:
    size = len(payload)
    assert size < 0x7F
    return elem_id + bytes([0x80 | size]) + payload


def ebml_bytes(doctype: bytes = b"webm", payload: int = 4096, seed: int = 0) -> bytes:
    """A WebM (or other Matroska ``doctype``) file: EBML header, then random bytes."""
    header = (
        _ebml_element(b"\x42\x86", b"\x01")  # EBMLVersion
        + _ebml_element(b"\x42\xf7", b"\x01")  # EBMLReadVersion
        + _ebml_element(b"\x42\x82", doctype)  # DocType
        + _ebml_element(b"\x42\x87", b"\x04")  # DocTypeVersion
    )
    return _ebml_element(b"\x1a\x45\xdf\xa3", header) + _seeded(payload, seed)


def pdf_bytes(text: str = "hello", prefix: bytes = b"") -> bytes:
    """A small valid PDF (made by Pillow), optionally with junk bytes before ``%PDF-``."""
    buf = io.BytesIO()
    Image.new("RGB", (20, 20), "white").save(buf, "PDF", title=text)
    return prefix + buf.getvalue()


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
    with store._catalog.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def assert_nothing_stored(store: MediaStore) -> None:
    """No media file, no temp file, no catalog row: what every refused ingest must leave."""
    assert files_under(store.root / "media") == []
    assert files_under(store.root / "tmp") == []
    assert catalog_rows(store) == 0
    assert catalog_rows(store, "media_urls") == 0
