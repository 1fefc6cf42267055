"""Downloads of untrusted URLs: SSRF-safe connections, redirects, retries, limits, errors.

:func:`open_url` sends each request hop itself, through the connection pools of the
session's :class:`GuardedAdapter` (urllib3 directly: ``requests``' per-request machinery cost
as much as the download of a small image). Every hop's URL is checked by
:mod:`mediastore.net.policy`; its host is resolved once, every address judged by the policy,
and the connection pinned to a checked address (TLS still verifies the host name). The
checked route is reused for :data:`ROUTE_TTL` seconds, so a kept-alive connection to an
already checked address costs no new lookup.

Limits: a per-read timeout; the response head within ``connect + max(timeout, speed_time)``;
a low-speed cut-off on the body in the manner of curl's ``--speed-limit``/``--speed-time``; an
optional total deadline (off by default, since a large video on a poor link may rightly
take hours); a redirect cap; and, with :class:`~mediastore.net.hosts.HostLimits`, per-host
concurrency on every hop. The deadlines are enforced by one watchdog thread that shuts the
socket down, because a server dripping bytes never trips a read timeout. The body itself is
handed to the store's single ingest path (:func:`mediastore.ingest.stage`).
"""

from __future__ import annotations

import contextlib
import email.utils
import heapq
import itertools
import logging
import os
import random
import socket
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, cast
from urllib.parse import urljoin

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.utils import DEFAULT_CA_BUNDLE_PATH, requote_uri
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.response import BaseHTTPResponse

from ..errors import (
    BlockedURLError,
    DownloadTimeoutError,
    FetchConnectionError,
    FetchError,
    HTTPStatusError,
    InvalidInputError,
    TooManyRedirectsError,
    TruncatedDownloadError,
)
from ..version import __version__
from .hosts import HostLimits, Slot
from .policy import AddressPolicy, ParsedURL, Resolver, check_url, parse_url, resolve

__all__ = [
    "BODY_ATTEMPTS",
    "DEFAULT_SPEED_LIMIT",
    "DEFAULT_SPEED_TIME",
    "DEFAULT_USER_AGENT",
    "AddressPolicy",
    "FetchSettings",
    "GuardedAdapter",
    "Response",
    "make_session",
    "open_url",
]

log = logging.getLogger(__name__)


class _OneLine(logging.Filter):
    """Makes urllib3's warnings one readable line: some carry a traceback (headers it cannot
    parse) or a whole certificate (a host name mismatch), for what a hostile server sent."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING and (record.exc_info or record.args):
            text = record.getMessage()
            record.msg = " ".join(text.split())[:300]
            record.args = None
            record.exc_info = record.exc_text = record.stack_info = None
        return True


for _name in ("urllib3.connection", "urllib3.connectionpool", "urllib3.response"):
    logging.getLogger(_name).addFilter(_OneLine())

DEFAULT_USER_AGENT = f"mediastore/{__version__} (+media importer)"
RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
RETRY_AFTER_STATUSES: Final = frozenset({413, 429, 503})
REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
RETRY_AFTER_MAX: Final = 60.0  # seconds: a Retry-After beyond this is capped, not obeyed
BACKOFF_MAX: Final = 120.0
BACKOFF_JITTER: Final = 0.3
CONNECT_TIMEOUT_MAX: Final = 10.0
BODY_ATTEMPTS = 2  # a body cut off mid-stream is fetched again once, into a fresh temp file
#: Never cut at 16 KiB/s (a large video on a poor link), always below 1 KiB/s within ~30 s.
DEFAULT_SPEED_LIMIT: Final = 2048.0  # bytes per second
DEFAULT_SPEED_TIME: Final = 30.0  # seconds
ROUTE_TTL: Final = 60.0  # seconds a checked name -> address answer is reused (browsers: 60 s)
#: urllib3 itself never retries (open_url does, knowing hosts and deadlines); an instance,
#: since urllib3 logs the conversion of ``retries=False`` on every request.
_NO_RETRIES: Final = urllib3.Retry(total=False)
DRAIN_MAX: Final = 64 * 1024  # a redirect or error body up to this is read to keep the connection


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchSettings:
    """What the downloader needs from the store's config.

    Attributes:
        speed_limit: Bytes per second below which a body is too slow (0 turns the check off).
        speed_time: Seconds a body may stay below ``speed_limit`` before it is cut.
        (The others are the :class:`~mediastore.config.StoreConfig` fields of the same name.)
    """

    allow_private_networks: bool = False
    address_policy: AddressPolicy | None = None
    resolver: Resolver | None = None
    user_agent: str | None = None
    max_redirects: int = 5
    ca_bundle: str | None = None
    retries: int = 3
    backoff_factor: float = 0.5
    speed_limit: float = DEFAULT_SPEED_LIMIT
    speed_time: float = DEFAULT_SPEED_TIME


# --- deadlines: a watchdog that shuts sockets down ---------------------------------------------
_local = threading.local()


#: Deadlines added between two sweeps of the finished ones out of the watchdog's heap.
_COMPACT_EVERY = 1024


class _Watchdog:
    """One daemon thread that expires every deadline at its time.

    A ``threading.Timer`` per request would start a thread per request (~0.5 ms each, the
    price of a whole small download); a heap served by one thread costs a push and a pop.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._cond = threading.Condition()
        self._count = itertools.count()  # tie-breaker of equal times in the heap
        self._adds = 0
        self._thread: threading.Thread | None = None

    def add(self, deadline: Deadline) -> None:
        with self._cond:
            self._adds += 1
            if self._adds % _COMPACT_EVERY == 0 and len(self._heap) >= _COMPACT_EVERY:
                # finished deadlines wait in the heap until their time: drop them now and then,
                # so that the heap holds the live ones plus at most this many finished ones
                self._heap = [entry for entry in self._heap if not entry[2].finished]
                heapq.heapify(self._heap)
            heapq.heappush(self._heap, (deadline.ends_at, next(self._count), deadline))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="mediastore-deadlines", daemon=True
                )
                self._thread.start()
            # Woken only when the new deadline comes first: a later one (the usual case, as
            # most have the same length) keeps the wait the thread is in, and a wake-up per
            # request would cost a thread switch and a fight for the GIL each time.
            if self._heap[0][2] is deadline:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                ends_at, _, deadline = self._heap[0]
                wait = ends_at - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
            if not deadline.finished:
                deadline.expire()


