"""Fault and load tests: crashes at random moments, many writers, a full disk.

Bounded in time (a few tens of seconds in all); children are forked so that each crash trial
costs milliseconds, not an interpreter start-up.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import random
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import checker
import pytest
from pytest_httpserver import HTTPServer

from mediastore import MediaStore, MediaStoreError, StorageError
from mediastore import testing as t
from mediastore.hashing import md5_of_file

FORK = mp.get_context("fork")
CRASH_TRIALS = 60


def _served_images(httpserver: HTTPServer, count: int) -> list[str]:
    """``count`` distinct JPEGs on the loopback server; their URLs."""
    urls = []
    for i in range(count):
        httpserver.expect_request(f"/img/{i}.jpg").respond_with_data(
            t.noisy_jpeg((48, 32), seed=10_000 + i), content_type="image/jpeg"
        )
        urls.append(httpserver.url_for(f"/img/{i}.jpg"))
    return urls


def _ingest_forever(root: Path, sources: list[Path], urls: list[str], seed: int) -> None:
    """Child: add files, bytes and downloads in a loop until killed."""
    rnd = random.Random(seed)
    with MediaStore(root, allow_private_networks=True, retries=0) as store:
        while True:
            choice = rnd.random()
            if choice < 0.4:
                store.add_file(rnd.choice(sources), url=f"https://x.test/{rnd.randrange(200)}")
            elif choice < 0.7:
                store.add_bytes(t.mp4_bytes(rnd.randrange(1, 300_000), seed=rnd.randrange(10**6)))
            else:
                store.fetch(rnd.choice(urls), timeout=5)


def _assert_consistent(root: Path) -> None:
    """Every row's file is there and intact; every visible media file is complete."""
    with MediaStore(root) as store:
        for page in store.catalog.iter_media():
            for row in page:
                rec = store.get_by_md5(row.md5)
                assert rec is not None and rec.path.is_file(), f"row without file: {row.md5}"
                assert md5_of_file(rec.path) == row.md5, f"row with damaged file: {row.md5}"
    for path in t.files_under(root / "media"):
        assert md5_of_file(path) == path.stem, f"partial or wrong file visible: {path}"


def test_crash_at_random_moments_never_corrupts(tmp_path: Path, httpserver: HTTPServer) -> None:
    """SIGKILL mid-ingest (files, bytes, downloads), 60 times: no row without its intact file."""
    sources = []
    for i in range(6):
        src = tmp_path / f"src{i}.mp4"
        src.write_bytes(t.mp4_bytes(200_000 * (i + 1) if i < 5 else 12 << 20, seed=i))
        sources.append(src)
    urls = _served_images(httpserver, 20)
    root = tmp_path / "store"
    MediaStore(root).close()
    rnd = random.Random(20261125)
    for trial in range(CRASH_TRIALS):
        child = FORK.Process(target=_ingest_forever, args=(root, sources, urls, trial))
        child.start()
        time.sleep(rnd.uniform(0.05, 0.35))
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        assert child.exitcode == -signal.SIGKILL, "the child died before it was killed"
        _assert_consistent(root)
    with MediaStore(root) as store:
        assert store.stats().total_files > 10  # the children really ingested things
        report = store.gc()
        assert t.files_under(root / "tmp") == []
        assert report.quarantined == []
        assert store.verify().all_ok


