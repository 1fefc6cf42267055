"""``ref add|ls|rm``, ``fetch --ref`` and reference lines of ``--from-file``, ``ls --ref``,
``ls --unreferenced``, ``show``, ``stats`` and ``gc --unreferenced``; every bad input one
error line with its exit code and nothing changed."""

from __future__ import annotations

import json
from pathlib import Path

import checker
import pytest
from click.testing import CliRunner, Result
from pytest_httpserver import HTTPServer

from mediastore import MediaStore
from mediastore import testing as t
from mediastore.cli import main
from mediastore.references import MAX_REF_LENGTH


def cli(root: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--root", str(root), *args])


def png(seed: int) -> bytes:
    return t.image_bytes("PNG", (8 + seed, 8), color=(seed, 0, 0))


def state(root: Path) -> tuple[object, ...]:
    db = checker.catalog_path(root)
    return checker.table_dump(db, "refs"), checker.table_dump(db, "media")


@pytest.fixture
def two(root: Path) -> tuple[str, str]:
    """Two stored files, neither referenced yet."""
    with MediaStore(root) as store:
        return store.add_bytes(png(1)).md5, store.add_bytes(png(2)).md5


def test_ref_add_ls_rm_and_the_listings(root: Path, two: tuple[str, str]) -> None:
    a, b = two
    assert cli(root, "ref", "add", "post:1", b, "--position", "1").exit_code == 0
    added = cli(root, "ref", "add", "post:1", a[:8], "--position", "0", "--role", "cover")
    assert added.exit_code == 0 and added.output == f"post:1 -> {a}\n"
    listed = cli(root, "ref", "ls", "post:1")
    assert [line.split()[:2] for line in listed.output.splitlines()] == [["0", a], ["1", b]]
    assert [r["md5"] for r in json.loads(cli(root, "ref", "ls", "post:1", "--json").output)] == [
        a,
        b,
    ]
    assert "ref        post:1 (position 0, cover)" in cli(root, "show", a).output
    assert json.loads(cli(root, "show", a, "--json").output)["refs"][0]["ref"] == "post:1"
    assert sorted(
        line.split()[0] for line in cli(root, "ls", "--ref", "post:1").output.splitlines()
    ) == sorted([a, b])
    assert "referenced: 2" in cli(root, "stats").output
    dropped = cli(root, "ref", "rm", "post:1", b)
    assert dropped.exit_code == 0 and "dropped 1" in dropped.output
    assert cli(root, "ls", "--unreferenced").output.split()[0] == b
    kept = cli(root, "gc", "--unreferenced")  # within the default grace
    assert kept.exit_code == 0 and "remove 0 unreferenced" in kept.output
    gone = cli(root, "gc", "--unreferenced", "--grace", "0")
    assert f"unreferenced: {b}" in gone.output
    assert cli(root, "show", b).exit_code == 5
    assert cli(root, "show", a).exit_code == 0


def test_fetch_ref_and_from_file_lines(root: Path, http: HTTPServer, tmp_path: Path) -> None:
    """--ref takes the key on each URL in order; --from-file takes REF<TAB>URL and JSON
    lines; a URL that failed leaves a waiting reference."""
    urls = []
    for i in range(3):
        http.expect_request(f"/{i}.png").respond_with_data(png(i + 1), content_type="image/png")
        urls.append(http.url_for(f"/{i}.png"))
    http.expect_request("/404.png").respond_with_data("no", status=404)
    fetched = cli(root, "fetch", "--allow-private", "--ref", "post:1", urls[1], urls[0])
    assert fetched.exit_code == 0, fetched.output
    lines = tmp_path / "urls.txt"
    lines.write_text(
        f"post:2\t{urls[2]}\n"
        f"post:2\t{urls[0]}\n"
        + json.dumps({"ref": "post:3", "url": urls[1], "role": "cover"})
        + "\n"
        + json.dumps({"ref": "post:3", "url": http.url_for("/404.png")})
        + "\n"
    )
    result = cli(root, "fetch", "--allow-private", "--from-file", str(lines))
    assert result.exit_code == 1  # one of several failed
    with MediaStore(root) as store:
        assert [r.url for r in store.media_for("post:1")] == [None, None]
        assert [r.url for r in store.references("post:1")] == [urls[1], urls[0]]
        assert [r.url for r in store.references("post:2")] == [urls[2], urls[0]]
        three = store.references("post:3")
        assert [(r.role, r.md5 is None) for r in three] == [("cover", False), (None, True)]
    assert "(waiting: its URL failed)" in cli(root, "ref", "ls", "post:3").output


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["ref", "add", "", "{a}"], 2),
        (["ref", "add", "x" * (MAX_REF_LENGTH + 1), "{a}"], 2),
        (["ref", "add", "k", "{a}", "--position", "-1"], 2),
        (["ref", "add", "k", "0" * 32], 5),
        (["ref", "add", "k", "https://example.com/unknown.png"], 5),
        (["ref", "add", "k", "zz"], 2),
        (["ref", "rm", "unknown"], 5),
        (["ref", "rm", "held", "{b}"], 5),
        (["ref", "ls", "unknown"], 5),
        (["ref", "ls", ""], 2),
        (["gc", "--unreferenced", "--grace", "soon"], 2),
        (["gc", "--unreferenced", "--grace", "-1h"], 2),
        (["gc", "--grace", "1h"], 2),
        (["ls", "--ref", ""], 2),
        (["fetch", "--ref", "", "https://example.com/a.png"], 2),
        (["fetch", "--from-file", "{bad_json}"], 2),
        (["fetch", "--from-file", "{bad_ref}"], 2),
    ],
)
def test_bad_input_is_one_error_line_and_changes_nothing(
    root: Path, two: tuple[str, str], tmp_path: Path, args: list[str], code: int
) -> None:
    a, b = two
    with MediaStore(root) as store:
        store.add_ref("held", a)
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('https://example.com/a.png\n{"ref": "k", "url": \n')
    bad_ref = tmp_path / "bad.tsv"
    bad_ref.write_text("https://example.com/a.png\n\thttps://example.com/b.png\n")
    filled = [
        arg.format(a=a, b=b, bad_json=bad_json, bad_ref=bad_ref) if "{" in arg else arg
        for arg in args
    ]
    before = state(root)
    result = cli(root, *filled)
    assert result.exit_code == code, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 or (code == 2 and "Error:" in result.output), result.output
    assert state(root) == before


