"""Near-duplicate images: computing the similarity hashes of stored images (``index``), and
the queries over them (``similar``, ``duplicate_groups``).

The hashes are computed here, after ingest, not in the ingest pass: the pixel hash needs a
full decode of the image, which would slow ingest by about 70% (3.5 ms of CPU per image
against about 5 ms for the rest of ingest; the benchmarks' report has the figures).
``index`` is online and resumable like ``probe``: each page of results is one transaction,
and a rerun reads only the images left.
"""

from __future__ import annotations

import io
import logging
from array import array
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import BinaryIO

from .catalog import MediaRow
from .catalog.similar import Hashed
from .errors import (
    InvalidInputError,
    MediaNotFoundError,
    MediaStoreError,
    StorageError,
    UnsupportedMediaError,
)
from .formats.detect import BY_EXTENSION
from .formats.imagehash import hash_file
from .lifecycle import Lifecycle, ref_of
from .records import DuplicateGroup, IndexReport, SimilarImage
from .similarity import MAX_DISTANCE, BandIndex, distance
from .types import Progress

log = logging.getLogger(__name__)

#: Images read per page of ``index`` (each page's results are one transaction).
INDEX_PAGE = 256
#: Images decoded at once: Pillow's decoders release the GIL.
INDEX_WORKERS = 4
#: Hashed images read per page by ``duplicate_groups``.
GROUP_PAGE = 1000


def check_distance(max_distance: int) -> int:
    """``max_distance`` if it is an int from 0 to :data:`MAX_DISTANCE`.

    Raises:
        InvalidInputError: anything else.
    """
    if isinstance(max_distance, bool) or not isinstance(max_distance, int):
        raise InvalidInputError(f"distance must be an integer, got {max_distance!r}")
    if not 0 <= max_distance <= MAX_DISTANCE:
        raise InvalidInputError(f"distance must be from 0 to {MAX_DISTANCE}, got {max_distance}")
    return max_distance


def index(life: Lifecycle, *, progress: Progress | None = None) -> IndexReport:
    """Compute and record the similarity hashes of every live image that has none.

    ``progress(done, total)`` counts images.

    Raises:
        ReadOnlyStoreError: the catalog is read-only and some image needs hashing.
        StorageError: a stored file could not be read (the pages before are recorded).
    """
    total = life.catalog.count_unhashed()
    done = recorded = 0
    undecodable: dict[str, str] = {}
    missing: list[str] = []
    after = ""
    with ThreadPoolExecutor(INDEX_WORKERS, thread_name_prefix="index") as pool:
        while page := life.catalog.unhashed(after, INDEX_PAGE):
            after = page[-1].md5
            found: list[tuple[str, str | None, int | None]] = []
            for row, outcome in zip(
                page, pool.map(lambda r: _hash_one(life, r), page), strict=True
            ):
                if outcome is None:
                    missing.append(row.md5)
                elif isinstance(outcome, str):
                    undecodable[row.md5] = outcome
                    log.warning("image %s did not decode: %s", row.md5, outcome)
                    found.append((row.md5, None, None))
                else:
                    found.append((row.md5, *outcome))
            recorded += life.catalog.record_hashes(found, datetime.now(UTC))
            done += len(page)
            if progress is not None:
                progress(min(done, total), max(total, done))
    # rows recorded, less the undecodable ones (a concurrent run may have recorded some)
    hashed = max(0, recorded - len(undecodable))
    return IndexReport(hashed=hashed, undecodable=undecodable, missing=missing)


def _hash_one(life: Lifecycle, row: MediaRow) -> tuple[str, int] | str | None:
    """(pixel hash, perceptual hash) of a stored image, why it failed, or None if missing."""
    kind = BY_EXTENSION.get(row.extension)
    if kind is None:
        return f"unknown extension {row.extension!r}"
    try:
        fh, _ = life.blobs.open(ref_of(row))
    except FileNotFoundError:
        return None
    try:
        with fh:
            return hash_file(_seekable(fh), kind, max_pixels=life.config.max_image_pixels)
    except MediaStoreError as exc:
        return str(exc)
    except OSError as exc:
        raise StorageError(f"reading the file of {row.md5} failed: {exc}") from exc


def _seekable(fh: BinaryIO) -> BinaryIO:
    """A local file as it is; an object store's stream read into memory (Pillow seeks)."""
    return fh if fh.seekable() else io.BytesIO(fh.read())


def _require_image(row: MediaRow) -> None:
    if row.media_type != "image":
        raise UnsupportedMediaError(f"{row.md5} is a {row.media_type}, not an image")