def _writer(root: Path, worker: int, urls: list[str], errors: mp.Queue) -> None:  # type: ignore[type-arg]
    """Child: 8 threads adding shared and distinct content and fetching shared URLs."""
    try:
        with MediaStore(root, allow_private_networks=True) as store:
            failures: list[str] = []

            def thread_work(n: int) -> None:
                try:
                    for i in range(4):
                        store.add_bytes(
                            t.image_bytes("PNG", color="purple"),
                            url=f"https://s.test/{worker}/{n}/{i}",
                        )
                        store.add_bytes(t.mp4_bytes(2000, seed=worker * 1000 + n * 10 + i))
                        store.fetch(urls[(worker + n + i) % len(urls)], timeout=10)
                except Exception as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")

            threads = [threading.Thread(target=thread_work, args=(n,)) for n in range(8)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            for failure in failures:
                errors.put(failure)
    except Exception as exc:  # pragma: no cover - reported to the parent
        errors.put(f"{type(exc).__name__}: {exc}")


def test_many_processes_and_threads_at_once(tmp_path: Path, httpserver: HTTPServer) -> None:
    """8 processes x 8 threads adding and fetching: exact counts, no lock errors, all intact."""
    urls = _served_images(httpserver, 12)
    root = tmp_path / "store"
    MediaStore(root).close()
    errors: mp.Queue = FORK.Queue()  # type: ignore[type-arg]
    procs = [FORK.Process(target=_writer, args=(root, w, urls, errors)) for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    reported = []
    while not errors.empty():
        reported.append(errors.get())
    assert reported == []
    with MediaStore(root) as store:
        st = store.stats()
        # one shared PNG + 8*8*4 distinct MP4s + 12 distinct JPEGs
        assert st.total_files == 1 + 256 + 12
        assert st.total_urls == 256 + 12
        assert len(t.files_under(root / "media")) == st.total_files
        assert all(store.get_by_url(u) is not None for u in urls)
        assert store.verify().all_ok
    assert t.files_under(root / "tmp") == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs mounted for the test (needs root and mount; skipped otherwise)."""
    yield from _tmpfs(tmp_path, "3m")


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 5 MiB tmpfs for the store and its catalog together."""
    yield from _tmpfs(tmp_path, "5m")


def _tmpfs(tmp_path: Path, size: str) -> Iterator[Path]:
    mountpoint = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mountpoint.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root (an injected ENOSPC is tested instead)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mountpoint)],
        capture_output=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_full_disk(small_disk: Path, tmp_path: Path) -> None:
    """On a really full disk: a clear error, no row, no partial file, and the store goes on."""
    db_url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    with MediaStore(small_disk / "store", db_url=db_url) as store:
        stored = []
        with pytest.raises(StorageError, match="disk full"):
            for i in range(100):
                stored.append(store.add_bytes(t.mp4_bytes(400_000, seed=i)))
        assert 2 <= len(stored) < 10
        assert store.stats().total_files == len(stored)
        assert t.files_under(small_disk / "store" / "tmp") == []
        for path in t.files_under(small_disk / "store" / "media"):
            assert md5_of_file(path) == path.stem
        store.remove(stored[0].md5)
        again = store.add_bytes(t.mp4_bytes(1000, seed=999))
        assert store.verify().all_ok and store.get_by_md5(again.md5) is not None


def _fill(root: Path, seeds: list[int], start: Any, acked: mp.Queue) -> None:  # type: ignore[type-arg]
    """Child: add the shared contents in lock-step with the others until the disk is full."""
    with MediaStore(root, busy_timeout=0.005) as store:
        for seed in seeds:
            start.wait()
            # a full disk or a lock timeout raises: an add that did not return
            with contextlib.suppress(MediaStoreError):
                acked.put(store.add_bytes(t.mp4_bytes(60_000, seed=seed)).md5)
    acked.put(None)


def test_a_full_disk_under_concurrent_writers_loses_no_acknowledged_add(full_disk: Path) -> None:
    """4 processes add the same contents together on a tmpfs that fills up (store and catalog):
    commits fail with a full disk or a lock timeout, yet every add that returned keeps its row
    ok and its intact file (independent checker), and gc adopts what was left placed."""
    root = full_disk / "store"
    MediaStore(root).close()
    start = FORK.Barrier(4)
    acked: mp.Queue = FORK.Queue()  # type: ignore[type-arg]
    procs = [
        FORK.Process(target=_fill, args=(root, list(range(90)), start, acked)) for _ in range(4)
    ]
    for p in procs:
        p.start()
    returned: set[str] = set()
    finished = 0
    while finished < 4:
        md5 = acked.get(timeout=120)
        finished += md5 is None
        if md5 is not None:
            returned.add(md5)
    for p in procs:
        p.join(timeout=60)
    assert 5 <= len(returned) < 90, "the disk should fill up part of the way"
    assert checker.check_i1(root) == []
    assert checker.check_stored(root, returned) == []


def _open_and_add(root: Path, n: int, errors: mp.Queue) -> None:  # type: ignore[type-arg]
    """Child: open a store that may not exist yet and add one file."""
    try:
        with MediaStore(root) as store:
            store.add_bytes(t.mp4_bytes(500, seed=n))
    except Exception as exc:  # pragma: no cover - reported to the parent
        errors.put(f"{type(exc).__name__}: {exc}")


def test_processes_creating_the_same_store_at_once(tmp_path: Path) -> None:
    """6 processes opening one brand-new store together: one schema, every file recorded."""
    root = tmp_path / "new-store"
    errors: mp.Queue = FORK.Queue()  # type: ignore[type-arg]
    procs = [FORK.Process(target=_open_and_add, args=(root, n, errors)) for n in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert errors.empty()
    with MediaStore(root) as store:
        assert store.stats().total_files == 6
        assert store.verify().all_ok
