"""Near-duplicate images: ``index``, ``similar`` and ``dupes``. ``dupes`` suggests; it
removes only when asked twice (``--remove-others --yes``), through the store's ``remove``."""

from __future__ import annotations

import click

from ..errors import MediaStoreError
from ..records import DuplicateGroup, SimilarImage
from ..similarity import DEFAULT_DISTANCE, MAX_DISTANCE
from ..store import MediaStore
from ..units import format_size
from .common import (
    Tally,
    bar_progress,
    echo_error,
    emit_json,
    errors,
    json_option,
    one_line,
    open_store,
)

distance_option = click.option(
    "--distance",
    "max_distance",
    type=click.IntRange(0, MAX_DISTANCE),
    default=DEFAULT_DISTANCE,
    show_default=True,
    help=f"Bits the perceptual hashes may differ by (0 to {MAX_DISTANCE}).",
)


@click.command()
@json_option
@click.pass_context
@errors
def index(ctx: click.Context, as_json: bool) -> None:
    """Compute the similarity hashes of every stored image that has none.

    Each image's first frame is decoded once for a pixel hash and a 64-bit perceptual hash,
    which similar and dupes query. Online and resumable: a page of images per transaction,
    and a rerun reads only what is left (nothing, when every image is hashed). Exits 1 when
    an image did not decode or its file is missing.
    """
    with open_store(ctx) as store, bar_progress("indexing", "image") as progress:
        report = store.index(progress=progress)
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(f"hashed {report.hashed} image(s)")
        for md5, reason in report.undecodable.items():
            click.echo(f"undecodable {md5}: {one_line(reason)}")
        for md5 in report.missing:
            click.echo(f"missing     {md5}")
    if report.undecodable or report.missing:
        ctx.exit(1)


@click.command()
@click.argument("md5_or_url", metavar="MD5|URL")
@distance_option
@json_option
@click.pass_context
@errors
def similar(ctx: click.Context, md5_or_url: str, max_distance: int, as_json: bool) -> None:
    """List the stored images that look like this one, nearest first.

    Images whose perceptual hashes differ by at most --distance bits (2: nearly every
    re-encoding or resize; 4: also small crops; 8 at most). Only images `mediastore index`
    has hashed are found.
    """
    with open_store(ctx) as store:
        found = store.similar(md5_or_url, max_distance)
    if as_json:
        emit_json([hit.to_dict() for hit in found])
        return
    for hit in found:
        click.echo(_line(hit))


def _line(hit: SimilarImage) -> str:
    size = f"{hit.width}x{hit.height}" if hit.width and hit.height else "?"
    same = "  same pixels" if hit.same_pixels else ""
    return f"{hit.md5}  d={hit.distance}  {size:>11}  {format_size(hit.size):>9}{same}"


@click.command()
@distance_option
@click.option("--pixel", "pixel_only", is_flag=True, help="Only images with identical pixels.")
@click.option(
    "--remove-others", is_flag=True, help="Remove each group's others (as rm does); needs --yes."
)
@click.option("--yes", is_flag=True, help="Confirm --remove-others.")
@json_option
@click.pass_context
@errors
def dupes(
    ctx: click.Context,
    max_distance: int,
    pixel_only: bool,
    remove_others: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """List groups of near-duplicate images, each with a suggested keeper.

    The keeper has the most pixels, then the largest file; the others follow with their
    distance to it, and the group says what removing them would free. Nothing is removed
    unless --remove-others --yes is given: then each group's others are removed as
    `mediastore rm` removes them. Only images `mediastore index` has hashed are grouped.
    """
    if remove_others and not yes:
        raise click.UsageError("--remove-others removes content: add --yes to confirm")
    if remove_others and as_json:
        raise click.UsageError("--remove-others prints what it removes: not with --json")
    with open_store(ctx) as store:
        groups = store.duplicate_groups(max_distance, pixel_only=pixel_only)
        if as_json:
            emit_json([group.to_dict() for group in groups])
            return
        count = saved = freed = 0
        tally = Tally(single=False)
        for group in groups:
            click.echo(_group_text(group))
            count += 1
            saved += group.saved_bytes
            if remove_others:
                freed += _remove(store, group, tally)
    if remove_others:
        click.echo(
            f"{count} group(s); removed {tally.items - len(tally.codes)} file(s), "
            f"freed {format_size(freed)}"
        )
    else:
        click.echo(f"{count} group(s); removing the others would free {format_size(saved)}")
    tally.exit(ctx)


def _remove(store: MediaStore, group: DuplicateGroup, tally: Tally) -> int:
    """Remove a group's others, each on its own (one that fails does not stop the rest);
    the bytes freed."""
    freed = 0
    for other in group.others:
        try:
            store.remove(other.md5)
        except MediaStoreError as exc:
            tally.failed(exc.exit_code)
            echo_error(exc)
            continue
        tally.ok()
        freed += other.size
        click.echo(f"  removed {other.md5}")
    return freed


def _group_text(group: DuplicateGroup) -> str:
    lines = [f"keep   {_line(group.keeper)}"]
    lines += [f"  dupe {_line(other)}" for other in group.others]
    lines.append(f"  frees {format_size(group.saved_bytes)}")
    return "\n".join(lines)
