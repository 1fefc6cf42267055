"""fetch, fetch_many and iter_fetch: cache checks, parallel downloads, the hand-off to ingest.

The HTTP side (guarded sessions, limits, error types) is :mod:`mediastore.net.client`; the bytes go
through the store's single ingest path; this module decides when to download at all, and how
a batch of downloads is stopped (:class:`Cancel`).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Sized
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, nullcontext
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

import requests

from .. import verify
from ..blobs.base import BlobRef
from ..catalog import UrlInfo
from ..config import StoreConfig, check_variants
from ..errors import (
    CorruptDownloadError,
    CorruptMediaError,
    DownloadTooLargeError,
    FetchError,
    FileTooLargeError,
    HTTPStatusError,
    InvalidInputError,
    MediaStoreError,
    RefusedContentError,
    TruncatedDownloadError,
    UnsupportedMediaError,
)
from ..formats.detect import BY_EXTENSION
from ..ingest import Staged
from ..lifecycle import Lifecycle
from ..records import FetchResult, MediaRecord
from ..types import Progress
from . import leases
from .client import BODY_ATTEMPTS, Deadline, FetchSettings, make_session, open_url
from .hosts import PAUSE_MAX, HostLimits
from .leases import Lease, lease_key
from .policy import validate_url
from .processes import CANCELLED, Lanes, LaneSetup, picklable

log = logging.getLogger(__name__)

#: HTTP statuses that mean the URL is gone for good: remembered (see ``failure_ttl``).
PERMANENT_STATUSES = frozenset({404, 410})
#: The store's lookup of a URL (catalog, then the legacy cache).
Lookup = Callable[[str], "MediaRecord | None"]
#: URLs submitted to :meth:`Downloader.iter_fetch`'s workers and not yet yielded, per worker:
#: one downloading, one staged and waiting for its commit, one queued.
AHEAD_PER_WORKER = 3
#: Far enough never to cut a real download, short enough for ``Condition.wait`` (TIMEOUT_MAX).
_CANCEL_WATCH_SECONDS = 365 * 86400.0
#: Downloads a worker thread runs under one cancellation deadline before it takes a new one.
_CANCEL_RENEW = 1000


class Cancel:
    """Stops a batch of downloads: no new URL starts, and the running ones fail promptly.

    A worker checks :attr:`event` between URLs and between body chunks; a read blocked on a
    silent server is woken by shutting its socket down, through a :class:`~mediastore.net.client.
    Deadline` that each worker thread runs its downloads under (the watchdog mechanism of a
    download deadline, set a year away: only :meth:`cancel` ends it). A download that fails
    this way discards its temp file; nothing is committed after :meth:`cancel`.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self._lock = threading.Lock()
        self._local = threading.local()
        self._deadlines: set[Deadline] = set()

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self.event.is_set()

    def arm(self) -> None:
        """Make the calling thread's next requests stoppable by :meth:`cancel`.

        One deadline per thread, replaced every :data:`_CANCEL_RENEW` downloads rather than
        one per download: each deadline keeps its sockets, and the watchdog keeps each entry
        until its time, so a new one per URL would grow with the input.
        """
        local = self._local
        deadline: Deadline | None = getattr(local, "deadline", None)
        if deadline is not None and local.uses < _CANCEL_RENEW:
            local.uses += 1
            return
        if deadline is not None:
            deadline.__exit__(None, None, None)
            with self._lock:
                self._deadlines.discard(deadline)
        # entered here and left by close(): it spans many downloads, not one with block
        deadline = Deadline(_CANCEL_WATCH_SECONDS, CANCELLED).__enter__()
        local.deadline, local.uses = deadline, 1
        with self._lock:
            self._deadlines.add(deadline)
            cancelled = self.event.is_set()
        if cancelled:
            deadline.expire()

    def cancel(self) -> None:
        """Stop: set the event and shut down every running download's sockets."""
        with self._lock:
            self.event.set()
            deadlines = list(self._deadlines)
        for deadline in deadlines:
            deadline.expire()

    def close(self) -> None:
        """Release the deadlines, once the workers are gone."""
        with self._lock:
            deadlines, self._deadlines = self._deadlines, set()
        for deadline in deadlines:
            deadline.__exit__(None, None, None)

    def check(self, url: str) -> None:
        """Raise :class:`FetchError` if cancelled (so that nothing more is stored)."""
        if self.event.is_set():
            raise FetchError(url, CANCELLED)

    def chunks(self, url: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """``chunks``, cut with a :class:`FetchError` as soon as the batch is cancelled."""
        for chunk in chunks:
            self.check(url)
            yield chunk
        self.check(url)


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


def _answered(url: str, by: FetchResult) -> FetchResult:
    """The result of ``url``, answered by the larger size ``by`` fetched in its place."""
    return FetchResult(
        url=url, record=by.record, error=by.error, from_cache=by.from_cache, variant_of=by.url
    )


def _with_answers(
    results: Generator[FetchResult, None, None], answers: dict[str, list[str]]
) -> Generator[FetchResult, None, None]:
    """Each result, then the results of the URLs it answers (closing this closes them)."""
    with closing(results):
        for result in results:
            yield result
            for url in answers.pop(result.url, ()):
                yield _answered(url, result)


class Downloader:
    """Downloads into a store through its lifecycle (the store owns one, made on first use).

    Args:
        life: The store's lifecycle (ingest, catalog, blobs).
        lookup: The store's ``get_by_url`` (so that the legacy cache is consulted too).
        blob_url: The blob store a download process is to open (None: the local default).
    """

    def __init__(self, life: Lifecycle, lookup: Lookup, blob_url: str | None = None) -> None:
        self._life = life
        self._lookup = lookup
        self._blob_url = blob_url
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
            speed_limit=cfg.speed_limit,
            speed_time=cfg.speed_time,
        )
        self.sessions = Sessions(self.settings)
        # decided once: the config is frozen, and pickling it to find out costs about 20 us
        self._may_spread = not life.read_only and picklable(self._config)

    def close(self) -> None:
        self.sessions.close()

    # --- one URL -----------------------------------------------------------------------------
    def fetch(
        self,
        url: object,
        *,
        timeout: float,
        refresh: bool = False,
        sessions: Sessions | None = None,
        hosts: HostLimits | None = None,
        deadline: float | None = None,
        cancel: Cancel | None = None,
        gate: threading.Semaphore | None = None,
        retry_failed: bool = False,
    ) -> tuple[MediaRecord, bool]:
        """The record for ``url`` and whether it came from the cache (no body downloaded).

        ``deadline``: seconds for the whole download (default ``config.download_deadline``).
        ``retry_failed``: ask again for a URL whose failure is remembered (as ``refresh``
        does, without revalidating a cached URL).
        ``cancel``: the batch's :class:`Cancel`; once cancelled, the download fails.
        ``gate``: held from the lookup until the body is staged, not during the commit.
        """
        url = validate_url(url)
        _check_timeout(timeout)
        if deadline is None:
            deadline = self._config.download_deadline
        with gate if gate is not None else nullcontext():
            got = self._obtain(
                url,
                timeout=timeout,
                refresh=refresh,
                sessions=sessions,
                hosts=hosts,
                deadline=deadline,
                cancel=cancel,
                retry_failed=retry_failed,
            )
        if isinstance(got, MediaRecord):
            return got, True
        staged, infos, lease = got
        try:  # the lease holds until the file is recorded: a waiter then finds it
            if cancel is not None and cancel.cancelled:
                self._life.discard(staged)
                cancel.check(url)
            return self._life.record(self._life.commit(staged, infos), url), False
        finally:
            lease.release()

    def _obtain(
        self,
        url: str,
        *,
        timeout: float,
        refresh: bool,
        sessions: Sessions | None,
        hosts: HostLimits | None,
        deadline: float | None,
        cancel: Cancel | None,
        retry_failed: bool = False,
    ) -> MediaRecord | tuple[Staged, list[UrlInfo], Lease]:
        """The cached record of ``url``, or its body downloaded and staged (not committed),
        with the lease its download holds (see :mod:`mediastore.net.leases`)."""
        cached = self.cached(url)
        if cached is not None and not refresh:
            return cached
        failed_before = self._remembered(url, refresh=refresh or retry_failed)
        lease = self._lease(url, cancel) if cached is None else Lease()
        if isinstance(lease, MediaRecord):  # stored meanwhile by the lease's holder
            return lease
        try:
            got = self._obtain_body(url, cached, timeout, sessions, hosts, deadline, cancel)
        except (HTTPStatusError, RefusedContentError, CorruptDownloadError) as exc:
            lease.release()
            self._remember(url, exc)
            raise
        except BaseException:
            lease.release()
            raise
        if failed_before and not self._life.read_only:
            self._life.catalog.forget_failure(url)
        if isinstance(got, MediaRecord):
            lease.release()
            return got
        return (*got, lease)

    def _lease(self, url: str, cancel: Cancel | None) -> Lease | MediaRecord:
        """The lease on the bytes ``url`` names, when an identity rule covers it (other URLs
        need none); or the record a holder stored while this one waited."""
        found = self._life.identities.of(url)
        if found is None or self._life.read_only:
            return Lease()
        check = (lambda: cancel.check(url)) if cancel is not None else (lambda: None)
        return leases.acquire(self._life.catalog, lease_key(found), lambda: self.cached(url), check)

    def _remembered(self, url: str, *, refresh: bool) -> bool:
        """Whether ``url`` has a remembered failure; it fails from memory when that failure
        is within ``failure_ttl`` and ``refresh`` does not ask again.

        Raises:
            HTTPStatusError, RefusedContentError, CorruptDownloadError: as it failed, its
                reason saying that no request was sent.
        """
        ttl = self._config.failure_ttl
        found = self._life.catalog.failure(url) if ttl > 0 else None
        if found is None:
            return False
        error, status, reason, when = found
        if refresh or (_now() - when).total_seconds() >= ttl:
            return True
        said = f"{reason} (remembered from {when:%Y-%m-%d %H:%M} UTC: no request sent)"
        if error == "HTTPStatusError" and status is not None:
            raise HTTPStatusError(url, status, said)
        raise (CorruptDownloadError if error == "CorruptDownloadError" else RefusedContentError)(
            url, said
        )

    def _remember(self, url: str, exc: FetchError) -> None:
        status = exc.status if isinstance(exc, HTTPStatusError) else None
        permanent = status in PERMANENT_STATUSES if status is not None else True
        if permanent and self._config.failure_ttl > 0 and not self._life.read_only:
            self._life.catalog.remember_failure(url, type(exc).__name__, status, exc.reason, _now())

    def _obtain_body(
        self,
        url: str,
        cached: MediaRecord | None,
        timeout: float,
        sessions: Sessions | None,
        hosts: HostLimits | None,
        deadline: float | None,
        cancel: Cancel | None,
    ) -> MediaRecord | tuple[Staged, list[UrlInfo]]:
        validators = self._life.catalog.url_validators(url) if cached is not None else (None, None)
        if hosts is None:  # a batch's limits hold the remembered pauses
            self._wait_remembered(url)
        session = (sessions or self.sessions).get()
        # the deadline bounds the whole download: a body fetched again after a break gets
        # the time that is left, not a fresh deadline of its own
        started = time.monotonic()
        ends = started + deadline if deadline is not None else float("inf")
        for attempt in range(1, BODY_ATTEMPTS + 1):
            try:
                outcome = self._download(
                    session,
                    url,
                    timeout,
                    validators,
                    deadline,
                    started=started,
                    hosts=hosts,
                    cancel=cancel,
                )
            except TruncatedDownloadError:
                if attempt == BODY_ATTEMPTS or time.monotonic() >= ends:
                    raise
                if cancel is not None:
                    cancel.check(url)
                log.info("retrying %s after a broken body (attempt %d)", url, attempt + 1)
                continue
            if outcome is None:  # 304 Not Modified: the cached file stays
                assert cached is not None
                self._life.catalog.touch_url(url, _now())
                return cached
            return outcome
        raise AssertionError("unreachable")

    def download(self, url: str, *, timeout: float) -> tuple[Staged, list[UrlInfo]] | None:
        """Download ``url`` unconditionally into a staged temp file (not committed).

        Used by repairs, which must check the content before anything is recorded.
        """
        url = validate_url(url)
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
        self,
        session: requests.Session,
        url: str,
        timeout: float,
        validators: tuple[str | None, str | None],
        deadline: float | None,
        started: float | None = None,
        hosts: HostLimits | None = None,
        cancel: Cancel | None = None,
    ) -> tuple[Staged, list[UrlInfo]] | None:
        """Download once; ``deadline`` counts from ``started`` (default: now).

        With ``hosts``, every hop waits for a slot of its host (redirect targets included).
        With ``cancel``, the body stops at the first chunk after it is cancelled.
        """
        cfg = self._config
        with open_url(
            session,
            url,
            timeout=timeout,
            deadline=deadline,
            started=started,
            chunk_size=cfg.chunk_size,
            validators=validators,
            hosts=hosts,
        ) as resp:
            if resp.status == 304:
                return None
            if resp.length is not None and resp.length > cfg.max_file_size:
                raise DownloadTooLargeError(
                    url, f"Content-Length {resp.length} exceeds max_file_size {cfg.max_file_size}"
                )
            chunks = resp.chunks if cancel is None else cancel.chunks(url, resp.chunks)
            try:
                staged = self._life.stage(chunks)
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
                UrlInfo(
                    url=resp.final_url,
                    fetched_at=now,
                    etag=resp.etag,
                    last_modified=resp.last_modified,
                )
            )
        return staged, infos

    # --- many URLs ---------------------------------------------------------------------------
    def fetch_many(
        self,
        urls: Iterable[str],
        *,
        max_workers: int,
        timeout: float,
        progress: Progress | None = None,
        per_host: int | None = None,
        deadline: float | None = None,
        variants: str = "each",
        retry_failed: bool = False,
    ) -> list[FetchResult]:
        """One result per input URL, in input order; duplicates are fetched once.

        Each host's concurrency adapts (see :class:`~mediastore.net.hosts.HostLimits`); an
        explicit ``per_host`` (or ``config.per_host``) caps it. ``variants="largest"``
        fetches only the largest size of each asset (see :meth:`collapse`).
        """
        wanted = list(urls)
        times = Counter(wanted)  # progress counts the URLs given, repeats included
        answered_by = self.collapse(times, variants)
        answers: dict[str, list[str]] = {}
        for url, top in answered_by.items():
            answers.setdefault(top, []).append(url)
        done: dict[str, FetchResult] = {}
        finished = 0
        # iter_fetch's workers, cancellation and cleanup; the order is restored here
        results = self.iter_fetch(
            [url for url in times if url not in answered_by],
            max_workers=max_workers,
            timeout=timeout,
            per_host=per_host,
            deadline=deadline,
            retry_failed=retry_failed,
        )
        with closing(results):
            for result in results:
                for url in (result.url, *answers.get(result.url, ())):
                    done[url] = result if url == result.url else _answered(url, result)
                    finished += times[url]
                if progress is not None:
                    progress(finished, len(wanted))
        return [done[url] for url in wanted]

    def iter_largest(
        self, urls: Iterable[str], **options: Any
    ) -> Generator[FetchResult, None, None]:
        """:meth:`iter_fetch` under ``variants="largest"``: the list is read whole first (the
        sizes of an asset must all be seen before the largest is chosen); each URL a larger
        size answers is yielded right after that size's result."""
        given = list(urls)
        answered_by = self.collapse(given, "largest")
        answers: dict[str, list[str]] = {}
        for url in given:
            if url in answered_by:
                answers.setdefault(answered_by[url], []).append(url)
        results = self.iter_fetch([u for u in given if u not in answered_by], **options)
        return _with_answers(results, answers)

    def collapse(self, urls: Iterable[str], variants: str) -> dict[str, str]:
        """URL -> the URL of a larger size of its asset that answers it, under the policy
        ``variants`` (``"largest"``; ``"each"`` collapses nothing).

        Raises:
            InvalidInputError: an unknown policy.
        """
        if check_variants(variants) == "each":
            return {}
        return self._life.identities.largest(u for u in urls if isinstance(u, str))

    def iter_fetch(
        self,
        urls: Iterable[str],
        *,
        max_workers: int,
        timeout: float,
        per_host: int | None = None,
        deadline: float | None = None,
        cancel: Cancel | None = None,
        hosts: HostLimits | None = None,
        spread: bool = True,
        variants: str = "each",
        retry_failed: bool = False,
    ) -> Generator[FetchResult, None, None]:
        """Yield one result per input URL as each completes; bounded work, constant memory.

        ``urls`` is read lazily: at most :data:`AHEAD_PER_WORKER` x ``max_workers`` URLs are
        taken from it and not yet yielded. A URL repeated while its first occurrence is still
        running waits for it (and is yielded with ``from_cache`` when that one succeeded); a
        URL repeated later is settled by the catalog like any stored URL (a cached hit), so
        nothing grows with the input. Closing the generator early (``break``, an exception
        or Ctrl-C in the consumer) cancels the running downloads and waits for the workers;
        so does ``cancel.cancel()`` from another thread (the generator then ends).

        A large batch is spread over ``config.fetch_processes`` processes (see
        :mod:`mediastore.net.processes`), each with its share of the workers and host limits, unless
        ``spread`` is False or ``hosts`` (limits made by the caller) is given.

        ``variants="largest"``: see :meth:`iter_largest`.
        """
        if check_variants(variants) == "largest":
            return self.iter_largest(
                urls,
                max_workers=max_workers,
                timeout=timeout,
                per_host=per_host,
                deadline=deadline,
                cancel=cancel,
                hosts=hosts,
                spread=spread,
                retry_failed=retry_failed,
            )
        if max_workers < 1:
            raise InvalidInputError(f"max_workers must be at least 1, got {max_workers}")
        _check_timeout(timeout)
        limits = self._host_limits(per_host)  # bad arguments raise now, not at the first next()
        processes = self._processes(max_workers, limits) if spread and hosts is None else 1
        return self._iter_fetch(
            urls,
            max_workers=max_workers,
            timeout=timeout,
            hosts=hosts or limits,
            deadline=deadline,
            cancel=cancel if cancel is not None else Cancel(),
            processes=processes,
            retry_failed=retry_failed,
        )

    def _iter_fetch(
        self,
        urls: Iterable[str],
        *,
        max_workers: int,
        timeout: float,
        hosts: HostLimits,
        deadline: float | None,
        cancel: Cancel,
        processes: int,
        retry_failed: bool = False,
    ) -> Generator[FetchResult, None, None]:
        sessions = Sessions(self.settings)
        # Twice the threads, of which max_workers download at a time: a thread whose body is
        # staged waits for its commit without holding up the next download, so the commits
        # that queue up meanwhile are grouped into one (one claim, one directory fsync, one
        # record for all of them) instead of each download waiting for its own.
        downloading = threading.Semaphore(max_workers)

        def one(item: object) -> FetchResult:
            url = cast(str, item)  # any object of the input: fetch() refuses a non-string
            if cancel.cancelled:
                return FetchResult(url=url, error=FetchError(str(url), CANCELLED))
            return self._result(
                url,
                timeout=timeout,
                sessions=sessions,
                hosts=hosts,
                deadline=deadline,
                cancel=cancel,
                gate=downloading,
                retry_failed=retry_failed,
            )

        pool = ThreadPoolExecutor(
            max_workers=2 * max_workers, thread_name_prefix="mediastore-fetch"
        )

        def shrink(lanes: int) -> None:  # this process's share once children join the batch
            share = self._lane_setup(lanes, max_workers, timeout, deadline, hosts, retry_failed)
            hosts.resize(share.start, share.max_per_host, share.rate)
            _shrink_gate(downloading, max_workers - max(1, max_workers // lanes))

        setup = (
            (
                lambda lanes: self._lane_setup(
                    lanes, max_workers, timeout, deadline, hosts, retry_failed
                )
            )
            if processes > 1
            else None
        )

        def pause_here(host: str, seconds: float) -> None:  # a child lane met a throttle
            hosts.pause(host, seconds)
            self._remember_pause(host, seconds)

        def pause_everywhere(host: str, seconds: float) -> None:  # this process met one
            lanes.broadcast_pause(host, seconds)
            self._remember_pause(host, seconds)

        lanes = Lanes(
            lambda url: pool.submit(one, url),
            processes=processes,
            setup=setup,
            expected=len(urls) if isinstance(urls, Sized) else None,
            on_spread=shrink,
            pause_local=pause_here,
        )
        if processes > 1:  # limits given by a caller (a lane's child) keep their own hook
            hosts.on_pause = pause_everywhere
        self._pause_remembered(hosts)
        feeder = _Feeder(urls, lanes.submit, cancel, AHEAD_PER_WORKER * max_workers)
        finished = False
        try:
            while True:
                item = feeder.next_done()
                if item is None:
                    finished = True
                    return
                result = item.result()
                repeats = feeder.settle(result.url)
                yield result
                for _ in range(repeats):
                    yield replace(result, from_cache=result.ok)
        finally:
            cancel.cancel()
            lanes.close(cancel=not finished)
            hosts.close()
            sessions.close()
            pool.shutdown(wait=True, cancel_futures=True)
            cancel.close()

    def _result(
        self,
        url: str,
        *,
        timeout: float,
        sessions: Sessions,
        hosts: HostLimits,
        deadline: float | None,
        cancel: Cancel,
        gate: threading.Semaphore,
        retry_failed: bool,
    ) -> FetchResult:
        """``url`` fetched, its failure carried in the result rather than raised."""
        try:
            cancel.arm()
            rec, from_cache = self.fetch(
                url,
                timeout=timeout,
                sessions=sessions,
                hosts=hosts,
                deadline=deadline,
                cancel=cancel,
                gate=gate,
                retry_failed=retry_failed,
            )
        except MediaStoreError as exc:
            log.info("fetch failed: %s", exc)
            return FetchResult(url=url, error=exc)
        except Exception as exc:  # a bug must not stop the other URLs
            log.exception("unexpected error fetching %s", url)
            return FetchResult(url=url, error=FetchError(str(url), f"unexpected error: {exc!r}"))
        return FetchResult(url=url, record=rec, from_cache=from_cache)

    def _processes(self, max_workers: int, hosts: HostLimits) -> int:
        """Processes a batch may spread over: each needs a worker and a slot per host."""
        wanted = min(self._config.fetch_processes, os.cpu_count() or 1)
        if not self._may_spread:
            return 1
        return max(1, min(wanted, max_workers, hosts.max_per_host))

    def _lane_setup(
        self,
        lanes: int,
        max_workers: int,
        timeout: float,
        deadline: float | None,
        hosts: HostLimits,
        retry_failed: bool,
    ) -> LaneSetup:
        return LaneSetup(
            config=self._config,
            blob_url=self._blob_url,
            max_workers=max(1, max_workers // lanes),
            timeout=timeout,
            deadline=deadline,
            start=max(1, hosts.start // lanes),
            max_per_host=max(1, hosts.max_per_host // lanes),
            rate=None if hosts.rate is None else hosts.rate / lanes,
            log_level=logging.getLogger("mediastore").getEffectiveLevel(),
            retry_failed=retry_failed,
        )

    def _host_limits(self, per_host: int | None) -> HostLimits:
        """Adaptive per-host limits; a ``per_host`` given (or configured) caps them."""
        cap = self._config.per_host if per_host is None else per_host
        cfg = self._config
        if cap is not None and (not isinstance(cap, int) or cap < 1):
            raise InvalidInputError(f"per_host must be at least 1, got {cap!r}")
        start, most = (
            (cfg.per_host_start, cfg.per_host_max)
            if cap is None
            else (
                min(cfg.per_host_start, cap),
                cap,
            )
        )
        return HostLimits(start, most, cfg.host_rate, on_pause=self._remember_pause)

    # --- pauses hosts asked for, remembered across runs --------------------------------------
    def _remember_pause(self, host: str, seconds: float) -> None:
        """Record that ``host`` asked for a pause (a 429/503 with Retry-After, or a throttle),
        so that a new run leaves it alone too. A failure to record costs only politeness."""
        if self._life.read_only or seconds <= 0:
            return
        try:
            self._life.catalog.pause_host(host, _now() + timedelta(seconds=seconds))
        except MediaStoreError as exc:
            log.warning("pause of %s not remembered: %s", host, exc)

    def _pause_remembered(self, hosts: HostLimits) -> None:
        """Pause in ``hosts`` each host whose remembered pause has not ended yet."""
        now = _now()
        for host, until in self._life.catalog.host_pauses(now).items():
            log.info("%s asked for a pause until %s UTC: waiting for it", host, f"{until:%H:%M:%S}")
            hosts.pause(host, (until - now).total_seconds())

    def _wait_remembered(self, url: str) -> None:
        """A single download waits out its host's remembered pause (at most PAUSE_MAX)."""
        host = (urlsplit(url).hostname or "").lower()
        now = _now()
        until = self._life.catalog.host_pauses(now).get(host)
        if until is not None:
            wait = min(PAUSE_MAX, (until - now).total_seconds())
            log.info("%s asked for a pause: waiting %.1f s before %s", host, wait, url)
            time.sleep(wait)


_END = object()


class _Feeder:
    """Takes URLs from the input on its own thread and hands them to the workers.

    Its own thread, so that results are yielded while the input is slow to come (URLs piped
    in as an upstream job finds them): the consumer never waits on the input. A semaphore
    bounds the URLs taken and not yet settled; a URL already in flight is not submitted again
    but counted as a repeat of it. Daemon: a read of the input blocked forever (an idle pipe)
    must not keep the process alive after a Ctrl-C.
    """

    def __init__(
        self,
        urls: Iterable[str],
        submit: Callable[[object], Future[FetchResult]],
        cancel: Cancel,
        bound: int,
    ) -> None:
        self._source = iter(urls)
        self._submit = submit
        self._cancel = cancel
        self._slots = threading.Semaphore(bound)
        self._lock = threading.Lock()
        self._running: dict[str, int] = {}  # URL in flight -> repeats waiting for its result
        self._taken = 0
        self._settled = 0
        self._done: queue.SimpleQueue[Future[FetchResult] | object] = queue.SimpleQueue()
        self._ended = False
        self._error: BaseException | None = None
        threading.Thread(target=self._feed, name="mediastore-fetch-input", daemon=True).start()

    def _feed(self) -> None:
        try:
            while True:
                while not self._slots.acquire(timeout=0.25):
                    if self._cancel.cancelled:
                        return
                if self._cancel.cancelled:
                    return
                try:
                    url = next(self._source)
                except StopIteration:
                    return
                key = url if isinstance(url, str) else None  # anything else fails alone
                with self._lock:
                    self._taken += 1
                    if key is not None and key in self._running:
                        self._running[key] += 1
                        continue
                    if key is not None:
                        self._running[key] = 0
                self._submit(url).add_done_callback(self._done.put)
        except BaseException as exc:  # the input's own error, raised to the consumer
            if not self._cancel.cancelled:
                self._error = exc
        finally:
            self._done.put(_END)

    def next_done(self) -> Future[FetchResult] | None:
        """The next finished download, or None once every URL taken has been settled."""
        while True:
            with self._lock:
                if self._ended and self._settled == self._taken:
                    if self._error is not None:
                        raise self._error
                    return None
            item = self._done.get()
            if item is _END:
                self._ended = True
                continue
            assert isinstance(item, Future)
            return item

    def settle(self, url: object) -> int:
        """Count ``url``'s result (and its repeats) as settled; return the repeats."""
        with self._lock:
            repeats = self._running.pop(url, 0) if isinstance(url, str) else 0
            self._settled += 1 + repeats
        self._slots.release(1 + repeats)
        return repeats


def _shrink_gate(gate: threading.Semaphore, permits: int) -> None:
    """Take ``permits`` from ``gate`` for good, as they come free (on a thread of its own)."""
    if permits > 0:
        threading.Thread(
            target=lambda: [gate.acquire() for _ in range(permits)],
            name="mediastore-shrink",
            daemon=True,
        ).start()


def _check_timeout(timeout: float) -> None:
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise InvalidInputError(f"timeout must be a positive number of seconds, got {timeout!r}")


def _now() -> datetime:
    return datetime.now(UTC)
