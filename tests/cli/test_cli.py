"""The mediastore CLI, through click's test runner, on real stores in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mediastore import MediaStore
from mediastore import testing as t
from mediastore.catalog.schema import head_revisions
from mediastore.cli import main


def run(root: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, ["--root", str(root), *args], input=input)


def _media_dir(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / "a.jpg").write_bytes(t.image_bytes("JPEG"))
    (src / "sub" / "b.png").write_bytes(t.image_bytes("PNG"))
    (src / "sub" / "dup.png").write_bytes(t.image_bytes("PNG"))
    (src / "c.pdf").write_bytes(t.pdf_bytes())
    return src


def test_add_directory_recursively_then_stats_json(root: Path, tmp_path: Path) -> None:
    """add walks directories; stats --json reports the keys of the legacy ``media_cache``
    get_cache_stats (total_files, by_type...)."""
    result = run(root, "add", str(_media_dir(tmp_path)))
    assert result.exit_code == 0, result.output
    assert "added 3 new file(s)" in result.output and "1 already stored" in result.output
    assert result.output.count("(already stored)") == 1  # dup.png, the same bytes as b.png
    stats = json.loads(run(root, "stats", "--json").output)
    assert stats["total_files"] == 3
    assert stats["by_type"]["image"]["count"] == 2
    assert stats["by_type"]["document"]["count"] == 1


def test_add_reports_refused_files_and_exits_nonzero(root: Path, tmp_path: Path) -> None:
    """A refused file is one error line on stderr; others are still added; exit 1."""
    src = _media_dir(tmp_path)
    (src / "page.jpg").write_text("<html>not an image</html>")
    result = run(root, "add", str(src))
    assert result.exit_code == 1
    assert "page.jpg" in result.stderr and "HTML" in result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert "added 3 new file(s)" in result.stdout and "1 failed" in result.stdout


def test_add_with_url_then_get_and_show(root: Path, tmp_path: Path) -> None:
    """add --url records the URL; get finds it; show lists it."""
    f = tmp_path / "x.gif"
    f.write_bytes(t.image_bytes("GIF"))
    assert run(root, "add", str(f), "--url", "https://x.test/x.gif").exit_code == 0
    got = json.loads(run(root, "get", "https://x.test/x.gif", "--json").output)
    assert got["mime_type"] == "image/gif" and got["md5_sum"] == got["md5"]
    shown = run(root, "show", got["md5"])
    assert shown.exit_code == 0 and "https://x.test/x.gif" in shown.output
    assert json.loads(run(root, "show", got["md5"], "--json").output)["urls"] == [
        "https://x.test/x.gif"
    ]


def test_add_url_needs_one_file(root: Path, tmp_path: Path) -> None:
    """--url with several files is a usage error."""
    result = run(root, "add", str(_media_dir(tmp_path)), "--url", "https://x.test/")
    assert result.exit_code == 2 and "exactly one file" in result.stderr


def test_missing_things_exit_5(root: Path) -> None:
    """get of an unknown URL and show of an unknown md5 exit 5 with one line."""
    result = run(root, "get", "https://nowhere.test/")
    assert result.exit_code == 5 and result.stderr.strip().startswith("error: not stored")
    assert run(root, "show", "0" * 32).exit_code == 5


def test_bad_md5_exits_2(root: Path) -> None:
    """A malformed md5 is a one-line error, exit 2, no traceback."""
    for cmd in ("show", "rm", "verify"):
        result = run(root, cmd, "../../etc/passwd")
        assert result.exit_code == 2, (cmd, result.output)
        assert "not an md5" in result.stderr and "Traceback" not in result.stderr


def test_verify_exit_codes(root: Path, tmp_path: Path) -> None:
    """verify exits 0 when all is well and 1 when a file is corrupt or missing."""
    f = tmp_path / "a.png"
    f.write_bytes(t.image_bytes("PNG"))
    run(root, "add", str(f))
    ok = run(root, "verify")
    assert ok.exit_code == 0 and "1 ok" in ok.output
    with MediaStore(root) as store:
        (path,) = t.files_under(root / "media")
        path.write_bytes(b"\x89PNG damaged")
    bad = run(root, "verify", "--json")
    assert bad.exit_code == 1
    assert len(json.loads(bad.stdout)["corrupt"]) == 1
    assert store.root == root.resolve()


def test_rm(root: Path, tmp_path: Path) -> None:
    """rm removes the file and row; removing again exits 5."""
    f = tmp_path / "a.pdf"
    f.write_bytes(t.pdf_bytes())
    md5 = json.loads(run(root, "add", str(f), "--json").output)["added"][0]["md5"]
    assert run(root, "rm", md5).exit_code == 0
    assert t.files_under(root / "media") == []
    assert run(root, "rm", md5).exit_code == 5


def test_db_current_and_upgrade(tmp_path: Path) -> None:
    """db upgrade creates the schema; db current reports it at head."""
    root = tmp_path / "fresh"
    head = sorted(head_revisions())
    up = run(root, "db", "upgrade")
    assert up.exit_code == 0 and f"catalog at {head[0]} (was empty)" in up.output
    again = run(root, "db", "upgrade")
    assert "already at head" in again.output
    current = json.loads(run(root, "db", "current", "--json").output)
    assert current == {"current": head, "head": head, "up_to_date": True}


def test_environment_selects_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MEDIASTORE_ROOT sets the store when --root is not given."""
    monkeypatch.setenv("MEDIASTORE_ROOT", str(tmp_path / "envroot"))
    assert CliRunner().invoke(main, ["stats", "--json"]).exit_code == 5  # no store there yet
    png = tmp_path / "a.png"
    png.write_bytes(t.image_bytes("PNG"))
    assert CliRunner().invoke(main, ["add", str(png)]).exit_code == 0
    result = CliRunner().invoke(main, ["stats", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["total_files"] == 1
    assert (tmp_path / "envroot" / "catalog.sqlite3").exists()


def test_every_command_has_help() -> None:
    """Each command documents itself."""
    for cmd in ("add", "get", "show", "stats", "verify", "rm", "db"):
        result = CliRunner().invoke(main, [cmd, "--help"])
        assert result.exit_code == 0 and len(result.output.splitlines()) > 3, cmd


def test_python_dash_m(tmp_path: Path) -> None:
    """`python -m mediastore` runs the same CLI."""
    import subprocess
    import sys

    MediaStore(tmp_path).close()
    out = subprocess.run(
        [sys.executable, "-m", "mediastore", "--root", str(tmp_path), "stats", "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(out.stdout)["total_files"] == 0
