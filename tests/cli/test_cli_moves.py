"""``mediastore migrate-store`` and ``--blobs``: the CLI over MediaStore.migrate_store."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import servers
from click.testing import CliRunner, Result

from mediastore import testing as t
from mediastore.cli import main

CLEAN_ENV = {"MEDIASTORE_ROOT": None, "MEDIASTORE_DB_URL": None, "MEDIASTORE_BLOB_URL": None}


def run(root: Path, *args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner(env={**CLEAN_ENV, **(env or {})}).invoke(main, ["--root", str(root), *args])


def _added(root: Path, tmp_path: Path, count: int) -> dict[str, bytes]:
    files = {}
    for i in range(count):
        data = t.noisy_jpeg(seed=i)
        path = tmp_path / f"in-{i}.jpg"
        path.write_bytes(data)
        files[hashlib.md5(data).hexdigest()] = data
        assert run(root, "add", str(path)).exit_code == 0
    return files


def test_migrate_store_then_use_the_target_with_blobs(tmp_path: Path) -> None:
    root, target = tmp_path / "store", tmp_path / "target"
    files = _added(root, tmp_path, 3)
    moved = run(root, "migrate-store", "--to", str(target), "--json")
    assert moved.exit_code == 0, moved.output
    report = json.loads(moved.stdout)
    assert report["finished"] and report["copied"] == 3 and report["failed"] == {}
    assert {p.name.split(".")[0] for p in (target / "media").rglob("*.jpg")} == set(files)
    md5, data = next(iter(files.items()))
    got = CliRunner(env={**CLEAN_ENV, "MEDIASTORE_BLOB_URL": str(target)}).invoke(
        main, ["--root", str(root), "cat", md5]
    )
    assert got.exit_code == 0 and got.stdout_bytes == data
    again = run(root, "--blobs", str(target), "stats", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["total_files"] == 3


def test_migrate_store_to_its_own_blob_store_is_one_error(tmp_path: Path) -> None:
    root = tmp_path / "store"
    _added(root, tmp_path, 1)
    result = run(root, "migrate-store", "--to", str(root))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert not (root / "media" / "media").exists()


def test_migrate_store_reports_files_it_could_not_copy(tmp_path: Path) -> None:
    """A damaged source copy is listed, the move is not finished, and the exit code is 1."""
    root, target = tmp_path / "store", tmp_path / "target"
    files = _added(root, tmp_path, 2)
    bad = sorted(files)[0]
    (root / "media" / "images" / f"{bad}.jpg").write_bytes(t.noisy_jpeg(seed=77))
    result = run(root, "migrate-store", "--to", str(target))
    assert result.exit_code == 1
    assert f"not copied {bad}" in result.stdout and "not finished" in result.stdout


def test_show_and_rm_name_the_object_of_a_store_on_s3(
    tmp_path: Path, s3_env: servers.S3Bucket
) -> None:
    """On S3 a record has no local path: show and rm name its object instead of 'None'."""
    root, blobs = tmp_path / "store", f"s3://{s3_env.name}/cli"
    path = tmp_path / "a.jpg"
    path.write_bytes(t.noisy_jpeg(seed=3))
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    assert run(root, "--blobs", blobs, "add", str(path)).exit_code == 0
    shown = run(root, "--blobs", blobs, "show", md5)
    assert shown.exit_code == 0
    assert f"{blobs}/media/images/{md5}.jpg" in shown.stdout and "None" not in shown.stdout
    removed = run(root, "--blobs", blobs, "rm", md5)
    assert removed.exit_code == 0 and f"{blobs}/media/images/{md5}.jpg" in removed.stdout
