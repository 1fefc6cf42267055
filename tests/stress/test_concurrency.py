"""Nothing lost under concurrency: six scenarios, on real processes and files.

Each scenario runs several ``MediaStore`` objects (in forked processes, or threads) on one
root with the real SQLite catalog, and judges the outcome with :mod:`checker`, which reads
the catalog with ``sqlite3`` and the files with ``hashlib``/``os`` and shares no code with
mediastore. Faults are only injected where they cannot be produced for real: a busy timeout
of 5 ms produces real lock failures.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import queue
import random
import shutil
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import checker
import pytest
from pytest_httpserver import HTTPServer

from mediastore import MediaStore
from mediastore import testing as t
from mediastore.errors import CatalogError, MediaStoreError, StorageError

FORK = mp.get_context("fork")
#: Seconds any barrier or child may wait before the test gives up on it (a hang is a failure).
WAIT = 60.0


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _start(procs: list[Any]) -> None:
    """Start forked children (a forking test process may have threads, e.g. a server)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for p in procs:
            p.start()


def _collect(procs: list[Any], out: Any, expected: int) -> list[Any]:
    """``expected`` messages from the children (read before joining: a queue feeder blocks)."""
    messages = []
    deadline = time.monotonic() + WAIT
    try:
        while len(messages) < expected:
            messages.append(out.get(timeout=max(0.1, deadline - time.monotonic())))
    except queue.Empty:
        pass
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()
            p.join()
    assert len(messages) == expected, (
        f"children sent {len(messages)} of {expected} results "
        f"(exit codes {[p.exitcode for p in procs]})"
    )
    return messages


def _list(problems: list[str], limit: int = 20) -> str:
    shown = "\n  ".join(problems[:limit])
    more = f"\n  ... and {len(problems) - limit} more" if len(problems) > limit else ""
    return f"{len(problems)} violation(s):\n  {shown}{more}"


def _flip_byte(path: Path, offset: int | None = None) -> None:
    """Damage a file in place: one byte inverted (the middle one by default)."""
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if offset is None else offset
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


# --- the checker itself -----------------------------------------------------------------------
def test_checker_detects_each_kind_of_violation(tmp_path: Path) -> None:
    """The independent checker flags a missing, a damaged and a symlinked file, and a stray one.

    (Every scenario below trusts it; this shows it can fail.)
    """
    root = tmp_path / "s"
    datas = [t.noisy_jpeg(seed=i) for i in range(4)]
    with MediaStore(root) as store:
        recs = [store.add_bytes(d, url=f"https://c.test/{i}") for i, d in enumerate(datas)]
    assert checker.check_i1(root) == []
    assert checker.check_stored(root, [r.md5 for r in recs]) == []
    assert checker.media_files_without_ok_row(root) == []
    assert checker.url_map(checker.catalog_path(root))["https://c.test/2"] == recs[2].md5
    recs[0].path.unlink()
    _flip_byte(recs[1].path)
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(datas[2])
    recs[2].path.unlink()
    recs[2].path.symlink_to(outside)
    stray = root / "media" / "images" / f"{'0' * 32}.jpg"
    stray.write_bytes(datas[3])
    problems = checker.check_i1(root)
    assert len(problems) == 3, problems
    assert "missing" in problems[[recs[0].md5 in p for p in problems].index(True)]
    assert "md5" in problems[[recs[1].md5 in p for p in problems].index(True)]
    assert "symlink" in problems[[recs[2].md5 in p for p in problems].index(True)]
    assert len(checker.check_stored(root, [r.md5 for r in recs])) == 3
    assert checker.media_files_without_ok_row(root) == [str(stray)]
    assert checker.check_forgotten(root, [recs[3].md5]) != []


