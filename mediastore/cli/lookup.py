"""Reading the store: ``get``, ``show``, ``ls``, ``cat``, ``export`` and ``stats``."""

from __future__ import annotations

import json
import math
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from ..errors import InvalidInputError, MediaNotFoundError, MediaStoreError, StorageError
from ..export import NAME_BY
from ..identity import Identities, Identity
from ..listing import MediaFilter
from ..records import LIVE_STATUSES, MEDIA_TYPES, SHAPES, MediaMetadata, MediaRecord, Variant
from ..store import MediaStore
from ..units import format_size, parse_size, parse_when
from .common import (
    MAX_LIMIT,
    Parsed,
    Tally,
    echo_error,
    echo_warning,
    emit_json,
    errors,
    json_option,
    one_line,
    open_store,
    progress_bar,
    state,
)


def is_url(text: str) -> bool:
    return "://" in text


def find(store: MediaStore, item: str) -> MediaRecord:
    """The record an argument names: a URL, an md5 or a unique md5 prefix (6+ characters).

    Raises:
        MediaNotFoundError: nothing by that name. InvalidMD5Error / AmbiguousMD5Error.
    """
    if is_url(item):
        rec = store.lookup_url(item)
        if rec is None:
            raise MediaNotFoundError(f"not stored: {item}")
        return rec
    md5 = store.resolve_md5(item)
    rec = store.get_by_md5(md5)
    if rec is None:
        raise MediaNotFoundError(f"no media with md5 {md5}")
    return rec


def record_json(rec: MediaRecord, urls: list[str] | None = None) -> dict[str, Any]:
    """A record for ``--json``: with its URLs when known, never a lone ``"url": null``."""
    data = rec.to_dict()
    if urls is not None or data["url"] is None:
        del data["url"]
    if urls is not None:
        data["urls"] = urls
    return data


def show_record(rec: MediaRecord, urls: list[str] | None = None, where: str = "") -> None:
    dims = f"{rec.width}x{rec.height}" if rec.width else "-"
    rows = [
        ("md5", rec.md5),
        ("sha256", rec.sha256),
        ("type", f"{rec.media_type} ({rec.mime_type})"),
        ("size", f"{rec.size} ({format_size(rec.size)})"),
        ("dimensions", dims),
        ("path", where or str(rec.path)),
        ("status", rec.status),
        ("created", rec.created_at.isoformat()),
        ("verified", rec.last_verified_at.isoformat() if rec.last_verified_at else "never"),
    ]
    for key, value in rows:
        click.echo(f"{key:<11}{one_line(value)}")
    for url in urls or []:
        click.echo(f"{'url':<11}{one_line(url)}")


@click.command()
@click.argument("url")
@json_option
@click.pass_context
@errors
def get(ctx: click.Context, url: str, as_json: bool) -> None:
    """Look a URL up in the catalog (no download). Exits 5 if its file is not there.

    A URL the catalog knows but whose file is missing or corrupt is reported as such.
    """
    with open_store(ctx) as store:
        rec = store.get_by_url(url)
        known = store.lookup_url(url) if rec is None else rec
        where = store.location(rec) if rec is not None else ""
    if rec is None:
        if known is not None:
            raise MediaNotFoundError(
                f"{url}: recorded for {known.md5}, whose file is {known.status} "
                f"(`mediastore verify --repair {known.md5}` can fetch it again)"
            )
        raise MediaNotFoundError(f"not stored: {url}")
    if as_json:
        emit_json(record_json(rec))
    else:
        show_record(rec, where=where)


