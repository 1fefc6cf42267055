"""Per-host politeness for parallel downloads: adaptive concurrency, Retry-After, rate caps.

One :class:`HostLimits` is shared by all the workers of a batch. Every request hop takes a
slot of the host it goes to and reports how the host answered::

    with limits.slot("cdn.example") as slot:
        response = send(...)
        slot.report(response.status, elapsed, retry_after)

How a host is treated:

* Concurrency starts at ``start`` (a browser's 6) and grows, up to ``max_per_host``, only while
  the host answers promptly (headers within twice its fastest answer plus 50 ms) and the
  limit is actually in use. Until the host first pushes back it grows by one per prompt
  answer (doubling per round trip, as TCP's slow start); afterwards by one per ``limit``
  prompt answers.
* A 429 or 503, or any answer with ``Retry-After``, pauses the whole host: no worker starts a
  request to it before the pause ends (``Retry-After``, at most 60 s; without it 1 s, doubling
  while the host keeps refusing). The limit is halved, once per round (answers to requests
  sent before the last cut do not cut again), and does not grow back past the level that
  was refused until the host has been quiet for :data:`PROBE_AFTER` seconds.
* ``rate`` (requests per second per host) spaces the starts of requests to one host.

A worker holds at most one slot at a time (a redirect releases the slot of its host before
waiting for the next host's), so hosts that redirect to each other cannot deadlock.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from ..errors import DownloadTimeoutError, FetchError, InvalidInputError

__all__ = [
    "DEFAULT_MAX_PER_HOST",
    "DEFAULT_START",
    "THROTTLE_STATUSES",
    "HostLimits",
    "Slot",
]

DEFAULT_START: Final = 6  # what browsers open to one host
DEFAULT_MAX_PER_HOST: Final = 16
THROTTLE_STATUSES: Final = frozenset({429, 503})
PAUSE_MAX: Final = 60.0  # seconds: a longer Retry-After is capped, not obeyed
PAUSE_BASE: Final = 1.0  # seconds a throttle without Retry-After pauses the host, doubling
PROMPT_SLACK: Final = 0.05  # seconds above twice the fastest answer still counted as prompt
PROBE_AFTER: Final = 30.0  # seconds without throttling before probing above a refused level


@dataclass(slots=True, eq=False)
class _Host:
    """What is known about one host; guarded by the limiter's lock."""

    limit: int
    cond: threading.Condition
    in_flight: int = 0
    waiting: int = 0
    paused_until: float = 0.0
    next_start: float = 0.0
    cut_at: float = -math.inf
    throttled_at: float = -math.inf
    ceiling: int | None = None  # the concurrency last refused, until PROBE_AFTER has passed
    pushed_back: bool = False
    credit: int = 0
    streak: int = 0
    fastest: float = math.inf


_OnReport = Callable[["Slot", _Host, int, float, "float | None"], float]
_OnRelease = Callable[[str, _Host], None]


class Slot:
    """One request hop's right to talk to a host; release it by leaving the ``with`` block.

    Attributes:
        host: The host the slot belongs to.
        acquired_at: When the slot was granted (the limiter's clock).
    """

    __slots__ = ("_on_release", "_on_report", "_state", "acquired_at", "host")

    def __init__(
        self,
        on_report: _OnReport,
        on_release: _OnRelease,
        host: str,
        state: _Host,
        acquired_at: float,
    ) -> None:
        self._on_report = on_report
        self._on_release = on_release
        self._state: _Host | None = state
        self.host = host
        self.acquired_at = acquired_at

    def report(self, status: int, elapsed: float, retry_after: float | None = None) -> float:
        """Tell the limiter how the host answered this slot's request.

        Args:
            status: The HTTP status of the response.
            elapsed: Seconds from sending the request to having the response head.
            retry_after: The response's ``Retry-After`` in seconds, if it had one.

        Returns:
            The seconds the host is now paused for because of this answer (0 if none).
        """
        state = self._state
        if state is None:
            return 0.0
        return self._on_report(self, state, status, elapsed, retry_after)

    def release(self) -> None:
        """Give the slot back (idempotent)."""
        state, self._state = self._state, None
        if state is not None:
            self._on_release(self.host, state)

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass(slots=True, eq=False)
class _Acquire:
    """The context manager :meth:`HostLimits.slot` returns: waits on entry."""

    limits: HostLimits
    host: str
    deadline: float | None
    slot: Slot | None = field(default=None)

    def __enter__(self) -> Slot:
        self.slot = self.limits.acquire(self.host, deadline=self.deadline)
        return self.slot

    def __exit__(self, *exc: object) -> None:
        if self.slot is not None:
            self.slot.release()


