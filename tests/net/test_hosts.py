"""The per-host limiter (mediastore.net.hosts) alone, and with fetch.open_url against real servers.

The end-to-end tests run open_url on worker threads (one session each, one shared
HostLimits), as Downloader.fetch_many does, against threaded HTTP/1.1 servers on 127.0.0.1
that count server-side what arrives when: requests in flight, and requests arriving while a
Retry-After window the server announced is still open.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from scripted import Reply, Request, ScriptedServer

from mediastore import DownloadTimeoutError, FetchError, InvalidInputError
from mediastore.net import hosts as hosts_module
from mediastore.net.client import FetchSettings, make_session, open_url
from mediastore.net.hosts import HostLimits

# --- HostLimits alone ----------------------------------------------------------------------------


class Clock:
    """A clock the test moves by hand (the limiter's decisions; its waits stay real)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def acquire_in_thread(limits: HostLimits, host: str) -> tuple[threading.Thread, list[float]]:
    """Start a thread that takes a slot of ``host``; the list gets the time it got it."""
    got: list[float] = []

    def take() -> None:
        slot = limits.acquire(host)
        got.append(time.monotonic())
        slot.release()

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    return thread, got


def test_a_host_starts_at_six_concurrent_requests() -> None:
    """Six slots are granted at once; the seventh waits until one is released."""
    limits = HostLimits()
    slots = [limits.acquire("cdn.test") for _ in range(6)]
    thread, got = acquire_in_thread(limits, "cdn.test")
    time.sleep(0.2)
    assert got == []
    slots[0].release()
    thread.join(2)
    assert len(got) == 1
    for slot in slots[1:]:
        slot.release()


def test_hosts_are_limited_separately() -> None:
    """A busy host does not hold up another one."""
    limits = HostLimits(start=1, max_per_host=1)
    with limits.slot("a.test"), limits.slot("b.test") as other:
        assert other.host == "b.test"


def test_prompt_answers_grow_the_limit_up_to_the_maximum() -> None:
    """While the host is saturated and answers promptly, the limit grows to max_per_host."""
    limits = HostLimits(start=2, max_per_host=5)
    for _ in range(20):
        a, b = limits.acquire("cdn.test"), limits.acquire("cdn.test")
        a.report(200, 0.01)
        b.report(200, 0.01)
        a.release()
        b.release()
        held = [limits.acquire("cdn.test") for _ in range(limits.limit("cdn.test"))]
        for slot in held:
            slot.report(200, 0.01)
            slot.release()
    assert limits.limit("cdn.test") == 5


def test_the_limit_does_not_grow_when_it_is_not_used() -> None:
    """One request at a time never raises the limit: an unused limit is no evidence."""
    limits = HostLimits(start=2, max_per_host=16)
    for _ in range(50):
        with limits.slot("cdn.test") as slot:
            slot.report(200, 0.01)
    assert limits.limit("cdn.test") == 2


def test_slow_answers_do_not_grow_the_limit() -> None:
    """Answers much slower than the host's fastest stop the growth."""
    limits = HostLimits(start=2, max_per_host=16)
    a, b = limits.acquire("cdn.test"), limits.acquire("cdn.test")
    a.report(200, 0.01)  # the fastest answer seen, and a prompt one: 2 -> 3
    assert limits.limit("cdn.test") == 3
    c = limits.acquire("cdn.test")
    for slot in (b, c):
        slot.report(200, 1.0)  # 100 times slower
    assert limits.limit("cdn.test") == 3
    for slot in (a, b, c):
        slot.release()


def test_retry_after_pauses_the_whole_host() -> None:
    """A 429 with Retry-After makes every later acquire wait it out, not only the retry."""
    limits = HostLimits()
    with limits.slot("cdn.test") as slot:
        assert slot.report(429, 0.01, retry_after=0.5) == 0.5
    assert 0.3 < limits.paused_for("cdn.test") <= 0.5
    start = time.monotonic()
    threads = [acquire_in_thread(limits, "cdn.test") for _ in range(4)]
    for thread, _ in threads:
        thread.join(3)
    assert all(got and got[0] - start >= 0.45 for _, got in threads)
    with limits.slot("other.test"):
        pass  # another host is not paused


def test_throttling_halves_the_limit_once_per_round() -> None:
    """Six 429s from one burst of six requests halve the limit once, not six times."""
    limits = HostLimits()
    burst = [limits.acquire("cdn.test") for _ in range(6)]
    for slot in burst:
        slot.report(429, 0.01, retry_after=0)
    assert limits.limit("cdn.test") == 3
    for slot in burst:
        slot.release()
    again = [limits.acquire("cdn.test") for _ in range(3)]
    again[0].report(503, 0.01, retry_after=0)  # a new round: sent after the cut
    assert limits.limit("cdn.test") == 1
    for slot in again:
        slot.release()


def test_throttle_without_retry_after_pauses_and_backs_off() -> None:
    """A bare 429 pauses the host 1 s, doubling while the host keeps refusing."""
    clock = Clock()
    limits = HostLimits(clock=clock)
    with limits.slot("cdn.test") as slot:
        assert slot.report(429, 0.01) == 1.0
    clock.now += 1.0
    with limits.slot("cdn.test") as slot:
        assert slot.report(429, 0.01) == 2.0
    clock.now += 2.0
    with limits.slot("cdn.test") as slot:
        slot.report(200, 0.01)
    with limits.slot("cdn.test") as slot:
        assert slot.report(429, 0.01) == 1.0  # an answer in between ended the streak


def test_retry_after_is_capped_at_a_minute() -> None:
    clock = Clock()
    limits = HostLimits(clock=clock)
    with limits.slot("cdn.test") as slot:
        assert slot.report(429, 0.01, retry_after=3600) == 60.0


@pytest.mark.slow
def test_a_refused_level_is_probed_again_only_after_a_quiet_spell() -> None:
    """After a 429 at 4 in flight the limit regrows to 3, and to 4 only after PROBE_AFTER."""
    clock = Clock()
    limits = HostLimits(start=4, max_per_host=16, clock=clock)
    burst = [limits.acquire("cdn.test") for _ in range(4)]
    burst[0].report(429, 0.01, retry_after=0)
    for slot in burst:
        slot.release()
    assert limits.limit("cdn.test") == 2

    def saturated_round() -> None:
        held = [limits.acquire("cdn.test") for _ in range(limits.limit("cdn.test"))]
        waiter, _ = acquire_in_thread(limits, "cdn.test")
        time.sleep(0.05)  # someone waiting: the limit is in use
        for slot in held:
            slot.report(200, 0.01)
            slot.release()
        waiter.join(2)

    for _ in range(10):
        saturated_round()
    assert limits.limit("cdn.test") == 3
    clock.now += hosts_module.PROBE_AFTER
    for _ in range(10):
        saturated_round()
    assert limits.limit("cdn.test") > 3


def test_rate_spaces_the_requests_to_a_host() -> None:
    """rate=10: five requests to one host start over at least 0.4 s."""
    limits = HostLimits(rate=10)
    starts = []
    for _ in range(5):
        with limits.slot("cdn.test"):
            starts.append(time.monotonic())
    assert starts[-1] - starts[0] >= 0.38
    with limits.slot("other.test"):
        pass  # the rate is per host


def test_a_pause_past_the_deadline_fails_at_once() -> None:
    """A host paused beyond the caller's deadline is refused without waiting."""
    limits = HostLimits()
    with limits.slot("cdn.test") as slot:
        slot.report(429, 0.01, retry_after=30)
    start = time.monotonic()
    with pytest.raises(DownloadTimeoutError) as info:
        limits.acquire("cdn.test", deadline=time.monotonic() + 1)
    assert time.monotonic() - start < 0.5
    assert "pause" in info.value.reason


def test_a_full_host_fails_at_the_deadline() -> None:
    limits = HostLimits(start=1, max_per_host=1)
    with limits.slot("cdn.test"):
        start = time.monotonic()
        with pytest.raises(DownloadTimeoutError):
            limits.acquire("cdn.test", deadline=time.monotonic() + 0.3)
        assert 0.25 < time.monotonic() - start < 1.5


def test_close_wakes_the_waiting_workers() -> None:
    """close(): a blocked acquire raises FetchError at once, sleep() returns False."""
    limits = HostLimits(start=1, max_per_host=1)
    errors: list[BaseException] = []
    held = limits.acquire("cdn.test")

    def wait() -> None:
        try:
            limits.acquire("cdn.test")
        except FetchError as exc:
            errors.append(exc)

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    time.sleep(0.1)
    limits.close()
    thread.join(2)
    assert len(errors) == 1 and "cancelled" in str(errors[0])
    assert limits.sleep(10) is False
    held.release()


def test_release_is_idempotent_and_report_after_release_is_ignored() -> None:
    limits = HostLimits(start=1, max_per_host=1)
    slot = limits.acquire("cdn.test")
    slot.release()
    slot.release()
    assert slot.report(429, 0.01, retry_after=5) == 0.0
    assert limits.paused_for("cdn.test") == 0.0
    with limits.slot("cdn.test"):
        pass


@pytest.mark.parametrize(
    "options",
    [{"start": 0}, {"max_per_host": 0}, {"rate": 0}, {"rate": -1.0}, {"start": 1.5}],
)
def test_bad_limits_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        HostLimits(**options)


def test_start_above_the_maximum_is_capped() -> None:
    assert HostLimits(start=6, max_per_host=2).limit("cdn.test") == 2


def test_a_throttle_is_announced_and_a_pause_from_elsewhere_is_obeyed() -> None:
    """on_pause hears each throttle (host, seconds); pause() from another process's lane
    holds this limiter's requests to the host for that long, and only to that host."""
    heard: list[tuple[str, float]] = []
    throttled = HostLimits(on_pause=lambda host, seconds: heard.append((host, seconds)))
    with throttled.slot("cdn.test") as slot:
        slot.report(200, 0.01)
        slot.report(429, 0.01, retry_after=0.5)
    assert heard == [("cdn.test", 0.5)]
    other = HostLimits()
    other.pause(*heard[0])
    assert 0.3 < other.paused_for("cdn.test") <= 0.5
    start = time.monotonic()
    thread, got = acquire_in_thread(other, "cdn.test")
    thread.join(3)
    assert got and got[0] - start >= 0.45
    with other.slot("other.test"):
        pass
    other.pause("cdn.test", 3600)
    assert other.paused_for("cdn.test") <= hosts_module.PAUSE_MAX


def test_resize_shares_the_limits() -> None:
    """A batch spread over two processes: each limiter gets half the start and the cap, and
    a host already above the new cap comes down to it."""
    limits = HostLimits(start=6, max_per_host=16)
    for _ in range(20):  # prompt answers while the limit is in use grow it to the cap
        held = [limits.acquire("cdn.test") for _ in range(limits.limit("cdn.test"))]
        for slot in held:
            slot.report(200, 0.01)
            slot.release()
    assert limits.limit("cdn.test") == 16
    limits.resize(3, 8, 5.0)
    assert limits.limit("cdn.test") == 8 and limits.limit("new.test") == 3
    assert limits.rate == 5.0
    with pytest.raises(InvalidInputError):
        limits.resize(0, 8, None)


# --- with open_url against real servers ----------------------------------------------------------
Handler = Callable[[str, str], tuple[int, dict[str, str], bytes]]


@dataclass
class Tally:
    """What a server saw: requests per path, in flight now and at most, arrival times."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0
    peak: int = 0
    arrivals: list[float] = field(default_factory=list)
    windows: list[tuple[float, float]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)


@dataclass
class Server:
    """A scripted server on 127.0.0.1 answering ``handler(host, path) -> (status, headers,
    body)``, called with the request counted in flight."""

    scripted: ScriptedServer
    tally: Tally

    @property
    def port(self) -> int:
        return self.scripted.port


@pytest.fixture
def server(scripted: Callable[..., ScriptedServer]) -> Callable[[Handler], Server]:
    def start(handler: Handler) -> Server:
        tally = Tally()

        def answer(request: Request, reply: Reply) -> None:
            with tally.lock:
                tally.in_flight += 1
                tally.peak = max(tally.peak, tally.in_flight)
                tally.arrivals.append(time.monotonic())
                tally.paths.append(request.target)
            try:
                status, headers, body = handler(request.headers.get("Host", ""), request.target)
            finally:
                with tally.lock:
                    tally.in_flight -= 1
            reply.respond(status, body, headers)

        return Server(scripted(answer), tally)

    return start


def body_for(path: str) -> bytes:
    return hashlib.sha256(path.encode()).digest() * 64


def run_workers(
    urls: list[str], limits: HostLimits, settings: FetchSettings, workers: int = 16
) -> dict[str, bytes | BaseException]:
    """fetch_many's shape: worker threads, a session each, one shared HostLimits."""
    local = threading.local()
    sessions = []

    def one(url: str) -> bytes | BaseException:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = make_session(settings)
            sessions.append(session)
        try:
            with open_url(session, url, timeout=5, chunk_size=1 << 16, hosts=limits) as resp:
                return b"".join(resp.chunks)
        except FetchError as exc:
            return exc

    try:
        with ThreadPoolExecutor(workers) as pool:
            return dict(zip(urls, pool.map(one, urls), strict=True))
    finally:
        for session in sessions:
            session.close()


@pytest.mark.slow
def test_a_rate_limited_host_gets_no_request_inside_its_retry_after_window(
    server: Callable[[Handler], Server],
) -> None:
    """A rate-limiting server: two requests in flight allowed, 429 + Retry-After: 1
    beyond. 16 workers store all 120 URLs, and no request arrives while a window the host
    announced is open (counted server-side; requests already on their way when the 429 left,
    within 50 ms of it, are not the client's choice)."""
    allowed = 2

    def handler(_host: str, path: str) -> tuple[int, dict[str, str], bytes]:
        tally = srv.tally
        with tally.lock:
            over = tally.in_flight > allowed
            if over:
                tally.windows.append((time.monotonic(), time.monotonic() + 1.0))
        if over:
            return 429, {"Retry-After": "1"}, b"slow down"
        time.sleep(0.02)
        return 200, {"Content-Type": "image/jpeg"}, body_for(path)

    srv = server(handler)
    urls = [f"http://127.0.0.1:{srv.port}/img/{i}.jpg" for i in range(120)]
    limits = HostLimits()
    results = run_workers(urls, limits, FetchSettings(allow_private_networks=True))

    failed = {url: r for url, r in results.items() if isinstance(r, BaseException)}
    assert failed == {}
    assert all(results[url] == body_for(url.split(str(srv.port))[1]) for url in urls)
    tally = srv.tally
    assert tally.windows, "the test server never throttled: the test proves nothing"
    inside = [
        t for t in tally.arrivals if any(start + 0.05 < t < end for start, end in tally.windows)
    ]
    assert inside == []
    assert len(tally.arrivals) < 2 * len(urls)


@pytest.mark.slow
def test_redirect_targets_are_limited_per_host(server: Callable[[Handler], Server]) -> None:
    """Four front hosts redirecting to one media host, 2 per host: the media host never has
    more than 2 requests in flight (a limiter counting the first hop's host would let 8
    through)."""

    def media(_host: str, path: str) -> tuple[int, dict[str, str], bytes]:
        time.sleep(0.05)
        return 200, {"Content-Type": "image/jpeg"}, body_for(path)

    media_server = server(media)

    def front(_host: str, path: str) -> tuple[int, dict[str, str], bytes]:
        return 302, {"Location": f"http://media.test:{media_server.port}{path}"}, b""

    front_server = server(front)
    names = {f"front{i}.test": "127.0.0.1" for i in range(4)} | {"media.test": "127.0.0.1"}
    settings = FetchSettings(
        allow_private_networks=True, resolver=lambda host, _port: [names[host]]
    )
    urls = [f"http://front{i % 4}.test:{front_server.port}/m/{i}.jpg" for i in range(40)]
    limits = HostLimits(start=2, max_per_host=2)

    results = run_workers(urls, limits, settings)

    assert all(results[url] == body_for(f"/m/{i}.jpg") for i, url in enumerate(urls))
    assert len(media_server.tally.arrivals) == 40
    assert media_server.tally.peak == 2
    assert front_server.tally.peak <= 2 * 4


def test_hosts_redirecting_to_each_other_cannot_deadlock(
    server: Callable[[Handler], Server],
) -> None:
    """a -> b -> a with one slot per host and 8 workers: every download completes, since a
    worker frees a host's slot before it waits for the next host's."""

    def handler(_host: str, path: str) -> tuple[int, dict[str, str], bytes]:
        number, step = path.strip("/").split("/")
        if step == "start":  # on a.test
            return 302, {"Location": f"http://b.test:{srv.port}/{number}/via-b"}, b""
        if step == "via-b":
            return 302, {"Location": f"http://a.test:{srv.port}/{number}/end"}, b""
        time.sleep(0.01)
        return 200, {}, body_for(path)

    srv = server(handler)
    settings = FetchSettings(allow_private_networks=True, resolver=lambda h, p: ["127.0.0.1"])
    urls = [f"http://a.test:{srv.port}/{i}/start" for i in range(24)]
    limits = HostLimits(start=1, max_per_host=1)
    started = time.monotonic()
    results = run_workers(urls, limits, settings, workers=8)
    assert time.monotonic() - started < 20
    assert all(results[url] == body_for(f"/{i}/end") for i, url in enumerate(urls))
    assert srv.tally.peak <= 2  # one slot on a.test, one on b.test


def test_a_slot_is_held_while_the_body_streams(server: Callable[[Handler], Server]) -> None:
    """The final hop's slot stays taken until the with block of open_url is left."""
    srv = server(lambda host, path: (200, {}, b"x" * 1000))
    limits = HostLimits(start=1, max_per_host=1)
    session = make_session(FetchSettings(allow_private_networks=True))
    url = f"http://127.0.0.1:{srv.port}/a"
    with open_url(session, url, timeout=5, chunk_size=100, hosts=limits) as resp:
        assert b"".join(resp.chunks) == b"x" * 1000
        with pytest.raises(DownloadTimeoutError):
            limits.acquire("127.0.0.1", deadline=time.monotonic() + 0.2)
    with limits.slot("127.0.0.1"):
        pass


def test_a_host_paused_past_the_download_deadline_fails_fast(
    server: Callable[[Handler], Server],
) -> None:
    """With a total deadline, a Retry-After of 30 s fails the download at once."""
    srv = server(lambda host, path: (429, {"Retry-After": "30"}, b"later"))
    limits = HostLimits()
    session = make_session(FetchSettings(allow_private_networks=True))
    start = time.monotonic()
    with pytest.raises(DownloadTimeoutError) as info, open_url(
        session, f"http://127.0.0.1:{srv.port}/a", timeout=5, deadline=2, chunk_size=100,
        hosts=limits,
    ):  # fmt: skip
        pass
    assert time.monotonic() - start < 1
    assert "deadline" in info.value.reason
    assert len(srv.tally.arrivals) == 1
