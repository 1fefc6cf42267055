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

from .cases import MAX_RUNS, CaseResult, fill
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
    #: wall time of each group, data made on first use included, in the order they ran
    group_seconds: dict[str, float]


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


#: /proc/cpuinfo's vendor_id -> the name the results use
VENDORS = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD"}
#: The CPU flags that move the ratios: SHA-256 in hardware (hashlib uses it through OpenSSL;
#: coreutils' sha256sum does not), and the vector units OpenSSL's hashes and copies pick.
CPU_FLAGS = ("sha_ni", "avx2")


@dataclass(frozen=True, slots=True, kw_only=True)
class Cpu:
    """What /proc/cpuinfo says about the first processor."""

    model: str
    vendor: str
    flags: frozenset[str]

    @property
    def flags_text(self) -> str:
        """``sha_ni yes, avx2 yes, avx512 none`` (or the avx512 flags present)."""
        items = [f"{flag} {'yes' if flag in self.flags else 'no'}" for flag in CPU_FLAGS]
        avx512 = sorted(flag for flag in self.flags if flag.startswith("avx512"))
        items.append("avx512 " + (" ".join(avx512) if avx512 else "none"))
        return ", ".join(items)

    @property
    def summary(self) -> str:
        """One line: model, vendor, the flags that matter."""
        return f"{self.model} ({self.vendor}; {self.flags_text})"