_WATCHDOG = _Watchdog()


class Deadline:
    """Shuts down the sockets attached to it when its time is up.

    A per-read timeout alone cannot stop a server that drips one byte a second: each read
    succeeds. The watchdog makes the blocked read fail at the deadline instead.

    Attributes:
        seconds: The time allowed, counted from when the deadline is entered.
        reason: The :class:`DownloadTimeoutError` reason once it expired.
    """

    def __init__(self, seconds: float, reason: str) -> None:
        self.expired = False
        self.finished = False
        self.seconds = seconds
        self.reason = reason
        self.ends_at = time.monotonic() + seconds
        # a set: a long deadline (a thread's cancel watch) sees the same pooled socket often
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def attach(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.add(sock)
            if self.expired:
                _shutdown(sock)

    def remaining(self) -> float:
        """Seconds left before the deadline (negative once it has passed)."""
        return self.ends_at - time.monotonic()

    def expire(self) -> None:
        with self._lock:
            if self.finished:
                return
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)

    def __enter__(self) -> Deadline:
        active: list[Deadline] = _active_deadlines()
        active.append(self)
        self.ends_at = time.monotonic() + self.seconds
        _WATCHDOG.add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.finished = True  # the heap entry is dropped when its time comes
            self._sockets.clear()
        active = _active_deadlines()
        if self in active:
            active.remove(self)


def _active_deadlines() -> list[Deadline]:
    active: list[Deadline] | None = getattr(_local, "deadlines", None)
    if active is None:
        active = _local.deadlines = []
    return active


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed: nothing left to stop
        sock.shutdown(socket.SHUT_RDWR)


def _watch(sock: socket.socket | None) -> None:
    """Hand the socket of a request just sent to the thread's active deadlines."""
    for deadline in getattr(_local, "deadlines", ()):
        deadline.attach(sock)


class _WatchedHTTPConnection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        super().request(*args, **kwargs)
        _watch(self.sock)


class _WatchedHTTPSConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        super().request(*args, **kwargs)
        _watch(self.sock)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


# --- routes: checked, resolved and pinned once per host ----------------------------------------
@dataclass(frozen=True, slots=True)
class _Route:
    """Where to send requests for one (scheme, host, port), as checked at ``expires - TTL``."""

    host: str
    scheme: str
    address: str  # the pinned address, bracketed for IPv6
    port: int
    host_header: str
    pool_kwargs: dict[str, Any]
    expires: float


