"""Scale-out benchmarks: the catalog on PostgreSQL, the bytes on Ceph RGW.

Each case runs beside its reference in the same run, medians of several runs::

    python -m benchmarks.scaleout [--quick] [--runs N] [--only CASE ...] [--output FILE]

``--only`` runs some of the cases (lookup, stats, add_file, fetch, migrate); the others are
not prepared either (no catalog is loaded for add_file alone).

The servers are started the way the tests start them (``tests/servers.py``: a throwaway
PostgreSQL cluster and a one-host Ceph cluster on 127.0.0.1); without their binaries the
run says so and stops.

| case | reference |
| --- | --- |
| ``get_by_url`` on PostgreSQL | raw psycopg point select, prepared, same SQL |
| ``stats()`` on PostgreSQL and on SQLite | (milliseconds per call, target < 5) |
| ``add_file`` into PostgreSQL + RGW | boto3 ``upload_file`` of the file plus ``md5sum`` |
| ``fetch_many`` of images into PostgreSQL + RGW | the same into SQLite + disk |
| ``migrate-store`` disk -> RGW | a boto3 ``put_object`` loop, 10 at once (``aws s3 sync``) |
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mediastore import MediaStore

from . import data
from .report import machine
from .servers import serve

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import servers


@dataclass
class Row:
    case: str
    mediastore: str
    reference: str
    ratio: str
    target: str
    runs: str


def _median(runs: list[float]) -> float:
    return statistics.median(runs)


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# --- catalog ---------------------------------------------------------------------------------
def _load_pg(url: str, rows: int) -> None:
    """The benchmark catalog (data.catalog_media_rows/url_rows) bulk loaded with COPY."""
    import psycopg

    MediaStore(tempfile.mkdtemp(prefix="pgcat-"), db_url=url).close()  # schema by Alembic
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        conn.execute("ALTER TABLE media DISABLE TRIGGER USER")
        conn.execute("ALTER TABLE media_urls DISABLE TRIGGER USER")
        media = (
            "md5, sha256, media_type, mime_type, extension, size, width, height, created_at, "
            "last_verified_at, status"
        )
        with conn.cursor().copy(f"COPY media ({media}) FROM STDIN") as copy:
            for row in data.catalog_media_rows(rows):
                copy.write_row(row)
        urls = "url, url_key, url_md5, source, md5, first_seen_at"
        with conn.cursor().copy(f"COPY media_urls ({urls}) FROM STDIN") as copy:
            for row in data.catalog_url_rows(rows):
                copy.write_row(row)
        conn.execute("ALTER TABLE media ENABLE TRIGGER USER")
        conn.execute("ALTER TABLE media_urls ENABLE TRIGGER USER")
        conn.execute("ANALYZE")
    with MediaStore(tempfile.mkdtemp(prefix="pgcat-"), db_url=url) as store:
        store.catalog.recount()  # the counters (and url_count) from the loaded rows


def lookup_pg(pg: servers.PostgresServer, rows: int, lookups: int, runs: int) -> Row:
    _, url = pg.create_database("bench_lookup")
    _load_pg(url, rows)
    sample = data.lookup_sample(rows, lookups)
    import psycopg

    sql = (
        "SELECT media.md5, media.sha256, media.media_type, media.mime_type, media.extension, "
        "media.size, media.width, media.height, media.created_at, media.last_verified_at, "
        "media.status FROM media_urls JOIN media ON media_urls.md5 = media.md5 "
        "WHERE media_urls.url_key = %s"
    )
    ours: list[float] = []
    raw: list[float] = []
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with (
        MediaStore(tempfile.mkdtemp(prefix="pglookup-"), db_url=url) as store,
        psycopg.connect(dsn) as conn,
    ):
        conn.autocommit = True

        def raw_run() -> None:
            for u in sample:
                key = hashlib.sha256(u.encode()).hexdigest()
                assert conn.execute(sql, (key,), prepare=True).fetchone() is not None

        def our_run() -> None:
            for u in sample:
                assert store.get_by_url(u) is not None

        raw_run()  # warm both: the server's cache, prepared statements
        our_run()
        for _ in range(runs):
            ours.append(lookups / _timed(our_run))
            raw.append(lookups / _timed(raw_run))
    ratio = _median(ours) / _median(raw)
    return Row(
        f"get_by_url on PostgreSQL, {rows:,} URLs",
        f"{_median(ours):,.0f} lookups/s",
        f"{_median(raw):,.0f} lookups/s (raw psycopg, prepared)",
        f"{ratio:.2f}",
        ">= 0.5",
        _runs(ours, raw),
    )


def stats_ms(url: str, root: Path, calls: int, runs: int) -> list[float]:
    with MediaStore(root, db_url=url) as store:
        store.stats()
        return [
            _timed(lambda: [store.stats() for _ in range(calls)]) / calls * 1000
            for _ in range(runs)
        ]


def stats_case(pg: servers.PostgresServer, rows: int, runs: int, work: Path) -> list[Row]:
    _, url = pg.create_database("bench_stats")
    _load_pg(url, rows)
    on_pg = stats_ms(url, work / "stats-pg", 50, runs)
    sqlite_root = work / "stats-sqlite"
    data.build_catalog(sqlite_root, rows)
    on_sqlite = stats_ms(f"sqlite:///{sqlite_root / 'catalog.sqlite3'}", sqlite_root, 50, runs)
    return [
        Row(
            f"stats() at {rows:,} media, {name}",
            f"{_median(ms):.2f} ms per call",
            "-",
            "-",
            "< 5 ms",
            ", ".join(f"{m:.2f}" for m in ms),
        )
        for name, ms in (("PostgreSQL", on_pg), ("SQLite", on_sqlite))
    ]


# --- bytes -----------------------------------------------------------------------------------
def add_file_case(
    pg: servers.PostgresServer, s3: servers.S3Server, size: int, runs: int, work: Path
) -> Row:
    video = work / "video.mp4"
    data.write_video(video, size)
    client = s3.client()
    ours: list[float] = []
    ref: list[float] = []
    for i in range(runs):  # interleaved: both see the same server and page-cache state
        bucket = s3.create_bucket("bench-ref", client=client)
        upload = _timed(lambda b=bucket: client.upload_file(str(video), b, "ref/video.mp4"))
        md5 = _timed(
            lambda: subprocess.run(["md5sum", str(video)], check=True, capture_output=True)
        )
        ref.append(size / 1e6 / (upload + md5))
        s3.delete_bucket(bucket)
        bucket = s3.create_bucket("bench-ours", client=client)
        _, url = pg.create_database("bench_add")
        with MediaStore(work / f"add-{i}", db_url=url, blob_url=f"s3://{bucket}/store") as store:
            ours.append(size / 1e6 / _timed(lambda: store.add_file(video)))
        s3.delete_bucket(bucket)
    return Row(
        f"add_file of {size >> 20} MiB into PostgreSQL + RGW",
        f"{_median(ours):,.0f} MB/s",
        f"{_median(ref):,.0f} MB/s (boto3 upload_file, then md5sum)",
        f"{_median(ours) / _median(ref):.2f}",
        ">= 0.8",
        _runs(ours, ref),
    )


def fetch_case(
    pg: servers.PostgresServer, s3: servers.S3Server, count: int, runs: int, work: Path
) -> Row:
    images = work / "images"
    images.mkdir()
    data.write_download_images(images, count)
    names = sorted(p.name for p in images.iterdir())
    client = s3.client()
    ours: list[float] = []
    local: list[float] = []
    with serve(images, work / "server-state", names[0]) as server:
        urls = [server.url(name) for name in names]
        for i in range(runs):
            root = work / f"fetch-local-{i}"
            with MediaStore(root, allow_private_networks=True) as store:
                local.append(count / _timed(lambda: _all_ok(store.fetch_many(urls))))
            bucket = s3.create_bucket("bench-fetch", client=client)
            _, url = pg.create_database("bench_fetch")
            with MediaStore(
                work / f"fetch-s3-{i}",
                db_url=url,
                blob_url=f"s3://{bucket}/store",
                allow_private_networks=True,
            ) as store:
                ours.append(count / _timed(lambda: _all_ok(store.fetch_many(urls))))
            s3.delete_bucket(bucket)
    return Row(
        f"fetch_many of {count:,} images into PostgreSQL + RGW",
        f"{_median(ours):,.0f} files/s",
        f"{_median(local):,.0f} files/s (SQLite + disk)",
        f"{_median(ours) / _median(local):.2f}",
        "report",
        _runs(ours, local),
    )


def migrate_case(s3: servers.S3Server, count: int, runs: int, work: Path) -> Row:
    """migrate-store of a disk store to RGW against a boto3 loop like ``aws s3 sync`` (10
    uploads at once, each with its Content-MD5)."""
    images = work / "migrate-images"
    images.mkdir()
    data.write_download_images(images, count)
    files = sorted(images.iterdir())
    client = s3.client()
    ours: list[float] = []
    ref: list[float] = []
    for i in range(runs):
        bucket = s3.create_bucket("bench-sync", client=client)

        def sync(bucket: str = bucket) -> None:
            def put(item: Path) -> None:
                body = item.read_bytes()
                digest = base64.b64encode(hashlib.md5(body).digest()).decode()
                client.put_object(
                    Bucket=bucket, Key=f"sync/{item.name}", Body=body, ContentMD5=digest
                )

            with ThreadPoolExecutor(10) as pool:
                list(pool.map(put, files))

        ref.append(count / _timed(sync))
        s3.delete_bucket(bucket)
        bucket = s3.create_bucket("bench-migrate", client=client)
        with MediaStore(work / f"migrate-{i}") as store:
            for path in files:
                store.add_file(path)
            ours.append(count / _timed(lambda b=bucket: store.migrate_store(f"s3://{b}/store")))
        s3.delete_bucket(bucket)
    return Row(
        f"migrate-store of {count:,} files, disk -> RGW",
        f"{_median(ours):,.0f} files/s",
        f"{_median(ref):,.0f} files/s (boto3 put_object loop, 10 at once, Content-MD5)",
        f"{_median(ours) / _median(ref):.2f}",
        ">= 1.0",
        _runs(ours, ref),
    )


def _all_ok(results: list[Any]) -> None:
    failed = [r for r in results if not r.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} downloads failed, first: {failed[0].error}")


def _runs(ours: list[float], ref: list[float]) -> str:
    return f"{', '.join(f'{x:,.0f}' for x in ours)} / {', '.join(f'{x:,.0f}' for x in ref)}"


# --- the run ---------------------------------------------------------------------------------
CASES = ("lookup", "stats", "add_file", "fetch", "migrate")


def _cases(args: argparse.Namespace, work: Path) -> Iterator[Row | list[Row]]:
    with ExitStack() as stack:
        try:
            pg = servers.start_postgres()
            stack.callback(pg.stop)
            s3 = servers.start_rgw()
            stack.callback(s3.stop)
        except servers.ServerUnavailable as exc:
            raise SystemExit(f"cannot run the scale-out benchmarks here: {exc}") from exc
        # boto3's default chain, as a user sets it, reaches the gateway (MediaStore(blob_url=))
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": s3.endpoint,
                "AWS_ACCESS_KEY_ID": s3.access_key,
                "AWS_SECRET_ACCESS_KEY": s3.secret_key,
                "AWS_DEFAULT_REGION": s3.region,
            }
        )
        rows = 20_000 if args.quick else 1_000_000
        runs = args.runs if args.runs is not None else 1 if args.quick else 3
        only = set(args.only or CASES)
        if "lookup" in only:
            yield lookup_pg(pg, rows, 5_000 if args.quick else 20_000, runs)
        if "stats" in only:
            yield stats_case(pg, rows, runs, work)
        if "add_file" in only:
            yield add_file_case(pg, s3, (32 if args.quick else 256) << 20, runs, work)
        if "fetch" in only:
            yield fetch_case(pg, s3, 200 if args.quick else 2_000, runs, work)
        if "migrate" in only:
            yield migrate_case(s3, 200 if args.quick else 2_000, runs, work)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaleout", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small data, 1 run")
    parser.add_argument("--runs", type=int, default=None, help="runs per case (default 3; 1 quick)")
    parser.add_argument(
        "--only",
        action="append",
        choices=CASES,
        metavar="CASE",
        help=f"run this case only (repeatable; one of {', '.join(CASES)})",
    )
    parser.add_argument("--output", type=Path, default=Path(tempfile.gettempdir()) / "scaleout.md")
    args = parser.parse_args()
    random.seed(1)
    out: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="mediastore-scaleout-") as tmp:
        for result in _cases(args, Path(tmp)):
            for row in result if isinstance(result, list) else [result]:
                print(f"{row.case}: {row.mediastore} vs {row.reference} ({row.ratio})", flush=True)
                out.append(row)
    lines = [
        "# mediastore scale-out benchmarks",
        "",
        *(f"- {k}: {v}" for k, v in machine()),
        "- Command: `python -m benchmarks.scaleout"
        + (" --quick" if args.quick else "")
        + (f" --runs {args.runs}" if args.runs else "")
        + "".join(f" --only {c}" for c in args.only or ())
        + "`",
        "",
        "| case | mediastore | reference | ratio | target | runs (mediastore / reference) |",
        "| --- | --- | --- | ---: | --- | --- |",
    ]
    lines += [
        f"| {r.case} | {r.mediastore} | {r.reference} | {r.ratio} | {r.target} | {r.runs} |"
        for r in out
    ]
    args.output.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
