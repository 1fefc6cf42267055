"""fetch and fetch_many: cache checks, parallel downloads, and the hand-off to ingest.

The HTTP side (guarded sessions, limits, error types) is :mod:`mediastore.fetch`; the bytes go
through the store's single ingest path; this module decides when to download at all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from urllib.parse import urlsplit

import requests

from . import verify
from .blobs import BlobRef
from .catalog import UrlInfo
from .config import StoreConfig
from .errors import (
    BlockedURLError,
    CorruptDownloadError,
    CorruptMediaError,
    DownloadTooLargeError,
    FetchError,
    FileTooLargeError,
    InvalidInputError,
    MediaStoreError,
    RefusedContentError,
    TruncatedDownloadError,
    UnsupportedMediaError,
)
from .fetch import BODY_ATTEMPTS, FetchSettings, make_session, open_url
from .ingest import Staged
from .lifecycle import Lifecycle
from .netpolicy import ALLOWED_SCHEMES
from .records import FetchResult, MediaRecord
from .sniff import BY_EXTENSION

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
#: The store's lookup of a URL (catalog, then the legacy cache).
Lookup = Callable[[str], "MediaRecord | None"]


class Sessions:
    """One ``requests.Session`` per thread (sessions are not thread-safe), all closed together."""

    def __init__(self, settings: FetchSettings) -> None:
        self._settings = settings
        self._local = threading.local()
        self._all: list[requests.Session] = []
        self._lock = threading.Lock()

    def get(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = make_session(self._settings)
            self._local.session = session
            with self._lock:
                self._all.append(session)
        return session

    def close(self) -> None:
        with self._lock:
            sessions, self._all = self._all, []
        for session in sessions:
            session.close()


class Downloader:
    """Downloads into a store through its lifecycle (the store owns one, made on first use).

    Args:
        life: The store's lifecycle (ingest, catalog, blobs).
        lookup: The store's ``get_by_url`` (so that the legacy cache is consulted too).
    """

    def __init__(self, life: Lifecycle, lookup: Lookup) -> None:
        self._life = life
        self._lookup = lookup
        self._config: StoreConfig = life.config
        cfg = life.config
        self.settings = FetchSettings(
            allow_private_networks=cfg.allow_private_networks,
            address_policy=cfg.address_policy,
            resolver=cfg.resolver,
            user_agent=cfg.user_agent,
            max_redirects=cfg.max_redirects,
            ca_bundle=cfg.ca_bundle,
            retries=cfg.retries,
            backoff_factor=cfg.backoff_factor,
        )
        self.sessions = Sessions(self.settings)

    def close(self) -> None:
        self.sessions.close()

    # --- one URL -----------------------------------------------------------------------------
    def fetch(
        self, url: str, *, timeout: float, refresh: bool = False,
        sessions: Sessions | None = None,
    ) -> tuple[MediaRecord, bool]:  # fmt: skip
        """The record for ``url`` and whether it came from the cache (no body downloaded)."""
        _check_url_argument(url)
        _check_timeout(timeout)
        cached = self.cached(url)
        if cached is not None and not refresh:
            return cached, True
        validators = self._life.catalog.url_validators(url) if cached is not None else (None, None)
        session = (sessions or self.sessions).get()
        # Bug fix: download_deadline bounds the whole download, so a body fetched again after
        # a break gets the time that is left, not a fresh deadline of its own.
        started = time.monotonic()
        ends = started + self._config.download_deadline
        for attempt in range(1, BODY_ATTEMPTS + 1):
            try:
                outcome = self._download(
                    session, url, timeout, validators, self._config.download_deadline,
                    started=started,
                )  # fmt: skip
            except TruncatedDownloadError:
                if attempt == BODY_ATTEMPTS or time.monotonic() >= ends:
                    raise
                log.info("retrying %s after a broken body (attempt %d)", url, attempt + 1)
                continue
            if outcome is None:  # 304 Not Modified: the cached file stays
                assert cached is not None
                self._life.catalog.touch_url(url, _now())
                return cached, True
            staged, infos = outcome
            return self._life.record(self._life.commit(staged, infos), url), False
        raise AssertionError("unreachable")

    def download(self, url: str, *, timeout: float) -> tuple[Staged, list[UrlInfo]] | None:
        """Download ``url`` unconditionally into a staged temp file (not committed).

        Used by repairs, which must check the content before anything is recorded.
        """
        _check_url_argument(url)
        deadline = self._config.download_deadline
        return self._download(self.sessions.get(), url, timeout, (None, None), deadline)

    def cached(self, url: str) -> MediaRecord | None:
        """The stored record for ``url`` if its file passes the on-access check."""
        rec = self._lookup(url)
        if rec is None:
            return None
        if not self._config.verify_on_access:
            found = self._life.blobs.stat(BlobRef(BY_EXTENSION[rec.extension], rec.md5))
            if found is not None and found.regular and found.size == rec.size:
                return rec
        row = self._life.catalog.by_md5(rec.md5)
        if row is not None:
            # re-hash; a failure quarantines the file or marks it missing
            outcome = verify.check(self._life, row)
            if verify.settle(self._life, row, outcome) == "ok":
                self._life.catalog.mark_verified([row.md5], _now())
                return self._lookup(url)
        log.warning("cached file of %s failed its check; downloading again", url)
        return None

    def _download(
        self, session: requests.Session, url: str, timeout: float,
        validators: tuple[str | None, str | None], deadline: float,
        started: float | None = None,
    ) -> tuple[Staged, list[UrlInfo]] | None:  # fmt: skip
        """Download once; ``deadline`` counts from ``started`` (default: now)."""
        cfg = self._config
        with open_url(
            session, url, timeout=timeout, deadline=deadline, started=started,
            chunk_size=cfg.chunk_size, validators=validators,
        ) as resp:  # fmt: skip
            if resp.status == 304:
                return None
            if resp.length is not None and resp.length > cfg.max_file_size:
                raise DownloadTooLargeError(
                    url, f"Content-Length {resp.length} exceeds max_file_size {cfg.max_file_size}"
                )
            try:
                staged = self._life.stage(resp.chunks)
            except FetchError:
                raise
            except FileTooLargeError as exc:
                raise DownloadTooLargeError(url, str(exc)) from exc
            except UnsupportedMediaError as exc:
                raise RefusedContentError(url, str(exc)) from exc
            except CorruptMediaError as exc:
                raise CorruptDownloadError(url, str(exc)) from exc
        now = _now()
        infos = [UrlInfo(url=url, fetched_at=now, etag=resp.etag, last_modified=resp.last_modified)]
        if resp.final_url and resp.final_url != url:
            infos.append(
                UrlInfo(url=resp.final_url, fetched_at=now, etag=resp.etag,
                        last_modified=resp.last_modified)
            )  # fmt: skip
        return staged, infos

    # --- many URLs ---------------------------------------------------------------------------
    def fetch_many(
        self, urls: Iterable[str], *, max_workers: int, timeout: float,
        progress: Progress | None = None, per_host: int | None = None,
    ) -> list[FetchResult]:  # fmt: skip
        """One result per input URL, in input order; duplicates are fetched once."""
        wanted = list(urls)
        if max_workers < 1:
            raise InvalidInputError(f"max_workers must be at least 1, got {max_workers}")
        _check_timeout(timeout)
        unique = list(dict.fromkeys(wanted))
        # Bug fix: "per_host or config.per_host" took per_host=0 for "not given" and ran with
        # the default instead of refusing it as the check below intends.
        limit = self._config.per_host if per_host is None else per_host
        if limit < 1:
            raise InvalidInputError(f"per_host must be at least 1, got {limit}")
        hosts = _HostLimiter(limit)
        sessions = Sessions(self.settings)
        done: dict[str, FetchResult] = {}

        def one(url: str) -> FetchResult:
            try:
                with hosts.slot(url):
                    rec, from_cache = self.fetch(url, timeout=timeout, sessions=sessions)
            except MediaStoreError as exc:
                log.info("fetch failed: %s", exc)
                return FetchResult(url=url, error=exc)
            except Exception as exc:  # a bug must not stop the other URLs
                log.exception("unexpected error fetching %s", url)
                return FetchResult(
                    url=url, error=FetchError(str(url), f"unexpected error: {exc!r}")
                )
            return FetchResult(url=url, record=rec, from_cache=from_cache)

        try:
            with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(unique)))) as pool:
                futures = [pool.submit(one, url) for url in unique]
                for count, future in enumerate(as_completed(futures), 1):
                    result = future.result()
                    done[result.url] = result
                    if progress is not None:
                        progress(count, len(unique))
        finally:
            sessions.close()
        return [done[url] for url in wanted]


class _HostLimiter:
    """At most ``limit`` concurrent downloads per host, whatever the number of workers."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._sems: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    def slot(self, url: str) -> threading.BoundedSemaphore:
        host = (urlsplit(url).hostname or "") if isinstance(url, str) else ""
        with self._lock:
            sem = self._sems.get(host)
            if sem is None:
                sem = self._sems[host] = threading.BoundedSemaphore(self._limit)
        return sem


def _check_url_argument(url: str) -> None:
    if not isinstance(url, str) or not url.strip():
        raise InvalidInputError(f"url must be a non-empty string, got {url!r}")
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise BlockedURLError(
            url, f"scheme {scheme or '(none)'!r} is not allowed (http and https only)"
        )


def _check_timeout(timeout: float) -> None:
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise InvalidInputError(f"timeout must be a positive number of seconds, got {timeout!r}")


def _now() -> datetime:
    return datetime.now(UTC)
