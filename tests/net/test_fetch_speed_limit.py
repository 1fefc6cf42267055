"""The low-speed cut-off (curl's --speed-limit/--speed-time), the response-head deadline and
the optional whole-download deadline of fetch.open_url, against slow loopback servers.

One test runs at the default settings (2048 bytes/s over 30 s) and takes about 30 s; the
others pass a shorter speed_time, where the point is the mechanism.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from mediastore import DownloadTimeoutError
from mediastore.net.client import (
    DEFAULT_SPEED_LIMIT,
    DEFAULT_SPEED_TIME,
    FetchSettings,
    make_session,
    open_url,
)

Behaviour = Callable[[socket.socket, threading.Event], None]


class SlowServer:
    """A loopback TCP server running ``behaviour(conn, stop)`` after reading a request head."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.stop = threading.Event()
        self.requests = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v.mp4"

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            worker = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(worker)
            worker.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            received = b""
            while b"\r\n\r\n" not in received:
                data = conn.recv(4096)
                if not data:
                    return
                received += data
            self.requests += 1
            self.behaviour(conn, self.stop)

    def close(self) -> None:
        self.stop.set()
        self._acceptor.join(5)
        self._listener.close()
        for worker in self._threads:
            worker.join(5)


@pytest.fixture
def slow_server() -> Iterator[Callable[[Behaviour], SlowServer]]:
    started: list[SlowServer] = []

    def start(behaviour: Behaviour) -> SlowServer:
        started.append(SlowServer(behaviour))
        return started[-1]

    yield start
    for server in started:
        server.close()


def head(length: int | None) -> bytes:
    framing = f"Content-Length: {length}\r\n" if length is not None else ""
    return (
        f"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\n{framing}Connection: close\r\n\r\n".encode()
    )