class GuardedAdapter(HTTPAdapter):
    """Connection pools that refuse unsafe URLs and connect to the address they checked.

    :func:`open_url` uses :meth:`route` and the pools directly. A plain ``session.get`` on a
    session from :func:`make_session` is guarded too, through the documented subclass hooks
    ``build_connection_pool_key_attributes`` (check, resolve once, pin the address),
    ``init_poolmanager`` (sockets watched by deadlines) and ``proxy_manager_for`` (no proxies).
    """

    def __init__(self, settings: FetchSettings, **kwargs: Any) -> None:
        self.settings = settings
        self._routes: dict[tuple[str, str, int], _Route] = {}
        self.headers = {
            "User-Agent": settings.user_agent or DEFAULT_USER_AGENT,
            "Accept-Encoding": "gzip, deflate",  # what _Inflater decodes
            "Accept": "*/*",
            "Connection": "keep-alive",
        }
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedHTTPPool,
            "https": _WatchedHTTPSPool,
        }

    def route(self, url: str, parsed: ParsedURL) -> _Route:
        """The checked route for ``url``; resolves and judges its host at most every TTL.

        Raises:
            BlockedURLError: An address of the host is refused by the policy.
            UnresolvableHostError: The host does not resolve.
        """
        key = (parsed.scheme, parsed.host, parsed.port)
        cached = self._routes.get(key)
        now = time.monotonic()
        if cached is not None and cached.expires > now:
            return cached
        target = resolve(
            url,
            parsed,
            allow_private=self.settings.allow_private_networks,
            resolver=self.settings.resolver,
            policy=self.settings.address_policy,
        )
        address = target.addresses[0]
        pool_kwargs: dict[str, Any] = {}
        if parsed.scheme == "https":
            pool_kwargs = self._tls_kwargs(parsed.host)
        default_port = 443 if parsed.scheme == "https" else 80
        host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
        route = _Route(
            host=parsed.host,
            scheme=parsed.scheme,
            address=f"[{address}]" if ":" in address else address,
            port=parsed.port,
            host_header=host if parsed.port == default_port else f"{host}:{parsed.port}",
            pool_kwargs=pool_kwargs,
            expires=now + ROUTE_TTL,
        )
        if len(self._routes) >= 1024:
            self._routes.clear()  # many one-off hosts: start over rather than grow
        self._routes[key] = route
        return route

    def _tls_kwargs(self, host: str) -> dict[str, Any]:
        # as requests does: its CA bundle (certifi) unless told otherwise
        bundle = self.settings.ca_bundle or DEFAULT_CA_BUNDLE_PATH
        location = "ca_cert_dir" if os.path.isdir(bundle) else "ca_certs"
        return {
            "cert_reqs": "CERT_REQUIRED",
            location: bundle,
            "server_hostname": host,
            "assert_hostname": host,
        }

    def pool(self, route: _Route) -> HTTPConnectionPool:
        """The connection pool for ``route``'s pinned address."""
        pool: HTTPConnectionPool = self.poolmanager.connection_from_host(
            route.address, route.port, route.scheme, pool_kwargs=route.pool_kwargs
        )
        return pool

    def build_connection_pool_key_attributes(  # type: ignore[override]
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        url = request.url or ""
        settings = self.settings
        target = check_url(
            url,
            allow_private=settings.allow_private_networks,
            resolver=settings.resolver,
            policy=settings.address_policy,
        )
        params, kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        # plain dicts: the stubs' TypedDicts lack the TLS keys urllib3 accepts
        host_params, pool_kwargs = cast(dict[str, Any], params), cast(dict[str, Any], kwargs)
        address = target.addresses[0]
        host_params["host"] = f"[{address}]" if ":" in address else address
        if target.scheme == "https":
            pool_kwargs["server_hostname"] = target.host
            pool_kwargs["assert_hostname"] = target.host
        # requests copies headers from hop to hop, so Host is rewritten on every request
        default_port = 443 if target.scheme == "https" else 80
        host = f"[{target.host}]" if ":" in target.host else target.host
        request.headers["Host"] = host if target.port == default_port else f"{host}:{target.port}"
        return host_params, pool_kwargs

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        raise BlockedURLError(proxy, "proxies are not used for downloads")


def make_session(settings: FetchSettings) -> requests.Session:
    """A session for one worker thread: the guarded adapter, no environment.

    :func:`open_url` uses only the session's :class:`GuardedAdapter` (its pools, checked
    routes and headers): no cookies, hooks, proxies or ``.netrc``.
    """
    session = requests.Session()
    session.trust_env = False  # no proxies or .netrc credentials from the environment
    session.max_redirects = settings.max_redirects
    session.headers["User-Agent"] = settings.user_agent or DEFAULT_USER_AGENT
    if settings.ca_bundle:
        session.verify = settings.ca_bundle
    adapter = GuardedAdapter(settings, max_retries=0, pool_connections=16, pool_maxsize=16)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _adapter(session: requests.Session) -> GuardedAdapter:
    adapter = session.adapters.get("http://")
    if not isinstance(adapter, GuardedAdapter):
        raise InvalidInputError(
            "open_url needs a session made by mediastore.net.client.make_session"
        )
    return adapter


# --- one download ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Response:
    """A successful response whose body is about to be streamed."""

    status: int
    final_url: str
    etag: str | None
    last_modified: str | None
    length: int | None
    chunks: Iterator[bytes]


@contextmanager
def open_url(
    session: requests.Session,
    url: str,
    *,
    timeout: float,
    deadline: float | None = None,
    chunk_size: int,
    validators: tuple[str | None, str | None] = (None, None),
    started: float | None = None,
    hosts: HostLimits | None = None,
) -> Iterator[Response]:
    """GET ``url``, following redirects hop by hop, and yield the response to stream.

    Args:
        session: From :func:`make_session` (one per thread).
        url: The untrusted URL; checked again on every hop.
        timeout: Seconds any one read (or connect, at most 10 s) may wait for data.
        deadline: Seconds the whole download may take, redirects and retries included;
            ``None`` for no total limit (stalls are cut by ``timeout`` and the low-speed
            check of the session's :class:`FetchSettings`).
        chunk_size: Largest chunk yielded.
        validators: (ETag, Last-Modified) make the request conditional: a 304 is yielded with
            status 304 and no body.
        started: ``time.monotonic()`` when the download began, if earlier attempts already
            used part of ``deadline``.
        hosts: Per-host limits: each hop (and each retry) holds a slot of the host it goes
            to, released before the next hop's slot is waited for. The final hop's slot is
            held until the body has been read and the ``with`` block left.

    Yields:
        The :class:`Response`; its ``chunks`` must be consumed inside the ``with`` block.

    Raises:
        FetchError: Every failure, as a subclass naming ``url``.
    """
    adapter = _adapter(session)
    headers = dict(adapter.headers)
    etag, last_modified = validators
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    with ExitStack() as stack:
        total = None
        if deadline is not None:
            remaining = deadline if started is None else deadline - (time.monotonic() - started)
            total = stack.enter_context(
                Deadline(remaining, f"download exceeded its {deadline:g} s deadline")
            )
        request = _Request(
            adapter, url, headers, timeout, total, hosts, bool(etag or last_modified)
        )
        with _translate_errors(url, total, timeout):
            resp, final_url = request.follow(stack)
            yield _response(resp, final_url, validators, chunk_size, total, adapter.settings, url)


def _response(
    resp: BaseHTTPResponse,
    final_url: str,
    validators: tuple[str | None, str | None],
    chunk_size: int,
    total: Deadline | None,
    settings: FetchSettings,
    url: str,
) -> Response:
    if resp.status == 304:
        etag, last_modified = validators
        return Response(304, final_url, etag, last_modified, None, iter(()))
    length = _content_length(resp)
    speed = None
    if settings.speed_limit > 0:
        speed = _LowSpeed(url, settings.speed_limit, settings.speed_time)
    headers = resp.headers
    return Response(
        status=200,
        final_url=final_url,
        etag=headers.get("ETag"),
        last_modified=headers.get("Last-Modified"),
        length=length,
        chunks=_body(resp, url, length, chunk_size, total, speed),
    )


class _Request:
    """One download's hops and retries."""

    def __init__(
        self,
        adapter: GuardedAdapter,
        url: str,
        headers: dict[str, str],
        timeout: float,
        total: Deadline | None,
        hosts: HostLimits | None,
        conditional: bool,
    ) -> None:
        self.adapter = adapter
        self.settings = adapter.settings
        self.url = url
        self.headers = headers
        self.timeout = timeout
        self.timeouts = urllib3.Timeout(connect=min(timeout, CONNECT_TIMEOUT_MAX), read=timeout)
        # the response head must be complete in this time, however slowly it trickles in
        self.head_seconds = min(timeout, CONNECT_TIMEOUT_MAX) + max(
            timeout, self.settings.speed_time
        )
        self.total = total
        self.hosts = hosts
        self.conditional = conditional

    def follow(self, stack: ExitStack) -> tuple[BaseHTTPResponse, str]:
        """Send hops until the final response (200, or 304 if conditional), held in ``stack``."""
        current = self.url
        limit = self.settings.max_redirects
        for _hop in range(limit + 1):
            with ExitStack() as hop:
                resp, location = self.exchange(current, hop)
                if resp is not None:
                    stack.enter_context(hop.pop_all())  # response and slot stay open
                    return resp, current
            # the slot of this hop's host is free before the next host's is waited for
            current = location
        raise TooManyRedirectsError(self.url, f"more than {limit} redirects (max_redirects)")

    def exchange(self, url: str, hop: ExitStack) -> tuple[BaseHTTPResponse | None, str]:
        """One hop, with retries: the final response, or None and the redirect's location.

        The final response and its host slot are left open in ``hop``.
        """
        parsed = parse_url(url)
        route = self.adapter.route(url, parsed)
        target = requote_uri(parsed.target)
        retries = _Retries(self.settings.retries, self.settings.backoff_factor)
        headers = self.headers | {"Host": route.host_header}
        while True:
            slot = self._slot(route.host, url, hop)
            # The head must arrive whole within head_seconds (a server dripping header bytes
            # passes every read timeout); a discarded body is read under the same limit.
            head = Deadline(
                self.head_seconds, f"no complete response within {self.head_seconds:g} s"
            )
            with head:
                resp = self._attempt(url, route, target, headers, slot, head, retries)
                if resp is not None:
                    return self._settle(resp, url, hop)

    def _attempt(
        self,
        url: str,
        route: _Route,
        target: str,
        headers: dict[str, str],
        slot: Slot | None,
        head: Deadline,
        retries: _Retries,
    ) -> BaseHTTPResponse | None:
        """Send once: the response to settle, or None after waiting for a retry."""
        began = time.monotonic()
        pool = self.adapter.pool(route)
        try:
            resp = pool.urlopen(
                "GET",
                target,
                headers=headers,
                redirect=False,
                assert_same_host=False,
                preload_content=False,
                decode_content=False,
                retries=_NO_RETRIES,
                timeout=self.timeouts,
            )
            if head.expired:  # cut mid-head, http.client may take what came for all of it
                resp.close()
                resp.release_conn()
                raise urllib3.exceptions.ReadTimeoutError(pool, target, head.reason)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if slot is not None:
                slot.release()
            kind = "read" if head.expired else _error_kind(exc)
            if kind is None or not retries.take(kind):
                raise self._send_error(exc, head) from exc
            self._wait(url, retries.backoff(), _root(exc), retries)
            return None
        status = resp.status
        retry_after = _retry_after(resp) if "Retry-After" in resp.headers else None
        paused = 0.0
        if slot is not None:
            paused = slot.report(status, time.monotonic() - began, retry_after)
        if status not in RETRY_STATUSES or not retries.take("status"):
            return resp
        _discard(resp)
        if slot is not None:
            slot.release()
        wanted = retries.backoff()
        if retry_after is not None and status in RETRY_AFTER_STATUSES:
            wanted = min(retry_after, RETRY_AFTER_MAX)
        # the host's pause (every worker waits it out) counts towards this request's wait
        self._wait(url, max(0.0, wanted - paused), f"HTTP {status}", retries, wanted)
        return None

    def _settle(
        self, resp: BaseHTTPResponse, url: str, hop: ExitStack
    ) -> tuple[BaseHTTPResponse | None, str]:
        """Keep a final response open in ``hop``; discard any other (redirect or error)."""
        status = resp.status
        if status == 200 or (status == 304 and self.conditional):
            hop.push(_Closer(resp))
            return resp, url
        location = _redirect_location(resp, url)
        _discard(resp)
        if location is not None:
            return None, location
        raise HTTPStatusError(self.url, status, _status_reason(resp))

    def _send_error(self, exc: BaseException, head: Deadline) -> FetchError:
        """What a request that could not be sent (or answered) fails with."""
        url = self.url
        if self.total is not None and self.total.expired:
            return DownloadTimeoutError(url, self.total.reason)
        if head.expired:
            return DownloadTimeoutError(url, head.reason)
        chain = _chain(exc)
        if _timed_out(chain):
            return DownloadTimeoutError(url, f"no data for {self.timeout:g} s (read timeout)")
        if any(isinstance(e, urllib3.exceptions.SSLError) for e in chain):
            return FetchConnectionError(url, f"TLS failed: {_root(exc)}")
        return FetchConnectionError(url, f"connection failed: {_root(exc)}")

    def _slot(self, host: str, url: str, hop: ExitStack) -> Slot | None:
        if self.hosts is None:
            return None
        ends = self.total.ends_at if self.total is not None else None
        try:
            return hop.enter_context(self.hosts.slot(host, deadline=ends))
        except DownloadTimeoutError as exc:
            reason = exc.reason if self.total is None else f"{self.total.reason}: {exc.reason}"
            raise DownloadTimeoutError(url, reason) from exc
        except FetchError as exc:
            raise FetchError(url, exc.reason) from exc

    def _wait(
        self, url: str, seconds: float, why: str, retries: _Retries, announced: float | None = None
    ) -> None:
        """Wait before a retry; refuse a wait that would end past the deadline."""
        shown = seconds if announced is None else announced
        if self.total is not None and seconds >= self.total.remaining():
            self.total.expire()
            raise DownloadTimeoutError(
                url, f"{self.total.reason}: waiting {shown:g} s before a retry would pass it"
            )
        log.info("%s: %s; retry %d of %d in %.1f s", url, why, retries.used, retries.total, shown)
        if self.hosts is None:
            time.sleep(seconds)
        elif not self.hosts.sleep(seconds):
            raise FetchError(url, "downloads were cancelled")


class _Closer:
    """Closes the final response when the download ends: kept alive after a clean end, the
    connection dropped after a failure (its unread rest may never come)."""

    __slots__ = ("resp",)

    def __init__(self, resp: BaseHTTPResponse) -> None:
        self.resp = resp

    def __call__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None and (self.resp.closed or self.resp.length_remaining == 0):
            _discard(self.resp)
        else:
            self.resp.close()
            self.resp.release_conn()


class _Retries:
    """The retry budget of one hop, counted as urllib3's ``Retry`` counts it."""

    __slots__ = ("factor", "left", "total", "used")

    def __init__(self, total: int, factor: float) -> None:
        self.total = total
        self.factor = factor
        self.used = 0
        # reads are retried at most twice: a server that never answers costs 3 timeouts
        self.left = {"connect": total, "read": min(2, total), "status": total}

    def take(self, kind: str) -> bool:
        if self.used >= self.total or self.left[kind] <= 0:
            return False
        self.left[kind] -= 1
        self.used += 1
        return True

    def backoff(self) -> float:
        """urllib3's schedule: the first retry at once, then factor * 2**n plus jitter."""
        if self.used <= 1:
            return 0.0
        value = float(self.factor * 2 ** (self.used - 1)) + random.random() * BACKOFF_JITTER
        return min(BACKOFF_MAX, value)


def _error_kind(exc: BaseException) -> str | None:
    """Which retry budget an error of sending uses; None if it is not retried."""
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):  # NewConnectionError too
        return "connect"
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError | urllib3.exceptions.ProtocolError):
        return "read"
    return None  # TLS failures and the like fail the same way every time


