"""``ref add|ls|rm``: a caller's reference keys on stored files, and the lines of
``fetch --from-file`` that carry one (``REF<TAB>URL``, or JSON ``{"ref": ..., "url": ...}``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

import click

from ..errors import InvalidInputError, MediaNotFoundError
from ..records import Reference
from ..references import MAX_POSITION, RefUrl, ref_take
from .common import emit_json, errors, fail, json_option, one_line, open_store


def url_items(lines: Iterable[str], ref: str | None) -> Iterator[str | RefUrl]:
    """What each line of a URL list asks for: a plain URL (under ``ref`` if given), a
    ``REF<TAB>URL`` line, or a JSON object with ``ref``, ``url``, and optionally
    ``position`` and ``role``. Blank lines and ``#`` comments are skipped.

    Lines of one key in a row without a position of their own get 0, 1, 2...: a post's
    files listed in order keep that order.

    Raises:
        InvalidInputError: a line that is none of these, naming its number.
    """
    last, count = None, 0
    for number, line in enumerate(lines, 1):
        text = line.strip("\r\n")
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        try:
            item = _item(text, ref)
        except InvalidInputError as exc:
            raise InvalidInputError(f"line {number}: {exc}") from None
        if isinstance(item, RefUrl):
            count = count + 1 if item.ref == last else 0
            last = item.ref
            if item.position is None:
                item = item._replace(position=count)
        yield item


def _item(text: str, ref: str | None) -> str | RefUrl:
    if "\t" in text.strip(" "):  # the key is taken as written, spaces and all
        key, _, url = text.partition("\t")
        ref_take(key)
        return RefUrl(key, url.strip())
    text = text.strip()
    if text.startswith("{"):
        return _json_item(text)
    return text if ref is None else RefUrl(ref, text)


def _json_item(text: str) -> RefUrl:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidInputError(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        raise InvalidInputError('a JSON line is {"ref": ..., "url": ...}')
    unknown = set(data) - {"ref", "url", "position", "role"}
    if unknown:
        raise InvalidInputError(f"unknown key(s) {', '.join(sorted(unknown))}")
    take = ref_take(data.get("ref"), data.get("position"), data.get("role"))
    return RefUrl(take.ref, data["url"], take.position, take.role)


def _reference_line(ref: Reference) -> str:
    place = "-" if ref.position is None else str(ref.position)
    what = ref.md5 or "(waiting: its URL failed)"
    extra = [ref.role] if ref.role else []
    extra += [ref.url] if ref.url else []
    return one_line(f"{place:>4}  {what}  {'  '.join(extra)}".rstrip())


@click.group("ref")
def ref_group() -> None:
    """Reference keys (post:123) on stored files: add, list and drop them.

    Content that has had references and has none left is removed by
    `gc --unreferenced` once the grace period (default 24 h) is over; content never
    referenced is never removed that way.
    """


@ref_group.command("add")
@click.argument("ref")
@click.argument("item", metavar="MD5|URL")
@click.option(
    "--position",
    type=click.IntRange(0, MAX_POSITION),
    help="The file's place among the key's files (ls --ref, media_for order).",
)
@click.option("--role", help="What the file is to the key (cover, attachment).")
@click.pass_context
@errors
def ref_add(
    ctx: click.Context, ref: str, item: str, position: int | None, role: str | None
) -> None:
    """Take the reference REF on stored content (by MD5, unique prefix or URL).

    Taking a key the file already has again only changes its position and role. Exits 5
    if the content is not stored.
    """
    take = ref_take(ref, position, role)  # a bad key fails before the store opens
    with open_store(ctx) as store:
        rec = store.add_ref(take.ref, item, position=take.position, role=take.role)
    click.echo(f"{one_line(take.ref)} -> {rec.md5}")


@ref_group.command("ls")
@click.argument("ref")
@json_option
@click.pass_context
@errors
def ref_ls(ctx: click.Context, ref: str, as_json: bool) -> None:
    """List what the key REF holds, in its order: position, MD5 (or, for a fetch that
    failed, the URL it waits for), role and URL. Exits 5 if the key holds nothing."""
    with open_store(ctx) as store:
        found = store.references(ref)
    if not found:
        fail(_unknown(ref))
    if as_json:
        emit_json([r.to_dict() for r in found])
        return
    for item in found:
        click.echo(_reference_line(item))


@ref_group.command("rm")
@click.argument("ref")
@click.argument("item", metavar="[MD5|URL]", required=False)
@click.pass_context
@errors
def ref_rm(ctx: click.Context, ref: str, item: str | None) -> None:
    """Drop the key REF from every file it holds, or from one (MD5, prefix or URL).

    Never deletes a file itself: content left with no reference is removed by
    `gc --unreferenced` after the grace period. Exits 5 if the key holds no such file.
    """
    with open_store(ctx) as store:
        dropped = store.drop_ref(ref, item)
    click.echo(f"dropped {dropped} reference(s) of {one_line(ref)}")


def _unknown(ref: str) -> MediaNotFoundError:
    return MediaNotFoundError(f"no reference {ref!r}")
