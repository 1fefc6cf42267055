"""One scripted HTTP/1.1 server for the network tests: real sockets on loopback, answers written
by the test.

``ScriptedServer(handler)`` listens on a free port of 127.0.0.1 (or another loopback address)
and serves each connection on a thread of its own. For every request it calls the handler its
path is routed to with the :class:`Request` (method, target, headers, body) and a
:class:`Reply`, through which the handler sends what the test needs: a whole response; a head,
then its body in pieces with pauses (:meth:`Reply.write`, :meth:`Reply.drip`,
:meth:`Reply.wait`); raw bytes no well-behaved server would send (a lying Content-Length, a
broken head); a connection cut mid-body (:meth:`Reply.hang_up`); or nothing for a while.
Every request is recorded in ``requests``, and ``connections`` counts the TCP connections.

A connection is kept alive (HTTP/1.1) after a response whose framing was complete: a body of
its Content-Length sent whole, or a chunked body ended. After anything else (raw bytes, a body
cut short or too long, a response without framing) the server closes it, as the client then
expects. An ``Expect: 100-continue`` request gets its ``100 Continue`` before its body is read.

The ``scripted`` fixture (conftest.py) starts servers, closes them after the test and fails
the test if a handler raised or a request had no route.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType

#: The longest request head read (request line and headers).
MAX_HEAD = 64 * 1024

Headers = Mapping[str, str | int] | Iterable[tuple[str, str | int]]


@dataclass(frozen=True)
class Request:
    """A request as the server read it.

    Attributes:
        method: ``GET``, ``PUT``...
        target: The request target as sent: the path and the query.
        headers: Its headers (lookups ignore case; ``items()`` keeps the client's spelling).
        body: Its body (by Content-Length or chunked; empty without one).
        head: Its request line and headers as received.
        connection: Which connection it came on (1 for the server's first).
        at: ``time.monotonic()`` when its head had arrived.
    """

    method: str
    target: str
    headers: http.client.HTTPMessage
    body: bytes
    head: bytes
    connection: int
    at: float

    @property
    def path(self) -> str:
        """The target without its query."""
        return self.target.split("?", 1)[0]


class Reply:
    """How a handler answers one request: writes on the request's connection.

    A write to a client that went away raises OSError, which ends the handler quietly (what a
    download cancelled mid-body does to a real server).
    """

    def __init__(self, sock: socket.socket, request: Request, stopping: threading.Event) -> None:
        self.request = request
        self.started = False  # some byte of a response was sent
        self._sock = sock
        self._stopping = stopping
        self._left: int | None = None  # body bytes the Content-Length still promises
        self._chunked = False
        self._complete = False  # the response's framing is complete
        self._close = False  # the connection ends after this response
        self._held: list[bytes] | None = None  # what respond() sends in one write

    @property
    def keeps_alive(self) -> bool:
        """Whether the connection can carry another request after this response."""
        return self._complete and not self._close

    def send(self, data: bytes) -> None:
        """Raw bytes, as they are (head, body or garbage): the connection closes afterwards."""
        self._close = self.started = True
        self._send(data)

    def start(
        self, status: int | str = 200, headers: Headers = (), *, length: int | None = None,
        chunked: bool = False, close: bool = False,
    ) -> None:  # fmt: skip
        """Send the status line and headers.

        Args:
            status: A code (its reason phrase is added) or a whole status, ``"200 OK"``.
            headers: More headers, in order.
            length: Adds ``Content-Length``; the body is then expected to be that long.
            chunked: Adds ``Transfer-Encoding: chunked``; each :meth:`write` is then a chunk
                and :meth:`end` the last one.
            close: Adds ``Connection: close`` (also added when the body has no framing, so
                that closing the connection ends it).
        """
        lines = [f"HTTP/1.1 {_status_line(status)}"]
        items = headers.items() if isinstance(headers, Mapping) else headers
        lines += [f"{name}: {value}" for name, value in items]
        if length is not None:
            lines.append(f"Content-Length: {length}")
        if chunked:
            lines.append("Transfer-Encoding: chunked")
        if close or (length is None and not chunked):
            lines.append("Connection: close")
            self._close = True
        self._chunked, self._left = chunked, length
        self._complete = length == 0 or self.request.method == "HEAD"
        self.started = True
        self._send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def write(self, data: bytes) -> None:
        """Send body bytes: one chunk of a chunked body, else the bytes as they are."""
        if not data:
            return
        if self._chunked:
            self._send(b"%x\r\n%s\r\n" % (len(data), data))
            return
        self._send(data)
        if self._left is not None:
            self._left -= len(data)
            self._complete = self._left == 0

    def end(self) -> None:
        """Send the last, empty chunk of a chunked body."""
        self._send(b"0\r\n\r\n")
        self._complete = True

    def respond(self, status: int | str = 200, body: bytes = b"", headers: Headers = ()) -> None:
        """Send a whole response in one write: the head with the body's Content-Length, then
        the body (none to a HEAD request)."""
        self._held = []
        try:
            self.start(status, headers, length=len(body))
            if self.request.method != "HEAD":
                self.write(body)
            data = b"".join(self._held)
        finally:
            self._held = None
        self._send(data)

    def drip(self, data: bytes, interval: float, *, burst: int = 1) -> bool:
        """Send body bytes slowly: the first ``burst`` at once, then one every ``interval`` s.

        Returns:
            True once all are sent; False if the server began closing first.
        """
        self.write(data[:burst])
        for i in range(burst, len(data)):
            if self.wait(interval):
                return False
            self.write(data[i : i + 1])
        return True

    def wait(self, seconds: float) -> bool:
        """Pause (a slow or hung server). Returns True, early, if the server is closing."""
        return self._stopping.wait(seconds)

    def hang_up(self) -> None:
        """Cut the connection now, whatever the response promised."""
        self._close = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def _send(self, data: bytes) -> None:
        if self._held is not None:
            self._held.append(data)
        else:
            self._sock.sendall(data)


Handler = Callable[[Request, Reply], None]


class ScriptedServer:
    """A threaded HTTP/1.1 server on a free port of ``host`` whose answers are handlers.

    Attributes:
        host: The loopback address it listens on.
        port: Its port.
        routes: Handler by path (the query aside); ``"*"`` takes the paths without their own.
        requests: Every request read, in order of arrival.
        connections: TCP connections accepted so far.
        errors: Tracebacks of handlers that raised, and requests without a route or
            unreadable (:meth:`check` fails on them).
    """

    def __init__(self, handler: Handler | None = None, *, host: str = "127.0.0.1") -> None:
        self.host = host
        self.routes: dict[str, Handler] = {} if handler is None else {"*": handler}
        self.requests: list[Request] = []
        self.connections = 0
        self.errors: list[str] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept, name="scripted-accept", daemon=True)
        self._acceptor.start()

    @property
    def base_url(self) -> str:
        """``http://host:port``, without a path."""
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "/", host: str | None = None) -> str:
        """The URL of ``path`` here; ``host`` replaces the address (a name a test resolves)."""
        return f"http://{host or self.host}:{self.port}{path}"

    def route(self, path: str, handler: Handler) -> str:
        """Route requests for ``path`` (``"*"``: any path without its own) to ``handler``.

        Returns:
            The URL of ``path``.
        """
        self.routes[path] = handler
        return self.url(path)

    def close(self) -> None:
        """Stop: no new connection, waits in handlers end, open connections are cut."""
        self._stopping.set()
        self._acceptor.join(5)
        self._listener.close()
        with self._lock:
            socks, threads = list(self._socks), list(self._threads)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(5)

    def check(self) -> None:
        """Fail if a handler raised, or a request had no route or could not be read."""
        if self.errors:
            raise AssertionError(f"scripted server {self.base_url}:\n" + "\n".join(self.errors))

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
        if kind is None:
            self.check()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections += 1
                worker = threading.Thread(
                    target=self._serve, args=(sock, self.connections), daemon=True
                )
                self._socks.append(sock)
                self._threads.append(worker)
            worker.start()

    def _serve(self, sock: socket.socket, number: int) -> None:
        """Answer the requests of one connection until it is to be closed."""
        reader = sock.makefile("rb")
        try:
            while not self._stopping.is_set():
                try:
                    request = _read_request(reader, sock, number)
                except OSError:
                    return
                except Exception:
                    self.errors.append(f"unreadable request:\n{traceback.format_exc()}")
                    return
                if request is None or not self._answer(request, sock):
                    return
        finally:
            with contextlib.suppress(OSError):
                reader.close()
                sock.shutdown(socket.SHUT_WR)
            sock.close()

    def _answer(self, request: Request, sock: socket.socket) -> bool:
        """Run the handler of ``request``; whether the connection may carry another one."""
        with self._lock:
            self.requests.append(request)
        reply = Reply(sock, request, self._stopping)
        try:
            self._handler_for(request.path)(request, reply)
        except OSError:
            return False  # the client went away, or the server is closing
        except Exception:
            self.errors.append(f"{request.method} {request.target}:\n{traceback.format_exc()}")
            if not reply.started:
                with contextlib.suppress(OSError):
                    reply.respond(500, b"the test server's handler failed")
            return False
        return reply.keeps_alive and request.headers.get("Connection", "").lower() != "close"

    def _handler_for(self, path: str) -> Handler:
        handler = self.routes.get(path) or self.routes.get("*")
        return handler if handler is not None else self._no_route

    def _no_route(self, request: Request, reply: Reply) -> None:
        self.errors.append(f"{request.method} {request.target}: no route")
        reply.respond(404, b"no route")


#: The type of the ``scripted`` fixture: ``scripted(handler, host=...)`` starts a server.
Start = Callable[..., ScriptedServer]


def _status_line(status: int | str) -> str:
    if isinstance(status, str):
        return status
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def _read_request(reader: io.BufferedReader, sock: socket.socket, number: int) -> Request | None:
    """The next request on a connection; None if the client closed it first."""
    lines: list[bytes] = []
    while not lines or lines[-1] not in (b"\r\n", b"\n"):
        line = reader.readline(MAX_HEAD + 1)
        if not line:
            return None
        if not lines and line in (b"\r\n", b"\n"):
            continue  # a stray empty line before a request is ignored (RFC 9112, 2.2)
        lines.append(line)
        if sum(map(len, lines)) > MAX_HEAD:
            raise ValueError(f"request head over {MAX_HEAD} bytes")
    at = time.monotonic()
    method, target, _version = lines[0].decode("latin-1").split()
    headers = http.client.parse_headers(io.BytesIO(b"".join(lines[1:])))
    chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
    length = int(headers.get("Content-Length") or 0)
    if (chunked or length) and headers.get("Expect", "").lower() == "100-continue":
        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    body = _read_chunked(reader) if chunked else _read_exactly(reader, length)
    return Request(method, target, headers, body, b"".join(lines), number, at)


def _read_exactly(reader: io.BufferedReader, size: int) -> bytes:
    data = reader.read(size) if size else b""
    if len(data) < size:
        raise ConnectionError("the client closed the connection mid-body")
    return data


def _read_chunked(reader: io.BufferedReader) -> bytes:
    body = []
    while True:
        line = reader.readline(1024)
        if not line:
            raise ConnectionError("the client closed the connection mid-body")
        size = int(line.split(b";", 1)[0].strip(), 16)  # a chunk extension is ignored
        if size == 0:
            break
        body.append(_read_exactly(reader, size))
        _read_exactly(reader, 2)  # the CRLF after the chunk
    while reader.readline(MAX_HEAD) not in (b"\r\n", b"\n", b""):
        pass  # trailer fields
    return b"".join(body)
