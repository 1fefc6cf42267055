"""Failures remembered: a URL that failed for good (404, 410, refused or corrupt content) fails
from memory within failure_ttl, with no request; refresh asks again; a success forgets it."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import checker
import pytest
from clirun import run_cli
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from mediastore import HTTPStatusError, InvalidInputError, MediaStore, RefusedContentError
from mediastore import testing as t


def _hits(http: HTTPServer, path: str) -> int:
    return sum(1 for request, _ in http.log if request.path == path)


def _failures(store: MediaStore) -> list[tuple[str, str]]:
    """(url, error) rows of url_failures, read with plain sqlite3."""
    with closing(checker.connect(checker.catalog_path(store.root))) as db:
        return db.execute("SELECT url, error FROM url_failures ORDER BY url").fetchall()


def test_a_404_fails_from_memory_and_refresh_asks_again(
    http: HTTPServer, lstore: MediaStore
) -> None:
    """The first fetch asks (404); the second fails the same way with no request and says so;
    fetch_many of it sends none either; refresh=True asks again."""
    http.expect_request("/gone.jpg").respond_with_data("no", status=404)
    url = http.url_for("/gone.jpg")
    with pytest.raises(HTTPStatusError) as first:
        lstore.fetch(url)
    assert first.value.status == 404 and _hits(http, "/gone.jpg") == 1
    with pytest.raises(HTTPStatusError, match="no request sent") as again:
        lstore.fetch(url)
    assert again.value.status == 404 and _hits(http, "/gone.jpg") == 1
    (result,) = lstore.fetch_many([url])
    assert isinstance(result.error, HTTPStatusError) and _hits(http, "/gone.jpg") == 1
    with pytest.raises(HTTPStatusError) as asked:
        lstore.fetch(url, refresh=True)
    assert "no request sent" not in str(asked.value) and _hits(http, "/gone.jpg") == 2
    assert _failures(lstore) == [(url, "HTTPStatusError")]


def test_refused_content_is_remembered_and_a_500_is_not(
    http: HTTPServer, lstore: MediaStore
) -> None:
    """An HTML page served as an image is remembered (RefusedContentError); a 500 is asked
    again every time (it may be passing)."""
    http.expect_request("/page.jpg").respond_with_data("<html></html>", content_type="image/jpeg")
    http.expect_request("/busy.jpg").respond_with_data("later", status=500)
    page, busy = http.url_for("/page.jpg"), http.url_for("/busy.jpg")
    for _ in range(2):
        with pytest.raises(RefusedContentError):
            lstore.fetch(page)
    assert _hits(http, "/page.jpg") == 1
    for _ in range(2):
        with pytest.raises(HTTPStatusError):
            lstore.fetch(busy)
    assert _hits(http, "/busy.jpg") >= 2
    assert _failures(lstore) == [(page, "RefusedContentError")]


def test_a_failure_is_forgotten_after_its_ttl_and_on_success(
    http: HTTPServer, make_store: Callable[..., MediaStore]
) -> None:
    """With failure_ttl=0.3 s, a fetch after it asks again; when the URL then serves an
    image, it is stored and its failure row is gone. failure_ttl=0 remembers nothing."""
    store = make_store("ttl", failure_ttl=0.3)
    http.expect_oneshot_request("/late.jpg").respond_with_data("no", status=404)
    url = http.url_for("/late.jpg")
    with pytest.raises(HTTPStatusError):
        store.fetch(url)
    assert _failures(store) == [(url, "HTTPStatusError")]
    time.sleep(0.35)
    http.expect_request("/late.jpg").respond_with_data(
        t.noisy_jpeg(seed=5), content_type="image/jpeg"
    )
    assert store.fetch(url).md5 and _hits(http, "/late.jpg") == 2
    assert _failures(store) == []

    never = make_store("never", failure_ttl=0)
    http.expect_request("/never.jpg").respond_with_data("no", status=410)
    for _ in range(2):
        with pytest.raises(HTTPStatusError):
            never.fetch(http.url_for("/never.jpg"))
    assert _hits(http, "/never.jpg") == 2 and _failures(never) == []


def test_failure_ttl_from_the_settings_file_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """failure_ttl is a setting like the others: mediastore.toml, then MEDIASTORE_FAILURE_TTL
    over it; a negative value is refused naming it."""
    root = tmp_path / "s"
    root.mkdir()
    (root / "mediastore.toml").write_text("failure_ttl = 60\n")
    monkeypatch.delenv("MEDIASTORE_FAILURE_TTL", raising=False)
    with MediaStore(root) as store:
        assert store.config.failure_ttl == 60.0
    monkeypatch.setenv("MEDIASTORE_FAILURE_TTL", "0")
    with MediaStore(root) as store:
        assert store.config.failure_ttl == 0.0
    monkeypatch.setenv("MEDIASTORE_FAILURE_TTL", "-1")
    with pytest.raises(InvalidInputError, match="failure_ttl"):
        MediaStore(root)


def test_retry_failed_asks_again_in_a_batch_and_on_the_command_line(
    http: HTTPServer, lstore: MediaStore
) -> None:
    """fetch_many/iter_fetch/fetch with retry_failed=True ask again for a remembered URL
    (and remember it again when it fails again); `fetch --retry-failed` does the same, a
    plain `fetch` does not; a URL that now serves an image is stored and forgotten."""
    http.expect_request("/gone.jpg").respond_with_data("no", status=404)
    url = http.url_for("/gone.jpg")
    with pytest.raises(HTTPStatusError):
        lstore.fetch(url)
    (again,) = lstore.fetch_many([url], retry_failed=True)
    assert "no request sent" not in str(again.error) and _hits(http, "/gone.jpg") == 2
    (streamed,) = list(lstore.iter_fetch([url], retry_failed=True))
    assert not streamed.ok and _hits(http, "/gone.jpg") == 3
    with pytest.raises(HTTPStatusError):
        lstore.fetch(url, retry_failed=True)
    assert _hits(http, "/gone.jpg") == 4 and _failures(lstore) == [(url, "HTTPStatusError")]
    root = str(lstore.root)
    lstore.close()
    plain = run_cli("--root", root, "fetch", "--allow-private", url)
    assert plain.returncode == 8 and "no request sent" in plain.stderr
    assert _hits(http, "/gone.jpg") == 4
    http.clear()
    http.expect_request("/gone.jpg").respond_with_data(
        t.noisy_jpeg(seed=8), content_type="image/jpeg"
    )
    retried = run_cli("--root", root, "fetch", "--allow-private", "--retry-failed", url)
    assert retried.returncode == 0, retried.stderr
    assert _hits(http, "/gone.jpg") == 1
    with closing(checker.connect(checker.catalog_path(root))) as db:
        assert db.execute("SELECT count(*) FROM url_failures").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM media_urls WHERE url = ?", (url,)).fetchone() == (
            1,
        )


def test_the_failures_command_lists_them_latest_first(http: HTTPServer, lstore: MediaStore) -> None:
    """store.failures() and `mediastore failures [--json] [--limit N]`: each remembered URL
    with its reason and when a fetch asks again (failed_at + failure_ttl); an empty store
    says so; --limit 0 is a usage error (exit 2)."""
    root = str(lstore.root)
    assert lstore.failures() == []
    http.expect_request("/a.jpg").respond_with_data("no", status=404)
    http.expect_request("/b.jpg").respond_with_data("no", status=410)
    first, second = http.url_for("/a.jpg"), http.url_for("/b.jpg")
    for url in (first, second):
        with pytest.raises(HTTPStatusError):
            lstore.fetch(url)
        time.sleep(0.01)
    listed = lstore.failures()
    assert [(f.url, f.status) for f in listed] == [(second, 410), (first, 404)]
    assert all(
        f.asks_again_at is not None and (f.asks_again_at - f.failed_at).total_seconds() == 86400
        for f in listed
    )
    assert [f.url for f in lstore.failures(limit=1)] == [second]
    with pytest.raises(InvalidInputError, match="limit"):
        lstore.failures(limit=0)
    lstore.close()
    shown = run_cli("--root", root, "failures", "--json")
    assert shown.returncode == 0, shown.stderr
    assert [(f["url"], f["status"]) for f in json.loads(shown.stdout)] == [
        (second, 410),
        (first, 404),
    ]
    text = run_cli("--root", root, "failures", "--limit", "1")
    assert text.returncode == 0 and text.stdout.splitlines()[0] == second
    assert "HTTP 410" in text.stdout and "asks again after" in text.stdout
    bad = run_cli("--root", root, "failures", "--limit", "0")
    assert bad.returncode == 2


@pytest.mark.slow
def test_a_hosts_retry_after_is_remembered_across_runs(
    http: HTTPServer, make_store: Callable[..., MediaStore]
) -> None:
    """A 429 with Retry-After: 2 in one run (a store closed after it): a new store's batch
    and a new store's single fetch send nothing to that host before the pause ends; the
    pause is a host_pauses row (plain sqlite3)."""
    arrivals: dict[str, float] = {}

    def throttled(request: Request) -> Response:
        arrivals[request.path] = time.monotonic()
        if request.path == "/first.jpg":
            return Response("slow down", status=429, headers={"Retry-After": "2"})
        return Response(t.noisy_jpeg(seed=len(request.path)), content_type="image/jpeg")

    http.expect_request(re.compile(r"^/.*\.jpg$")).respond_with_handler(throttled)
    first = make_store("s", retries=0)
    (failed,) = first.fetch_many([http.url_for("/first.jpg")])
    assert isinstance(failed.error, HTTPStatusError) and failed.error.status == 429
    first.close()
    with closing(checker.connect(checker.catalog_path(first.root))) as db:
        assert [host for (host,) in db.execute("SELECT host FROM host_pauses")] == ["127.0.0.1"]
    second = make_store("s", retries=0)
    (done,) = second.fetch_many([http.url_for("/second.jpg")])
    assert done.ok
    assert arrivals["/second.jpg"] - arrivals["/first.jpg"] >= 1.5
    second.close()
    with closing(sqlite3.connect(checker.catalog_path(first.root))) as db:  # paused again
        db.execute("UPDATE host_pauses SET until = datetime('now', '+2 seconds')")
        db.commit()
    third = make_store("s", retries=0)
    began = time.monotonic()
    assert third.fetch(http.url_for("/third.jpg")).md5
    assert arrivals["/third.jpg"] - began >= 1.0
