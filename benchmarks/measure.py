"""Timing: page-cache warming, commands timed from the harness, worker processes, medians."""

from __future__ import annotations

import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Reads of 128 KiB and more are several times slower on these VMs (measured).
READ_CHUNK = 64 * 1024
#: Gets the command line of every timed command and worker when tracing (``-v``).
Trace = Callable[[str], None] | None
#: Bytes of argv given to one command (well under Linux's limit), as xargs would split it.
ARGV_BUDGET = 512 * 1024


@dataclass(frozen=True, slots=True)
class Measurement:
    """One timed run of one side.

    Attributes:
        seconds: Wall time of the timed part.
        amount: What it moved: bytes, or items (files, lookups, calls), as the case counts.
        peak_rss_kb: Peak RSS of the worker process (mediastore and in-process sides only).
        detail: Anything else the side reported (checks, baseline RSS...).
    """

    seconds: float
    amount: float
    peak_rss_kb: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def loopback_env() -> dict[str, str]:
    """This environment without proxy settings, so every request goes straight to 127.0.0.1."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def settle() -> None:
    """Write back dirty pages left by earlier runs, so no run pays for another's writes."""
    os.sync()


def warm(paths: Iterable[Path]) -> int:
    """Read every file (the VM pages cold memory out by itself); returns the bytes read."""
    buf = bytearray(READ_CHUNK)
    total = 0
    for path in paths:
        with open(path, "rb", buffering=0) as fh:
            while n := fh.readinto(buf):
                total += n
    return total


def files_in(directory: Path) -> list[Path]:
    """Regular files directly inside ``directory``, sorted."""
    return sorted(p for p in directory.iterdir() if p.is_file())


def time_command(argv: Sequence[str], *, cwd: Path | None = None, trace: Trace = None) -> float:
    """Run a command (output discarded) and return its wall time.

    Raises:
        RuntimeError: it exited with a non-zero status.
    """
    if trace is not None:
        trace(f"run: {shlex.join(argv)[:300]}" + (f" (in {cwd})" if cwd else ""))
    start = time.perf_counter()
    proc = subprocess.run(
        list(argv),
        cwd=cwd,
        env=loopback_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(argv)[:200]} exited with {proc.returncode}: "
            f"{proc.stderr.decode(errors='replace')[-500:]}"
        )
    return seconds


def time_batched(
    command: Sequence[str], names: Sequence[str], *, cwd: Path, trace: Trace = None
) -> float:
    """``command NAME...`` over many names, split like xargs does; total wall time."""
    batches: list[list[str]] = [[]]
    used = 0
    for name in names:
        if used + len(name) + 1 > ARGV_BUDGET and batches[-1]:
            batches.append([])
            used = 0
        batches[-1].append(name)
        used += len(name) + 1
    return sum(time_command([*command, "--", *batch], cwd=cwd, trace=trace) for batch in batches)


def shell(script: str, *args: str) -> list[str]:
    """argv running ``script`` with bash, ``args`` as $1, $2... (no quoting issues)."""
    return ["bash", "-c", f"set -euo pipefail; {script}", "bash", *args]


def worker_argv(spec: dict[str, Any]) -> list[str]:
    """The command line of one worker run (also what to profile it with)."""
    return [sys.executable, "-m", "benchmarks.worker", json.dumps(spec)]


def run_worker(spec: dict[str, Any], trace: Trace = None) -> Measurement:
    """Run one op in a fresh interpreter (see :mod:`benchmarks.worker`).

    Raises:
        RuntimeError: the worker failed.
    """
    if trace is not None:
        trace(f"run (in {REPO_ROOT}): {shlex.join(worker_argv(spec))}")
    proc = subprocess.run(
        worker_argv(spec),
        cwd=REPO_ROOT,
        env=loopback_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker {spec['op']} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return Measurement(
        seconds=float(result.pop("seconds")),
        amount=float(result.pop("amount")),
        peak_rss_kb=int(result.pop("peak_rss_kb")),
        detail=result,
    )


def median(values: Sequence[float]) -> float:
    """The median (the mean of the middle two for an even count)."""
    return float(statistics.median(values))
