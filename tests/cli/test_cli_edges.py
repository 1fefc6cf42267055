"""Bad input at the command line: one `error:` line, the documented exit code, and nothing
created or changed (no store, no directory, no recorded move, no journal-mode switch)."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import struct
from contextlib import closing
from pathlib import Path

import checker
import pytest
from clirun import error_line, run_cli

from mediastore import MediaStore
from mediastore import testing as t

#: each test runs the command in subprocesses: seconds, not milliseconds
pytestmark = pytest.mark.slow

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
EXAMPLES = REPO / "examples" / "media"


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A working directory holding a store (``cache/``) with the example media, a regular
    file, and another application's SQLite database."""
    work = tmp_path / "work"
    work.mkdir()
    with MediaStore(work / "cache") as store:
        store.add_file(EXAMPLES / "logo.png", url="https://cdn.example/logo.png")
    (work / "afile").write_text("not a directory")
    with closing(sqlite3.connect(work / "other.sqlite")) as db:
        db.execute("CREATE TABLE notes (text)")
        db.commit()
    return work


CASES = {
    "a path too long": (["add", "a" * 5000], 2, "File name too long"),
    "a URL that is not UTF-8": (["get", "https://x.example/\udcff"], 2, "not valid Unicode"),
    "--blobs naming a file": (["--blobs", "afile", "stats"], 2, "is not a directory"),
    "a --limit past any integer": (["verify", "--limit", str(10**30)], 2, "--limit"),
    "migrate-store to ftp": (["migrate-store", "--to", "ftp://x/y"], 2, "unsupported blob URL"),
    "another app's database": (
        ["--db", "sqlite:///other.sqlite", "add", str(EXAMPLES / "sunset.jpg")],
        7,
        "not a mediastore catalog",
    ),
    "export of an unknown md5": (
        ["export", "newdir", "0123456789abcdef0123456789abcdef"],
        5,
        "no media with md5",
    ),
    "a 40-digit --max-file-size": (["--max-file-size", "9" * 40, "stats"], 2, "max_file_size"),
    "a bucket name with capitals": (["--blobs", "s3://BAD_Bucket!", "stats"], 2, "bucket name"),
    "a bucket name too short": (["--blobs", "s3://ab", "stats"], 2, "bucket name"),
    "fetch of text that is no URL": (["fetch", "notaurl"], 2, "missing scheme"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_input_is_one_error_and_changes_nothing(work: Path, case: str) -> None:
    """Each bad input of CASES: its exit code, one error line saying what is wrong, the tree
    of files unchanged (the store, the other database byte for byte, no new directory), and
    no move recorded in the catalog."""
    args, code, says = CASES[case]
    before = checker.tree_snapshot(work)
    other = hashlib.sha256((work / "other.sqlite").read_bytes()).hexdigest()
    result = run_cli(*args, cwd=work)
    assert result.returncode == code, result.stderr
    assert says in error_line(result)
    assert checker.tree_snapshot(work) == before
    assert hashlib.sha256((work / "other.sqlite").read_bytes()).hexdigest() == other
    with closing(sqlite3.connect(work / "other.sqlite")) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    with closing(checker.connect(checker.catalog_path(work / "cache"))) as db:
        assert db.execute("SELECT count(*) FROM store_moves").fetchone() == (0,)


def test_a_refused_scheme_is_a_blocked_download_not_bad_input(work: Path) -> None:
    """A well-formed URL the policy refuses (ftp) is a failed download (exit 8), unlike text
    that is no URL at all (exit 2, above)."""
    result = run_cli("fetch", "ftp://x.example/a.jpg", cwd=work)
    assert result.returncode == 8 and "scheme 'ftp' is not allowed" in error_line(result)


def test_adding_a_missing_path_makes_no_store(tmp_path: Path) -> None:
    """`add missing-path` where there is no store: exit 2, one line, and no ./cache."""
    result = run_cli("add", "missing-path", cwd=tmp_path)
    assert result.returncode == 2 and "no such file: missing-path" in error_line(result)
    assert list(tmp_path.iterdir()) == []


def test_good_paths_are_still_added(tmp_path: Path) -> None:
    """The checks before opening the store leave good input alone: a directory and a file
    named together are added into a new store."""
    shutil.copytree(EXAMPLES, tmp_path / "media")
    result = run_cli("add", "media", str(tmp_path / "media" / "logo.png"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "added 5 new file(s)" in result.stdout


def _malformed_mpo_jpeg() -> bytes:
    """A JPEG whose MPF segment (APP2) is malformed: Pillow reads it as a plain JPEG, with a
    UserWarning about a malformed MPO file and one about corrupt EXIF data."""
    app2 = b"MPF\x00MM\x00\x2a\x00\x00\x00\x08\x00\x03\xb0\x00\x00\x07\x00\x00\x00\x040100"
    app2 += b"\x00" * 20
    jpeg = t.noisy_jpeg((32, 32), seed=1)
    return jpeg[:2] + b"\xff\xe2" + struct.pack(">H", len(app2) + 2) + app2 + jpeg[2:]


def test_no_third_party_warning_reaches_the_user(tmp_path: Path) -> None:
    """A file Pillow warns about while reading it: `add` and `verify --deep` succeed and write
    nothing on stderr (no UserWarning text, no source line of Pillow's)."""
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(_malformed_mpo_jpeg())
    added = run_cli("add", str(photo), cwd=tmp_path)
    assert added.returncode == 0 and added.stderr == ""
    deep = run_cli("verify", "--deep", cwd=tmp_path)
    assert deep.returncode == 0 and "1 ok" in deep.stdout and deep.stderr == ""