def _retry_after(resp: BaseHTTPResponse) -> float | None:
    """``Retry-After`` in seconds (delta or HTTP date), or None if absent or unreadable."""
    raw = (resp.headers.get("Retry-After") or "").strip()
    if raw.isascii() and raw.isdigit():
        return float(int(raw[:9]))
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _redirect_location(resp: BaseHTTPResponse, current: str) -> str | None:
    """The next hop's URL if ``resp`` is a redirect, else None."""
    if resp.status not in REDIRECT_STATUSES:
        return None
    location = resp.headers.get("Location")
    if location is None:
        return None
    # http.client decodes header bytes as latin-1; servers send UTF-8 (as requests assumes)
    with contextlib.suppress(UnicodeError):
        location = location.encode("latin-1").decode("utf-8")
    try:
        return requote_uri(urljoin(current, location.strip()))
    except ValueError as exc:
        raise BlockedURLError(location, f"invalid redirect location: {exc}") from exc


def _discard(resp: BaseHTTPResponse) -> None:
    """Drop a response not handed on; a small body is read so its connection is reused."""
    remaining = resp.length_remaining
    if remaining is not None and remaining <= DRAIN_MAX:
        resp.drain_conn()
    if not resp.closed:
        resp.close()  # unread bytes would be taken for the next response on the connection
    resp.release_conn()


