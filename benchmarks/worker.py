"""The timed calls, each run in a fresh interpreter by the harness.

``python -m benchmarks.worker '{"op": "add_file", "root": ..., "path": ...}'`` opens what the
call needs (untimed), times the call itself with ``time.perf_counter``, and prints one JSON
line: ``seconds``, ``amount`` (bytes or items moved), the process's ``peak_rss_kb``
(VmHWM), its ``base_rss_kb`` just before the call, and op-specific checks (``errors``...).

A fresh process per run gives every side the same cold start, no state left by an earlier
case, and a peak RSS that belongs to that one call. In-process references (the old script's
``requests`` loop, raw ``sqlite3``) run here too, timed the same way. To profile a side, run
its command line under ``py-spy record`` (the harness prints it with ``-v``).
"""

from __future__ import annotations

import hashlib
import json
import resource
import sqlite3
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mediastore.catalog.engine import READ_MMAP_SIZE

from .config import STORE_OPTIONS

Result = dict[str, Any]

#: What the old script sent (it needed a browser-like User-Agent for some CDNs).
SEED_USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) media_cache/seed"

#: Catalog.by_url's statement, as SQLAlchemy emits it.
LOOKUP_SQL = (
    "SELECT media.md5, media.sha256, media.media_type, media.mime_type, media.extension, "
    "media.size, media.width, media.height, media.created_at, media.last_verified_at, "
    "media.status FROM media_urls JOIN media ON media_urls.md5 = media.md5 "
    "WHERE media_urls.url_key = ?"
)
#: Catalog.stats's two statements (the counters summed, the oldest verification).
STATS_SQL = (
    "SELECT name, sum(count), sum(bytes) FROM stats_counters GROUP BY name",
    "SELECT last_verified_at FROM media WHERE last_verified_at IS NOT NULL "
    "AND status != 'removed' ORDER BY last_verified_at LIMIT 1",
)


def _status_kb(field: str) -> int:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _lines(path: str) -> list[str]:
    return Path(path).read_text(encoding="utf-8").split()


def _open_store(root: str, *, defaults: bool = False, deep: bool = False) -> Any:
    from mediastore import MediaStore

    if defaults:
        return MediaStore(root, allow_private_networks=True)
    return MediaStore(root, **STORE_OPTIONS, verify_deep=deep)


def _timed(call: Callable[[], Any]) -> tuple[float, int, Any]:
    """(seconds, RSS in kB before the call, the call's result)."""
    base = _status_kb("VmRSS")
    start = time.perf_counter()
    value = call()
    return time.perf_counter() - start, base, value


# --- mediastore --------------------------------------------------------------------------------
def op_add_file(root: str, path: str) -> Result:
    """``add_file`` of one (large) file into a fresh store."""
    with _open_store(root) as store:
        seconds, base, rec = _timed(lambda: store.add_file(path))
    return {"seconds": seconds, "amount": rec.size, "base_rss_kb": base, "md5": rec.md5}


def op_fetch(root: str, url: str) -> Result:
    """``fetch`` of one (large) URL into a fresh store."""
    with _open_store(root) as store:
        seconds, base, rec = _timed(lambda: store.fetch(url))
    return {"seconds": seconds, "amount": rec.size, "base_rss_kb": base, "md5": rec.md5}


