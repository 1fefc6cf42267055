"""Rows as the catalog returns them, what it is given to record, and the keys of URLs."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    Row,
)

from ..records import MediaMetadata
from ..references import RefTake
from .models import media as _media

MEDIA_COLS = (
    _media.c.md5, _media.c.sha256, _media.c.media_type, _media.c.mime_type, _media.c.extension,
    _media.c.size, _media.c.width, _media.c.height, _media.c.created_at,
    _media.c.last_verified_at, _media.c.status,
)  # fmt: skip


#: The metadata's columns (its fields but width and height, which are the row's own).
METADATA_COLUMNS: tuple[str, ...] = (
    "rotation", "display_width", "display_height", "pixel_aspect", "orientation", "duration",
    "frames",
    "frame_rate", "animated", "video_codec", "has_audio", "audio_codec", "bit_rate",
    "creation_time", "capture_time", "pages", "pdf_version", "encrypted",
)  # fmt: skip
#: What a metadata read selects: the size, the metadata's columns, and when they were read.
METADATA_COLS = (
    _media.c.width,
    _media.c.height,
    *(_media.c[name] for name in METADATA_COLUMNS),
    _media.c.metadata_read_at,
)


#: The largest integer (or longest text) each column holds; a file may declare any value,
#: and one that does not fit is recorded as unknown rather than failing the commit.
_LIMITS = {
    "rotation": 32767, "orientation": 32767, "bit_rate": (1 << 63) - 1,
    "video_codec": 32, "audio_codec": 32, "pdf_version": 8, "pixel_aspect": 16,
}  # fmt: skip
_INT_MAX = (1 << 31) - 1


def _storable(value: Any, limit: int) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, datetime):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) and abs(value) < 1e300 else None
    if isinstance(value, int):
        return value if -(limit or _INT_MAX) <= value <= (limit or _INT_MAX) else None
    if isinstance(value, str):
        return value if len(value) <= (limit or 32) else None
    return None


def metadata_values(metadata: MediaMetadata | None, now: datetime) -> dict[str, Any]:
    """The metadata's columns for a row whose file was read at ``now`` (None: unknown)."""
    values: dict[str, Any] = dict.fromkeys(METADATA_COLUMNS)
    if metadata is not None:
        for name in METADATA_COLUMNS:
            values[name] = _storable(getattr(metadata, name), _LIMITS.get(name, 0))
        if metadata.capture_time is not None:
            values["capture_time"] = metadata.capture_time.isoformat()
        if metadata.creation_time is not None and metadata.creation_time.tzinfo is None:
            values["creation_time"] = metadata.creation_time.replace(tzinfo=UTC)
    values["metadata_read_at"] = now
    return values


def metadata_of(values: Sequence[Any]) -> MediaMetadata | None:
    """A MediaMetadata from a row's METADATA_COLS, or None if it was never read."""
    if values[-1] is None:
        return None
    fields = dict(zip(("width", "height", *METADATA_COLUMNS), values[:-1], strict=True))
    for name in ("animated", "has_audio", "encrypted"):  # SQLite returns 0/1
        if fields[name] is not None:
            fields[name] = bool(fields[name])
    if isinstance(fields["creation_time"], str | datetime):
        fields["creation_time"] = utc(fields["creation_time"])
    if fields["capture_time"] is not None:
        try:
            fields["capture_time"] = datetime.fromisoformat(fields["capture_time"])
        except ValueError:
            fields["capture_time"] = None
    return MediaMetadata(**fields)