@click.command()
@click.argument("md5")
@json_option
@click.pass_context
@errors
def show(ctx: click.Context, md5: str, as_json: bool) -> None:
    """Show a stored file (by MD5 or a unique prefix of 6+), its URLs and the reference
    keys that hold it. Exits 5 if unknown."""
    with open_store(ctx) as store:
        rec = find(store, md5)
        rec = store.describe(rec.md5) or rec
        urls = store.urls_for(rec.md5)
        refs = store.refs(rec.md5)
        where = store.location(rec)
        identities = {url: store.identity(url) for url in urls}
        variants = store.variants(rec.md5)
    if as_json:
        emit_json(
            {
                **record_json(rec, urls),
                "url_details": [_url_json(url, identities[url]) for url in urls],
                "variants": [_variant_json(v) for v in variants],
                "refs": [r.to_dict() for r in refs],
            }
        )
        return
    show_record(rec, [], where)
    for key, value in _metadata_lines(rec.metadata):
        click.echo(f"{key:<11}{one_line(value)}")
    for url in urls:
        found = identities[url]
        click.echo(f"{'url':<11}{one_line(url)}")
        if found is not None:
            size = f", variant {found.variant}" if found.variant else ""
            click.echo(f"{'':<11}identity {found.digest[:12]}{size}; {_expiry(found)}")
    for v in variants if len(variants) > 1 else []:
        dims = f"{v.record.width}x{v.record.height}" if v.record.width else "-"
        mark = "  (this file)" if v.record.md5 == rec.md5 else ""
        click.echo(f"{'variant':<11}{v.variant} (rank {v.rank}) {dims} {v.record.md5}{mark}")
    for ref in refs:
        place = [f"position {ref.position}"] if ref.position is not None else []
        place += [ref.role] if ref.role else []
        click.echo(f"{'ref':<11}{one_line(ref.ref)}" + (f" ({', '.join(place)})" if place else ""))


def _metadata_lines(meta: MediaMetadata | None) -> list[tuple[str, str]]:
    """``show``'s lines for what the file says about its content (the known values)."""
    if meta is None:
        return [("metadata", "not read yet (mediastore probe reads it)")]
    lines: list[tuple[str, str]] = []
    if meta.display_width and meta.display_height:
        shape = f" ({meta.shape})" if meta.shape else ""
        lines.append(("shown", f"{meta.display_width}x{meta.display_height}{shape}"))
    if meta.rotation:
        lines.append(("rotation", f"{meta.rotation} degrees"))
    if meta.pixel_aspect is not None and meta.pixel_aspect != "1:1":
        lines.append(("pixel aspect", meta.pixel_aspect))
    if meta.orientation is not None:
        lines.append(("exif orient", str(meta.orientation)))
    if meta.duration is not None:
        lines.append(("duration", f"{meta.duration:.3f} s"))
    if meta.frames is not None:
        rate = f" at {meta.frame_rate:.3f} fps" if meta.frame_rate else ""
        animated = " (animated)" if meta.animated else ""
        lines.append(("frames", f"{meta.frames}{rate}{animated}"))
    if meta.video_codec is not None:
        lines.append(("video", meta.video_codec))
    if meta.has_audio is not None:
        lines.append(("audio", (meta.audio_codec or "yes") if meta.has_audio else "none"))
    if meta.bit_rate is not None:
        lines.append(("bit rate", f"{meta.bit_rate / 1000:.0f} kbit/s"))
    for key, when in (("made", meta.creation_time), ("captured", meta.capture_time)):
        if when is not None:
            lines.append((key, when.isoformat()))
    if meta.pages is not None:
        lines.append(("pages", str(meta.pages)))
    if meta.pdf_version is not None:
        lines.append(("pdf", meta.pdf_version + (", encrypted" if meta.encrypted else "")))
    return lines


def _expiry(found: Identity) -> str:
    when = found.expires_at
    return "never expires" if when is None else f"expires {when.isoformat()}"


def _url_json(url: str, found: Identity | None) -> dict[str, Any]:
    if found is None:
        return {"url": url, "identity": None}
    expires = found.expires_at.isoformat() if found.expires_at else None
    return {
        "url": url,
        "identity": found.digest,
        "variant": found.variant,
        "rank": found.rank,
        "expires_at": expires,
    }


def _variant_json(v: Variant) -> dict[str, Any]:
    rec = v.record
    return {
        "variant": v.variant,
        "rank": v.rank,
        "md5": rec.md5,
        "width": rec.width,
        "height": rec.height,
        "url": rec.url,
    }


