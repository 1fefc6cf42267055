"""The child side of :mod:`mediastore.net.processes`: ``python -m mediastore.net.child``.

Reads a :class:`~mediastore.net.processes.LaneSetup` and then URLs from stdin, downloads them
into the store with the parent's settings and its share of each host's limits, and writes one result
per URL to stdout. Not a command for people: it talks only to the process that started it.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import signal
import sys
import threading
from collections.abc import Iterator
from typing import IO

from ..errors import FetchError
from ..records import FetchResult
from ..store import MediaStore
from ..version import __version__
from .downloader import Cancel, Downloader
from .hosts import HostLimits
from .processes import LaneSetup, receive, send

_END = object()


class _Forward(logging.Handler):
    """Sends each log record to the parent, which logs it through its own handlers."""

    def __init__(self, out: IO[bytes], lock: threading.Lock) -> None:
        super().__init__()
        self._out = out
        self._lock = lock

    def emit(self, record: logging.LogRecord) -> None:
        try:
            send(self._out, self._lock, ("log", record.levelno, record.name, record.getMessage()))
        except Exception:  # a log line must never stop a download
            self.handleError(record)


def _read_input(
    stdin: IO[bytes], urls: queue.SimpleQueue[object], hosts: HostLimits, cancel: Cancel
) -> None:
    """Hand URLs to the downloads, pauses to the limits; the end of input without a word
    from the parent (it died) cancels."""
    while (message := receive(stdin)) is not None:
        if message[0] == "url":
            urls.put(message[1])
        elif message[0] == "pause":
            hosts.pause(message[1], message[2])
        elif message[0] == "end":
            break
        elif message[0] == "cancel":
            cancel.cancel()
            break
    else:
        cancel.cancel()
    urls.put(_END)


def _source(urls: queue.SimpleQueue[object]) -> Iterator[str]:
    while (url := urls.get()) is not _END:
        assert isinstance(url, str)
        yield url


def _send_result(out: IO[bytes], lock: threading.Lock, result: FetchResult) -> None:
    """Send ``result``; one whose error does not pickle goes with that error as text."""
    try:
        send(out, lock, ("result", result))
    except (pickle.PicklingError, TypeError, AttributeError):  # nothing was written
        plain = FetchError(result.url, str(result.error))
        send(out, lock, ("result", FetchResult(url=result.url, error=plain)))


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent cancels; a Ctrl-C is its own
    stdin = sys.stdin.buffer
    # messages get a descriptor of their own; a stray print() lands on stderr
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    lock = threading.Lock()
    setup = receive(stdin)
    if not isinstance(setup, LaneSetup) or setup.version != __version__:
        print("mediastore.net.child: started by another mediastore version", file=sys.stderr)
        return 2
    root = logging.getLogger()
    root.addHandler(_Forward(out, lock))
    root.setLevel(setup.log_level)
    cancel = Cancel()
    hosts = HostLimits(
        setup.start,
        setup.max_per_host,
        setup.rate,
        on_pause=lambda host, seconds: send(out, lock, ("pause", host, seconds)),
    )
    urls: queue.SimpleQueue[object] = queue.SimpleQueue()
    threading.Thread(
        target=_read_input,
        args=(stdin, urls, hosts, cancel),
        name="mediastore-lane-input",
        daemon=True,
    ).start()
    with MediaStore(config=setup.config, blob_url=setup.blob_url) as store:
        downloader = Downloader(store.lifecycle, store.get_by_url)
        send(out, lock, ("ready",))
        try:
            results = downloader.iter_fetch(
                _source(urls),
                max_workers=setup.max_workers,
                timeout=setup.timeout,
                deadline=setup.deadline,
                retry_failed=setup.retry_failed,
                cancel=cancel,
                hosts=hosts,
                spread=False,
            )
            for result in results:
                _send_result(out, lock, result)
        except OSError:  # the parent is gone: the downloads were cancelled on the way out
            return 1
        finally:
            downloader.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
