"""The legacy ``media_cache`` API, kept for existing callers, over a default store.

A script written for ``media_cache`` switches with one import line::

    from mediastore.compat import *   # was: from media_cache import *

The default store is ``MediaStore()``: ``MEDIASTORE_ROOT``, else ``cache`` relative to the
working directory (as the old cache was), with the settings the command reads; it is created
on first use, and :func:`set_default_store` replaces it.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .config import DEFAULT_MAX_IMAGE_PIXELS
from .errors import InvalidInputError, MediaStoreError
from .formats.detect import HEAD_SIZE, kind_for_hint, sniff
from .formats.probe import image_size
from .hashing import md5_of_bytes, md5_of_file, normalize_md5
from .records import MEDIA_TYPES
from .store import MediaStore
from .units import format_size

__all__ = [
    "calculate_md5",
    "calculate_md5_from_bytes",
    "default_store",
    "detect_media_type",
    "download_and_cache_media",
    "download_multiple_media",
    "find_cached_by_md5",
    "find_cached_by_url",
    "format_size",
    "get_cache_stats",
    "get_image_dimensions",
    "get_media_cache_path",
    "set_default_store",
    "verify_cached_media",
]

log = logging.getLogger(__name__)

_default: MediaStore | None = None
_default_lock = threading.Lock()


def default_store() -> MediaStore:
    """The store the legacy functions use (``MediaStore()``: ``MEDIASTORE_ROOT`` or ``cache``,
    with the command's settings, unless set)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = MediaStore()
        return _default


def set_default_store(store: MediaStore | None) -> None:
    """Make ``store`` the one the legacy functions use (None: back to the default)."""
    global _default
    with _default_lock:
        _default = store


def download_and_cache_media(
    url: str, media_type: str | None = None, timeout: float = 30
) -> dict[str, Any]:
    """Download ``url`` into the default store (or return it from there) as the legacy dict.

    ``media_type`` is accepted for compatibility and ignored: the content decides the type.

    Raises:
        FetchError: the download failed (a subclass says why), nothing stored.
    """
    if media_type is not None:
        log.debug("media_type=%r ignored for %s: the content decides", media_type, url)
    return default_store().fetch(url, timeout=timeout, deadline=timeout).to_dict()


def download_multiple_media(
    urls: list[str], max_workers: int = 5, timeout: float = 30
) -> list[dict[str, Any]]:
    """Download many URLs in parallel; the legacy dicts of the ones that succeeded, in order.

    Failures are logged (``mediastore`` logger) and left out, as ``media_cache`` did; use
    :meth:`MediaStore.fetch_many` to get them.
    """
    results = default_store().fetch_many(
        urls, max_workers=max_workers, timeout=timeout, deadline=timeout
    )
    out: list[dict[str, Any]] = []
    for result in results:
        if result.record is None:
            log.warning("download failed: %s", result.error)
        else:
            out.append({**result.record.to_dict(), "url": result.url})
    return out


def find_cached_by_url(url: str) -> dict[str, Any] | None:
    """The legacy dict for a URL already in the store (no download), else None."""
    rec = default_store().get_by_url(url)
    return rec.to_dict() if rec else None


def calculate_md5(file_path: str | Path) -> str:
    """MD5 hex digest of a file's content."""
    path = Path(file_path)
    if not path.is_file():
        raise InvalidInputError(f"not a regular file: {path}")
    return md5_of_file(path)


def calculate_md5_from_bytes(data: bytes) -> str:
    """MD5 hex digest of ``data``."""
    return md5_of_bytes(data)


def detect_media_type(url: str | None = None, mime_type: str | None = None) -> str | None:
    """``'image'``, ``'video'`` or ``'document'`` from a MIME type, else the URL's extension.

    This is ``media_cache``'s hint-based guess; stored content is always typed by its bytes.
    Returns None when neither gives a supported type.
    """
    suffix = Path(urlsplit(url).path).suffix if url else None
    kind = kind_for_hint(mime_type=mime_type) or kind_for_hint(extension=suffix)
    return kind.media_type if kind else None


def get_media_cache_path(media_type: str, md5_sum: str, extension: str) -> Path:
    """Where content of that type, md5 and extension lives in the default store."""
    md5 = normalize_md5(md5_sum)
    kind = kind_for_hint(extension=extension)
    if kind is None:
        raise InvalidInputError(f"unsupported extension: {extension!r}")
    media_type = media_type.rstrip("s") if media_type else media_type
    if media_type not in MEDIA_TYPES or media_type != kind.media_type:
        raise InvalidInputError(f"media type {media_type!r} does not fit extension {extension!r}")
    return default_store().root / "media" / kind.directory / f"{md5}.{kind.extension}"


def verify_cached_media(local_path: str | Path, expected_md5: str) -> bool:
    """True if the file exists and its content hashes to ``expected_md5``."""
    expected = normalize_md5(expected_md5)
    try:
        return md5_of_file(local_path) == expected
    except OSError:
        return False


def find_cached_by_md5(md5_sum: str) -> Path | None:
    """Path of the stored file with that content md5, if present (and on the local disk)."""
    rec = default_store().get_by_md5(md5_sum)
    if rec is None or rec.path is None or not rec.path.is_file():
        return None
    return rec.path


def get_cache_stats() -> dict[str, Any]:
    """The legacy stats dict: ``total_files``, ``total_size``, ``by_type`` (count, size), ..."""
    return default_store().stats().to_dict()


def get_image_dimensions(file_path: str | Path) -> tuple[int, int] | None:
    """(width, height) of a JPEG/PNG/GIF/WebP file, or None if it is not a readable image."""
    try:
        with open(file_path, "rb") as fh:
            kind = sniff(fh.read(HEAD_SIZE))
        if kind.media_type != "image":
            return None
        return image_size(file_path, kind, max_pixels=DEFAULT_MAX_IMAGE_PIXELS)
    except (OSError, MediaStoreError):
        return None
