"""Randomized stress test of the blob lifecycle: every operation at once, then an
independent check of what every process says was acknowledged.

3 processes x 3 threads (one ``MediaStore`` per process, shared by its threads) run
``add_file``, ``add_bytes``, ``fetch`` (from a loopback server), ``remove``, ``gc``,
``verify`` and ``reindex`` on a pool of 40 small real images for a bounded time:
``MEDIASTORE_STRESS_SECONDS`` (default 60 when ``CI`` is set, else 15). Each thread logs
every operation with ``time.monotonic_ns()`` at its start and end (CLOCK_MONOTONIC is one
clock for all processes on Linux), its kind, md5, URL and outcome.

Afterwards :mod:`checker` (sqlite3, hashlib, os; no mediastore code) judges the store. With
*ack* meaning "returned without an error":

- I1: every row with status ``ok`` has its intact regular file at its address.
- Kept (I2): if an ack add A of content X (``add_file``/``add_bytes``/``fetch``) started
  after every ack ``remove`` of X had ended, X has an ``ok`` row with its intact file, and A's
  URL maps to X, unless an ack add of other content with that URL ended after A started.
- Forgotten (I5): if an ack ``remove`` R of X started after every ack add of X had ended, X
  has no ``ok`` row and no URL row.
- No unexpected error: only ``MediaNotFoundError`` from removing content that is not stored
  is expected (a lock timeout at the default busy timeout is a failure); gc never
  quarantines, verify never finds a file corrupt and reindex never finds one misnamed (no
  one damages files here).
- The rules above and I1 are also checked mid-run, every 2.5 s, while every thread waits at a
  barrier after its current operation: a violation that later operations would heal (a row
  ok without its file, re-added by the next add) is caught too.
- After the workers stop and a final ``gc()``: the two rules above still hold, no temp file
  is left, nothing is in quarantine, no ``removed`` row has a URL, and every file under ``media/``
  is the file of an ``ok`` row (files of removed content deleted, orphans adopted).

The figures (operations of each kind and outcome, violations, acknowledged adds per second)
are recorded with ``record_property("stress", ...)`` (in ``--junitxml`` output), written to
``stress-report.json`` in the test's tmp_path, and to ``$MEDIASTORE_STRESS_REPORT`` if set.

A hypothesis state machine (:class:`LifecycleModel`) complements it: sequential random
programs on one store, checked step by step against a model of the protocol.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import random
import shutil
import tempfile
import threading
import time
import traceback
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import checker
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from pytest_httpserver import HTTPServer

from mediastore import MediaStore
from mediastore import testing as t
from mediastore.errors import MediaNotFoundError

FORK = mp.get_context("fork")
STRESS_SECONDS = float(
    os.environ.get("MEDIASTORE_STRESS_SECONDS") or (60 if os.environ.get("CI") else 15)
)
PROCESSES = 3
THREADS = 3
POOL = 40
SHARED_LABELS = 12  # URL labels that several adds give to different content
ADD_KINDS = frozenset({"add_file", "add_bytes", "fetch"})
#: Relative frequency of each operation.
WEIGHTS = {
    "add_bytes": 26, "add_file": 18, "fetch": 18, "remove": 26, "gc": 5, "verify": 4,
    "reindex": 3,
}  # fmt: skip
START_DELAY_NS = 2_000_000_000  # every worker is forked and has its store open by then
#: Every so often all threads pause (after their current operation) and the parent checks the
#: store mid-run: a violation that later operations would heal is caught too.
CHECKPOINT_SECONDS = 2.5
BARRIER_WAIT = 120.0


def _pool() -> list[tuple[bytes, str]]:
    """40 distinct small images: 30 JPEGs and 10 PNGs (data, extension)."""
    items = [(t.noisy_jpeg((48, 32), seed=5000 + i), "jpg") for i in range(30)]
    items += [
        (t.image_bytes("PNG", size=(12 + i, 9 + 2 * i), color=(20 * i, 90, 250 - 9 * i)), "png")
        for i in range(POOL - 30)
    ]
    return items


Op = dict[str, Any]


def _thread_ops(
    store: MediaStore, p: int, n: int, items: list[dict[str, Any]], plan: dict[str, Any],
    barrier: Any, log_path: Path,
) -> None:  # fmt: skip
    """One worker thread: random operations until ``plan["until"]``, each logged (JSON lines,
    flushed at each checkpoint, where every thread waits while the parent checks)."""
    rnd = random.Random(1000 * p + n)
    kinds, weights = zip(*WEIGHTS.items(), strict=True)
    seq = 0
    log: list[Op] = []
    checkpoints = list(plan["checkpoints"])
    with log_path.open("a") as out:
        while True:
            now = time.monotonic_ns()
            if checkpoints and now >= checkpoints[0]:
                checkpoints.pop(0)
                out.writelines(json.dumps(op) + "\n" for op in log)
                out.flush()
                log.clear()
                barrier.wait(BARRIER_WAIT)  # quiet: the parent checks now
                barrier.wait(BARRIER_WAIT)  # checked: go on
                continue
            if now >= plan["until"]:
                break
            seq += 1
            log.append(_one_op(store, p, n, seq, rnd, kinds, weights, items))
        out.writelines(json.dumps(op) + "\n" for op in log)


def _one_op(
    store: MediaStore, p: int, n: int, seq: int, rnd: random.Random, kinds: Any, weights: Any,
    items: list[dict[str, Any]],
) -> Op:  # fmt: skip
    """Pick and run one random operation; its log entry."""
    kind = rnd.choices(kinds, weights)[0]
    item = items[rnd.randrange(len(items))]
    op: Op = {"kind": kind, "md5": None, "url": None, "outcome": "ok", "error": None}
    if kind in ("add_bytes", "add_file"):
        op["md5"] = item["md5"]
        op["url"] = (
            f"https://stress.test/shared/{rnd.randrange(SHARED_LABELS)}"
            if rnd.random() < 0.4
            else f"https://stress.test/p{p}/t{n}/{seq}"
        )
    elif kind == "fetch":
        op["md5"], op["url"] = item["md5"], item["url"]
    elif kind == "remove":
        op["md5"] = item["md5"]
    op["start"] = time.monotonic_ns()
    try:
        op.update(_run(store, kind, item, op["url"]))
    except MediaNotFoundError as exc:
        if kind == "remove":
            op["outcome"] = "not-stored"  # expected: someone removed it first
        else:
            op["outcome"], op["error"] = "failure", f"MediaNotFoundError: {exc}"
    except Exception as exc:
        op["outcome"], op["error"] = "failure", f"{type(exc).__name__}: {exc}"
    op["end"] = time.monotonic_ns()
    return op


def _run(store: MediaStore, kind: str, item: dict[str, Any], url: str | None) -> dict[str, Any]:
    """Do one operation; what to log about its result."""
    if kind == "add_bytes":
        return _got(store.add_bytes(item["data"], url=url).md5, item)
    if kind == "add_file":
        return _got(store.add_file(item["path"], url=url).md5, item)
    if kind == "fetch":
        return _got(store.fetch(item["url"], timeout=15).md5, item)
    if kind == "remove":
        return _got(store.remove(item["md5"]).md5, item)
    if kind == "gc":
        return {"report": store.gc().to_dict()}
    if kind == "verify":
        return {"report": store.verify().to_dict()}
    assert kind == "reindex"
    return {"report": store.reindex().to_dict()}


def _got(md5: str, item: dict[str, Any]) -> dict[str, Any]:
    if md5 != item["md5"]:
        return {"outcome": "failure", "error": f"returned the record of {md5}"}
    return {}


def _worker_process(
    p: int, root: Path, items: list[dict[str, Any]], plan: dict[str, Any], barrier: Any,
    logs: Path,
) -> None:  # fmt: skip
    """Child: THREADS threads sharing one store, each logging to ``logs/<p>-<n>.jsonl``; a
    crash is written to ``logs/crash-<p>.txt``."""
    try:
        with MediaStore(root, allow_private_networks=True, retries=2, backoff_factor=0.05) as s:
            time.sleep(max(0.0, (plan["start"] - time.monotonic_ns()) / 1e9))
            errors: list[str] = []

            def thread(n: int) -> None:
                try:
                    _thread_ops(s, p, n, items, plan, barrier, logs / f"{p}-{n}.jsonl")
                except Exception:
                    errors.append(traceback.format_exc())
                    barrier.abort()

            threads = [threading.Thread(target=thread, args=(n,)) for n in range(THREADS)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            if errors:
                raise RuntimeError("\n".join(errors))
    except Exception:
        (logs / f"crash-{p}.txt").write_text(traceback.format_exc())
        barrier.abort()


def _read_logs(logs: Path) -> list[Op]:
    return [
        json.loads(line)
        for path in sorted(logs.glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


# --- the judgement ----------------------------------------------------------------------------
def protocol_violations(root: Path, ops: list[Op]) -> list[str]:
    """The "kept" and "forgotten" rules (see the module docstring) against the catalog."""
    adds: dict[str, list[Op]] = defaultdict(list)
    removes: dict[str, list[Op]] = defaultdict(list)
    by_url: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        if op["outcome"] != "ok":
            continue
        if op["kind"] in ADD_KINDS:
            adds[op["md5"]].append(op)
            by_url[op["url"]].append(op)
        elif op["kind"] == "remove":
            removes[op["md5"]].append(op)
    urls = checker.url_map(checker.catalog_path(root))
    must_keep, must_forget, problems = [], [], []
    for md5 in sorted(set(adds) | set(removes)):
        kept = [a for a in adds[md5] if all(r["end"] < a["start"] for r in removes[md5])]
        if kept:
            must_keep.append(md5)
        for a in kept:
            remapped = any(b["md5"] != md5 and b["end"] > a["start"] for b in by_url[a["url"]])
            if not remapped and urls.get(a["url"]) != md5:
                problems.append(
                    f"{md5}: acknowledged {a['kind']} of {a['url']} after every remove, "
                    f"but that URL maps to {urls.get(a['url'])}"
                )
        if any(all(a["end"] < r["start"] for a in adds[md5]) for r in removes[md5]):
            must_forget.append(md5)
    problems += checker.check_stored(root, must_keep)
    problems += checker.check_forgotten(root, must_forget)
    return problems


def report_violations(ops: list[Op]) -> list[str]:
    """Unexpected errors, and maintenance reports that can only come from a bug here."""
    problems = [
        f"{op['kind']} {op['md5'] or ''} {op['url'] or ''}: {op['error']}".replace("  ", " ")
        for op in ops
        if op["outcome"] == "failure"
    ]
    for op in ops:
        report = op.get("report") or {}
        for key in ("quarantined", "corrupt", "mismatched"):
            if report.get(key):
                problems.append(f"{op['kind']} reported {key}: {report[key]}")
    return problems


def figures(ops: list[Op], seconds: float, violations: int) -> dict[str, Any]:
    """Counts of each kind and outcome, and throughput."""
    counts = Counter(f"{op['kind']}:{op['outcome']}" for op in ops)
    acked_adds = sum(1 for op in ops if op["kind"] in ADD_KINDS and op["outcome"] == "ok")
    return {
        "seconds": round(seconds, 2),
        "processes": PROCESSES,
        "threads_per_process": THREADS,
        "operations": len(ops),
        "by_kind_and_outcome": dict(sorted(counts.items())),
        "acknowledged_adds": acked_adds,
        "adds_per_second": round(acked_adds / seconds, 1) if seconds else 0.0,
        "operations_per_second": round(len(ops) / seconds, 1) if seconds else 0.0,
        "violations": violations,
    }


def _publish(
    report: dict[str, Any], tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    record_property("stress", json.dumps(report, sort_keys=True))
    text = json.dumps(report, indent=2, sort_keys=True)
    (tmp_path / "stress-report.json").write_text(text)
    if target := os.environ.get("MEDIASTORE_STRESS_REPORT"):
        Path(target).write_text(text)


def _summary(found: dict[str, list[str]], limit: int = 8) -> str:
    """Each check's count of violations and its first few."""
    lines = []
    for category, items in found.items():
        lines.append(f"{category}: {len(items)}")
        lines += [f"    {item}" for item in items[:limit]]
    return "\n  ".join(lines)


