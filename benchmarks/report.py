"""What the results say: machine facts, the console table and the Markdown file."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import sqlite3
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .cases import CaseResult, fill
from .config import Scale

PACKAGES = ("mediastore", "SQLAlchemy", "requests", "urllib3", "Pillow")
REPO_ROOT = Path(__file__).resolve().parent.parent


#: Hand-written analysis of the misses, appended to every report.
ANALYSIS = Path(__file__).with_name("ANALYSIS.md")


def source_fingerprint() -> str:
    """Short SHA-256 of mediastore's sources (``mediastore/``, migrations included).

    The code under test changes while people work; this names the version a run measured.
    """
    digest = hashlib.sha256()
    for path in sorted((REPO_ROOT / "mediastore").rglob("*.py")):
        digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunInfo:
    """How the benchmark was run."""

    date: str
    command: str
    quick: bool
    scale: Scale
    runs: int
    server: str
    server_check: str | None
    elapsed_s: float
    source: str


def _first_line(argv: Sequence[str]) -> str:
    if shutil.which(argv[0]) is None:
        return "not installed"
    out = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def _meminfo_gib() -> str:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
    except OSError:
        pass
    return "?"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def machine() -> list[tuple[str, str]]:
    """(what, value) facts about the machine and the software versions."""
    facts = [
        ("cores", f"{os.cpu_count()} ({_cpu_model()})"),
        ("RAM", _meminfo_gib()),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("Python", f"{platform.python_version()} ({platform.python_implementation()})"),
        ("SQLite", sqlite3.sqlite_version),
    ]
    for package in PACKAGES:
        try:
            facts.append((package, metadata.version(package)))
        except metadata.PackageNotFoundError:
            facts.append((package, "not installed"))
    facts.append(("curl", " ".join(_first_line(["curl", "--version"]).split()[:2])))
    facts.append(("coreutils", _first_line(["md5sum", "--version"])))
    return facts


# --- figures -----------------------------------------------------------------------------------
def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:,.1f}"
    return f"{value:,.2f}"


def _figure(value: float | None, result: CaseResult) -> str:
    return "-" if value is None else f"{_num(value)} {result.spec.unit.name}"


def _verdict(result: CaseResult) -> str:
    if result.error is not None:
        return "ERROR"
    if result.spec.target is None:
        return "report"
    return "PASS" if result.passed else "MISS"


def _target(result: CaseResult) -> str:
    return "report" if result.spec.target is None else f">= {result.spec.target:g}"


def _rss(result: CaseResult) -> str:
    peak = result.peak_rss_mb
    if peak is None:
        return "-"
    text = f"{peak:.0f} MB"
    if result.rss_ok is not None:
        text += f" ({'PASS' if result.rss_ok else 'MISS'} < {result.spec.rss_limit_mb:.0f} MB)"
    return text


def _extra(result: CaseResult) -> str:
    """mediastore's MB/s for cases counted in files."""
    if result.bytes_per_item is None or result.mediastore_figure is None:
        return ""
    ms = result.mediastore_figure * result.bytes_per_item / 1e6
    ref = (result.reference_figure or 0) * result.bytes_per_item / 1e6
    return f"{ms:,.0f} vs {ref:,.0f} MB/s; files avg {result.bytes_per_item / 1e3:,.0f} KB"


