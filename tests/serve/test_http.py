"""The HTTP behaviour of ``mediastore serve``, through a real client on loopback."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import pytest
import requests
from PIL import Image
from served import Served, run_in_thread

from mediastore import MediaStore
from mediastore.serve import Limits
from mediastore.testing import image_bytes


def get(served: Served, path: str, **kwargs: object) -> requests.Response:
    return requests.get(served.url + path.lstrip("/"), timeout=10, **kwargs)  # type: ignore[arg-type]


def test_media_bytes_and_headers(served: Served) -> None:
    """The bytes hash to their md5; type from the catalog; ETag, cache, nosniff headers."""
    md5 = served.md5s["jpeg"]
    resp = get(served, f"/media/{md5}")
    assert resp.status_code == 200
    assert hashlib.md5(resp.content).hexdigest() == md5
    assert resp.headers["Content-Type"] == "image/jpeg"
    assert resp.headers["ETag"] == f'"{md5}"'
    assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Accept-Ranges"] == "bytes"
    assert "Content-Security-Policy" not in resp.headers


def test_extension_is_allowed_and_type_still_from_catalog(served: Served) -> None:
    """A name's extension changes nothing: the type is the catalog's."""
    md5 = served.md5s["png"]
    resp = get(served, f"/media/{md5}.jpg")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "image/png"


def test_pdf_is_sandboxed(served: Served) -> None:
    """A PDF carries a sandbox policy: it cannot script the gallery's origin."""
    resp = get(served, f"/media/{served.md5s['pdf']}.pdf")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/pdf"
    assert resp.headers["Content-Security-Policy"] == "sandbox"


def test_if_none_match_gives_304(served: Served) -> None:
    """The md5 ETag (or *) matches: 304, no body, the same validators."""
    md5 = served.md5s["jpeg"]
    for tag in (f'"{md5}"', f'"other", W/"{md5}"', "*"):
        resp = get(served, f"/media/{md5}", headers={"If-None-Match": tag})
        assert resp.status_code == 304
        assert resp.content == b""
        assert resp.headers["ETag"] == f'"{md5}"'
        assert resp.headers["Cache-Control"].endswith("immutable")
    assert get(served, f"/media/{md5}", headers={"If-None-Match": '"x"'}).status_code == 200


def test_head_has_headers_and_no_body(served: Served) -> None:
    """HEAD: the GET's headers and length, no body."""
    md5 = served.md5s["jpeg"]
    full = get(served, f"/media/{md5}")
    resp = requests.head(served.url + f"media/{md5}", timeout=10)
    assert resp.status_code == 200
    assert resp.content == b""
    assert int(resp.headers["Content-Length"]) == len(full.content)
    assert resp.headers["ETag"] == f'"{md5}"'


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [("bytes=0-9", 0, 9), ("bytes=100-", 100, None), ("bytes=-50", -50, None)],
)
def test_single_range_gives_206(served: Served, header: str, start: int, end: int | None) -> None:
    """One byte range: 206, Content-Range, exactly those bytes."""
    md5 = served.md5s["jpeg"]
    whole = get(served, f"/media/{md5}").content
    resp = get(served, f"/media/{md5}", headers={"Range": header})
    assert resp.status_code == 206
    want = whole[start : None if end is None else end + 1]
    assert resp.content == want
    first = start % len(whole)
    assert resp.headers["Content-Range"] == f"bytes {first}-{first + len(want) - 1}/{len(whole)}"


def test_unsatisfiable_range_gives_416(served: Served) -> None:
    """A range past the end: 416 with the size, no bytes of the file."""
    md5 = served.md5s["jpeg"]
    size = len(get(served, f"/media/{md5}").content)
    resp = get(served, f"/media/{md5}", headers={"Range": f"bytes={size}-"})
    assert resp.status_code == 416
    assert resp.headers["Content-Range"] == f"bytes */{size}"
    assert resp.json()["status"] == 416


