"""migrate-store: moving a store's bytes to another blob store, online and resumably.

Disk to disk needs no server, so the protocol (resume after SIGKILL, online reads and
writes, hash check of each copy, source deleted only when asked) is tested there; disk to
S3 and back runs on the Ceph RGW the tests start, checked with boto3.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
import servers

from mediastore import CatalogError, InvalidInputError, MediaStore
from mediastore import migrate as moves
from mediastore import testing as t

URL = "https://cdn.example/m/{}.jpg"


def _image(seed: int) -> bytes:
    return t.image_bytes("JPEG", size=(16 + seed, 16), color=(seed * 41 % 256, 60, 120))


def _fill(store: MediaStore, count: int) -> dict[str, bytes]:
    return {store.add_bytes(_image(i), url=URL.format(i)).md5: _image(i) for i in range(count)}


def _files(directory: Path) -> dict[str, bytes]:
    """md5 -> bytes of every file under a directory store's media/ (plain filesystem reads)."""
    media = directory / "media"
    return {p.name.split(".")[0]: p.read_bytes() for p in media.rglob("*") if p.is_file()}


def _moved(root: Path) -> set[str]:
    with sqlite3.connect(root / "catalog.sqlite3") as conn:
        return {m for (m,) in conn.execute("SELECT md5 FROM moved_blobs")}


def test_disk_to_disk_copies_checks_and_keeps_the_source(tmp_path: Path) -> None:
    target = tmp_path / "target"
    with MediaStore(tmp_path / "s") as store:
        stored = _fill(store, 6)
        report = store.migrate_store(str(target))
    assert report.finished and sorted(report.copied) == sorted(stored)
    assert _files(target) == stored  # every copy there, byte for byte
    assert _files(tmp_path / "s") == stored  # the source is kept unless asked
    assert _moved(tmp_path / "s") == set(stored)
    with MediaStore(tmp_path / "s", blob_url=str(target)) as moved:
        rec = moved.get_by_url(URL.format(3))
        assert rec is not None and rec.path is not None and rec.path.is_relative_to(target)
        assert sorted(moved.verify().ok) == sorted(stored)


def test_source_copies_are_deleted_only_when_asked(tmp_path: Path) -> None:
    target = tmp_path / "target"
    with MediaStore(tmp_path / "s") as store:
        stored = _fill(store, 4)
        report = store.migrate_store(str(target), delete_source=True)
    assert sorted(report.source_deleted) == sorted(stored)
    assert _files(tmp_path / "s") == {}
    assert _files(target) == stored


def _killed_migration(root: str, target: str, after: int) -> None:
    """A migration SIGKILLed once ``after`` files are recorded (batches of that size)."""
    moves.COPY_BATCH = after

    def progress(done: int, total: int) -> None:
        if done >= after:
            os.kill(os.getpid(), signal.SIGKILL)

    with MediaStore(root) as store:
        store.migrate_store(target, progress=progress)


def test_a_killed_migration_continues_where_it_stopped(tmp_path: Path) -> None:
    root, target = tmp_path / "s", tmp_path / "target"
    with MediaStore(root) as store:
        stored = _fill(store, 40)
    child = multiprocessing.get_context("fork").Process(
        target=_killed_migration, args=(str(root), str(target), 4)
    )
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    done_before = _moved(root)
    assert len(done_before) == 4
    with MediaStore(root) as store:
        report = store.migrate_store(str(target))
    assert report.finished and report.already == len(done_before)
    assert set(report.copied) == set(stored) - done_before
    assert _files(target) == stored


def test_reads_and_writes_work_during_a_move_and_new_content_goes_to_the_target(
    tmp_path: Path,
) -> None:
    root, target = tmp_path / "s", tmp_path / "target"
    with MediaStore(root) as store:
        stored = _fill(store, 6)
    child = multiprocessing.get_context("fork").Process(
        target=_killed_migration, args=(str(root), str(target), 2)
    )
    child.start()
    child.join(60)
    with MediaStore(root) as store:  # a store opened on the source during the move
        for i in range(6):  # every file reads, copied or not
            rec = store.get_by_url(URL.format(i))
            assert rec is not None
            with store.open(rec.md5) as fh:
                assert hashlib.md5(fh.read()).hexdigest() == rec.md5
        new = store.add_bytes(_image(50), url=URL.format(50))
    assert new.md5 in _files(target) and new.md5 not in _files(root)
    with MediaStore(root) as store:
        assert store.migrate_store(str(target)).finished
    assert set(_files(target)) == set(stored) | {new.md5}


