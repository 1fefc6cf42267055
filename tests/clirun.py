"""The ``mediastore`` command in a subprocess, as a user runs it: exit code, stdout, stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m mediastore ARGS...`` with no ``MEDIASTORE_*`` variable of this process
    (``env`` adds some), its output as text."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASTORE_")}
    return subprocess.run(
        [sys.executable, "-m", "mediastore", *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``error: ...`` line a failed command printed on stderr (asserted to be alone)."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]
