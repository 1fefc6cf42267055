"""fetch / fetch_many against real HTTP servers on 127.0.0.1: cache, dedup, revalidation,
redirects, retries, parallel downloads and the user agent.

The SSRF guard, TLS, limits and broken servers are in ``test_fetch_safety.py``. Nothing here
mocks ``requests``; every connection goes to a server started by the test run on loopback.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import text
from werkzeug import Request, Response

from mediastore import (
    BlockedURLError,
    DownloadTimeoutError,
    FetchError,
    HTTPStatusError,
    InvalidInputError,
    MediaRecord,
    MediaStore,
    TooManyRedirectsError,
)
from mediastore import testing as t
from mediastore.net.policy import IPAddress
from mediastore.testing import assert_nothing_stored, catalog_rows, files_under

JPEG = "image/jpeg"


# --- servers and stores ----------------------------------------------------------------------
def only_loopback_1(ip: IPAddress) -> str | None:
    """Address policy of the tests: 127.0.0.1 is allowed, everything else refused."""
    return None if str(ip) == "127.0.0.1" else "test-refused"


# --- inspection helpers ----------------------------------------------------------------------
def hits(server: HTTPServer, path: str | None = None) -> int:
    """Requests the server received (for one path, or in all)."""
    return sum(1 for req, _ in server.log if path is None or req.path == path)


def requests_to(server: HTTPServer, path: str) -> list[Request]:
    return [req for req, _ in server.log if req.path == path]


def last_fetched_at(store: MediaStore, url: str) -> datetime:
    with store.catalog.engine.connect() as conn:
        raw = conn.execute(
            text("SELECT last_fetched_at FROM media_urls WHERE url = :u"), {"u": url}
        ).scalar_one()
    return raw if isinstance(raw, datetime) else datetime.fromisoformat(raw)


def serve(server: HTTPServer, path: str, data: bytes, **kwargs: Any) -> str:
    """Serve ``data`` as image/jpeg (unless told otherwise) at ``path``; return its URL."""
    kwargs.setdefault("content_type", JPEG)
    server.expect_request(path).respond_with_data(data, **kwargs)
    return server.url_for(path)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def same(a: MediaRecord | None, b: MediaRecord | None) -> bool:
    """Records equal but for last_verified_at (a cache hit re-hashes and stamps the file)."""
    assert a is not None and b is not None
    return a._replace(last_verified_at=None) == b._replace(last_verified_at=None)


# --- 1. single fetch and the cache ----------------------------------------------------------
def test_fetch_stores_the_image_and_records_the_url(http: HTTPServer, lstore: MediaStore) -> None:
    """A downloaded JPEG is stored at media/images/<md5>.jpg with its fields and URL."""
    data = t.noisy_jpeg((64, 48), seed=1)
    url = serve(http, "/a.jpg", data)
    rec = lstore.fetch(url, timeout=5)
    digest = md5(data)
    assert rec.md5 == digest
    assert rec.sha256 == hashlib.sha256(data).hexdigest()
    assert (rec.media_type, rec.mime_type, rec.extension) == ("image", JPEG, "jpg")
    assert (rec.size, rec.width, rec.height) == (len(data), 64, 48)
    assert rec.status == "ok"
    assert rec.url == url
    assert rec.path == lstore.root / "media" / "images" / f"{digest}.jpg"
    assert rec.path.read_bytes() == data
    assert files_under(lstore.root / "media") == [rec.path]
    assert files_under(lstore.root / "tmp") == []
    assert lstore.urls_for(digest) == [url]
    assert lstore.get_by_url(url) == rec
    assert hits(http) == 1


def test_second_fetch_is_a_cache_hit_without_any_request(
    http: HTTPServer, lstore: MediaStore
) -> None:
    """A fetched URL is served from the store: zero requests reach the server, from_cache."""
    url = serve(http, "/a.jpg", t.noisy_jpeg(seed=2))
    first = lstore.fetch(url, timeout=5)
    assert hits(http) == 1
    again = lstore.fetch(url, timeout=5)
    assert same(again, first)
    [result] = lstore.fetch_many([url], timeout=5)
    assert result.ok and result.from_cache and result.error is None
    assert same(result.record, first)
    assert hits(http) == 1


def test_cache_hit_without_verify_on_access_makes_no_request(
    http: HTTPServer, make_store: Callable[..., MediaStore]
) -> None:
    """With verify_on_access=False a cached URL is still served with zero requests."""
    store = make_store(verify_on_access=False)
    url = serve(http, "/a.jpg", t.noisy_jpeg(seed=3))
    first = store.fetch(url, timeout=5)
    assert same(store.fetch(url, timeout=5), first)
    [result] = store.fetch_many([url], timeout=5)
    assert result.from_cache and same(result.record, first)
    assert hits(http) == 1


# --- 2. dedup --------------------------------------------------------------------------------
def test_two_urls_with_the_same_bytes_share_one_file(http: HTTPServer, lstore: MediaStore) -> None:
    """Two URLs serving identical bytes give one file and one row listing both URLs."""
    data = t.noisy_jpeg(seed=4)
    url_a = serve(http, "/a.jpg", data)
    url_b = serve(http, "/b.jpg", data)
    rec_a = lstore.fetch(url_a, timeout=5)
    rec_b = lstore.fetch(url_b, timeout=5)
    assert rec_a.md5 == rec_b.md5 == md5(data)
    assert (rec_a.url, rec_b.url) == (url_a, url_b)
    assert files_under(lstore.root / "media") == [rec_a.path]
    assert lstore.urls_for(rec_a.md5) == [url_a, url_b]
    assert catalog_rows(lstore) == 1


def test_fetch_many_of_urls_with_the_same_bytes_stores_one_file(
    http: HTTPServer, lstore: MediaStore
) -> None:
    """Concurrent downloads of identical content end with one file and every URL recorded."""
    data = t.noisy_jpeg(seed=5)
    urls = [serve(http, f"/same/{i}.jpg", data) for i in range(6)]
    results = lstore.fetch_many(urls, max_workers=6, timeout=5)
    assert all(r.ok for r in results), [r.error for r in results]
    assert {r.record.md5 for r in results if r.record} == {md5(data)}
    assert len(files_under(lstore.root / "media")) == 1
    assert files_under(lstore.root / "tmp") == []
    assert sorted(lstore.urls_for(md5(data))) == sorted(urls)
    assert catalog_rows(lstore) == 1


# --- 3. damaged or missing cached files -----------------------------------------------------
def test_corrupted_cached_file_is_downloaded_again(http: HTTPServer, lstore: MediaStore) -> None:
    """A cached file with a flipped byte is quarantined and downloaded again, then restored."""
    data = t.noisy_jpeg(seed=6)
    url = serve(http, "/a.jpg", data)
    rec = lstore.fetch(url, timeout=5)
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0xFF
    rec.path.write_bytes(bytes(damaged))

    again = lstore.fetch(url, timeout=5)
    assert hits(http) == 2
    assert again.md5 == rec.md5 and again.status == "ok"
    assert rec.path.read_bytes() == data
    quarantined = files_under(lstore.root / "quarantine")
    assert len(quarantined) == 1
    assert quarantined[0].read_bytes() == bytes(damaged)
    assert lstore.get_by_md5(rec.md5).status == "ok"  # type: ignore[union-attr]


def test_deleted_cached_file_is_downloaded_again(http: HTTPServer, lstore: MediaStore) -> None:
    """A cached file removed from disk is downloaded again and put back in place."""
    data = t.noisy_jpeg(seed=7)
    url = serve(http, "/a.jpg", data)
    rec = lstore.fetch(url, timeout=5)
    rec.path.unlink()
    again = lstore.fetch(url, timeout=5)
    assert hits(http) == 2
    assert again.md5 == rec.md5 and again.status == "ok"
    assert rec.path.read_bytes() == data


def test_truncated_cached_file_is_redownloaded_without_verify_on_access(
    http: HTTPServer, make_store: Callable[..., MediaStore]
) -> None:
    """With verify_on_access=False the size check still catches a shortened cached file."""
    store = make_store(verify_on_access=False)
    data = t.noisy_jpeg(seed=8)
    url = serve(http, "/a.jpg", data)
    rec = store.fetch(url, timeout=5)
    rec.path.write_bytes(data[:-10])
    store.fetch(url, timeout=5)
    assert hits(http) == 2
    assert rec.path.read_bytes() == data


# --- 4. revalidation -------------------------------------------------------------------------
def _conditional(data: bytes, validator: str, value: str) -> Callable[[Request], Response]:
    """A handler answering 304 when the request carries the matching conditional header."""
    conditional = {"ETag": "If-None-Match", "Last-Modified": "If-Modified-Since"}[validator]

    def handler(request: Request) -> Response:
        if request.headers.get(conditional) == value:
            return Response(status=304, headers={validator: value})
        return Response(data, content_type=JPEG, headers={validator: value})

    return handler


@pytest.mark.parametrize(
    ("validator", "value", "conditional"),
    [
        ("ETag", '"v1-abc"', "If-None-Match"),
        ("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT", "If-Modified-Since"),
    ],
)
def test_refresh_revalidates_and_keeps_the_file_on_304(
    http: HTTPServer, lstore: MediaStore, validator: str, value: str, conditional: str
) -> None:
    """refresh=True sends the stored validator; a 304 keeps record and file, updates the time."""
    data = t.noisy_jpeg(seed=9)
    http.expect_request("/a.jpg").respond_with_handler(_conditional(data, validator, value))
    url = http.url_for("/a.jpg")
    rec = lstore.fetch(url, timeout=5)
    fetched = last_fetched_at(lstore, url)
    first_request = requests_to(http, "/a.jpg")[0]
    assert conditional not in first_request.headers
    mtime = rec.path.stat().st_mtime_ns
    time.sleep(0.01)

    again = lstore.fetch(url, timeout=5, refresh=True)
    assert same(again, rec)
    assert hits(http) == 2
    assert requests_to(http, "/a.jpg")[1].headers.get(conditional) == value
    assert http.log[1][1].status_code == 304
    assert rec.path.read_bytes() == data
    assert rec.path.stat().st_mtime_ns == mtime
    assert last_fetched_at(lstore, url) > fetched
    assert catalog_rows(lstore) == 1


def test_refresh_with_changed_content_stores_the_new_file(
    http: HTTPServer, lstore: MediaStore
) -> None:
    """refresh=True and a 200 with new bytes re-points the URL to the new content."""
    old, new = t.noisy_jpeg(seed=10), t.noisy_jpeg(seed=11)
    versions = iter([old, new])
    http.expect_request("/a.jpg").respond_with_handler(
        lambda _req: Response(next(versions), content_type=JPEG, headers={"ETag": '"x"'})
    )
    url = http.url_for("/a.jpg")
    assert lstore.fetch(url, timeout=5).md5 == md5(old)
    rec = lstore.fetch(url, timeout=5, refresh=True)
    assert rec.md5 == md5(new)
    assert same(lstore.get_by_url(url), rec)
    assert rec.path.read_bytes() == new


# --- 5. redirects ----------------------------------------------------------------------------
def redirect(server: HTTPServer, path: str, location: str, status: int = 302) -> str:
    server.expect_request(path).respond_with_response(
        Response(status=status, headers={"Location": location})
    )
    return server.url_for(path)


def test_redirect_records_the_asked_and_the_final_url(http: HTTPServer, lstore: MediaStore) -> None:
    """After a 302 both the asked URL and the final URL point to the content."""
    data = t.noisy_jpeg(seed=12)
    final = serve(http, "/final.jpg", data)
    start = redirect(http, "/start", "/final.jpg")
    rec = lstore.fetch(start, timeout=5)
    assert rec.url == start
    assert lstore.urls_for(rec.md5) == [start, final]
    assert lstore.get_by_url(final) is not None
    # both are cache hits now
    lstore.fetch(start, timeout=5)
    lstore.fetch(final, timeout=5)
    assert hits(http) == 2


def _chain(server: HTTPServer, hops: int, data: bytes) -> str:
    """``hops`` redirects /r0 -> /r1 -> ... -> /img.jpg; returns the first URL."""
    serve(server, "/img.jpg", data)
    for i in range(hops):
        target = f"/r{i + 1}" if i + 1 < hops else "/img.jpg"
        redirect(server, f"/r{i}", target)
    return server.url_for("/r0")


def test_five_redirects_are_followed(http: HTTPServer, lstore: MediaStore) -> None:
    """A chain of exactly max_redirects (5) hops is followed."""
    data = t.noisy_jpeg(seed=13)
    rec = lstore.fetch(_chain(http, 5, data), timeout=5)
    assert rec.md5 == md5(data)
    assert hits(http) == 6


def test_six_redirects_are_too_many(http: HTTPServer, lstore: MediaStore) -> None:
    """A chain of 6 redirects fails with TooManyRedirectsError and stores nothing."""
    with pytest.raises(TooManyRedirectsError) as info:
        lstore.fetch(_chain(http, 6, t.noisy_jpeg(seed=14)), timeout=5)
    assert info.value.url == http.url_for("/r0")
    assert hits(http, "/img.jpg") == 0
    assert_nothing_stored(lstore)


def test_redirect_limit_is_configurable(
    http: HTTPServer, make_store: Callable[..., MediaStore]
) -> None:
    """max_redirects=1 refuses a chain of two hops after two requests."""
    store = make_store(max_redirects=1)
    with pytest.raises(TooManyRedirectsError):
        store.fetch(_chain(http, 2, t.noisy_jpeg(seed=15)), timeout=5)
    assert hits(http) == 2
    assert_nothing_stored(store)


@pytest.mark.parametrize(
    "location",
    ["file:///etc/passwd", "ftp://127.0.0.1/a.jpg", "gopher://127.0.0.1:70/_x"],
)
def test_redirect_to_another_scheme_is_blocked(
    http: HTTPServer, lstore: MediaStore, location: str
) -> None:
    """A redirect to a non-http(s) URL is refused as BlockedURLError."""
    start = redirect(http, "/go", location)
    with pytest.raises(BlockedURLError):
        lstore.fetch(start, timeout=5)
    assert hits(http) == 1
    assert_nothing_stored(lstore)


# --- 13. HTTP status and retries -------------------------------------------------------------
def test_404_fails_at_once_without_retry(http: HTTPServer, lstore: MediaStore) -> None:
    """A 404 raises HTTPStatusError(404) after exactly one request."""
    http.expect_request("/missing.jpg").respond_with_data("nope", status=404)
    url = http.url_for("/missing.jpg")
    with pytest.raises(HTTPStatusError) as info:
        lstore.fetch(url, timeout=5)
    assert info.value.status == 404
    assert info.value.url == url
    assert hits(http) == 1
    assert_nothing_stored(lstore)


def _sequence(*responses: Callable[[], Response]) -> Callable[[Request], Response]:
    """A handler giving the responses in turn, repeating the last one."""
    count = itertools.count()

    def handler(_request: Request) -> Response:
        return responses[min(next(count), len(responses) - 1)]()

    return handler


def test_500_then_200_succeeds_after_a_retry(http: HTTPServer, lstore: MediaStore) -> None:
    """A 500 is retried; the following 200 is stored."""
    data = t.noisy_jpeg(seed=16)
    http.expect_request("/a.jpg").respond_with_handler(
        _sequence(lambda: Response("oops", status=500), lambda: Response(data, content_type=JPEG))
    )
    rec = lstore.fetch(http.url_for("/a.jpg"), timeout=5)
    assert rec.md5 == md5(data)
    assert hits(http) == 2


def test_503_always_fails_after_all_retries(
    http: HTTPServer, make_store: Callable[..., MediaStore]
) -> None:
    """A server that always answers 503 gets 1 + retries requests, then HTTPStatusError."""
    store = make_store(retries=2)
    http.expect_request("/a.jpg").respond_with_data("busy", status=503)
    with pytest.raises(HTTPStatusError) as info:
        store.fetch(http.url_for("/a.jpg"), timeout=5)
    assert info.value.status == 503
    assert hits(http) == 3
    assert_nothing_stored(store)


def test_no_retries_means_one_request(
    http: HTTPServer, make_store: Callable[..., MediaStore]
) -> None:
    """retries=0 sends a 503 back to the caller after a single request."""
    store = make_store(retries=0)
    http.expect_request("/a.jpg").respond_with_data("busy", status=503)
    with pytest.raises(HTTPStatusError):
        store.fetch(http.url_for("/a.jpg"), timeout=5)
    assert hits(http) == 1


@pytest.mark.slow
def test_429_retry_after_is_obeyed(http: HTTPServer, lstore: MediaStore) -> None:
    """A 429 with Retry-After: 1 is retried after about a second, then succeeds."""
    data = t.noisy_jpeg(seed=17)
    http.expect_request("/a.jpg").respond_with_handler(
        _sequence(
            lambda: Response("slow down", status=429, headers={"Retry-After": "1"}),
            lambda: Response(data, content_type=JPEG),
        )
    )
    start = time.monotonic()
    rec = lstore.fetch(http.url_for("/a.jpg"), timeout=5)
    elapsed = time.monotonic() - start
    assert rec.md5 == md5(data)
    assert hits(http) == 2
    assert elapsed >= 0.9


def test_retry_after_beyond_the_deadline_is_not_waited_for(
    http: HTTPServer, make_store: Callable[..., MediaStore]
) -> None:
    """A Retry-After longer than download_deadline ends the download at once, no retry sent."""
    store = make_store(download_deadline=1.0, retries=3)
    http.expect_request("/a.jpg").respond_with_response(
        Response("slow down", status=429, headers={"Retry-After": "5"})
    )
    start = time.monotonic()
    with pytest.raises(DownloadTimeoutError) as info:
        store.fetch(http.url_for("/a.jpg"), timeout=5)
    assert time.monotonic() - start < 1
    assert "deadline" in info.value.reason
    assert hits(http) == 1
    assert_nothing_stored(store)


# --- 14. fetch_many --------------------------------------------------------------------------
def test_fetch_many_mixed_batch(http: HTTPServer, make_store: Callable[..., MediaStore]) -> None:
    """One result per input in order; duplicates fetched once; failures isolated; progress
    counts up to the number of URLs given, once per distinct URL."""
    store = make_store(allow_private_networks=False, address_policy=only_loopback_1)
    images = {f"/img/{i}.jpg": t.noisy_jpeg((16, 16), seed=100 + i) for i in range(30)}
    good = [serve(http, path, data) for path, data in images.items()]
    http.expect_request("/gone.jpg").respond_with_data("no", status=404)
    missing = http.url_for("/gone.jpg")
    blocked = f"http://127.0.0.2:{http.port}/img/0.jpg"
    urls = [good[0], *good[:10], missing, good[3], *good[10:], blocked, good[29], good[0]]
    distinct = len(dict.fromkeys(urls))
    assert distinct == 32
    calls: list[tuple[int, int]] = []

    results = store.fetch_many(
        urls, max_workers=8, timeout=5, progress=lambda done, total: calls.append((done, total))
    )

    assert [r.url for r in results] == urls
    for path, data in images.items():
        assert hits(http, path) == 1
        result = results[urls.index(http.url_for(path))]
        assert result.ok and result.error is None
        assert result.record is not None and result.record.md5 == md5(data)
    assert hits(http, "/gone.jpg") == 1
    failed = {r.url: r.error for r in results if not r.ok}
    assert set(failed) == {missing, blocked}
    not_found = failed[missing]
    assert isinstance(not_found, HTTPStatusError) and not_found.status == 404
    assert isinstance(failed[blocked], BlockedURLError)
    assert all(r.record is None for r in results if not r.ok)
    assert results[0] == results[1] == results[-1]  # the repeated URL's one result
    # progress counts the URLs given: a repeated URL's completion counts each time it was given
    totals = {total for _, total in calls}
    done = [d for d, _ in calls]
    assert totals == {len(urls)} and len(calls) == distinct
    assert done == sorted(done) and done[-1] == len(urls)
    assert len(files_under(store.root / "media")) == 30
    assert files_under(store.root / "tmp") == []
    assert catalog_rows(store) == 30


def test_fetch_many_of_nothing_is_empty(lstore: MediaStore) -> None:
    """An empty batch returns an empty list and never calls progress."""
    calls: list[tuple[int, int]] = []
    assert lstore.fetch_many([], progress=lambda d, n: calls.append((d, n))) == []
    assert calls == []


@pytest.mark.parametrize(
    "options",
    [{"max_workers": 0}, {"per_host": 0}, {"per_host": -1}, {"timeout": 0}, {"timeout": -1.0}],
    ids=["max_workers=0", "per_host=0", "per_host=-1", "timeout=0", "timeout<0"],
)
def test_fetch_many_refuses_bad_limits(
    http: HTTPServer, lstore: MediaStore, options: dict[str, Any]
) -> None:
    """Zero or negative max_workers, per_host or timeout are InvalidInputError, no request."""
    url = serve(http, "/a.jpg", t.noisy_jpeg(seed=20))
    with pytest.raises(InvalidInputError):
        lstore.fetch_many([url], **options)
    assert hits(http) == 0


class ConcurrencyProbe:
    """A handler that records how many requests it serves at the same time."""

    def __init__(self, data: bytes, delay: float = 0.1) -> None:
        self.data = data
        self.delay = delay
        self.current = 0
        self.peak = 0
        self.by_host: dict[str, int] = {}
        self.peak_by_host: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        host = request.headers.get("Host", "").split(":")[0]
        with self._lock:
            self.current += 1
            self.by_host[host] = self.by_host.get(host, 0) + 1
            self.peak = max(self.peak, self.current)
            self.peak_by_host[host] = max(self.peak_by_host.get(host, 0), self.by_host[host])
        try:
            time.sleep(self.delay)
            # distinct content per path, so every URL is a real download
            return Response(self.data + request.path.encode(), content_type="application/pdf")
        finally:
            with self._lock:
                self.current -= 1
                self.by_host[host] -= 1


def test_fetch_many_respects_per_host(http: HTTPServer, lstore: MediaStore) -> None:
    """With max_workers=8 and per_host=2 at most two requests run against one host."""
    probe = ConcurrencyProbe(t.pdf_bytes())
    http.expect_request("/doc").respond_with_handler(probe)
    urls = [http.url_for("/doc") + f"?n={i}" for i in range(8)]
    results = lstore.fetch_many(urls, max_workers=8, per_host=2, timeout=5)
    assert all(r.ok for r in results), [r.error for r in results]
    assert 1 < probe.peak <= 2


def test_per_host_limit_is_per_host_name(
    http: HTTPServer, make_store: Callable[..., MediaStore]
) -> None:
    """per_host counts each host separately: two names may each have their own requests."""
    store = make_store(resolver=lambda _host, _port: ["127.0.0.1"])
    probe = ConcurrencyProbe(t.pdf_bytes())
    http.expect_request("/doc").respond_with_handler(probe)
    urls = [
        f"http://{host}:{http.port}/doc?n={i}" for i in range(4) for host in ("a.test", "b.test")
    ]
    results = store.fetch_many(urls, max_workers=8, per_host=1, timeout=5)
    assert all(r.ok for r in results), [r.error for r in results]
    assert probe.peak_by_host == {"a.test": 1, "b.test": 1}
    assert probe.peak == 2


def test_fetch_many_uses_config_per_host_by_default(
    http: HTTPServer, make_store: Callable[..., MediaStore]
) -> None:
    """Without per_host= the store's per_host option limits the concurrency."""
    store = make_store(per_host=1)
    probe = ConcurrencyProbe(t.pdf_bytes(), delay=0.05)
    http.expect_request("/doc").respond_with_handler(probe)
    urls = [http.url_for("/doc") + f"?n={i}" for i in range(4)]
    results = store.fetch_many(urls, max_workers=4, timeout=5)
    assert all(r.ok for r in results)
    assert probe.peak == 1


