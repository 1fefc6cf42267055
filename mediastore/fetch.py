"""Downloads of untrusted URLs: SSRF-safe ``requests`` sessions, limits, retries, errors.

Every connection goes through :class:`GuardedAdapter`, which checks each URL (the first and
every redirect hop) with :mod:`mediastore.netpolicy`, resolves the host once and pins the
connection to the checked address; TLS still verifies the certificate against the host name.
Limits are always on: per-read timeout, a total deadline enforced by a watchdog that shuts the
socket down, a redirect cap, and ``max_file_size`` counted on the decoded bytes as they stream.
The body itself is handed to the store's single ingest path (:func:`mediastore.ingest.stage`).
"""

from __future__ import annotations

import contextlib
import heapq
import ipaddress
import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.response import DeflateDecoder, GzipDecoder, GzipDecoderState
from urllib3.util.retry import Retry

from .errors import (
    BlockedURLError,
    DownloadTimeoutError,
    FetchConnectionError,
    FetchError,
    HTTPStatusError,
    TooManyRedirectsError,
    TruncatedDownloadError,
)
from .netpolicy import IPAddress, Resolver, check_url, refused_reason
from .version import __version__

log = logging.getLogger(__name__)

#: Decides whether an address may be contacted: None to allow, else the reason to refuse.
AddressPolicy = Callable[[IPAddress], str | None]

DEFAULT_USER_AGENT = f"mediastore/{__version__} (+media importer)"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_AFTER_MAX = 60  # seconds: a Retry-After beyond this is capped, not obeyed
CONNECT_TIMEOUT_MAX = 10.0
BODY_ATTEMPTS = 2  # a body cut off mid-stream is fetched again once, into a fresh temp file


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchSettings:
    """What the downloader needs from the store's config."""

    allow_private_networks: bool = False
    address_policy: AddressPolicy | None = None
    resolver: Resolver | None = None
    user_agent: str | None = None
    max_redirects: int = 5
    ca_bundle: str | None = None
    retries: int = 3
    backoff_factor: float = 0.5


# --- total deadline: a watchdog that shuts the socket down -------------------------------------
_local = threading.local()


class _Watchdog:
    """One daemon thread that expires every download's deadline at its time.

    A ``threading.Timer`` per download would start a thread per request (~0.5 ms each, the
    price of a whole small download); a heap served by one thread costs a push and a pop.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._cond = threading.Condition()
        self._count = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, deadline: Deadline) -> None:
        with self._cond:
            if len(self._heap) >= 1024 and next(self._count) % 1024 == 0:
                # finished downloads wait in the heap until their time: drop them now and then
                self._heap = [entry for entry in self._heap if not entry[2].finished]
                heapq.heapify(self._heap)
            heapq.heappush(self._heap, (deadline.ends_at, next(self._count), deadline))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="mediastore-deadlines", daemon=True
                )
                self._thread.start()
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
    """Shuts down the sockets of one download when its time is up.

    A per-read timeout alone cannot stop a server that drips one byte a second: each read
    succeeds. The watchdog makes the blocked read fail at the deadline instead.
    """

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self.finished = False
        self.seconds = seconds
        self.ends_at = time.monotonic() + seconds
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def attach(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
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
        _local.deadline = self
        self.ends_at = time.monotonic() + self.seconds
        _WATCHDOG.add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.finished = True  # the heap entry is dropped when its time comes
            self._sockets.clear()
        _local.deadline = None


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed: nothing left to stop
        sock.shutdown(socket.SHUT_RDWR)


def _watch(sock: socket.socket | None) -> None:
    """Hand the socket of a request just sent to the current download's deadline."""
    deadline: Deadline | None = getattr(_local, "deadline", None)
    if deadline is not None:
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


class _DeadlineRetry(Retry):
    """A ``Retry`` whose waits end before the download's deadline.

    Bug fix: the watchdog can only shut sockets, and between attempts there is none, so a
    ``Retry-After`` (up to 60 s) or a long backoff used to be slept in full past the deadline,
    and one more request was sent after it. A wait that would reach the deadline now ends the
    download at once with :class:`DownloadTimeoutError` (via the expired watchdog).
    """

    def sleep(self, response: Any = None) -> None:
        deadline: Deadline | None = getattr(_local, "deadline", None)
        if deadline is not None:
            wait = None  # what Retry.sleep is about to wait: Retry-After, else the backoff
            if self.respect_retry_after_header and response is not None:
                wait = self.get_retry_after(response)
            if not wait:
                wait = self.get_backoff_time()
            if wait >= deadline.remaining():
                deadline.expire()
                raise urllib3.exceptions.TimeoutError(
                    f"waiting {wait:g} s before the next retry would pass the deadline"
                )
        super().sleep(response)