# --- remove: the one way to forget ------------------------------------------------------------
def test_remove_forgets_content_and_urls_at_once(tmp_path: Path) -> None:
    """remove() returns the record; from then on lookups by md5 and URL miss, the catalog holds
    no ok row and no URL for it, the file is gone; the row stays 'removed' (without URLs) so
    that gc and reindex never adopt the content back, and a new add brings it back."""
    root = tmp_path / "s"
    data = t.noisy_jpeg(seed=7)
    urls = ["https://r.test/a.jpg", "https://r.test/b.jpg"]
    with MediaStore(root) as store:
        for url in urls:
            store.add_bytes(data, url=url)
        keep = store.add_bytes(t.noisy_jpeg(seed=8), url="https://r.test/keep.jpg")
        rec = store.remove(_md5(data))
        assert rec.md5 == _md5(data)
        assert store.get_by_md5(rec.md5) is None
        assert all(store.get_by_url(u) is None for u in urls)
        assert checker.check_forgotten(root, [rec.md5]) == []
        assert not os.path.lexists(rec.path), "no concurrent add: the file goes at once"
        store.gc()
        store.reindex()
        rows = checker.media_rows(checker.catalog_path(root))
        assert [r["md5"] for r in rows.values() if r["status"] == "removed"] == [rec.md5]
        assert checker.check_forgotten(root, [rec.md5]) == []
        assert checker.media_files_without_ok_row(root) == []
        assert checker.check_stored(root, [keep.md5]) == []
        again = store.add_bytes(data, url=urls[0])  # removed content can come back
        assert store.get_by_url(urls[0]) == again
    assert checker.check_stored(root, [again.md5]) == []
    assert checker.check_i1(root) == []


# --- 1. rm racing an add of the same, already stored content ---------------------------------
RACE_ROUNDS = 300


def _setup_url(r: int) -> str:
    return f"https://race.test/setup/{r}.png"


def _race_url(r: int) -> str:
    return f"https://race.test/race/{r}.png"


def _race_worker(
    role: str, root: Path, data: bytes, rounds: int, barrier: Any, out: Any, seed: int
) -> None:
    """Child: each round, (adder) make sure the content is stored, then add it again or
    (remover) remove it, both released by one barrier; report the outcome and wait for the
    parent's check."""
    rnd = random.Random(seed)
    jitter = 0.001 if role == "add" else 0.004  # who reaches the catalog first varies
    try:
        with MediaStore(root) as store:
            for r in range(rounds):
                if role == "add":
                    store.add_bytes(data, url=_setup_url(r))
                barrier.wait(WAIT)
                time.sleep(rnd.uniform(0, jitter))
                start = time.monotonic_ns()
                try:
                    if role == "add":
                        outcome = ("ok", store.add_bytes(data, url=_race_url(r)).md5)
                    else:
                        outcome = ("ok", store.remove(_md5(data)).md5)
                except Exception as exc:
                    outcome = ("error", f"{type(exc).__name__}: {exc}")
                out.put((role, r, start, time.monotonic_ns(), outcome))
                barrier.wait(WAIT)  # both done: the parent checks
                barrier.wait(WAIT)  # checked: next round
    except Exception:
        out.put((role, -1, 0, 0, ("crash", traceback.format_exc())))
        barrier.abort()


def _round_violations(root: Path, r: int, md5: str, results: dict[str, Any]) -> list[str]:
    """What is wrong after round ``r``: either order of add and remove is fine, if whole."""
    problems = [f"round {r}: {p}" for p in checker.check_i1(root)]
    for role in ("add", "remove"):
        _, _, _, _, (kind, value) = results[role]
        if kind != "ok":
            problems.append(f"round {r}: {role} failed: {value}")
        elif value != md5:
            problems.append(f"round {r}: {role} returned the record of {value}")
    db = checker.catalog_path(root)
    row = checker.media_rows(db).get(md5)
    urls = sorted(checker.urls_by_md5(db).get(md5, []))
    if row is not None and row["status"] == "ok":
        # the add came last: it re-created the content with its URL, the remove took the rest
        if urls != [_race_url(r)]:
            problems.append(f"round {r}: content ok after the add, but its URLs are {urls}")
    elif urls:
        problems.append(f"round {r}: content removed, but URLs still map to it: {urls}")
    return problems


