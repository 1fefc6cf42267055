"""A large batch of downloads spread over a child process (mediastore.net.processes), on a real
loopback server: results, the catalog and the files checked with sqlite3 and hashlib."""

from __future__ import annotations

import inspect
import json
import logging
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import checker
import pytest
from interrupt import interrupt_when
from scripted import Reply, Request, ScriptedServer

from mediastore import MediaStore, errors
from mediastore import testing as t
from mediastore.net import processes as lanes

pytestmark = pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one CPU: never spread")

#: The batch size from which the in-process tests spread (lanes.SPREAD_MIN, 1,000 in use,
#: is lowered for them: the decision is the parent's, the child is as in use).
SMALL = 64
SPREAD_MIN = lanes.SPREAD_MIN


@pytest.fixture(autouse=True)
def _spread_small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lanes, "SPREAD_MIN", SMALL)


@dataclass
class _Behaviour:
    delay: float = 0.0
    throttle_after: float | None = None  # the first request after this is answered 429
    drip_from: int | None = None  # image numbers from here are sent a byte every 0.2 s
    arrivals: list[tuple[float, str]] = field(default_factory=list)
    throttled_at: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def _answer(behaviour: _Behaviour) -> Callable[[Request, Reply], None]:
    """Image ``/img/N.jpg`` after ``delay``: 429 once ``throttle_after`` has passed, then
    whole (or dripped, from ``drip_from`` on)."""

    def answer(request: Request, reply: Reply) -> None:
        with behaviour.lock:
            now = time.monotonic()
            behaviour.arrivals.append((now, request.target))
            throttle = behaviour.throttled_at is None and now > (
                behaviour.throttle_after or float("inf")
            )  # fmt: skip
            if throttle:
                behaviour.throttled_at = now
        if throttle:
            reply.respond(429, headers={"Retry-After": "1"})
            return
        time.sleep(behaviour.delay)
        image = int(request.path.rsplit("/", 1)[1].split(".")[0])
        body = t.noisy_jpeg((24, 16), seed=image)
        if behaviour.drip_from is None or image < behaviour.drip_from:
            reply.respond(200, body, {"Content-Type": "image/jpeg"})
            return
        reply.start(200, {"Content-Type": "image/jpeg"}, length=len(body))
        reply.drip(body, 0.2)  # until a cancelled download hangs up

    return answer


@pytest.fixture
def serve(scripted: Callable[..., ScriptedServer]) -> Callable[..., tuple[str, _Behaviour]]:
    def start(**options: Any) -> tuple[str, _Behaviour]:
        behaviour = _Behaviour(**options)
        return scripted(_answer(behaviour)).base_url, behaviour

    return start


def _urls(base: str, count: int) -> list[str]:
    return [f"{base}/img/{i}.jpg" for i in range(count)]


def _lane_children(parent: int | None = None) -> list[int]:
    """Live child processes of ``parent`` (default: this one) that run the download lane."""
    parent = os.getpid() if parent is None else parent
    return [pid for pid in _pids_of_laneworkers() if _ppid(pid) == parent]


def _children_seen(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "download process" in r.getMessage()]


def _check_catalog(root: Path, urls: list[str]) -> None:
    """Every URL is recorded, and every row points at its intact file (the checker)."""
    assert set(checker.url_map(checker.catalog_path(root))) == set(urls)
    assert checker.check_i1(root) == []
    assert checker.temp_files(root) == []


@pytest.mark.slow
def test_a_large_batch_is_shared_with_a_child_process(
    make_store: Callable[..., MediaStore], serve: Any, caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:  # fmt: skip
    """300 URLs: a child joins at once, results come back in input order, every
    row points at an intact file, and the child is gone when fetch_many returns."""
    base, _ = serve()
    urls = _urls(base, 300)
    store = make_store()
    caplog.set_level("DEBUG", logger="mediastore.net.processes")
    results = store.fetch_many(urls + urls[:5])
    assert [r.url for r in results] == urls + urls[:5]
    assert all(r.ok for r in results), [str(r.error) for r in results if not r.ok][:3]
    started = _children_seen(caplog)
    assert len(started) == 2 and started[1].endswith(" ready"), started
    assert f"process {os.getpid()} " not in started[0]
    assert _lane_children() == []
    _check_catalog(tmp_path / "s", urls)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("count", "options"),
    [
        pytest.param(SMALL - 1, {}, id="a small batch"),
        # a resolver function cannot be given to a child: the batch runs here, all of it
        pytest.param(
            2 * SMALL, {"resolver": lambda host, port: ["127.0.0.1"]}, id="a resolver function"
        ),
        pytest.param(2 * SMALL, {"fetch_processes": 1}, id="fetch_processes=1"),
    ],
)
def test_these_batches_stay_in_this_process(
    make_store: Callable[..., MediaStore], serve: Any, caplog: pytest.LogCaptureFixture,
    count: int, options: dict[str, Any],
) -> None:  # fmt: skip
    base, _ = serve()
    caplog.set_level("DEBUG", logger="mediastore.net.processes")
    results = make_store(**options).fetch_many(_urls(base, count))
    assert all(r.ok for r in results)
    assert _children_seen(caplog) == []


