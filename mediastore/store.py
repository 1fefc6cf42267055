"""The :class:`MediaStore` facade: the library's main entry point."""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Self

from . import duplicates, maintenance, migrate, ownership, thumbnails
from . import verify as verification
from .blobs import canonical_blob_url, open_blob_store
from .blobs.base import BlobRef
from .catalog import Catalog, MediaRow, UrlInfo, url_md5
from .catalog.backup import backup_sqlite
from .catalog.engine import sqlite_path
from .config import DEFAULT_MAX_WORKERS, DEFAULT_ROOT, DEFAULT_TIMEOUT, StoreConfig
from .errors import (
    AmbiguousMD5Error,
    CatalogError,
    FetchError,
    FileTooLargeError,
    InvalidInputError,
    InvalidMD5Error,
    MediaNotFoundError,
    MediaStoreError,
    StoreNotFoundError,
)
from .export import export_records
from .formats.detect import BY_EXTENSION
from .hashing import normalize_md5
from .identity import Identity, Rule
from .ingest import Chunks, bytes_chunks, file_chunks, read_chunks
from .lifecycle import Lifecycle, ref_of
from .listing import MediaFilter
from .migrate import with_moves
from .net.downloader import Downloader
from .records import (
    LIVE_STATUSES,
    MEDIA_TYPES,
    STATUS_OK,
    STATUS_REMOVED,
    BackupReport,
    DuplicateGroup,
    ExportReport,
    Failure,
    FetchResult,
    GcReport,
    IndexReport,
    LegacyImportReport,
    MediaRecord,
    MoveReport,
    ProbeReport,
    Reference,
    ReidentifyReport,
    ReindexReport,
    SimilarImage,
    StoreStats,
    TypeStats,
    Variant,
    VerifyReport,
)
from .references import (
    RefTake,
    RefUrl,
    check_ref,
    grace_seconds,
    ref_take,
    ref_url,
)
from .settings import load_settings
from .similarity import DEFAULT_DISTANCE
from .types import Progress

log = logging.getLogger(__name__)

#: An md5 prefix ``resolve_md5`` accepts: at least 6 hex characters, as git asks of commits.
MD5_PREFIX = re.compile(r"[0-9a-f]{6,31}")
#: A whole MD5, as text.
MD5_TEXT = re.compile(r"[0-9a-f]{32}")
#: Candidates an ambiguous prefix's error lists.
AMBIGUOUS_SHOWN = 5


