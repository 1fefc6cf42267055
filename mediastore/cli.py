"""The ``mediastore`` command: a thin click layer over :class:`~mediastore.MediaStore`.

Commands parse arguments, call the library, and render the result (a table, or JSON with
``--json``). Library errors become one line on stderr and the error's own exit code.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

import click
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from .catalog.engine import make_engine
from .catalog.schema import current_revisions, head_revisions, upgrade
from .compat import format_size
from .config import DEFAULT_MAX_WORKERS, StoreConfig
from .errors import InvalidInputError, MediaNotFoundError, MediaStoreError
from .records import FetchResult, MediaRecord
from .store import MediaStore
from .version import __version__

F = TypeVar("F", bound=Callable[..., Any])


class CommandError(click.ClickException):
    """A library error shown as one line, exiting with the error's own code."""

    def __init__(self, exc: MediaStoreError) -> None:
        super().__init__(str(exc))
        self.exit_code = exc.exit_code  # type: ignore[misc]  # per instance, by design


def _errors(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MediaStoreError as exc:
            raise CommandError(exc) from exc

    return wrapper  # type: ignore[return-value]


def _config(ctx: click.Context) -> StoreConfig:
    cfg: StoreConfig = ctx.obj
    return cfg


@contextmanager
def _store(ctx: click.Context, *, create: bool = False) -> Iterator[MediaStore]:
    """The store of ``--root``/``--db``; only commands that add content create one."""
    with MediaStore(config=_config(ctx), create=create) as store:
        yield store


def _fail_on(ctx: click.Context, problems: list[str]) -> None:
    """One stderr line per problem of a batch; exit 1 if there was any."""
    for line in problems:
        click.echo(line, err=True)
    if problems:
        ctx.exit(1)


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


#: Exit status after a Ctrl-C: 128 + SIGINT, as a shell reports a process killed by it.
EXIT_INTERRUPTED = 130


@contextmanager
def _interruptible(ctx: click.Context, how_far: Callable[[], str]) -> Iterator[None]:
    """A Ctrl-C ends the command with one stderr line saying how far it got, and exit 130.

    Wrap the whole ``with MediaStore(...)`` block: by the time the line is printed, the
    blocks inside have unwound (downloads cancelled, temp files discarded, store closed).
    """
    try:
        yield
    except KeyboardInterrupt:
        click.echo(f"interrupted: {how_far()}", err=True)
        ctx.exit(EXIT_INTERRUPTED)


class _HowFar:
    """The last (done, total) a progress callback saw, for the line printed on Ctrl-C."""

    def __init__(self, unit: str) -> None:
        self.unit = unit
        self.done = 0
        self.total: int | None = None

    def track(self, progress: Callable[[int, int], None]) -> Callable[[int, int], None]:
        def tracked(done: int, total: int) -> None:
            self.done, self.total = done, total
            progress(done, total)

        return tracked

    def __call__(self) -> str:
        total = "?" if self.total is None else str(self.total)
        return f"{self.done} of {total} {self.unit}(s) done"


@contextmanager
def _progress(total: int | None, unit: str, desc: str) -> Iterator[tqdm[Any]]:
    """One bar on stderr, hidden when stderr is not a terminal; log lines don't break it."""
    with (
        logging_redirect_tqdm(),
        tqdm(total=total, unit=unit, desc=desc, disable=None, file=sys.stderr, leave=False) as bar,
    ):
        yield bar


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default="cache",
    show_default=True,
    envvar="MEDIASTORE_ROOT",
    help="Store directory (env MEDIASTORE_ROOT).",
)
@click.option(
    "--db",
    "db_url",
    default=None,
    envvar="MEDIASTORE_DB_URL",
    help="Catalog SQLAlchemy URL (env MEDIASTORE_DB_URL); default <root>/catalog.sqlite3.",
)
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug) to stderr.")
@click.version_option(__version__, prog_name="mediastore")
@click.pass_context
def main(ctx: click.Context, root: Path, db_url: str | None, verbose: int) -> None:
    """mediastore: content-addressed media files with a SQL catalog."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = StoreConfig(root=root, db_url=db_url)


def _iter_files(paths: tuple[Path, ...], skip: Path) -> Iterator[Path]:
    """Files named or found under directories, except those inside the store itself."""
    for path in paths:
        if path.is_dir():
            for found in sorted(p for p in path.rglob("*") if p.is_file()):
                if not found.resolve().is_relative_to(skip):
                    yield found
        else:
            yield path


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--url", help="Record this URL for the file (only with a single file).")
@json_option
@click.pass_context
@_errors
def add(ctx: click.Context, paths: tuple[Path, ...], url: str | None, as_json: bool) -> None:
    """Add files (directories recursively). Exits 1 if any file was refused."""
    added: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    files: list[Path] = []

    def how_far() -> str:
        return f"{len(added) + len(failed)} of {len(files)} file(s) done ({len(added)} added)"

    with _interruptible(ctx, how_far), _store(ctx, create=True) as store:
        files = list(_iter_files(paths, store.root))
        if url and len(files) != 1:
            raise click.UsageError("--url needs exactly one file")
        with _progress(len(files), "file", "adding") as bar:
            for path in files:
                try:
                    rec = store.add_file(path, url=url)
                except MediaStoreError as exc:
                    failed.append({"source": str(path), "error": str(exc)})
                else:
                    added.append({"source": str(path), **rec.to_dict()})
                bar.update()
    if as_json:
        _emit_json({"added": added, "failed": failed})
    else:
        for item in added:
            click.echo(f"{item['md5']}  {item['source']}")
        total = sum(int(r["size"]) for r in added)
        unique = len({r["md5"] for r in added})
        click.echo(
            f"added {len(added)} file(s) ({unique} distinct), {format_size(total)}; "
            f"{len(failed)} failed"
        )
    _fail_on(ctx, [f"error: {item['error']}" for item in failed])


def _show_record(rec: MediaRecord, urls: list[str] | None = None) -> None:
    dims = f"{rec.width}x{rec.height}" if rec.width else "-"
    rows = [
        ("md5", rec.md5),
        ("sha256", rec.sha256),
        ("type", f"{rec.media_type} ({rec.mime_type})"),
        ("size", f"{rec.size} ({format_size(rec.size)})"),
        ("dimensions", dims),
        ("path", str(rec.path)),
        ("status", rec.status),
        ("created", rec.created_at.isoformat()),
        ("verified", rec.last_verified_at.isoformat() if rec.last_verified_at else "never"),
    ]
    for key, value in rows:
        click.echo(f"{key:<11}{value}")
    for url in urls or []:
        click.echo(f"{'url':<11}{url}")


def _open_url_file(source: str) -> IO[str]:
    """The URL list ``source`` (``-``: stdin), opened now so that a missing file fails early."""
    try:
        stream: IO[str] = click.open_file(source, "r", encoding="utf-8")
    except OSError as exc:
        raise CommandError(
            InvalidInputError(f"cannot read --from-file {source}: {exc.strerror or exc}")
        ) from exc
    return stream


def _urls(args: tuple[str, ...], stream: IO[str] | None) -> Iterator[str]:
    """The URLs given, then those of ``stream`` line by line (blanks, ``#`` comments skipped).

    Read lazily: a list of millions of URLs is never held in memory.
    """
    yield from args
    if stream is None:
        return
    with stream:
        for line in stream:
            url = line.strip()
            if url and not url.startswith("#"):
                yield url


class _FetchTally:
    """Counts for the summary of ``fetch``, kept as results stream by."""

    def __init__(self) -> None:
        self.urls = self.fetched = self.cached = self.failed = self.bytes = 0

    def add(self, result: FetchResult) -> None:
        self.urls += 1
        if not result.ok:
            self.failed += 1
        elif result.from_cache:
            self.cached += 1
        else:
            self.fetched += 1
            self.bytes += result.record.size if result.record else 0

    def how_far(self) -> str:
        return (
            f"{self.urls} URL(s) done: {self.fetched} fetched, {self.cached} already cached, "
            f"{self.failed} failed"
        )

    def summary(self, seconds: float) -> dict[str, Any]:
        return {
            "urls": self.urls, "fetched": self.fetched, "cached": self.cached,
            "failed": self.failed, "bytes": self.bytes, "seconds": round(seconds, 3),
        }  # fmt: skip


def _failure_line(result: FetchResult) -> str:
    return f"failed: {result.url}: {getattr(result.error, 'reason', result.error)}"


@main.command()
@click.argument("urls", nargs=-1)
@click.option(
    "--from-file",
    "from_file",
    metavar="FILE",
    help="Read URLs from FILE, one per line ('-': stdin).",
)
@click.option(
    "--workers", default=DEFAULT_MAX_WORKERS, show_default=True, type=click.IntRange(1, 256),
    help="Download threads.",
)  # fmt: skip
@click.option(
    "--per-host", type=click.IntRange(1, 256), default=None,
    help="Cap on concurrent requests to one host [default: adaptive, 6 growing to 16 while "
    "the host answers promptly, slowing down on 429/503].",
)  # fmt: skip
@click.option(
    "--timeout", default=30.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
    help="Seconds a read (or connect) may wait.",
)  # fmt: skip
@click.option(
    "--allow-private", is_flag=True,
    help="Allow private, loopback and link-local addresses (intranets only).",
)  # fmt: skip
@json_option
@click.option(
    "--jsonl", "as_jsonl", is_flag=True,
    help="Print one JSON object per URL as it completes, then a summary object.",
)  # fmt: skip
@click.pass_context
@_errors
def fetch(
    ctx: click.Context, urls: tuple[str, ...], from_file: str | None, workers: int,
    per_host: int | None, timeout: float, allow_private: bool, as_json: bool, as_jsonl: bool,
) -> None:  # fmt: skip
    """Download URLs into the store (cached ones are checked, not downloaded again).

    URLs from --from-file are read as they are needed (any number of them). Prints a summary
    and one line per failure (--json: one document in input order; --jsonl: one line per URL
    as it completes); exits 1 if any URL failed.
    """
    if as_json and as_jsonl:
        raise click.UsageError("--json and --jsonl are exclusive")
    if not urls and not from_file:
        raise click.UsageError("give URLs as arguments or with --from-file")
    stream = _open_url_file(from_file) if from_file else None
    cfg = replace(
        _config(ctx), allow_private_networks=allow_private or _config(ctx).allow_private_networks
    )
    started = time.monotonic()
    tally = _FetchTally()
    with (
        _interruptible(ctx, tally.how_far),
        MediaStore(config=cfg) as store,
        _progress(None if stream else len(urls), "url", "fetching") as bar,
    ):
        if as_json:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)
                tally.urls = done  # what a Ctrl-C reports; the counts are made at the end

            # one document in input order: the whole list is the output anyway
            results = store.fetch_many(
                _urls(urls, stream), max_workers=workers, timeout=timeout, per_host=per_host,
                progress=progress,
            )  # fmt: skip
            tally.urls = 0
            for result in {r.url: r for r in results}.values():  # a repeated URL counts once
                tally.add(result)
        else:
            streamed = store.iter_fetch(
                _urls(urls, stream), max_workers=workers, timeout=timeout, per_host=per_host
            )
            with closing(streamed):
                for result in streamed:
                    tally.add(result)
                    bar.update()
                    if as_jsonl:
                        click.echo(json.dumps(result.to_dict(), default=str))
                    elif not result.ok:  # as it happens: failures are not kept
                        tqdm.write(_failure_line(result), file=sys.stderr)
    summary = tally.summary(time.monotonic() - started)
    if as_json:
        summary["urls"] = len(results)
        _emit_json({"summary": summary, "results": [r.to_dict() for r in results]})
        failed = {r.url: r for r in results if not r.ok}.values()
        _fail_on(ctx, [_failure_line(r) for r in failed])
        return
    if as_jsonl:
        click.echo(json.dumps({"summary": summary}))
    else:
        click.echo(
            f"fetched {summary['fetched']}, already cached {summary['cached']}, "
            f"failed {summary['failed']}; {format_size(summary['bytes'])} in "
            f"{summary['seconds']:.1f} s"
        )
    if summary["failed"]:
        ctx.exit(1)


@main.command()
@click.argument("url")
@json_option
@click.pass_context
@_errors
def get(ctx: click.Context, url: str, as_json: bool) -> None:
    """Look a URL up in the catalog (no download). Exits 5 if it is not stored."""
    with _store(ctx) as store:
        rec = store.get_by_url(url)
    if rec is None:
        raise MediaNotFoundError(f"not stored: {url}")
    if as_json:
        _emit_json(rec.to_dict())
    else:
        _show_record(rec)


@main.command()
@click.argument("md5")
@json_option
@click.pass_context
@_errors
def show(ctx: click.Context, md5: str, as_json: bool) -> None:
    """Show a stored file and every URL recorded for it. Exits 5 if unknown."""
    with _store(ctx) as store:
        rec = store.get_by_md5(md5)
        if rec is None:
            raise MediaNotFoundError(f"no media with md5 {md5}")
        urls = store.urls_for(md5)
    if as_json:
        _emit_json({**rec.to_dict(), "urls": urls})
    else:
        _show_record(rec, urls)


@main.command()
@json_option
@click.pass_context
@_errors
def stats(ctx: click.Context, as_json: bool) -> None:
    """Counts and sizes per media type, from the catalog alone."""
    with _store(ctx) as store:
        st = store.stats()
    if as_json:
        _emit_json(st.to_dict())
        return
    click.echo(f"{'type':<10}{'files':>10}{'size':>12}")
    for media_type, ts in st.by_type.items():
        click.echo(f"{media_type:<10}{ts.count:>10}{format_size(ts.size):>12}")
    click.echo(f"{'total':<10}{st.total_files:>10}{format_size(st.total_size):>12}")
    click.echo(f"urls: {st.total_urls}; saved by dedup: {format_size(st.dedup_saved_bytes)}")
    oldest = st.oldest_verified_at.isoformat() if st.oldest_verified_at else "never"
    click.echo(f"oldest verification: {oldest}; never verified: {st.unverified}")


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class Duration(click.ParamType):  # type: ignore[type-arg]
    """A period like ``90s``, ``30m``, ``12h``, ``7d`` or ``2w``."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, timedelta):
            return value
        match = _DURATION.fullmatch(str(value).strip().lower())
        if not match:
            self.fail(f"{value!r} is not a duration like 90s, 30m, 12h, 7d or 2w", param, ctx)
        return timedelta(seconds=float(match[1]) * _UNITS[match[2]])


@contextmanager
def _bar_progress(desc: str, unit: str) -> Iterator[Callable[[int, int], None]]:
    """A progress callback (done, total) drawing one bar on stderr."""
    with _progress(None, unit, desc) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield progress


@main.command()
@click.argument("md5s", nargs=-1)
@click.option("--older-than", type=Duration(), help="Only files not verified within this period.")
@click.option("--limit", type=click.IntRange(min=0), help="Verify at most this many files.")
@click.option(
    "--repair", is_flag=True, help="Download missing/corrupt files again from their URLs."
)
@click.option(
    "--allow-private", is_flag=True, help="Repairs may reach private addresses (intranets)."
)
@click.option(
    "--deep", is_flag=True,
    help="Also decode images fully and walk containers (slower than hashing).",
)  # fmt: skip
@json_option
@click.pass_context
@_errors
def verify(
    ctx: click.Context, md5s: tuple[str, ...], older_than: timedelta | None,
    limit: int | None, repair: bool, allow_private: bool, deep: bool, as_json: bool,
) -> None:  # fmt: skip
    """Re-hash stored files (all when no MD5 is given). Exits 1 if any is missing or corrupt.

    With --deep, a file that hashes right but whose content is broken (truncated before it
    was stored, say) is corrupt too. With --repair, exits 1 only if some file could not be
    repaired; a broken file's good copy is new content, and its URLs move there.
    """
    if md5s and (older_than or limit is not None):
        raise click.UsageError("--older-than/--limit select files: give them or MD5s, not both")
    cfg = _config(ctx)
    cfg = replace(cfg, allow_private_networks=allow_private or cfg.allow_private_networks)
    how_far = _HowFar("file")
    with (
        _interruptible(ctx, how_far),
        MediaStore(config=cfg, create=False) as store,
        _bar_progress("verifying", "file") as progress,
    ):
        report = store.verify(
            list(md5s) if md5s else None, progress=how_far.track(progress), older_than=older_than,
            limit=limit, repair=repair, deep=deep or None,
        )  # fmt: skip
    if as_json:
        _emit_json(report.to_dict())
    else:
        for md5 in report.missing:
            click.echo(f"missing  {md5}")
        for md5 in report.corrupt:
            why = report.reasons.get(md5)
            click.echo(f"corrupt  {md5} (moved to quarantine)" + (f": {why}" if why else ""))
        for md5 in report.repaired:
            new = report.replaced.get(md5)
            click.echo(f"repaired {md5}" + (f" as new content {new}" if new else ""))
        for md5, reason in report.unrepaired.items():
            click.echo(f"not repaired {md5}: {reason}")
        click.echo(
            f"verified {report.checked}: {len(report.ok)} ok, {len(report.missing)} missing, "
            f"{len(report.corrupt)} corrupt"
            + (f", {len(report.repaired)} repaired" if repair else "")
        )
    if not report.all_ok:
        ctx.exit(1)


@main.command("import-legacy")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@json_option
@click.pass_context
@_errors
def import_legacy(ctx: click.Context, directory: Path | None, as_json: bool) -> None:
    """Import the old cache (files named by the MD5 of their URL; default <root>/images).

    Idempotent: files imported before are skipped unread. Corrupt or unsupported files are
    reported and skipped. Exits 1 if any file was skipped for a problem.
    """
    started = time.monotonic()
    how_far = _HowFar("file")
    with (
        _interruptible(ctx, how_far),
        _store(ctx, create=True) as store,
        _bar_progress("importing", "file") as progress,
    ):
        report = store.import_legacy(directory, progress=how_far.track(progress))
    elapsed = time.monotonic() - started
    if as_json:
        _emit_json({**report.to_dict(), "seconds": round(elapsed, 3)})
    else:
        if report.imported == 0 and not report.skipped:
            click.echo(f"nothing to import: {report.already} file(s) already imported")
        else:
            click.echo(
                f"imported {report.imported} file(s) ({format_size(report.bytes)}), "
                f"{report.already} already imported, {len(report.skipped)} skipped, "
                f"in {elapsed:.1f} s"
            )
    _fail_on(ctx, [f"skipped: {path}: {reason}" for path, reason in report.skipped])


@main.command()
@json_option
@click.pass_context
@_errors
def reindex(ctx: click.Context, as_json: bool) -> None:
    """Rebuild the catalog's media rows from the files on disk (lost or restored catalog).

    Files are re-hashed and recorded at their content's address. Rows are never dropped:
    one whose file is gone is marked missing, one whose file no longer matches is marked
    corrupt (the file quarantined), and their URLs are kept for `verify --repair`. Files not
    at their content's address are quarantined, as `gc` does (reported, exit 1).
    """
    with _store(ctx) as store, _bar_progress("reindexing", "file") as progress:
        report = store.reindex(progress=progress)
    if as_json:
        _emit_json(report.to_dict())
    else:
        click.echo(
            f"indexed {report.indexed} file(s): {report.added} new row(s), "
            f"{len(report.missing)} row(s) without a file marked missing, "
            f"{len(report.corrupt)} damaged file(s) quarantined, "
            f"{len(report.mismatched)} misplaced file(s) quarantined"
        )
    _fail_on(
        ctx,
        [f"mismatched: {path}: {content}" for path, content in report.mismatched]
        + [f"corrupt: {md5}" for md5 in report.corrupt],
    )


@main.command()
@click.option("--dry-run", is_flag=True, help="Only report what would be done.")
@json_option
@click.pass_context
@_errors
def gc(ctx: click.Context, dry_run: bool, as_json: bool) -> None:
    """Clean up after crashes and finish removals.

    Temp files of writers that are gone are removed, and files of removed content that a
    concurrent add held at `rm` time are deleted. A file with no row is adopted into the
    catalog when it is valid content, else moved to quarantine. Rows whose file is gone are
    marked missing (`verify --repair` can fetch them again). gc never deletes a file a row
    references or a running writer may be about to reference.
    """
    with _store(ctx) as store:
        report = store.gc(dry_run=dry_run)
    if as_json:
        _emit_json(report.to_dict())
        return
    verb = "would " if dry_run else ""
    click.echo(
        f"{verb}remove {len(report.temp_removed)} temp file(s); {verb}adopt "
        f"{len(report.adopted)} file(s); {verb}quarantine {len(report.quarantined)} file(s); "
        f"{verb}mark {len(report.marked_missing)} row(s) missing; "
        f"deleted {len(report.collected)} file(s) of removed content"
    )
    for path, reason in report.quarantined:
        click.echo(f"quarantine: {path}: {reason}")
    for md5 in report.marked_missing:
        click.echo(f"missing: {md5}")


@main.command()
@click.argument("md5s", nargs=-1, required=True)
@click.pass_context
@_errors
def rm(ctx: click.Context, md5s: tuple[str, ...]) -> None:
    """Remove stored files and their catalog rows."""
    with _store(ctx) as store:
        for md5 in md5s:
            rec = store.remove(md5)
            click.echo(f"removed {rec.md5}  {rec.path}")


@main.group()
def db() -> None:
    """Catalog schema: show or upgrade its Alembic revision."""


@db.command("upgrade")
@click.pass_context
@_errors
def db_upgrade(ctx: click.Context) -> None:
    """Migrate the catalog to the newest schema (same as `alembic upgrade head`)."""
    cfg = _config(ctx.parent.parent if ctx.parent and ctx.parent.parent else ctx)
    engine = make_engine(cfg.catalog_url, busy_timeout=cfg.busy_timeout)
    try:
        before = current_revisions(engine)
        upgrade(engine)
        after = current_revisions(engine)
    finally:
        engine.dispose()
    old = ", ".join(sorted(before)) or "empty"
    new = ", ".join(sorted(after))
    click.echo(f"catalog at {new}" + (f" (was {old})" if before != after else " (already at head)"))


@db.command("current")
@json_option
@click.pass_context
@_errors
def db_current(ctx: click.Context, as_json: bool) -> None:
    """Print the catalog's schema revision and the head this mediastore needs."""
    cfg = _config(ctx.parent.parent if ctx.parent and ctx.parent.parent else ctx)
    engine = make_engine(cfg.catalog_url, busy_timeout=cfg.busy_timeout)
    try:
        current = sorted(current_revisions(engine))
    finally:
        engine.dispose()
    heads = sorted(head_revisions())
    if as_json:
        _emit_json({"current": current, "head": heads, "up_to_date": current == heads})
    else:
        state = "up to date" if current == heads else "needs `mediastore db upgrade`"
        click.echo(f"current {', '.join(current) or 'none'}; head {', '.join(heads)}: {state}")