def op_fetch_many(
    root: str, urls_file: str, max_workers: int | None = None, defaults: bool = False
) -> Result:
    """``fetch_many`` of every URL in ``urls_file`` into a fresh store.

    ``defaults``: the store opened and called as a user would, with no tuning (loopback
    allowed, nothing else): the default workers and adaptive per-host limits.
    """
    urls = _lines(urls_file)
    with _open_store(root, defaults=defaults) as store:
        if max_workers is None:
            seconds, base, results = _timed(lambda: store.fetch_many(urls))
        else:
            seconds, base, results = _timed(lambda: store.fetch_many(urls, max_workers=max_workers))
    errors = [str(r.error) for r in results if r.error is not None]
    return {
        "seconds": seconds,
        "amount": len(urls) - len(errors),
        "base_rss_kb": base,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


def op_iter_fetch(root: str, base_url: str, count: int) -> Result:
    """``iter_fetch`` over a generator of ``count`` URLs that answer 404 (a fresh store, its
    defaults): the process's peak RSS is what the case reports."""

    def urls() -> Any:
        for i in range(count):
            yield f"{base_url}/missing/{i}.jpg"

    with _open_store(root, defaults=True) as store:

        def run() -> tuple[int, int]:
            seen = failed = 0
            for result in store.iter_fetch(urls()):
                seen += 1
                failed += not result.ok
            return seen, failed

        seconds, base, (seen, failed) = _timed(run)
    return {"seconds": seconds, "amount": seen, "base_rss_kb": base, "failed": failed}


def op_get_by_url(root: str, urls_file: str) -> Result:
    """``get_by_url`` of every URL in ``urls_file``, one after the other."""
    urls = _lines(urls_file)
    with _open_store(root) as store:
        get = store.get_by_url

        def run() -> int:
            return sum(1 for url in urls if get(url) is None)

        seconds, base, missing = _timed(run)
        closing = time.perf_counter()  # what close() still writes (URLs found by identity)
    close_seconds = time.perf_counter() - closing
    return {
        "seconds": seconds,
        "amount": len(urls),
        "base_rss_kb": base,
        "errors": missing,
        "close_seconds": close_seconds,
    }


def op_stats(root: str, calls: int) -> Result:
    """``stats()``, ``calls`` times."""
    with _open_store(root) as store:
        seconds, base, stats = _timed(lambda: [store.stats() for _ in range(calls)][-1])
    return {
        "seconds": seconds,
        "amount": calls,
        "base_rss_kb": base,
        "total_files": stats.total_files,
        "total_urls": stats.total_urls,
        "saved": stats.dedup_saved_bytes,
    }


def op_verify(root: str) -> Result:
    """``verify()`` of every file in the store."""
    with _open_store(root) as store:
        seconds, base, report = _timed(store.verify)
    bad = len(report.missing) + len(report.corrupt)
    return {"seconds": seconds, "amount": len(report.ok), "base_rss_kb": base, "errors": bad}


def op_import_legacy(root: str, directory: str) -> Result:
    """``import_legacy`` of a legacy cache directory into a fresh store."""
    with _open_store(root) as store:
        seconds, base, report = _timed(lambda: store.import_legacy(directory))
    return {
        "seconds": seconds,
        "amount": report.imported,
        "base_rss_kb": base,
        "errors": len(report.skipped),
        "bytes": report.bytes,
    }


def op_add_concurrent(root: str, directory: str, threads: int, deep: bool = False) -> Result:
    """``add_file`` of every file of ``directory`` from ``threads`` threads, one store
    (``deep``: with ``verify_deep``, every image decoded at ingest)."""
    paths = sorted(str(p) for p in Path(directory).iterdir())
    with _open_store(root, deep=deep) as store:

        def run() -> int:
            with ThreadPoolExecutor(threads) as pool:
                return len(list(pool.map(store.add_file, paths)))

        seconds, base, added = _timed(run)
    return {"seconds": seconds, "amount": added, "base_rss_kb": base}


def op_raw_durable_adds(out_dir: str, directory: str, threads: int, synchronous: str) -> Result:
    """The same durable work by hand: hash (MD5, SHA-256), temp file, fsync, rename, directory
    fsync, one sqlite3 WAL transaction per file (``synchronous`` as given), from ``threads``."""
    import os
    import threading

    paths = sorted(Path(directory).iterdir())
    out = Path(out_dir)
    (out / "tmp").mkdir(parents=True, exist_ok=True)
    (out / "media").mkdir(exist_ok=True)
    con = sqlite3.connect(out / "catalog.sqlite3", check_same_thread=False, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute(f"PRAGMA synchronous = {synchronous}")
    con.execute("CREATE TABLE media (md5 TEXT PRIMARY KEY, sha256 TEXT, size INTEGER)")
    lock = threading.Lock()
    media_fd = os.open(out / "media", os.O_RDONLY | os.O_DIRECTORY)

    def one(path: Path) -> None:
        data = path.read_bytes()
        md5 = hashlib.md5(data).hexdigest()
        sha = hashlib.sha256(data).hexdigest()
        temp = out / "tmp" / f"{md5}.part"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        os.replace(temp, out / "media" / f"{md5}.jpg")
        os.fsync(media_fd)
        with lock:
            con.execute("BEGIN IMMEDIATE")
            con.execute("INSERT OR IGNORE INTO media VALUES (?, ?, ?)", (md5, sha, len(data)))
            con.execute("COMMIT")

    def run() -> int:
        with ThreadPoolExecutor(threads) as pool:
            return len(list(pool.map(one, paths)))

    try:
        seconds, base, added = _timed(run)
    finally:
        os.close(media_fd)
        con.close()
    return {"seconds": seconds, "amount": added, "base_rss_kb": base}


# --- in-process references ---------------------------------------------------------------------
def op_seed_download(
    out_dir: str, urls_file: str, max_workers: int, tolerate_errors: bool = False
) -> Result:
    """The old script's way: ``requests.get`` per URL in a 5-thread pool, one file per content MD5.

    No session (a new connection per URL), the body in memory, no fsync, no catalog. With
    ``tolerate_errors`` a URL that fails (a 429) is counted, as the old script logged and
    skipped it.
    """
    import requests

    urls = _lines(urls_file)
    out = Path(out_dir)

    def one(url: str) -> str | None:
        resp = requests.get(url, headers={"User-Agent": SEED_USER_AGENT}, timeout=30)
        if tolerate_errors and not resp.ok:
            return None
        resp.raise_for_status()
        data = resp.content
        md5 = hashlib.md5(data).hexdigest()
        path = out / f"{md5}.jpg"
        if not path.exists():
            path.write_bytes(data)
        return md5

    def run() -> list[str | None]:
        with ThreadPoolExecutor(max_workers=max_workers) as pool:
            return list(pool.map(one, urls))

    seconds, base, md5s = _timed(run)
    stored = sum(1 for md5 in md5s if md5 is not None)
    return {
        "seconds": seconds,
        "amount": stored,
        "base_rss_kb": base,
        "errors": len(md5s) - stored,
    }


def op_sqlite_lookup(db: str, urls_file: str, mmap: bool = False) -> Result:
    """Raw sqlite3 point lookups with Catalog.by_url's statement (``mmap``: mapped as the
    store maps its catalog)."""
    urls = _lines(urls_file)
    con = sqlite3.connect(db)
    if mmap:
        con.execute(f"PRAGMA mmap_size = {READ_MMAP_SIZE}")
    try:
        execute = con.execute

        def run() -> int:
            return sum(
                1
                for url in urls
                if execute(LOOKUP_SQL, (hashlib.sha256(url.encode()).hexdigest(),)).fetchone()
                is None
            )

        seconds, base, missing = _timed(run)
    finally:
        con.close()
    return {"seconds": seconds, "amount": len(urls), "base_rss_kb": base, "errors": missing}


def op_sqlite_stats(db: str, calls: int) -> Result:
    """Catalog.stats's statements through raw sqlite3, ``calls`` times."""
    con = sqlite3.connect(db)
    try:

        def run() -> list[list[Any]]:
            out: list[list[Any]] = []
            for _ in range(calls):
                out = [con.execute(sql).fetchall() for sql in STATS_SQL]
            return out

        seconds, base, rows = _timed(run)
    finally:
        con.close()
    counters = {name: (n, b) for name, n, b in rows[0]}
    return {
        "seconds": seconds,
        "amount": calls,
        "base_rss_kb": base,
        "total_files": sum(
            n
            for name, (n, _) in counters.items()
            if name.startswith("media:") and not name.endswith(":removed")
        ),
        "total_urls": counters.get("urls", (0, 0))[0],
        "saved": counters.get("dedup", (0, 0))[1],
    }


OPS: dict[str, Callable[..., Result]] = {
    "add_file": op_add_file,
    "fetch": op_fetch,
    "fetch_many": op_fetch_many,
    "iter_fetch": op_iter_fetch,
    "get_by_url": op_get_by_url,
    "stats": op_stats,
    "verify": op_verify,
    "import_legacy": op_import_legacy,
    "add_concurrent": op_add_concurrent,
    "raw_durable_adds": op_raw_durable_adds,
    "seed_download": op_seed_download,
    "sqlite_lookup": op_sqlite_lookup,
    "sqlite_stats": op_sqlite_stats,
}


def main(argv: list[str]) -> int:
    """Run the op described by the JSON argument and print its result as one JSON line."""
    if len(argv) != 1:
        print("usage: python -m benchmarks.worker JSON", file=sys.stderr)
        return 2
    spec = json.loads(argv[0])
    op = OPS[spec.pop("op")]
    result = op(**spec)
    result["peak_rss_kb"] = _status_kb("VmHWM")
    # a download process the call started (mediastore.net.processes), reaped by now: its own peak
    result["child_peak_rss_kb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