# --- 15. user agent --------------------------------------------------------------------------
def test_default_user_agent_names_mediastore(http: HTTPServer, lstore: MediaStore) -> None:
    """Downloads send a User-Agent containing mediastore/<version>."""
    lstore.fetch(serve(http, "/a.jpg", t.noisy_jpeg(seed=18)), timeout=5)
    assert "mediastore/" in requests_to(http, "/a.jpg")[0].headers["User-Agent"]


def test_custom_user_agent_is_sent(http: HTTPServer, make_store: Callable[..., MediaStore]) -> None:
    """The user_agent option replaces the User-Agent header of downloads."""
    store = make_store(user_agent="my-importer/2.0 (+https://example.org)")
    store.fetch(serve(http, "/a.jpg", t.noisy_jpeg(seed=19)), timeout=5)
    [request] = requests_to(http, "/a.jpg")
    assert request.headers["User-Agent"] == "my-importer/2.0 (+https://example.org)"


def test_fetch_error_names_the_url(http: HTTPServer, lstore: MediaStore) -> None:
    """Every fetch failure is a FetchError carrying the URL and a reason."""
    http.expect_request("/x").respond_with_data("no", status=410)
    url = http.url_for("/x")
    with pytest.raises(FetchError) as info:
        lstore.fetch(url, timeout=5)
    assert info.value.url == url
    assert "410" in info.value.reason and url in str(info.value)
