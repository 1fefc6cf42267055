"""`MediaStore.iter_fetch`: lazy input, bounded work in flight, results as they complete,
repeats settled by the catalog, and prompt cancellation when the consumer stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from scripted import Reply, Request, ScriptedServer

from mediastore import InvalidInputError, MediaStore
from mediastore import testing as t
from mediastore.net.downloader import AHEAD_PER_WORKER


def _temp_files(root: Path) -> list[Path]:
    return [p for p in (root / "tmp").rglob("*") if not p.is_dir()]


def _serve_images(httpserver: HTTPServer, count: int) -> list[str]:
    for i in range(count):
        httpserver.expect_request(f"/{i}.jpg").respond_with_data(
            t.noisy_jpeg(seed=i), content_type="image/jpeg"
        )
    httpserver.expect_request("/gone").respond_with_data("no", status=404)
    return [httpserver.url_for(f"/{i}.jpg") for i in range(count)]


def test_generator_is_read_lazily_within_the_bound(
    lstore: MediaStore, httpserver: HTTPServer
) -> None:
    """A generator is consumed at most AHEAD_PER_WORKER x workers URLs ahead of the results."""
    urls = _serve_images(httpserver, 30)
    workers = 2
    consumed = 0

    def source() -> Iterator[str]:
        nonlocal consumed
        for url in urls:
            consumed += 1
            yield url

    gen = lstore.iter_fetch(source(), max_workers=workers)
    assert consumed == 0  # nothing is read before iteration starts
    ahead: list[int] = []
    seen: list[str] = []
    for result in gen:
        seen.append(result.url)
        ahead.append(consumed - len(seen))
        assert result.ok and not result.from_cache, result.error
    assert sorted(seen) == sorted(urls)
    assert max(ahead) <= AHEAD_PER_WORKER * workers
    assert consumed == len(urls)


def test_results_come_while_the_input_is_slow(lstore: MediaStore, httpserver: HTTPServer) -> None:
    """A result is yielded while the generator is still waiting for its next URL (URLs piped
    in as an upstream job finds them)."""
    urls = _serve_images(httpserver, 2)
    seen_first = threading.Event()

    def source() -> Iterator[str]:
        yield urls[0]
        assert seen_first.wait(10), "the first result was held back until the next URL came"
        yield urls[1]

    results = []
    for result in lstore.iter_fetch(source(), max_workers=4):
        results.append(result.url)
        seen_first.set()
    assert results == urls


def test_an_error_of_the_input_reaches_the_consumer(lstore: MediaStore) -> None:
    """An exception raised by the input iterable propagates out of iter_fetch."""

    def source() -> Iterator[str]:
        yield "not a url"
        raise RuntimeError("upstream failed")

    with pytest.raises(RuntimeError, match="upstream failed"):
        list(lstore.iter_fetch(source(), max_workers=2))


def test_results_cover_every_input_url_and_repeats_come_from_the_catalog(
    lstore: MediaStore, httpserver: HTTPServer
) -> None:
    """One result per input URL; failures are carried; a URL repeated later is a cached hit."""
    urls = _serve_images(httpserver, 6)
    gone = httpserver.url_for("/gone")
    wanted = [*urls, gone, urls[0], "not a url", *urls]
    results = list(lstore.iter_fetch(iter(wanted), max_workers=3))
    assert sorted(r.url for r in results) == sorted(wanted)
    failed = {r.url: r for r in results if not r.ok}
    assert set(failed) == {gone, "not a url"}
    assert "404" in str(failed[gone].error)
    # every image was downloaded exactly once: later occurrences are cached hits
    downloads = [r for r in results if r.ok and not r.from_cache]
    assert sorted(r.url for r in downloads) == sorted(urls)
    image_requests = [req for req, _ in httpserver.log if req.path.endswith(".jpg")]
    assert len(image_requests) == len(urls)
    for url in urls:
        assert lstore.get_by_url(url) is not None


def test_bad_arguments_raise_at_the_call(lstore: MediaStore) -> None:
    """Out-of-range arguments raise InvalidInputError before anything is iterated."""
    with pytest.raises(InvalidInputError):
        lstore.iter_fetch(["http://x.test/"], max_workers=0)
    with pytest.raises(InvalidInputError):
        lstore.iter_fetch(["http://x.test/"], timeout=0)
    with pytest.raises(InvalidInputError):
        lstore.iter_fetch(["http://x.test/"], per_host=0)


@pytest.fixture
def drip_url(scripted: Callable[..., ScriptedServer]) -> str:
    """A JPEG announced whole, then sent one byte every 0.1 s (a stalled CDN)."""
    body = t.noisy_jpeg(seed=99)

    def drip(request: Request, reply: Reply) -> None:
        reply.start(200, {"Content-Type": "image/jpeg"}, length=len(body))
        reply.drip(body, 0.1)

    return scripted(drip).url("/drip.jpg")


@pytest.mark.slow
def test_closing_early_cancels_running_downloads(
    lstore: MediaStore, httpserver: HTTPServer, drip_url: str
) -> None:
    """Stopping after the first result ends the dripping downloads within a second or so,
    leaving no temp file and no row for them."""
    fast = _serve_images(httpserver, 1)[0]
    gen = lstore.iter_fetch([drip_url + "?1", drip_url + "?2", fast], max_workers=3)
    first = next(gen)
    assert first.url == fast and first.ok
    time.sleep(0.3)  # the drips are mid-body now
    started = time.monotonic()
    gen.close()
    assert time.monotonic() - started < 1.5
    assert _temp_files(lstore.root) == []
    assert lstore.get_by_url(drip_url + "?1") is None
    assert lstore.verify().all_ok