@pytest.mark.timeout(STRESS_SECONDS + 180)
def test_stress_every_operation_at_once(
    tmp_path: Path, http: HTTPServer, record_property: Callable[[str, object], None]
) -> None:
    """3 processes x 3 threads run add_file/add_bytes/fetch/remove/gc/verify/reindex on 40
    shared images for MEDIASTORE_STRESS_SECONDS: 0 unexpected errors, and I1, "kept" (I2)
    and "forgotten" (I5) hold for what was acknowledged, before and after a final gc, which
    leaves no temp file, no quarantined file, no removed row with URLs and no file without an ok
    row."""
    sources = tmp_path / "src"
    sources.mkdir()
    items = []
    for i, (data, ext) in enumerate(_pool()):
        path = sources / f"{i}.{ext}"
        path.write_bytes(data)
        mime = "image/jpeg" if ext == "jpg" else "image/png"
        http.expect_request(f"/pool/{i}.{ext}").respond_with_data(data, content_type=mime)
        items.append({"data": data, "path": str(path), "url": http.url_for(f"/pool/{i}.{ext}"),
                      "md5": hashlib.md5(data).hexdigest()})  # fmt: skip
    assert len({it["md5"] for it in items}) == POOL
    root = tmp_path / "store"
    MediaStore(root).close()
    start_ns = time.monotonic_ns() + START_DELAY_NS
    until_ns = start_ns + int(STRESS_SECONDS * 1e9)
    step = int(CHECKPOINT_SECONDS * 1e9)
    plan = {"start": start_ns, "until": until_ns,
            "checkpoints": list(range(start_ns + step, until_ns, step))}  # fmt: skip
    logs = tmp_path / "logs"
    logs.mkdir()
    barrier = FORK.Barrier(PROCESSES * THREADS + 1)
    procs = [
        FORK.Process(target=_worker_process, args=(p, root, items, plan, barrier, logs))
        for p in range(PROCESSES)
    ]
    with warnings.catch_warnings():  # the loopback server's threads run in this process
        warnings.simplefilter("ignore", DeprecationWarning)
        for proc in procs:
            proc.start()
    midway: list[str] = []
    try:
        for k in range(len(plan["checkpoints"])):
            barrier.wait(BARRIER_WAIT)
            so_far = _read_logs(logs)
            midway += [f"checkpoint {k}: I1: {v}" for v in checker.check_i1(root)]
            midway += [f"checkpoint {k}: {v}" for v in protocol_violations(root, so_far)]
            barrier.wait(BARRIER_WAIT)
    except threading.BrokenBarrierError:
        pass  # a worker crashed: reported below
    for proc in procs:
        proc.join(timeout=STRESS_SECONDS + 120)
        if proc.is_alive():
            proc.kill()
            proc.join()
    elapsed = (time.monotonic_ns() - start_ns) / 1e9
    crashes = [path.read_text() for path in sorted(logs.glob("crash-*.txt"))]
    assert crashes == [], crashes
    assert [proc.exitcode for proc in procs] == [0] * PROCESSES
    ops = _read_logs(logs)

    found: dict[str, list[str]] = {
        "unexpected errors and reports": report_violations(ops),
        "I1": checker.check_i1(root),
        "kept/forgotten": protocol_violations(root, ops),
        "at checkpoints (all threads paused)": midway,
    }
    with MediaStore(root) as store:
        store.gc()
    rows = checker.media_rows(checker.catalog_path(root))
    found["after the final gc"] = [
        *checker.check_i1(root),
        *protocol_violations(root, ops),
        *(f"temp file left: {p}" for p in checker.temp_files(root)),
        *(f"quarantined: {p}" for p in checker.quarantined(root)),
        *(f"file without an ok row: {p}" for p in checker.media_files_without_ok_row(root)),
        *(
            f"{md5}: 'removed' with URLs"
            for md5, r in rows.items()
            if r["status"] == "removed"
            and md5 in checker.url_map(checker.catalog_path(root)).values()
        ),
    ]
    problems = [f"{category}: {p}" for category, items in found.items() for p in items]

    report = figures(ops, min(elapsed, STRESS_SECONDS), len(problems))
    report["violations_by_check"] = {category: len(items) for category, items in found.items()}
    report["violation_list"] = [p for items in found.values() for p in items[:50]]
    _publish(report, tmp_path, record_property)
    assert problems == [], (
        f"{len(problems)} violation(s):\n  {_summary(found)}\n"
        f"operations: {json.dumps(report['by_kind_and_outcome'])}"
    )
    attempted = {op["kind"] for op in ops}
    assert attempted == set(WEIGHTS), f"operations that never ran: {set(WEIGHTS) - attempted}"


