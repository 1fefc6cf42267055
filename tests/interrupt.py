"""Ctrl-C for the tests: run a real command and send it SIGINT once it is busy."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO


def interruptible() -> None:
    """In the child: SIGINT as at a terminal. A test run started in the background (as CI
    may do) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt for it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass(frozen=True, slots=True)
class Interrupted:
    """How an interrupted command ended.

    Attributes:
        returncode: Its exit code.
        out: Its standard output (empty when it went to a file).
        err: Its standard error.
        took: Seconds from the signal to its exit.
    """

    returncode: int
    out: str
    err: str
    took: float


def interrupt_when(
    command: list[str], ready: Callable[[int], bool], *, within: float = 60,
    settle: float = 0.0, check: Callable[[], None] | None = None,
    stdout: IO[str] | None = None, timeout: float = 10,
) -> Interrupted:  # fmt: skip
    """Run ``command``, and SIGINT it ``settle`` seconds after ``ready(pid)`` is true.

    Args:
        command: The command line.
        ready: Polled with the process id until it says the command is busy.
        within: Seconds ``ready`` has to become true (else the test fails).
        settle: Seconds to wait after that, before the signal.
        check: Called right before the signal (it asserts what the test needs then).
        stdout: A file for the output (a long output would fill a pipe); default a pipe.
        timeout: Seconds the command has to exit after the signal.
    """
    with subprocess.Popen(
        command, stdout=stdout or subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=interruptible,
    ) as proc:  # fmt: skip
        try:
            waited = time.monotonic()
            while not ready(proc.pid):
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() - waited < within, "the command never got going"
                time.sleep(0.01)
            time.sleep(settle)
            if check is not None:
                check()
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=timeout)
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
    return Interrupted(proc.returncode, out or "", err, took)
