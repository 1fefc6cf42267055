"""Running checks as the unprivileged user ``nobody``, for tests of what a user who may read
but not write a store sees (the suite must run as root to drop to it)."""

from __future__ import annotations

import json
import os
import select
import signal
import time
import traceback
from collections.abc import Callable
from typing import Any

import pytest

NOBODY = 65534
CHILD_TIMEOUT = 60.0

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="dropping to an unprivileged user needs root"
)


def run_as_nobody(checks: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Fork, drop to nobody, run ``checks`` and return what it returned (JSON over a pipe)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            payload = checks()
        except BaseException:
            payload = {"crash": traceback.format_exc()}
            code = 1
        try:
            data = json.dumps(payload, default=str).encode()
            while data:
                data = data[os.write(write_end, data) :]
        finally:
            os._exit(code)
    os.close(write_end)
    chunks: list[bytes] = []
    deadline = time.monotonic() + CHILD_TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([read_end], [], [], deadline - time.monotonic())
            if not ready:
                break
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
    if time.monotonic() >= deadline:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    result: dict[str, Any] = json.loads(b"".join(chunks) or b"{}")
    assert "crash" not in result, result.get("crash")
    assert os.waitstatus_to_exitcode(status) == 0, (status, result)
    return result
