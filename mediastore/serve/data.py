"""What the JSON API and the gallery both read: the store's key in the app, the listing
filter of a query string, pages with a cursor, a file's details."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ..errors import InvalidInputError, MediaStoreError
from ..listing import MediaFilter
from ..records import MediaRecord, SimilarImage
from ..store import MediaStore

log = logging.getLogger(__name__)

STORE: web.AppKey[MediaStore] = web.AppKey("store", MediaStore)
PAGE_DEFAULT = 100
PAGE_MAX = 1000
MD5 = re.compile(r"[0-9a-f]{32}")


def filter_of(query: Any) -> MediaFilter:
    """The :class:`MediaFilter` of a query string (the ``ls`` filters, an ``after`` cursor).

    Raises:
        InvalidInputError: a value that is not what its name asks for.
    """
    get = query.get

    def number(name: str) -> int | None:
        value = get(name)
        if value in (None, ""):
            return None
        if not str(value).isdigit():
            raise InvalidInputError(f"{name} must be a whole number, got {value!r}")
        return int(value)

    def moment(name: str) -> datetime | None:
        value = get(name)
        try:
            when = datetime.fromisoformat(value) if value else None
        except ValueError:
            raise InvalidInputError(f"{name} must be a date (YYYY-MM-DD), got {value!r}") from None
        if when is not None and when.tzinfo is None:  # a day or time without zone: UTC
            when = when.replace(tzinfo=UTC)
        return when

    limit = number("limit")
    animated = get("animated")
    return MediaFilter(
        media_type=get("type") or None,
        status=get("status") or None,
        min_size=number("min_size"),
        max_size=number("max_size"),
        since=moment("since"),
        before=moment("before"),
        url_contains=get("url") or None,
        orientation=get("orientation") or None,
        animated=None if not animated else animated in ("1", "true", "yes"),
        ref=get("ref") or None,
        unreferenced=get("unreferenced") in ("1", "true", "yes"),
        after=get("after") or None,
        limit=min(PAGE_MAX, PAGE_DEFAULT if limit is None else limit) + 1,
    )


def page_of(store: MediaStore, where: MediaFilter) -> tuple[list[MediaRecord], str | None]:
    """One page of the listing and the cursor of the next (None: this was the last)."""
    assert where.limit is not None
    found = list(store.list_media(where))
    want = where.limit - 1
    if len(found) > want:
        return found[:want], found[want - 1].md5 if want else None
    return found, None


def public(record: MediaRecord) -> dict[str, Any]:
    """A record as the API shows it: no local path, where to get it instead."""
    data = record.to_dict()
    for key in ("path", "local_path", "md5_sum", "file_size"):
        data.pop(key, None)
    data["href"] = f"/media/{record.md5}.{record.extension}"
    return data


def details(store: MediaStore, md5: str) -> dict[str, Any] | None:
    """Everything known of one file: record, metadata, URLs, references, variants."""
    record = store.describe(md5)
    if record is None:
        return None
    urls = store.urls_for(md5)
    variants = store.variants(md5) if urls else []
    near = _near_duplicates(store, md5) if record.media_type == "image" else []
    return {
        **public(record),
        "urls": urls,
        "references": [r.to_dict() for r in store.refs(md5)],
        "variants": [
            {"variant": v.variant, "rank": v.rank, "md5": v.record.md5, "url": v.record.url}
            for v in variants
        ],
        "near_duplicates": [hit.to_dict() for hit in near],
    }


def _near_duplicates(store: MediaStore, md5: str) -> list[SimilarImage]:
    """The stored images within the default distance of this one; none when it cannot be
    hashed (a page still shows what else is known of the file)."""
    try:
        return store.similar(md5)
    except MediaStoreError as exc:
        log.debug("no near-duplicates of %s: %s", md5, exc)
        return []
