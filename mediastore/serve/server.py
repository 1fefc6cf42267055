"""Running the application with the limits of ``mediastore serve``.

aiohttp bounds a request line and each header (8 KiB) and the number of headers, and closes
an idle keep-alive connection; this module adds what it lacks, so a slow or greedy client
cannot hold the server: a cap on open connections (one more is closed at once), and a
deadline for a request's headers to arrive (a client trickling them is cut). Sending a
file has its own deadline (see :mod:`mediastore.serve.files`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import time as _time
from asyncio.trsock import TransportSocket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

log = logging.getLogger(__name__)


class CombinedLog(AbstractAccessLogger):
    """One line per request in the combined format: client, -, -, time, request line,
    status, body bytes, referer, agent. The body size is the response's length (a file
    sent with sendfile never passes through aiohttp's byte count)."""

    second = 0
    stamp = ""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        now = int(_time.time())
        if now != self.second:  # formatting the time once a second, not per request
            self.second = now
            self.stamp = datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
        when = self.stamp
        version = f"{request.version.major}.{request.version.minor}"
        line = f"{request.method} {request.path_qs} HTTP/{version}"
        size = response.content_length if response.content_length is not None else "-"
        headers = request.headers
        self.logger.info(
            '%s - - [%s] "%s" %d %s "%s" "%s"',
            request.remote or "-",
            when,
            line.replace('"', "%22"),
            response.status,
            size,
            headers.get("Referer", "-").replace('"', "%22"),
            headers.get("User-Agent", "-").replace('"', "%22"),
        )


BACKLOG = 128


@dataclass(frozen=True, slots=True)
class Limits:
    """How much one client may take.

    Attributes:
        max_connections: Open connections at most (per worker process); one more is
            closed on arrival.
        header_timeout: Seconds a request's headers may take to arrive.
        keepalive_timeout: Seconds an idle keep-alive connection stays open.
        max_field_size: Bytes of the request line and of each header at most.
        max_headers: Headers in one request at most.
    """

    max_connections: int = 256
    header_timeout: float = 10.0
    keepalive_timeout: float = 15.0
    max_field_size: int = 8190
    max_headers: int = 64


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (``localhost`` or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _handler_kwargs(limits: Limits) -> dict[str, Any]:
    return {
        "keepalive_timeout": limits.keepalive_timeout,
        "max_line_size": limits.max_field_size,
        "max_field_size": limits.max_field_size,
        "max_headers": limits.max_headers,
        "access_log_class": CombinedLog,
    }


def _guarded_protocol(server: web.Server, limits: Limits) -> Callable[[], asyncio.Protocol]:
    """A protocol factory: aiohttp's request handler with the connection cap and the header
    deadline."""
    loop = asyncio.get_running_loop()
    kwargs = _handler_kwargs(limits)
    open_now: set[asyncio.BaseTransport] = set()

    class Guarded(web.RequestHandler):
        deadline: asyncio.TimerHandle | None = None
        tail = b""

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            if len(open_now) >= limits.max_connections:
                log.warning("over %d connections: one closed", limits.max_connections)
                transport.close()
                return
            open_now.add(transport)
            self.arm(transport)

        def connection_lost(self, exc: BaseException | None) -> None:
            if self.deadline is not None:
                self.deadline.cancel()
            open_now.difference_update(t for t in list(open_now) if t.is_closing())
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            seen = self.tail + data
            if b"\r\n\r\n" in seen:  # a request's headers are complete
                if self.deadline is not None:
                    self.deadline.cancel()
                    self.deadline = None
                self.tail = b""
            else:
                self.tail = seen[-3:]
                if self.deadline is None and self.transport is not None:
                    self.arm(self.transport)
            super().data_received(data)

        def arm(self, transport: asyncio.BaseTransport) -> None:
            self.deadline = loop.call_later(limits.header_timeout, self.cut, transport)

        def cut(self, transport: asyncio.BaseTransport) -> None:
            log.info("headers not received in %.0f s: connection closed", limits.header_timeout)
            transport.close()

    return lambda: Guarded(server, loop=loop, **kwargs)


async def start(
    app: web.Application,
    host: str,
    port: int,
    limits: Limits,
    *,
    sock: socket.socket | None = None,
) -> tuple[web.AppRunner, asyncio.Server, str]:
    """Start serving ``app`` on ``host:port`` (or on a bound ``sock``); return the runner,
    the listening server and its address."""
    runner = web.AppRunner(app, handle_signals=False, **_handler_kwargs(limits))
    await runner.setup()
    assert runner.server is not None
    loop = asyncio.get_running_loop()
    protocol = _guarded_protocol(runner.server, limits)
    if sock is not None:
        listener = await loop.create_server(protocol, sock=sock, backlog=BACKLOG)
    else:
        listener = await loop.create_server(protocol, host, port, backlog=BACKLOG)
    return runner, listener, address_of(listener.sockets[0])


def address_of(sock: socket.socket | TransportSocket) -> str:
    """``http://host:port/`` of a listening socket."""
    sock_host, sock_port = sock.getsockname()[:2]
    shown = f"[{sock_host}]" if ":" in sock_host else sock_host
    return f"http://{shown}:{sock_port}/"


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (IPv4 or IPv6 by the address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=BACKLOG)
    sock.setblocking(False)
    return sock


async def _serve_until_signal(app: web.Application, sock: socket.socket, limits: Limits) -> None:
    runner, listener, _ = await start(app, "", 0, limits, sock=sock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        listener.close()
        await runner.cleanup()


def run(
    make_app: Callable[[], web.Application],
    host: str,
    port: int,
    *,
    workers: int = 1,
    limits: Limits | None = None,
    announce: Callable[[str], None] = lambda address: None,
) -> None:
    """Serve the app ``make_app()`` returns until SIGINT or SIGTERM; ``announce(address)``
    once the socket listens.

    With several ``workers``, the socket is bound once and each of that many forked
    processes accepts on it with an app of its own (``make_app`` is called in the child:
    a store's connections never cross a fork); the parent only forwards the stop signal.
    Each worker has its own connection cap.
    """
    sock = bind(host, port)
    announce(address_of(sock))
    if workers <= 1:
        asyncio.run(_serve_until_signal(make_app(), sock, limits or Limits()))
        return
    children = [_fork_worker(make_app, sock, limits or Limits()) for _ in range(workers)]
    sock.close()
    _wait_children(children)


def _fork_worker(
    make_app: Callable[[], web.Application], sock: socket.socket, limits: Limits
) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        asyncio.run(_serve_until_signal(make_app(), sock, limits))
    except BaseException:
        log.exception("worker %d failed", os.getpid())
        code = 1
    finally:
        os._exit(code)


def _wait_children(children: list[int]) -> None:
    """Forward SIGINT/SIGTERM to the workers and wait for every one."""

    def forward(signum: int, frame: object) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    for pid in children:
        while True:
            try:
                os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
            except ChildProcessError:
                break


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now on ``host`` (for tests that must know it in advance)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
