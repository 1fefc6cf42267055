"""One download of an asset's bytes at a time: rotated URLs of one picture fetched at once,
by two processes or two threads, cost one request."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import checker
import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import create_engine, text
from werkzeug import Request, Response

from mediastore import MediaStore
from mediastore import testing as t

ASSET = "/dms/image/v2/LEASE1/feedshare-shrink_800/feedshare-shrink_800/0/1700000000000"


@pytest.fixture
def slow_cdn(http: HTTPServer) -> list[str]:
    """A LinkedIn-shaped CDN whose images take a second: the paths it was asked for."""
    asked: list[str] = []
    lock = threading.Lock()

    def answer(request: Request) -> Response:
        with lock:
            asked.append(request.path)
        time.sleep(1.0)
        return Response(t.noisy_jpeg((48, 32), seed=7), content_type="image/jpeg")

    http.expect_request(re.compile(r"^/dms/image/.*")).respond_with_handler(answer)
    return asked


def _url(http: HTTPServer, signature: str) -> str:
    return f"http://media.licdn.com:{http.port}{ASSET}?e=2147483647&v=beta&t={signature}"


_FETCH = textwrap.dedent(
    """
    import json, sys
    from mediastore import MediaStore
    root, url = sys.argv[1], sys.argv[2]
    with MediaStore(root, resolver=lambda host, port: ["127.0.0.1"],
                    allow_private_networks=True) as store:
        print(json.dumps({"md5": store.fetch(url).md5}))
    """
)


@pytest.mark.slow
def test_two_processes_fetching_rotated_urls_of_one_asset_download_once(
    http: HTTPServer, slow_cdn: list[str], tmp_path: Path
) -> None:
    """Two processes fetch two signatures of one picture at the same moment: the CDN is
    asked once, both get the same file, and both URLs are recorded (plain sqlite3)."""
    root = tmp_path / "s"
    MediaStore(root).close()
    urls = [_url(http, "one"), _url(http, "two")]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _FETCH, str(root), url], stdout=subprocess.PIPE, text=True
        )
        for url in urls
    ]
    outs = [proc.communicate(timeout=60)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outs
    md5s = {json.loads(out)["md5"] for out in outs}
    assert len(md5s) == 1 and slow_cdn == [ASSET]
    recorded = checker.url_map(checker.catalog_path(root))
    assert {recorded[url] for url in urls} == md5s
    with checker.connect(checker.catalog_path(root)) as db:
        assert db.execute("SELECT count(*) FROM fetch_leases").fetchone() == (0,)


def test_rotated_urls_of_one_asset_in_one_batch_download_once(
    http: HTTPServer, slow_cdn: list[str], make_store: Callable[..., MediaStore]
) -> None:
    """fetch_many of three signatures of one picture: one request; one result downloaded,
    the other two answered from the store once it is recorded."""
    store = make_store(resolver=lambda host, port: ["127.0.0.1"])
    results = store.fetch_many([_url(http, s) for s in ("a", "b", "c")])
    assert all(r.ok for r in results) and slow_cdn == [ASSET]
    assert sorted(r.from_cache for r in results) == [False, True, True]
    assert len({r.record.md5 for r in results if r.record}) == 1


def test_a_failed_download_ends_its_lease_and_the_waiter_asks_itself(
    http: HTTPServer, make_store: Callable[..., MediaStore]
) -> None:
    """The first signature's download fails (a 404 after a second): the lease ends with it,
    and the second signature, which waited, is requested itself (and fails on its own)."""
    asked: list[str] = []

    def gone(request: Request) -> Response:
        asked.append(request.args["t"])
        time.sleep(0.5)
        return Response("gone", status=404)

    http.expect_request(re.compile(r"^/dms/image/.*")).respond_with_handler(gone)
    store = make_store(resolver=lambda host, port: ["127.0.0.1"])
    results = store.fetch_many([_url(http, "a"), _url(http, "b")])
    assert not any(r.ok for r in results)
    assert sorted(asked) == ["a", "b"]


@pytest.mark.slow
def test_two_processes_on_a_postgresql_catalog_download_once(
    http: HTTPServer, slow_cdn: list[str], tmp_path: Path, pg_url: str
) -> None:
    """The same race with the catalog on PostgreSQL (the lease by the server's clock): one
    request, one file, both URLs recorded (plain SQL)."""
    script = _FETCH.replace("MediaStore(root,", "MediaStore(root, db_url=sys.argv[3],")
    MediaStore(tmp_path / "s", db_url=pg_url).close()
    urls = [_url(http, "one"), _url(http, "two")]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path / "s"), url, pg_url],
            stdout=subprocess.PIPE,
            text=True,
        )
        for url in urls
    ]
    outs = [proc.communicate(timeout=60)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outs
    assert len({json.loads(out)["md5"] for out in outs}) == 1 and slow_cdn == [ASSET]
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            recorded = conn.execute(text("SELECT url, md5 FROM media_urls")).all()
            leases = conn.execute(text("SELECT count(*) FROM fetch_leases")).scalar()
    finally:
        engine.dispose()
    assert sorted(url for url, _ in recorded) == sorted(urls) and leases == 0
