"""`mediastore fetch` and the seed's download wrappers, against a loopback HTTP server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer

import mediastore
from mediastore import FetchError, MediaStore
from mediastore import testing as t
from mediastore.cli import main


@pytest.fixture
def served(httpserver: HTTPServer) -> dict[str, str]:
    """Two images, a duplicate of one, an HTML page and a 404, by name -> URL."""
    jpg, png = t.image_bytes("JPEG"), t.image_bytes("PNG")
    httpserver.expect_request("/a.jpg").respond_with_data(jpg, content_type="image/jpeg")
    httpserver.expect_request("/b.png").respond_with_data(png, content_type="image/png")
    httpserver.expect_request("/copy.jpg").respond_with_data(jpg, content_type="image/jpeg")
    httpserver.expect_request("/page").respond_with_data(
        "<html>hi</html>", content_type="image/jpeg"
    )
    httpserver.expect_request("/gone").respond_with_data("no", status=404)
    return {
        name: httpserver.url_for(f"/{name}")
        for name in ("a.jpg", "b.png", "copy.jpg", "page", "gone")
    }


def _fetch(root: Path, *args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["--root", str(root), "fetch", *args], input=input)


def test_fetch_summary_and_cache(tmp_path: Path, served: dict[str, str]) -> None:
    """Fetched URLs are summarised; a second run finds them cached; exit 0."""
    urls = [served["a.jpg"], served["b.png"], served["copy.jpg"]]
    first = _fetch(tmp_path, "--allow-private", *urls)
    assert first.exit_code == 0, first.output
    assert "fetched 3, already cached 0, failed 0" in first.stdout
    again = json.loads(_fetch(tmp_path, "--allow-private", "--json", *urls).stdout)
    assert again["summary"]["cached"] == 3 and again["summary"]["fetched"] == 0
    assert [r["url"] for r in again["results"]] == urls


def test_fetch_failures_exit_nonzero_with_one_line_each(
    tmp_path: Path, served: dict[str, str]
) -> None:
    """Each failed URL is one stderr line with its reason; exit 1; the rest still stored."""
    result = _fetch(tmp_path, "--allow-private", served["a.jpg"], served["page"], served["gone"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert any(served["page"] in ln and "HTML" in ln for ln in lines)
    assert any(served["gone"] in ln and "404" in ln for ln in lines)
    assert "Traceback" not in result.output
    with MediaStore(tmp_path) as store:
        assert store.get_by_url(served["a.jpg"]) is not None
        assert store.get_by_url(served["page"]) is None


def test_fetch_refuses_loopback_by_default(tmp_path: Path, served: dict[str, str]) -> None:
    """Without --allow-private a loopback URL is refused and nothing is requested."""
    result = _fetch(tmp_path, served["a.jpg"])
    assert result.exit_code == 1
    assert "loopback" in result.stderr


def test_fetch_urls_from_file_and_stdin(tmp_path: Path, served: dict[str, str]) -> None:
    """--from-file reads URLs (comments and blanks skipped); '-' reads stdin."""
    listing = tmp_path / "urls.txt"
    listing.write_text(f"# media\n{served['a.jpg']}\n\n{served['b.png']}\n")
    from_file = _fetch(tmp_path / "s", "--allow-private", "--from-file", str(listing), "--json")
    assert json.loads(from_file.stdout)["summary"]["urls"] == 2
    from_stdin = _fetch(
        tmp_path / "s", "--allow-private", "--from-file", "-", input=served["a.jpg"]
    )
    assert "already cached 1" in from_stdin.stdout


def test_fetch_needs_urls_and_sane_options(tmp_path: Path) -> None:
    """No URL, zero workers or a negative timeout are usage errors (exit 2)."""
    assert _fetch(tmp_path).exit_code == 2
    assert _fetch(tmp_path, "--workers", "0", "http://x.test/").exit_code == 2
    assert _fetch(tmp_path, "--timeout", "-1", "http://x.test/").exit_code == 2


def test_seed_download_wrappers(tmp_path: Path, served: dict[str, str]) -> None:
    """The seed's download wrappers return its dict shapes."""
    mediastore.set_default_store(MediaStore(tmp_path, allow_private_networks=True))
    one = mediastore.download_and_cache_media(served["a.jpg"], media_type="image")
    assert {
        "md5_sum",
        "local_path",
        "file_size",
        "media_type",
        "mime_type",
        "url",
        "width",
        "height",
    } <= one.keys()
    assert one["url"] == served["a.jpg"] and Path(one["local_path"]).is_file()
    many = mediastore.download_multiple_media([served["b.png"], served["gone"], served["copy.jpg"]])
    assert [d["url"] for d in many] == [served["b.png"], served["copy.jpg"]]
    assert many[1]["md5_sum"] == one["md5_sum"]
    assert mediastore.find_cached_by_url(served["b.png"])["mime_type"] == "image/png"  # type: ignore[index]
    assert mediastore.find_cached_by_url("https://unknown.test/x") is None
    with pytest.raises(FetchError, match="404"):
        mediastore.download_and_cache_media(served["gone"])