def paced(bytes_per_second: int, seconds: float, piece: int) -> tuple[Behaviour, int]:
    """Send ``bytes_per_second`` in pieces of ``piece`` bytes for ``seconds``; its length."""
    total = int(bytes_per_second * seconds)

    def behaviour(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(head(total))
        began, sent = time.monotonic(), 0
        while sent < total:
            size = min(piece, total - sent)
            conn.sendall(b"v" * size)
            sent += size
            due = began + sent / bytes_per_second
            if stop.wait(max(0.0, due - time.monotonic())):
                return

    return behaviour, total


def drip(interval: float, length: int = 100_000) -> Behaviour:
    """The drip server of issue 11: the head, then one byte every ``interval`` seconds."""

    def behaviour(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(head(length))
        while not stop.wait(interval):
            conn.sendall(b"v")

    return behaviour


def download(
    url: str, settings: FetchSettings, *, timeout: float = 5, deadline: float | None = None
) -> int:
    """Bytes read from ``url`` through open_url (raises what it raises)."""
    session = make_session(settings)
    try:
        with open_url(session, url, timeout=timeout, deadline=deadline, chunk_size=1 << 20) as resp:
            return sum(len(chunk) for chunk in resp.chunks)
    finally:
        session.close()


def test_the_defaults_are_two_kib_per_second_over_thirty_seconds() -> None:
    assert (DEFAULT_SPEED_LIMIT, DEFAULT_SPEED_TIME) == (2048.0, 30.0)
    assert FetchSettings().speed_limit == DEFAULT_SPEED_LIMIT
    assert FetchSettings().speed_time == DEFAULT_SPEED_TIME


def test_drip_server_is_cut_within_about_30_s_at_the_default_settings(
    slow_server: Callable[[Behaviour], SlowServer],
) -> None:
    """One byte every 0.5 s never trips the 5 s read timeout; the default speed limit cuts it
    after its 30 s window, with no total deadline."""
    server = slow_server(drip(0.5))
    start = time.monotonic()
    with pytest.raises(DownloadTimeoutError) as info:
        download(server.url, FetchSettings(allow_private_networks=True))
    elapsed = time.monotonic() - start
    assert 29 < elapsed < 34
    assert "too slow" in info.value.reason
    assert server.requests == 1


def test_sixteen_kib_per_second_is_never_cut(
    slow_server: Callable[[Behaviour], SlowServer],
) -> None:
    """16 KiB/s for 5 s passes the default limit even over a 2 s window (a shorter window is
    the stricter test: the default 30 s one smooths bursts more)."""
    behaviour, total = paced(16 * 1024, 5, 1024)
    server = slow_server(behaviour)
    settings = FetchSettings(allow_private_networks=True, speed_time=2)
    assert download(server.url, settings) == total


def test_sixteen_kib_per_second_in_bursts_is_never_cut(
    slow_server: Callable[[Behaviour], SlowServer],
) -> None:
    """The same rate in 32 KiB bursts every 2 s (a bursty mobile link) still passes."""
    behaviour, total = paced(16 * 1024, 6, 32 * 1024)
    server = slow_server(behaviour)
    settings = FetchSettings(allow_private_networks=True, speed_time=3)
    assert download(server.url, settings) == total


def test_below_the_limit_is_cut_after_speed_time(
    slow_server: Callable[[Behaviour], SlowServer],
) -> None:
    """1 KiB/s, under the 2 KiB/s default limit, is cut once a 2 s window has passed."""
    behaviour, _ = paced(1024, 20, 128)
    server = slow_server(behaviour)
    start = time.monotonic()
    with pytest.raises(DownloadTimeoutError) as info:
        download(server.url, FetchSettings(allow_private_networks=True, speed_time=2))
    assert 1.9 < time.monotonic() - start < 4.5
    assert "bytes/s" in info.value.reason


def test_a_download_that_slows_down_later_is_cut(
    slow_server: Callable[[Behaviour], SlowServer],
) -> None:
    """A fast start does not buy a stall: the window slides over the last speed_time."""

    def fast_then_drip(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(head(10_000_000) + b"v" * 1_000_000)
        while not stop.wait(0.2):
            conn.sendall(b"v")

    server = slow_server(fast_then_drip)
    start = time.monotonic()
    with pytest.raises(DownloadTimeoutError):
        download(server.url, FetchSettings(allow_private_networks=True, speed_time=2))
    assert time.monotonic() - start < 5


def test_speed_limit_zero_turns_the_check_off(
    slow_server: Callable[[Behaviour], SlowServer],
) -> None:
    behaviour, total = paced(512, 2.5, 64)
    server = slow_server(behaviour)
    settings = FetchSettings(allow_private_networks=True, speed_limit=0, speed_time=1)
    assert download(server.url, settings) == total


def test_a_dripping_response_head_is_cut(slow_server: Callable[[Behaviour], SlowServer]) -> None:
    """Header bytes one at a time pass every read timeout; the head deadline
    (connect + max(timeout, speed_time) = 2 s here) cuts them."""

    def drip_head(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        while not stop.wait(0.1):
            conn.sendall(b"a")

    server = slow_server(drip_head)
    settings = FetchSettings(allow_private_networks=True, speed_time=1, retries=0)
    start = time.monotonic()
    with pytest.raises(DownloadTimeoutError) as info:
        download(server.url, settings, timeout=1)
    assert 1.8 < time.monotonic() - start < 4
    assert "no complete response" in info.value.reason


def test_a_whole_download_deadline_cuts_a_download_that_is_fast_enough(
    slow_server: Callable[[Behaviour], SlowServer],
) -> None:
    """deadline= (what the seed-compatible functions pass as their timeout) bounds the whole
    file even at a speed the low-speed check accepts."""
    behaviour, _ = paced(64 * 1024, 10, 4096)
    server = slow_server(behaviour)
    start = time.monotonic()
    with pytest.raises(DownloadTimeoutError) as info:
        download(server.url, FetchSettings(allow_private_networks=True), deadline=1.0)
    assert time.monotonic() - start < 2.5
    assert "1 s deadline" in info.value.reason


def test_no_deadline_by_default(slow_server: Callable[[Behaviour], SlowServer]) -> None:
    """Without deadline= nothing bounds a download that keeps moving fast enough."""
    behaviour, total = paced(256 * 1024, 3, 16 * 1024)
    server = slow_server(behaviour)
    assert download(server.url, FetchSettings(allow_private_networks=True, speed_time=1)) == total


def test_finished_deadlines_do_not_pile_up() -> None:
    """A deadline that ended early is dropped from the watchdog soon, not at its time: memory
    stays flat over many short downloads (each has a head deadline tens of seconds long)."""
    import tracemalloc

    from mediastore.net.client import Deadline

    for _ in range(2048):  # warm up: the heap reaches its steady size
        with Deadline(60, "warm-up"):
            pass
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20_000):
            with Deadline(60, "test"):
                pass
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 1 << 20, f"{grown} bytes kept for 20,000 finished deadlines"