class MediaRow(NamedTuple):
    """A media row as the catalog returns it (the store adds the path).

    A named tuple rather than a frozen dataclass: the lookup path makes one per call, and a
    tuple is built several times faster.
    """

    md5: str
    sha256: str
    media_type: str
    mime_type: str
    extension: str
    size: int
    width: int | None
    height: int | None
    created_at: datetime
    last_verified_at: datetime | None
    status: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NewMedia:
    """What ingest learned about new content, to be recorded."""

    md5: str
    sha256: str
    media_type: str
    mime_type: str
    extension: str
    size: int
    width: int | None
    height: int | None
    #: what the ingest pass read of the content (None: a walk that records none)
    metadata: MediaMetadata | None = None

    def row_values(self) -> dict[str, Any]:
        """The columns of the media row (MEDIA_COLS' own), without the metadata's."""
        return {
            "md5": self.md5,
            "sha256": self.sha256,
            "media_type": self.media_type,
            "mime_type": self.mime_type,
            "extension": self.extension,
            "size": self.size,
            "width": self.width,
            "height": self.height,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class UrlInfo:
    """A URL to record against content, with the HTTP validators of its download.

    A legacy import knows only the URL's MD5: ``url`` is None and ``url_md5`` is given.
    ``identity`` (a SHA-256), ``variant``, ``rank`` and ``expires_at`` are what a URL identity
    rule says of the URL (see :mod:`mediastore.identity`), None where none matched.
    """

    url: str | None
    url_md5: str = ""
    fetched_at: datetime | None = None
    etag: str | None = None
    last_modified: str | None = None
    identity: str | None = None
    variant: str | None = None
    rank: int | None = None
    expires_at: datetime | None = None

    def __post_init__(self) -> None:
        if not self.url_md5:
            if self.url is None:
                raise ValueError("UrlInfo needs a url or a url_md5")
            object.__setattr__(self, "url_md5", url_md5(self.url))

    @property
    def source(self) -> str:
        return "url" if self.url is not None else "legacy"

    @property
    def key(self) -> str:
        """The row's lookup key (see :func:`url_key`)."""
        return url_key(self.url) if self.url is not None else legacy_url_key(self.url_md5)


@dataclass(frozen=True, slots=True)
class Recording:
    """One entry of :meth:`Catalog.record_many`: the content, its URLs, and whether this
    writer placed its file (else it relies on the file its claim found in place)."""

    media: NewMedia
    urls: Sequence[UrlInfo]
    placed: bool
    #: found in the store, not added: never revives removed content (see Lifecycle.collect)
    adopt: bool = False
    #: references the add takes on the content, in the recording transaction
    refs: Sequence[RefTake] = ()


@dataclass(frozen=True, slots=True)
class MoveRow:
    """A store move: its id, and the canonical blob URLs it copies from and to."""

    id: int
    source: str
    target: str


def url_md5(url: str) -> str:
    """The MD5 of a URL's UTF-8 bytes: the legacy cache's file name for it."""
    return hashlib.md5(url.encode("utf-8"), usedforsecurity=False).hexdigest()


def url_key(url: str) -> str:
    """A URL's lookup key: the SHA-256 of its UTF-8 bytes (no two URLs can be made to share it)."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def legacy_url_key(key: str) -> str:
    """The lookup key of a legacy row that knows only the MD5 of its URL."""
    return f"md5:{key}"


def row_of(row: Row[Any, *tuple[Any, ...]]) -> MediaRow:
    return MediaRow(**row._asdict())


def utc(value: str | datetime) -> datetime:
    """A time as the driver returns it (SQLite: naive UTC text) as an aware UTC datetime."""
    if isinstance(value, str):
        try:  # one parse that yields an aware time is several times faster than two steps
            return datetime.fromisoformat(value + "+00:00")
        except ValueError:
            value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def raw_row(row: tuple[Any, ...]) -> MediaRow:
    """A MediaRow from a raw driver tuple (columns as in MEDIA_COLS)."""
    md5, sha256, media_type, mime, ext, size, width, height, created, verified, status = row
    return MediaRow(
        md5,
        sha256,
        media_type,
        mime,
        ext,
        size,
        width,
        height,
        utc(created),
        None if verified is None else utc(verified),
        status,
    )
