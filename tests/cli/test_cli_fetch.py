"""`mediastore fetch` and the legacy ``media_cache`` download wrappers, against a loopback HTTP
server."""

from __future__ import annotations

import json
import subprocess
import sys
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
    assert result.exit_code == 8  # one URL given: its error's own code (a download failure)
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


def test_legacy_download_wrappers(tmp_path: Path, served: dict[str, str]) -> None:
    """The legacy ``media_cache`` download wrappers return its dict shapes."""
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


def test_fetch_jsonl_one_object_per_url_then_a_summary(
    tmp_path: Path, served: dict[str, str]
) -> None:
    """--jsonl prints one result object per input URL and a final summary object."""
    urls = [served["a.jpg"], served["gone"], served["b.png"]]
    result = _fetch(tmp_path, "--allow-private", "--jsonl", *urls)
    assert result.exit_code == 1  # the 404
    lines = [json.loads(ln) for ln in result.stdout.splitlines()]
    *items, last = lines
    assert sorted(item["url"] for item in items) == sorted(urls)
    assert {item["url"]: item["ok"] for item in items} == {
        served["a.jpg"]: True, served["gone"]: False, served["b.png"]: True,
    }  # fmt: skip
    assert last == {"summary": {**last["summary"], "urls": 3, "fetched": 2, "failed": 1}}


def test_fetch_missing_url_file_is_one_line_exit_2(tmp_path: Path) -> None:
    """A --from-file that does not exist is a one-line error (exit 2), not a traceback."""
    result = _fetch(tmp_path, "--from-file", str(tmp_path / "nope.txt"))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "nope.txt" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_fetch_from_stdin_streams(tmp_path: Path, served: dict[str, str]) -> None:
    """With --from-file - and --jsonl, a URL's result is printed while stdin is still open:
    the input is read as it comes, not whole first."""
    command = [
        sys.executable, "-m", "mediastore", "--root", str(tmp_path / "s"), "fetch",
        "--allow-private", "--jsonl", "--from-file", "-",
    ]  # fmt: skip
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(f"# comment\n\n{served['a.jpg']}\n")
            proc.stdin.flush()
            first = json.loads(proc.stdout.readline())  # blocks forever if stdin is read whole
            assert first["url"] == served["a.jpg"] and first["ok"]
            proc.stdin.write(f"{served['b.png']}\n")
            proc.stdin.close()
            rest = [json.loads(ln) for ln in proc.stdout]
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert rest[0]["url"] == served["b.png"] and rest[0]["ok"]
    assert rest[1]["summary"]["urls"] == 2