def _status_reason(resp: BaseHTTPResponse) -> str:
    reason = f"HTTP {resp.status} {resp.reason or ''}".strip()
    if resp.status in RETRY_STATUSES:
        reason += " (after retries)"
    return reason


def _content_length(resp: BaseHTTPResponse) -> int | None:
    headers = resp.headers
    raw = headers.get("Content-Length")
    if raw is None or "Content-Encoding" in headers:
        return None  # the decoded size is what counts, and it is unknown up front
    try:
        return int(raw)
    except ValueError:
        return None


# --- the body ----------------------------------------------------------------------------------
class _LowSpeed:
    """curl's ``--speed-limit``/``--speed-time``: too slow when a window of ``seconds``
    brought fewer than ``limit`` bytes per second. Sampled about once a second."""

    __slots__ = ("limit", "next_sample", "samples", "seconds", "step", "url")

    def __init__(self, url: str, limit: float, seconds: float) -> None:
        now = time.monotonic()
        self.url = url
        self.limit = limit
        self.seconds = seconds
        self.step = min(1.0, seconds / 10)
        self.samples: deque[tuple[float, int]] = deque([(now, 0)])
        self.next_sample = now + self.step

    def check(self, received: int) -> None:
        now = time.monotonic()
        if now < self.next_sample:
            return
        self.next_sample = now + self.step
        samples = self.samples
        samples.append((now, received))
        # keep as the base the newest sample at least a window old
        while len(samples) > 2 and now - samples[1][0] >= self.seconds:
            samples.popleft()
        since, base = samples[0]
        span = now - since
        if span >= self.seconds and received - base < self.limit * span:
            rate = (received - base) / span
            raise DownloadTimeoutError(
                self.url,
                f"too slow: {rate:.0f} bytes/s over {span:.0f} s "
                f"(the limit is {self.limit:g} bytes/s over {self.seconds:g} s)",
            )