def test_several_ranges_send_the_whole_file(served: Served) -> None:
    """Several ranges are ignored (HTTP allows it): 200 with the whole file."""
    md5 = served.md5s["jpeg"]
    resp = get(served, f"/media/{md5}", headers={"Range": "bytes=0-1,5-9"})
    assert resp.status_code == 200
    assert hashlib.md5(resp.content).hexdigest() == md5


def test_if_range_with_another_validator_sends_all(served: Served) -> None:
    """If-Range names another version: the whole file, not the range."""
    md5 = served.md5s["jpeg"]
    resp = get(served, f"/media/{md5}", headers={"Range": "bytes=0-9", "If-Range": '"x"'})
    assert resp.status_code == 200
    resp = get(served, f"/media/{md5}", headers={"Range": "bytes=0-9", "If-Range": f'"{md5}"'})
    assert resp.status_code == 206


@pytest.mark.parametrize(
    "path",
    [
        "/media/../../etc/passwd",
        "/media/..%2F..%2Fetc%2Fpasswd",
        "/media/%2e%2e/%2e%2e/etc/passwd",
        "/media/..%252F..%252Fetc%252Fpasswd",
        "/media/not-an-md5",
        "/media/zzzz0000zzzz0000zzzz0000zzzz0000",
        "/media/" + "a" * 31,
        "/media/",
        "/media",
        "/thumb/../../etc/passwd/128",
        "/api/media/..%2F..%2Fetc%2Fpasswd",
    ],
)
def test_traversal_and_bad_md5s_are_404(served: Served, path: str) -> None:
    """Nothing outside the store is reachable; a non-md5 is a 404 with a JSON body."""
    with socket.create_connection(("127.0.0.1", int(served.url.rsplit(":", 1)[1].strip("/")))) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] in (b"404", b"400"), head
    assert b"root:" not in body
    assert body.startswith(b"{")


def test_unknown_md5_is_404_json(served: Served) -> None:
    resp = get(served, "/media/" + "0" * 32)
    assert resp.status_code == 404
    assert resp.headers["Content-Type"].startswith("application/json")
    assert "error" in resp.json()


def test_missing_file_is_404_and_short_file_410(served_factory: Callable[..., Served]) -> None:
    """A file gone from disk: 404; a file of the wrong size: 410; no byte of either."""
    served = served_factory()
    jpeg = served.store.get_by_md5(served.md5s["jpeg"])
    png = served.store.get_by_md5(served.md5s["png"])
    assert jpeg is not None and jpeg.path is not None and png is not None and png.path is not None
    jpeg.path.unlink()
    png.path.write_bytes(png.path.read_bytes()[:-10])
    gone = get(served, f"/media/{jpeg.md5}")
    assert gone.status_code == 404
    assert gone.json()["error"]
    short = get(served, f"/media/{png.md5}")
    assert short.status_code == 410
    assert short.json()["error"]


def test_no_directory_listing(served: Served) -> None:
    """Directories of the store are never listed."""
    for path in ("/media/", "/thumb/", "/derived/", "/api/"):
        resp = get(served, path)
        assert resp.status_code == 404
        assert "Index of" not in resp.text


def test_by_url_redirects(served: Served) -> None:
    """A stored URL redirects to its file; an unknown one is 404."""
    resp = get(
        served, "/by-url", params={"url": "https://example.com/a.jpg"}, allow_redirects=False
    )
    assert resp.status_code == 302
    assert resp.headers["Location"] == f"/media/{served.md5s['jpeg']}.jpg"
    assert get(served, "/by-url", params={"url": "https://example.com/zz.jpg"}).status_code == 404


def test_api_list_filters_and_cursor(served: Served) -> None:
    """/api/media: the ls filters, and a cursor that walks every file once."""
    images = get(served, "/api/media", params={"type": "image"}).json()
    assert {m["md5"] for m in images["media"]} == {served.md5s["jpeg"], served.md5s["png"]}
    assert all("path" not in m for m in images["media"])
    seen: list[str] = []
    params: dict[str, str] = {"limit": "1"}
    while True:
        page = get(served, "/api/media", params=params).json()
        seen += [m["md5"] for m in page["media"]]
        if not page["next"]:
            break
        params["after"] = page["next"]
    assert sorted(seen) == sorted(served.md5s.values())
    assert len(seen) == 3
    assert get(served, "/api/media", params={"type": "sound"}).status_code == 400
    assert get(served, "/api/media", params={"min_size": "x"}).status_code == 400