class MediaStore:
    """Content-addressed media files with a catalog.

    Args:
        root: Store directory (``media/``, ``tmp/``, ``quarantine/``, default catalog).
        db_url: SQLAlchemy URL of the catalog; default ``sqlite:///<root>/catalog.sqlite3``.
        blob_url: Where the bytes go: None (the root itself: ``<root>/media/...``), a
            directory (the same layout under it), or
            ``s3://bucket/prefix`` (``root`` then holds only the staging area ``tmp/``; see
            :func:`mediastore.blobs.open_blob_store`).
        config: A full :class:`StoreConfig`; ``root``/``db_url``/``options`` override it.
            Without one, the store reads the settings the command reads (the
            ``MEDIASTORE_*`` variables, ``<root>/mediastore.toml``); arguments given win.
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
        blob_url: str | None = None,
        config: StoreConfig | None = None,
        create: bool = True,
        read_only: bool = False,
        **options: Any,
    ) -> None:
        unknown = set(options) - set(StoreConfig.__dataclass_fields__)
        if unknown:
            raise InvalidInputError(f"unknown MediaStore option(s): {', '.join(sorted(unknown))}")
        if config is None:  # the settings the command reads: one setting serves both
            config, blob_url = _configured(root, db_url, blob_url)
        base = config
        overrides: dict[str, Any] = dict(options)
        if root is not None:
            overrides["root"] = Path(root)
        if db_url is not None:
            overrides["db_url"] = db_url
        cfg = replace(base, **overrides)
        self.config = replace(cfg, root=Path(cfg.root).expanduser().resolve())
        self.root = self.config.root
        self._legacy_dir = str(maintenance.legacy_dir(self.config))
        self.read_only = read_only or _not_writable(self.root, self.config.catalog_url)
        _check_root(self.root, create=create and not self.read_only)
        # the catalog first: a bad catalog URL or a missing driver leaves nothing behind
        self.catalog = Catalog(
            self.config.catalog_url,
            busy_timeout=self.config.busy_timeout,
            create_if_empty=create,
            read_only=self.read_only,
        )
        if not self.read_only:
            self.root.mkdir(parents=True, exist_ok=True)
        self._blob_url = blob_url
        #: the blob store's canonical URL (a directory, or s3://bucket/prefix)
        self.blob_url = canonical_blob_url(blob_url, self.root)
        try:
            home = open_blob_store(blob_url, self.root, read_only=self.read_only)
            #: why the blob location is not this catalog's (None: it is); see ownership
            self.foreign_blobs = ownership.check(
                self.catalog, home, self.blob_url, read_only=self.read_only
            )
            self.blobs = with_moves(
                home,
                self.catalog.open_moves(self.blob_url),
                self.blob_url,
                self.root,
                read_only=self.read_only,
            )
        except BaseException:
            self.catalog.close()
            raise
        self.lifecycle = Lifecycle(self.blobs, self.catalog, self.config)
        self._downloader: Downloader | None = None  # created on first download
        self._downloader_lock = threading.Lock()

    # --- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Release database connections and HTTP sessions."""
        if self._downloader is not None:
            self._downloader.close()
        self.lifecycle.close()
        self.blobs.close()
        self.catalog.close()

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
        self,
        path: str | Path,
        *,
        url: str | None = None,
        mime_type: str | None = None,
        ref: str | None = None,
        position: int | None = None,
        role: str | None = None,
    ) -> MediaRecord:
        """Add a local file (copied into the store; the original is left alone).

        ``ref`` takes a reference (see :meth:`add_ref`) on the content, with ``position``
        and ``role``, in the transaction that records it: no collection comes between.

        Raises:
            InvalidInputError: ``path`` is not a path, does not exist or is not a regular file.
            UnsupportedMediaError: empty, unsupported or too large content.
            CorruptMediaError / HashCollisionError / StorageError / CatalogError.
        """
        if not isinstance(path, str | os.PathLike):
            raise InvalidInputError(f"add_file needs a path, got {type(path).__name__}")
        refs = _takes(ref, position, role)
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
            return self._ingest(
                file_chunks(src, self.config.chunk_size), url=url, mime_type=mime_type, refs=refs
            )
        except OSError as exc:
            raise InvalidInputError(f"cannot read {src}: {exc.strerror or exc}") from exc
        except MediaStoreError as exc:
            wrapped = _with_context(exc, str(src))
            if wrapped is exc:
                raise
            raise wrapped from exc

    def add_bytes(
        self,
        data: bytes | bytearray | memoryview,
        *,
        url: str | None = None,
        mime_type: str | None = None,
        ref: str | None = None,
        position: int | None = None,
        role: str | None = None,
    ) -> MediaRecord:
        """Add content held in memory (``ref``, ``position``, ``role``: as in :meth:`add_file`)."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInputError(f"add_bytes needs bytes, got {type(data).__name__}")
        return self._ingest(
            bytes_chunks(data, self.config.chunk_size),
            url=url,
            mime_type=mime_type,
            refs=_takes(ref, position, role),
        )

    def add_stream(
        self,
        stream: BinaryIO | Iterable[bytes],
        *,
        url: str | None = None,
        mime_type: str | None = None,
        ref: str | None = None,
        position: int | None = None,
        role: str | None = None,
    ) -> MediaRecord:
        """Add content from a binary file object (``readinto``/``read``) or an iterable of chunks.

        The stream is read once, in chunks, whatever its size: memory stays constant.
        ``ref``, ``position``, ``role``: as in :meth:`add_file`.
        """
        refs = _takes(ref, position, role)
        if hasattr(stream, "readinto"):
            chunks: Chunks = read_chunks(stream)  # type: ignore[arg-type]
        elif hasattr(stream, "read"):
            chunks = iter(lambda: stream.read(self.config.chunk_size), b"")
        else:
            chunks = stream
        return self._ingest(chunks, url=url, mime_type=mime_type, refs=refs)

    def _ingest(
        self,
        chunks: Chunks,
        *,
        url: str | None = None,
        mime_type: str | None = None,
        refs: Sequence[RefTake] = (),
    ) -> MediaRecord:
        infos = []
        if url is not None:
            _check_url_label(url)
            infos.append(UrlInfo(url=url))
        row = self.lifecycle.ingest(chunks, infos, mime_hint=mime_type, refs=refs)
        return self.lifecycle.record(row, url)

    # --- downloading ---------------------------------------------------------------------
    def _get_downloader(self) -> Downloader:
        with self._downloader_lock:
            if self._downloader is None:
                self._downloader = Downloader(self.lifecycle, self.get_by_url, self._blob_url)
            return self._downloader

    def fetch(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        refresh: bool = False,
        deadline: float | None = None,
        retry_failed: bool = False,
        ref: str | None = None,
        position: int | None = None,
        role: str | None = None,
    ) -> MediaRecord:
        """The media at ``url``: from the store when present and intact, else downloaded.

        A cached file is checked first (re-hashed, or only its size with
        ``verify_on_access=False``); a missing or damaged one is downloaded again.
        ``refresh=True`` revalidates with the ETag / Last-Modified of the last download (a 304
        keeps the file). After redirects, the final URL is recorded too.

        Args:
            url: An http(s) URL; refused if it reaches a non-public address (see
                ``allow_private_networks``), uses another scheme or carries credentials.
            timeout: Seconds a single read (or connect, at most 10 s) may wait. A body
                slower than ``speed_limit`` bytes/s for ``speed_time`` s is cut too.
            refresh: Revalidate a cached URL with the server.
            deadline: Seconds the whole download may take (default
                ``config.download_deadline``, None: no total limit).
            retry_failed: Ask again for a URL whose permanent failure is remembered (see
                ``failure_ttl``); ``refresh`` does too.
            ref: Take this reference (see :meth:`add_ref`) on the content, with
                ``position`` and ``role``, whether it was downloaded or found stored. If the
                download fails, the reference is still taken, on the URL alone (no file);
                the first time the URL is stored, it holds that file.

        Raises:
            FetchError: a subclass naming the URL and the reason (blocked, HTTP status,
                timeout, too large, truncated, refused content...). Nothing is stored then.
            InvalidInputError: ``ref``, ``position`` or ``role`` is not usable (nothing is
                fetched).
        """
        take = _takes(ref, position, role)
        downloader = self._get_downloader()

        def once() -> MediaRecord:
            return downloader.fetch(
                url,
                timeout=timeout,
                refresh=refresh,
                deadline=deadline,
                retry_failed=retry_failed,
            )[0]

        if not take:
            return once()
        result = _result_of(url, once)
        return _unwrap(self._hold(result, take[0], once))

    def fetch_many(
        self,
        urls: Iterable[str | RefUrl | tuple[str, str]],
        *,
        max_workers: int = DEFAULT_MAX_WORKERS,
        timeout: float = DEFAULT_TIMEOUT,
        progress: Progress | None = None,
        per_host: int | None = None,
        deadline: float | None = None,
        variants: str | None = None,
        retry_failed: bool = False,
    ) -> list[FetchResult]:
        """Fetch many URLs in parallel: one :class:`FetchResult` per input URL, in input order.

        A URL repeated in the input is fetched once; one URL's failure never stops the others;
        each worker thread keeps its own session (connections are reused); each host's
        concurrency starts at ``config.per_host_start`` (6) and grows to
        ``config.per_host_max`` (16) while it answers promptly; a 429/503 or Retry-After slows
        the whole host down. ``per_host`` (or ``config.per_host``) caps it; every host a
        redirect leads to is limited too. ``deadline`` bounds each whole download.
        ``progress(done, total)`` is called as each distinct URL completes.

        ``variants`` (default ``config.variants``): ``"largest"`` downloads, of the URLs of
        one asset in several sizes (by the identity rules), only the highest-ranked one; the
        others' results carry its record and name it in ``variant_of``. ``"each"``: every
        URL is its own download. ``retry_failed``: ask again for URLs whose permanent failure
        is remembered (see ``failure_ttl``), instead of failing them from memory.

        An item may be a :class:`~mediastore.references.RefUrl` (or a ``(ref, url)``
        tuple): its reference is taken as :meth:`fetch` takes one, in one transaction for
        the batch.

        Raises:
            InvalidInputError: ``max_workers``, ``timeout``, ``per_host`` or ``variants``
                out of range; a reference item that is not usable.
        """
        items = [ref_url(item) for item in urls]
        results = self._get_downloader().fetch_many(
            [url for url, _ in items],
            max_workers=max_workers,
            timeout=timeout,
            progress=progress,
            per_host=per_host,
            deadline=deadline,
            variants=self.config.variants if variants is None else variants,
            retry_failed=retry_failed,
        )
        return self._hold_many(results, [take for _, take in items], timeout=timeout)

    def iter_fetch(
        self,
        urls: Iterable[str | RefUrl | tuple[str, str]],
        *,
        max_workers: int = DEFAULT_MAX_WORKERS,
        timeout: float = DEFAULT_TIMEOUT,
        per_host: int | None = None,
        deadline: float | None = None,
        variants: str | None = None,
        retry_failed: bool = False,
    ) -> Generator[FetchResult, None, None]:
        """Fetch any number of URLs, yielding each :class:`FetchResult` as it completes.

        ``urls`` may be a generator of millions: it is read lazily, with at most three times
        ``max_workers`` URLs taken and not yet yielded, and memory stays constant (a URL seen
        before is settled by the catalog: already stored, it is a cached hit). Results come
        in completion order, one per input URL. Hosts are limited as in :meth:`fetch_many`.
        Closing the generator early (``break``, an exception, Ctrl-C) stops the running
        downloads promptly; their temp files are discarded and nothing half-done is recorded.

        Args:
            urls: Any iterable of URLs (anything not a valid http(s) URL fails alone), or
                of :class:`~mediastore.references.RefUrl` items whose references are
                taken as :meth:`fetch` takes one, as each result comes.
            max_workers: Download threads.
            timeout: Seconds a single read (or connect, at most 10 s) may wait.
            per_host: Cap on concurrent requests to one host (default: adaptive).
            deadline: Seconds each whole download may take (None: no total limit).
            variants: ``"largest"`` (default ``config.variants``): as in :meth:`fetch_many`;
                the input is then read whole before the first download (every size of an
                asset must be seen before the largest is chosen).
            retry_failed: As in :meth:`fetch_many`.

        Yields:
            One :class:`FetchResult` per input URL, as each completes.

        Raises:
            InvalidInputError: ``max_workers``, ``timeout``, ``per_host`` or ``variants``
                out of range.
        """
        waiting: dict[str, deque[RefTake]] = {}

        def plain() -> Iterator[str]:
            for item in urls:
                url, take = ref_url(item)
                if take is not None:
                    waiting.setdefault(url, deque()).append(take)
                yield url

        results = self._get_downloader().iter_fetch(
            plain(),
            max_workers=max_workers,
            timeout=timeout,
            per_host=per_host,
            deadline=deadline,
            variants=self.config.variants if variants is None else variants,
            retry_failed=retry_failed,
        )
        return self._holding(results, waiting, timeout=timeout)

    def _holding(
        self,
        results: Generator[FetchResult, None, None],
        waiting: dict[str, deque[RefTake]],
        *,
        timeout: float,
    ) -> Generator[FetchResult, None, None]:
        """``results``, each with the reference its input item carried taken first."""
        with closing(results):
            for result in results:
                queued = waiting.get(result.url)
                if queued:
                    take = queued.popleft()
                    if not queued:
                        del waiting[result.url]
                    result = self._hold(result, take, self._refetch(result.url, timeout))
                yield result

    # --- references ----------------------------------------------------------------------
    def _refetch(self, url: str, timeout: float) -> Callable[[], MediaRecord]:
        """A fetch of ``url`` again, for content collected before its reference held it."""
        return lambda: self._get_downloader().fetch(url, timeout=timeout)[0]

    def _hold(
        self, result: FetchResult, take: RefTake, again: Callable[[], MediaRecord]
    ) -> FetchResult:
        """Take ``take`` on the result's content, or on its URL if the fetch failed.

        Content found stored may be collected between the lookup and the reference (its
        last reference went long ago): the reference then finds it gone, and the URL is
        fetched again (now a miss: a download, recorded with the reference's count next).
        """
        for _ in range(HOLD_ROUNDS):
            if result.record is None:
                if not isinstance(result.error, InvalidInputError):
                    self.catalog.take_pending_refs([(take, result.url)], _now())
                return result
            gone = self.catalog.take_refs([(take, result.record.md5, result.url)], _now())
            if not gone:
                return result
            result = _result_of(result.url, again)
        raise CatalogError(f"{result.url}: its content kept being collected; no reference taken")

    def _hold_many(
        self, results: list[FetchResult], takes: list[RefTake | None], *, timeout: float
    ) -> list[FetchResult]:
        """Take each result's reference: the ones on stored content in one transaction."""
        stored = [
            (take, r.record.md5, r.url)
            for r, take in zip(results, takes, strict=True)
            if take is not None and r.record is not None
        ]
        failed = [
            (take, r.url)
            for r, take in zip(results, takes, strict=True)
            if take is not None and r.record is None and not isinstance(r.error, InvalidInputError)
        ]
        now = _now()
        gone = self.catalog.take_refs(stored, now)
        self.catalog.take_pending_refs(failed, now)
        return [
            self._hold(r, take, self._refetch(r.url, timeout))
            if take is not None and r.record is not None and r.record.md5 in gone
            else r
            for r, take in zip(results, takes, strict=True)
        ]

    def add_ref(
        self,
        ref: str,
        md5_or_url: str,
        *,
        position: int | None = None,
        role: str | None = None,
    ) -> MediaRecord:
        """Take the reference ``ref`` (a key of the caller's: ``post:123``) on stored content.

        A key may hold any number of files and a file any number of keys; taking a key a
        file already has again only updates its ``position`` (its order among the key's
        files, see :meth:`media_for`) and ``role``. Content that has had references and
        has none left is removed by ``gc(unreferenced=True)`` after a grace period; a
        store that never takes a reference is never collected that way.

        Args:
            ref: The key: a non-empty string of at most 512 characters.
            md5_or_url: The content, by md5 (or a unique prefix of 6+ hex digits) or by a
                URL it is stored under.
            position: The file's place among the key's files (0 or more).
            role: What the file is to the key (``cover``), at most 64 characters.

        Returns:
            The record of the content the key now holds.

        Raises:
            InvalidInputError: an unusable key, md5, position or role.
            MediaNotFoundError: no such content (or it was removed, or collected while the
                reference was being taken): nothing was taken.
        """
        take = ref_take(ref, position, role)
        if not isinstance(md5_or_url, str):
            raise InvalidInputError(f"add_ref needs an md5 or a URL, got {md5_or_url!r}")
        url = md5_or_url if "://" in md5_or_url else None
        row = self._content_of(md5_or_url)
        if self.catalog.take_refs([(take, row.md5, url)], _now()):
            raise MediaNotFoundError(f"{md5_or_url} was removed; no reference taken")
        log.info("reference %s on %s", take.ref, row.md5)
        return self.lifecycle.record(row, url)

    def _content_of(self, md5_or_url: str) -> MediaRow:
        if "://" in md5_or_url:
            found = self.catalog.by_url(md5_or_url)
            if found is None or found.status == STATUS_REMOVED:
                raise MediaNotFoundError(f"no stored media for URL {md5_or_url}")
            return found
        return self._require(self.resolve_md5(md5_or_url))

    def refs(self, md5: str) -> list[Reference]:
        """The references on content (by md5 or unique prefix), by key.

        Raises:
            InvalidMD5Error / AmbiguousMD5Error / MediaNotFoundError: as :meth:`resolve_md5`.
        """
        return self.catalog.refs_of(self.resolve_md5(md5))

    def references(self, ref: str) -> list[Reference]:
        """Every reference of the key ``ref``, in its order, including those taken by a fetch
        that failed (``md5`` None: waiting for their URL to be stored).

        Raises:
            InvalidInputError: not a usable key.
        """
        return self.catalog.refs_named(check_ref(ref))

    def media_for(self, ref: str) -> list[MediaRecord]:
        """The stored files the key ``ref`` holds, in its order: by position (files taken
        without one last), then in the order they were taken. One indexed read.

        Raises:
            InvalidInputError: not a usable key.
        """
        return [self.lifecycle.record(row) for row in self.catalog.media_for(check_ref(ref))]

    def drop_ref(self, ref: str, md5_or_url: str | None = None, *, missing_ok: bool = False) -> int:
        """Drop the key ``ref`` from every file it holds, or from one (by md5, unique prefix
        or the URL the reference was taken through). Never removes content by itself: a
        file whose last reference goes is left for ``gc(unreferenced=True)`` after the grace
        period, and a file another key holds stays whatever happens to this one.

        Returns:
            How many references were dropped.

        Raises:
            InvalidInputError: not a usable key or md5.
            MediaNotFoundError: the key holds no such reference (unless ``missing_ok``).
        """
        key = check_ref(ref)
        md5 = url = None
        if md5_or_url is not None:
            if not isinstance(md5_or_url, str):
                raise InvalidInputError(f"drop_ref needs an md5 or a URL, got {md5_or_url!r}")
            if "://" in md5_or_url:
                url = md5_or_url
            else:
                md5 = self.resolve_md5(md5_or_url)
        dropped = self.catalog.drop_refs(key, md5=md5, url=url)
        if not dropped and not missing_ok:
            what = f" on {md5_or_url}" if md5_or_url is not None else ""
            raise MediaNotFoundError(f"no reference {key!r}{what}")
        log.info("dropped %d reference(s) %s", dropped, key)
        return dropped

    # --- lookups -------------------------------------------------------------------------
    def get_by_url(self, url: str, *, variant: str | None = None) -> MediaRecord | None:
        """The stored media for ``url``, or None if unknown or its file is missing/corrupt.

        ``variant="any"`` asks for the best stored variant of the URL's asset instead (the
        highest rank, then the most pixels; see :meth:`variants`), whichever size ``url``
        names; without stored variants it is the exact answer.

        When the catalog has no row for ``url``, a stored URL of the same identity and variant
        answers it (a signature that rotated: see :mod:`mediastore.identity`), and the URL is
        recorded; else the legacy cache is consulted: a legacy file
        already imported (found by the URL's MD5) gets its URL recorded; one not imported yet
        is ingested now (the legacy file itself is left in place). Later lookups are plain
        catalog hits. A read-only store only reads the catalog.

        Raises:
            InvalidInputError: ``url`` is not a non-empty string; ``variant`` is not None or
                ``"any"``.
        """
        _check_url_label(url)
        if variant is not None:
            if variant != "any":
                raise InvalidInputError(f'variant must be None or "any", got {variant!r}')
            best = self.variants(url)
            if best:
                return best[0].record
        row = self.catalog.by_url(url)
        if row is None:
            row = self._identity_lookup(url)
        if row is None and not self.read_only:
            row = self._legacy_lookup(url)
        if row is None or row.status != STATUS_OK:
            return None
        return self.lifecycle.record(row, url)

    def failures(self, *, limit: int | None = None) -> list[Failure]:
        """The URLs whose permanent failure (404, 410, refused or corrupt content) is
        remembered, latest first: within ``failure_ttl`` of ``failed_at`` a fetch of one
        fails from memory, with no request (``retry_failed=True`` asks again).

        Raises:
            InvalidInputError: ``limit`` is not a positive integer.
        """
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise InvalidInputError(f"limit must be a positive integer, got {limit!r}")
        ttl = self.config.failure_ttl
        return [
            Failure(
                url, error, status, reason, when, when + timedelta(seconds=ttl) if ttl else None
            )
            for url, error, status, reason, when in self.catalog.failures(limit)
        ]

    def identity(self, url: str) -> Identity | None:
        """What the store's identity rules say of ``url`` (its identity, variant, rank and
        expiry), or None when no rule covers it."""
        _check_url_label(url)
        return self.lifecycle.identities.of(url)

    @property
    def identity_rules(self) -> tuple[Rule, ...]:
        """The URL identity rules in use, in the order they are tried (the user's first)."""
        return self.lifecycle.identities.rules

    def variants(self, url_or_md5: str) -> list[Variant]:
        """The stored variants of the asset a URL names (or a stored file belongs to), largest
        first: by rank, then by pixels. Empty when no identity rule covers it.

        Raises:
            InvalidInputError: not a URL or an MD5 (a prefix is not enough here).
        """
        _check_url_label(url_or_md5)
        if MD5_TEXT.fullmatch(url_or_md5.strip().lower()):
            identity = self.catalog.identity_of(normalize_md5(url_or_md5))
        else:
            found = self.lifecycle.identities.of(url_or_md5)
            identity = found.digest if found is not None else None
        if identity is None:
            return []
        found_rows = self.catalog.identity_rows(identity)
        stored = [
            Variant(variant, rank, self.lifecycle.record(row, url))
            for variant, rank, url, row in found_rows
        ]
        return sorted(
            stored,
            key=lambda v: (
                -1 if v.rank is None else v.rank,
                (v.record.width or 0) * (v.record.height or 0),
            ),
            reverse=True,
        )

    def _identity_lookup(self, url: str) -> MediaRow | None:
        """Stored content of a URL of the same identity and variant (a rotated signature,
        say); the URL is recorded for it, so the next lookup is an exact hit."""
        found = self.lifecycle.identities.of(url)
        if found is None:
            return None
        row = self.catalog.by_identity(found.digest, found.variant)
        if row is not None and not self.read_only:
            self.catalog.attach_url(row.md5, url, found)
        return row

    def _legacy_lookup(self, url: str) -> MediaRow | None:
        """A legacy row for ``url`` (its URL now recorded), or its legacy file ingested now."""
        key = url_md5(url)
        row = self.catalog.by_legacy_key(key)
        if row is not None:
            self.catalog.claim_legacy_url(key, url)
            return row
        path = maintenance.legacy_file(self._legacy_dir, url)
        if path is None:
            return None
        try:
            row = maintenance.ingest_legacy_file(self.lifecycle, path, url)
        except MediaStoreError as exc:
            log.warning("legacy file %s for %s not imported: %s", path, url, exc)
            return None
        log.info("imported legacy file %s for %s", path, url)
        return row

    def get_by_md5(self, md5: str) -> MediaRecord | None:
        """The media with this content MD5 (ok, missing or corrupt), or None.

        Raises:
            InvalidMD5Error: ``md5`` is not 32 hex characters.
        """
        row = self._live_row(md5)
        return self.lifecycle.record(row) if row else None

    def describe(self, md5: str) -> MediaRecord | None:
        """The media with this content MD5, like :meth:`get_by_md5`, with its ``metadata``
        (a second read: the point lookups leave it out).

        Raises:
            InvalidMD5Error: ``md5`` is not 32 hex characters.
        """
        rec = self.get_by_md5(md5)
        if rec is None:
            return None
        return rec._replace(metadata=self.catalog.metadata(rec.md5))

    def probe(self, *, progress: Progress | None = None) -> ProbeReport:
        """Read the metadata of files stored before it was read at ingest (catalog revision
        0010), and record it.

        Each file whose row has never had its metadata read is streamed once through its
        format's structure walk (no hashing; an object store's file is read once), and a page
        of results is recorded per transaction: online (other processes may keep adding) and
        resumable (a rerun reads only what is left). ``progress(done, total)`` counts files.

        Raises:
            ReadOnlyStoreError: the store is read-only and some file needs reading.
        """
        return maintenance.probe(self.lifecycle, progress=progress)

    def index(self, *, progress: Progress | None = None) -> IndexReport:
        """Compute and record the similarity hashes of every stored image that has none.

        Each image (its first frame) is decoded once for a pixel hash and a 64-bit
        perceptual hash (:mod:`mediastore.formats.imagehash`), which :meth:`similar` and
        :meth:`duplicate_groups` query. Online (other processes may keep adding) and
        resumable: a page of images is recorded per transaction, and a rerun reads only the
        images left; a no-op when every image is hashed. ``progress(done, total)`` counts
        images.

        Raises:
            ReadOnlyStoreError: the store is read-only and some image needs hashing.
        """
        return duplicates.index(self.lifecycle, progress=progress)

    def similar(self, md5_or_url: str, max_distance: int = DEFAULT_DISTANCE) -> list[SimilarImage]:
        """Stored images that look like this one: perceptual hashes within ``max_distance``
        bits (0 to 8) of its own, nearest first, each with its distance.

        An indexed query (no scan of the catalog). Only images :meth:`index` has hashed are
        found; the image asked about is hashed now if it was not.

        Args:
            md5_or_url: The image, by md5 (or a unique prefix of 6+ hex digits) or by a
                URL it was stored from.
            max_distance: Bits the perceptual hashes may differ by: 2 finds nearly every
                re-encoding or resize, 4 (the default) also small crops, 8 at most.

        Raises:
            InvalidInputError: ``max_distance`` not an integer from 0 to 8; a bad md5.
            MediaNotFoundError: no such md5 or URL, or its file is missing.
            UnsupportedMediaError: the content is not an image, or does not decode.
        """
        duplicates.check_distance(max_distance)
        return duplicates.similar(self.lifecycle, self._content_of(md5_or_url), max_distance)

    def duplicate_groups(
        self, max_distance: int = DEFAULT_DISTANCE, *, pixel_only: bool = False
    ) -> Iterator[DuplicateGroup]:
        """Groups of near-duplicate stored images, streamed (each group as it is found).

        Images are visited in md5 order; each one not yet in a group starts a group of every
        ungrouped image within ``max_distance`` of it, so an image is in at most one group.
        The hashes are read once into memory (about 80 bytes per image) and looked up there
        by band, as the catalog's query does: one query per image would take far longer.
        Each group names a suggested keeper (most pixels, then largest file) and what the
        others take. ``pixel_only``: only images whose
        decoded pixels are identical. Nothing is removed. Only hashed images are grouped
        (run :meth:`index` first).

        Raises:
            InvalidInputError: ``max_distance`` not an integer from 0 to 8.
        """
        duplicates.check_distance(max_distance)
        return duplicates.duplicate_groups(self.lifecycle, max_distance, pixel_only=pixel_only)

    def urls_for(self, md5: str) -> list[str]:
        """Every URL recorded for this content, oldest first."""
        return self.catalog.urls_for(normalize_md5(md5))

    def open(self, md5: str) -> BinaryIO:
        """Open a stored file for reading (never through a link).

        Raises:
            MediaNotFoundError: unknown md5, or its file is gone.
            StorageError: something other than a regular file is at its address.
        """
        row = self._require(md5)
        try:
            fh, _ = self.blobs.open(ref_of(row))
        except FileNotFoundError as exc:
            raise MediaNotFoundError(f"file of {row.md5} is missing from the store") from exc
        return fh

    def presigned_url(self, md5: str, seconds: int = 300) -> str | None:
        """A short-lived URL that GETs the file straight from its object store, or None where
        there is none (a local directory; an unfinished move between blob stores).

        Raises:
            MediaNotFoundError: unknown md5.
        """
        row = self._require(md5)
        sign = getattr(self.blobs, "presigned_get", None)  # only an object store has it
        return None if sign is None else str(sign(ref_of(row), seconds))

    def _require(self, md5: str) -> MediaRow:
        row = self._live_row(md5)
        if row is None:
            raise MediaNotFoundError(f"no media with md5 {normalize_md5(md5)}")
        return row

    def _live_row(self, md5: str) -> MediaRow | None:
        """The row of ``md5`` unless there is none or its content was removed."""
        row = self.catalog.by_md5(normalize_md5(md5))
        return None if row is None or row.status == STATUS_REMOVED else row

    # --- maintenance ---------------------------------------------------------------------
    def verify(
        self,
        md5: str | Iterable[str] | None = None,
        *,
        progress: Progress | None = None,
        older_than: timedelta | None = None,
        limit: int | None = None,
        repair: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        deep: bool | None = None,
    ) -> VerifyReport:
        """Re-hash stored files against their md5 and record the outcome.

        Args:
            md5: One md5, several, or None for every file in the catalog.
            progress: Called with (done, total) after each file.
            older_than: Only files not verified within this period (never-verified first),
                chosen by an indexed query: the nightly job's call.
            limit: Verify at most this many files (least recently verified first).
            repair: Download missing or corrupt files again from a URL recorded for them;
                a download must hash back to the same md5, else the file stays quarantined
                (for a file the deep check found broken, good content under a new md5 is
                stored and its URLs move there: ``report.replaced``).
            deep: Also decode images fully and walk containers (default
                ``config.verify_deep``); a file that fails is quarantined as corrupt.
            timeout: Per-read timeout of repair downloads.

        A file that no longer hashes to its md5 (or has the wrong size) is moved to
        ``<root>/quarantine/`` (never deleted) and marked corrupt; a missing one is marked
        missing; a good one gets ``last_verified_at`` = now.
        """
        ownership.refuse(self.foreign_blobs, "verify")
        rows = verification.select_rows(self.catalog, md5, older_than=older_than, limit=limit)

        def fix(damaged: str, broken: bool) -> verification.Repaired:
            return maintenance.repair(
                self.lifecycle, self._get_downloader(), damaged, timeout=timeout, broken=broken
            )

        return verification.verify(
            self.lifecycle,
            rows,
            progress=progress,
            repair=fix if repair else None,
            deep=self.config.verify_deep if deep is None else deep,
        )

    def location(self, record: MediaRecord) -> str:
        """Where a record's bytes are: its local path, or its object's ``s3://`` URL."""
        if record.path is not None:
            return str(record.path)
        return self.blobs.describe(BlobRef(BY_EXTENSION[record.extension], record.md5))

    def migrate_store(
        self, to: str, *, delete_source: bool = False, progress: Progress | None = None
    ) -> MoveReport:
        """Copy every stored file to the blob store ``to`` (a directory or s3://bucket/prefix).

        Online and resumable (see :mod:`mediastore.migrate`): while the move is unfinished,
        stores opened on either end read from both and write to ``to``; a rerun continues
        where a killed one stopped; each copy is hashed at the target before it is recorded.
        Once it finishes, open the store with ``blob_url=to``.

        Args:
            to: The target blob store.
            delete_source: Delete each source copy once its copy is recorded.
            progress: Called with (files done, files in this pass).

        Raises:
            InvalidInputError: ``to`` is this store's own blob store, or the store is being
                moved elsewhere already.
        """
        target_url = canonical_blob_url(to, self.root)
        if target_url == self.blob_url:
            raise InvalidInputError(f"the store's bytes are in {to} already")
        done = self.catalog.finished_move(self.blob_url, target_url)
        if done is not None and self.catalog.store_info().get("blob_url") == target_url:
            return MoveReport(  # finished before: nothing to copy
                source=done.source,
                target=done.target,
                already=self.catalog.count_moved(done.id),
                finished=True,
            )
        ownership.refuse(self.foreign_blobs, "migrate-store")
        move = self.catalog.start_move(self.blob_url, target_url, datetime.now(UTC))
        source = open_blob_store(self._blob_url, self.root, read_only=self.read_only)
        try:
            target = open_blob_store(to, self.root, read_only=self.read_only)
        except BaseException:
            source.close()
            raise
        try:
            return migrate.migrate(
                self.lifecycle,
                source,
                target,
                move,
                delete_source=delete_source,
                progress=progress,
            )
        finally:
            target.close()
            source.close()

    def stats(self, *, content: bool = False) -> StoreStats:
        """Counts and sizes from the catalog alone (no directory walk).

        Args:
            content: Also sum what the files say (``video_duration``, ``pages``) and count
                the files whose metadata was never read (``unprobed``): one pass over the
                media rows, where the rest reads a few counter rows.
        """
        raw = self.catalog.stats()
        counters: dict[str, tuple[int, int]] = raw["counters"]
        by_type = {t: TypeStats() for t in MEDIA_TYPES}
        by_status = {s: TypeStats() for s in LIVE_STATUSES}
        for name, (count, size) in counters.items():
            kind, _, rest = name.partition(":")
            media_type, _, status = rest.partition(":")
            if kind != "media" or status == STATUS_REMOVED or not count:
                continue
            t = by_type.get(media_type, TypeStats())
            by_type[media_type] = TypeStats(count=t.count + count, size=t.size + size)
            st = by_status.get(status, TypeStats())
            by_status[status] = TypeStats(count=st.count + count, size=st.size + size)
        dedup = counters.get("dedup", (0, 0))
        return StoreStats(
            total_files=sum(t.count for t in by_type.values()),
            total_size=sum(t.size for t in by_type.values()),
            by_type=by_type,
            by_status=by_status,
            total_urls=counters.get("urls", (0, 0))[0],
            dedup_saved_bytes=dedup[1],
            dedup_adds=dedup[0],
            oldest_verified_at=raw["oldest"],
            unverified=counters.get("unverified", (0, 0))[0],
            **self._content_stats(content),
            **self._ref_stats(),
        )

    def _ref_stats(self) -> dict[str, int]:
        held, held_bytes, lost, lost_bytes = self.catalog.ref_stats()
        return {
            "referenced_files": held,
            "referenced_bytes": held_bytes,
            "unreferenced_files": lost,
            "unreferenced_bytes": lost_bytes,
        }

    def _content_stats(self, content: bool) -> dict[str, Any]:
        if not content:
            return {}
        seconds, pages, unprobed = self.catalog.content_stats()
        return {"video_duration": seconds, "pages": pages, "unprobed": unprobed}

    def import_legacy(
        self, path: str | Path | None = None, *, progress: Progress | None = None
    ) -> LegacyImportReport:
        """Import the legacy cache (files named by the MD5 of their URL); idempotent.

        Args:
            path: The legacy directory; default ``config.legacy_dir`` or ``<root>/images``.
            progress: Called with (done, total) as files are processed.
        """
        return maintenance.import_legacy(
            self.lifecycle, Path(path) if path is not None else None, progress=progress
        )

    def backup(self, dest: str | Path) -> BackupReport:
        """Write a consistent copy of the catalog to ``dest`` while writers go on.

        Args:
            dest: A new file, or a directory (the copy is then named
                ``catalog-<UTC time>.sqlite3`` in it).

        Returns:
            Where the copy is and what it records.

        Raises:
            InvalidInputError: ``dest`` exists and is not a directory; the catalog is not a
                SQLite file (copy a PostgreSQL catalog with ``pg_dump``).
            StorageError: the copy could not be written.
        """
        path = sqlite_path(self.config.catalog_url)
        if path is None:
            raise InvalidInputError(
                "backup copies a SQLite catalog; copy a PostgreSQL catalog with pg_dump"
            )
        self.catalog.flush_urls()
        return backup_sqlite(path, Path(dest).expanduser(), self.config.busy_timeout)

    def gc(
        self,
        *,
        dry_run: bool = False,
        unreferenced: bool | None = None,
        grace: timedelta | None = None,
        thumbnail_bytes: int = thumbnails.DEFAULT_MAX_BYTES,
    ) -> GcReport:
        """Clean up after crashes and finish removals; see :func:`mediastore.maintenance.gc`.

        Never deletes a file that a row references or a writer may be about to reference.

        Args:
            dry_run: Report what would be done; change nothing.
            unreferenced: Also remove content that has had references and has had none for
                ``grace`` (by the database's clock), as :meth:`remove` would
                (``report.unreferenced``). Content never referenced is never touched, and a
                reference taken while gc runs keeps its content. None (default): as the
                store's ``collect_unreferenced`` setting says (off unless set).
            grace: How long content stays after its last reference went; None (default):
                the store's ``gc_grace`` setting (24 h unless set).
            thumbnail_bytes: The most the kept thumbnails may take: the thumbnails of removed
                content go, then the least recently used (not in a dry run).

        Raises:
            InvalidInputError: ``unreferenced`` is not a bool or None, or ``grace`` is not
                a timedelta of 0 or more.
        """
        if unreferenced is None:
            unreferenced = self.config.collect_unreferenced
        elif not isinstance(unreferenced, bool):
            raise InvalidInputError(f"unreferenced is True, False or None, got {unreferenced!r}")
        if grace is None:
            grace = timedelta(seconds=self.config.gc_grace)
        seconds = grace_seconds(grace) if unreferenced else None
        ownership.refuse(self.foreign_blobs, "gc")
        report = maintenance.gc(self.lifecycle, dry_run=dry_run, unreferenced_grace=seconds)
        if not dry_run and not self.read_only:
            thumbnails.trim(
                self.root, thumbnail_bytes, live=lambda md5: self._live_row(md5) is not None
            )
        return report

    def reidentify(self, *, progress: Progress | None = None) -> ReidentifyReport:
        """Give every recorded URL the identity the rules in use say: after a rule was added
        to ``mediastore.toml`` (or changed), the URLs recorded before it are known by it too.

        Online (other processes may keep working) and resumable (each page of rows is its
        own transaction; a rerun changes only what is left). ``progress(done, total)``
        counts URL rows.

        Raises:
            ReadOnlyStoreError: the store is read-only and some URL needs a change.
        """
        return maintenance.reidentify(self.lifecycle, progress=progress)

    def reindex(self, *, progress: Progress | None = None) -> ReindexReport:
        """Rebuild the media rows from the files on disk (lost or restored catalog)."""
        ownership.refuse(self.foreign_blobs, "reindex")
        return maintenance.reindex(self.lifecycle, progress=progress)

    def claim_blobs(self) -> None:
        """Make this store's blob location the catalog's, deliberately: after its files were
        moved here by hand, the marker is written here and the location recorded, so verify,
        gc, reindex and migrate-store run again (see :mod:`mediastore.ownership`).

        Raises:
            ReadOnlyStoreError: the store is open read-only.
        """
        ownership.claim(self.catalog, self.blobs, self.blob_url)
        self.foreign_blobs = None

    def remove(self, md5: str) -> MediaRecord:
        """Forget content: its row and URLs at once, its file as soon as no writer holds it.

        From the moment this returns, lookups of the md5 and of its URLs miss. The file is
        deleted now, unless a concurrent add of the same content holds it (that add then
        records it again, as its own); ``gc`` deletes what is left over.

        Raises:
            InvalidMD5Error: not an md5. MediaNotFoundError: not in the catalog.
        """
        row = self.lifecycle.remove(normalize_md5(md5))
        thumbnails.remove(self.root, row.md5)
        log.info("removed %s", row.md5)
        return self.lifecycle.record(row)

    # --- finding and getting files out -------------------------------------------------------
    def resolve_md5(self, text: str) -> str:
        """The full md5 of a stored file named by its md5 or a unique prefix of it.

        As git does with commits: a prefix of at least 6 hex characters that only one live
        file's md5 starts with (a range scan of the primary key).

        Raises:
            InvalidMD5Error: not hex, or shorter than 6 characters.
            AmbiguousMD5Error: several files start with it (a few are listed).
            MediaNotFoundError: none does (for a full md5: returned as is, unchecked).
        """
        if not isinstance(text, str):
            raise InvalidMD5Error(f"not an md5: {text!r}")
        prefix = text.strip().lower()
        if len(prefix) == 32:
            return normalize_md5(prefix)
        if not MD5_PREFIX.fullmatch(prefix):
            raise InvalidMD5Error(
                f"not an md5 or an md5 prefix (6 to 32 hex characters): {text[:80]!r}"
            )
        found = self.catalog.md5s_with_prefix(prefix, limit=AMBIGUOUS_SHOWN + 1)
        if not found:
            raise MediaNotFoundError(f"no media with an md5 starting with {prefix}")
        if len(found) > 1:
            more = ", ..." if len(found) > AMBIGUOUS_SHOWN else ""
            raise AmbiguousMD5Error(
                f"md5 prefix {prefix} is ambiguous: {', '.join(found[:AMBIGUOUS_SHOWN])}{more}",
                found[:AMBIGUOUS_SHOWN],
            )
        return found[0]

    def count_to_verify(
        self,
        md5: str | Iterable[str] | None = None,
        *,
        older_than: timedelta | None = None,
        limit: int | None = None,
    ) -> int:
        """How many files :meth:`verify` with these arguments checks (at most): a progress
        bar's total, known before the first file is done (an indexed COUNT)."""
        if md5 is not None:
            return 1 if isinstance(md5, str) else len(set(md5))
        since = datetime.now(UTC) - older_than if older_than is not None else None
        count = self.catalog.count_to_verify(verified_before=since)
        return count if limit is None else min(count, limit)

    def lookup_url(self, url: str) -> MediaRecord | None:
        """The catalog's record for ``url`` whatever its file's status; no legacy fallback.

        Unlike :meth:`get_by_url` (the importer's call, None unless the file is intact),
        this says what the catalog knows: a URL whose file is missing or corrupt has a
        record with that ``status``.
        """
        _check_url_label(url)
        row = self.catalog.by_url(url)
        if row is None or row.status == STATUS_REMOVED:
            return None
        return self.lifecycle.record(row, url)

    def list_media(self, where: MediaFilter | None = None) -> Iterator[MediaRecord]:
        """Stored files meeting ``where`` (all live ones by default), in md5 order, streamed.

        Read a page at a time: memory stays constant at any catalog size. A
        ``url_contains`` condition reads every URL row.
        """
        cond = where or MediaFilter()
        left = cond.limit
        if left == 0:
            return
        pages = self.catalog.list_media(
            media_type=cond.media_type,
            status=cond.status,
            min_size=cond.min_size,
            max_size=cond.max_size,
            since=cond.since,
            before=cond.before,
            url_contains=cond.url_contains,
            min_duration=cond.min_duration,
            max_duration=cond.max_duration,
            shape=cond.orientation,
            animated=cond.animated,
            ref=cond.ref,
            unreferenced=cond.unreferenced,
            after=cond.after or "",
            page=min(500, left or 500),
        )
        for page in pages:
            for row, metadata in page:
                yield self.lifecycle.record(row)._replace(metadata=metadata)
                if left is not None:
                    left -= 1
                    if left == 0:
                        return

    def export(
        self,
        directory: str | Path,
        records: Iterable[MediaRecord],
        *,
        name_by: str = "md5",
        link: bool = False,
        sidecar: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> ExportReport:
        """Copy stored files into ``directory``; see :func:`mediastore.export.export_records`.

        Copies (a reflink where the filesystem has one) unless ``link=True``: a hard link is
        the stored file itself, and editing it in place would damage the stored copy.
        A sidecar holds the file's metadata (read here for a record that came without it).
        """
        if sidecar:
            records = (
                rec
                if rec.metadata is not None
                else rec._replace(metadata=self.catalog.metadata(rec.md5))
                for rec in records
            )
        return export_records(
            records,
            Path(directory),
            urls_for=self.urls_for,
            open_file=self.open,
            name_by=name_by,
            link=link,
            sidecar=sidecar,
            progress=progress,
        )


def _configured(
    root: str | Path | None, db_url: str | None, blob_url: str | None
) -> tuple[StoreConfig, str | None]:
    """The configuration of a store opened without one: ``MEDIASTORE_ROOT``,
    ``MEDIASTORE_DB_URL``, ``MEDIASTORE_BLOB_URL``, then ``<root>/mediastore.toml`` and the
    other ``MEDIASTORE_*`` variables, as the command reads them; arguments given win."""
    environ = os.environ
    where = Path(root if root is not None else environ.get("MEDIASTORE_ROOT") or DEFAULT_ROOT)
    db = db_url if db_url is not None else environ.get("MEDIASTORE_DB_URL") or None
    _check_root(where.expanduser(), create=True)  # a file there is no place for settings
    loaded = load_settings(where.expanduser(), db, environ=environ)
    for warning in loaded.warnings:
        log.warning("%s", warning)
    return loaded.config, blob_url if blob_url is not None else (
        environ.get("MEDIASTORE_BLOB_URL") or None
    )


def _not_writable(root: Path, catalog_url: str) -> bool:
    """A store this user can read but not write (another user's, or a mode 555 root)."""
    catalog = sqlite_path(catalog_url)
    if root.is_dir() and not os.access(root, os.W_OK):
        return True
    return catalog is not None and catalog.exists() and not os.access(catalog, os.W_OK)


def _check_root(root: Path, *, create: bool) -> None:
    if root.exists() and not root.is_dir():
        raise InvalidInputError(f"store root {root} is not a directory")
    if not create and not root.is_dir():
        raise StoreNotFoundError(f"no mediastore store at {root}")


def _check_url_label(url: str) -> None:
    if not isinstance(url, str) or not url or url.isspace():  # (strip() would copy the URL)
        raise InvalidInputError("url must be a non-empty string")
    try:
        url.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: bytes of a command line that are not UTF-8
        raise InvalidInputError("url is not valid Unicode text") from None


def _with_context(exc: MediaStoreError, where: str) -> MediaStoreError:
    """The same error type with ``where`` in front of its message."""
    try:
        return type(exc)(f"{where}: {exc}")
    except TypeError:  # an error class with a richer constructor: keep it as it is
        return exc


#: Times a fetch with a reference fetches again when its content was collected first.
HOLD_ROUNDS = 3


def _now() -> datetime:
    return datetime.now(UTC)


def _takes(ref: object, position: object, role: object) -> tuple[RefTake, ...]:
    """The reference an add or a fetch takes (none without ``ref``), checked."""
    if ref is None:
        if position is not None or role is not None:
            raise InvalidInputError("position and role need a ref")
        return ()
    return (ref_take(ref, position, role),)


def _result_of(url: str, fetch: Callable[[], MediaRecord]) -> FetchResult:
    """``fetch()`` as a FetchResult (its error kept, not raised)."""
    try:
        return FetchResult(url=url, record=fetch())
    except FetchError as exc:
        return FetchResult(url=url, error=exc)


def _unwrap(result: FetchResult) -> MediaRecord:
    if result.record is None:
        assert isinstance(result.error, MediaStoreError)
        raise result.error
    return result.record
