"""``index``, ``similar`` and ``dupes`` as a user runs them: output, JSON, exit codes, and
every bad input one error line with its exit code and nothing changed."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from PIL import Image

from mediastore import MediaStore
from mediastore import testing as t
from mediastore.cli import main


def cli(root: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--root", str(root), *args])


def encode(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


@pytest.fixture
def stored(root: Path) -> dict[str, str]:
    """A picture as PNG (the keeper: same pixels, larger), as JPEG, an unrelated one, a PDF."""
    picture = t.photo(3, (400, 300))
    with MediaStore(root) as store:
        return {
            "png": store.add_bytes(encode(picture, "PNG"), url="https://example.com/p.png").md5,
            "jpeg": store.add_bytes(encode(picture, "JPEG")).md5,
            "other": store.add_bytes(encode(t.photo(4, (400, 300)), "JPEG")).md5,
            "pdf": store.add_bytes(t.pdf_bytes()).md5,
        }


def hashed(root: Path) -> int:
    with MediaStore(root) as store:
        return t.catalog_rows(store, "image_hashes")


def test_index_then_similar_and_dupes(root: Path, stored: dict[str, str]) -> None:
    """``index`` hashes the three images, then finds nothing left; ``similar`` by md5 or URL
    lists the other encoding with its distance; ``dupes`` suggests the PNG as keeper."""
    first = cli(root, "index")
    assert first.exit_code == 0 and "hashed 3 image(s)" in first.output
    assert json.loads(cli(root, "index", "--json").output)["hashed"] == 0
    by_md5 = cli(root, "similar", stored["png"])
    assert by_md5.exit_code == 0
    assert by_md5.output.split()[0] == stored["jpeg"] and stored["other"] not in by_md5.output
    (hit,) = json.loads(cli(root, "similar", "https://example.com/p.png", "--json").output)
    assert hit["md5"] == stored["jpeg"] and 0 <= hit["distance"] <= 4
    dupes = cli(root, "dupes", "--distance", "2")
    assert dupes.exit_code == 0
    assert dupes.output.startswith(f"keep   {stored['png']}") and "1 group(s)" in dupes.output
    (group,) = json.loads(cli(root, "dupes", "--json").output)
    assert group["keeper"]["md5"] == stored["png"]
    assert group["saved_bytes"] == group["others"][0]["size"]
    assert json.loads(cli(root, "dupes", "--pixel", "--json").output) == []


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("similar", "nothex"), 2, "not an md5"),
        (("similar", "{png}", "--distance", "9"), 2, "--distance"),
        (("similar", "{png}", "--distance", "-1"), 2, "--distance"),
        (("similar", "{pdf}"), 3, "not an image"),
        (("similar", "0" * 32), 5, "no media"),
        (("similar", "https://example.com/unknown.jpg"), 5, "no stored media"),
        (("dupes", "--distance", "x"), 2, "--distance"),
        (("dupes", "--distance", "9", "--pixel"), 2, "--distance"),
        (("dupes", "--remove-others"), 2, "--yes"),
        (("dupes", "--remove-others", "--yes", "--json"), 2, "--json"),
    ],
)
def test_bad_input_is_one_error_line_and_changes_nothing(
    root: Path, stored: dict[str, str], args: tuple[str, ...], code: int, message: str
) -> None:
    """Each bad input: one ``error:`` line, its documented exit code, no hash recorded (and
    nothing removed: the four files are still there)."""
    result = CliRunner().invoke(main, ["--root", str(root), *(a.format(**stored) for a in args)])
    assert result.exit_code == code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert hashed(root) == 0
    with MediaStore(root) as store:
        assert all(store.get_by_md5(md5) is not None for md5 in stored.values())


def test_index_exits_1_when_an_image_does_not_decode(root: Path) -> None:
    """An image whose pixels do not decode: ``index`` names it and exits 1; ``similar`` on it
    exits 3 (unsupported content)."""
    with MediaStore(root) as store:
        md5 = store.add_bytes(t.png_undecodable()).md5
    result = cli(root, "index")
    assert result.exit_code == 1 and f"undecodable {md5}" in result.output
    assert cli(root, "similar", md5).exit_code == 3


def test_dupes_remove_others_keeps_the_keeper(root: Path, stored: dict[str, str]) -> None:
    """``--remove-others --yes`` removes the JPEG (as rm does) and keeps the PNG keeper and
    the unrelated picture; the next run finds no group."""
    cli(root, "index")
    result = cli(root, "dupes", "--remove-others", "--yes")
    assert result.exit_code == 0, result.output
    assert f"  removed {stored['jpeg']}" in result.output
    assert "1 group(s); removed 1 file(s), freed" in result.output
    with MediaStore(root) as store:
        assert store.get_by_md5(stored["jpeg"]) is None
        assert all(store.get_by_md5(stored[k]) is not None for k in ("png", "other", "pdf"))
    assert "0 group(s)" in cli(root, "dupes").output
