"""Failures remembered: a URL that failed for good (404, 410, refused or corrupt content) fails
from memory within failure_ttl, with no request; refresh asks again; a success forgets it."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import checker
import pytest
from pytest_httpserver import HTTPServer

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