def cpu() -> Cpu:
    """The model, vendor (Intel, AMD) and flags of the first processor in /proc/cpuinfo."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    break  # the first processor is enough: a VM's cores are alike
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    vendor_id = fields.get("vendor_id", "?")
    return Cpu(
        model=fields.get("model name") or platform.processor() or "?",
        vendor=VENDORS.get(vendor_id, vendor_id),
        flags=frozenset(fields.get("flags", "").split()),
    )


def machine() -> list[tuple[str, str]]:
    """(what, value) facts about the machine and the software versions."""
    info = cpu()
    facts = [
        ("cores", str(os.cpu_count())),
        ("CPU", info.model),
        ("CPU vendor", info.vendor),
        ("CPU flags", info.flags_text),
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


INGEST_METHOD = [
    "- ingest, what each reference means. Every run is a *pair*: `add_file` into a fresh "
    "store, then right after it (each after `sync` and a warm cache) `cp FILE DEST && sync`, "
    "`md5sum FILE` and the script; the disk of these VMs throttles sustained writes after a "
    "few GiB, so a side is compared only with references timed on the same disk state.",
    "  - `md5sum FILE` reads the file from the page cache and computes MD5 on one core: the "
    "CPU's limit for the hash every ingest must compute (no write).",
    "  - `cp FILE DEST && sync` writes the file and waits until it is on disk: the disk's "
    "limit at that moment (no hash).",
    "  - ingest-md5sum compares `add_file` with the *slower* of the two in each pair: the "
    "hardware's limit for a durable, hashed copy, since `add_file` does both at once "
    "(MD5 and SHA-256 beside the write). Target: median of the per-pair ratios >= 0.9.",
    "  - ingest-script: `cp FILE DEST && md5sum DEST && sha256sum DEST && sync` is the same "
    "result (a durable copy and both digests) done by shell, one step after another; its "
    "ratio is what overlapping the steps gains (target 2). coreutils' `sha256sum` is much "
    "slower than hashlib's SHA-256 on these machines (251 against 1,346 MB/s in "
    "measured on these VMs), so this reference depends on the CPU more than the others.",
]


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
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    errors = [f"{r.spec.key}: {r.error}" for r in results if r.error]
    pairs = [line for r in results if r.spec.paired for line in ["", *_pair_lines(r)]]
    return "\n".join(lines + pairs + (["", "errors:", *errors] if errors else []))


def _pair_lines(result: CaseResult) -> list[str]:
    """The pairs of a paired case, one line each, for the terminal."""
    unit = result.spec.unit.name
    lines = [f"{result.spec.key}: ratio = median of the per-pair ratios = {_num(result.ratio)}"]
    for i, pair in enumerate(result.pairs, 1):
        refs = "; ".join(f"{label} {_num(v)}" for label, v in pair.parts.items())
        refs = refs or f"{result.reference_label} {_num(pair.reference)}"
        slower = f" -> slower: {pair.slower}" if pair.slower else ""
        lines.append(
            f"  pair {i}: {result.mediastore_label} {_num(pair.mediastore)} {unit} vs "
            f"{refs} {unit}{slower}; ratio {pair.ratio:.2f}"
        )
    return lines


def _pair_table(result: CaseResult) -> list[str]:
    """The Markdown table of a paired case's pairs."""
    pairs = result.pairs
    labels = list(dict.fromkeys(label for p in pairs for label in p.parts))
    unit = result.spec.unit.name
    head = [f"{result.mediastore_label} ({unit})"]
    head += [f"{_md_escape(label)} ({unit})" for label in labels] or [
        f"{_md_escape(result.reference_label)} ({unit})"
    ]
    if labels:
        head.append("slower reference")
    out = [
        "",
        f"Pairs of {result.spec.key} (in the order they ran; ratio = {result.mediastore_label} / "
        f"{'the slower reference' if labels else result.reference_label}, median "
        f"{_num(result.ratio)}):",
        "",
        "| pair | " + " | ".join(head) + " | ratio |",
        "| ---: | "
        + " | ".join("---:" for _ in head[: len(head) - bool(labels)])
        + (" | ---" if labels else "")
        + " | ---: |",
    ]
    for i, p in enumerate(pairs, 1):
        cells = [_num(p.mediastore)]
        cells += [_num(p.parts.get(label)) for label in labels] or [_num(p.reference)]
        if labels:
            cells.append(p.slower or "-")
        out.append(f"| {i} | " + " | ".join(cells) + f" | {p.ratio:.2f} |")
    return out


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(info: RunInfo, results: Sequence[CaseResult]) -> str:
    """The results file."""
    scale = info.scale
    groups = {r.spec.group for r in results}
    capped = [f"{g}: {n}" for g, n in MAX_RUNS.items() if g in groups and n < info.runs]
    paired = [r.spec.key for r in results if r.spec.paired]
    out = [
        f"# mediastore benchmarks{' (quick smoke run)' if info.quick else ''}",
        "",
        f"- Date: {info.date}",
        f"- Machine: {os.cpu_count()} cores, {cpu().summary}",
        f"- Command (from the repository root): `{info.command}`",
        f"- mediastore sources measured: {info.source} (SHA-256 of mediastore/)",
        f"- HTTP server for the download cases: {info.server}",
    ]
    if info.server_check:
        out.append(f"- Server check: {info.server_check}")
    out += [
        f"- Runs per side: {info.runs}"
        + (f" ({', '.join(capped)} run, see Method)" if capped else "")
        + "; every figure is the median of its runs; ratio = mediastore throughput / "
        "reference throughput"
        + (
            f", for {', '.join(paired)} the median of the per-pair ratios (see Every run)"
            if paired
            else ""
        ),
        f"- Data: a {fill('{video}', scale)} video, {scale.images:,} images, a catalog of "
        f"{scale.catalog_rows:,} rows, {scale.lookups:,} lookups per run, {scale.stats_calls} "
        f"stats() calls per run, {scale.verify_files:,} files to verify, "
        f"{scale.legacy_files:,} legacy files",
        f"- Wall time of the whole benchmark: {info.elapsed_s / 60:.1f} min; per group, "
        "its data made on first use included: "
        + ", ".join(f"{g} {s:,.0f} s" for g, s in info.group_seconds.items()),
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
            f"{_md_escape(fill(r.spec.reference, scale))} | {_figure(r.mediastore_figure, r)} | "
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
        if r.spec.paired:
            notes = "; ".join(filter(None, [notes, "run by run in pairs, below"]))
        out.append(f"| {r.spec.key} | {r.spec.unit.name} | {ms} | {ref} | {notes} |")
    for r in results:
        if r.spec.paired and r.pairs:
            out += _pair_table(r)
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
        "- mediastore sides and the in-process references (the old script's `requests` loop, raw "
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
    ]
    if groups & {"ingest"}:
        out += INGEST_METHOD
    if groups & {"rss"}:
        out.append(
            "- rss: one run whatever `--runs` says: the figure is the peak RSS (VmHWM) of one "
            f"`iter_fetch` over {scale.rss_large:,} URLs against the same over "
            f"{scale.rss_small:,}, a maximum that a repeat would only confirm; its URLs/s is "
            "reported, not held to a target."
        )
    out.append("")
    if ANALYSIS.is_file():  # the maintained, profile-backed explanation of any miss
        out += [ANALYSIS.read_text(encoding="utf-8").rstrip(), ""]
    return "\n".join(out)
