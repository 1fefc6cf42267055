"""Ctrl-C at any moment of the command's start, while Python imports it: one line, exit 130.

(The first ~20 ms belong to the interpreter itself, before any mediastore code runs: a
signal then ends as Python ends any program, which no package can change.)"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest
from interrupt import interrupt_when

from mediastore import MediaStore

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("delay", [0.05, 0.1, 0.15, 0.2, 0.3, 0.45])
def test_ctrl_c_while_the_command_starts_is_one_line(tmp_path: Path, delay: float) -> None:
    """SIGINT sent `delay` seconds after `python -m mediastore stats` started (inside its
    imports for the shorter delays): it exits 130 and says `interrupted` in one line; when
    the command had already finished, it exits 0, or dies of the signal while Python shuts
    down (which a shell reports as 130 too) with nothing on stderr; never a traceback."""
    with MediaStore(tmp_path / "s"):
        pass
    started = time.monotonic()
    command = [sys.executable, "-m", "mediastore", "--root", str(tmp_path / "s"), "stats"]
    result = interrupt_when(command, lambda _pid: time.monotonic() - started >= delay)
    assert "Traceback" not in result.err
    if result.returncode in (0, -signal.SIGINT):  # done before the signal, or shutting down
        assert result.err == "" and "type" in result.out
        return
    assert result.returncode == 130, result.err
    assert result.err.splitlines()[-1].startswith("interrupted"), result.err
    assert len(result.err.splitlines()) == 1, result.err
