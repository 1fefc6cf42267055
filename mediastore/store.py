"""The :class:`MediaStore` facade: the library's main entry point."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Self

from . import maintenance
from . import verify as verification
from .blobs import LocalBlobStore
from .catalog import Catalog, MediaRow, NewMedia, UrlInfo, check_same_content, url_md5
from .config import DEFAULT_MAX_WORKERS, DEFAULT_TIMEOUT, StoreConfig
from .downloads import Downloader
from .errors import (
    FileTooLargeError,
    HashCollisionError,
    InvalidInputError,
    MediaNotFoundError,
    MediaStoreError,
)
from .hashing import normalize_md5
from .ingest import Chunks, Staged, bytes_chunks, file_chunks, read_chunks, stage
from .records import (
    MEDIA_TYPES,
    STATUS_OK,
    FetchResult,
    GcReport,
    LegacyImportReport,
    MediaRecord,
    ReindexReport,
    StoreStats,
    TypeStats,
    VerifyReport,
)
from .sniff import BY_EXTENSION, MediaKind

log = logging.getLogger(__name__)

#: Progress callback: (items done, items in total).
Progress = Callable[[int, int], None]


def utcnow() -> datetime:
    return datetime.now(UTC)


class MediaStore:
    """Content-addressed media files with a catalog.

    Args:
        root: Store directory (``media/``, ``tmp/``, ``quarantine/``, default catalog).
        db_url: SQLAlchemy URL of the catalog; default ``sqlite:///<root>/catalog.sqlite3``.
        config: A full :class:`StoreConfig`; ``root``/``db_url``/``options`` override it.
        **options: Any other :class:`StoreConfig` field, e.g. ``max_file_size=...``,
            ``verify_on_access=False``, ``allow_private_networks=True``.

    Raises:
        CatalogError: the catalog cannot be opened (not a database, locked, unreachable).
        SchemaOutdatedError: the catalog is behind the migrations' head.

    Safe to share between threads; several processes may open the same store.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        db_url: str | None = None,
        *,
        config: StoreConfig | None = None,
        **options: Any,
    ) -> None:
        base = config or StoreConfig()
        unknown = set(options) - set(StoreConfig.__dataclass_fields__)
        if unknown:
            raise InvalidInputError(f"unknown MediaStore option(s): {', '.join(sorted(unknown))}")
        overrides: dict[str, Any] = dict(options)
        if root is not None:
            overrides["root"] = Path(root)
        if db_url is not None:
            overrides["db_url"] = db_url
        cfg = replace(base, **overrides)
        self.config = replace(cfg, root=Path(cfg.root).expanduser().resolve())
        self.root = self.config.root
        if self.root.exists() and not self.root.is_dir():
            raise InvalidInputError(f"store root {self.root} is not a directory")
        self._blobs = LocalBlobStore(self.root)
        self._catalog = Catalog(self.config.catalog_url, busy_timeout=self.config.busy_timeout)
        self._group = GroupCommit(self._commit_many)
        self._downloader: Downloader | None = None  # created on first download
        self._downloader_lock = threading.Lock()

    # --- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Release database connections and HTTP sessions."""
        if self._downloader is not None:
            self._downloader.close()
        self._blobs.close()
        self._catalog.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MediaStore(root={str(self.root)!r}, db_url={self.config.catalog_url!r})"

    # --- adding --------------------------------------------------------------------------
    def add_file(
        self, path: str | Path, *, url: str | None = None, mime_type: str | None = None
    ) -> MediaRecord:
        """Add a local file (copied into the store; the original is left alone).

        Raises:
            InvalidInputError: the path does not exist or is not a regular file.
            UnsupportedMediaError: empty, unsupported or too large content.
            CorruptMediaError / HashCollisionError / StorageError / CatalogError.
        """
        src = Path(path)
        if not src.exists():
            raise InvalidInputError(f"no such file: {src}")
        if not src.is_file():
            raise InvalidInputError(f"not a regular file: {src}")
        if src.stat().st_size > self.config.max_file_size:  # refuse before reading it all
            raise FileTooLargeError(
                f"{src}: {src.stat().st_size} bytes exceeds the maximum file size of "
                f"{self.config.max_file_size} bytes"
            )
        try:
            return self._ingest(file_chunks(src), url=url, mime_type=mime_type)
        except OSError as exc:
            raise InvalidInputError(f"cannot read {src}: {exc.strerror or exc}") from exc
        except MediaStoreError as exc:
            wrapped = _with_context(exc, str(src))
            if wrapped is exc:
                raise
            raise wrapped from exc

    def add_bytes(
        self, data: bytes | bytearray | memoryview, *, url: str | None = None,
        mime_type: str | None = None,
    ) -> MediaRecord:  # fmt: skip
        """Add content held in memory."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInputError(f"add_bytes needs bytes, got {type(data).__name__}")
        return self._ingest(
            bytes_chunks(data, self.config.chunk_size), url=url, mime_type=mime_type
        )

    def add_stream(
        self, stream: BinaryIO | Iterable[bytes], *, url: str | None = None,
        mime_type: str | None = None,
    ) -> MediaRecord:  # fmt: skip
        """Add content from a binary file object (``readinto``/``read``) or an iterable of chunks.

        The stream is read once, in chunks, whatever its size: memory stays constant.
        """
        if hasattr(stream, "readinto"):
            chunks: Chunks = read_chunks(stream)  # type: ignore[arg-type]
        elif hasattr(stream, "read"):
            chunks = iter(lambda: stream.read(self.config.chunk_size), b"")
        else:
            chunks = stream
        return self._ingest(chunks, url=url, mime_type=mime_type)

    def _ingest(
        self, chunks: Chunks, *, url: str | None = None, mime_type: str | None = None,
        urls: Sequence[UrlInfo] = (),
    ) -> MediaRecord:  # fmt: skip
        infos = list(urls)
        if url is not None:
            _check_url_label(url)
            infos.insert(0, UrlInfo(url=url))
        staged = stage(
            chunks, self._blobs, max_size=self.config.max_file_size,
            max_pixels=self.config.max_image_pixels, mime_hint=mime_type,
        )  # fmt: skip
        return self._commit(staged, infos)

    def _commit(self, staged: Staged, urls: Sequence[UrlInfo]) -> MediaRecord:
        """Put the staged file at its address (unless an intact copy is there) and record it.

        Concurrent callers are committed together (see :class:`GroupCommit`).

        Raises:
            HashCollisionError: its md5 is stored with other content (nothing changed).
            StorageError / CatalogError: the file could not be put or the row committed.
        """
        if not self._intact_copy_exists(staged):
            # fsync here, on the caller's thread, so that concurrent callers sync in parallel
            # and the grouped commit only renames, fsyncs directories and writes rows
            try:
                staged.temp.sync()
            except BaseException:
                self._blobs.discard(staged.temp)
                raise
        outcome = self._group.commit((staged, urls))
        if isinstance(outcome, MediaStoreError):
            raise outcome
        return outcome

    def _intact_copy_exists(self, staged: Staged) -> bool:
        """A row and a file of the right size already hold this content (a dedup hit)."""
        row = self._catalog.by_md5(staged.md5)
        return row is not None and self._blobs.size(staged.kind, staged.md5) == staged.size

    def _commit_many(
        self, batch: Sequence[tuple[Staged, Sequence[UrlInfo]]]
    ) -> list[MediaRecord | MediaStoreError]:
        """Commit staged files: durable in place first, then their rows in one transaction.

        Order matters: every file is fsynced and renamed (directories fsynced) before the
        transaction holding its row commits; if that fails, the files this call created are
        removed again. A collision fails only its own entry. Raises what fails the batch.
        """
        news = [_new_media(staged) for staged, _ in batch]
        outcomes: list[MediaRecord | MediaStoreError | None] = [None] * len(batch)
        to_put: list[int] = []
        try:
            existing = self._catalog.by_md5_many([new.md5 for new in news])
            placed: set[str] = set()
            for i, (staged, _) in enumerate(batch):
                row = existing.get(staged.md5)
                try:
                    if row is not None:
                        check_same_content(row, news[i])  # before touching the stored file
                except HashCollisionError as exc:
                    outcomes[i] = exc
                    self._blobs.discard(staged.temp)
                    continue
                on_disk = row is not None and (
                    self._blobs.size(staged.kind, staged.md5) == staged.size
                )
                if on_disk or staged.md5 in placed:
                    self._blobs.discard(staged.temp)
                else:
                    placed.add(staged.md5)
                    to_put.append(i)
            created = self._blobs.put_many(
                [(batch[i][0].temp, batch[i][0].kind, batch[i][0].md5) for i in to_put]
            )
        except BaseException:
            for staged, _ in batch:
                self._blobs.discard(staged.temp)
            raise
        keep = [i for i in range(len(batch)) if outcomes[i] is None]
        try:
            rows = self._catalog.record_many([(news[i], batch[i][1]) for i in keep], utcnow())
        except BaseException:
            for i, was_created in zip(to_put, created, strict=True):
                if was_created:
                    self._blobs.delete(batch[i][0].kind, batch[i][0].md5)
            raise
        for i, row in zip(keep, rows, strict=True):
            urls = batch[i][1]
            outcomes[i] = self._record(row, urls[0].url if urls else None)
            log.info("stored %s (%s, %d bytes)", row.md5, row.mime_type, row.size)
        return [o for o in outcomes if o is not None]

    # --- downloading ---------------------------------------------------------------------
    def _get_downloader(self) -> Downloader:
        with self._downloader_lock:
            if self._downloader is None:
                self._downloader = Downloader(self)
            return self._downloader

    def fetch(
        self, url: str, *, timeout: float = DEFAULT_TIMEOUT, refresh: bool = False
    ) -> MediaRecord:
        """The media at ``url``: from the store when present and intact, else downloaded.

        A cached file is checked first (re-hashed, or only its size with
        ``verify_on_access=False``); a missing or damaged one is downloaded again.
        ``refresh=True`` revalidates with the ETag / Last-Modified of the last download (a 304
        keeps the file). After redirects, the final URL is recorded too.

        Args:
            url: An http(s) URL; refused if it reaches a non-public address (see
                ``allow_private_networks``), uses another scheme or carries credentials.
            timeout: Seconds a single read (or connect, at most 10 s) may wait.
            refresh: Revalidate a cached URL with the server.

        Raises:
            FetchError: a subclass naming the URL and the reason (blocked, HTTP status,
                timeout, too large, truncated, refused content...). Nothing is stored then.
        """
        return self._get_downloader().fetch(url, timeout=timeout, refresh=refresh)[0]

    def fetch_many(
        self, urls: Iterable[str], *, max_workers: int = DEFAULT_MAX_WORKERS,
        timeout: float = DEFAULT_TIMEOUT, progress: Progress | None = None,
        per_host: int | None = None,
    ) -> list[FetchResult]:  # fmt: skip
        """Fetch many URLs in parallel: one :class:`FetchResult` per input URL, in input order.

        A URL repeated in the input is fetched once; one URL's failure never stops the others;
        each worker thread keeps its own session (connections are reused); at most
        ``per_host`` (default ``config.per_host``, 4) requests run against one host at a time.
        ``progress(done, total)`` is called as each distinct URL completes.
        """
        return self._get_downloader().fetch_many(
            urls, max_workers=max_workers, timeout=timeout, progress=progress, per_host=per_host
        )

    # --- lookups -------------------------------------------------------------------------
    def get_by_url(self, url: str) -> MediaRecord | None:
        """The stored media for ``url``, or None if unknown or its file is missing/corrupt.

        When the catalog has no row for ``url``, the legacy cache is consulted: a legacy file
        already imported (found by the URL's MD5) gets its URL recorded; one not imported yet
        is ingested now (the legacy file itself is left in place). Later lookups are plain
        catalog hits.
        """
        _check_url_label(url)
        row = self._catalog.by_url(url)
        if row is None:
            row = self._legacy_lookup(url)
        if row is None or row.status != STATUS_OK:
            return None
        return self._record(row, url)

    def _legacy_lookup(self, url: str) -> MediaRow | None:
        key = url_md5(url)
        row = self._catalog.by_legacy_key(key)
        if row is not None:
            self._catalog.claim_legacy_url(key, url)
            return row
        path = maintenance.legacy_file(self, url)
        if path is None:
            return None
        try:
            rec = self._ingest(file_chunks(path), urls=[UrlInfo(url=url, url_md5=key)])
        except MediaStoreError as exc:
            log.warning("legacy file %s for %s not imported: %s", path, url, exc)
            return None
        log.info("imported legacy file %s for %s", path, url)
        return self._catalog.by_md5(rec.md5)

    def get_by_md5(self, md5: str) -> MediaRecord | None:
        """The media with this content MD5 (any status), or None.

        Raises:
            InvalidMD5Error: ``md5`` is not 32 hex characters.
        """
        row = self._catalog.by_md5(normalize_md5(md5))
        return self._record(row) if row else None

    def urls_for(self, md5: str) -> list[str]:
        """Every URL recorded for this content, oldest first."""
        return self._catalog.urls_for(normalize_md5(md5))

    def open(self, md5: str) -> BinaryIO:
        """Open a stored file for reading.

        Raises:
            MediaNotFoundError: unknown md5, or its file is gone.
        """
        rec = self._require(md5)
        try:
            return self._blobs.open(_kind(rec.extension), rec.md5)
        except FileNotFoundError as exc:
            raise MediaNotFoundError(f"file of {rec.md5} is missing from the store") from exc

    def _require(self, md5: str) -> MediaRecord:
        rec = self.get_by_md5(md5)
        if rec is None:
            raise MediaNotFoundError(f"no media with md5 {normalize_md5(md5)}")
        return rec

    def _record(self, row: MediaRow, url: str | None = None) -> MediaRecord:
        return MediaRecord(
            md5=row.md5, sha256=row.sha256, media_type=row.media_type, mime_type=row.mime_type,
            extension=row.extension, size=row.size, width=row.width, height=row.height,
            path=self._blobs.path(_kind(row.extension), row.md5), created_at=row.created_at,
            last_verified_at=row.last_verified_at, status=row.status, url=url,
        )  # fmt: skip

    # --- maintenance ---------------------------------------------------------------------
    def verify(
        self, md5: str | Iterable[str] | None = None, *, progress: Progress | None = None,
        older_than: timedelta | None = None, limit: int | None = None, repair: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> VerifyReport:  # fmt: skip
        """Re-hash stored files against their md5 and record the outcome.

        Args:
            md5: One md5, several, or None for every file in the catalog.
            progress: Called with (done, total) after each file.
            older_than: Only files not verified within this period (never-verified first),
                chosen by an indexed query: the nightly job's call.
            limit: Verify at most this many files (least recently verified first).
            repair: Download missing or corrupt files again from a URL recorded for them;
                a download must hash back to the same md5, else the file stays quarantined.
            timeout: Per-read timeout of repair downloads.

        A file that no longer hashes to its md5 (or has the wrong size) is moved to
        ``<root>/quarantine/`` (never deleted) and marked corrupt; a missing one is marked
        missing; a good one gets ``last_verified_at`` = now.
        """
        rows = verification.select_rows(self, md5, older_than=older_than, limit=limit)
        return verification.verify(self, rows, progress=progress, repair=repair, timeout=timeout)

    def stats(self) -> StoreStats:
        """Counts and sizes from the catalog alone (no directory walk)."""
        raw = self._catalog.stats()
        by_type = {t: TypeStats() for t in MEDIA_TYPES}
        for media_type, (count, size) in raw["by_type"].items():
            by_type[media_type] = TypeStats(count=count, size=size)
        return StoreStats(
            total_files=sum(t.count for t in by_type.values()),
            total_size=sum(t.size for t in by_type.values()),
            by_type=by_type,
            total_urls=raw["total_urls"],
            dedup_saved_bytes=raw["saved"],
            oldest_verified_at=raw["oldest"],
            unverified=raw["unverified"],
        )

    def import_legacy(
        self, path: str | Path | None = None, *, progress: Progress | None = None
    ) -> LegacyImportReport:
        """Import the legacy cache (files named by the MD5 of their URL); idempotent.

        Args:
            path: The legacy directory; default ``config.legacy_dir`` or ``<root>/images``.
            progress: Called with (done, total) as files are processed.
        """
        return maintenance.import_legacy(
            self, Path(path) if path is not None else None, progress=progress
        )

    def gc(self, *, dry_run: bool = False) -> GcReport:
        """Clean up after crashes; see :func:`mediastore.maintenance.gc`. Never deletes media."""
        return maintenance.gc(self, dry_run=dry_run)

    def reindex(self, *, progress: Progress | None = None) -> ReindexReport:
        """Rebuild the media rows from the files on disk (lost or restored catalog)."""
        return maintenance.reindex(self, progress=progress)

    def remove(self, md5: str) -> MediaRecord:
        """Remove a file and its catalog row (and URLs): the row first, then the file.

        Raises:
            InvalidMD5Error: not an md5. MediaNotFoundError: not in the catalog.
        """
        rec = self._require(md5)
        self._catalog.delete(rec.md5)
        self._blobs.delete(_kind(rec.extension), rec.md5)
        log.info("removed %s", rec.md5)
        return rec


_Entry = tuple[Staged, Sequence[UrlInfo]]
_Outcome = MediaRecord | MediaStoreError


class GroupCommit:
    """Commits that arrive while another is running are committed together, in one batch.

    A caller finding no commit under way commits at once (no added latency without
    contention). Callers arriving meanwhile queue up; when the running commit ends, one of
    them takes everything queued and commits it with one round of parallel fsyncs, one
    directory fsync and one transaction. Each leader commits one batch, its own entry in it,
    so no caller ends up committing for others indefinitely.
    """

    def __init__(self, commit_many: Callable[[Sequence[_Entry]], list[_Outcome]]) -> None:
        self._commit_many = commit_many
        self._cond = threading.Condition()
        self._pending: list[tuple[_Entry, Future[_Outcome]]] = []
        self._leading = False

    def commit(self, entry: _Entry) -> _Outcome:
        future: Future[_Outcome] = Future()
        with self._cond:
            self._pending.append((entry, future))
            while self._leading and not future.done():
                self._cond.wait()
            if future.done():
                return future.result()
            self._leading = True
            batch, self._pending = self._pending, []
        try:
            outcomes = self._commit_many([e for e, _ in batch])
            for (_, waiting), outcome in zip(batch, outcomes, strict=True):
                waiting.set_result(outcome)
        except BaseException as exc:  # the batch failed as a whole: every caller sees it
            for _, waiting in batch:
                if not waiting.done():
                    waiting.set_exception(exc)
        finally:
            with self._cond:
                self._leading = False
                self._cond.notify_all()
        return future.result()


def _new_media(staged: Staged) -> NewMedia:
    return NewMedia(
        md5=staged.md5, sha256=staged.sha256, media_type=staged.kind.media_type,
        mime_type=staged.kind.mime_type, extension=staged.kind.extension,
        size=staged.size, width=staged.width, height=staged.height,
    )  # fmt: skip


def _kind(extension: str) -> MediaKind:
    return BY_EXTENSION[extension]


def _check_url_label(url: str) -> None:
    if not isinstance(url, str) or not url.strip():
        raise InvalidInputError("url must be a non-empty string")


def _with_context(exc: MediaStoreError, where: str) -> MediaStoreError:
    """The same error type with ``where`` in front of its message."""
    try:
        return type(exc)(f"{where}: {exc}")
    except TypeError:  # an error class with a richer constructor: keep it as it is
        return exc
