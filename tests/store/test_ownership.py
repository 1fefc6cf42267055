"""The catalog knows its blob store: a marker in the blob store names the catalog's store id, and
a location that is not the store's cannot have rows marked missing by verify, gc or reindex."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import checker
import pytest
import servers
from alembic import command as alembic_command
from clirun import error_line, run_cli
from sqlalchemy import create_engine, text

from mediastore import BlobStoreMismatchError, MediaStore
from mediastore import testing as t
from mediastore.blobs.base import MARKER_KEY
from mediastore.catalog.schema import alembic_config

#: each test runs the command in subprocesses: seconds, not milliseconds
pytestmark = pytest.mark.slow


def _statuses(db_url: str) -> dict[str, str]:
    """md5 -> status, read with plain SQL."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return {
                md5: status for md5, status in conn.execute(text("SELECT md5, status FROM media"))
            }
    finally:
        engine.dispose()


def _marker(directory: Path) -> dict[str, str]:
    return dict(json.loads((directory / MARKER_KEY).read_text()))


def test_a_new_store_marks_its_blob_location_with_the_catalog_id(tmp_path: Path) -> None:
    """The first open writes the marker; it names the id the catalog holds (read with SQL)."""
    with MediaStore(tmp_path / "s") as store:
        assert store.foreign_blobs is None
    db = checker.catalog_path(tmp_path / "s")
    with checker.connect(db) as conn:
        info = dict(conn.execute("SELECT name, value FROM store_info").fetchall())
    assert _marker(tmp_path / "s")["store_id"] == info["store_id"]
    assert info["blob_url"] == str((tmp_path / "s").resolve())


@pytest.mark.slow
def test_a_second_root_on_a_shared_catalog_marks_nothing_missing(
    tmp_path: Path, pg_url: str
) -> None:
    """Root A stores files on a shared PostgreSQL catalog; root B (its blobs defaulting to its
    own root, which holds none of them) is refused by verify, gc and reindex with exit 6 and
    one line naming both locations; every row stays ok and A's users still get their files."""
    first = tmp_path / "a"
    with MediaStore(first, db_url=pg_url) as store:
        added = [store.add_bytes(t.noisy_jpeg(seed=i), url=f"https://x.test/{i}") for i in range(3)]
    md5s = [rec.md5 for rec in added]
    second = tmp_path / "b"
    second.mkdir()
    for command in (["verify"], ["gc"], ["reindex"], ["verify", "--repair"]):
        result = run_cli("--root", str(second), "--db", pg_url, *command)
        assert result.returncode == 6, (command, result.stderr)
        line = error_line(result)
        assert str(first.resolve()) in line and str(second.resolve()) in line
    assert _statuses(pg_url) == dict.fromkeys(md5s, "ok")
    got = run_cli("--root", str(first), "--db", pg_url, "get", "https://x.test/1")
    assert got.returncode == 0, got.stderr
    assert not (second / MARKER_KEY).exists()


def test_an_upgraded_store_gets_its_marker_without_user_action(tmp_path: Path) -> None:
    """A store made before revision 0006 (no store id, no marker): `db upgrade`, then any
    command, and its location carries the new id; verify then works as before."""
    root = tmp_path / "old"
    with MediaStore(root) as store:
        md5 = store.add_bytes(t.noisy_jpeg(seed=3)).md5
    (root / MARKER_KEY).unlink()
    alembic_command.downgrade(alembic_config(f"sqlite:///{checker.catalog_path(root)}"), "0005")
    assert run_cli("--root", str(root), "stats").returncode == 7  # behind the head
    behind = run_cli("--root", str(root), "db", "current")
    assert behind.returncode == 7 and "needs `mediastore db upgrade`" in behind.stdout
    assert run_cli("--root", str(root), "db", "upgrade").returncode == 0
    verified = run_cli("--root", str(root), "verify")
    assert verified.returncode == 0, verified.stderr
    assert "1 ok" in verified.stdout
    assert _statuses(f"sqlite:///{checker.catalog_path(root)}") == {md5: "ok"}
    assert len(_marker(root)["store_id"]) == 32


def test_files_moved_by_hand_are_claimed_deliberately(tmp_path: Path) -> None:
    """The media directory copied to a new place: --blobs there is refused (exit 6, nothing
    marked) until `db claim-blobs`; then verify finds everything ok there."""
    root = tmp_path / "store"
    with MediaStore(root) as store:
        md5 = store.add_bytes(t.noisy_jpeg(seed=5)).md5
    elsewhere = tmp_path / "moved"
    elsewhere.mkdir()
    shutil.copytree(root / "media", elsewhere / "media")
    base = ["--root", str(root), "--blobs", str(elsewhere)]
    before = checker.tree_snapshot(elsewhere / "media")
    refused = run_cli(*base, "verify")
    assert refused.returncode == 6 and "claim-blobs" in error_line(refused)
    assert checker.tree_snapshot(elsewhere / "media") == before
    assert not (elsewhere / MARKER_KEY).exists()
    claimed = run_cli(*base, "db", "claim-blobs")
    assert claimed.returncode == 0, claimed.stderr
    assert _marker(elsewhere)["store_id"] == _marker(root)["store_id"]
    verified = run_cli(*base, "verify")
    assert verified.returncode == 0 and "1 ok" in verified.stdout
    assert _statuses(f"sqlite:///{checker.catalog_path(root)}") == {md5: "ok"}


def test_another_stores_marker_is_refused(tmp_path: Path) -> None:
    """A location holding another store's marker: verify and gc refuse (exit 6), the message
    names that store's id."""
    with MediaStore(tmp_path / "one") as one:
        one.add_bytes(t.noisy_jpeg(seed=1))
    with MediaStore(tmp_path / "two") as two:
        two.add_bytes(t.noisy_jpeg(seed=2))
    other = _marker(tmp_path / "two")["store_id"]
    shutil.copy(tmp_path / "two" / MARKER_KEY, tmp_path / "one" / MARKER_KEY)
    for command in ("verify", "gc"):
        result = run_cli("--root", str(tmp_path / "one"), command)
        assert result.returncode == 6 and other in error_line(result)
    with MediaStore(tmp_path / "one") as store, pytest.raises(BlobStoreMismatchError):
        store.verify()


@pytest.mark.slow
def test_migrate_store_moves_the_marker_and_a_rerun_copies_nothing(
    tmp_path: Path, pg_url: str, s3_env: servers.S3Bucket
) -> None:
    """disk -> S3 on PostgreSQL: the finished move leaves the marker in the bucket (boto3) and
    none on disk; a rerun (also after a crash that left the source marker) copies nothing."""
    bucket = s3_env
    client = bucket.client
    root = tmp_path / "store"
    with MediaStore(root, db_url=pg_url) as store:
        for i in range(4):
            store.add_bytes(t.noisy_jpeg(seed=40 + i))
        target = f"s3://{bucket.name}/moved"
        report = store.migrate_store(target)
        assert report.finished and len(report.copied) == 4
    obj = client.get_object(Bucket=bucket.name, Key=f"moved/{MARKER_KEY}")
    moved_id = json.loads(obj["Body"].read())["store_id"]
    assert not (root / MARKER_KEY).exists()
    (root / MARKER_KEY).write_text(json.dumps({"store_id": moved_id}))  # as a crash leaves it
    with MediaStore(root, db_url=pg_url) as store:
        again = store.migrate_store(target)
    assert again.finished and again.copied == [] and again.already == 4
    assert not (root / MARKER_KEY).exists()
    with MediaStore(root, db_url=pg_url, blob_url=target) as store:
        assert store.verify().ok and store.foreign_blobs is None
