"""What ``ls`` and ``export`` select: a :class:`MediaFilter` over the catalog's media rows.

The catalog reads the rows in MD5 order, a page at a time (keyset pagination), so a listing
of any size streams in constant memory. Type, status, size and date are conditions on the
media row; a URL substring is a ``LIKE '%...%'`` on the URL table, which no index can serve:
on a large catalog it reads every URL row (say so wherever it is offered).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from .errors import InvalidInputError
from .hashing import normalize_md5
from .records import LIVE_STATUSES, MEDIA_TYPES, SHAPES
from .references import check_ref


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaFilter:
    """Conditions a listed file meets (all of them); ``None`` means any.

    Attributes:
        media_type: ``image``, ``video`` or ``document``.
        status: ``ok``, ``missing``, ``corrupt`` or ``broken`` (removed content is never
            listed).
        min_size: At least this many bytes.
        max_size: At most this many bytes.
        since: Added at or after this moment.
        before: Added before this moment.
        url_contains: Some URL recorded for the file contains this text (case-sensitive;
            reads every URL row).
        min_duration: Lasts at least this many seconds (videos and animations).
        max_duration: Lasts at most this many seconds.
        orientation: ``portrait`` (taller than wide), ``landscape`` or ``square``, as shown:
            after a video's rotation and pixel aspect ratio, an image's EXIF orientation.
        animated: True: animated images only (GIF, APNG, WebP of several frames); False:
            still images only. Videos and PDFs meet neither.
        limit: At most this many files.
        ref: Only files this reference key holds (see :meth:`MediaStore.add_ref`).
        unreferenced: Only files that had references and have none now (what
            ``gc(unreferenced=True)`` removes once the grace period is over).
        after: Only files whose md5 sorts after this one (a cursor: listings are in md5
            order, so the last md5 of a page starts the next).

    A metadata condition (duration, orientation, animated) leaves out files whose value is
    unknown (stored before metadata was read, until ``probe`` reads it).
    """

    media_type: str | None = None
    status: str | None = None
    min_size: int | None = None
    max_size: int | None = None
    since: datetime | None = None
    before: datetime | None = None
    url_contains: str | None = None
    min_duration: float | None = None
    max_duration: float | None = None
    orientation: str | None = None
    animated: bool | None = None
    limit: int | None = None
    ref: str | None = None
    unreferenced: bool = False
    after: str | None = None

    def __post_init__(self) -> None:
        if self.media_type is not None and self.media_type not in MEDIA_TYPES:
            raise InvalidInputError(
                f"unknown media type {self.media_type!r} (one of {', '.join(MEDIA_TYPES)})"
            )
        if self.status is not None and self.status not in LIVE_STATUSES:
            raise InvalidInputError(
                f"unknown status {self.status!r} (one of {', '.join(LIVE_STATUSES)})"
            )
        for name in ("min_size", "max_size", "limit"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value < 0):
                raise InvalidInputError(f"{name} must be a non-negative integer, got {value!r}")
        for name in ("min_duration", "max_duration"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise InvalidInputError(f"{name} must be a non-negative number, got {value!r}")
        if self.orientation is not None and self.orientation not in SHAPES:
            raise InvalidInputError(
                f"unknown orientation {self.orientation!r} (one of {', '.join(SHAPES)})"
            )
        if self.animated is not None and not isinstance(self.animated, bool):
            raise InvalidInputError(f"animated must be True, False or None, got {self.animated!r}")
        if self.ref is not None:
            check_ref(self.ref)
        if not isinstance(self.unreferenced, bool):
            raise InvalidInputError(
                f"unreferenced must be True or False, got {self.unreferenced!r}"
            )
        if self.after is not None:
            object.__setattr__(self, "after", normalize_md5(self.after))
        if self.url_contains is not None and not self.url_contains:
            raise InvalidInputError("the URL text to search for is empty")