# --- the guarded adapter -------------------------------------------------------------------------
class GuardedAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` that refuses unsafe URLs and connects to the address it checked.

    Overrides the documented subclass hooks only: ``build_connection_pool_key_attributes``
    (check, resolve once, pin the address; SNI and certificate checks keep the host name),
    ``add_headers`` (the Host header of every hop) and ``proxy_manager_for`` (no proxies).
    """

    def __init__(self, settings: FetchSettings, **kwargs: Any) -> None:
        self._settings = settings
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedHTTPPool,
            "https": _WatchedHTTPSPool,
        }

    def build_connection_pool_key_attributes(  # type: ignore[override]
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        url = request.url or ""
        target = check_url(url, allow_private=True, resolver=self._settings.resolver)
        if not self._settings.allow_private_networks:
            policy = self._settings.address_policy or refused_reason
            for address in target.addresses:
                reason = policy(ipaddress.ip_address(address))
                if reason:
                    where = address if address == target.host else f"{target.host} ({address})"
                    raise BlockedURLError(url, f"refused address {where}: {reason}")
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
    """A session for one worker thread: guarded adapter, retries, no environment."""
    session = requests.Session()
    session.trust_env = False  # no proxies or .netrc credentials from the environment
    session.max_redirects = settings.max_redirects
    session.headers["User-Agent"] = settings.user_agent or DEFAULT_USER_AGENT
    if settings.ca_bundle:
        session.verify = settings.ca_bundle
    retry = _DeadlineRetry(
        total=settings.retries,
        connect=settings.retries,
        read=min(2, settings.retries),
        status=settings.retries,
        redirect=0,
        backoff_factor=settings.backoff_factor,
        backoff_jitter=0.3,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD"}),
        raise_on_status=False,
        respect_retry_after_header=True,
        retry_after_max=RETRY_AFTER_MAX,
    )
    adapter = GuardedAdapter(settings, max_retries=retry, pool_connections=16, pool_maxsize=16)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


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
    deadline: float,
    chunk_size: int,
    validators: tuple[str | None, str | None] = (None, None),
    started: float | None = None,
) -> Iterator[Response]:
    """GET ``url`` and yield its response; the body streams as ``chunks``.

    ``validators`` (ETag, Last-Modified) make the request conditional: a 304 is yielded with
    status 304 and no body. ``started`` (``time.monotonic()``) is when the download began, if
    earlier attempts already used part of ``deadline``. Every failure is raised as a
    :class:`FetchError` subclass naming the URL.
    """
    headers: dict[str, str] = {}
    etag, last_modified = validators
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    connect_timeout = min(timeout, CONNECT_TIMEOUT_MAX)
    remaining = deadline if started is None else deadline - (time.monotonic() - started)
    with Deadline(remaining) as watchdog, _translate_errors(url, watchdog, timeout, deadline):
        resp = session.get(url, headers=headers, stream=True, timeout=(connect_timeout, timeout))
        try:
            if resp.status_code == 304 and (etag or last_modified):
                yield Response(304, resp.url, etag, last_modified, None, iter(()))
                return
            if resp.status_code != 200:
                raise HTTPStatusError(url, resp.status_code, _status_reason(resp))
            length = _content_length(resp)
            yield Response(
                status=200, final_url=resp.url, etag=resp.headers.get("ETag"),
                last_modified=resp.headers.get("Last-Modified"), length=length,
                chunks=_body(resp, url, length, chunk_size, watchdog, deadline),
            )  # fmt: skip
        finally:
            resp.close()


def _status_reason(resp: requests.Response) -> str:
    reason = f"HTTP {resp.status_code} {resp.reason or ''}".strip()
    if resp.status_code in RETRY_STATUSES:
        reason += " (after retries)"
    return reason


def _content_length(resp: requests.Response) -> int | None:
    raw = resp.headers.get("Content-Length")
    if raw is None or "Content-Encoding" in resp.headers:
        return None  # the decoded size is what counts, and it is unknown up front
    try:
        return int(raw)
    except ValueError:
        return None


def _body(
    resp: requests.Response, url: str, length: int | None, chunk_size: int,
    watchdog: Deadline, deadline: float,
) -> Iterator[bytes]:  # fmt: skip
    received = 0
    for chunk in resp.iter_content(chunk_size):
        received += len(chunk)
        yield chunk
    # Bug fix: the watchdog stops a download by shutting its socket down. A body framed by
    # Content-Length or chunked encoding then fails to parse, but a close-delimited body (no
    # Content-Length, not chunked) just ends, and its first part used to be stored as if it
    # were the whole file. A download that overran its deadline is never complete.
    if watchdog.expired:
        raise DownloadTimeoutError(url, f"download exceeded its {deadline:g} s deadline")
    if length is not None and received < length:
        raise TruncatedDownloadError(url, f"body ended after {received} of {length} bytes")
    # Bug fix: urllib3 does not complain when a gzip/deflate stream stops before its end
    # (the connection closed early, or Content-Length covered only part of the stream), so
    # the decoded prefix used to be stored as the file.
    if received and _decoding_unfinished(resp):
        raise TruncatedDownloadError(url, "compressed body ended before the end of its stream")


def _decoding_unfinished(resp: requests.Response) -> bool:
    """True if urllib3's gzip/deflate decoder of ``resp`` stopped mid-stream.

    urllib3 keeps its decoders private, so this looks only at the zlib decompressor objects
    it knows (``eof`` is documented zlib API) and answers False for anything else.
    """
    decoder = getattr(resp.raw, "_decoder", None)
    decoders = getattr(decoder, "_decoders", None) or [decoder]  # MultiDecoder: "gzip, gzip"
    for one in decoders:
        if isinstance(one, GzipDecoder) and (
            getattr(one, "_state", None) == GzipDecoderState.SWALLOW_DATA
        ):
            continue  # complete members followed by trailing garbage, accepted by design
        if isinstance(one, GzipDecoder | DeflateDecoder):
            obj = getattr(one, "_obj", None)
            if getattr(obj, "eof", True) is False:
                return True
    return False


@contextmanager
def _translate_errors(
    url: str, watchdog: Deadline, timeout: float, deadline: float
) -> Iterator[None]:
    """requests/urllib3 exceptions become FetchError subclasses that name the URL."""
    try:
        yield
    except FetchError:
        raise
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise _translate(url, exc, watchdog, timeout, deadline) from exc


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and all it wraps (requests wraps urllib3 wraps socket errors: in args,
    ``reason`` or ``__cause__``), outermost first."""
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


def _max_redirects(exc: requests.TooManyRedirects) -> str:
    hops = exc.response.history if exc.response is not None else []
    return str(len(hops) - 1) if hops else "set by max_redirects"


def _has(chain: list[BaseException], *types: type[BaseException]) -> bool:
    return any(isinstance(e, types) for e in chain)


def _translate(
    url: str, exc: BaseException, watchdog: Deadline, timeout: float, deadline: float
) -> FetchError:
    chain = _chain(exc)
    ours = next((e for e in chain if isinstance(e, FetchError)), None)
    if ours is not None:  # raised in our adapter; requests wrapped it (in InvalidURL)
        return ours
    root = (str(chain[-1]) or type(chain[-1]).__name__)[:300]
    if watchdog.expired:
        return DownloadTimeoutError(url, f"download exceeded its {deadline:g} s deadline")
    if isinstance(exc, requests.TooManyRedirects):
        return TooManyRedirectsError(url, f"{root} (the limit is {_max_redirects(exc)})")
    # Bug fix: urllib3's NewConnectionError (ECONNREFUSED, unreachable...) subclasses its
    # ConnectTimeoutError for backwards compatibility, so a refused connection used to be
    # reported as a read timeout. It is a connection failure.
    timeouts = [
        e for e in chain
        if isinstance(e, requests.Timeout | urllib3.exceptions.TimeoutError | TimeoutError)
        and not isinstance(e, urllib3.exceptions.NewConnectionError)
    ]  # fmt: skip
    if timeouts:
        return DownloadTimeoutError(url, f"no data for {timeout:g} s (read timeout)")
    if _has(chain, requests.exceptions.SSLError, urllib3.exceptions.SSLError):
        return FetchConnectionError(url, f"TLS failed: {root}")
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return FetchError(url, f"content decoding failed: {root}")
    if isinstance(exc, requests.exceptions.ChunkedEncodingError | urllib3.exceptions.ProtocolError):
        return TruncatedDownloadError(url, f"connection broke mid-body: {root}")
    if isinstance(
        exc,
        requests.exceptions.InvalidURL
        | requests.exceptions.MissingSchema
        | requests.exceptions.InvalidSchema,
    ):
        return BlockedURLError(url, f"invalid URL: {root}")
    return FetchConnectionError(url, f"connection failed: {root}")
