"""Recovery when it is needed: rows follow their files back, a lost catalog is rebuilt, a
backup is consistent while writers run. Through the CLI (a subprocess: exit code, output,
files) where the behaviour is a command's, checked with plain sqlite3 and hashlib."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import checker
import pytest
from sqlalchemy import create_engine, text

from mediastore import MediaStore
from mediastore import testing as t

URL = "https://cdn.example/p/1.jpg"


def cli(root: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``mediastore --root ROOT ARGS...`` in a subprocess, its output as text."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASTORE_")}
    return subprocess.run(
        [sys.executable, "-m", "mediastore", "--root", str(root), *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture
def photo(tmp_path: Path) -> tuple[Path, str]:
    """A store holding one JPEG recorded for URL; (root, md5)."""
    root = tmp_path / "store"
    with MediaStore(root) as store:
        rec = store.add_bytes(t.noisy_jpeg(seed=7), url=URL)
    return root, rec.md5


def _status(root: Path, md5: str) -> str:
    return str(checker.media_rows(checker.catalog_path(root))[md5]["status"])


@pytest.mark.parametrize("finder", ["verify", "gc"])
def test_a_missing_row_whose_file_comes_back_is_ok_again(
    photo: tuple[Path, str], tmp_path: Path, finder: str
) -> None:
    """verify marks the row of a vanished file missing and `get` fails (exit 5); once the same
    bytes are back, `verify` (or `gc`) says so, the row is ok again, `get` and `stats` agree."""
    root, md5 = photo
    path = Path(checker.address(root, checker.media_rows(checker.catalog_path(root))[md5]))
    aside = tmp_path / "aside.jpg"
    shutil.move(path, aside)
    gone = cli(root, "verify")
    assert gone.returncode == 1, gone.stderr  # some files failed
    assert f"missing  {md5}" in gone.stdout
    assert _status(root, md5) == "missing"
    assert cli(root, "get", URL).returncode == 5

    shutil.move(aside, path)
    back = cli(root, finder)
    assert back.returncode == 0, back.stderr
    expected = f"restored {md5}" if finder == "verify" else f"restored: {md5}"
    assert expected in back.stdout
    assert _status(root, md5) == "ok"
    assert cli(root, "get", URL).returncode == 0
    by_status = json.loads(cli(root, "stats", "--json").stdout)["by_status"]
    assert (by_status["ok"]["count"], by_status["missing"]["count"]) == (1, 0)
    assert checker.file_problem(path, checker.media_rows(checker.catalog_path(root))[md5]) is None
    again = cli(root, "verify")
    assert again.returncode == 0 and "restored" not in again.stdout


def test_a_corrupt_row_whose_file_is_in_quarantine_is_reported_corrupt(
    photo: tuple[Path, str],
) -> None:
    """A damaged file is quarantined and its row marked corrupt; the next verify reports it
    corrupt again (what the row says), not missing, in text and in JSON."""
    root, md5 = photo
    path = Path(checker.address(root, checker.media_rows(checker.catalog_path(root))[md5]))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    first = cli(root, "verify")
    assert first.returncode == 1 and f"corrupt  {md5}" in first.stdout
    assert _status(root, md5) == "corrupt" and checker.quarantined(root)
    second = cli(root, "verify", "--json")
    assert second.returncode == 1
    report = json.loads(second.stdout)
    assert (report["corrupt"], report["missing"], report["ok"]) == ([md5], [], [])
    assert _status(root, md5) == "corrupt"


def _row_status(store: MediaStore, md5: str) -> str:
    """The row's status read with plain SQL on the store's catalog (SQLite or PostgreSQL)."""
    engine = create_engine(store.config.catalog_url)
    try:
        with engine.connect() as conn:
            query = text("SELECT status FROM media WHERE md5 = :md5")
            return str(conn.execute(query, {"md5": md5}).scalar_one())
    finally:
        engine.dispose()


def _take_away(
    store: MediaStore, blob_url: str | None, request: pytest.FixtureRequest, md5: str
) -> Callable[[], None]:
    """Remove the JPEG of ``md5`` behind the store's back (a file moved aside, or an object
    deleted with boto3); the function that puts the same bytes back."""
    if blob_url is None:
        path = store.root / "media" / "images" / f"{md5}.jpg"
        aside = path.with_name("aside")
        path.rename(aside)
        return lambda: aside.rename(path)
    bucket = request.getfixturevalue("s3_env")
    key = f"store/media/images/{md5}.jpg"
    obj = bucket.client.get_object(Bucket=bucket.name, Key=key)
    body, metadata = obj["Body"].read(), obj["Metadata"]
    bucket.client.delete_object(Bucket=bucket.name, Key=key)
    return lambda: bucket.client.put_object(
        Bucket=bucket.name, Key=key, Body=body, Metadata=metadata, ContentType="image/jpeg"
    )


@pytest.mark.slow
def test_rows_follow_their_files_back_on_every_backend(
    backend_store: MediaStore, blob_url: str | None, request: pytest.FixtureRequest
) -> None:
    """On SQLite and PostgreSQL, disk and S3: verify marks a vanished file's row missing;
    when the same bytes are back, verify restores the row to ok (SQL agrees) and gc finds
    nothing more to do."""
    store = backend_store
    rec = store.add_bytes(t.noisy_jpeg(seed=11), url=URL)
    put_back = _take_away(store, blob_url, request, rec.md5)
    assert store.verify().missing == [rec.md5]
    assert _row_status(store, rec.md5) == "missing"
    assert store.get_by_url(URL) is None

    put_back()
    report = store.verify()
    assert (report.ok, report.restored, report.missing) == ([rec.md5], [rec.md5], [])
    assert _row_status(store, rec.md5) == "ok"
    assert store.get_by_url(URL) == rec._replace(
        last_verified_at=store.get_by_url(URL).last_verified_at
    )
    assert store.gc().restored == [] and store.stats().by_status["ok"].count == 1
