"""``mediastore add`` as a new user meets it: what was new and what was already
stored, stdin, ``--url`` checks, entries that are not files, unreadable paths, one-line
output whatever the names, and the exit-code rule."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import checker
import pytest
from click.testing import CliRunner, Result
from nobody import NOBODY, needs_root, run_as_nobody

from mediastore import MediaStore
from mediastore import testing as t
from mediastore.cli import main

CLEAN_ENV = {"MEDIASTORE_ROOT": None, "MEDIASTORE_DB_URL": None}


def run(root: Path, *args: str, input: bytes | str | None = None) -> Result:
    return CliRunner(env=CLEAN_ENV).invoke(main, ["--root", str(root), *args], input=input)


def _two_copies(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.jpg").write_bytes(t.noisy_jpeg(seed=1))
    (src / "b-copy.jpg").write_bytes(t.noisy_jpeg(seed=1))
    (src / "c.png").write_bytes(t.image_bytes("PNG"))
    return src


def test_add_says_what_was_new_and_what_was_already_stored(root: Path, tmp_path: Path) -> None:
    """Two copies of one file: one is new, the other already stored; adding the directory
    again says all of it was already there (and --json carries ``new`` per file)."""
    src = _two_copies(tmp_path)
    first = run(root, "add", str(src))
    assert first.exit_code == 0, first.output
    assert "added 2 new file(s)" in first.stdout and "1 already stored" in first.stdout
    again = run(root, "add", str(src), "--json")
    data = json.loads(again.stdout)
    assert [item["new"] for item in data["added"]] == [False, False, False]
    assert "added 0 new file(s), 0 B; 3 already stored" in run(root, "add", str(src)).stdout


def test_add_dash_reads_one_file_from_stdin(root: Path) -> None:
    """``add -`` stores the bytes piped in; refused stdin content is one line naming stdin,
    with the add's own exit code (3) and nothing stored."""
    png = t.image_bytes("PNG", color="blue")
    result = run(root, "add", "-", "--json", input=png)
    assert result.exit_code == 0, result.output
    (item,) = json.loads(result.stdout)["added"]
    assert item["source"] == "<stdin>" and item["media_type"] == "image"
    with MediaStore(root) as store:
        assert store.get_by_md5(item["md5"]) is not None
    bad = run(root, "add", "-", input=b"root:*:19000:0:99999:7:::\n")
    assert bad.exit_code == 3
    assert bad.stderr.strip() == "error: <stdin>: unsupported content (text)"


def test_refused_content_is_described_by_kind_never_by_its_bytes(
    root: Path, tmp_path: Path
) -> None:
    """A secret-looking text file is refused as "text"; its first bytes never appear."""
    secret = tmp_path / "shadow"
    secret.write_text("root:*:19000:0:99999:7:::\n")
    result = run(root, "add", str(secret))
    assert result.exit_code == 3
    assert "text" in result.stderr
    assert "root" not in result.stderr.replace(str(tmp_path), "")
    assert b"root:*".hex()[:8] not in result.stderr


@pytest.mark.parametrize(
    "bad", ["not a url", "ftp://cdn.test/a.jpg", "/p/1.jpg", "https://user:pw@cdn.test/a.jpg"]
)
def test_add_url_must_be_an_absolute_http_url(root: Path, tmp_path: Path, bad: str) -> None:
    """--url that is not an absolute http(s) URL: one line, exit 2, nothing stored."""
    f = tmp_path / "a.png"
    f.write_bytes(t.image_bytes("PNG"))
    before = checker.tree_snapshot(root / "media")
    result = run(root, "add", str(f), "--url", bad)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: --url") and len(result.stderr.splitlines()) == 1
    assert checker.tree_snapshot(root / "media") == before


def test_add_url_moving_to_other_content_is_said(root: Path, tmp_path: Path) -> None:
    """Recording a URL for other content than before prints a warning naming both."""
    a, b = tmp_path / "a.png", tmp_path / "b.gif"
    a.write_bytes(t.image_bytes("PNG"))
    b.write_bytes(t.image_bytes("GIF"))
    url = "https://cdn.test/p/1"
    first = json.loads(run(root, "add", str(a), "--url", url, "--json").stdout)["added"][0]
    same = run(root, "add", str(a), "--url", url)
    assert same.exit_code == 0 and "warning" not in same.stderr
    moved = run(root, "add", str(b), "--url", url, "--json")
    second = json.loads(moved.stdout)["added"][0]
    assert moved.exit_code == 0
    assert f"pointed at {first['md5']} before; it now points at {second['md5']}" in moved.stderr


