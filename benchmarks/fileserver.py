"""A small threaded HTTP/1.1 file server: the fallback when nginx is not installed.

``python -m http.server`` stalls ~44 ms on every HTTP/1.1 request (measured here),
so this one answers each request with its headers in a single write on a TCP_NODELAY socket
and the body with ``socket.sendfile`` (zero copy), and keeps connections alive.

Run as its own process: ``python -m benchmarks.fileserver ROOT PORT``; it prints ``ready``
once it listens on 127.0.0.1:PORT, and serves until it is terminated.

Two behaviours of real CDNs can be switched on: ``--delay S`` answers every request after S
seconds (a round trip to a distant CDN); ``--max-in-flight N`` answers 429 with
``Retry-After: 1`` to a request that arrives while N are already being answered. ``GET
/__stats`` returns JSON counts: requests, 429s sent, and requests that arrived while a
Retry-After window the server had announced was still open.
"""

from __future__ import annotations

import argparse
import io
import json
import mimetypes
import os
import posixpath
import socket
import socketserver
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

MAX_LINE = 65_536


class FileHandler(socketserver.BaseRequestHandler):
    """Serves GET and HEAD for files under the server's root, keep-alive by default."""

    server: FileServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = sock.makefile("rb")
        try:
            while self._one_request(sock, reader):
                pass
        except (ConnectionError, TimeoutError):
            pass  # the client went away
        finally:
            reader.close()

    def _one_request(self, sock: socket.socket, reader: io.BufferedIOBase) -> bool:
        """Answer one request; False when the connection is to be closed."""
        line = reader.readline(MAX_LINE)
        if not line:
            return False
        headers: dict[bytes, bytes] = {}
        while True:
            raw = reader.readline(MAX_LINE)
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.partition(b":")
            headers[name.strip().lower()] = value.strip()
        parts = line.split()
        if len(parts) != 3:
            self._send_empty(sock, 400, "Bad Request", keep_alive=False)
            return False
        method, target, version = parts
        connection = headers.get(b"connection", b"").lower()
        keep_alive = (version == b"HTTP/1.1" and connection != b"close") or (
            connection == b"keep-alive"
        )
        if method not in (b"GET", b"HEAD"):
            self._send_empty(sock, 405, "Method Not Allowed", keep_alive=keep_alive)
            return keep_alive
        if target == b"/__stats":
            body = json.dumps(self.server.stats()).encode("ascii")
            head = (
                f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            sock.sendall(head.encode("latin-1") + body)
            return False
        refused = self.server.arrive()
        try:
            if self.server.delay:
                time.sleep(self.server.delay)
            if refused:
                head = (
                    "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\n"
                    f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
                )
                sock.sendall(head.encode("latin-1"))
                return keep_alive
            return self._send_file(sock, method, target, keep_alive)
        finally:
            self.server.leave()

    def _send_file(
        self, sock: socket.socket, method: bytes, target: bytes, keep_alive: bool
    ) -> bool:
        path = self.server.resolve(target.decode("latin-1"))
        if path is None:
            self._send_empty(sock, 404, "Not Found", keep_alive=keep_alive)
            return keep_alive
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            head = (
                f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {size}\r\n"
                f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
            )
            sock.sendall(head.encode("latin-1"))  # all headers in one write
            if method == b"GET" and size:
                sock.sendfile(fh)
        return keep_alive

    @staticmethod
    def _send_empty(sock: socket.socket, status: int, reason: str, *, keep_alive: bool) -> None:
        conn = "keep-alive" if keep_alive else "close"
        head = f"HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: {conn}\r\n\r\n"
        sock.sendall(head.encode("latin-1"))


class FileServer(socketserver.ThreadingTCPServer):
    """One thread per connection, files from ``root`` only."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(
        self, root: Path, port: int, *, delay: float = 0.0, max_in_flight: int | None = None
    ) -> None:
        self.root = root.resolve()
        self.delay = delay
        self.max_in_flight = max_in_flight
        self._lock = threading.Lock()
        self._in_flight = 0
        self._counts = {"requests": 0, "refused_429": 0, "in_retry_after_window": 0}
        self._window_until = 0.0
        super().__init__(("127.0.0.1", port), FileHandler)

    def arrive(self) -> bool:
        """Count a request in; True if it is to be refused with a 429."""
        with self._lock:
            now = time.monotonic()
            self._counts["requests"] += 1
            if now < self._window_until:
                self._counts["in_retry_after_window"] += 1
            self._in_flight += 1
            refused = self.max_in_flight is not None and self._in_flight > self.max_in_flight
            if refused:
                self._counts["refused_429"] += 1
                self._window_until = now + 1.0
            return refused

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def resolve(self, target: str) -> Path | None:
        """The file a request target names, or None (missing, a directory, or outside root)."""
        rel = posixpath.normpath(unquote(urlsplit(target).path)).lstrip("/")
        if rel.startswith(".."):
            return None
        path = (self.root / rel).resolve()
        if self.root not in path.parents or not path.is_file():
            return None
        return path


def main(argv: list[str]) -> int:
    """``ROOT PORT [--delay S] [--max-in-flight N]``: serve until terminated."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fileserver")
    parser.add_argument("root", type=Path)
    parser.add_argument("port", type=int)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--max-in-flight", type=int, help="429 beyond this many in flight")
    args = parser.parse_args(argv)
    with FileServer(
        args.root, args.port, delay=args.delay, max_in_flight=args.max_in_flight
    ) as server:
        print("ready", flush=True)
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
