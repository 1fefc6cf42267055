"""``add`` and ``fetch``: putting content into the store."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from collections.abc import Iterator
from contextlib import closing, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import click

from ..config import DEFAULT_MAX_WORKERS, DEFAULT_TIMEOUT, VARIANT_POLICIES
from ..errors import BlockedURLError, InvalidInputError, InvalidURLError, MediaStoreError
from ..net.hosts import DEFAULT_MAX_PER_HOST, DEFAULT_START
from ..net.policy import validate_url
from ..records import FetchResult, MediaRecord
from ..references import RefUrl, ref_take
from ..store import MediaStore
from ..units import format_size
from .common import (
    Tally,
    echo_error,
    echo_warning,
    emit_json,
    error_code,
    errors,
    fail,
    interruptible,
    json_option,
    one_line,
    open_store,
    progress_bar,
    state,
    with_private,
)
from .references import url_items

STDIN = "-"


@dataclass(frozen=True, slots=True)
class Item:
    """A file to add, or a problem found while looking for files (``error`` set)."""

    path: Path
    error: MediaStoreError | None = None


def _special(mode: int) -> str | None:
    """What a non-regular, non-directory entry is, for the line saying it was skipped."""
    kinds = (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    return next((name for test, name in kinds if test(mode)), None)


def _walk(top: Path, skip: Path) -> Iterator[Item | str]:
    """Files under ``top`` (sorted, links to files followed, links to directories not);
    a ``str`` is a line about an entry skipped on purpose, an errored Item one that failed."""
    failures: list[OSError] = []
    for dirpath, dirnames, filenames in os.walk(top, onerror=failures.append):
        yield from _unlisted(failures, top)
        dirnames.sort()
        here = Path(dirpath)
        if here.resolve().is_relative_to(skip):
            dirnames.clear()
            continue
        for name in sorted(filenames + [d for d in dirnames if (here / d).is_symlink()]):
            path = here / name
            try:
                st = path.lstat()
            except OSError as exc:
                yield Item(path, InvalidInputError(f"cannot read {path}: {exc.strerror or exc}"))
                continue
            if stat.S_ISLNK(st.st_mode):
                try:
                    st = path.stat()
                except OSError:
                    yield f"skipped {path}: a dangling symbolic link"
                    continue
                if stat.S_ISDIR(st.st_mode):
                    yield f"skipped {path}: a link to a directory (not followed)"
                    continue
            kind = _special(st.st_mode)
            if kind:
                yield f"skipped {path}: {kind}"
            elif stat.S_ISREG(st.st_mode) and not path.resolve().is_relative_to(skip):
                yield Item(path)
    yield from _unlisted(failures, top)


def _unlisted(failures: list[OSError], top: Path) -> Iterator[Item]:
    """A failed item for each directory ``os.walk`` could not list."""
    while failures:
        err = failures.pop()
        path = Path(err.filename) if err.filename else top
        yield Item(path, InvalidInputError(f"cannot read directory {path}: {err.strerror or err}"))


def _is_directory(text: str) -> bool:
    """A directory (not a link to one) is named; False for stdin and unreadable names."""
    try:
        return text != STDIN and stat.S_ISDIR(os.lstat(text).st_mode)
    except OSError:
        return False


def _items(paths: tuple[str, ...], skip: Path) -> Iterator[Item | str]:
    """Paths named (given to add_file as they are: it says what is wrong with them) and the
    files found under directories, except those inside the store itself."""
    for text in paths:
        path = Path(text)
        if text == STDIN:
            yield Item(path)
            continue
        try:
            found = path.lstat()
        except OSError as exc:  # missing, a name too long, a component not a directory
            why = "no such file" if isinstance(exc, FileNotFoundError) else exc.strerror
            yield Item(path, InvalidInputError(f"{why}: {text}"))
            continue
        if stat.S_ISDIR(found.st_mode):
            yield from _walk(path, skip)
        else:
            yield Item(path)


def check_url_label(url: str) -> str:
    """Only an absolute http(s) URL may be recorded (``--url``): exit 2 otherwise."""
    try:
        return validate_url(url)
    except (BlockedURLError, InvalidURLError) as exc:
        raise InvalidInputError(f"--url {exc.url}: {exc.reason}") from exc


def _describe(rec: MediaRecord, source: str, new: bool) -> dict[str, Any]:
    return {"source": source, "new": new, **rec.to_dict()}


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--url", help="Record this absolute http(s) URL for the file (one file only).")
@json_option
@click.pass_context
@errors
def add(ctx: click.Context, paths: tuple[str, ...], url: str | None, as_json: bool) -> None:
    """Add files (directories recursively; - reads one file from stdin).

    Says which files were new and which were already stored. Links to files are followed,
    links to directories are not; FIFOs, sockets, devices and dangling links found in a
    directory are skipped with a line on stderr. Exit code: see `mediastore --help`.
    """
    if paths.count(STDIN) > 1:
        raise click.UsageError("- (stdin) can be given once")
    if url is not None:
        check_url_label(url)
    added: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    named_one = len(paths) == 1 and not _is_directory(paths[0])
    tally = Tally(single=named_one)
    seen: set[str] = set()
    files: list[Item] = []

    def how_far() -> str:
        return f"{tally.items} of {len(files)} file(s) done ({len(added)} added)"

    root = Path(state(ctx).settings().config.root).expanduser().resolve()
    items = list(_items(paths, root))
    files = [i for i in items if isinstance(i, Item)]
    if url and len(files) != 1:
        raise click.UsageError("--url needs exactly one file")
    # no file to add (every path missing, say): no store is made for nothing
    usable = any(item.error is None for item in files)
    opened = open_store(ctx, create=True) if usable else nullcontext(None)
    with interruptible(ctx, how_far), opened as store:
        before = store.lookup_url(url) if url and store else None
        with progress_bar(len(files), "file", "adding") as bar:
            for item in items:
                if isinstance(item, str):
                    echo_warning(item)
                    continue
                source = "<stdin>" if str(item.path) == STDIN else str(item.path)
                try:
                    if item.error is not None:
                        raise item.error
                    assert store is not None, "opened when a file has no error"
                    rec, new = _add_one(store, item.path, url)
                except MediaStoreError as exc:
                    tally.failed(exc.exit_code)
                    message = str(exc) if source in str(exc) else f"{source}: {exc}"
                    failed.append({"source": source, "error": message})
                    echo_error(message)
                else:
                    tally.ok()
                    added.append(_describe(rec, source, new and rec.md5 not in seen))
                    seen.add(rec.md5)
                bar.update()
    if url and before is not None and added and before.md5 != added[0]["md5"]:
        echo_warning(f"{url} pointed at {before.md5} before; it now points at {added[0]['md5']}")
    if as_json:
        emit_json({"added": added, "failed": failed})
    else:
        _print_added(added, failed)
    tally.exit(ctx)


def _add_one(store: MediaStore, path: Path, url: str | None) -> tuple[MediaRecord, bool]:
    """Add one file (``-``: stdin); True if its content was not stored before.

    The store does not say whether an add found its content already there, so a record
    created before this add started is taken as "already stored".
    """
    started = datetime.now(UTC)
    if str(path) == STDIN:
        rec = store.add_stream(sys.stdin.buffer, url=url)
    else:
        rec = store.add_file(path, url=url)
    return rec, rec.created_at >= started


def _print_added(added: list[dict[str, Any]], failed: list[dict[str, str]]) -> None:
    for item in added:
        note = "" if item["new"] else "  (already stored)"
        click.echo(f"{item['md5']}  {one_line(item['source'])}{note}")
    new = [r for r in added if r["new"]]
    old = len(added) - len(new)
    click.echo(
        f"added {len(new)} new file(s), {format_size(sum(int(r['size']) for r in new))}; "
        f"{old} already stored; {len(failed)} failed"
    )


# --- fetch ---------------------------------------------------------------------------------------
def _open_url_file(source: str) -> IO[str]:
    """The URL list ``source`` (``-``: stdin), opened now so that a missing file fails early."""
    try:
        stream: IO[str] = click.open_file(source, "r", encoding="utf-8")
    except OSError as exc:
        fail(InvalidInputError(f"cannot read --from-file {source}: {exc.strerror or exc}"))
    return stream


def _urls(args: tuple[str, ...], stream: IO[str] | None, ref: str | None) -> Iterator[str | RefUrl]:
    """The URLs given (under ``ref`` if given, at positions 0, 1, 2...), then the items of
    ``stream`` line by line (see :func:`url_items`).

    Read lazily: a list of millions of URLs is never held in memory.
    """
    yield from url_items(args, ref)
    if stream is None:
        return
    with stream:
        yield from url_items(stream, ref)


def _check_url_file(source: str, ref: str | None) -> None:
    """Read a URL list once before fetching, so that a bad line fails the command before
    anything is fetched (stdin is read once: its bad line fails when it is reached)."""
    if source == "-":
        return
    with _open_url_file(source) as stream:
        for _ in url_items(stream, ref):
            pass


class _FetchTally:
    """Counts for the summary of ``fetch``, kept as results stream by."""

    def __init__(self, *, single: bool) -> None:
        self.urls = self.fetched = self.cached = self.failed = self.bytes = self.larger = 0
        self.exits = Tally(single=single)

    def add(self, result: FetchResult) -> None:
        self.urls += 1
        if not result.ok:
            self.failed += 1
            self.exits.failed(error_code(result.error))
            return
        self.exits.ok()
        if result.variant_of is not None:
            self.larger += 1
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
            "urls": self.urls,
            "fetched": self.fetched,
            "cached": self.cached,
            "answered_by_larger": self.larger,
            "failed": self.failed,
            "bytes": self.bytes,
            "seconds": round(seconds, 3),
        }


def _failure_line(result: FetchResult) -> str:
    return f"{result.url}: {getattr(result.error, 'reason', result.error)}"


@click.command()
@click.argument("urls", nargs=-1)
@click.option(
    "--from-file",
    "from_file",
    metavar="FILE",
    help="Read URLs from FILE, one per line ('-': stdin).",
)
@click.option(
    "--ref",
    metavar="REF",
    help="Take the reference REF (post:123) on each URL's file, at positions 0, 1, 2... "
    "in order; held even when the URL was already stored or failed.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help=f"Download threads [default: {DEFAULT_MAX_WORKERS}; env MEDIASTORE_WORKERS, or workers "
    "in mediastore.toml].",
)
@click.option(
    "--per-host",
    type=click.IntRange(1, 256),
    default=None,
    help="Cap on concurrent requests to one host [default: adaptive, "
    f"{DEFAULT_START} growing to {DEFAULT_MAX_PER_HOST} while "
    "the host answers promptly, slowing down on 429/503; env MEDIASTORE_PER_HOST].",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help=f"Seconds a read (or connect) may wait [default: {DEFAULT_TIMEOUT:g}; env "
    "MEDIASTORE_TIMEOUT].",
)
@click.option(
    "--allow-private",
    is_flag=True,
    help="Allow private, loopback and link-local addresses (intranets only; env "
    "MEDIASTORE_ALLOW_PRIVATE=1, never from mediastore.toml).",
)
@click.option(
    "--variants",
    type=click.Choice(VARIANT_POLICIES),
    default=None,
    help="Several sizes of one asset (by the identity rules): 'each' downloads every URL, "
    "'largest' only the largest size, which answers the others (the whole list is read "
    "first) [default: each; env MEDIASTORE_VARIANTS, or variants in mediastore.toml].",
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Ask again for URLs whose failure (404, 410, refused or corrupt content) is "
    "remembered, instead of failing them from memory.",
)
@json_option
@click.option(
    "--jsonl",
    "as_jsonl",
    is_flag=True,
    help="Print one JSON object per URL as it completes, then a summary object.",
)
@click.pass_context
@errors
def fetch(
    ctx: click.Context,
    urls: tuple[str, ...],
    from_file: str | None,
    ref: str | None,
    workers: int | None,
    per_host: int | None,
    timeout: float | None,
    allow_private: bool,
    variants: str | None,
    retry_failed: bool,
    as_json: bool,
    as_jsonl: bool,
) -> None:
    """Download URLs into the store (cached ones are checked, not downloaded again).

    URLs from --from-file are read as they are needed (any number of them); a line may be
    a URL, REF<TAB>URL, or a JSON object {"ref": ..., "url": ..., "position": ...,
    "role": ...}, whose reference is taken as --ref takes one. Prints a summary
    and one line per failure (--json: one document in input order; --jsonl: one line per URL
    as it completes). One URL that failed exits with its error's code (8 for a download);
    several URLs of which some failed exit 1.
    """
    if as_json and as_jsonl:
        raise click.UsageError("--json and --jsonl are exclusive")
    if not urls and not from_file:
        raise click.UsageError("give URLs as arguments or with --from-file")
    flags = {"workers": workers, "per_host": per_host, "timeout": timeout, "variants": variants}
    settings = with_private(state(ctx).settings(**flags), allow_private)
    if ref is not None:
        ref_take(ref)  # a bad key fails before anything is fetched
    if from_file:
        _check_url_file(from_file, ref)
    stream = _open_url_file(from_file) if from_file else None
    started = time.monotonic()
    single = len(urls) == 1 and not from_file
    tally = _FetchTally(single=single)
    with (
        interruptible(ctx, tally.how_far),
        open_store(ctx, create=True, settings=settings) as store,
        progress_bar(None if stream else len(urls), "url", "fetching") as bar,
    ):
        if as_json:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)
                tally.urls = done  # what a Ctrl-C reports; the counts are made at the end

            results = store.fetch_many(
                _urls(urls, stream, ref),
                max_workers=settings.workers,
                timeout=settings.timeout,
                per_host=settings.config.per_host,
                progress=progress,
                retry_failed=retry_failed,
            )
            tally = _FetchTally(single=single)
            for result in {r.url: r for r in results}.values():  # a repeated URL counts once
                tally.add(result)
        else:
            streamed = store.iter_fetch(
                _urls(urls, stream, ref),
                max_workers=settings.workers,
                timeout=settings.timeout,
                per_host=settings.config.per_host,
                retry_failed=retry_failed,
            )
            with closing(streamed):
                for result in streamed:
                    tally.add(result)
                    bar.update()
                    if as_jsonl:
                        click.echo(json.dumps(result.to_dict(), default=str))
                    elif not result.ok:  # as it happens: failures are not kept
                        echo_error(_failure_line(result))
    summary = tally.summary(time.monotonic() - started)
    if as_json:
        summary["urls"] = len(results)  # repeats included
        emit_json({"summary": summary, "results": [r.to_dict() for r in results]})
        for result in {r.url: r for r in results if not r.ok}.values():
            echo_error(_failure_line(result))
    elif as_jsonl:
        click.echo(json.dumps({"summary": summary}))
    else:
        click.echo(
            f"fetched {summary['fetched']}, already cached {summary['cached']}, "
            + (f"answered by a larger size {tally.larger}, " if tally.larger else "")
            + f"failed {summary['failed']}; {format_size(summary['bytes'])} in "
            f"{summary['seconds']:.1f} s"
        )
    tally.exits.exit(ctx)
