"""The legacy ``media_cache`` functions (mediastore.compat) keep working over the default store."""

from __future__ import annotations

from pathlib import Path

import pytest

import mediastore
from mediastore import InvalidInputError, InvalidMD5Error, MediaStore
from mediastore import testing as t


@pytest.fixture
def default(tmp_path: Path) -> MediaStore:
    store = MediaStore(tmp_path / "cache")
    mediastore.set_default_store(store)
    return store


def test_md5_helpers(tmp_path: Path) -> None:
    """calculate_md5 and calculate_md5_from_bytes agree with a known MD5."""
    assert mediastore.calculate_md5_from_bytes(b"test data") == "eb733a00c0c9d336e65691a37ab54293"
    f = tmp_path / "f"
    f.write_bytes(b"test data")
    assert mediastore.calculate_md5(f) == "eb733a00c0c9d336e65691a37ab54293"
    with pytest.raises(InvalidInputError):
        mediastore.calculate_md5(tmp_path / "missing")


@pytest.mark.parametrize(
    ("url", "mime", "expected"),
    [
        ("https://x.test/a.jpg", None, "image"),
        ("https://x.test/a.JPEG?x=1", None, "image"),
        ("https://x.test/v.mp4", None, "video"),
        ("https://x.test/v.mov", None, "video"),
        ("https://x.test/d.pdf", None, "document"),
        ("https://x.test/noext", "video/webm", "video"),
        ("https://x.test/a.jpg", "application/pdf", "document"),
        ("https://x.test/page.html", None, None),
    ],
)
def test_detect_media_type(url: str, mime: str | None, expected: str | None) -> None:
    """detect_media_type uses the MIME type first, then the URL's extension."""
    assert mediastore.detect_media_type(url, mime) == expected


def test_cache_path_find_verify_and_stats(default: MediaStore) -> None:
    """Paths, lookups, verification and stats in the shapes ``media_cache`` returned."""
    rec = default.add_bytes(t.image_bytes("PNG"))
    path = mediastore.get_media_cache_path("image", rec.md5, "png")
    assert path == rec.path
    assert mediastore.get_media_cache_path("images", rec.md5, ".png") == rec.path
    assert mediastore.find_cached_by_md5(rec.md5) == rec.path
    assert mediastore.find_cached_by_md5("0" * 32) is None
    assert mediastore.verify_cached_media(rec.path, rec.md5) is True
    assert mediastore.verify_cached_media(rec.path, "0" * 32) is False
    assert mediastore.verify_cached_media(rec.path.with_name("gone"), rec.md5) is False
    stats = mediastore.get_cache_stats()
    assert stats["total_files"] == 1 and stats["by_type"]["image"]["count"] == 1


def test_cache_path_bad_inputs(default: MediaStore) -> None:
    """Bad md5, extension or type mismatch are refused."""
    with pytest.raises(InvalidMD5Error):
        mediastore.get_media_cache_path("image", "../../etc/passwd", "jpg")
    with pytest.raises(InvalidInputError):
        mediastore.get_media_cache_path("image", "0" * 32, "exe")
    with pytest.raises(InvalidInputError):
        mediastore.get_media_cache_path("video", "0" * 32, "jpg")


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (512, "512 B"),
        (1536, "1.5 KB"),
        (5 * 1024**2, "5.0 MB"),
        (3 * 1024**4, "3.0 TB"),
    ],
)
def test_format_size(size: int, text: str) -> None:
    """format_size renders bytes in powers of 1024."""
    assert mediastore.format_size(size) == text


def test_get_image_dimensions(tmp_path: Path) -> None:
    """Dimensions of an image; None for non-images, broken files and missing paths."""
    img = tmp_path / "a.webp"
    img.write_bytes(t.image_bytes("WEBP", size=(12, 7)))
    assert mediastore.get_image_dimensions(img) == (12, 7)
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(t.pdf_bytes())
    assert mediastore.get_image_dimensions(pdf) is None
    assert mediastore.get_image_dimensions(tmp_path / "missing") is None
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(t.png_bomb())
    assert mediastore.get_image_dimensions(bomb) is None
