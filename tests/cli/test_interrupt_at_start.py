"""Ctrl-C at any moment of the command's start, while Python imports it: one line, exit 130.

(The first milliseconds belong to the interpreter itself, before any mediastore code runs: a
signal then ends as Python ends any program, which no package can change. The signals here
are sent once the command's own imports have begun: a compiled module of its dependencies is
mapped into the process.)"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest
from interrupt import interrupt_when

from mediastore import MediaStore

pytestmark = pytest.mark.slow

#: Compiled modules the command's imports load (SQLite's driver, Pillow's core, SQLAlchemy's).
IMPORTING = ("_sqlite3", "_imaging", "sqlalchemy")


def _importing(pid: int) -> bool:
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False
    return any(name in maps for name in IMPORTING)


@pytest.mark.parametrize("delay", [0.0, 0.02, 0.05, 0.1, 0.2, 0.4])
def test_ctrl_c_while_the_command_starts_is_one_line(tmp_path: Path, delay: float) -> None:
    """SIGINT sent `delay` seconds after `python -m mediastore stats` began importing its
    dependencies: it exits 130 and says `interrupted` in one line; when the command had
    already finished, it exits 0, or dies of the signal while Python shuts down (which a
    shell reports as 130 too) with nothing on stderr; never a traceback."""
    with MediaStore(tmp_path / "s"):
        pass
    command = [sys.executable, "-m", "mediastore", "--root", str(tmp_path / "s"), "stats"]
    result = interrupt_when(command, _importing, settle=delay)
    assert "Traceback" not in result.err
    if result.returncode in (0, -signal.SIGINT):  # done before the signal, or shutting down
        assert result.err == "" and "type" in result.out
        return
    assert result.returncode == 130, result.err
    assert result.err.splitlines() == ["interrupted"], result.err