@click.command()
@json_option
@click.pass_context
@errors
def rules(ctx: click.Context, as_json: bool) -> None:
    """List the URL identity rules in use, in the order they are tried (yours first).

    A rule says which URLs name one asset and which size (variant) of it: a URL never seen
    whose identity and variant a stored URL shares is answered from the store, with no
    request. Your rules come from [[rules]] in <root>/mediastore.toml.
    """
    mine = state(ctx).settings().config.identity_rules  # no store needed to read them
    found = Identities.with_user_rules(mine).rules
    user = len(mine)
    listed = [
        {
            "name": rule.name,
            "source": "settings" if i < user else "built-in",
            "hosts": list(rule.hosts),
            "path": rule.path.pattern if rule.path is not None else None,
            "variant": rule.variant,
            "rank": rule.rank if isinstance(rule.rank, str) else list(rule.rank),
            "drop": list(rule.drop),
            "expiry": rule.expiry,
        }
        for i, rule in enumerate(found)
    ]
    if as_json:
        emit_json(listed)
        return
    for item, rule in zip(listed, found, strict=True):
        click.echo(f"{rule.name} ({item['source']}): hosts {', '.join(rule.hosts)}")
        if rule.path is not None:
            click.echo(f"  path {rule.path.pattern}")
        if rule.drop:
            click.echo(f"  drops {', '.join(rule.drop)}")
        if rule.variant:
            click.echo(f"  variant <{rule.variant}>, ranked by {item['rank']}")
        if rule.expiry:
            click.echo(f"  expiry from ?{rule.expiry}=")


@click.command()
@click.option(
    "--limit", type=click.IntRange(1, MAX_LIMIT), help="List at most this many (the latest)."
)
@json_option
@click.pass_context
@errors
def failures(ctx: click.Context, limit: int | None, as_json: bool) -> None:
    """List the URLs whose failure is remembered, latest first.

    A URL that failed for good (404, 410, refused or corrupt content) is not requested again
    within failure_ttl (a setting, default a day): a fetch of it fails from memory. fetch
    --retry-failed asks again.
    """
    with open_store(ctx) as store:
        found = store.failures(limit=limit)
    if as_json:
        emit_json([f.to_dict() for f in found])
        return
    for failure in found:
        again = (
            f"asks again after {failure.asks_again_at:%Y-%m-%d %H:%M} UTC"
            if failure.asks_again_at
            else "not remembered (failure_ttl 0)"
        )
        click.echo(f"{failure.url}")
        click.echo(f"  {failure.reason}; {failure.failed_at:%Y-%m-%d %H:%M} UTC, {again}")
    if not found:
        click.echo("no failures remembered")


#: ``500K``, ``100M``, ``1G``; an ISO date/time (UTC unless it says otherwise) or ``7d`` ago
SIZE = Parsed("size", parse_size)
WHEN = Parsed("date", parse_when)


