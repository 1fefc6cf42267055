"""References at scale: the collection of unreferenced content and ``media_for``.

::

    python -m benchmarks.references [--quick] [--runs N] [--db sqlite|postgresql ...]
                                    [--files N] [--output FILE]

Builds a catalog of ``--files`` files (default 1,000,000) and three references per file
held (3,000,000 for the default: keys ``post:K`` of three files each, positions 0-2), with
one file in ten unreferenced for two days (past the default grace of 24 h), by bulk inserts
(``sqlite3`` ``executemany``; PostgreSQL ``COPY``, its server started as the tests start it).
The unreferenced files and the files ``rm`` removes are real files under the store's root.
Then it times, medians of ``--runs``:

- the collection's decision (:meth:`Catalog.unreferenced`, the read ``gc --unreferenced``
  starts with) and its query plan (an index range read, not a walk; target < 60 s);
- removals per second of ``gc(unreferenced=True)`` (decision, tombstones, file deletions),
  against ``store.remove(md5)`` (what ``mediastore rm`` does per file) on as many other
  files, a fresh slice each run; the collected rows are put back (SQL) between runs;
- ``media_for(ref)`` for 20,000 random keys against the same statement as a raw point query
  (``sqlite3``; psycopg, prepared) on one connection (target >= 0.5).
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

from mediastore import MediaStore

from . import data
from .data import bulk_load
from .report import machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import servers

REFS_PER_KEY = 3
UNREFERENCED_EVERY = 10  # file i is unreferenced when i % 10 == 9
PAST_GRACE_SECONDS = 2 * 86_400
LOOKUPS = 20_000
MEDIA_FOR_SQL = (
    "SELECT media.md5, media.sha256, media.media_type, media.mime_type, media.extension, "
    "media.size, media.width, media.height, media.created_at, media.last_verified_at, "
    "media.status FROM refs JOIN media ON media.md5 = refs.md5 "
    "WHERE refs.ref = {p} AND media.status != 'removed' "
    "ORDER BY refs.position IS NULL, refs.position, refs.id"
)


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _median(runs: list[float]) -> float:
    return statistics.median(runs)


# --- the catalog -----------------------------------------------------------------------------
class Layout:
    """Which files are held, by which keys, and which are unreferenced."""

    def __init__(self, files: int) -> None:
        self.files = files
        self.held = [i for i in range(files) if i % UNREFERENCED_EVERY != UNREFERENCED_EVERY - 1]
        self.loose = [i for i in range(files) if i % UNREFERENCED_EVERY == UNREFERENCED_EVERY - 1]
        self.keys = files  # three references a key: 3 x files references
        self.counts = [0] * files
        for n in range(self.keys * REFS_PER_KEY):
            self.counts[self.held[n % len(self.held)]] += 1

    def media_rows(self, now: int) -> Iterator[tuple[object, ...]]:
        loose = set(self.loose)
        for i, row in enumerate(data.catalog_media_rows(self.files)):
            since = now - PAST_GRACE_SECONDS if i in loose else None
            yield (*row, self.counts[i], since)

    def ref_rows(self, created: str) -> Iterator[tuple[object, ...]]:
        n = 0
        for key in range(self.keys):
            for position in range(REFS_PER_KEY):
                md5 = data.md5_hex(f"media-{self.held[n % len(self.held)]}")
                yield (f"post:{key}", md5, position, created)
                n += 1

    def md5(self, i: int) -> str:
        return data.md5_hex(f"media-{i}")


_MEDIA_COLS = (
    "md5, sha256, media_type, mime_type, extension, size, width, height, created_at, "
    "last_verified_at, status, ref_count, unreferenced_since"
)
_REF_COLS = "ref, md5, position, created_at"
_CREATED = "2024-06-01 00:00:00.000000"


def build_sqlite(root: Path, layout: Layout) -> None:
    MediaStore(root).close()  # the schema, by Alembic
    with bulk_load(root / "catalog.sqlite3", analyze=True) as con:
        con.executemany(
            f"INSERT INTO media ({_MEDIA_COLS}) VALUES ({','.join('?' * 13)})",
            sorted(layout.media_rows(int(time.time()))),
        )
        con.executemany(
            f"INSERT INTO refs ({_REF_COLS}) VALUES (?,?,?,?)", layout.ref_rows(_CREATED)
        )


def build_postgres(url: str, layout: Layout) -> None:
    import psycopg

    MediaStore(tempfile.mkdtemp(prefix="refcat-"), db_url=url).close()
    with psycopg.connect(_dsn(url)) as conn:
        now = int(conn.execute("SELECT extract(epoch FROM now())::bigint").fetchone()[0])
        conn.execute("ALTER TABLE media DISABLE TRIGGER USER")
        with conn.cursor().copy(f"COPY media ({_MEDIA_COLS}) FROM STDIN") as copy:
            for row in layout.media_rows(now):
                copy.write_row(row)
        with conn.cursor().copy(f"COPY refs ({_REF_COLS}) FROM STDIN") as copy:
            for row in layout.ref_rows(_CREATED):
                copy.write_row(row)
        conn.execute("ALTER TABLE media ENABLE TRIGGER USER")
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE media")
        conn.execute("VACUUM ANALYZE refs")
    with MediaStore(tempfile.mkdtemp(prefix="refcat-"), db_url=url) as store:
        store.catalog.recount()


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _place(root: Path, layout: Layout, indexes: list[int]) -> None:
    """A small real file at the address of each of these files (what a removal unlinks)."""
    for i in indexes:
        media_type, _, ext, _, _ = data._KINDS[i % len(data._KINDS)]
        (root / "media" / f"{media_type}s" / f"{layout.md5(i)}.{ext}").write_bytes(b"x")


# --- the timings -----------------------------------------------------------------------------
def _plan(store: MediaStore, grace: int) -> str:
    """The database's plan of the decision, one line."""
    from sqlalchemy import text

    from mediastore.catalog.refs import unreferenced_stmt

    stmt = unreferenced_stmt(grace)
    with store.catalog.engine.connect() as conn:
        compiled = stmt.compile(conn, compile_kwargs={"literal_binds": True})
        prefix = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
        rows = conn.execute(text(prefix + str(compiled))).all()
    return " / ".join(str(r[-1]) for r in rows)