@pytest.mark.timeout(180)
def test_rm_racing_an_add_of_the_same_content(tmp_path: Path) -> None:
    """Scenario 1: an add and a remove of stored content released together, 300 rounds in two
    processes: after every round I1 holds and the outcome is one of the two orders, whole (add
    last: row ok with its file and only the add's URL; remove last: no ok row, no URL)."""
    root = tmp_path / "s"
    data = t.image_bytes("PNG", size=(40, 30), color="teal")
    md5 = _md5(data)
    MediaStore(root).close()
    barrier = FORK.Barrier(3)
    out = FORK.Queue()
    procs = [
        FORK.Process(target=_race_worker, args=(role, root, data, RACE_ROUNDS, barrier, out, n))
        for n, role in enumerate(("add", "remove"))
    ]
    _start(procs)
    problems: list[str] = []
    outcomes = {"add-last": 0, "remove-last": 0}
    try:
        for r in range(RACE_ROUNDS):
            barrier.wait(WAIT)  # released together
            barrier.wait(WAIT)  # both done
            results = {}
            for _ in range(2):
                msg = out.get(timeout=WAIT)
                results[msg[0]] = msg
            problems += _round_violations(root, r, md5, results)
            row = checker.media_rows(checker.catalog_path(root)).get(md5)
            outcomes["add-last" if row and row["status"] == "ok" else "remove-last"] += 1
            barrier.wait(WAIT)  # checked
    except threading.BrokenBarrierError:
        crashes = []
        while True:
            try:
                crashes.append(out.get(timeout=1))
            except queue.Empty:
                break
        pytest.fail(f"a racer crashed: {[m[4] for m in crashes if m[1] == -1]}")
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in procs] == [0, 0]
    assert problems == [], f"{_list(problems)}\n(outcomes: {outcomes})"
    with MediaStore(root) as store:
        store.gc()
    assert checker.check_i1(root) == []
    assert checker.media_files_without_ok_row(root) == [], "gc left files of removed content"
    assert checker.temp_files(root) == []


# --- 2. a failed commit must not delete another writer's file --------------------------------
LOCKSTEP_WRITERS = 6
LOCKSTEP_ROUNDS = 250
#: How long a writer waits for the catalog's lock. At 20 ms a fast disk sees one or two lock
#: failures in a run; at 5 ms about 3% of the adds fail to get the lock, enough to exercise
#: the failed-commit path every run.
BUSY = 0.005


def _lockstep_writer(root: Path, n: int, images: list[bytes], barrier: Any, out: Any) -> None:
    """Child: each round, add the round's image (the same for every writer) after a barrier."""
    log: list[tuple[int, str, str]] = []  # (round, outcome, md5 or error)
    try:
        with MediaStore(root, busy_timeout=BUSY) as store:
            for r, data in enumerate(images):
                barrier.wait(WAIT)
                try:
                    rec = store.add_bytes(data, url=f"https://lock.test/{n}/{r}.jpg")
                    log.append((r, "ok", rec.md5))
                except CatalogError as exc:  # a lock timeout: allowed, nothing acknowledged
                    log.append((r, "catalog-error", str(exc)))
                except Exception as exc:
                    log.append((r, "failure", f"{type(exc).__name__}: {exc}"))
        out.put((n, "done", log))
    except Exception:
        out.put((n, "crash", traceback.format_exc()))
        barrier.abort()


@pytest.mark.timeout(180)
def test_failed_commit_never_deletes_another_writers_file(tmp_path: Path) -> None:
    """Scenario 2: 6 processes with busy_timeout=5 ms add the same new images in lock-step.
    Lock failures (CatalogError) are allowed; every add that returned a record leaves its row
    ok with its intact file and its URL mapped to it, and no other error occurs."""
    root = tmp_path / "s"
    images = [t.noisy_jpeg((96, 64), seed=2000 + r) for r in range(LOCKSTEP_ROUNDS)]
    MediaStore(root).close()
    barrier = FORK.Barrier(LOCKSTEP_WRITERS)
    out = FORK.Queue()
    procs = [
        FORK.Process(target=_lockstep_writer, args=(root, n, images, barrier, out))
        for n in range(LOCKSTEP_WRITERS)
    ]
    _start(procs)
    messages = _collect(procs, out, LOCKSTEP_WRITERS)
    crashes = [m[2] for m in messages if m[1] != "done"]
    assert crashes == []
    acked: dict[str, str] = {}  # url -> md5
    problems: list[str] = []
    lock_errors = 0
    for n, _, log in messages:
        for r, outcome, value in log:
            url = f"https://lock.test/{n}/{r}.jpg"
            if outcome == "ok":
                acked[url] = value
                if value != _md5(images[r]):
                    problems.append(f"{url}: returned the record of {value}")
            elif outcome == "catalog-error":
                lock_errors += 1
            else:
                problems.append(f"{url}: unexpected error {value}")
    problems += checker.check_stored(root, acked.values())
    urls = checker.url_map(checker.catalog_path(root))
    problems += [
        f"{url}: acknowledged for {md5} but maps to {urls.get(url)}"
        for url, md5 in sorted(acked.items())
        if urls.get(url) != md5
    ]
    problems += checker.check_i1(root)
    assert problems == [], (
        f"{_list(problems)}\n({len(acked)} acknowledged adds, {lock_errors} lock failures)"
    )