@pytest.mark.slow
def test_the_urls_of_a_killed_child_are_downloaded_here(
    make_store: Callable[..., MediaStore], serve: Any, caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:  # fmt: skip
    """SIGKILL the child mid-batch: the URLs it held run in this process; nothing is lost.

    The child is killed a few results after it reported ready (so it holds URLs), not at a
    fixed count: on a busy machine it may join late and have nothing left by then."""
    base, _ = serve(delay=0.02)
    urls = _urls(base, 400)
    store = make_store()
    caplog.set_level("DEBUG", logger="mediastore.net.processes")
    results = []
    killed = False
    ready_at: int | None = None
    for result in store.iter_fetch(urls):
        results.append(result)
        if ready_at is None and any(m.endswith(" ready") for m in caplog.messages):
            ready_at = len(results)
        due = ready_at is not None and not killed and len(results) >= ready_at + 10
        if due and (children := _lane_children()):
            os.kill(children[0], signal.SIGKILL)
            killed = True
    assert killed, "no child ever joined the batch"
    assert sorted(r.url for r in results) == sorted(urls)
    assert all(r.ok for r in results), [str(r.error) for r in results if not r.ok][:3]
    assert any("unsettled; downloading them here" in m for m in caplog.messages)
    store.gc()  # the killed child's temp files are a dead writer's: gc removes them
    _check_catalog(tmp_path / "s", urls)


class _ArmOnReady(logging.Handler):
    """Arms the server's 429 a moment after a child reports ready (both lanes busy then)."""

    def __init__(self, behaviour: _Behaviour) -> None:
        super().__init__()
        self.behaviour = behaviour

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().endswith(" ready"):
            self.behaviour.throttle_after = time.monotonic() + 0.3


@pytest.mark.slow
def test_a_host_that_throttles_one_process_is_paused_in_both(
    make_store: Callable[..., MediaStore], serve: Any
) -> None:
    """A 429 with Retry-After: 1 while both processes download: no new request reaches the
    host for the second after it. Requests granted a slot before it may still arrive (the
    server shares this process's interpreter lock, so a granted request can be sent late):
    at most one lane's cap, 8. Without the pause reaching the other lane, it sends dozens."""
    base, behaviour = serve(delay=0.01)
    lanes_log = logging.getLogger("mediastore.net.processes")
    arm = _ArmOnReady(behaviour)
    lanes_log.addHandler(arm)
    level = lanes_log.level
    lanes_log.setLevel(logging.DEBUG)
    try:
        results = make_store().fetch_many(_urls(base, 10 * SMALL))
    finally:
        lanes_log.removeHandler(arm)
        lanes_log.setLevel(level)
    assert all(r.ok for r in results), [str(r.error) for r in results if not r.ok][:3]
    assert behaviour.throttled_at is not None, "the child never got ready"
    inside = [
        path for at, path in behaviour.arrivals
        if behaviour.throttled_at + 0.15 < at < behaviour.throttled_at + 0.95
    ]  # fmt: skip
    assert len(inside) <= 8, f"{len(inside)} requests inside the announced pause: {inside}"


@pytest.mark.slow
def test_ctrl_c_stops_the_child_too(serve: Any, tmp_path: Path) -> None:
    """SIGINT to `mediastore fetch` while both processes are blocked on dripping bodies:
    exit 130 within 3 s, no child left, no temp file, and a store that verifies. (A real
    CLI, so the real SPREAD_MIN: a streamed list spreads once it has taken that many.)"""
    fast = SPREAD_MIN  # the CLI's own, not the lowered one
    base, _ = serve(drip_from=fast)
    listing = tmp_path / "urls.txt"
    listing.write_text("".join(f"{url}\n" for url in _urls(base, fast + 200)))
    root = tmp_path / "store"
    command = [
        sys.executable, "-m", "mediastore", "--root", str(root), "fetch", "--allow-private",
        "--from-file", str(listing), "--jsonl",
    ]  # fmt: skip
    output = tmp_path / "out.jsonl"  # a file: a thousand lines would fill a pipe
    children: list[int] = []

    def child_joined(pid: int) -> bool:
        children[:] = _lane_children(pid)
        return bool(children)

    with output.open("w") as out_file:
        # 3 s after the child joined, it is ready and both processes are mid-body on drips
        ended = interrupt_when(
            command, child_joined, within=30, settle=3.0, stdout=out_file, timeout=15
        )
    out = output.read_text()
    assert ended.returncode == 130, ended.err
    assert ended.took < 3, f"took {ended.took:.1f} s to stop"
    assert ended.err.strip().startswith("interrupted: "), ended.err
    assert all(not Path(f"/proc/{pid}").exists() for pid in children)
    assert checker.temp_files(root) == []
    fetched = [json.loads(line) for line in out.splitlines() if '"url"' in line]
    assert 0 < len(fetched) <= fast
    with MediaStore(root) as store:
        assert store.verify().all_ok


def _pids_of_laneworkers() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"mediastore.net.child" in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


def _error_classes() -> list[type[errors.MediaStoreError]]:
    return [
        cls for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.MediaStoreError)
    ]  # fmt: skip


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda cls: cls.__name__)
def test_every_error_travels_between_processes(cls: type[errors.MediaStoreError]) -> None:
    """A child's errors reach the parent with their type, message and attributes."""
    if issubclass(cls, errors.HTTPStatusError):
        error: errors.MediaStoreError = cls("http://h.example/a.jpg", 404)
    elif issubclass(cls, errors.FetchError):
        error = cls("http://h.example/a.jpg", "it broke")
    elif cls is errors.AmbiguousMD5Error:
        error = cls("two match", ["ab" * 16, "cd" * 16])
    else:
        error = cls("it broke")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls and str(copy) == str(error)
    assert vars(copy) == vars(error) and copy.exit_code == error.exit_code