def _body(
    resp: BaseHTTPResponse,
    url: str,
    length: int | None,
    chunk_size: int,
    total: Deadline | None,
    speed: _LowSpeed | None,
) -> Iterator[bytes]:
    layers = _inflaters(url, resp.headers.get("Content-Encoding", ""))
    # A body that fits in one chunk is handed on whole, as one bytes object, however many
    # pieces the socket delivers it in: one write, and the image probed from memory rather
    # than read back from the temp file (which cost more than the rest of its download).
    small = not layers and length is not None and length <= chunk_size
    whole: list[bytes] | None = [] if small else None
    received = 0
    read1 = resp.read1  # returns what has arrived, so a trickle is seen (and cut) as it comes
    while True:
        data = read1(chunk_size, decode_content=False)
        if not data:
            break
        received += len(data)
        if speed is not None:
            speed.check(received)
        if whole is not None:
            whole.append(data)
        elif layers:
            yield from _decoded(url, layers, data, chunk_size)
        else:
            yield data
    # The watchdog stops a download by shutting its socket down. A body framed by
    # Content-Length or chunked encoding then fails to parse, but a close-delimited body (no
    # Content-Length, not chunked) just ends: a download that overran its deadline is never
    # complete.
    if total is not None and total.expired:
        raise DownloadTimeoutError(url, total.reason)
    if length is not None and received < length:
        raise TruncatedDownloadError(url, f"body ended after {received} of {length} bytes")
    # A gzip/deflate stream that stops before its end (the connection closed early, or
    # Content-Length covered only part of it) must not be stored as the file.
    if received and not all(layer.finished for layer in layers):
        raise TruncatedDownloadError(url, "compressed body ended before the end of its stream")
    if whole:
        yield whole[0] if len(whole) == 1 else b"".join(whole)


