"""Immutable values the store returns. ORM objects never leave the catalog package."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

MEDIA_TYPES: tuple[str, ...] = ("image", "video", "document")

STATUS_OK = "ok"
STATUS_MISSING = "missing"
STATUS_CORRUPT = "corrupt"
#: the file hashes right but its content is damaged (``verify --deep``); quarantined, and a
#: repair stores the good copy as new content
STATUS_BROKEN = "broken"
#: ``rm`` forgot the content; its file is deleted once no writer holds an intent on it.
STATUS_REMOVED = "removed"
#: The statuses of content the store still describes (``stats()`` splits its totals by them).
LIVE_STATUSES: tuple[str, ...] = (STATUS_OK, STATUS_MISSING, STATUS_CORRUPT, STATUS_BROKEN)


@dataclass(frozen=True, slots=True)
class MediaMetadata:
    """What a file says about its content, read by the structure walk in the same pass as its
    check (at ingest, or by :meth:`MediaStore.probe` for files stored before).

    Read from headers, boxes, elements, chunks and dictionaries as they stream by, never from
    decoded pixels or samples. Every field is None where the format does not carry it or the
    file's copy is unreadable: a value here is one the file declares (or a sum or ratio of
    declared values), never a guess, and unreadable metadata never fails the check.

    Attributes:
        width: Coded width in pixels (an image's header; a video's first video track).
        height: Coded height in pixels.
        rotation: Video: degrees (0, 90, 180 or 270) a player turns the frames clockwise to
            show them, from the MP4/MOV track header matrix (None for a matrix that is not a
            plain rotation, and for WebM, whose tracks carry no matrix).
        display_width: Width in pixels as shown: after a video's pixel aspect ratio
            (``pasp``, Matroska DisplayWidth/DisplayHeight: the width is stretched) and its
            rotation, or after an image's EXIF orientation (5-8 swap the sides).
        display_height: Height in pixels as shown (see ``display_width``).
        pixel_aspect: A video's pixel aspect ratio as ``"H:V"`` in lowest terms ("1:1" for
            square pixels, "4:3" for pixels a third wider than tall), where the file sets it:
            an MP4/MOV ``pasp`` box, or Matroska DisplayWidth/DisplayHeight in pixels.
        orientation: EXIF orientation of an image, 1-8 (1: as stored).
        duration: Seconds: a video's whole duration; an animation's total of frame delays.
        frames: Frames: a video track's samples (MP4 ``stsz`` plus fragment ``trun`` counts,
            WebM blocks and laced frames); an image's frames (1 for a still image).
        frame_rate: Frames per second of the video track: Matroska's DefaultDuration when
            declared, else frames divided by the video track's duration (the average).
        animated: Whether an image has more than one frame (GIF, APNG, WebP).
        video_codec: Codec of the video track, as ffmpeg names it ("h264", "hevc", "mpeg4",
            "vp8", "vp9", "av1"...).
        has_audio: Whether a video file has an audio track.
        audio_codec: Codec of the first audio track ("aac", "mp3", "opus", "vorbis"...).
        bit_rate: Bits per second over the whole file: its size over its duration.
        creation_time: When a video was made, as an aware UTC datetime: MP4/MOV ``mvhd``
            creation time (seconds since 1904), Matroska DateUTC (nanoseconds since 2001);
            None where it is zero.
        capture_time: EXIF DateTimeOriginal of an image: naive (local time of the camera),
            or aware when OffsetTimeOriginal gives its offset.
        pages: Pages of a PDF: the ``/Count`` of the page tree root that the last trailer's
            ``/Root`` catalog names.
        pdf_version: PDF version ("1.7"): the header's, or the catalog's ``/Version`` when
            later.
        encrypted: Whether a PDF's trailer names an ``/Encrypt`` dictionary.
    """

    width: int | None = None
    height: int | None = None
    rotation: int | None = None
    display_width: int | None = None
    display_height: int | None = None
    pixel_aspect: str | None = None
    orientation: int | None = None
    duration: float | None = None
    frames: int | None = None
    frame_rate: float | None = None
    animated: bool | None = None
    video_codec: str | None = None
    has_audio: bool | None = None
    audio_codec: str | None = None
    bit_rate: int | None = None
    creation_time: datetime | None = None
    capture_time: datetime | None = None
    pages: int | None = None
    pdf_version: str | None = None
    encrypted: bool | None = None

    @property
    def shape(self) -> str | None:
        """``portrait``, ``landscape`` or ``square``, from the displayed size (None if unknown)."""
        return shape_of(self.display_width, self.display_height)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (times in ISO 8601), plus ``shape``."""
        out: dict[str, Any] = {name: getattr(self, name) for name in METADATA_FIELDS}
        for name in ("creation_time", "capture_time"):
            if out[name] is not None:
                out[name] = out[name].isoformat()
        out["shape"] = self.shape
        return out