def test_api_media_and_stats(served: Served) -> None:
    """/api/media/<md5>: the record, URLs, references, variants; /api/stats: the counts."""
    md5 = served.md5s["pdf"]
    item = get(served, f"/api/media/{md5}").json()
    assert item["md5"] == md5
    assert item["urls"] == ["https://example.com/c.pdf"]
    assert item["references"] == []
    assert "pages" in item
    stats = get(served, "/api/stats").json()
    assert stats["total_files"] == 3
    assert get(served, "/api/media/" + "1" * 32).status_code == 404


def test_thumbnails(served: Served) -> None:
    """A JPEG at most the size asked; kept as a derived file; other sizes 404; not for a PDF."""
    md5 = served.md5s["jpeg"]
    resp = get(served, f"/thumb/{md5}/128")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "image/jpeg"
    with Image.open(BytesIO(resp.content)) as im:
        assert max(im.size) == 128
    kept = served.store.root / "derived" / "thumbs" / md5[:2] / f"{md5}-128.jpg"
    assert kept.read_bytes() == resp.content
    again = get(served, f"/thumb/{md5}/128")
    assert again.content == resp.content
    assert get(served, f"/thumb/{md5}/100").status_code == 404
    assert get(served, f"/thumb/{md5}/abc").status_code == 404
    assert get(served, f"/thumb/{served.md5s['pdf']}/128").status_code == 404


def test_thumbnail_of_a_decompression_bomb_is_refused(
    served_factory: Callable[..., Served],
) -> None:
    """An image over the store's pixel cap is never decoded: 413."""
    served = served_factory(store_options={"max_image_pixels": 1000})
    resp = get(served, f"/thumb/{served.md5s['png']}/128")  # 64x48 = 3072 pixels
    assert resp.status_code == 413
    assert resp.json()["error"]


def test_thumbnail_of_a_real_bomb_is_refused(tmp_path: Path) -> None:
    """A 48 KB PNG declaring 20000x20000 pixels, stored under a raised cap, is refused by a
    server whose store has the default cap: 413, nothing kept, the server still answers."""
    big = Image.new("1", (20000, 20000))
    out = BytesIO()
    big.save(out, "PNG")
    root = tmp_path / "bomb"
    with MediaStore(root, max_image_pixels=10**9) as writer:
        md5 = writer.add_bytes(out.getvalue()).md5
    with MediaStore(root, read_only=True) as store:
        url, stop = run_in_thread(store)
        try:
            started = time.monotonic()
            resp = requests.get(f"{url}thumb/{md5}/128", timeout=30)
            assert resp.status_code == 413
            assert time.monotonic() - started < 5  # refused before decoding
            assert not (root / "derived" / "thumbs" / md5[:2]).exists()
            assert requests.get(f"{url}api/stats", timeout=10).status_code == 200
        finally:
            stop()