class _Inflater:
    """One ``gzip`` or ``deflate`` layer of a body, decoded with output bounded per call (a
    gzip bomb never inflates more than one chunk at a time).

    gzip may have several members; bytes after a complete member that are no gzip member
    are ignored, as browsers and urllib3 do. ``deflate`` is zlib-wrapped as specified, or
    raw as many servers send it: the first two bytes decide.
    """

    __slots__ = ("finished", "gzip", "obj", "pending", "swallow")

    def __init__(self, gzip: bool) -> None:
        self.gzip = gzip
        self.obj: Any = None
        self.pending = b""
        self.finished = False  # at the end of a complete stream
        self.swallow = False  # ignoring trailing bytes after the last gzip member

    def feed(self, data: bytes, limit: int) -> Iterator[bytes]:
        if self.obj is None and not self.swallow:
            data = self._start(data)
        while data and not self.swallow:
            out: bytes = self.obj.decompress(data, limit)
            if out:
                yield out
            obj = self.obj
            data = obj.unconsumed_tail
            if obj.eof:
                self.finished = True
                data = obj.unused_data
                self.obj = None  # between gzip members; nothing may follow a deflate stream
                self.swallow = not self.gzip
                data = self._start(data) if data else data

    def _start(self, data: bytes) -> bytes:
        """Open the next stream once two bytes are known; the bytes to inflate (or none)."""
        data, self.pending = self.pending + data, b""
        if len(data) < 2:
            self.pending = data
            return b""
        if self.gzip:
            if data[:2] != b"\x1f\x8b":
                if not self.finished:
                    raise zlib.error("not a gzip stream")
                self.swallow = True  # trailing bytes after a complete member are ignored
                return b""
            self.finished = False  # another member has begun
            self.obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
            return data
        zlib_wrapped = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
        self.obj = zlib.decompressobj(zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS)
        return data


