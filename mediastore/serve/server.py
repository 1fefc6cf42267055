"""Running the application with the limits of ``mediastore serve``.

aiohttp bounds a request line and each header (8 KiB) and the number of headers, and closes
an idle keep-alive connection; this module adds what it lacks, so a slow or greedy client
cannot hold the server: a cap on open connections (one more is closed at once), and a
deadline for a request's headers to arrive (a client trickling them is cut). Sending a
file has its own deadline (see :mod:`mediastore.serve.files`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import socket
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

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        when = datetime.now(UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
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


@dataclass(frozen=True, slots=True)
class Limits:
    """How much one client may take.

    Attributes:
        max_connections: Open connections at most; one more is closed on arrival.
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
    app: web.Application, host: str, port: int, limits: Limits
) -> tuple[web.AppRunner, asyncio.Server, str]:
    """Start serving ``app``; return the runner, the listening server and its address."""
    runner = web.AppRunner(app, handle_signals=False, **_handler_kwargs(limits))
    await runner.setup()
    assert runner.server is not None
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(
        _guarded_protocol(runner.server, limits), host, port, backlog=128, reuse_address=True
    )
    sock_host, sock_port = listener.sockets[0].getsockname()[:2]
    shown = f"[{sock_host}]" if ":" in sock_host else sock_host
    return runner, listener, f"http://{shown}:{sock_port}/"


def run(
    app: web.Application,
    host: str,
    port: int,
    *,
    limits: Limits | None = None,
    announce: Callable[[str], None] = lambda address: None,
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM; ``announce(address)`` once it listens."""

    async def main() -> None:
        runner, listener, address = await start(app, host, port, limits or Limits())
        announce(address)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            listener.close()
            await runner.cleanup()

    asyncio.run(main())


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now on ``host`` (for tests that must know it in advance)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
