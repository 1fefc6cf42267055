"""The low-speed cut-off (curl's --speed-limit/--speed-time), the response-head deadline and
the optional whole-download deadline of fetch.open_url, against slow loopback servers.

One test runs at the default settings (2048 bytes/s over 30 s) and takes about 30 s; the
others pass a shorter speed_time, where the point is the mechanism.
"""

from __future__ import annotations

import time

import pytest
from scripted import Handler, Reply, Request, Start

from mediastore import DownloadTimeoutError
from mediastore.net.client import (
    DEFAULT_SPEED_LIMIT,
    DEFAULT_SPEED_TIME,
    FetchSettings,
    make_session,
    open_url,
)


def head(length: int | None) -> bytes:
    framing = f"Content-Length: {length}\r\n" if length is not None else ""
    return (
        f"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\n{framing}Connection: close\r\n\r\n".encode()
    )


def paced(bytes_per_second: int, seconds: float, piece: int) -> tuple[Handler, int]:
    """Send ``bytes_per_second`` in pieces of ``piece`` bytes for ``seconds``; its length."""
    total = int(bytes_per_second * seconds)

    def behaviour(request: Request, reply: Reply) -> None:
        reply.send(head(total))
        began, sent = time.monotonic(), 0
        while sent < total:
            size = min(piece, total - sent)
            reply.send(b"v" * size)
            sent += size
            due = began + sent / bytes_per_second
            if reply.wait(max(0.0, due - time.monotonic())):
                return

    return behaviour, total


def drip(interval: float, length: int = 100_000) -> Handler:
    """A server that drips: the head, then one byte every ``interval`` seconds, for ever."""

    def behaviour(request: Request, reply: Reply) -> None:
        reply.send(head(length))
        while not reply.wait(interval):
            reply.send(b"v")

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


@pytest.mark.slow
def test_drip_server_is_cut_within_about_30_s_at_the_default_settings(
    scripted: Start,
) -> None:
    """One byte every 0.5 s never trips the 5 s read timeout; the default speed limit cuts it
    after its 30 s window, with no total deadline."""
    server = scripted(drip(0.5))
    start = time.monotonic()
    with pytest.raises(DownloadTimeoutError) as info:
        download(server.url("/v.mp4"), FetchSettings(allow_private_networks=True))
    elapsed = time.monotonic() - start
    assert 29 < elapsed < 34
    assert "too slow" in info.value.reason
    assert len(server.requests) == 1


@pytest.mark.slow
def test_sixteen_kib_per_second_is_never_cut(
    scripted: Start,
) -> None:
    """16 KiB/s for 5 s passes the default limit even over a 2 s window (a shorter window is
    the stricter test: the default 30 s one smooths bursts more)."""
    behaviour, total = paced(16 * 1024, 5, 1024)
    server = scripted(behaviour)
    settings = FetchSettings(allow_private_networks=True, speed_time=2)
    assert download(server.url("/v.mp4"), settings) == total


@pytest.mark.slow
def test_sixteen_kib_per_second_in_bursts_is_never_cut(
    scripted: Start,
) -> None:
    """The same rate in 32 KiB bursts every 2 s (a bursty mobile link) still passes."""
    behaviour, total = paced(16 * 1024, 6, 32 * 1024)
    server = scripted(behaviour)
    settings = FetchSettings(allow_private_networks=True, speed_time=3)
    assert download(server.url("/v.mp4"), settings) == total


@pytest.mark.slow
def test_below_the_limit_is_cut_after_speed_time(
    scripted: Start,
) -> None:
    """1 KiB/s, under the 2 KiB/s default limit, is cut once a 2 s window has passed."""
    behaviour, _ = paced(1024, 20, 128)
    server = scripted(behaviour)
    start = time.monotonic()
    with pytest.raises(DownloadTimeoutError) as info:
        download(server.url("/v.mp4"), FetchSettings(allow_private_networks=True, speed_time=2))
    assert 1.9 < time.monotonic() - start < 4.5
    assert "bytes/s" in info.value.reason


@pytest.mark.slow
def test_a_download_that_slows_down_later_is_cut(
    scripted: Start,
) -> None:
    """A fast start does not buy a stall: the window slides over the last speed_time."""

    def fast_then_drip(request: Request, reply: Reply) -> None:
        reply.send(head(10_000_000) + b"v" * 1_000_000)
        while not reply.wait(0.2):
            reply.send(b"v")

    server = scripted(fast_then_drip)
    start = time.monotonic()
    with pytest.raises(DownloadTimeoutError):
        download(server.url("/v.mp4"), FetchSettings(allow_private_networks=True, speed_time=2))
    assert time.monotonic() - start < 5


@pytest.mark.slow
def test_speed_limit_zero_turns_the_check_off(
    scripted: Start,
) -> None:
    behaviour, total = paced(512, 2.5, 64)
    server = scripted(behaviour)
    settings = FetchSettings(allow_private_networks=True, speed_limit=0, speed_time=1)
    assert download(server.url("/v.mp4"), settings) == total


@pytest.mark.slow
def test_a_dripping_response_head_is_cut(scripted: Start) -> None:
    """Header bytes one at a time pass every read timeout; the head deadline
    (connect + max(timeout, speed_time) = 2 s here) cuts them."""

    def drip_head(request: Request, reply: Reply) -> None:
        reply.send(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        while not reply.wait(0.1):
            reply.send(b"a")

    server = scripted(drip_head)
    settings = FetchSettings(allow_private_networks=True, speed_time=1, retries=0)
    start = time.monotonic()
    with pytest.raises(DownloadTimeoutError) as info:
        download(server.url("/v.mp4"), settings, timeout=1)
    assert 1.8 < time.monotonic() - start < 4
    assert "no complete response" in info.value.reason


@pytest.mark.slow
def test_a_whole_download_deadline_cuts_a_download_that_is_fast_enough(
    scripted: Start,
) -> None:
    """deadline= (what the legacy ``media_cache`` functions pass as their timeout) bounds the whole
    file even at a speed the low-speed check accepts."""
    behaviour, _ = paced(64 * 1024, 10, 4096)
    server = scripted(behaviour)
    start = time.monotonic()
    with pytest.raises(DownloadTimeoutError) as info:
        download(server.url("/v.mp4"), FetchSettings(allow_private_networks=True), deadline=1.0)
    assert time.monotonic() - start < 2.5
    assert "1 s deadline" in info.value.reason


@pytest.mark.slow
def test_no_deadline_by_default(scripted: Start) -> None:
    """Without deadline= nothing bounds a download that keeps moving fast enough."""
    behaviour, total = paced(256 * 1024, 3, 16 * 1024)
    server = scripted(behaviour)
    assert (
        download(server.url("/v.mp4"), FetchSettings(allow_private_networks=True, speed_time=1))
        == total
    )


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