def parse_seconds(text: str) -> float:
    """A non-negative, finite number of seconds.

    Raises:
        InvalidInputError: anything else.
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise InvalidInputError(f"{text!r} is not a number of seconds (0 or more: 90, 1.5)")
    return value


SECONDS = Parsed("seconds", parse_seconds)


def filter_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The selection options ``ls`` and ``export`` share."""
    options = [
        click.option(
            "--type", "media_type", type=click.Choice(MEDIA_TYPES), help="Only this type."
        ),
        click.option("--status", type=click.Choice(LIVE_STATUSES), help="Only this status."),
        click.option("--min-size", type=SIZE, help="At least this size (500K, 100M, 1G)."),
        click.option("--max-size", type=SIZE, help="At most this size."),
        click.option("--since", type=WHEN, help="Added at or after (2026-01-31, or 7d ago)."),
        click.option("--before", type=WHEN, help="Added before (2026-01-31, or 7d ago)."),
        click.option(
            "--url",
            "url_contains",
            metavar="TEXT",
            help="Some URL of the file contains TEXT (reads every URL row: a scan).",
        ),
        click.option(
            "--min-duration",
            type=SECONDS,
            help="Lasts at least this many seconds (videos, animations; 90, 1.5).",
        ),
        click.option("--max-duration", type=SECONDS, help="Lasts at most this many seconds."),
        click.option(
            "--orientation",
            type=click.Choice(SHAPES),
            help="Taller than wide, wider than tall, or square, as shown (after rotation).",
        ),
        click.option(
            "--animated/--still",
            default=None,
            help="Only animated images (GIF, APNG, WebP of several frames), or only still ones.",
        ),
        click.option("--limit", type=click.IntRange(0, MAX_LIMIT), help="At most this many files."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def make_filter(params: dict[str, Any]) -> MediaFilter:
    keys = (
        "media_type",
        "status",
        "min_size",
        "max_size",
        "since",
        "before",
        "url_contains",
        "min_duration",
        "max_duration",
        "orientation",
        "animated",
        "limit",
    )
    return MediaFilter(**{k: params.pop(k) for k in keys})


@click.command("ls")
@filter_options
@click.option("--ref", metavar="REF", help="Only files the reference key REF holds.")
@click.option(
    "--unreferenced",
    is_flag=True,
    help="Only files that had references and have none now (gc --unreferenced removes "
    "them once the grace period is over).",
)
@json_option
@click.pass_context
@errors
def ls(ctx: click.Context, /, as_json: bool, **params: Any) -> None:
    """List stored files, filtered by type, status, size, date, URL text, duration,
    orientation and animation, in MD5 order.

    Streams (a page of rows at a time, any catalog size). --url TEXT reads every URL row
    (no index serves a substring): slower on a large catalog. A duration, orientation or
    animation filter leaves out files whose metadata is unknown (stored before it was read:
    see probe). --json prints one JSON array, with each file's metadata.
    """
    where = replace(
        make_filter(params), ref=params.pop("ref"), unreferenced=params.pop("unreferenced")
    )
    with open_store(ctx) as store:
        records = store.list_media(where)
        if as_json:
            _stream_json(records)
            return
        for rec in records:
            click.echo(
                f"{rec.md5}  {rec.media_type:<8} {format_size(rec.size):>9}  {rec.status:<7} "
                f"{rec.created_at:%Y-%m-%d %H:%M}{_brief(rec)}"
            )


def _brief(rec: MediaRecord) -> str:
    """A listing line's end: the size as shown, and the duration or pages, where known."""
    meta = rec.metadata
    if meta is None:
        return ""
    parts = []
    if meta.display_width and meta.display_height:
        parts.append(f"{meta.display_width}x{meta.display_height}")
    if meta.duration is not None:
        parts.append(f"{meta.duration:.1f}s")
    if meta.pages is not None:
        parts.append(f"{meta.pages}p")
    return "  " + " ".join(parts) if parts else ""


def _stream_json(records: Iterator[MediaRecord]) -> None:
    """One JSON array, written an element at a time (valid however long it gets)."""
    click.echo("[", nl=False)
    for n, rec in enumerate(records):
        click.echo(("," if n else "") + "\n  " + json.dumps(record_json(rec)), nl=False)
    click.echo("\n]")


@click.command()
@click.argument("item", metavar="MD5|URL")
@click.pass_context
@errors
def cat(ctx: click.Context, item: str) -> None:
    """Write a stored file to stdout (by MD5, a unique MD5 prefix, or a URL)."""
    with open_store(ctx) as store:
        rec = find(store, item)
        out = sys.stdout.buffer
        with store.open(rec.md5) as fh:
            shutil.copyfileobj(fh, out, 1 << 20)
        out.flush()


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.argument("items", nargs=-1, metavar="[MD5|URL]...")
@filter_options
@click.option(
    "--name",
    "name_by",
    type=click.Choice(NAME_BY),
    default="md5",
    show_default=True,
    help="Name files by MD5, or by their URL's file name (made safe; collisions numbered).",
)
@click.option(
    "--hardlink",
    is_flag=True,
    help="Hard-link instead of copying (same filesystem): editing an exported file in place "
    "would then damage the stored one.",
)
@click.option("--no-sidecar", is_flag=True, help="Do not write a <name>.json beside each file.")
@json_option
@click.pass_context
@errors
def export(
    ctx: click.Context,
    /,
    directory: Path,
    items: tuple[str, ...],
    name_by: str,
    hardlink: bool,
    no_sidecar: bool,
    as_json: bool,
    **params: Any,
) -> None:
    """Copy stored files into DIRECTORY (those named, else all that the filters select).

    Copies by default, as a reflink (shared blocks, copy-on-write) where the filesystem has
    one. A file of the same content already there counts as exported; other names in use
    are numbered. Each file gets a JSON sidecar of its record and URLs.
    """
    where = make_filter(params)
    if hardlink:
        echo_warning(
            "--hardlink: the exported files ARE the stored files; editing one in place "
            "damages the store's copy (verify would then quarantine it)"
        )
    tally = Tally(single=len(items) == 1)
    with open_store(ctx) as store:
        chosen = _chosen(store, items, tally) if items else store.list_media(where)
        with progress_bar(len(items) or None, "file", "exporting") as bar:

            def progress(done: int) -> None:
                bar.update(done - bar.n)

            report = store.export(
                directory,
                chosen,
                name_by=name_by,
                link=hardlink,
                sidecar=not no_sidecar,
                progress=progress,
            )
    for _ in report.exported:
        tally.ok()
    for md5, reason in report.failed:
        tally.failed(StorageError.exit_code)
        echo_error(f"{md5}: {reason}")
    if as_json:
        emit_json(report.to_dict())
    else:
        methods = [e.method for e in report.exported]
        for entry in report.exported:
            click.echo(f"{entry.md5}  {one_line(entry.path)}  ({entry.method})")
        click.echo(
            f"exported {len(methods)} file(s) to {one_line(directory)}: "
            + ", ".join(
                f"{methods.count(m)} {m}"
                for m in ("reflink", "copy", "hardlink", "already")
                if m in methods
            )
            + (f"; {len(report.failed)} failed" if report.failed else "")
        )
    tally.exit(ctx)


def _chosen(store: MediaStore, items: tuple[str, ...], tally: Tally) -> Iterator[MediaRecord]:
    for item in items:
        try:
            yield find(store, item)
        except MediaStoreError as exc:
            tally.failed(exc.exit_code)
            echo_error(exc)


@click.command()
@json_option
@click.pass_context
@errors
def stats(ctx: click.Context, as_json: bool) -> None:
    """Counts and sizes per media type and per status, from the catalog alone.

    Also the hours of video, the pages of PDFs and the files whose metadata was not read
    yet (one pass over the media rows; the counts read a few counter rows).
    """
    with open_store(ctx) as store:
        st = store.stats(content=True)
    if as_json:
        emit_json(st.to_dict())
        return
    click.echo(f"{'type':<10}{'files':>10}{'size':>12}")
    for media_type, ts in st.by_type.items():
        click.echo(f"{media_type:<10}{ts.count:>10}{format_size(ts.size):>12}")
    click.echo(f"{'total':<10}{st.total_files:>10}{format_size(st.total_size):>12}")
    if st.by_status:
        click.echo(
            "by status: "
            + ", ".join(f"{s} {v.count} ({format_size(v.size)})" for s, v in st.by_status.items())
        )
    click.echo(f"urls: {st.total_urls}; saved by dedup: {format_size(st.dedup_saved_bytes)}")
    oldest = st.oldest_verified_at.isoformat() if st.oldest_verified_at else "never"
    click.echo(f"oldest verification: {oldest}; never verified: {st.unverified}")
    hours = (st.video_duration or 0) / 3600
    click.echo(
        f"video duration: {hours:.1f} h; pdf pages: {st.pages or 0}; "
        f"metadata not read yet: {st.unprobed or 0}"
    )
    click.echo(
        f"referenced: {st.referenced_files} ({format_size(st.referenced_bytes)}); "
        f"unreferenced: {st.unreferenced_files} ({format_size(st.unreferenced_bytes)})"
    )