def run(db: str, root: Path, url: str | None, layout: Layout, runs: int) -> dict[str, Any]:
    grace = timedelta(hours=24)
    grace_s = int(grace.total_seconds())
    options: dict[str, Any] = {"db_url": url} if url else {}
    result: dict[str, Any] = {"db": db}
    rng = random.Random(5)
    with MediaStore(root, **options) as store:
        found = store.catalog.unreferenced(int(grace.total_seconds()))
        if len(found) != len(layout.loose):
            raise RuntimeError(f"decision found {len(found)}, expected {len(layout.loose)}")
        result["plan"] = _plan(store, int(grace.total_seconds()))
        decision = [
            _timed(lambda: store.catalog.unreferenced(int(grace.total_seconds())))
            for _ in range(runs)
        ]
        result["decision_s"] = decision

        # media_for against the raw point query
        keys = [f"post:{rng.randrange(layout.keys)}" for _ in range(LOOKUPS)]
        ours: list[float] = []
        raw: list[float] = []
        raw_run = _raw_media_for(root, url, keys)

        def our_run() -> None:
            for key in keys:
                if len(store.media_for(key)) != REFS_PER_KEY:
                    raise RuntimeError(f"media_for({key}) is not {REFS_PER_KEY} files")

        our_run()
        raw_run()
        for _ in range(runs):
            ours.append(LOOKUPS / _timed(our_run))
            raw.append(LOOKUPS / _timed(raw_run))
        result["media_for_per_s"] = ours
        result["raw_per_s"] = raw

        # removals: gc(unreferenced=True) against rm of as many files, a fresh slice each run
        gc_rates: list[float] = []
        rm_rates: list[float] = []
        slice_size = min(len(layout.loose), 5_000)
        for n in range(runs):
            _place(root, layout, layout.loose)
            start = time.perf_counter()
            gone = store.lifecycle.collect_unreferenced(grace_s)
            seconds = time.perf_counter() - start
            if len(gone) != len(layout.loose) or any(_exists(root, layout, layout.loose[:50])):
                raise RuntimeError(f"collected {len(gone)} of {len(layout.loose)}")
            gc_rates.append(len(gone) / seconds)
            _restore(store, url, root, layout)
            victims = layout.held[n * slice_size : (n + 1) * slice_size]
            _place(root, layout, victims)
            md5s = [layout.md5(i) for i in victims]
            seconds = _timed(lambda md5s=md5s: [store.remove(m) for m in md5s])
            rm_rates.append(len(md5s) / seconds)
        result["gc_removals_per_s"] = gc_rates
        result["rm_removals_per_s"] = rm_rates
        result["removed_per_gc"] = len(layout.loose)
    return result


def _exists(root: Path, layout: Layout, indexes: list[int]) -> Iterator[bool]:
    for i in indexes:
        media_type, _, ext, _, _ = data._KINDS[i % len(data._KINDS)]
        yield (root / "media" / f"{media_type}s" / f"{layout.md5(i)}.{ext}").exists()


