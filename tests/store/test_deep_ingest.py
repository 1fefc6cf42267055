"""verify_deep at ingest: a store that asks for deep checks never stores what `verify --deep`
would find broken (pixel data that does not decode), while a default store keeps accepting it
and its deep verify finds it."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import checker
import pytest

from mediastore import CorruptMediaError, MediaStore
from mediastore import testing as t


def _webp_without_pixels() -> bytes:
    """A 26-byte lossless WebP declaring 11330x446 and holding no image data."""
    bits = (11330 - 1) | ((446 - 1) << 14)
    payload = b"\x2f" + struct.pack("<I", bits)
    chunk = b"VP8L" + struct.pack("<I", len(payload)) + payload + b"\x00"
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def _png_with_short_pixel_data() -> bytes:
    """A PNG whose IDAT (with a right CRC) inflates to far fewer bytes than its rows need."""
    png = t.image_bytes("PNG", size=(64, 64), color="olive")
    at = png.index(b"IDAT") - 4
    (length,) = struct.unpack(">I", png[at : at + 4])
    data = zlib.compress(b"\x00" * 10)
    chunk = struct.pack(">I", len(data)) + b"IDAT" + data
    chunk += struct.pack(">I", zlib.crc32(b"IDAT" + data))
    return png[:at] + chunk + png[at + 12 + length :]


BROKEN = {
    "webp without pixels": _webp_without_pixels,
    "png short of rows": _png_with_short_pixel_data,
}


@pytest.mark.parametrize("make", BROKEN.values(), ids=list(BROKEN))
def test_deep_ingest_refuses_what_deep_verify_finds_broken(
    tmp_path: Path, make: Callable[[], bytes]
) -> None:
    """Default store: the file is stored, and verify(deep=True) finds it corrupt. Deep store:
    the same bytes raise CorruptMediaError and leave no row (plain sqlite3) and no file."""
    data = make()
    with MediaStore(tmp_path / "plain") as plain:
        rec = plain.add_bytes(data)
        assert plain.verify(deep=True).corrupt == [rec.md5]
    with MediaStore(tmp_path / "deep", verify_deep=True) as deep:
        with pytest.raises(CorruptMediaError, match="could not be decoded"):
            deep.add_bytes(data)
        path = tmp_path / "broken.bin"
        path.write_bytes(data)
        with pytest.raises(CorruptMediaError):
            deep.add_file(path)
    assert checker.media_rows(checker.catalog_path(tmp_path / "deep")) == {}
    assert checker.walk_files(tmp_path / "deep" / "media") == []
    assert checker.temp_files(tmp_path / "deep") == []


def test_deep_ingest_accepts_good_images_and_animations(tmp_path: Path) -> None:
    """Whole images of every kind, and animations (GIF, APNG, WebP), pass the deep ingest."""
    with MediaStore(tmp_path / "deep", verify_deep=True) as deep:
        for fmt in ("JPEG", "PNG", "GIF", "WEBP"):
            deep.add_bytes(t.image_bytes(fmt, size=(32, 24)))
        for fmt in ("GIF", "PNG", "WEBP"):
            deep.add_bytes(t.animated_bytes(fmt, frames=4))
        assert deep.stats().total_files == 7
        assert deep.verify(deep=True).all_ok