# --- 3. gc while writers add ------------------------------------------------------------------
GC_WRITER_THREADS = 8
GC_SECONDS = 8.0


def _gc_looper(root: Path, stop: Any, out: Any) -> None:
    """Child: run gc() back to back until told to stop."""
    runs, errors = 0, []
    try:
        with MediaStore(root) as store:
            while not stop.is_set():
                try:
                    report = store.gc()
                    runs += 1
                    if report.quarantined:
                        errors.append(f"gc quarantined {report.quarantined}")
                except Exception as exc:
                    errors.append(f"gc: {type(exc).__name__}: {exc}")
        out.put(("gc", runs, errors))
    except Exception:
        out.put(("gc", runs, [traceback.format_exc()]))


def _gc_writers(
    root: Path, shared: list[bytes], seconds: float, started: Any, stop: Any, out: Any
) -> None:
    """Child: 8 threads on one store adding shared images and distinct videos until time is up."""
    acked: list[tuple[str, str]] = []  # (url, md5)
    failures: list[str] = []
    lock = threading.Lock()
    try:
        with MediaStore(root) as store:

            def work(n: int) -> None:
                rnd = random.Random(n)
                i = 0
                while time.monotonic() < end:
                    i += 1
                    if rnd.random() < 0.5:
                        data = shared[rnd.randrange(len(shared))]
                    else:
                        data = t.mp4_bytes(1500, seed=1_000_000 * (n + 1) + i)
                    url = f"https://gc.test/{n}/{i}"
                    try:
                        rec = store.add_bytes(data, url=url)
                    except Exception as exc:
                        with lock:
                            failures.append(f"{url}: {type(exc).__name__}: {exc}")
                        continue
                    with lock:
                        acked.append((url, rec.md5))
                        if rec.md5 != _md5(data):
                            failures.append(f"{url}: got the record of {rec.md5}")

            started.wait(WAIT)  # the gc loop is running
            end = time.monotonic() + seconds
            threads = [threading.Thread(target=work, args=(n,)) for n in range(GC_WRITER_THREADS)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
        out.put(("writers", acked, failures))
    except Exception:
        out.put(("writers", acked, [traceback.format_exc()]))
    finally:
        stop.set()


@pytest.mark.timeout(180)
def test_gc_while_writers_add(tmp_path: Path) -> None:
    """Scenario 3: 8 threads add distinct and overlapping content while another process loops
    gc(): no add fails, gc never errs nor quarantines, I1 holds, every acknowledged add's row is
    ok with its intact file and its URL; afterwards no temp file is left."""
    root = tmp_path / "s"
    shared = [t.noisy_jpeg((32, 24), seed=3000 + i) for i in range(30)]
    MediaStore(root).close()
    stop, started = FORK.Event(), FORK.Event()
    out = FORK.Queue()

    def gc_then_signal(root: Path, stop: Any, out: Any) -> None:
        started.set()
        _gc_looper(root, stop, out)

    procs = [
        FORK.Process(target=gc_then_signal, args=(root, stop, out)),
        FORK.Process(target=_gc_writers, args=(root, shared, GC_SECONDS, started, stop, out)),
    ]
    _start(procs)
    messages = {m[0]: m for m in _collect(procs, out, 2)}
    _, gc_runs, gc_errors = messages["gc"]
    _, acked, failures = messages["writers"]
    problems = [f"add: {f}" for f in failures] + [f"gc: {e}" for e in gc_errors]
    problems += checker.check_i1(root)
    problems += checker.check_stored(root, [md5 for _, md5 in acked])
    urls = checker.url_map(checker.catalog_path(root))
    problems += [
        f"{u}: acknowledged for {m}, maps to {urls.get(u)}" for u, m in acked if urls.get(u) != m
    ]
    assert problems == [], f"{_list(problems)}\n({len(acked)} adds, {gc_runs} gc runs)"
    assert gc_runs > 5 and len(acked) > 500, "the race did not really run"
    with MediaStore(root) as store:
        final = store.gc()
    assert final.quarantined == [] and final.adopted == []
    assert checker.temp_files(root) == []
    assert checker.media_files_without_ok_row(root) == []


# --- 4. reindex keeps what the catalog knows about a damaged file -----------------------------
@pytest.fixture
def served_png(http: HTTPServer) -> tuple[bytes, list[str]]:
    """A PNG served by the loopback server at three URLs."""
    data = t.image_bytes("PNG", size=(48, 40), color=(10, 200, 30))
    urls = []
    for name in ("a", "b", "c"):
        http.expect_request(f"/png/{name}.png").respond_with_data(data, content_type="image/png")
        urls.append(http.url_for(f"/png/{name}.png"))
    return data, urls


def test_reindex_with_a_damaged_file_keeps_its_urls(
    make_store: Callable[..., MediaStore], tmp_path: Path, served_png: tuple[bytes, list[str]]
) -> None:
    """Scenario 4: one flipped byte in a stored PNG with 3 URLs, then reindex(): the row is
    marked corrupt (not dropped), its 3 URL rows and stats' URL count stay, the damaged file
    is in quarantine; verify(repair=True) downloads it again from those URLs."""
    data, urls = served_png
    store = make_store("s")
    root = store.root
    for url in urls:
        store.add_bytes(data, url=url)
    other = store.add_bytes(t.noisy_jpeg(seed=41), url="https://x.test/other.jpg")
    md5 = _md5(data)
    rec = store.get_by_md5(md5)
    assert rec is not None and store.stats().total_urls == 4
    _flip_byte(rec.path)
    damaged = rec.path.read_bytes()

    report = store.reindex()

    db = checker.catalog_path(root)
    row = checker.media_rows(db).get(md5)
    assert row is not None, f"reindex dropped the row of a damaged file: {report}"
    assert row["status"] == "corrupt", row
    assert sorted(checker.urls_by_md5(db).get(md5, [])) == sorted(urls)
    assert store.stats().total_urls == 4
    assert store.urls_for(md5) == urls
    assert not os.path.lexists(rec.path), "the damaged file stays where a good one belongs"
    in_quarantine = [Path(p).read_bytes() for p in checker.quarantined(root)]
    assert in_quarantine == [damaged]
    assert store.get_by_url(urls[0]) is None, "a damaged file is not served"
    assert checker.check_stored(root, [other.md5]) == []
    assert checker.check_i1(root) == []

    repaired = store.verify(repair=True)

    assert md5 in repaired.repaired and repaired.unrepaired == {}, repaired
    got = store.get_by_url(urls[1])
    assert got is not None and got.md5 == md5
    assert checker.check_stored(root, [md5, other.md5]) == []
    assert sorted(checker.urls_by_md5(db)[md5]) == sorted(urls)
    assert checker.check_i1(root) == []


# --- 5. symlinks inside the root are never followed -------------------------------------------
def _outside_tree(base: Path, link_at: str) -> tuple[Path, str]:
    """A directory outside the store, shaped like what a link at ``link_at`` would stand for,
    holding files a store following the link would adopt, quarantine, delete or hash.

    Returns the directory and the md5 of an image stored in it under its own name.
    """
    target = base / f"outside-{link_at.replace('/', '-')}"
    data = t.noisy_jpeg(seed=51)
    md5 = _md5(data)
    images = {"media/images": target, "media": target / "images"}.get(link_at)
    if images is not None:
        images.mkdir(parents=True)
        (images / f"{md5}.jpg").write_bytes(data)  # named by its content: adoptable
        (images / "holiday.jpg").write_bytes(t.noisy_jpeg(seed=52))  # misnamed: quarantinable
        if link_at == "media":
            (target / "videos").mkdir()
            (target / "documents").mkdir()
            (target / "videos" / f"{_md5(b'x')}.mp4").write_bytes(t.mp4_bytes(900, seed=53))
    else:
        target.mkdir(parents=True)
        # looks like an abandoned temp file (nobody holds it): gc would delete it
        (target / f"ingest-{'ab' * 16}.part").write_bytes(data)
        (target / f"{md5}.20260101T000000000000Z.jpg").write_bytes(data)
    return target, md5


LINKED_DIRS = ["media/images", "tmp", "quarantine", "media"]


@pytest.mark.parametrize("link_at", LINKED_DIRS)
def test_open_refuses_a_symlinked_store_directory(tmp_path: Path, link_at: str) -> None:
    """Scenario 5: a store whose ``media/images``, ``tmp``, ``quarantine`` or ``media`` is a
    symlink is refused at open (StorageError), and nothing in the link's target changes."""
    root = tmp_path / "s"
    with MediaStore(root) as store:
        store.add_bytes(t.noisy_jpeg(seed=50), url="https://l.test/1.jpg")
    target, _ = _outside_tree(tmp_path, link_at)
    if (root / link_at).exists():
        shutil.rmtree(root / link_at)
    (root / link_at).symlink_to(target, target_is_directory=True)
    before = checker.tree_snapshot(target)

    with pytest.raises(StorageError):
        MediaStore(root).close()

    assert checker.tree_snapshot(target) == before
    assert (root / link_at).is_symlink()


@pytest.mark.parametrize("link_at", LINKED_DIRS)
def test_symlink_made_while_open_is_never_followed(tmp_path: Path, link_at: str) -> None:
    """Scenario 5: a store directory replaced by a symlink while a store is open, then verify(),
    gc() and add_bytes() on that store (each may refuse with a MediaStoreError): nothing in the
    link's target is written, moved, deleted or adopted."""
    root = tmp_path / "s"
    store = MediaStore(root)
    try:
        store.add_bytes(t.noisy_jpeg(seed=54), url="https://l.test/good.jpg")
        bad = store.add_bytes(t.image_bytes("PNG", size=(30, 30), color="navy"))
        _flip_byte(bad.path)  # something for verify to quarantine
        target, _ = _outside_tree(tmp_path, link_at)
        before = checker.tree_snapshot(target)
        real = root / link_at
        if real.exists():
            real.rename(root / f"moved-{link_at.replace('/', '-')}")  # kept inside the root
        real.symlink_to(target, target_is_directory=True)
        outcomes = []
        for name, op in (
            ("verify", store.verify),
            ("gc", store.gc),
            ("add_bytes", lambda: store.add_bytes(t.noisy_jpeg(seed=55), url="https://l.test/n")),
        ):
            try:
                op()
                outcomes.append(f"{name}: ran")
            except MediaStoreError as exc:
                outcomes.append(f"{name}: refused ({type(exc).__name__})")
        assert checker.tree_snapshot(target) == before, f"target changed after {outcomes}"
    finally:
        store.close()


def _link_stored_file(tmp_path: Path, store: MediaStore, data: bytes) -> tuple[Path, Path]:
    """Store ``data``, then replace its file by a symlink to an outside copy of the same bytes."""
    rec = store.add_bytes(data, url="https://l.test/linked.jpg")
    outside = tmp_path / "outside" / "same.jpg"
    outside.parent.mkdir()
    outside.write_bytes(data)
    rec.path.unlink()
    rec.path.symlink_to(outside)
    return rec.path, outside


def test_verify_reports_a_symlink_at_a_stored_address(tmp_path: Path) -> None:
    """Scenario 5: a stored file replaced by a symlink to an outside file with the same bytes:
    verify() reports it corrupt (not a regular file, never hashed through), moves the link
    itself to quarantine, leaves the outside file alone; adding the content again puts a real
    file in place."""
    data = t.noisy_jpeg(seed=56)
    with MediaStore(tmp_path / "s") as store:
        address, outside = _link_stored_file(tmp_path, store, data)
        before = checker.tree_snapshot(outside.parent)
        report = store.verify(_md5(data))
        assert report.corrupt == [_md5(data)] and report.ok == [], report
        assert not os.path.lexists(address)
        moved = checker.quarantined(store.root)
        assert len(moved) == 1 and os.path.islink(moved[0]), moved
        assert checker.tree_snapshot(outside.parent) == before
        rec = store.add_bytes(data)
        assert rec.status == "ok"
    assert not os.path.islink(address) and address.is_file()
    assert checker.check_stored(tmp_path / "s", [_md5(data)]) == []
    assert checker.check_i1(tmp_path / "s") == []
    assert checker.tree_snapshot(outside.parent) == before


def test_add_replaces_a_symlink_at_a_stored_address(tmp_path: Path) -> None:
    """Scenario 5: with a symlink (to an outside file of the same bytes) where a stored file
    belongs, add_bytes of that content replaces the link by a real file; the outside file is
    untouched."""
    data = t.noisy_jpeg(seed=57)
    with MediaStore(tmp_path / "s") as store:
        address, outside = _link_stored_file(tmp_path, store, data)
        before = checker.tree_snapshot(outside.parent)
        rec = store.add_bytes(data, url="https://l.test/again.jpg")
        assert rec.md5 == _md5(data)
    assert not os.path.islink(address), "the dedup check trusted a symlink"
    assert checker.check_stored(tmp_path / "s", [_md5(data)]) == []
    assert checker.tree_snapshot(outside.parent) == before


def test_a_symlinked_root_is_fine(tmp_path: Path) -> None:
    """I4: the root itself may be a link (resolved once, at open): the store works through it
    and its files land in the real directory."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    with MediaStore(tmp_path / "link") as store:
        rec = store.add_bytes(t.noisy_jpeg(seed=58), url="https://l.test/root.jpg")
        assert store.verify().all_ok
        got = store.get_by_url("https://l.test/root.jpg")
        assert got is not None and got.md5 == rec.md5
    assert checker.check_stored(real, [rec.md5]) == []


# --- 6. reindex and gc agree on a file in the wrong typed directory ---------------------------
def test_reindex_and_gc_agree_on_a_file_in_the_wrong_directory(tmp_path: Path) -> None:
    """Scenario 6: a stored PNG copied to ``media/videos/<md5>.png``: reindex() reports it and
    it ends in quarantine (moved by reindex or by the next gc); after that gc() and reindex()
    report nothing, and the correctly placed file, its row and its URL are untouched."""
    root = tmp_path / "s"
    data = t.image_bytes("PNG", size=(36, 20), color="orange")
    with MediaStore(root) as store:
        rec = store.add_bytes(data, url="https://w.test/p.png")
        wrong = root / "media" / "videos" / f"{rec.md5}.png"
        shutil.copyfile(rec.path, wrong)
        db = checker.catalog_path(root)
        rows_before = checker.table_dump(db, "media_urls")
        media_before = {k: checker.media_rows(db)[rec.md5][k] for k in ("sha256", "size", "status")}
        images_before = checker.tree_snapshot(root / "media" / "images")

        first = store.reindex()
        assert str(wrong) in [p for p, _ in first.mismatched], first
        store.gc()
        assert not os.path.lexists(wrong), "the misplaced file is still in media/videos"
        assert data in [Path(p).read_bytes() for p in checker.quarantined(root)]

        again_gc = store.gc()
        again_reindex = store.reindex()
        assert (again_gc.quarantined, again_gc.adopted) == ([], []), again_gc
        assert again_reindex.mismatched == [], again_reindex
    assert checker.tree_snapshot(root / "media" / "images") == images_before
    assert checker.table_dump(db, "media_urls") == rows_before
    row = checker.media_rows(db)[rec.md5]
    assert {k: row[k] for k in ("sha256", "size", "status")} == media_before
    assert checker.check_i1(root) == []
    assert checker.media_files_without_ok_row(root) == []