def test_token_required(served_factory: Callable[..., Served]) -> None:
    """With a token: 401 without it, in by Bearer header or by the login form's cookie."""
    served = served_factory(token="s3cret")
    md5 = served.md5s["jpeg"]
    assert get(served, f"/media/{md5}").status_code == 401
    assert get(served, f"/media/{md5}", headers={"Authorization": "Bearer nope"}).status_code == 401
    ok = get(served, f"/media/{md5}", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200
    page = get(served, "/", headers={"Accept": "text/html"}, allow_redirects=False)
    assert page.status_code == 303
    session = requests.Session()
    bad = session.post(served.url + "login", data={"token": "x"}, timeout=10)
    assert bad.status_code == 401
    login = session.post(served.url + "login", data={"token": "s3cret", "next": "/"}, timeout=10)
    assert login.status_code == 200
    assert "Gallery" in login.text
    assert session.get(served.url + f"media/{md5}", timeout=10).status_code == 200


def test_login_does_not_redirect_elsewhere(served_factory: Callable[..., Served]) -> None:
    served = served_factory(token="t")
    resp = requests.post(
        served.url + "login",
        data={"token": "t", "next": "//evil.example/"},
        allow_redirects=False,
        timeout=10,
    )
    assert resp.status_code == 303
    assert resp.headers["Location"] == "/"


def test_slow_client_is_cut(served_factory: Callable[..., Served]) -> None:
    """A client trickling its headers is disconnected after the header deadline."""
    served = served_factory(limits=Limits(header_timeout=0.5))
    port = int(served.url.rsplit(":", 1)[1].strip("/"))
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(5)
        started = time.monotonic()
        s.sendall(b"GET / HTTP/1.1\r\n")
        closed = False
        while time.monotonic() - started < 4:
            try:
                s.sendall(b"X-a: b\r\n")
                if s.recv(1024) == b"":
                    closed = True
                    break
            except (ConnectionError, TimeoutError):
                closed = True
                break
            time.sleep(0.1)
        assert closed
        assert time.monotonic() - started < 3
    # the server still answers others
    assert get(served, "/api/stats").status_code == 200


def test_connection_cap(served_factory: Callable[..., Served]) -> None:
    """Connections over the cap are closed at once; the held ones keep working."""
    served = served_factory(limits=Limits(max_connections=2))
    port = int(served.url.rsplit(":", 1)[1].strip("/"))
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    try:
        time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", port)) as extra:
            extra.settimeout(5)
            with contextlib.suppress(ConnectionResetError):
                assert extra.recv(10) == b""
        held[0].sendall(b"GET /api/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        held[0].settimeout(5)
        assert held[0].recv(12).startswith(b"HTTP/1.1 200")
    finally:
        for s in held:
            s.close()


def test_gallery_pages(served: Served) -> None:
    """The grid, a detail page and the stats page are HTML with a strict policy."""
    index = get(served, "/")
    assert index.status_code == 200
    assert "Content-Security-Policy" in index.headers
    assert f"/thumb/{served.md5s['jpeg']}/256" in index.text
    assert 'alt="' in index.text
    detail = get(served, f"/item/{served.md5s['pdf']}")
    assert "https://example.com/c.pdf" in detail.text
    stats = get(served, "/stats")
    assert "<svg" in stats.text
    filtered = get(served, "/", params={"type": "document"})
    assert served.md5s["jpeg"] not in filtered.text
    assert get(served, "/item/xyz").status_code == 404


def test_png_thumbnail_transparency_on_white(served: Served) -> None:
    assert image_bytes("PNG") is not None  # the builder exists for the bomb test's source
    resp = get(served, f"/thumb/{served.md5s['png']}/256")
    assert resp.status_code == 200


def test_a_detail_page_lists_near_duplicates(tmp_path: Path) -> None:
    """An image's detail page and its API record list the stored images within the default
    distance (linked, with the distance); a PDF has none."""
    from mediastore import testing as t

    picture = t.photo(21, (320, 240))
    buffers = {fmt: BytesIO() for fmt in ("PNG", "JPEG")}
    for fmt, buf in buffers.items():
        picture.save(buf, fmt)
    with MediaStore(tmp_path / "store") as writer:
        png = writer.add_bytes(buffers["PNG"].getvalue()).md5
        jpeg = writer.add_bytes(buffers["JPEG"].getvalue()).md5
        pdf = writer.add_bytes(t.pdf_bytes()).md5
        writer.index()
    store = MediaStore(tmp_path / "store", read_only=True)
    url, stop = run_in_thread(store)
    served = Served(url, store, {})
    try:
        page = get(served, f"/item/{png}")
        assert "<h2>Near-duplicates</h2>" in page.text
        assert f'<a href="/item/{jpeg}">{jpeg}</a> distance' in page.text
        (hit,) = get(served, f"/api/media/{png}").json()["near_duplicates"]
        assert hit["md5"] == jpeg and hit["distance"] <= 4
        assert get(served, f"/api/media/{pdf}").json()["near_duplicates"] == []
    finally:
        stop()
        store.close()