#: The fields of :class:`MediaMetadata`, in order.
METADATA_FIELDS: tuple[str, ...] = tuple(MediaMetadata.__dataclass_fields__)
#: The values of ``MediaFilter.orientation`` and ``MediaMetadata.shape``.
SHAPES: tuple[str, ...] = ("portrait", "landscape", "square")


def aspect_text(horizontal: int, vertical: int) -> str | None:
    """``"H:V"`` in lowest terms (None for a zero or negative term)."""
    if horizontal <= 0 or vertical <= 0:
        return None
    common = math.gcd(horizontal, vertical)
    return f"{horizontal // common}:{vertical // common}"


def shape_of(width: int | None, height: int | None) -> str | None:
    """``portrait`` (taller than wide), ``landscape``, ``square``, or None if unknown."""
    if not width or not height:
        return None
    return "portrait" if height > width else "landscape" if width > height else "square"


class MediaRecord(NamedTuple):
    """One stored file, as the catalog describes it.

    ``url`` is the URL the record was looked up or added by, when there is one.
    ``directory`` is the local directory that holds the file, and :attr:`path` the file in
    it; both are None where the bytes live elsewhere (object storage).

    A named tuple (immutable, compared by value): every lookup makes one, and a tuple is
    built several times faster than a frozen dataclass. The fields up to ``status`` are a
    catalog row's, in its order.

    ``width`` and ``height``: an image's stored pixels; a video's coded size (its first video
    track's); None for a PDF. ``metadata`` (:class:`MediaMetadata`) is what the file says
    about its content: filled by :meth:`MediaStore.describe`, :meth:`MediaStore.list_media`
    and ``export``; None from the ``add_*`` methods and the point lookups (``get_by_md5``,
    ``get_by_url``, ``fetch``), which read only the row's hot columns (so the record of an
    add equals the record of a lookup), and for a file stored before metadata was read
    (until :meth:`MediaStore.probe` reads it).
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
    directory: Path | None
    url: str | None = None
    metadata: MediaMetadata | None = None

    @property
    def path(self) -> Path | None:
        """The file on the local disk: ``<directory>/<md5>.<extension>`` (None if remote).

        Made when asked for: a Path costs more than the rest of a lookup's record, and most
        lookups only want to know what is stored.
        """
        if self.directory is None:
            return None
        return self.directory / f"{self.md5}.{self.extension}"

    def to_dict(self) -> dict[str, Any]:
        """A plain dict with every field plus the keys of the legacy ``media_cache`` dicts."""
        return {
            "md5": self.md5,
            "sha256": self.sha256,
            "media_type": self.media_type,
            "mime_type": self.mime_type,
            "extension": self.extension,
            "size": self.size,
            "width": self.width,
            "height": self.height,
            "path": str(self.path) if self.path else None,
            "created_at": self.created_at.isoformat(),
            "last_verified_at": (
                self.last_verified_at.isoformat() if self.last_verified_at else None
            ),
            "status": self.status,
            "url": self.url,
            # None where the metadata was not read (see ``metadata``)
            **(_content(self.metadata) if self.metadata is not None else _NO_METADATA),
            # the legacy media_cache names
            "md5_sum": self.md5,
            "local_path": str(self.path) if self.path else None,
            "file_size": self.size,
        }


def _content(metadata: MediaMetadata) -> dict[str, Any]:
    """The metadata's keys but width and height (the record's own say the stored size)."""
    out = metadata.to_dict()
    del out["width"], out["height"]
    return out


_NO_METADATA: dict[str, Any] = {
    **{name: None for name in METADATA_FIELDS if name not in ("width", "height")},
    "shape": None,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeReport:
    """Outcome of :meth:`MediaStore.probe`: files whose metadata was read (and recorded).

    ``unreadable`` maps the md5 of a file whose structure walk failed now to the reason (its
    metadata is recorded as unknown, so a rerun does not read it again; ``verify`` says what
    is wrong with it); ``missing`` lists files not found (left for the next run).
    """

    read: int = 0
    unreadable: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "read": self.read,
            "unreadable": self.unreadable,
            "missing": self.missing,
            "bytes": self.bytes,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyReport:
    """Outcome of :meth:`MediaStore.verify`: md5s found ok, missing, or corrupt (quarantined).

    ``reasons`` says why each corrupt file failed. With ``repair=True``, ``repaired`` lists the
    missing/corrupt md5s downloaded again (hashing back to the same md5, or, for a file whose
    content was broken though it hashed right, good content under a new md5: ``replaced``
    maps the old md5 to it, the URLs moved there and the broken file stays in quarantine);
    ``unrepaired`` maps the others to the reason. ``restored`` lists the rows that were
    missing or corrupt and are ``ok`` again because their intact file is back (they are in
    ``ok`` too).
    """

    ok: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    unrepaired: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    replaced: dict[str, str] = field(default_factory=dict)
    restored: list[str] = field(default_factory=list)

    @property
    def checked(self) -> int:
        """How many files were checked."""
        return len(self.ok) + len(self.missing) + len(self.corrupt)

    @property
    def all_ok(self) -> bool:
        """True when every file is in place now (intact, or repaired)."""
        return set(self.missing) | set(self.corrupt) <= set(self.repaired)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ok": self.ok,
            "missing": self.missing,
            "corrupt": self.corrupt,
            "repaired": self.repaired,
            "unrepaired": self.unrepaired,
            "reasons": self.reasons,
            "replaced": self.replaced,
            "restored": self.restored,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class TypeStats:
    """Count and total size of one media type (or of one status)."""

    count: int = 0
    size: int = 0

    def __getitem__(self, key: str) -> int:
        # legacy media_cache callers read stats['by_type'][t]['count']
        if key in ("count", "size"):
            return int(getattr(self, key))
        raise KeyError(key)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreStats:
    """Catalog-wide figures, from counters the catalog keeps (a few rows at any size).

    Removed content is left out. ``by_status`` splits the totals by status (``ok``,
    ``missing``, ``corrupt``, ``broken``). ``dedup_saved_bytes``: the bytes of every add
    whose content was already stored (a second copy of a file, the same image under
    another URL), which the store did not write again; it is history and stays after an
    ``rm``.
    """

    total_files: int
    total_size: int
    by_type: dict[str, TypeStats]
    total_urls: int
    dedup_saved_bytes: int
    oldest_verified_at: datetime | None
    unverified: int
    by_status: dict[str, TypeStats] = field(default_factory=dict)
    #: adds that found their content already stored
    dedup_adds: int = 0
    #: with ``stats(content=True)``: seconds of every video whose duration is known
    video_duration: float | None = None
    #: with ``stats(content=True)``: pages of every PDF whose page count is known
    pages: int | None = None
    #: with ``stats(content=True)``: files whose metadata was never read (see ``probe``)
    unprobed: int | None = None
    #: files some reference holds, and their bytes
    referenced_files: int = 0
    referenced_bytes: int = 0
    #: files that had references and have none now (``gc --unreferenced`` candidates once
    #: past the grace period), and their bytes
    unreferenced_files: int = 0
    unreferenced_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form with the legacy ``media_cache`` keys (``total_files``, ``total_size``,
        ``by_type``)."""
        return {
            "total_files": self.total_files,
            "total_size": self.total_size,
            "by_type": {k: {"count": v.count, "size": v.size} for k, v in self.by_type.items()},
            "by_status": {k: {"count": v.count, "size": v.size} for k, v in self.by_status.items()},
            "total_urls": self.total_urls,
            "dedup_saved_bytes": self.dedup_saved_bytes,
            "dedup_adds": self.dedup_adds,
            "oldest_verified_at": (
                self.oldest_verified_at.isoformat() if self.oldest_verified_at else None
            ),
            "unverified": self.unverified,
            "video_duration": self.video_duration,
            "pages": self.pages,
            "unprobed": self.unprobed,
            "referenced_files": self.referenced_files,
            "referenced_bytes": self.referenced_bytes,
            "unreferenced_files": self.unreferenced_files,
            "unreferenced_bytes": self.unreferenced_bytes,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Reference:
    """A caller's key on a stored file (see :meth:`MediaStore.add_ref`).

    ``md5`` is None for a reference taken by a fetch whose download failed: it names only
    its ``url`` until that URL is first stored, which fills the md5 in. ``url`` is the URL
    the reference was taken through (None when it was taken on an md5 or an add without one).
    """

    ref: str
    md5: str | None
    url: str | None
    position: int | None
    role: str | None
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ref": self.ref,
            "md5": self.md5,
            "url": self.url,
            "position": self.position,
            "role": self.role,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchResult:
    """Outcome of one URL in :meth:`MediaStore.fetch_many`: a record or an error.

    ``variant_of``: with ``variants="largest"``, the URL of the larger size of the same
    asset that was fetched instead of this one (whose record and error this result carries);
    this URL's own size was not downloaded, and it is not recorded as a URL of that file.
    """

    url: str
    record: MediaRecord | None = None
    error: Exception | None = None
    from_cache: bool = False
    variant_of: str | None = None

    @property
    def ok(self) -> bool:
        """True when the URL's media is in the store."""
        return self.record is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "url": self.url,
            "ok": self.ok,
            "from_cache": self.from_cache,
            "variant_of": self.variant_of,
            "error": str(self.error) if self.error else None,
            "error_type": type(self.error).__name__ if self.error else None,
            "record": self.record.to_dict() if self.record else None,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class LegacyImportReport:
    """Outcome of :meth:`MediaStore.import_legacy`."""

    imported: int = 0
    already: int = 0
    bytes: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "imported": self.imported,
            "already": self.already,
            "bytes": self.bytes,
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class GcReport:
    """Outcome of :meth:`MediaStore.gc` (what was done, or would be with ``dry_run``)."""

    dry_run: bool
    temp_removed: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    quarantined: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    #: (path, md5) of valid files found in a wrong directory: each is counted in ``adopted``
    #: (recorded at its own address) and its misplaced copy was quarantined
    relocated: list[tuple[str, str]] = field(default_factory=list)
    marked_missing: list[str] = field(default_factory=list)
    #: rows that were missing or corrupt whose intact file is back: ``ok`` again
    restored: list[str] = field(default_factory=list)
    #: md5s of removed content whose files were deleted now (a writer held them at ``rm``)
    collected: list[str] = field(default_factory=list)
    #: writers silent past the lease, whose intents were dropped
    writers_reaped: int = 0
    #: stats counters that disagreed with the rows and were recounted (name -> counted, said)
    counters_repaired: dict[str, tuple[tuple[int, int], tuple[int, int]]] = field(
        default_factory=dict
    )
    #: with ``unreferenced=True``: md5s of content removed because its last reference
    #: went away longer than the grace period ago
    unreferenced: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "dry_run": self.dry_run,
            "temp_removed": self.temp_removed,
            "adopted": self.adopted,
            "quarantined": [{"path": p, "reason": r} for p, r in self.quarantined],
            "relocated": [{"path": p, "md5": m} for p, m in self.relocated],
            "marked_missing": self.marked_missing,
            "restored": self.restored,
            "collected": self.collected,
            "writers_reaped": self.writers_reaped,
            "counters_repaired": {
                k: {"counted": list(v[0]), "recorded": list(v[1])}
                for k, v in self.counters_repaired.items()
            },
            "unreferenced": self.unreferenced,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ReindexReport:
    """Outcome of :meth:`MediaStore.reindex`.

    Rows are never dropped: a row whose file is gone is marked ``missing``, one whose file
    no longer matches is marked ``corrupt`` (the file quarantined), URLs kept for repair.
    """

    indexed: int = 0
    added: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, str]] = field(default_factory=list)  # (path, what is wrong)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "indexed": self.indexed,
            "added": self.added,
            "missing": self.missing,
            "corrupt": self.corrupt,
            "mismatched": [{"path": p, "content": c} for p, c in self.mismatched],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ReidentifyReport:
    """Outcome of :meth:`MediaStore.reidentify`: URLs read, and those whose identity,
    variant, rank or expiry changed under the rules in use."""

    urls: int = 0
    changed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"urls": self.urls, "changed": self.changed}


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportedFile:
    """One file :meth:`MediaStore.export` wrote (or found there already).

    ``method`` is how its bytes got there: ``reflink`` (shares the stored file's blocks,
    copy-on-write), ``copy``, ``hardlink`` (the same inode as the stored file: editing one
    edits both), or ``already`` (a file with the same content was there).
    """

    md5: str
    path: Path
    method: str
    sidecar: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "md5": self.md5,
            "path": str(self.path),
            "method": self.method,
            "sidecar": str(self.sidecar) if self.sidecar else None,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportReport:
    """Outcome of :meth:`MediaStore.export`: files written and files that could not be."""

    exported: list[ExportedFile] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (md5, reason)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "exported": [e.to_dict() for e in self.exported],
            "failed": [{"md5": m, "reason": r} for m, r in self.failed],
        }


