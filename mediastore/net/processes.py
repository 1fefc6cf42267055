"""Download processes: one batch of downloads spread over more than one Python process.

A download is mostly Python (HTTP parsing, the staging checks, the commit), and the threads of
one process share one interpreter lock: a batch of small images keeps about one core busy
however many threads it has. A :class:`ProcessLane` runs a share of a batch in a child process
(``python -m mediastore.net.child``) that opens the same store and runs the same downloader;
the catalog settles the two processes' commits as it settles any two writers'.

The child is a plain ``python -m`` process, not a ``multiprocessing`` one: it never re-runs the
caller's script (as the spawn start method does), and it starts in its own session, so that a
Ctrl-C reaches only the parent, which cancels it. It stops when told to, and when its input
ends without a word (the parent died). If it cannot start or dies, the URLs it held are
handed back (:attr:`ProcessLane.fallback`) to run in the parent.

Messages both ways are a 4-byte length and a pickle, over the child's stdin and stdout; only
the parent and the child it started read them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from ..config import StoreConfig
from ..errors import FetchError
from ..records import FetchResult
from ..version import __version__

log = logging.getLogger(__name__)

#: Seconds a child may take to stop after it was told to (it cancels within about one).
EXIT_WAIT: Final = 30.0
#: URLs a batch must still have ahead (or, its length unknown, have taken) for a child to
#: join it. A child's start costs 0.3 s of CPU on a quiet machine and 1.5 s to be ready on a
#: busy one: a batch of 300 small images is over by then (and ran slower for sharing the
#: CPU with it), one of 2,000 gains about a sixth.
SPREAD_MIN: Final = 1000
_HEAD = struct.Struct("<I")

#: Parent to child: the setup first, then ("url", url), ("pause", host, seconds), ("end",)
#: (no more URLs: finish them) or ("cancel",). Child to parent: ("ready",) once its store is
#: open, then ("result", FetchResult), ("pause", host, seconds) and ("log", level, logger
#: name, message).
Message = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class LaneSetup:
    """What a child needs to run its share of a batch."""

    config: StoreConfig
    blob_url: str | None
    max_workers: int
    timeout: float
    deadline: float | None
    start: int
    max_per_host: int
    rate: float | None
    log_level: int
    retry_failed: bool = False
    version: str = __version__


def picklable(config: StoreConfig) -> bool:
    """Whether a child can be given this config (a resolver or policy function may not be)."""
    try:
        pickle.dumps(config)
    except Exception:  # any failure means: run in this process
        return False
    return True


def send(stream: IO[bytes], lock: threading.Lock, message: object) -> None:
    """Write one message (raises OSError if the other end is gone)."""
    data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
    with lock:
        stream.write(_HEAD.pack(len(data)) + data)
        stream.flush()


def receive(stream: IO[bytes]) -> Any | None:
    """The next message, or None at the end of the stream (or a message cut short)."""
    head = stream.read(_HEAD.size)
    if len(head) < _HEAD.size:
        return None
    (size,) = _HEAD.unpack(head)
    body = stream.read(size)
    if len(body) < size:
        return None
    return pickle.loads(body)  # written by our own child or parent only


class ProcessLane:
    """A child process downloading the URLs submitted to it; results come back as futures.

    Args:
        setup: The child's store and share of the batch.
        on_pause: Called with ``(host, seconds, lane)`` when a host paused the child's
            downloads (the other lanes are to pause it too).
        on_ready: Called with the lane once the child has opened the store (it is given URLs
            only from then on: a batch does not wait for a child's start).
        fallback: Runs a URL in this process instead; used for the URLs the child still held
            when it could not start or died.
    """

    def __init__(
        self,
        setup: LaneSetup,
        *,
        on_pause: Callable[[str, float, ProcessLane], None],
        on_ready: Callable[[ProcessLane], None],
        fallback: Callable[[str], Future[FetchResult]],
    ) -> None:
        self.fallback = fallback
        self._on_pause = on_pause
        self._on_ready = on_ready
        self.ready = False
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._pending: dict[str, Future[FetchResult]] = {}
        self._cancelled = self._lost = False
        self._setup = setup
        self._stdin: IO[bytes] | None = None
        self._early: list[object] = []  # pauses posted before the child was started

    def start(self) -> None:
        """Start the child (raises OSError if it cannot be started)."""
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "mediastore.net.child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
            env=_child_env(),
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._stdout: IO[bytes] = self._proc.stdout
        self._reader = threading.Thread(
            target=self._read, name="mediastore-lane-reader", daemon=True
        )
        self._reader.start()
        with self._write_lock:
            self._stdin = self._proc.stdin
            early, self._early = self._early, []
        for message in [self._setup, *early]:
            self._post(message)
        log.debug("download process %d started", self._proc.pid)

    @property
    def load(self) -> int:
        """URLs submitted and not settled yet (a lane not ready, or lost, counts as full)."""
        return sys.maxsize if self._lost or not self.ready else len(self._pending)

    def submit(self, url: str) -> Future[FetchResult]:
        """Hand ``url`` to the child (to this process if the child is gone)."""
        future: Future[FetchResult] = Future()
        with self._lock:
            if self._lost:
                return self.fallback(url)
            self._pending[url] = future
        self._post(("url", url))
        return future

    def pause(self, host: str, seconds: float) -> None:
        """Pause ``host`` in the child too (another lane was throttled by it)."""
        self._post(("pause", host, seconds))

    def stop(self, *, cancel: bool) -> None:
        """Tell the child to stop (at once with ``cancel``, else after its URLs); no wait."""
        with self._lock:
            self._cancelled = self._cancelled or cancel
        self._post(("cancel",) if cancel else ("end",))
        if self._stdin is not None:
            with contextlib.suppress(OSError):
                self._stdin.close()

    def join(self) -> None:
        """Wait for the child to exit (killed after EXIT_WAIT) and its results to be read."""
        try:
            self._proc.wait(EXIT_WAIT)
        except subprocess.TimeoutExpired:
            log.warning("download process %d did not stop; killing it", self._proc.pid)
            self._proc.kill()
            self._proc.wait()
        self._reader.join()
        self._stdout.close()

    def _post(self, message: object) -> None:
        with self._write_lock:
            if self._stdin is None:
                self._early.append(message)
                return
            stdin = self._stdin
        # the child gone (or its stdin closed): the reader finds the end of its output and
        # hands the URLs back
        with contextlib.suppress(OSError, ValueError):
            send(stdin, self._write_lock, message)

    def _read(self) -> None:
        while (message := _receive_or_none(self._stdout)) is not None:
            kind = message[0]
            if kind == "result":
                self._settle(message[1])
            elif kind == "ready":
                log.debug("download process %d ready", self._proc.pid)
                self.ready = True
                self._on_ready(self)
            elif kind == "pause":
                self._on_pause(message[1], message[2], self)
            elif kind == "log":
                logging.getLogger(message[2]).log(message[1], "%s", message[3])
        self._lose()

    def _settle(self, result: FetchResult) -> None:
        with self._lock:
            future = self._pending.pop(result.url, None)
        if future is not None:
            future.set_result(result)

    def _lose(self) -> None:
        """The child's output ended: hand back (or cancel) what it still held."""
        with self._lock:
            self._lost = True
            held, self._pending = self._pending, {}
            cancelled = self._cancelled
        if held and not cancelled:
            log.warning(
                "download process %d exited with %d URLs unsettled; downloading them here",
                self._proc.pid,
                len(held),
            )
        for url, future in held.items():
            if cancelled:
                future.set_result(FetchResult(url=url, error=FetchError(url, CANCELLED)))
            else:
                self.fallback(url).add_done_callback(_copy_to(future))


class Lanes:
    """Where each URL of one batch runs: this process's threads, and children once it is big.

    A batch of at least :data:`SPREAD_MIN` URLs (a batch of unknown length, once it has
    taken that many) starts ``processes - 1`` children; until one is ready, the batch runs
    here alone. Then every lane gets an equal share of the batch's limits
    (``on_spread(processes)`` shrinks this process's share).
    Each URL then goes to the ready lane with the fewest unsettled URLs; anything but a
    string stays here (it fails here). A host that pauses one lane is paused in all.

    Args:
        local: Runs a URL on this process's threads.
        processes: Lanes in all, this process included (1: never spread).
        expected: The number of URLs in the batch, if it is known.
        setup: The children's setup for a batch spread over that many lanes; None when the
            batch cannot be spread (its config does not pickle, say).
        on_spread: Shrinks this process's share, given the number of lanes.
        pause_local: Pauses a host in this process's limits.
    """

    def __init__(
        self,
        local: Callable[[object], Future[FetchResult]],
        *,
        processes: int,
        expected: int | None,
        setup: Callable[[int], LaneSetup] | None,
        on_spread: Callable[[int], None],
        pause_local: Callable[[str, float], None],
    ) -> None:
        self._local = local
        self._processes = processes if setup is not None else 1
        self._setup = setup
        self._on_spread = on_spread
        self._pause_local = pause_local
        self._lock = threading.Lock()
        self._local_load = 0
        self._taken = 0
        self._expected = expected
        self._shared = False
        self.children: list[ProcessLane] = []

    def submit(self, url: object) -> Future[FetchResult]:
        """Run ``url`` in the least loaded lane (called from one thread, the batch's feeder)."""
        self._taken += 1
        if self._processes > 1 and not self.children and self._long_enough():
            self._spread()
        if isinstance(url, str) and self.children:
            lane = min(self.children, key=lambda child: child.load)
            if lane.load < self._local_load:
                return lane.submit(url)
        return self.run_here(url)

    def run_here(self, url: object) -> Future[FetchResult]:
        """Run ``url`` on this process's threads."""
        with self._lock:
            self._local_load += 1
        future = self._local(url)
        future.add_done_callback(self._local_done)
        return future

    def broadcast_pause(self, host: str, seconds: float, source: ProcessLane | None = None) -> None:
        """A host paused one lane (``source``, None for this process): pause it everywhere."""
        if source is not None:
            self._pause_local(host, seconds)
        for child in self.children:
            if child is not source:
                child.pause(host, seconds)

    def close(self, *, cancel: bool) -> None:
        """Stop the children (at once with ``cancel``) and wait for them."""
        for child in self.children:
            child.stop(cancel=cancel)
        for child in self.children:
            child.join()

    def _long_enough(self) -> bool:
        if self._expected is None:
            return self._taken == SPREAD_MIN
        return self._taken == 1 and self._expected >= SPREAD_MIN

    def _child_ready(self, _: ProcessLane) -> None:
        with self._lock:
            shared, self._shared = self._shared, True
        if not shared:
            self._on_spread(self._processes)

    def _local_done(self, _: Future[FetchResult]) -> None:
        with self._lock:
            self._local_load -= 1

    def _spread(self) -> None:
        assert self._setup is not None
        setup = self._setup(self._processes)
        for _ in range(self._processes - 1):
            child = ProcessLane(
                setup,
                on_pause=self.broadcast_pause,
                on_ready=self._child_ready,
                fallback=self.run_here,
            )
            self.children.append(child)  # listed before it starts: every pause reaches it
            try:
                child.start()
            except OSError as exc:
                self.children.remove(child)
                log.warning("could not start a download process (%s); downloading here", exc)
                return


CANCELLED: Final = "downloads were cancelled"


def _receive_or_none(stream: IO[bytes]) -> Message | None:
    try:
        message = receive(stream)
    except Exception:  # a child that died mid-message: its output is over
        log.debug("unreadable message from a download process", exc_info=True)
        return None
    return message if isinstance(message, tuple) and message else None


def _copy_to(target: Future[FetchResult]) -> Callable[[Future[FetchResult]], None]:
    def copy(done: Future[FetchResult]) -> None:
        target.set_result(done.result())

    return copy


def _child_env() -> dict[str, str]:
    """The environment, with this mediastore's directory first on the child's import path."""
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parents[2])  # the directory holding the package
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    return env