def _raw_media_for(root: Path, url: str | None, keys: list[str]) -> Callable[[], None]:
    if url is None:
        con = sqlite3.connect(root / "catalog.sqlite3", check_same_thread=False)
        sql = MEDIA_FOR_SQL.format(p="?")

        def raw() -> None:
            for key in keys:
                if len(con.execute(sql, (key,)).fetchall()) != REFS_PER_KEY:
                    raise RuntimeError(key)

        return raw
    import psycopg

    conn = psycopg.connect(_dsn(url), autocommit=True)
    sql = MEDIA_FOR_SQL.format(p="%s")

    def raw_pg() -> None:
        for key in keys:
            if len(conn.execute(sql, (key,), prepare=True).fetchall()) != REFS_PER_KEY:
                raise RuntimeError(key)

    return raw_pg


def _restore(store: MediaStore, url: str | None, root: Path, layout: Layout) -> None:
    """Put the collected rows back as they were (ok, unreferenced two days ago)."""
    from sqlalchemy import bindparam, text

    md5s = [layout.md5(i) for i in layout.loose]
    with store.catalog.engine.begin() as conn:
        now = conn.execute(
            text(
                "SELECT CAST(strftime('%s','now') AS INTEGER)"
                if conn.dialect.name == "sqlite"
                else "SELECT extract(epoch FROM now())::bigint"
            )
        ).scalar_one()
        for start in range(0, len(md5s), 500):
            chunk = md5s[start : start + 500]
            conn.execute(
                text(
                    "UPDATE media SET status = 'ok', removed_at = NULL, unreferenced_since = "
                    ":since WHERE md5 IN :md5s"
                ).bindparams(bindparam("md5s", expanding=True)),
                {"since": now - PAST_GRACE_SECONDS, "md5s": chunk},
            )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.references", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10,000 files, 1 run")
    parser.add_argument("--runs", type=int, default=None, help="runs (default 3; 1 quick)")
    parser.add_argument("--files", type=int, default=None, help="files (default 1,000,000)")
    parser.add_argument(
        "--db", action="append", choices=("sqlite", "postgresql"), help="repeatable"
    )
    parser.add_argument(
        "--output", type=Path, default=Path(tempfile.gettempdir()) / "references.md"
    )
    args = parser.parse_args()
    files = args.files or (10_000 if args.quick else 1_000_000)
    runs = args.runs or (1 if args.quick else 3)
    layout = Layout(files)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mediastore-refs-") as tmp, ExitStack() as stack:
        for db in args.db or ["sqlite", "postgresql"]:
            root = Path(tmp) / db
            url = None
            start = time.perf_counter()
            if db == "sqlite":
                build_sqlite(root, layout)
            else:
                pg = servers.start_postgres()
                stack.callback(pg.stop)
                _, url = pg.create_database("bench_refs")
                build_postgres(url, layout)
                MediaStore(root, db_url=url).close()
            built = time.perf_counter() - start
            print(f"{db}: built {files:,} files, {layout.keys * 3:,} refs in {built:.0f} s")
            result = run(db, root, url, layout, runs)
            result["build_s"] = built
            print(_line(result), flush=True)
            results.append(result)
    lines = [
        "# mediastore references benchmark",
        "",
        *(f"- {k}: {v}" for k, v in machine()),
        f"- Command: `python -m benchmarks.references --files {files} --runs {runs}`",
        f"- {files:,} files, {layout.keys * REFS_PER_KEY:,} references, "
        f"{len(layout.loose):,} unreferenced past grace",
        "",
        *(_line(r) for r in results),
    ]
    args.output.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output}")


def _line(r: dict[str, Any]) -> str:
    def runs(xs: list[float], fmt: str = ",.0f") -> str:
        return ", ".join(format(x, fmt) for x in xs)

    mf, raw = _median(r["media_for_per_s"]), _median(r["raw_per_s"])
    gc, rm = _median(r["gc_removals_per_s"]), _median(r["rm_removals_per_s"])
    return (
        f"- **{r['db']}**: decision {_median(r['decision_s']):.2f} s "
        f"(runs {runs(r['decision_s'], '.2f')}; plan: {r['plan']}); "
        f"removals {gc:,.0f}/s by gc --unreferenced ({r['removed_per_gc']:,} a run; "
        f"runs {runs(r['gc_removals_per_s'])}) vs {rm:,.0f}/s by rm (runs "
        f"{runs(r['rm_removals_per_s'])}), ratio {gc / rm:.2f}; media_for {mf:,.0f}/s vs "
        f"raw {raw:,.0f}/s, ratio {mf / raw:.2f} (runs {runs(r['media_for_per_s'])} / "
        f"{runs(r['raw_per_s'])})"
    )


if __name__ == "__main__":
    main()
