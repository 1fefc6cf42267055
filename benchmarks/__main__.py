"""``python -m benchmarks``: run the cases, print the table, write the results file."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from .cases import CASES, GROUPS, Bench, CaseResult, group_runs, run_group, select
from .config import FULL, QUICK, Workdir
from .measure import settle, time_command, warm
from .report import RunInfo, console_table, cpu, markdown, source_fingerprint
from .servers import serve

RESULTS_DIR = Path(__file__).resolve().parent
_T0 = time.perf_counter()


def log(message: str) -> None:
    """Progress on stderr, with the time since start."""
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    names = ", ".join([*GROUPS, *(c.key for c in CASES if c.key not in GROUPS)])
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="mediastore against the commands a user would run instead, side by side.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 run and small data (64 MiB video, 200 images, 20,000-row catalog, 500 files "
        "to verify, 2,000 legacy files); writes RESULTS-quick.md in the system temp dir",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="CASE",
        help=f"run only these cases or groups (repeatable, or comma-separated): {names}",
    )
    parser.add_argument("--runs", type=int, help="timed runs per side (default 3, quick 1)")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="where to make the fresh temporary directory (default: the system temp dir)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the data at the end")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log every timed command line (to re-run or profile one side by hand)",
    )
    parser.add_argument(
        "--python-server",
        action="store_true",
        help="serve downloads with the Python fallback server even if nginx is installed",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="results file (default benchmarks/RESULTS.md; with --quick or --only, "
        "RESULTS-quick.md / RESULTS-partial.md under <temp dir>/mediastore-benchmarks)",
    )
    args = parser.parse_args(argv)
    args.only = [name for item in args.only for name in item.split(",") if name]
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    try:
        args.specs = select(args.only)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def default_output(quick: bool, partial: bool) -> Path:
    """RESULTS.md, RESULTS-quick.md, RESULTS-partial.md or RESULTS-quick-partial.md.

    Only a full run replaces the tracked ``benchmarks/RESULTS.md``; a smoke or partial run
    goes to the system temp dir, so that trying the benchmarks never dirties the checkout.
    """
    name = "RESULTS" + ("-quick" if quick else "") + ("-partial" if partial else "") + ".md"
    if quick or partial:
        scratch = Path(tempfile.gettempdir()) / "mediastore-benchmarks"
        scratch.mkdir(exist_ok=True)
        return scratch / name
    return RESULTS_DIR / name


def server_check(bench: Bench) -> str:
    """How fast the server alone delivers the video (curl to /dev/null, warm cache)."""
    video = bench.video
    settle()
    warm([video])
    seconds = time_command(["curl", "-s", "-o", "/dev/null", bench.url(video.name)])
    return f"`curl -s -o /dev/null` of the video: {video.stat().st_size / seconds / 1e6:,.0f} MB/s"


#: Work directories are made with this prefix; each holds OWNER_FILE (its run's pid) while
#: a run uses it.
WORKDIR_PREFIX = "mediastore-bench-"
OWNER_FILE = "owner.pid"


def remove_stale_workdirs(parent: Path) -> None:
    """Remove work directories whose run is gone (killed: a SIGKILL skips the cleanup).

    Each holds a few GB; killed runs once filled the disk. A directory without an owner
    file (kept with ``--keep``, or unknown) is left alone.
    """
    for path in parent.glob(f"{WORKDIR_PREFIX}*"):
        try:
            pid = int((path / OWNER_FILE).read_text(encoding="ascii"))
        except (OSError, ValueError):
            continue
        if not _alive(pid):
            log(f"removing {path}, left by a run that was killed (pid {pid})")
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    scale = QUICK if args.quick else FULL
    runs = args.runs or scale.runs
    output: Path = args.output or default_output(args.quick, bool(args.only))
    command = shlex.join(["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)])
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    source = source_fingerprint()
    remove_stale_workdirs(Path(args.workdir or tempfile.gettempdir()))
    root = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX, dir=args.workdir))
    (root / OWNER_FILE).write_text(f"{os.getpid()}\n", encoding="ascii")
    log(f"work directory {root}")
    results: list[CaseResult] = []
    group_seconds: dict[str, float] = {}
    server_name = "none (no download case selected)"
    check: str | None = None
    try:
        workdir = Workdir(root)
        with ExitStack() as stack:
            server = None
            if any(spec.group in ("download", "images") for spec in args.specs):
                (workdir.data / "probe.txt").write_text("ok\n", encoding="ascii")
                server = stack.enter_context(
                    serve(
                        workdir.data, workdir.state, "probe.txt", use_nginx=not args.python_server
                    )
                )
                server_name = server.name
                log(f"serving {workdir.data} with {server.name} at {server.base_url}")
            bench = Bench(workdir, scale, server, log, verbose=args.verbose)
            for group in GROUPS:
                specs = [spec for spec in args.specs if spec.group == group]
                if not specs:
                    continue
                n = group_runs(group, runs)
                log(f"[{group}] {n} run(s): " + ", ".join(spec.key for spec in specs))
                start = time.perf_counter()
                results += run_group(bench, group, specs, n, log)
                if group == "download" and server is not None:
                    check = server_check(bench)
                    log(check)
                group_seconds[group] = time.perf_counter() - start
                log(f"[{group}] took {group_seconds[group]:.0f} s")
    finally:
        if args.keep:
            (root / OWNER_FILE).unlink(missing_ok=True)  # kept on purpose: not stale
            log(f"kept {root}")
        else:
            log(f"removing {root}")
            shutil.rmtree(root, ignore_errors=True)
    if source_fingerprint() != source:
        source += " (mediastore's sources changed during the run: figures may mix versions)"
    info = RunInfo(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        command=command,
        quick=args.quick,
        scale=scale,
        runs=runs,
        server=server_name,
        server_check=check,
        elapsed_s=time.perf_counter() - _T0,
        source=source,
        group_seconds=group_seconds,
    )
    print(f"CPU: {cpu().summary}")
    print(f"server: {server_name}; mediastore sources {source}")
    print(console_table(results))
    output.write_text(markdown(info, results), encoding="utf-8")
    log(f"wrote {output}")
    print(f"results written to {output}")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
