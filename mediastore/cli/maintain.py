"""Keeping the store healthy: ``verify``, ``import-legacy``, ``reindex``, ``gc``, ``rm``, ``db``."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import click

from ..catalog.engine import make_engine
from ..catalog.schema import current_revisions, head_revisions, known_revisions, upgrade
from ..errors import CorruptMediaError, MediaNotFoundError, MediaStoreError, SchemaOutdatedError
from ..store import MD5_PREFIX
from ..thumbnails import DEFAULT_MAX_BYTES
from ..units import format_size, parse_duration, parse_size
from .common import (
    MAX_LIMIT,
    HowFar,
    Parsed,
    Tally,
    bar_progress,
    echo_error,
    emit_json,
    errors,
    interruptible,
    json_option,
    one_line,
    open_store,
    state,
    with_private,
)

DURATION = Parsed("duration", parse_duration)  # 90s, 30m, 12h, 7d, 2w


@click.command()
@click.argument("md5s", nargs=-1)
@click.option("--older-than", type=DURATION, help="Only files not verified within this period.")
@click.option("--limit", type=click.IntRange(0, MAX_LIMIT), help="Verify at most this many files.")
@click.option(
    "--repair", is_flag=True, help="Download missing/corrupt files again from their URLs."
)
@click.option(
    "--allow-private", is_flag=True, help="Repairs may reach private addresses (intranets)."
)
@click.option(
    "--deep",
    is_flag=True,
    help="Also decode images fully and walk containers (slower than hashing).",
)
@json_option
@click.pass_context
@errors
def verify(
    ctx: click.Context,
    md5s: tuple[str, ...],
    older_than: timedelta | None,
    limit: int | None,
    repair: bool,
    allow_private: bool,
    deep: bool,
    as_json: bool,
) -> None:
    """Re-hash stored files (all when no MD5 or prefix is given).

    Exits 1 if any file is missing or corrupt (one MD5 given: 5 if missing, 4 if corrupt).
    With --deep, a file that hashes right but whose content is broken (truncated before it
    was stored, say) is corrupt too. With --repair, only a file that could not be repaired
    counts; a broken file's good copy is new content, and its URLs move there.
    """
    if md5s and (older_than or limit is not None):
        raise click.UsageError("--older-than/--limit select files: give them or MD5s, not both")
    settings = with_private(state(ctx).settings(), allow_private)
    how_far = HowFar("file")
    with interruptible(ctx, how_far), open_store(ctx, settings=settings) as store:
        chosen = [store.resolve_md5(m) for m in md5s] or None
        total = how_far.total = store.count_to_verify(chosen, older_than=older_than, limit=limit)
        with bar_progress("verifying", "file", total) as progress:
            report = store.verify(
                chosen,
                progress=how_far.track(progress),
                older_than=older_than,
                limit=limit,
                repair=repair,
                deep=deep or None,
                timeout=settings.timeout,
            )
    if as_json:
        emit_json(report.to_dict())
    else:
        for md5 in report.restored:
            click.echo(f"restored {md5} (its intact file is back)")
        for md5 in report.missing:
            click.echo(f"missing  {md5}")
        for md5 in report.corrupt:
            why = report.reasons.get(md5)
            click.echo(f"corrupt  {md5} (moved to quarantine)" + (f": {why}" if why else ""))
        for md5 in report.repaired:
            new = report.replaced.get(md5)
            click.echo(f"repaired {md5}" + (f" as new content {new}" if new else ""))
        for md5, reason in report.unrepaired.items():
            click.echo(f"not repaired {md5}: {one_line(reason)}")
        click.echo(
            f"verified {report.checked}: {len(report.ok)} ok, {len(report.missing)} missing, "
            f"{len(report.corrupt)} corrupt"
            + (f" ({len(report.restored)} restored)" if report.restored else "")
            + (f", {len(report.repaired)} repaired" if repair else "")
        )
    tally = Tally(single=len(md5s) == 1)
    fixed = set(report.repaired)
    for _ in report.ok:
        tally.ok()
    for md5 in report.missing:
        tally.ok() if md5 in fixed else tally.failed(MediaNotFoundError.exit_code)
    for md5 in report.corrupt:
        tally.ok() if md5 in fixed else tally.failed(CorruptMediaError.exit_code)
    tally.exit(ctx)


@click.command()
@click.argument("dest", type=click.Path(path_type=Path))
@json_option
@click.pass_context
@errors
def backup(ctx: click.Context, dest: Path, as_json: bool) -> None:
    """Write a consistent copy of the catalog to DEST (a new file, or a directory).

    Writers may run meanwhile: the copy is the catalog as of one moment. Keep copies
    elsewhere than the store; see the recovery steps in the docs. A SQLite catalog only
    (copy a PostgreSQL one with pg_dump).
    """
    with open_store(ctx) as store:
        report = store.backup(dest)
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(
            f"copied the catalog ({report.files} file(s), {report.urls} URL(s), "
            f"{format_size(report.size)}) to {one_line(report.path)}"
        )


@click.command("import-legacy")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@json_option
@click.pass_context
@errors
def import_legacy(ctx: click.Context, directory: Path | None, as_json: bool) -> None:
    """Import the old cache (files named by the MD5 of their URL; default <root>/images).

    Idempotent: files imported before are skipped unread. Corrupt or unsupported files are
    reported and skipped. Exits 1 if any file was skipped for a problem.
    """
    started = time.monotonic()
    how_far = HowFar("file")
    with (
        interruptible(ctx, how_far),
        open_store(ctx, create=True) as store,
        bar_progress("importing", "file") as progress,
    ):
        report = store.import_legacy(directory, progress=how_far.track(progress))
    elapsed = time.monotonic() - started
    if as_json:
        emit_json({**report.to_dict(), "seconds": round(elapsed, 3)})
    elif report.imported == 0 and not report.skipped:
        click.echo(f"nothing to import: {report.already} file(s) already imported")
    else:
        click.echo(
            f"imported {report.imported} file(s) ({format_size(report.bytes)}), "
            f"{report.already} already imported, {len(report.skipped)} skipped, "
            f"in {elapsed:.1f} s"
        )
    for path, reason in report.skipped:
        echo_error(f"skipped {path}: {reason}")
    if report.skipped:
        ctx.exit(1)


@click.command()
@json_option
@click.pass_context
@errors
def reidentify(ctx: click.Context, as_json: bool) -> None:
    """Give every recorded URL the identity the rules in use say.

    After a rule is added to (or changed in) [[rules]] of mediastore.toml, the URLs recorded
    before it get their identity, variant and expiry, so that rotated URLs of their assets
    are answered from the store. Online and resumable: a page of URLs per transaction;
    run it again after an interruption.
    """
    with open_store(ctx) as store, bar_progress("reidentifying", "url") as progress:
        report = store.reidentify(progress=progress)
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(f"read {report.urls} URL(s): {report.changed} given a new identity")


@click.command()
@json_option
@click.pass_context
@errors
def probe(ctx: click.Context, as_json: bool) -> None:
    """Read the metadata of files stored before it was read at ingest.

    Files stored before catalog revision 0010 have no duration, frames, codecs, pages... in
    the catalog: each is read once (its structure walk, no hashing; an object in a bucket is
    downloaded once) and what it says recorded. Online and resumable: a page of files per
    transaction, and a rerun reads only what is left. Exits 1 when a file was unreadable or
    missing (verify says what is wrong with it).
    """
    with open_store(ctx) as store, bar_progress("probing", "file") as progress:
        report = store.probe(progress=progress)
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(f"read the metadata of {report.read} file(s) ({format_size(report.bytes)})")
        for md5, reason in report.unreadable.items():
            click.echo(f"unreadable {md5}: {one_line(reason)}")
        for md5 in report.missing:
            click.echo(f"missing    {md5}")
    if report.unreadable or report.missing:
        ctx.exit(1)


@click.command()
@json_option
@click.pass_context
@errors
def reindex(ctx: click.Context, as_json: bool) -> None:
    """Rebuild the catalog's media rows from the files on disk (lost or restored catalog).

    A catalog that is gone is made again (at the newest schema) when the store's media
    directory is there; URLs live only in the catalog, so they come back only from a backup.

    Files are re-hashed and recorded at their content's address. Rows are never dropped:
    one whose file is gone is marked missing, one whose file no longer matches is marked
    corrupt (the file quarantined), and their URLs are kept for `verify --repair`. A file not
    at its content's address is recorded at its own address when it is valid content and
    the misplaced copy quarantined, as `gc` does (reported, exit 1).
    """
    # a lost catalog is what reindex is for: it is made again when the store's files are here
    holds_files = (state(ctx).root / "media").is_dir() or state(ctx).blob_url is not None
    with (
        open_store(ctx, create=holds_files) as store,
        bar_progress("reindexing", "file") as progress,
    ):
        report = store.reindex(progress=progress)
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(
            f"indexed {report.indexed} file(s): {report.added} new row(s), "
            f"{len(report.missing)} row(s) without a file marked missing, "
            f"{len(report.corrupt)} damaged file(s) quarantined, "
            f"{len(report.mismatched)} misplaced file(s) quarantined"
        )
    problems = [f"mismatched {path}: {content}" for path, content in report.mismatched]
    problems += [f"corrupt {md5}" for md5 in report.corrupt]
    for line in problems:
        echo_error(line)
    if problems:
        ctx.exit(1)


def parse_grace(text: str) -> timedelta:
    """A grace period: a duration (``90s``, ``12h``, ``7d``) or ``0``."""
    return timedelta(0) if text.strip() == "0" else parse_duration(text)


GRACE = Parsed("duration", parse_grace)


@click.command()
@click.option("--dry-run", is_flag=True, help="Only report what would be done.")
@click.option(
    "--unreferenced/--no-unreferenced",
    default=None,
    help="Also remove content that had references and has had none for the grace period "
    "[default: the collect_unreferenced setting, off unless set].",
)
@click.option(
    "--grace",
    type=GRACE,
    metavar="DURATION",
    help="With --unreferenced: how long content stays after its last reference went "
    "(90s, 12h, 7d, 0), by the database's clock [default: the gc_grace setting, 24h].",
)
@click.option(
    "--thumbnails-max",
    type=Parsed("size", parse_size),
    metavar="SIZE",
    help="The most the kept thumbnails of `serve` may take (least recently used go first; "
    "500M, 2G) [default: 1G].",
)
@json_option
@click.pass_context
@errors
def gc(
    ctx: click.Context,
    dry_run: bool,
    unreferenced: bool | None,
    grace: timedelta | None,
    thumbnails_max: int | None,
    as_json: bool,
) -> None:
    """Clean up after crashes and finish removals.

    Temp files of writers that are gone are removed, and files of removed content that a
    concurrent add held at `rm` time are deleted. A file with no row is adopted into the
    catalog when it is valid content, else moved to quarantine. Rows whose file is gone are
    marked missing (`verify --repair` can fetch them again). gc never deletes a file a row
    references or a running writer may be about to reference.

    --unreferenced also removes (as rm does) content whose last reference key was dropped
    at least --grace ago; content never referenced is never removed that way, and a key
    taken while gc runs keeps its content. The store setting collect_unreferenced makes
    plain gc do so (--no-unreferenced: not this time), and gc_grace sets the grace period.
    """
    settings = state(ctx).settings()
    collecting = settings.config.collect_unreferenced if unreferenced is None else unreferenced
    if grace is not None and not collecting:
        raise click.UsageError("--grace needs --unreferenced (or collect_unreferenced set)")
    with open_store(ctx, settings=settings) as store:
        report = store.gc(
            dry_run=dry_run,
            unreferenced=unreferenced,
            grace=grace,
            thumbnail_bytes=DEFAULT_MAX_BYTES if thumbnails_max is None else thumbnails_max,
        )
    if as_json:
        emit_json(report.to_dict())
        return
    verb = "would " if dry_run else ""
    click.echo(
        f"{verb}remove {len(report.temp_removed)} temp file(s); {verb}adopt "
        f"{len(report.adopted)} file(s)"
        + (f" ({len(report.relocated)} from a wrong directory)" if report.relocated else "")
        + f"; {verb}quarantine {len(report.quarantined)} other file(s); "
        f"{verb}mark {len(report.marked_missing)} row(s) missing; "
        f"{verb}restore {len(report.restored)} row(s) whose file is back; "
        f"deleted {len(report.collected)} file(s) of removed content"
        + (f"; {verb}remove {len(report.unreferenced)} unreferenced" if collecting else "")
    )
    for md5 in report.unreferenced:
        click.echo(f"unreferenced: {md5}")
    for path, reason in report.quarantined:
        click.echo(f"quarantine: {one_line(path)}: {one_line(reason)}")
    for path, md5 in report.relocated:
        click.echo(f"relocated: {one_line(path)}: recorded as {md5}, this copy quarantined")
    for md5 in report.marked_missing:
        click.echo(f"missing: {md5}")
    for md5 in report.restored:
        click.echo(f"restored: {md5}")


@click.command()
@click.argument("md5s", nargs=-1, required=True)
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@click.option("--yes", is_flag=True, help="Allow MD5 prefixes (each must be unique).")
@click.pass_context
@errors
def rm(ctx: click.Context, md5s: tuple[str, ...], dry_run: bool, yes: bool) -> None:
    """Forget content and its URLs, and delete its file (by full MD5; prefixes need --yes).

    Each MD5 is removed on its own: one that fails does not stop the others.
    """
    short = [m for m in md5s if MD5_PREFIX.fullmatch(m.strip().lower())]
    if short and not yes:
        raise click.UsageError(
            f"{one_line(short[0])} is not a full MD5: give all 32 characters, or --yes to "
            "remove by unique prefix"
        )
    tally = Tally(single=len(md5s) == 1)
    with open_store(ctx) as store:
        for given in md5s:
            try:
                md5 = store.resolve_md5(given)
                rec = store.get_by_md5(md5)
                if rec is None:
                    raise MediaNotFoundError(f"no media with md5 {md5}")
                if not dry_run:
                    rec = store.remove(md5)
            except MediaStoreError as exc:
                tally.failed(exc.exit_code)
                echo_error(exc)
                continue
            tally.ok()
            urls = len(store.urls_for(md5)) if dry_run else None
            if dry_run:
                click.echo(f"would remove {rec.md5}  {store.location(rec)}  ({urls} URL(s))")
            else:
                click.echo(f"removed {rec.md5}  {store.location(rec)}")
    tally.exit(ctx)


@click.command("migrate-store")
@click.option(
    "--to",
    "target",
    required=True,
    help="The blob store to move to: a directory or s3://bucket/prefix.",
)
@click.option(
    "--delete-source", is_flag=True, help="Delete each source copy once its copy is recorded."
)
@json_option
@click.pass_context
@errors
def migrate_store(ctx: click.Context, target: str, delete_source: bool, as_json: bool) -> None:
    """Copy every stored file to another blob store, online and resumably.

    While the move is unfinished, stores opened on either end read from both and write new
    content to the target; each copy is hashed at the target before it is recorded, so a
    killed run continues where it stopped. When it says "finished", use --blobs TARGET
    from then on. Exits 1 if some files could not be copied (they are listed).
    """
    how_far = HowFar("file")
    with (
        interruptible(ctx, how_far),
        open_store(ctx) as store,
        bar_progress("copying", "file", None) as progress,
    ):
        report = store.migrate_store(
            target, delete_source=delete_source, progress=how_far.track(progress)
        )
    if as_json:
        emit_json(report.to_dict())
    else:
        for md5, reason in sorted(report.failed.items()):
            click.echo(f"not copied {md5}: {one_line(reason)}")
        click.echo(
            f"copied {len(report.copied)} file(s) to {one_line(report.target)} "
            f"({report.already} copied before); deleted {len(report.source_deleted)} "
            f"source file(s); " + ("finished" if report.finished else "not finished")
        )
    tally = Tally(single=False)
    for _ in report.copied:
        tally.ok()
    for _ in report.failed:
        tally.failed(1)
    tally.exit(ctx)


@click.group()
def db() -> None:
    """The catalog: its schema revision (show, upgrade), and which blob location is its."""


def _catalog_url(ctx: click.Context) -> tuple[str, float]:
    cfg = state(ctx).settings().config
    return cfg.catalog_url, cfg.busy_timeout


@db.command("upgrade")
@click.pass_context
@errors
def db_upgrade(ctx: click.Context) -> None:
    """Migrate the catalog to the newest schema (same as `alembic upgrade head`)."""
    url, busy = _catalog_url(ctx)
    engine = make_engine(url, busy_timeout=busy)
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
@errors
def db_current(ctx: click.Context, as_json: bool) -> None:
    """Print the catalog's schema revision and the head this mediastore needs.

    Exits 7 when the catalog is not at the head (an upgrade is needed, or it was written by
    a newer mediastore).
    """
    url, busy = _catalog_url(ctx)
    engine = make_engine(url, busy_timeout=busy)
    try:
        current = sorted(current_revisions(engine))
    finally:
        engine.dispose()
    heads = sorted(head_revisions())
    unknown = sorted(set(current) - known_revisions())
    if as_json:
        emit_json({"current": current, "head": heads, "up_to_date": current == heads})
    else:
        if unknown:
            state_text = "unknown to this mediastore (written by a newer one?)"
        elif current == heads:
            state_text = "up to date"
        else:
            state_text = "needs `mediastore db upgrade`"
        click.echo(f"current {', '.join(current) or 'none'}; head {', '.join(heads)}: {state_text}")
    if current != heads:  # scripts can tell: the catalog's code (7), as for a store behind
        ctx.exit(SchemaOutdatedError.exit_code)


@db.command("claim-blobs")
@click.pass_context
@errors
def db_claim_blobs(ctx: click.Context) -> None:
    """Make the store's blob location (--blobs, default the root) the catalog's.

    For after moving the files by hand: the location gets the catalog's marker and is
    recorded, so verify, gc, reindex and migrate-store run there again. Until then a
    location without the marker (and without the catalog's files) is refused by them, so a
    second root on a shared catalog cannot mark its rows missing.
    """
    with open_store(ctx) as store:
        before = store.foreign_blobs
        store.claim_blobs()
    click.echo(
        f"{one_line(store.blob_url)} now holds the files of the catalog "
        f"{one_line(store.catalog.where)}" + ("" if before else " (it did already)")
    )