@pytest.mark.parametrize("small_file", [moves.SMALL_FILE, 0], ids=["hashed whole", "staged"])
def test_a_source_copy_that_does_not_hash_right_is_not_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_file: int
) -> None:
    """Read whole and hashed in memory, or streamed through the ingest path: a source copy
    that does not hash to its row is reported, not copied, not recorded."""
    monkeypatch.setattr(moves, "SMALL_FILE", small_file)
    root, target = tmp_path / "s", tmp_path / "target"
    with MediaStore(root) as store:
        stored = _fill(store, 3)
        bad = sorted(stored)[0]
        rec = store.get_by_md5(bad)
        assert rec is not None and rec.path is not None
        rec.path.write_bytes(_image(99))  # damaged behind the store's back
        report = store.migrate_store(str(target))
    assert set(report.failed) == {bad} and "hashes to" in report.failed[bad]
    assert not report.finished
    assert bad not in _moved(root) and bad not in _files(target)
    assert set(_files(target)) == set(stored) - {bad}


def test_bad_moves_are_refused(tmp_path: Path) -> None:
    with MediaStore(tmp_path / "s") as store:
        _fill(store, 1)
        with pytest.raises(InvalidInputError, match="already"):
            store.migrate_store(str(tmp_path / "s"))
        store.catalog.start_move(store.blob_url, str(tmp_path / "one"), datetime.now(UTC))
        with pytest.raises(InvalidInputError, match="being moved to"):
            store.migrate_store(str(tmp_path / "other"))


def test_disk_to_s3_and_back(tmp_path: Path, s3_env: servers.S3Bucket) -> None:
    """Every object is in the bucket under the disk layout and hashes right (boto3), and
    the store moves back to a directory from there."""
    bucket = f"s3://{s3_env.name}/moved"
    with MediaStore(tmp_path / "s") as store:
        stored = _fill(store, 5)
        assert store.migrate_store(bucket, delete_source=True).finished
    client = s3_env.client
    for md5, data in stored.items():
        body = client.get_object(Bucket=s3_env.name, Key=f"moved/media/images/{md5}.jpg")
        assert body["Body"].read() == data
    assert _files(tmp_path / "s") == {}
    back = tmp_path / "back"
    with MediaStore(tmp_path / "s", blob_url=bucket) as store:
        rec = store.get_by_url(URL.format(2))
        assert rec is not None and rec.path is None
        assert store.migrate_store(str(back)).finished
    assert _files(back) == stored


def test_a_copy_replaces_what_no_row_refers_to_at_its_key(
    tmp_path: Path, s3_env: servers.S3Bucket
) -> None:
    """A move's PUT is not conditional: the row decides what its key holds. Objects left at
    the target's keys (other bytes, as a refused add leaves them; the same bytes, as a
    killed run leaves them) are replaced by the rows' content and the move finishes,
    where If-None-Match would have made each of the first a collision on every run."""
    client, prefix = s3_env.client, "moved/media/images"
    with MediaStore(tmp_path / "s") as store:
        stored = _fill(store, 4)
        md5s = sorted(stored)
        for md5 in md5s[:2]:
            client.put_object(Bucket=s3_env.name, Key=f"{prefix}/{md5}.jpg", Body=b"other",
                              Metadata={"sha256": "f" * 64})  # fmt: skip
        client.put_object(Bucket=s3_env.name, Key=f"{prefix}/{md5s[2]}.jpg",
                          Body=stored[md5s[2]])  # fmt: skip
        report = store.migrate_store(f"s3://{s3_env.name}/moved")
    assert report.finished and report.failed == {} and sorted(report.copied) == md5s
    for md5, data in stored.items():
        got = client.get_object(Bucket=s3_env.name, Key=f"{prefix}/{md5}.jpg")
        assert got["Body"].read() == data
        assert got["Metadata"] == {"sha256": hashlib.sha256(data).hexdigest()}


def test_batches_overlap_and_a_failed_recording_drops_every_claim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of 2, the next claimed and copying while one is recorded: progress counts
    every file once, in order; when recording the second batch fails, the error reaches the
    caller, no intent is left on any md5 (the batch that failed, the one queued behind it),
    and a rerun copies the rest."""
    monkeypatch.setattr(moves, "COPY_BATCH", 2)
    root, target = tmp_path / "s", tmp_path / "target"
    with MediaStore(root) as store:
        stored = _fill(store, 7)
        seen: list[tuple[int, int]] = []
        real = store.catalog.record_moved
        calls = 0

        def failing(*args: object, **kwargs: object) -> None:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise CatalogError("catalog went away")
            real(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(store.catalog, "record_moved", failing)
        with pytest.raises(CatalogError, match="went away"):
            store.migrate_store(str(target))
        assert len(_moved(root)) == 2
        with store.catalog.exclusive() as ex:
            assert ex.held(sorted(stored)) == set()
        monkeypatch.setattr(store.catalog, "record_moved", real)
        report = store.migrate_store(str(target), progress=lambda d, n: seen.append((d, n)))
    assert report.finished and len(report.copied) == 5 and report.already == 2
    assert seen == [(2, 5), (4, 5), (5, 5)]
    assert _moved(root) == set(stored) and set(_files(target)) == set(stored)
