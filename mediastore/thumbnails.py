"""Thumbnails of stored images: derived files of the store, never content.

A thumbnail is a JPEG no larger than one of :data:`SIZES` on its longer side, made from the
first frame of its image with the EXIF orientation applied. It lives at
``<root>/derived/thumbs/<md5[:2]>/<md5>-<size>.jpg``, outside ``media/``: the blob store,
``verify`` and ``gc``'s walk of content never see it, and it can always be made again.
Its modification time is its last use, so :func:`trim` removes the least recently used
first; :func:`remove` drops every size of one md5 when its content is removed.

A JPEG source is decoded in draft mode (the DCT scales it down by up to 8 while decoding),
so a 12 MP photo becomes a thumbnail without ever holding its full pixels. Every source is
refused above the store's pixel cap before anything is decoded.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import CorruptMediaError, ImageTooLargeError, UnsupportedMediaError

log = logging.getLogger(__name__)

#: The only sizes made (the longer side in pixels): a fixed list, so no caller can make the
#: store render and keep an unbounded number of files.
SIZES = (128, 256, 512)
QUALITY = 80
#: A use refreshes the modification time at most this often (seconds): a cached thumbnail
#: served many times a second costs no write.
TOUCH_EVERY = 3600.0
DEFAULT_MAX_BYTES = 1 << 30


def thumbs_dir(root: Path) -> Path:
    """The directory of every thumbnail of the store at ``root``."""
    return root / "derived" / "thumbs"


def thumb_path(root: Path, md5: str, size: int) -> Path:
    """Where the thumbnail of ``md5`` at ``size`` is (or would be) kept.

    ``md5`` must already be validated (32 lower-case hex digits): it becomes a file name.
    """
    return thumbs_dir(root) / md5[:2] / f"{md5}-{size}.jpg"


def cached(root: Path, md5: str, size: int) -> Path | None:
    """The kept thumbnail, its use recorded (for :func:`trim`), or None if none is kept."""
    path = thumb_path(root, md5, size)
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    now = time.time()
    if now - st.st_mtime > TOUCH_EVERY:
        with contextlib.suppress(OSError):  # a read-only store still serves what it has
            os.utime(path, (now, now))
    return path


def render(source: BinaryIO, size: int, *, max_pixels: int) -> Image.Image:
    """The thumbnail image of ``source``: first frame, upright, at most ``size`` pixels.

    Raises:
        ImageTooLargeError: the image declares more than ``max_pixels`` pixels.
        UnsupportedMediaError: not an image Pillow reads.
        CorruptMediaError: the image cannot be decoded.
    """
    if size not in SIZES:
        raise UnsupportedMediaError(f"no thumbnail size {size} (one of {SIZES})")
    try:
        im = Image.open(source)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedMediaError("not an image") from exc
    with im:
        width, height = im.size
        if width * height > max_pixels:
            raise ImageTooLargeError(
                f"image of {width}x{height} pixels is over the cap of {max_pixels}"
            )
        try:
            # JPEG only: decode at 1/2, 1/4 or 1/8 scale, still at least ``size`` pixels
            im.draft("RGB", (size, size))
            im.seek(0)
            upright = ImageOps.exif_transpose(im) or im
            upright.thumbnail((size, size), Image.Resampling.LANCZOS)
            return _flatten(upright)
        except (OSError, SyntaxError, ValueError) as exc:
            raise CorruptMediaError(f"cannot decode the image: {exc}") from exc


def _flatten(im: Image.Image) -> Image.Image:
    """An RGB image, transparency laid on white (JPEG has no alpha)."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        out = Image.new("RGB", rgba.size, (255, 255, 255))
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    return im.convert("RGB")


def make(root: Path, md5: str, size: int, source: BinaryIO, *, max_pixels: int) -> Path:
    """Render and keep the thumbnail of ``md5`` at ``size``; return its path.

    Written to a temporary name beside it and renamed: a reader sees the whole file or
    none, and two makers of the same thumbnail both succeed.

    Raises:
        ImageTooLargeError, UnsupportedMediaError, CorruptMediaError: as :func:`render`.
    """
    image = render(source, size, max_pixels=max_pixels)
    dest = thumb_path(root, md5, size)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")
    try:
        image.save(tmp, "JPEG", quality=QUALITY)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def encode(image: Image.Image) -> bytes:
    """A thumbnail image as JPEG bytes."""
    out = io.BytesIO()
    image.save(out, "JPEG", quality=QUALITY)
    return out.getvalue()


def remove(root: Path, md5: str) -> int:
    """Delete every kept size of ``md5`` (its content is gone); return how many."""
    removed = 0
    for size in SIZES:
        try:
            thumb_path(root, md5, size).unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def trim(
    root: Path, max_bytes: int, *, live: Callable[[str], bool] | None = None
) -> tuple[int, int]:
    """Delete the thumbnails of content that is gone (``live(md5)`` false), then the least
    recently used until their total is at most ``max_bytes``.

    Returns:
        (files deleted, bytes freed).
    """
    entries: list[tuple[float, int, Path]] = []
    total = 0
    base = thumbs_dir(root)
    if not base.is_dir():
        return 0, 0
    for shard in base.iterdir():
        if not shard.is_dir():
            continue
        for path in shard.glob("*.jpg"):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            orphan = live is not None and not live(path.name.partition("-")[0])
            # an orphan sorts first: its time is -1
            entries.append((-1.0 if orphan else st.st_mtime, st.st_size, path))
            total += st.st_size
    entries.sort()
    deleted = freed = 0
    for used, nbytes, path in entries:
        if total <= max_bytes and used >= 0:
            break
        path.unlink(missing_ok=True)
        total -= nbytes
        deleted += 1
        freed += nbytes
    if deleted:
        log.info("removed %d thumbnails (%d bytes) over the cap of %d", deleted, freed, max_bytes)
    return deleted, freed