# --- the protocol as a state machine (hypothesis) ---------------------------------------------
MODEL_POOL = [t.noisy_jpeg((24, 16), seed=7000 + i) for i in range(5)]
MODEL_URLS = [f"https://model.test/{k}" for k in range(4)]


class LifecycleModel(RuleBasedStateMachine):
    """One store driven by random sequences of add, remove, damage (found by verify), loss
    (found by gc), gc, verify and reindex, checked after every step against a model: content
    is ok or damaged or forgotten; a URL maps to the content it was last added with until
    that content is removed. Damage and loss never forget URLs (I5); remove always does."""

    def __init__(self) -> None:
        super().__init__()
        self.base = Path(tempfile.mkdtemp(prefix="mediastore-model-"))
        self.root = self.base / "s"
        self.store = MediaStore(self.root)
        self.status: dict[str, str] = {}  # md5 -> "ok" | "damaged"
        self.urls: dict[str, str] = {}  # url -> md5

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.base)

    @rule(i=st.integers(0, len(MODEL_POOL) - 1), url=st.sampled_from([None, *MODEL_URLS]))
    def add(self, i: int, url: str | None) -> None:
        rec = self.store.add_bytes(MODEL_POOL[i], url=url)
        assert rec.md5 == hashlib.md5(MODEL_POOL[i]).hexdigest()
        self.status[rec.md5] = "ok"
        if url is not None:
            self.urls[url] = rec.md5

    @rule(i=st.integers(0, len(MODEL_POOL) - 1))
    def remove(self, i: int) -> None:
        md5 = hashlib.md5(MODEL_POOL[i]).hexdigest()
        if md5 in self.status:
            assert self.store.remove(md5).md5 == md5
            del self.status[md5]
            self.urls = {u: m for u, m in self.urls.items() if m != md5}
        else:
            with pytest.raises(MediaNotFoundError):
                self.store.remove(md5)

    def _stored_ok(self) -> list[str]:
        return sorted(m for m, s in self.status.items() if s == "ok")

    @precondition(lambda self: any(s == "ok" for s in self.status.values()))
    @rule(data=st.data())
    def damage_then_verify(self, data: st.DataObject) -> None:
        md5 = data.draw(st.sampled_from(self._stored_ok()))
        rec = self.store.get_by_md5(md5)
        assert rec is not None
        raw = bytearray(rec.path.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        rec.path.write_bytes(bytes(raw))
        assert self.store.verify(md5).corrupt == [md5]
        self.status[md5] = "damaged"

    @precondition(lambda self: any(s == "ok" for s in self.status.values()))
    @rule(data=st.data())
    def lose_then_gc(self, data: st.DataObject) -> None:
        md5 = data.draw(st.sampled_from(self._stored_ok()))
        rec = self.store.get_by_md5(md5)
        assert rec is not None
        rec.path.unlink()
        assert md5 in self.store.gc().marked_missing
        self.status[md5] = "damaged"

    @rule()
    def gc(self) -> None:
        report = self.store.gc()
        assert (report.quarantined, report.adopted) == ([], []), report

    @rule()
    def verify(self) -> None:
        """Intact files are ok; every damaged one is reported as its row says (a file
        quarantined earlier as corrupt stays corrupt, a lost one missing), none restored."""
        report = self.store.verify()
        assert sorted(report.ok) == self._stored_ok() and report.restored == [], report
        damaged = sorted(m for m, s in self.status.items() if s == "damaged")
        assert sorted(report.corrupt + report.missing) == damaged, report
        rows = checker.media_rows(checker.catalog_path(self.root))
        assert all(rows[m]["status"] == "corrupt" for m in report.corrupt), report

    @rule()
    def reindex(self) -> None:
        assert self.store.reindex().mismatched == []

    @invariant()
    def catalog_matches_the_model(self) -> None:
        assert checker.check_i1(self.root) == []
        db = checker.catalog_path(self.root)
        rows = checker.media_rows(db)
        ok = sorted(m for m, r in rows.items() if r["status"] == "ok")
        assert ok == self._stored_ok()
        damaged = {m for m, s in self.status.items() if s == "damaged"}
        assert all(m in rows and rows[m]["status"] in ("missing", "corrupt") for m in damaged)
        assert checker.url_map(db) == self.urls
        for url in MODEL_URLS:
            rec = self.store.get_by_url(url)
            expected = (
                self.urls.get(url) if self.status.get(self.urls.get(url, "")) == "ok" else None
            )
            assert (rec.md5 if rec else None) == expected, url


LifecycleModel.TestCase.settings = settings(
    max_examples=20, stateful_step_count=20, deadline=None,
    suppress_health_check=[HealthCheck.too_slow], database=None,
)  # fmt: skip
test_lifecycle_model = pytest.mark.timeout(240)(LifecycleModel.TestCase)