def _hash_now(life: Lifecycle, row: MediaRow) -> tuple[str, int]:
    """The hashes of an image ``index`` has not reached yet, computed, not recorded."""
    outcome = _hash_one(life, row)
    if outcome is None:
        raise MediaNotFoundError(f"file of {row.md5} is missing from the store")
    if isinstance(outcome, str):
        raise UnsupportedMediaError(f"image {row.md5} has no similarity hash: {outcome}")
    return outcome


def similar(life: Lifecycle, row: MediaRow, max_distance: int) -> list[SimilarImage]:
    """Stored images within ``max_distance`` of ``row``'s image (itself left out), nearest
    first, then by md5."""
    _require_image(row)
    check_distance(max_distance)
    recorded = life.catalog.near_md5(row.md5, max_distance)
    if recorded is None:
        pixels, phash = _hash_now(life, row)
        hits = life.catalog.near(phash, max_distance)
    else:
        (pixels, phash), hits = recorded
    found = [_similar(hit, pixels, phash) for hit in hits if hit[0] != row.md5]
    return sorted(found, key=lambda hit: (hit.distance, hit.md5))


def _similar(hit: Hashed, pixels: str, phash: int) -> SimilarImage:
    md5, their_pixels, their_phash, width, height, size = hit
    return SimilarImage(
        md5=md5,
        distance=distance(phash, their_phash),
        same_pixels=their_pixels == pixels,
        width=width,
        height=height,
        size=size,
    )


def duplicate_groups(
    life: Lifecycle, max_distance: int, *, pixel_only: bool = False
) -> Iterator[DuplicateGroup]:
    """Groups of near-duplicate images, streamed (see :meth:`MediaStore.duplicate_groups`).

    The hashes are read once, a page at a time, into a :class:`BandIndex` (about 80 bytes
    per image: 80 MB at a million) and grouped from there: one query per image would cost
    about a millisecond each (a quarter of an hour at a million images).
    """
    check_distance(max_distance)
    if pixel_only:
        yield from _pixel_groups(life)
        return
    images = _Images.load(life)
    index = BandIndex(images.hashes)
    grouped = bytearray(len(images.hashes))
    for first in range(len(images.hashes)):
        if grouped[first]:
            continue
        members = [i for i in index.near(first, max_distance) if not grouped[i]]
        if len(members) > 1:
            for member in members:
                grouped[member] = 1
            yield _group([images.row(member) for member in members])


class _Images:
    """Every hashed image in compact arrays, in md5 order: what a grouping pass reads."""

    def __init__(self) -> None:
        self.md5s = bytearray()
        self.pixels = bytearray()
        self.hashes = array("Q")
        self.sizes = array("q")
        self.widths = array("i")
        self.heights = array("i")

    @classmethod
    def load(cls, life: Lifecycle) -> _Images:
        images = cls()
        after = ""
        while page := life.catalog.hashed_page(after, GROUP_PAGE * 10):
            after = page[-1][0]
            for md5, pixels, phash, width, height, size in page:
                images.md5s += bytes.fromhex(md5)
                images.pixels += bytes.fromhex(pixels)[:16]
                images.hashes.append(phash)
                images.widths.append(width or 0)
                images.heights.append(height or 0)
                images.sizes.append(size)
        return images

    def row(self, i: int) -> Hashed:
        """The image at position ``i`` as the catalog returns it (pixel hash shortened to 128
        bits: only compared for equality)."""
        return (
            self.md5s[16 * i : 16 * i + 16].hex(),
            self.pixels[16 * i : 16 * i + 16].hex(),
            self.hashes[i],
            self.widths[i] or None,
            self.heights[i] or None,
            self.sizes[i],
        )


def _pixel_groups(life: Lifecycle) -> Iterator[DuplicateGroup]:
    after = ""
    while shared := life.catalog.shared_pixel_hashes(after, GROUP_PAGE):
        after = shared[-1]
        for pixels in shared:
            members = life.catalog.same_pixels(pixels)
            if len(members) > 1:
                yield _group(members)


def _group(members: list[Hashed]) -> DuplicateGroup:
    """The group with its keeper: most pixels, then the largest file, then the lowest md5."""
    keeper = min(members, key=lambda h: (-((h[3] or 0) * (h[4] or 0)), -h[5], h[0]))
    _, pixels, phash, *_ = keeper
    others = sorted(
        (_similar(member, pixels, phash) for member in members if member is not keeper),
        key=lambda hit: (hit.distance, hit.md5),
    )
    return DuplicateGroup(keeper=_similar(keeper, pixels, phash), others=tuple(others))