def test_directory_entries_that_are_not_files_are_reported(root: Path, tmp_path: Path) -> None:
    """A FIFO, a dangling link and a link to a directory inside a directory are each named
    on stderr as skipped; the real files (and a link to a file) are added; exit 0."""
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / "a.png").write_bytes(t.image_bytes("PNG"))
    (src / "sub" / "b.gif").write_bytes(t.image_bytes("GIF"))
    os.mkfifo(src / "pipe")
    (src / "gone").symlink_to(src / "nowhere.jpg")
    (src / "subdir-link").symlink_to(src / "sub")
    (src / "b-link.gif").symlink_to(src / "sub" / "b.gif")
    result = run(root, "add", str(src))
    assert result.exit_code == 0, result.output
    err = result.stderr
    assert f"warning: skipped {src / 'pipe'}: a FIFO" in err
    assert f"warning: skipped {src / 'gone'}: a dangling symbolic link" in err
    assert f"warning: skipped {src / 'subdir-link'}: a link to a directory" in err
    assert "added 2 new file(s)" in result.stdout and "1 already stored" in result.stdout


def test_a_named_fifo_is_that_items_error(root: Path, tmp_path: Path) -> None:
    """A FIFO named on the command line is the one item: exit 2 (bad input), one line."""
    os.mkfifo(tmp_path / "pipe")
    result = run(root, "add", str(tmp_path / "pipe"))
    assert result.exit_code == 2 and "not a regular file" in result.stderr


def test_exit_codes_follow_one_rule(root: Path, tmp_path: Path) -> None:
    """One file given: its error's code (missing 2, unsupported 3, corrupt 4); several with
    a failure, or a directory holding one: 1; the good files are still added."""
    good = tmp_path / "good.png"
    good.write_bytes(t.image_bytes("PNG"))
    html = tmp_path / "page.jpg"
    html.write_text("<html>nope</html>")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(t.noisy_jpeg(seed=3)[:-200])
    assert run(root, "add", str(tmp_path / "missing.jpg")).exit_code == 2
    assert run(root, "add", str(html)).exit_code == 3
    assert run(root, "add", str(cut)).exit_code == 4
    both = run(root, "add", str(good), str(html))
    assert both.exit_code == 1 and "added 1 new file(s)" in both.stdout
    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.copy(html, folder / "page.jpg")
    assert run(root, "add", str(folder)).exit_code == 1


def test_names_with_control_characters_stay_on_one_line(root: Path, tmp_path: Path) -> None:
    """A file name with a newline and an escape sequence is printed escaped: every error
    and every output line stays one line, and no raw escape reaches the terminal."""
    src = tmp_path / "in"
    src.mkdir()
    evil = src / "x\nerror: forged\x1b[31m.jpg"
    evil.write_text("<html>not an image</html>")
    good = src / "ok\n.png"
    good.write_bytes(t.image_bytes("PNG"))
    result = run(root, "add", str(src))
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "\\n" in lines[0] and "\\x1b" in lines[0] and "\x1b" not in result.stderr
    assert "ok\\n.png" in result.stdout and "\x1b" not in result.stdout


@needs_root
def test_unreadable_paths_fail_alone_as_an_unprivileged_user(public_dir: Path) -> None:
    """As ``nobody``: an unreadable file and an unreadable subdirectory are each one error
    line; the readable file is added; exit 1 (several items); no usage error."""
    warm = public_dir / "warm"
    warm.mkdir()
    (warm / "w.png").write_bytes(t.image_bytes("PNG", color="white"))
    run(public_dir / "warm-store", "add", str(warm), "--json")  # imports done before setuid
    run(public_dir / "warm-store", "add", str(public_dir / "nothing"))
    src = public_dir / "in"
    (src / "locked").mkdir(parents=True)
    (src / "a.png").write_bytes(t.image_bytes("PNG"))
    (src / "secret.jpg").write_bytes(t.noisy_jpeg(seed=5))
    (src / "locked" / "c.gif").write_bytes(t.image_bytes("GIF"))
    (src / "secret.jpg").chmod(0o600)
    (src / "locked").chmod(0o700)
    store = public_dir / "store"
    # the schema is made here: the migration scripts may sit where nobody cannot read them
    MediaStore(store).close()
    for path in (store, *store.rglob("*")):
        os.chown(path, NOBODY, NOBODY)

    def checks() -> dict[str, object]:
        result = run(store, "add", str(src))
        return {"exit": result.exit_code, "stdout": result.stdout, "stderr": result.stderr}

    got = run_as_nobody(checks)
    assert got["exit"] == 1, got
    err = str(got["stderr"]).splitlines()
    assert len(err) == 2, err
    assert any("secret.jpg" in line and "Permission denied" in line for line in err), err
    assert any("locked" in line and "Permission denied" in line for line in err), err
    assert all(line.startswith("error: ") for line in err)
    assert "added 1 new file(s)" in str(got["stdout"])