@dataclass
class MoveReport:
    """Outcome of :meth:`MediaStore.migrate_store` (a move of the bytes to another blob store).

    Attributes:
        source: Canonical URL of the blob store copied from.
        target: Canonical URL of the blob store copied to.
        copied: MD5s copied by this run.
        already: Files an earlier run had copied.
        failed: MD5 -> why it was not copied.
        source_deleted: MD5s whose source copy was deleted (``delete_source``).
        finished: Every file is at the target: open the store with the target from now on.
    """

    source: str
    target: str
    copied: list[str] = field(default_factory=list)
    already: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    source_deleted: list[str] = field(default_factory=list)
    finished: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "target": self.target,
            "copied": len(self.copied),
            "already": self.already,
            "failed": self.failed,
            "source_deleted": len(self.source_deleted),
            "finished": self.finished,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupReport:
    """Outcome of :meth:`MediaStore.backup`: a consistent copy of the catalog.

    Attributes:
        path: The file written.
        size: Its size in bytes.
        files: Stored files (rows not removed) the copy records.
        urls: URLs the copy records.
    """

    path: str
    size: int
    files: int
    urls: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"path": self.path, "size": self.size, "files": self.files, "urls": self.urls}


class Failure(NamedTuple):
    """A URL's remembered permanent failure: see :meth:`MediaStore.failures`.

    Attributes:
        url: The URL.
        error: The error class it failed with (``HTTPStatusError``, ``RefusedContentError``,
            ``CorruptDownloadError``).
        status: The HTTP status (404, 410), or None.
        reason: What the error said.
        failed_at: When (UTC).
        asks_again_at: When a fetch of it sends a request again (``failed_at`` plus the
            store's ``failure_ttl``; None when failures are not remembered).
    """

    url: str
    error: str
    status: int | None
    reason: str
    failed_at: datetime
    asks_again_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (times in ISO 8601)."""
        return {
            "url": self.url,
            "error": self.error,
            "status": self.status,
            "reason": self.reason,
            "failed_at": self.failed_at.isoformat(),
            "asks_again_at": self.asks_again_at.isoformat() if self.asks_again_at else None,
        }


class Variant(NamedTuple):
    """One stored variant (a size or rendition) of an asset: see :meth:`MediaStore.variants`.

    Attributes:
        variant: The variant's name (``feedshare-shrink_800``), or None for a rule without
            variants.
        rank: How large it is by its rule (higher is larger), or None.
        record: The stored file, looked up by ``record.url``, one URL of this variant.
    """

    variant: str | None
    rank: int | None
    record: MediaRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexReport:
    """Outcome of :meth:`MediaStore.index`: images whose similarity hashes were computed.

    ``undecodable`` maps the md5 of an image that did not decode to the reason (recorded as
    read without hashes, so a rerun skips it; ``verify --deep`` says more); ``missing``
    lists images whose file was not found (left for the next run).
    """

    hashed: int = 0
    undecodable: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"hashed": self.hashed, "undecodable": self.undecodable, "missing": self.missing}


class SimilarImage(NamedTuple):
    """A stored image found near another: its Hamming ``distance`` (0-64) between perceptual
    hashes, ``same_pixels`` when the decoded pixels are identical, and what the keeper
    choice reads (pixels, then bytes)."""

    md5: str
    distance: int
    same_pixels: bool
    width: int | None
    height: int | None
    size: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return self._asdict()


@dataclass(frozen=True, slots=True, kw_only=True)
class DuplicateGroup:
    """Near-duplicate images: the suggested ``keeper`` (most pixels, then largest file), the
    ``others`` with their distance to it, and the bytes removing the others would free."""

    keeper: SimilarImage
    others: tuple[SimilarImage, ...]

    @property
    def saved_bytes(self) -> int:
        """Bytes the others take."""
        return sum(other.size for other in self.others)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "keeper": self.keeper.to_dict(),
            "others": [other.to_dict() for other in self.others],
            "saved_bytes": self.saved_bytes,
        }