class HostLimits:
    """Adaptive per-host concurrency shared by the workers of one batch of downloads.

    Args:
        start: Concurrent requests a host gets at first.
        max_per_host: The most it can grow to (``start`` is capped at it).
        rate: At most this many requests started per second to one host; ``None`` for no cap.
        clock: Monotonic seconds; replaced in tests.
        on_pause: Called with ``(host, seconds)`` after an answer paused a host here, outside
            the limiter's lock (so that other processes downloading from the same host can
            be told: see :meth:`pause`).

    Raises:
        InvalidInputError: A limit below 1, or a rate that is not positive.
    """

    def __init__(
        self,
        start: int = DEFAULT_START,
        max_per_host: int = DEFAULT_MAX_PER_HOST,
        rate: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_pause: Callable[[str, float], None] | None = None,
    ) -> None:
        if not isinstance(max_per_host, int) or max_per_host < 1:
            raise InvalidInputError(f"max_per_host must be at least 1, got {max_per_host!r}")
        if not isinstance(start, int) or start < 1:
            raise InvalidInputError(f"start must be at least 1, got {start!r}")
        if rate is not None and not (isinstance(rate, int | float) and rate > 0):
            raise InvalidInputError(f"rate must be a positive number or None, got {rate!r}")
        self.start = min(start, max_per_host)
        self.max_per_host = max_per_host
        self.rate = rate
        self._clock = clock
        #: called as described for ``on_pause`` (may be set after construction)
        self.on_pause = on_pause
        self._lock = threading.Lock()
        self._hosts: dict[str, _Host] = {}
        self._closed = threading.Event()

    # --- public API ------------------------------------------------------------------------
    def slot(self, host: str, *, deadline: float | None = None) -> _Acquire:
        """A context manager that waits for a slot of ``host`` and yields the :class:`Slot`.

        Args:
            host: The host name (lowercase) the request goes to.
            deadline: Give up at this time of the limiter's clock.

        Raises:
            DownloadTimeoutError: (on entry) No slot before ``deadline``, or the host is paused
                past it (raised at once then).
            FetchError: (on entry) :meth:`close` was called.
        """
        return _Acquire(self, host, deadline)

    def acquire(self, host: str, *, deadline: float | None = None) -> Slot:
        """Wait for a slot of ``host``; the caller must :meth:`Slot.release` it.

        Args and errors as for :meth:`slot`.
        """
        with self._lock:
            state = self._state(host)
            state.waiting += 1
            try:
                now = self._wait_turn(host, state, deadline)
            finally:
                state.waiting -= 1
            state.in_flight += 1
            if self.rate is not None:
                state.next_start = max(now, state.next_start) + 1.0 / self.rate
            return Slot(self._report, self._release, host, state, now)

    def limit(self, host: str) -> int:
        """The concurrency ``host`` is allowed now (``start`` for a host not seen yet)."""
        with self._lock:
            state = self._hosts.get(host)
            return self.start if state is None else state.limit

    def paused_for(self, host: str) -> float:
        """Seconds until ``host`` may be contacted again (0 if it is not paused)."""
        with self._lock:
            state = self._hosts.get(host)
            return 0.0 if state is None else max(0.0, state.paused_until - self._clock())

    def pause(self, host: str, seconds: float) -> None:
        """Pause ``host`` for ``seconds`` (at most PAUSE_MAX), as an answer seen elsewhere asked.

        For a throttle another process's downloads met: the host is then paused here too
        (no request starts before the pause ends) and grows back as after a push-back.
        """
        with self._lock:
            state = self._state(host)
            now = self._clock()
            state.paused_until = max(state.paused_until, now + min(PAUSE_MAX, max(0.0, seconds)))
            state.pushed_back = True
            state.throttled_at = now

    def resize(self, start: int, max_per_host: int, rate: float | None) -> None:
        """Change the start, the cap and the rate (a batch spread over processes shares them).

        Hosts above the new cap come down to it: slots already granted run to their end.
        """
        if max_per_host < 1 or start < 1:
            raise InvalidInputError(f"limits must be at least 1, got {start}, {max_per_host}")
        with self._lock:
            self.start = min(start, max_per_host)
            self.max_per_host = max_per_host
            self.rate = rate
            for state in self._hosts.values():
                state.limit = min(state.limit, max_per_host)

    def sleep(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless :meth:`close` is called; False if it was."""
        return not self._closed.wait(seconds) if seconds > 0 else not self._closed.is_set()

    def close(self) -> None:
        """Stop: waiting and later :meth:`acquire` calls raise, :meth:`sleep` returns early."""
        self._closed.set()
        with self._lock:
            for state in self._hosts.values():
                state.cond.notify_all()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed.is_set()

    # --- internals (called with self._lock held, except the two Slot callbacks) ------------
    def _state(self, host: str) -> _Host:
        state = self._hosts.get(host)
        if state is None:
            state = self._hosts[host] = _Host(self.start, threading.Condition(self._lock))
        return state

    def _wait_turn(self, host: str, state: _Host, deadline: float | None) -> float:
        """Block until ``state`` has room and is neither paused nor rate-limited; return now."""
        while True:
            if self._closed.is_set():
                raise FetchError(host, "downloads were cancelled")
            now = self._clock()
            ready_at = max(state.paused_until, state.next_start)
            if state.in_flight < state.limit and now >= ready_at:
                return now
            if deadline is not None and (now >= deadline or ready_at > deadline):
                raise DownloadTimeoutError(host, _busy_reason(state, now))
            timeout = ready_at - now if ready_at > now else None
            if deadline is not None:
                timeout = min(deadline - now, timeout if timeout is not None else math.inf)
            state.cond.wait(timeout)

    def _release(self, host: str, state: _Host) -> None:
        with self._lock:
            state.in_flight -= 1
            if state.waiting:
                state.cond.notify()
            elif not state.in_flight and self._forgettable(state):
                # keeps the table as small as the set of hosts that are busy or remembered
                self._hosts.pop(host, None)

    def _forgettable(self, state: _Host) -> bool:
        now = self._clock()
        return (
            state.limit == self.start
            and not state.pushed_back
            and state.paused_until <= now
            and state.next_start <= now
        )

    def _report(
        self, slot: Slot, state: _Host, status: int, elapsed: float, retry_after: float | None
    ) -> float:
        if status in THROTTLE_STATUSES or retry_after is not None:
            with self._lock:
                pause = self._throttle(slot, state, self._clock(), retry_after)
            if self.on_pause is not None and pause > 0:
                self.on_pause(slot.host, pause)
            return pause
        with self._lock:
            now = self._clock()
            if status >= 500:
                return 0.0  # a failing host is not pushed harder, nor is it a rate limit
            state.streak = 0
            prompt = elapsed <= 2 * state.fastest + PROMPT_SLACK
            state.fastest = min(state.fastest, elapsed)
            if prompt and (state.waiting or state.in_flight >= state.limit):
                self._grow(state, now)
            return 0.0

    def _grow(self, state: _Host, now: float) -> None:
        if state.ceiling is not None and now - state.throttled_at >= PROBE_AFTER:
            state.ceiling = None  # quiet long enough: the refused level may be tried again
        if state.limit >= self.max_per_host:
            return
        if state.ceiling is not None and state.limit + 1 >= state.ceiling:
            return
        state.credit += 1
        if state.pushed_back and state.credit < state.limit:
            return
        state.credit = 0
        state.limit += 1
        state.cond.notify()

    def _throttle(self, slot: Slot, state: _Host, now: float, retry_after: float | None) -> float:
        state.streak += 1
        state.pushed_back = True
        state.throttled_at = now
        if retry_after is not None:
            pause = min(PAUSE_MAX, max(0.0, retry_after))
        else:
            pause = min(PAUSE_MAX, PAUSE_BASE * 2 ** (state.streak - 1))
        state.paused_until = max(state.paused_until, now + pause)
        if slot.acquired_at >= state.cut_at:
            level = min(state.limit, state.in_flight)
            state.ceiling = level
            state.limit = max(1, level // 2)
            state.cut_at = now
            state.credit = 0
        return pause


def _busy_reason(state: _Host, now: float) -> str:
    if state.paused_until > now:
        return f"the host asked for a pause of {state.paused_until - now:.1f} s more"
    return f"no free slot for the host ({state.in_flight} requests in flight)"
