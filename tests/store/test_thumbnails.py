"""Thumbnails: first frame, upright, within the pixel cap, kept as derived files, trimmed
least recently used first, removed with their content."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest
from PIL import Image

from mediastore import MediaStore, thumbnails
from mediastore.errors import ImageTooLargeError, UnsupportedMediaError
from mediastore.listing import MediaFilter
from mediastore.testing import animated_bytes, image_bytes, noisy_jpeg


def _jpeg_rotated() -> bytes:
    """A 60x20 JPEG whose EXIF says: turn it 90 degrees (orientation 6) to show it."""
    im = Image.new("RGB", (60, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    im.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def test_exif_orientation_is_applied() -> None:
    """The thumbnail is the image as shown: 20 wide, 60 tall."""
    thumb = thumbnails.render(io.BytesIO(_jpeg_rotated()), 128, max_pixels=10**6)
    assert thumb.size == (20, 60)


def test_first_frame_of_an_animation() -> None:
    """An animated GIF gives its first frame."""
    data = animated_bytes("GIF")
    with Image.open(io.BytesIO(data)) as im:
        first = im.convert("RGB").getpixel((0, 0))
    thumb = thumbnails.render(io.BytesIO(data), 128, max_pixels=10**6)
    assert thumb.mode == "RGB"
    assert thumb.getpixel((0, 0)) == pytest.approx(first, abs=40)


def test_large_jpeg_is_scaled_within_size() -> None:
    """A JPEG larger than the size fits in it (draft mode, then a resample)."""
    thumb = thumbnails.render(io.BytesIO(noisy_jpeg((1600, 1200))), 256, max_pixels=10**7)
    assert max(thumb.size) == 256


def test_over_the_pixel_cap_is_refused() -> None:
    """An image declaring more pixels than the cap is not decoded."""
    with pytest.raises(ImageTooLargeError):
        thumbnails.render(io.BytesIO(image_bytes("PNG", (100, 100))), 128, max_pixels=9999)


def test_only_the_fixed_sizes_and_images() -> None:
    with pytest.raises(UnsupportedMediaError):
        thumbnails.render(io.BytesIO(image_bytes()), 100, max_pixels=10**6)
    with pytest.raises(UnsupportedMediaError):
        thumbnails.render(io.BytesIO(b"%PDF-1.4 not an image"), 128, max_pixels=10**6)


def test_made_outside_media_and_removed_with_content(store: MediaStore) -> None:
    """Kept under derived/thumbs (not media/); rm deletes every size."""
    md5 = store.add_bytes(image_bytes("PNG", (300, 200))).md5
    for size in thumbnails.SIZES:
        with store.open(md5) as fh:
            path = thumbnails.make(store.root, md5, size, fh, max_pixels=10**6)
        assert path.is_relative_to(store.root / "derived" / "thumbs")
    assert thumbnails.cached(store.root, md5, 128) is not None
    store.remove(md5)
    assert all(thumbnails.cached(store.root, md5, s) is None for s in thumbnails.SIZES)


def test_gc_trims_least_recently_used_and_orphans(store: MediaStore) -> None:
    """gc drops thumbnails of removed content, then the oldest used until under the cap."""
    md5s = [store.add_bytes(noisy_jpeg((200, 150), seed=i)).md5 for i in range(3)]
    paths: list[Path] = []
    for i, md5 in enumerate(md5s):
        with store.open(md5) as fh:
            path = thumbnails.make(store.root, md5, 128, fh, max_pixels=10**6)
        used = time.time() - 1000 * (3 - i)  # the first is the least recently used
        os.utime(path, (used, used))
        paths.append(path)
    orphan = thumbnails.thumb_path(store.root, "f" * 32, 128)
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"x")
    keep = paths[1].stat().st_size + paths[2].stat().st_size
    store.gc(thumbnail_bytes=keep)
    assert not orphan.exists()
    assert [p.exists() for p in paths] == [False, True, True]


def test_list_media_after_cursor(store: MediaStore) -> None:
    """MediaFilter(after=md5) starts the md5-ordered listing after that md5."""
    md5s = sorted(store.add_bytes(image_bytes("PNG", (10 + i, 10))).md5 for i in range(4))
    after = [r.md5 for r in store.list_media(MediaFilter(after=md5s[1]))]
    assert after == md5s[2:]
    assert [r.md5 for r in store.list_media(MediaFilter(after=md5s[0], limit=1))] == md5s[1:2]
