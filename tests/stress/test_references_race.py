"""References against their collection, on real processes: keys taken and dropped while
another process runs ``gc --unreferenced --grace 0`` over and over, and a collection
killed (SIGKILL) in its middle. On SQLite and disk, judged with :mod:`checker` (``sqlite3``
and ``hashlib`` only); on PostgreSQL and S3 (RADOS Gateway), each process with a root of
its own as separate hosts have, judged with :mod:`backend_checker` (plain SQL and boto3):
every reference names an ``ok`` row whose file or object is intact, and the counts agree."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import random
import signal
import threading
import time
import traceback
import warnings
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import checker
import pytest
import servers
from backend_checker import Backends

from mediastore import MediaNotFoundError, MediaStore, lifecycle
from mediastore import testing as t
from mediastore.catalog import Catalog

pytestmark = [pytest.mark.slow, pytest.mark.stress]

FORK = mp.get_context("fork")
NOW = timedelta(0)
#: Seconds the racing processes run.
RACE_SECONDS = 6.0


def content(i: int) -> bytes:
    return t.image_bytes("PNG", (8 + i % 7, 8 + i // 7), color=(i % 256, 40, 90))


def _start(procs: list[Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for p in procs:
            p.start()


def _open(root: str, shared: Backends | None, **options: Any) -> MediaStore:
    """A process's store: SQLite under ``root``, or the shared catalog and bucket."""
    if shared is not None:
        options.update(db_url=shared.db_url, blob_url=shared.blob_url)
    return MediaStore(root, **options)


