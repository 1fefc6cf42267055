"""Image dimensions from headers, with the decompression-bomb guard."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediastore import CorruptMediaError, ImageTooLargeError
from mediastore import testing as t
from mediastore.probe import image_size
from mediastore.sniff import JPEG, PNG, WEBP, sniff


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP"])
def test_dimensions_of_each_format(tmp_path: Path, fmt: str) -> None:
    """Width and height come from the header of every supported format."""
    path = tmp_path / "img"
    path.write_bytes(t.image_bytes(fmt, size=(37, 21)))
    assert image_size(path, sniff(path.read_bytes()), max_pixels=10_000) == (37, 21)


def test_png_bomb_in_pillows_warning_zone_is_refused(tmp_path: Path) -> None:
    """A tiny PNG declaring 10000x10000 (Pillow would only warn) is an error."""
    path = tmp_path / "bomb.png"
    path.write_bytes(t.png_bomb())
    assert path.stat().st_size < 100
    with pytest.raises(ImageTooLargeError, match="10000x10000"):
        image_size(path, PNG, max_pixels=89_478_485)


def test_pixel_cap_is_configurable(tmp_path: Path) -> None:
    """A cap below the image's pixel count refuses it."""
    path = tmp_path / "a.png"
    path.write_bytes(t.image_bytes("PNG", size=(100, 100)))
    assert image_size(path, PNG, max_pixels=10_000) == (100, 100)
    with pytest.raises(ImageTooLargeError):
        image_size(path, PNG, max_pixels=9_999)


def test_far_beyond_pillow_limit_is_refused(tmp_path: Path) -> None:
    """Pillow's own DecompressionBombError becomes ImageTooLargeError."""
    path = tmp_path / "huge.png"
    path.write_bytes(t.png_bomb(60_000, 60_000))
    with pytest.raises(ImageTooLargeError):
        image_size(path, PNG, max_pixels=10**12)


def test_unparseable_image_is_corrupt(tmp_path: Path) -> None:
    """A file with a JPEG signature Pillow cannot parse is refused as corrupt."""
    path = tmp_path / "bad.jpg"
    path.write_bytes(b"\xff\xd8\xff" + bytes(50))
    with pytest.raises(CorruptMediaError):
        image_size(path, JPEG, max_pixels=10_000)


def test_only_the_sniffed_decoder_is_used(tmp_path: Path) -> None:
    """A PNG passed as WebP is not parsed by the PNG plugin."""
    path = tmp_path / "x"
    path.write_bytes(t.image_bytes("PNG"))
    with pytest.raises(CorruptMediaError):
        image_size(path, WEBP, max_pixels=10_000)