def _inflaters(url: str, header: str) -> list[_Inflater]:
    """The decoding layers of a ``Content-Encoding``, in decoding order."""
    layers: list[_Inflater] = []
    for token in reversed(header.lower().split(",")):
        name = token.strip()
        if name in ("", "identity"):
            continue
        if name not in ("gzip", "x-gzip", "deflate"):
            raise FetchError(url, f"unsupported Content-Encoding {name!r}")
        layers.append(_Inflater(gzip=name != "deflate"))
    return layers


def _decoded(url: str, layers: list[_Inflater], data: bytes, limit: int) -> Iterator[bytes]:
    """``data`` through every layer, each piece at most ``limit`` bytes."""
    first, rest = layers[0], layers[1:]
    try:
        for piece in first.feed(data, limit):
            if rest:
                yield from _decoded(url, rest, piece, limit)
            else:
                yield piece
    except zlib.error as exc:
        raise FetchError(url, f"content decoding failed: {exc}") from exc


# --- errors ------------------------------------------------------------------------------------
@contextmanager
def _translate_errors(url: str, total: Deadline | None, timeout: float) -> Iterator[None]:
    """urllib3 and socket exceptions become FetchError subclasses that name the URL."""
    try:
        yield
    except FetchError:
        raise
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise _translate(url, exc, total, timeout) from exc


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and all it wraps (urllib3 wraps socket errors: in args, ``reason`` or
    ``__cause__``), outermost first."""
    found: list[BaseException] = []
    todo = [exc]
    while todo and len(found) < 20:
        cur = todo.pop(0)
        if any(cur is f for f in found):
            continue
        found.append(cur)
        todo.extend(a for a in cur.args if isinstance(a, BaseException))
        reason = getattr(cur, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)
        todo.extend(e for e in (cur.__cause__, cur.__context__) if e is not None)
    return found


def _root(exc: BaseException) -> str:
    """The innermost message: the OS or TLS error, without urllib3's object reprs."""
    chain = _chain(exc)
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return str(exc.args[-1]) if exc.args else "read timed out"
    return (str(chain[-1]) or type(chain[-1]).__name__)[:300]


def _translate(url: str, exc: BaseException, total: Deadline | None, timeout: float) -> FetchError:
    """What an error while reading the body fails with (sending has its own translation)."""
    if total is not None and total.expired:
        return DownloadTimeoutError(url, total.reason)
    chain = _chain(exc)
    root = _root(exc)
    if _timed_out(chain):
        return DownloadTimeoutError(url, f"no data for {timeout:g} s (read timeout)")
    if any(isinstance(e, urllib3.exceptions.SSLError) for e in chain):
        return FetchConnectionError(url, f"TLS failed: {root}")
    if isinstance(exc, urllib3.exceptions.DecodeError):
        return FetchError(url, f"content decoding failed: {root}")
    if isinstance(exc, urllib3.exceptions.ProtocolError):
        return TruncatedDownloadError(url, f"connection broke mid-body: {root}")
    return FetchConnectionError(url, f"connection failed: {root}")


def _timed_out(chain: list[BaseException]) -> bool:
    # urllib3's NewConnectionError (ECONNREFUSED, unreachable...) subclasses its
    # ConnectTimeoutError for backwards compatibility: it is a connection failure.
    return any(
        isinstance(e, urllib3.exceptions.TimeoutError | TimeoutError)
        and not isinstance(e, urllib3.exceptions.NewConnectionError)
        for e in chain
    )