def _taker(
    root: str,
    seed: int,
    count: int,
    out: Any,
    shared: Backends | None = None,
    threads: int = 1,
) -> None:
    """Take and drop keys on random content until time is up; report what it holds.

    A key taken by md5 may find its content collected (MediaNotFoundError): the content is
    then imported again with the key, as an importer would. With several ``threads`` on one
    store, adds that meet are recorded together (group commit): batches that take
    references on several files in one transaction, as the collection's tombstone does.
    """
    try:
        with _open(root, shared, busy_timeout=30) as store:
            results: list[tuple[dict[str, str], list[str], int]] = []
            errors: list[str] = []

            def run(sub: int) -> None:
                try:
                    mine = None if shared is None else shared.copy()
                    results.append(_take_and_drop(store, root, f"{seed}.{sub}", count, mine))
                except BaseException:
                    errors.append(traceback.format_exc())

            workers = [threading.Thread(target=run, args=(sub,)) for sub in range(threads)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
        if errors:
            out.put(("error", "\n".join(errors), 0))
            return
        held = {k: m for h, _, _ in results for k, m in h.items()}
        broken = [b for _, bs, _ in results for b in bs]
        gone = sum(g for _, _, g in results)
        out.put(("ok", held, gone) if not broken else ("error", "\n".join(broken[:20]), 0))
    except BaseException:
        out.put(("error", traceback.format_exc(), 0))


def _take_and_drop(
    store: MediaStore, root: str, seed: str, count: int, shared: Backends | None
) -> tuple[dict[str, str], list[str], int]:
    rng = random.Random(seed)
    held: dict[str, str] = {}
    broken: list[str] = []
    gone = 0
    end = time.monotonic() + RACE_SECONDS
    n = 0
    while time.monotonic() < end:
        n += 1
        i = rng.randrange(count)
        key = f"p{seed}:{n}"
        if rng.random() < 0.5:
            try:
                md5 = store.add_ref(key, t_md5(i)).md5
            except MediaNotFoundError:
                gone += 1
                md5 = store.add_bytes(content(i), ref=key).md5
        else:
            md5 = store.add_bytes(content(i), ref=key).md5
        held[key] = md5
        while len(held) > 2:  # few keys held: content keeps becoming collectable
            victim = rng.choice(sorted(held))
            if shared is None:
                broken += _held_problem(root, victim, held[victim])
            else:
                broken += shared.held_problem(victim, held[victim])
            store.drop_ref(victim)
            del held[victim]
    if shared is not None:
        shared.close()
    return held, broken, gone


def _held_problem(root: str, key: str, md5: str) -> list[str]:
    """Why the content a key still holds is not stored intact, read with sqlite3 and
    hashlib (the checker), or nothing."""
    row = checker.media_rows(checker.catalog_path(root)).get(md5)
    if row is None or row["status"] != "ok":
        return [f"{key} holds {md5}, whose row is {row and row['status']!r}"]
    problem = checker.file_problem(checker.address(root, row), row)
    return [f"{key} holds {md5}, whose file {problem}"] if problem else []


def t_md5(i: int) -> str:
    return hashlib.md5(content(i)).hexdigest()


def _collector(root: str, out: Any, shared: Backends | None = None) -> None:
    """``gc --unreferenced --grace 0`` over and over until time is up.

    Its decision (the read of what is unreferenced) is followed by a pause of up to 20 ms,
    as on a loaded host: the keys taken in that window are the ones its tombstone must
    see, and without the pause the window is too short to be met often.
    """
    try:
        removed = 0
        decide = Catalog.unreferenced

        def slow_decision(self: Catalog, grace_seconds: int) -> list[str]:
            found = decide(self, grace_seconds)
            time.sleep(random.random() * 0.02)
            return found

        Catalog.unreferenced = slow_decision  # type: ignore[method-assign]
        with _open(root, shared, busy_timeout=30) as store:
            end = time.monotonic() + RACE_SECONDS
            while time.monotonic() < end:
                removed += len(store.gc(unreferenced=True, grace=NOW).unreferenced)
        out.put(("ok", removed, 0))
    except BaseException:
        out.put(("error", traceback.format_exc(), 0))


def _results(procs: list[Any], out: Any) -> list[tuple[str, Any, int]]:
    got = [out.get(timeout=RACE_SECONDS + 120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    errors = [detail for status, detail, _ in got if status == "error"]
    assert not errors, "\n".join(errors)
    return got


def _held_and_removed(results: list[tuple[str, Any, int]]) -> tuple[dict[str, str], int]:
    """The keys the takers held at the end (key -> md5), and the collector's removals."""
    held = {
        key: md5
        for _, detail, _ in results
        if isinstance(detail, dict)
        for key, md5 in detail.items()
    }
    removed = sum(detail for _, detail, _ in results if isinstance(detail, int))
    return held, removed


def test_keys_taken_while_gc_collects_never_lose_their_content(tmp_path: Path) -> None:
    """Three processes take and drop keys on 12 contents while a fourth collects
    unreferenced content with no grace period, over and over: afterwards every key names
    an ok row whose file hashes right, every key a process holds is there, the counts
    match the rows, and collections did happen."""
    root = tmp_path / "store"
    count = 12
    with MediaStore(root) as store:  # every content referenced once, then not: collectable
        for i in range(count):
            store.add_bytes(content(i), ref="seed")
        store.drop_ref("seed")
    out = FORK.Queue()
    procs = [FORK.Process(target=_taker, args=(str(root), seed, count, out)) for seed in range(3)]
    procs.append(FORK.Process(target=_collector, args=(str(root), out)))
    _start(procs)
    results = _results(procs, out)
    held, removed = _held_and_removed(results)
    db = checker.catalog_path(root)
    refs = dict(checker.ref_rows(db))
    problems = checker.check_references(root) + checker.check_i1(root)
    problems += [f"{k} -> {m}: held, but not in refs" for k, m in held.items() if refs.get(k) != m]
    assert not problems, "\n".join(problems[:20])

    assert removed > 0, "the collector never removed anything: no race was run"
    assert held, "the takers hold nothing: no race was run"


def _killed_collector(root: str, page: int, shared: Backends | None = None) -> None:
    """A gc --unreferenced that SIGKILLs itself after its second page was tombstoned and
    before its files are collected: the worst moment."""
    lifecycle.UNREFERENCED_PAGE = page
    pages = 0
    collect = lifecycle.Lifecycle.collect

    def dying(self: lifecycle.Lifecycle, md5s: Any = None) -> list[str]:
        nonlocal pages
        if md5s is not None:
            pages += 1
            if pages == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        return collect(self, md5s)

    lifecycle.Lifecycle.collect = dying  # type: ignore[method-assign]
    with _open(root, shared) as store:
        store.gc(unreferenced=True, grace=NOW)


def test_sigkill_in_the_middle_of_a_collection_loses_nothing_referenced(
    tmp_path: Path,
) -> None:
    """A collection killed between a tombstone and its deletions leaves removed rows whose
    files are still there and every referenced file intact; the next gc finishes it."""
    root = tmp_path / "store"
    with MediaStore(root) as store:
        for i in range(60):
            store.add_bytes(content(i), ref=f"post:{i % 3}")
        kept = [r.md5 for r in store.media_for("post:0")]
        store.drop_ref("post:1")
        store.drop_ref("post:2")
    child = FORK.Process(target=_killed_collector, args=(str(root), 10))
    _start([child])
    child.join(timeout=120)
    assert child.exitcode == -signal.SIGKILL
    half_done = checker.removed_with_file(root)
    assert half_done, "the kill came after the collection: nothing half-done to finish"
    problems = checker.check_references(root) + checker.check_i1(root)
    rows = checker.media_rows(checker.catalog_path(root))
    problems += [
        f"{m}: referenced, now {rows[m]['status']}" for m in kept if rows[m]["status"] != "ok"
    ]
    assert not problems, "\n".join(problems)
    with MediaStore(root) as store:
        store.gc()  # finishes the removals: no --unreferenced needed
        assert checker.removed_with_file(root) == []
        report = store.gc(unreferenced=True, grace=NOW)  # and the pages never reached
        assert len(report.unreferenced) + len(half_done) <= 40
        assert sorted(r.md5 for r in store.media_for("post:0")) == sorted(kept)
    rows = checker.media_rows(checker.catalog_path(root))
    assert sum(r["status"] == "removed" for r in rows.values()) == 40
    assert not checker.check_references(root) + checker.check_i1(root)
    assert checker.removed_with_file(root) == []


# --- The same on PostgreSQL and S3: each process a host with a root of its own --------------
@pytest.fixture
def shared(pg_url: str, s3_env: servers.S3Bucket) -> Iterator[Backends]:
    """A new PostgreSQL catalog and a prefix in a new bucket, with the checker's keys."""
    backends = Backends(
        db_url=pg_url,
        bucket=s3_env.name,
        prefix="refs",
        endpoint=s3_env.endpoint,
        access_key=s3_env.access_key,
        secret_key=s3_env.secret_key,
        region=s3_env.region,
    )
    yield backends
    backends.close()


def test_keys_taken_while_gc_collects_on_postgresql_and_s3(
    tmp_path: Path, shared: Backends
) -> None:
    """Three hosts (three threads each, so adds are recorded in batches) take and drop keys
    on 12 contents while a fourth collects unreferenced content with no grace period, over
    and over, on one PostgreSQL catalog and one bucket:
    afterwards every key names an ok row whose object hashes right, every key a host holds
    is there, the counts match the rows, no object is left without its row, and
    collections did happen."""
    count = 12
    with _open(str(tmp_path / "seeder"), shared) as store:
        for i in range(count):
            store.add_bytes(content(i), ref="seed")
        store.drop_ref("seed")
    out = FORK.Queue()
    procs = [
        FORK.Process(target=_taker, args=(str(tmp_path / f"host{s}"), s, count, out, shared, 3))
        for s in range(3)
    ]
    procs.append(FORK.Process(target=_collector, args=(str(tmp_path / "gc"), out, shared)))
    _start(procs)
    results = _results(procs, out)
    held, removed = _held_and_removed(results)
    refs = dict(shared.ref_rows())
    problems = shared.check_references() + shared.check_ok_objects()
    problems += [f"{k} -> {m}: held, but not in refs" for k, m in held.items() if refs.get(k) != m]
    assert not problems, "\n".join(problems[:20])
    assert removed > 0, "the collector never removed anything: no race was run"
    assert held, "the hosts hold nothing: no race was run"
    with _open(str(tmp_path / "final"), shared) as store:
        store.gc()  # a file a writer held during its collection waits for gc
    assert shared.removed_with_object() == [] and shared.stray_objects() == []
    assert not shared.check_references() + shared.check_ok_objects()


def test_sigkill_in_the_middle_of_a_collection_on_postgresql_and_s3(
    tmp_path: Path, shared: Backends
) -> None:
    """A collection on PostgreSQL and S3 killed between a tombstone and its deletions
    leaves removed rows whose objects are still there and every referenced object intact;
    the next gc, on another host, finishes it."""
    with _open(str(tmp_path / "seeder"), shared) as store:
        for i in range(60):
            store.add_bytes(content(i), ref=f"post:{i % 3}")
        kept = [r.md5 for r in store.media_for("post:0")]
        store.drop_ref("post:1")
        store.drop_ref("post:2")
    child = FORK.Process(target=_killed_collector, args=(str(tmp_path / "gc"), 10, shared))
    _start([child])
    child.join(timeout=180)
    assert child.exitcode == -signal.SIGKILL
    half_done = shared.removed_with_object()
    assert half_done, "the kill came after the collection: nothing half-done to finish"
    rows = shared.media_rows()
    problems = shared.check_references() + shared.check_ok_objects()
    problems += [
        f"{m}: referenced, now {rows[m]['status']}" for m in kept if rows[m]["status"] != "ok"
    ]
    assert not problems, "\n".join(problems)
    with _open(str(tmp_path / "next"), shared) as store:
        store.gc()  # finishes the removals: no --unreferenced needed
        assert shared.removed_with_object() == []
        report = store.gc(unreferenced=True, grace=NOW)  # and the pages never reached
        assert len(report.unreferenced) + len(half_done) <= 40
        assert sorted(r.md5 for r in store.media_for("post:0")) == sorted(kept)
    rows = shared.media_rows()
    assert sum(r["status"] == "removed" for r in rows.values()) == 40
    assert not shared.check_references() + shared.check_ok_objects()
    assert shared.removed_with_object() == [] and shared.stray_objects() == []
