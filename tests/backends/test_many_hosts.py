"""Many hosts on one PostgreSQL catalog and one S3 bucket: a load test of the shared backends.

Four processes, each with a local root of its own as separate hosts would have, share a
PostgreSQL database and a bucket on the Ceph RADOS Gateway the tests start. They add and
fetch overlapping content while ``rm`` and ``gc`` run; then a last gc runs with every
writer stopped. The checks read the database with plain SQL and the bucket with boto3:

- every URL a host was told is stored is in the catalog, on the content it was given;
- every ``ok`` row's object is in the bucket and hashes to its md5;
- the bucket holds exactly one object per live content (no duplicate, none unreferenced);
- the stats counters equal the rows, and no writer or intent is left behind.

Content is split in two: *kept* content is only added, never removed, so each of its URLs
must survive; *churned* content is added and removed by every host at random.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import random
from pathlib import Path
from typing import Any

import pytest
import servers
from pytest_httpserver import HTTPServer
from sqlalchemy import Engine, text

from mediastore import MediaNotFoundError, MediaStore
from mediastore import testing as t

HOSTS = 4
ROUNDS = int(os.environ.get("MEDIASTORE_LOAD_ROUNDS", "60"))
KEPT = 8
CHURNED = 6
PREFIX = "fleet"


def _image(seed: int) -> bytes:
    return t.image_bytes("JPEG", size=(20 + seed, 20), color=(seed * 37 % 256, 80, 20))


def _kept_url(content: int, n: int) -> str:
    return f"https://cdn.example/kept/{content}/{n}.jpg"


def _host(number: int, root: str, db_url: str, blob_url: str, served: str, log: str) -> None:
    """One host: a random mix of adds, fetches, rm and gc; acknowledged adds go to ``log``."""
    rng = random.Random(number)
    with MediaStore(
        root, db_url=db_url, blob_url=blob_url, allow_private_networks=True, retries=1
    ) as store, open(log, "w") as out:  # fmt: skip
        for _ in range(ROUNDS):
            roll = rng.random()
            if roll < 0.4:
                content = rng.randrange(KEPT)
                url = _kept_url(content, rng.randrange(6))
                rec = store.add_bytes(_image(content), url=url)
                out.write(json.dumps({"url": url, "md5": rec.md5}) + "\n")
            elif roll < 0.6:
                content = rng.randrange(KEPT)
                url = f"{served}/kept/{content}.jpg"
                rec = store.fetch(url)
                out.write(json.dumps({"url": url, "md5": rec.md5}) + "\n")
            elif roll < 0.8:
                store.add_bytes(_image(100 + rng.randrange(CHURNED)))
            elif roll < 0.95:
                md5 = hashlib.md5(_image(100 + rng.randrange(CHURNED))).hexdigest()
                with contextlib.suppress(MediaNotFoundError):
                    store.remove(md5)
            else:
                store.gc()
            out.flush()


@pytest.mark.parametrize("catalog_url", ["postgresql"], indirect=True)  # sql reads it too
def test_four_hosts_share_one_catalog_and_one_bucket(
    tmp_path: Path, catalog_url: str, sql: Engine, s3_env: servers.S3Bucket, http: HTTPServer
) -> None:
    for content in range(KEPT):
        http.expect_request(f"/kept/{content}.jpg").respond_with_data(
            _image(content), content_type="image/jpeg"
        )
    served = http.url_for("").rstrip("/")
    blob_url = f"s3://{s3_env.name}/{PREFIX}"
    ctx = multiprocessing.get_context("fork")
    logs = [tmp_path / f"host{n}.jsonl" for n in range(HOSTS)]
    hosts = [
        ctx.Process(
            target=_host,
            args=(n, str(tmp_path / f"host{n}"), catalog_url, blob_url, served, str(logs[n])),
        )
        for n in range(HOSTS)
    ]
    for p in hosts:
        p.start()
    for p in hosts:
        p.join(300)
    assert [p.exitcode for p in hosts] == [0] * HOSTS
    with MediaStore(tmp_path / "final", db_url=catalog_url, blob_url=blob_url) as store:
        final = store.gc()
        assert final.counters_repaired == {}
        report_dict = final.to_dict()

    told: dict[str, str] = {}
    for log in logs:
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            assert told.setdefault(entry["url"], entry["md5"]) == entry["md5"]
    assert len(told) > KEPT
    _check_catalog(sql, told)
    objects = _check_bucket(sql, s3_env)
    if report := os.environ.get("MEDIASTORE_LOAD_REPORT"):  # figures for a closing note
        with sql.connect() as conn:
            rows = dict(
                conn.execute(text("SELECT status, count(*) FROM media GROUP BY status")).all()
            )
        Path(report).write_text(json.dumps({
            "hosts": HOSTS, "rounds": ROUNDS, "acknowledged_urls": len(told),
            "rows": rows, "objects": objects, "final_gc": report_dict,
        }, indent=1))  # fmt: skip


def _check_catalog(sql: Engine, told: dict[str, str]) -> None:
    with sql.connect() as conn:
        urls = dict(conn.execute(text("SELECT url, md5 FROM media_urls")).all())
        kept_rows = {
            md5: status
            for md5, status in conn.execute(text("SELECT md5, status FROM media")).all()
            if md5 in set(told.values())
        }
        counters = dict(
            conn.execute(text("SELECT name, sum(count) FROM stats_counters GROUP BY name")).all()
        )
        live = conn.execute(
            text("SELECT media_type, status, count(*) FROM media GROUP BY media_type, status")
        ).all()
        leftovers = conn.execute(
            text("SELECT (SELECT count(*) FROM writers), (SELECT count(*) FROM intents)")
        ).one()
    assert {u: urls.get(u) for u in told} == told  # no URL lost, none on other content
    assert set(kept_rows.values()) == {"ok"}
    assert {f"media:{mt}:{st}": n for mt, st, n in live} == {
        k: v for k, v in counters.items() if k.startswith("media:") and v
    }
    assert counters["urls"] == len(urls)
    assert tuple(leftovers) == (0, 0)


def _check_bucket(sql: Engine, bucket: servers.S3Bucket) -> int:
    with sql.connect() as conn:
        rows = conn.execute(text("SELECT md5, extension, status FROM media")).all()
    live = {f"{PREFIX}/media/images/{md5}.{ext}": md5 for md5, ext, st in rows if st == "ok"}
    objects: dict[str, Any] = {}
    for page in bucket.client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket.name, Prefix=f"{PREFIX}/media/"
    ):
        objects.update((o["Key"], o) for o in page.get("Contents", []))
    assert set(objects) == set(live)  # one object per live content, nothing unreferenced
    for key, md5 in live.items():
        body = bucket.client.get_object(Bucket=bucket.name, Key=key)["Body"].read()
        assert hashlib.md5(body).hexdigest() == md5
    return len(objects)
