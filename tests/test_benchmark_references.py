"""``python -m benchmarks.references`` on a small SQLite catalog: it builds, checks what it
built, measures, and writes its report (the full run is in benchmarks/README.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_references_benchmark_runs_on_a_small_sqlite_catalog(tmp_path: Path) -> None:
    """2,000 files and 6,000 references: the decision is a range read of
    ix_media_unreferenced_since, the 200 unreferenced files are collected, and every figure
    is in the report."""
    out = tmp_path / "references.md"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.references", "--files", "2000", "--runs", "1",
         "--db", "sqlite", "--output", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = out.read_text()
    assert "2,000 files, 6,000 references, 200 unreferenced past grace" in report
    assert "USING INDEX ix_media_unreferenced_since" in report
    for figure in ("decision", "removals", "by rm", "media_for", "raw"):
        assert figure in report