def test_the_collect_unreferenced_setting_on_the_command_line(root: Path) -> None:
    """With collect_unreferenced in mediastore.toml, a plain `gc` collects after gc_grace;
    `--no-unreferenced` skips it, and `--grace` needs no `--unreferenced` any more."""
    with MediaStore(root) as store:
        a = store.add_bytes(png(70), ref="post:1").md5
        b = store.add_bytes(png(71), ref="post:2").md5
        store.drop_ref("post:1")
        store.drop_ref("post:2")
    (root / "mediastore.toml").write_text('collect_unreferenced = true\ngc_grace = "1h"\n')
    kept = cli(root, "gc")
    assert kept.exit_code == 0 and "remove 0 unreferenced" in kept.output
    skipped = cli(root, "gc", "--no-unreferenced", "--json")
    assert skipped.exit_code == 0 and json.loads(skipped.output)["unreferenced"] == []
    refused = cli(root, "gc", "--no-unreferenced", "--grace", "0")
    assert refused.exit_code == 2 and "--grace needs --unreferenced" in refused.output
    gone = cli(root, "gc", "--grace", "0")
    assert gone.exit_code == 0 and a in gone.output and b in gone.output
    assert cli(root, "show", a).exit_code == 5


@pytest.mark.parametrize(
    ("env", "value"),
    [("MEDIASTORE_GC_GRACE", "soon"), ("MEDIASTORE_COLLECT_UNREFERENCED", "maybe")],
)
def test_a_bad_collection_setting_is_one_error_line(
    root: Path, two: tuple[str, str], env: str, value: str
) -> None:
    """A bad collection setting in the environment: exit 2, one error line naming it."""
    result = CliRunner(env={env: value}).invoke(main, ["--root", str(root), "gc"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and env.removeprefix("MEDIASTORE_").lower() in lines[0]