def console_table(results: Sequence[CaseResult]) -> str:
    """A plain-text table for the terminal."""
    header = ("case", "mediastore", "reference", "ratio", "target", "result", "peak RSS")
    rows = [
        (
            r.spec.key,
            _figure(r.mediastore_figure, r),
            _figure(r.reference_figure, r),
            _num(r.ratio),
            _target(r),
            _verdict(r),
            _rss(r),
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    errors = [f"{r.spec.key}: {r.error}" for r in results if r.error]
    return "\n".join(lines + (["", "errors:", *errors] if errors else []))


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(info: RunInfo, results: Sequence[CaseResult]) -> str:
    """The results file."""
    scale = info.scale
    out = [
        f"# mediastore benchmarks{' (quick smoke run)' if info.quick else ''}",
        "",
        f"- Date: {info.date}",
        f"- Command (from the repository root): `{info.command}`",
        f"- mediastore sources measured: {info.source} (SHA-256 of mediastore/)",
        f"- HTTP server for the download cases: {info.server}",
    ]
    if info.server_check:
        out.append(f"- Server check: {info.server_check}")
    out += [
        f"- Runs per side: {info.runs}; every figure is the median of its runs; "
        "ratio = mediastore throughput / reference throughput",
        f"- Data: a {fill('{video}', scale)} video, {scale.images:,} images, a catalog of "
        f"{scale.catalog_rows:,} rows, {scale.lookups:,} lookups per run, {scale.stats_calls} "
        f"stats() calls per run, {scale.verify_files:,} files to verify, "
        f"{scale.legacy_files:,} legacy files",
        f"- Wall time of the whole benchmark: {info.elapsed_s / 60:.1f} min",
        "",
        "## Machine",
        "",
        "| what | value |",
        "| --- | --- |",
        *(f"| {k} | {_md_escape(v)} |" for k, v in machine()),
        "",
        "## Results",
        "",
        "| case | mediastore | reference | mediastore | reference | ratio | target | result "
        "| mediastore peak RSS |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for r in results:
        out.append(
            f"| {r.title} | {_md_escape(fill(r.spec.mediastore, scale))} | "
            f"{_md_escape(r.spec.reference)} | {_figure(r.mediastore_figure, r)} | "
            f"{_figure(r.reference_figure, r)} | {_num(r.ratio)} | {_target(r)} | "
            f"**{_verdict(r)}** | {_rss(r)} |"
        )
    limited = [r for r in results if r.spec.rss_limit_mb is not None]
    if limited:
        out += [
            "",
            fill("## Peak memory of the mediastore process ({video} cases)", scale),
            "",
            "Peak RSS (VmHWM) of the worker interpreter that ran the call, imports included; "
            "the RSS just before the call is shown too.",
            "",
            "| case | RSS before the call | peak RSS | limit | result |",
            "| --- | ---: | ---: | ---: | --- |",
        ]
        for r in limited:
            bases = [m.detail.get("base_rss_kb") for m in r.mediastore]
            base = max((b for b in bases if b is not None), default=None)
            base_text = f"{base * 1024 / 1e6:.0f} MB" if base is not None else "-"
            peak = r.peak_rss_mb
            verdict = "-" if r.rss_ok is None else ("PASS" if r.rss_ok else "MISS")
            out.append(
                f"| {r.spec.key} | {base_text} | "
                f"{'-' if peak is None else f'{peak:.0f} MB'} | "
                f"< {r.spec.rss_limit_mb:.0f} MB | **{verdict}** |"
            )
    out += [
        "",
        "## Every run",
        "",
        "| case | unit | mediastore runs | reference runs | notes |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in results:
        ms = ", ".join(_num(v) for v in r.mediastore_runs) or "-"
        ref = ", ".join(_num(v) for v in r.reference_runs) or "-"
        notes = _md_escape(r.error) if r.error else _extra(r)
        out.append(f"| {r.spec.key} | {r.spec.unit.name} | {ms} | {ref} | {notes} |")
    out += [
        "",
        "## Method",
        "",
        "- Every input is made by the harness in a fresh temporary directory; every timed run "
        "writes into a directory of its own (fresh store each run where the case says so), and "
        "everything is deleted at the end, never between runs (deleting many files slows the "
        "disk down for later runs).",
        "- Before every timed run of either side: `sync`, then each input file is read once "
        "(64 KiB reads) to warm the page cache (the VM pages cold memory out by itself).",
        "- mediastore sides and the in-process references (the seed's `requests` loop, raw "
        "`sqlite3`) each run in a fresh interpreter (`python -m benchmarks.worker`), timed with "
        "`time.perf_counter` around the call alone (opening the store is not timed); "
        "command-line references are timed around `subprocess.run` by the harness.",
        "- Stores are opened with `max_file_size=2<<30, allow_private_networks=True, "
        "per_host=16`. MB = 10^6 bytes.",
        f"- The {scale.catalog_rows:,}-row catalog is created by the store (Alembic), then "
        "filled with sqlite3 `executemany` (one URL per media row, 1 in 20 URLs sharing the "
        "content of another); lookups pick random existing URLs.",
        "- All traffic goes to 127.0.0.1; proxy variables are removed from every child's "
        "environment.",
        "",
    ]
    if ANALYSIS.is_file():  # the maintained, profile-backed explanation of any miss
        out += [ANALYSIS.read_text(encoding="utf-8").rstrip(), ""]
    return "\n".join(out)
