"""Downloads of hostile URLs and broken servers: the SSRF guard (schemes, addresses, every
redirect hop, DNS rebinding, proxies), TLS, size limits, gzip bombs, truncated bodies,
drip-feeding and stalled servers, non-media bodies; none of them may leave anything behind.

Every server is real and bound to a loopback address by the test run. A fake resolver only
ever answers loopback addresses. Broken servers are scripted servers (tests/scripted.py)
sending raw bytes, since a well-behaved framework cannot lie about Content-Length.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import socket
import ssl
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme
from pytest_httpserver import HTTPServer
from scripted import Handler, Reply, Request, Start
from werkzeug import Response

from mediastore import (
    BlockedURLError,
    CorruptDownloadError,
    DownloadTimeoutError,
    DownloadTooLargeError,
    FetchConnectionError,
    FetchError,
    FileTooLargeError,
    HTTPStatusError,
    ImageTooLargeError,
    InvalidInputError,
    InvalidURLError,
    MediaStore,
    MediaStoreError,
    RefusedContentError,
    TooManyRedirectsError,
    TruncatedDownloadError,
    UnresolvableHostError,
    UnsupportedMediaError,
)
from mediastore import testing as t
from mediastore.net import client as fetch_module
from mediastore.net.client import FetchSettings, make_session, open_url
from mediastore.net.policy import IPAddress, refused_reason
from mediastore.testing import assert_nothing_stored, files_under

JPEG = "image/jpeg"


# --- misbehaving peers: scripted servers sending raw bytes -----------------------------------
def head(status: str = "200 OK", **headers: str | int) -> bytes:
    """A response head; keyword names use _ for - (Content_Length -> Content-Length)."""
    lines = [f"HTTP/1.1 {status}", "Connection: close"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def respond(data: bytes) -> Handler:
    """A handler that sends ``data`` (head and body) and closes."""

    def behaviour(request: Request, reply: Reply) -> None:
        reply.send(data)

    return behaviour


def chunked(body: bytes, size: int = 16384) -> bytes:
    """``body`` in chunked transfer encoding, with its terminating zero chunk."""
    parts = [
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
        for i in range(0, len(body), size)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


# --- stores ------------------------------------------------------------------------------------
#: Retries of the stores made by make_store (conftest): one is enough to test retrying.
STORE_RETRIES = 1


def only(*allowed: str) -> Callable[[IPAddress], str | None]:
    """An address policy allowing exactly ``allowed`` and refusing the rest ("test-refused")."""
    return lambda ip: None if str(ip) in allowed else "test-refused"


def mapping(table: dict[str, str], calls: list[str] | None = None) -> Callable[..., list[str]]:
    """A fake resolver answering from ``table`` (loopback addresses only); logs its calls."""

    def resolve(host: str, _port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [table[host]]

    return resolve


def serve(server: HTTPServer, path: str, data: bytes | str, **kwargs: Any) -> str:
    kwargs.setdefault("content_type", JPEG)
    server.expect_request(path).respond_with_data(data, **kwargs)
    return server.url_for(path)


# --- 6. the address policy and URL checks ----------------------------------------------------
def test_default_policy_refuses_a_loopback_literal(http: HTTPServer, store: MediaStore) -> None:
    """Under the default policy http://127.0.0.1:<port>/ is refused; the server sees nothing."""
    url = serve(http, "/a.jpg", t.noisy_jpeg())
    with pytest.raises(BlockedURLError) as info:
        store.fetch(url, timeout=2)
    assert "loopback" in info.value.reason
    assert http.log == []
    assert_nothing_stored(store)


@pytest.mark.parametrize(
    "spelling", ["127.1", "2130706433", "0x7f.0.0.1", "0177.0.0.1", "[::ffff:127.0.0.1]"]
)
def test_default_policy_refuses_odd_loopback_spellings(
    http: HTTPServer, store: MediaStore, spelling: str
) -> None:
    """Other spellings of loopback are refused too, with no request."""
    serve(http, "/a.jpg", t.noisy_jpeg())
    with pytest.raises(BlockedURLError):
        store.fetch(f"http://{spelling}:{http.port}/a.jpg", timeout=2)
    assert http.log == []


def test_default_policy_refuses_a_name_resolving_to_loopback(
    http: HTTPServer, tmp_path: Path
) -> None:
    """A host name whose (fake) DNS answer is 127.0.0.1 is refused before connecting."""
    serve(http, "/a.jpg", t.noisy_jpeg())
    with MediaStore(tmp_path / "s", resolver=lambda h, p: ["127.0.0.1"]) as store:
        with pytest.raises(BlockedURLError) as info:
            store.fetch(f"http://media.test:{http.port}/a.jpg", timeout=2)
        assert "loopback" in info.value.reason
        assert_nothing_stored(store)
    assert http.log == []


def test_unresolvable_host_is_its_own_error(tmp_path: Path) -> None:
    """A name the resolver cannot resolve raises UnresolvableHostError."""
    with MediaStore(tmp_path / "s", resolver=mapping({})) as store:
        with pytest.raises(UnresolvableHostError):
            store.fetch("http://nowhere.test/a.jpg", timeout=2)
        assert_nothing_stored(store)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/a.jpg",
        "data:image/png;base64,iVBORw0KGgo=",
        "gopher://127.0.0.1:70/_GET",
        "FILE:///etc/passwd",
        "/etc/passwd",
    ],
)
def test_other_schemes_are_blocked(store: MediaStore, url: str) -> None:
    """Only http and https may be fetched: file, ftp, data, gopher... raise BlockedURLError
    (a path, which has no scheme at all, is not a URL: InvalidURLError)."""
    with pytest.raises(InvalidURLError if url.startswith("/") else BlockedURLError):
        store.fetch(url, timeout=2)
    assert_nothing_stored(store)


@pytest.mark.parametrize("userinfo", ["user:secret@", "user@", ":x@"])
def test_url_with_credentials_is_blocked(
    http: HTTPServer, lstore: MediaStore, userinfo: str
) -> None:
    """Credentials in the URL are refused even when private networks are allowed."""
    serve(http, "/a.jpg", t.noisy_jpeg())
    with pytest.raises(BlockedURLError) as info:
        lstore.fetch(f"http://{userinfo}127.0.0.1:{http.port}/a.jpg", timeout=2)
    assert "credentials" in info.value.reason
    assert http.log == []
    assert_nothing_stored(lstore)


def test_proxies_in_the_environment_are_ignored(
    http: HTTPServer,
    lstore: MediaStore,
    scripted: Start,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTP(S)_PROXY / ALL_PROXY are not used: the target gets the request, the proxy nothing."""
    proxy = scripted(respond(head("502 Bad Gateway", Content_Length=0)))
    proxy_url = f"http://127.0.0.1:{proxy.port}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, proxy_url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    data = t.noisy_jpeg(seed=1)
    url = serve(http, "/a.jpg", data)
    # the environment really names the proxy for this URL (requests would use it by default)
    assert requests.utils.get_environ_proxies(url).get("http") == proxy_url

    rec = lstore.fetch(url, timeout=2)
    assert rec.md5 == hashlib.md5(data).hexdigest()
    assert len(http.log) == 1
    assert http.log[0][0].path == "/a.jpg"
    assert proxy.connections == 0


def test_netrc_credentials_are_not_sent(
    http: HTTPServer, lstore: MediaStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A .netrc entry for the host is ignored: downloads carry no Authorization header."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login alice password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    url = serve(http, "/a.jpg", t.noisy_jpeg(seed=16))
    assert requests.utils.get_netrc_auth(url) == ("alice", "s3cret")  # the file is readable
    lstore.fetch(url, timeout=2)
    [(request, _)] = http.log
    assert "Authorization" not in request.headers


# --- 5. redirect hops go through the same guard ----------------------------------------------
def test_redirect_to_a_refused_address_is_blocked_before_connecting(
    http: HTTPServer, make_store: Callable[..., MediaStore], scripted: Start
) -> None:
    """A redirect to 127.0.0.2 under a policy refusing it raises BlockedURLError, no connect."""
    inner = scripted(respond(head(Content_Length=0)), host="127.0.0.2")
    store = make_store(allow_private_networks=False, address_policy=only("127.0.0.1"))
    http.expect_request("/go").respond_with_response(
        Response(status=302, headers={"Location": inner.url("/secret")})
    )
    with pytest.raises(BlockedURLError) as info:
        store.fetch(http.url_for("/go"), timeout=2)
    assert "test-refused" in info.value.reason
    assert "127.0.0.2" in info.value.reason
    assert len(http.log) == 1
    assert inner.connections == 0
    assert_nothing_stored(store)


def test_redirect_to_a_url_with_credentials_is_blocked(
    http: HTTPServer, lstore: MediaStore
) -> None:
    """A redirect hop carrying user:password@ is refused like a first URL would be."""
    serve(http, "/a.jpg", t.noisy_jpeg(seed=17))
    http.expect_request("/go").respond_with_response(
        Response(status=302, headers={"Location": f"http://u:p@127.0.0.1:{http.port}/a.jpg"})
    )
    with pytest.raises(BlockedURLError) as info:
        lstore.fetch(http.url_for("/go"), timeout=2)
    assert "credentials" in info.value.reason
    assert [req.path for req, _ in http.log] == ["/go"]
    assert_nothing_stored(lstore)


def test_redirect_from_an_allowed_name_to_a_refused_name_is_blocked(
    http: HTTPServer, make_store: Callable[..., MediaStore], scripted: Start
) -> None:
    """Default policy (plus 127.0.0.1 for the test): a hop to a name on 127.0.0.3 is refused."""
    inner = scripted(respond(head(Content_Length=0)), host="127.0.0.3")
    calls: list[str] = []
    store = make_store(
        allow_private_networks=False,
        address_policy=lambda ip: None if str(ip) == "127.0.0.1" else refused_reason(ip),
        resolver=mapping({"media.test": "127.0.0.1", "inner.test": "127.0.0.3"}, calls),
    )
    http.expect_request("/go").respond_with_response(
        Response(status=301, headers={"Location": inner.url("/x", host="inner.test")})
    )
    with pytest.raises(BlockedURLError) as info:
        store.fetch(f"http://media.test:{http.port}/go", timeout=2)
    assert "loopback" in info.value.reason and "inner.test" in info.value.reason
    assert calls == ["media.test", "inner.test"]
    assert http.log[0][0].headers["Host"] == f"media.test:{http.port}"
    assert inner.connections == 0
    assert_nothing_stored(store)


def test_redirect_to_a_literal_loopback_under_default_policy_is_blocked(
    http: HTTPServer, make_store: Callable[..., MediaStore]
) -> None:
    """A public-looking name may not redirect to http://127.0.0.1/ under the default policy."""
    # Both hops land on 127.0.0.1, so the policy cannot tell them apart by address: it lets
    # the first check through (standing in for a public address) and applies the default
    # policy from then on, which must refuse the second hop before any connection.
    reached: list[str] = []

    def policy(ip: IPAddress) -> str | None:
        reached.append(str(ip))
        return None if len(reached) == 1 else refused_reason(ip)

    store = make_store(
        allow_private_networks=False,
        address_policy=policy,
        resolver=mapping({"media.test": "127.0.0.1"}),
    )
    http.expect_request("/go").respond_with_response(
        Response(status=302, headers={"Location": http.url_for("/a.jpg")})
    )
    serve(http, "/a.jpg", t.noisy_jpeg())
    with pytest.raises(BlockedURLError) as info:
        store.fetch(f"http://media.test:{http.port}/go", timeout=2)
    assert "loopback" in info.value.reason
    assert reached == ["127.0.0.1", "127.0.0.1"]
    assert [req.path for req, _ in http.log] == ["/go"]
    assert_nothing_stored(store)


# --- 7. DNS rebinding ------------------------------------------------------------------------
def test_dns_rebinding_cannot_reach_the_refused_address(
    http: HTTPServer, make_store: Callable[..., MediaStore]
) -> None:
    """The checked answer is the one connected to: a later 127.0.0.1 answer is never used."""
    calls: list[str] = []

    def rebinding(host: str, _port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.2"] if len(calls) == 1 else ["127.0.0.1"]

    store = make_store(
        allow_private_networks=False,
        address_policy=only("127.0.0.2"),
        resolver=rebinding,
        retries=2,
    )
    serve(http, "/a.jpg", t.noisy_jpeg())  # listens on 127.0.0.1 only
    with pytest.raises(FetchConnectionError):
        store.fetch(f"http://rebind.test:{http.port}/a.jpg", timeout=2)
    assert calls == ["rebind.test"]  # once for the one hop, retries included
    assert http.log == []
    assert_nothing_stored(store)


def test_resolver_is_called_once_per_redirect_hop(
    http: HTTPServer, make_store: Callable[..., MediaStore]
) -> None:
    """Each hop of a redirect chain is resolved exactly once."""
    calls: list[str] = []
    store = make_store(resolver=mapping({"a.test": "127.0.0.1", "b.test": "127.0.0.1"}, calls))
    http.expect_request("/go").respond_with_response(
        Response(status=302, headers={"Location": f"http://b.test:{http.port}/a.jpg"})
    )
    serve(http, "/a.jpg", t.noisy_jpeg(seed=2))
    store.fetch(f"http://a.test:{http.port}/go", timeout=2)
    assert calls == ["a.test", "b.test"]
    assert [req.headers["Host"] for req, _ in http.log] == [
        f"a.test:{http.port}",
        f"b.test:{http.port}",
    ]


def test_connection_refused_is_a_connection_error(make_store: Callable[..., MediaStore]) -> None:
    """A port with no listener gives FetchConnectionError (not a timeout), after retries."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    store = make_store(retries=1)
    start = time.monotonic()
    with pytest.raises(FetchConnectionError) as info:
        store.fetch(f"http://127.0.0.1:{port}/a.jpg", timeout=5)
    assert not isinstance(info.value, DownloadTimeoutError)
    assert "refused" in info.value.reason.lower()
    assert time.monotonic() - start < 2
    assert_nothing_stored(store)


# --- 8. TLS ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HTTPServer, str]]:
    """An https pytest-httpserver on 127.0.0.1 with a trustme certificate for media.test,
    and the path of the CA bundle that trusts it."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("media.test").configure_cert(context)
    ca_path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context, threaded=True)
    server.start()
    yield server, str(ca_path)
    server.clear()
    server.stop()


@pytest.fixture
def https(tls: tuple[HTTPServer, str]) -> tuple[HTTPServer, str]:
    server, ca = tls
    server.clear()
    return server, ca


def test_https_with_a_private_ca_verifies_the_host_name(
    https: tuple[HTTPServer, str], make_store: Callable[..., MediaStore]
) -> None:
    """https://media.test works through the pinned address, SNI and Host keep the name."""
    server, ca = https
    data = t.noisy_jpeg(seed=3)
    server.expect_request("/a.jpg").respond_with_data(data, content_type=JPEG)
    store = make_store(resolver=mapping({"media.test": "127.0.0.1"}), ca_bundle=ca)
    url = f"https://media.test:{server.port}/a.jpg"
    rec = store.fetch(url, timeout=2)
    assert rec.md5 == hashlib.md5(data).hexdigest()
    assert store.urls_for(rec.md5) == [url]
    [(request, _)] = server.log
    assert request.headers["Host"] == f"media.test:{server.port}"


def test_https_certificate_for_another_name_is_refused(
    https: tuple[HTTPServer, str], make_store: Callable[..., MediaStore]
) -> None:
    """A certificate for media.test does not pass for wrong.test: FetchConnectionError (TLS)."""
    server, ca = https
    server.expect_request("/a.jpg").respond_with_data(t.noisy_jpeg(), content_type=JPEG)
    store = make_store(
        resolver=mapping({"media.test": "127.0.0.1", "wrong.test": "127.0.0.1"}), ca_bundle=ca
    )
    with pytest.raises(FetchConnectionError) as info:
        store.fetch(f"https://wrong.test:{server.port}/a.jpg", timeout=2)
    reason = info.value.reason.lower()
    assert "tls" in reason or "certificate" in reason
    assert "wrong.test" in reason
    assert server.log == []
    assert_nothing_stored(store)


def test_https_with_an_untrusted_ca_is_refused(
    https: tuple[HTTPServer, str], make_store: Callable[..., MediaStore]
) -> None:
    """Without the private CA bundle the server's certificate is not trusted."""
    server, _ca = https
    server.expect_request("/a.jpg").respond_with_data(t.noisy_jpeg(), content_type=JPEG)
    store = make_store(resolver=mapping({"media.test": "127.0.0.1"}))
    with pytest.raises(FetchConnectionError) as info:
        store.fetch(f"https://media.test:{server.port}/a.jpg", timeout=2)
    assert "certificate" in info.value.reason.lower()
    assert server.log == []


# --- 9. size limits --------------------------------------------------------------------------
def test_honest_content_length_over_the_limit_fails_before_the_body(
    make_store: Callable[..., MediaStore], scripted: Start
) -> None:
    """Content-Length above max_file_size fails at once, without waiting for the body."""

    def headers_then_silence(request: Request, reply: Reply) -> None:
        reply.send(head(Content_Type=JPEG, Content_Length=10_000_000) + t.noisy_jpeg()[:100])
        reply.wait(10)  # a client reading the body would hit its 5 s read timeout

    server = scripted(headers_then_silence)
    store = make_store(max_file_size=100_000)
    start = time.monotonic()
    with pytest.raises(DownloadTooLargeError) as info:
        store.fetch(server.url("/a.jpg"), timeout=5)
    assert time.monotonic() - start < 2
    assert "10000000" in info.value.reason
    assert isinstance(info.value, FileTooLargeError)
    assert len(server.requests) == 1
    assert_nothing_stored(store)


def test_lying_small_content_length_is_not_read_past(
    make_store: Callable[..., MediaStore], scripted: Start
) -> None:
    """A Content-Length smaller than what is sent: only the declared bytes count."""
    media = t.mp4_bytes(payload=48_000, seed=4)  # complete: the store refuses a cut MP4
    body = media + t.mp4_bytes(payload=250_000, seed=5)
    declared = len(media)
    server = scripted(respond(head(Content_Type="video/mp4", Content_Length=declared) + body))
    store = make_store(max_file_size=100_000)
    rec = store.fetch(server.url("/v.mp4"), timeout=2)
    assert rec.size == declared
    assert rec.path.read_bytes() == body[:declared]
    assert files_under(store.root / "tmp") == []


@pytest.mark.parametrize("framing", ["chunked", "close-delimited"])
def test_body_without_content_length_over_the_limit_is_cut(
    make_store: Callable[..., MediaStore], scripted: Start, framing: str
) -> None:
    """A body with no Content-Length is counted while streaming and cut at max_file_size."""
    body = t.mp4_bytes(payload=400_000, seed=5)
    if framing == "chunked":
        reply = head(Content_Type="video/mp4", Transfer_Encoding="chunked") + chunked(body)
    else:
        reply = head(Content_Type="video/mp4") + body
    server = scripted(respond(reply))
    store = make_store(max_file_size=100_000, chunk_size=16_384)
    with pytest.raises(DownloadTooLargeError):
        store.fetch(server.url("/v.mp4"), timeout=2)
    assert_nothing_stored(store)


def _gzip_bomb(decoded_size: int) -> bytes:
    """A gzip stream of an MP4 header followed by ``decoded_size`` zero bytes (~1000:1)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip container
    out = [packer.compress(t.mp4_bytes(payload=64, seed=6))]
    zeros = bytes(1 << 20)
    for _ in range(decoded_size >> 20):
        out.append(packer.compress(zeros))
    out.append(packer.flush())
    return b"".join(out)


@pytest.mark.slow
def test_gzip_bomb_is_cut_on_decoded_bytes_with_bounded_memory(
    make_store: Callable[..., MediaStore], scripted: Start
) -> None:
    """A small gzip body inflating far past max_file_size fails; memory stays bounded."""
    bomb = _gzip_bomb(256 << 20)  # 256 MiB decoded
    assert len(bomb) < 512 * 1024
    server = scripted(
        respond(
            head(Content_Type="video/mp4", Content_Encoding="gzip", Content_Length=len(bomb)) + bomb
        )
    )
    store = make_store(max_file_size=2 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(DownloadTooLargeError):
            store.fetch(server.url("/v.mp4"), timeout=5)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20  # far below the 256 MiB the body inflates to
    assert_nothing_stored(store)


def test_gzip_body_within_the_limit_is_stored_decoded(http: HTTPServer, lstore: MediaStore) -> None:
    """A Content-Encoding: gzip body is stored as its decoded bytes."""
    data = t.noisy_jpeg(seed=7)
    url = serve(http, "/a.jpg", gzip.compress(data), headers={"Content-Encoding": "gzip"})
    rec = lstore.fetch(url, timeout=2)
    assert rec.md5 == hashlib.md5(data).hexdigest()
    assert rec.path.read_bytes() == data


def _deflate(data: bytes, wbits: int) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [
        ("gzip", gzip.compress),
        ("gzip", lambda d: gzip.compress(d[:1000]) + gzip.compress(d[1000:])),  # two members
        ("deflate", lambda d: _deflate(d, zlib.MAX_WBITS)),  # zlib-wrapped, as specified
        ("deflate", lambda d: _deflate(d, -zlib.MAX_WBITS)),  # raw deflate, as sent in practice
    ],
    ids=["gzip", "gzip-two-members", "deflate-zlib", "deflate-raw"],
)
def test_complete_compressed_bodies_are_stored(
    make_store: Callable[..., MediaStore],
    scripted: Start,
    encoding: str,
    pack: Callable[[bytes], bytes],
) -> None:
    """Complete gzip (one or more members) and deflate bodies are stored decoded."""
    data = t.mp4_bytes(payload=60_000, seed=13)
    packed = pack(data)
    reply = head(Content_Type="video/mp4", Content_Encoding=encoding, Content_Length=len(packed))
    server = scripted(respond(reply + packed))
    store = make_store()
    rec = store.fetch(server.url("/v.mp4"), timeout=2)
    assert rec.path.read_bytes() == data
    assert len(server.requests) == 1


@pytest.mark.parametrize("framing", ["content-length", "close-delimited"])
def test_gzip_stream_cut_short_is_truncated(
    make_store: Callable[..., MediaStore], scripted: Start, framing: str
) -> None:
    """A gzip stream that stops before its end is TruncatedDownloadError, not a short file."""
    packed = gzip.compress(t.mp4_bytes(payload=60_000, seed=14))[:-500]
    if framing == "content-length":
        reply = head(Content_Type="video/mp4", Content_Encoding="gzip", Content_Length=len(packed))
    else:
        reply = head(Content_Type="video/mp4", Content_Encoding="gzip")
    server = scripted(respond(reply + packed))
    store = make_store()
    with pytest.raises(TruncatedDownloadError) as info:
        store.fetch(server.url("/v.mp4"), timeout=2)
    assert "compressed" in info.value.reason
    assert_nothing_stored(store)


# --- 10. truncated bodies --------------------------------------------------------------------
def test_body_shorter_than_its_content_length_is_truncated(
    make_store: Callable[..., MediaStore], scripted: Start
) -> None:
    """Content-Length 10000 with 5000 bytes then close: TruncatedDownloadError, nothing kept."""
    body = t.mp4_bytes(payload=20_000, seed=8)
    server = scripted(respond(head(Content_Type="video/mp4", Content_Length=10_000) + body[:5000]))
    store = make_store()
    with pytest.raises(TruncatedDownloadError) as info:
        store.fetch(server.url("/v.mp4"), timeout=2)
    assert info.value.url == server.url("/v.mp4")
    assert len(server.requests) == 2  # a broken body is fetched again once, then given up
    assert_nothing_stored(store)


def test_truncated_body_then_complete_body_succeeds(
    make_store: Callable[..., MediaStore], scripted: Start
) -> None:
    """A body cut once is fetched again and the complete second copy is stored."""
    body = t.mp4_bytes(payload=20_000, seed=9)
    sent = []

    def flaky(request: Request, reply: Reply) -> None:
        sent.append(1)
        answer = head(Content_Type="video/mp4", Content_Length=len(body))
        reply.send(answer + (body[:5000] if len(sent) == 1 else body))

    server = scripted(flaky)
    store = make_store()
    rec = store.fetch(server.url("/v.mp4"), timeout=2)
    assert rec.path.read_bytes() == body
    assert len(server.requests) == 2
    assert files_under(store.root / "tmp") == []


# --- 11. slow servers ------------------------------------------------------------------------
def drip(framing: str, body: bytes, burst: int = 8192) -> Handler:
    """Send the head and ``burst`` bytes at once, then one byte every 0.2 s."""

    def behaviour(request: Request, reply: Reply) -> None:
        if framing == "content-length":
            reply.send(head(Content_Type="video/mp4", Content_Length=len(body)))
        elif framing == "chunked":
            reply.send(head(Content_Type="video/mp4", Transfer_Encoding="chunked"))
        else:
            reply.send(head(Content_Type="video/mp4"))

        def send(piece: bytes) -> None:
            reply.send(b"%x\r\n%s\r\n" % (len(piece), piece) if framing == "chunked" else piece)

        send(body[:burst])
        for i in range(burst, len(body)):
            if reply.wait(0.2):
                return
            send(body[i : i + 1])

    return behaviour


@pytest.mark.slow
@pytest.mark.parametrize("framing", ["content-length", "chunked", "close-delimited"])
def test_drip_feeding_server_is_cut_by_the_deadline(
    make_store: Callable[..., MediaStore], scripted: Start, framing: str
) -> None:
    """One byte per 0.2 s never trips the 5 s read timeout; the 1 s deadline cuts it."""
    server = scripted(drip(framing, t.mp4_bytes(payload=20_000, seed=10)))
    store = make_store(download_deadline=1.0)
    start = time.monotonic()
    with pytest.raises(DownloadTimeoutError) as info:
        store.fetch(server.url("/v.mp4"), timeout=5)
    elapsed = time.monotonic() - start
    assert elapsed < 4
    assert "deadline" in info.value.reason
    assert len(server.requests) == 1
    assert_nothing_stored(store)


@pytest.mark.slow
def test_deadline_covers_the_body_fetched_again_after_a_break(
    make_store: Callable[..., MediaStore], scripted: Start
) -> None:
    """A body cut after 0.8 s is fetched again within the same 1 s deadline, not a new one."""
    body = t.mp4_bytes(payload=20_000, seed=15)
    attempts: list[float] = []

    def slow_break_then_drip(request: Request, reply: Reply) -> None:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            reply.send(head(Content_Type="video/mp4", Content_Length=len(body)) + body[:5000])
            reply.wait(0.8)  # then close: a truncated body, after most of the deadline
            return
        drip("content-length", body)(request, reply)

    server = scripted(slow_break_then_drip)
    store = make_store(download_deadline=1.0)
    start = time.monotonic()
    with pytest.raises(DownloadTimeoutError) as info:
        store.fetch(server.url("/v.mp4"), timeout=5)
    assert time.monotonic() - start < 1.5  # a fresh deadline would end after 1.8 s
    assert len(attempts) == 2
    assert "1 s deadline" in info.value.reason
    assert_nothing_stored(store)


def test_server_that_never_answers_times_out(
    make_store: Callable[..., MediaStore], scripted: Start
) -> None:
    """No response head within timeout=0.5 raises DownloadTimeoutError."""
    server = scripted(lambda request, reply: reply.wait(10) and None)
    store = make_store(retries=0)
    start = time.monotonic()
    with pytest.raises(DownloadTimeoutError) as info:
        store.fetch(server.url("/a.jpg"), timeout=0.5)
    assert time.monotonic() - start < 3
    assert "timeout" in info.value.reason
    assert_nothing_stored(store)


def test_server_that_stalls_mid_body_times_out(
    make_store: Callable[..., MediaStore], scripted: Start
) -> None:
    """A body that stops flowing for longer than timeout=0.5 raises DownloadTimeoutError."""
    body = t.mp4_bytes(payload=20_000, seed=11)

    def stall(request: Request, reply: Reply) -> None:
        reply.send(head(Content_Type="video/mp4", Content_Length=len(body)) + body[:6000])
        reply.wait(10)

    server = scripted(stall)
    store = make_store(retries=0)
    start = time.monotonic()
    with pytest.raises(DownloadTimeoutError):
        store.fetch(server.url("/v.mp4"), timeout=0.5)
    assert time.monotonic() - start < 3
    assert len(server.requests) == 1
    assert_nothing_stored(store)


# --- 12. bodies that are not media -----------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        "<!DOCTYPE html><html><head><title>Not found</title></head><body>sorry</body></html>",
        '{"error": "not found", "status": 404}',
        "",
    ],
    ids=["html", "json", "empty"],
)
def test_non_media_body_with_status_200_is_refused(
    http: HTTPServer, lstore: MediaStore, body: str
) -> None:
    """An HTML page, JSON or empty body sent as image/jpeg with 200 is RefusedContentError."""
    url = serve(http, "/a.jpg", body)
    with pytest.raises(RefusedContentError) as info:
        lstore.fetch(url, timeout=2)
    assert isinstance(info.value, UnsupportedMediaError)
    assert len(http.log) == 1
    assert_nothing_stored(lstore)


def test_unparseable_image_is_corrupt(http: HTTPServer, lstore: MediaStore) -> None:
    """A body that starts like a JPEG but is garbage is CorruptDownloadError."""
    url = serve(http, "/a.jpg", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40)
    with pytest.raises(CorruptDownloadError):
        lstore.fetch(url, timeout=2)
    assert_nothing_stored(lstore)


def test_pixel_bomb_image_is_refused(http: HTTPServer, lstore: MediaStore) -> None:
    """A tiny PNG declaring 10000x10000 pixels is refused (decompression bomb guard)."""
    url = serve(http, "/a.png", t.png_bomb(), content_type="image/png")
    with pytest.raises(RefusedContentError) as info:
        lstore.fetch(url, timeout=2)
    assert isinstance(info.value.__cause__, ImageTooLargeError)
    assert_nothing_stored(lstore)


# --- 16. every failure leaves nothing behind -------------------------------------------------
def _html(server: HTTPServer) -> str:
    return serve(server, "/a.jpg", "<html><body>login</body></html>")


def _status(code: int) -> Callable[[HTTPServer], str]:
    return lambda server: serve(server, "/a.jpg", "error", status=code)


def _too_large(server: HTTPServer) -> str:
    return serve(server, "/a.mp4", t.mp4_bytes(payload=300_000), content_type="video/mp4")


def _redirect_loop(server: HTTPServer) -> str:
    server.expect_request("/loop").respond_with_response(
        Response(status=302, headers={"Location": "/loop"})
    )
    return server.url_for("/loop")


def _truncated_gzip(server: HTTPServer) -> str:
    packed = gzip.compress(t.mp4_bytes(payload=50_000, seed=12))
    return serve(server, "/a.mp4", packed[:-200], headers={"Content-Encoding": "gzip"})


def _bad_gzip(server: HTTPServer) -> str:
    return serve(server, "/a.jpg", t.noisy_jpeg(), headers={"Content-Encoding": "gzip"})


@pytest.mark.parametrize(
    ("scenario", "error"),
    [
        (_html, RefusedContentError),
        (_status(404), HTTPStatusError),
        (_status(500), HTTPStatusError),
        (_too_large, DownloadTooLargeError),
        (_redirect_loop, TooManyRedirectsError),
        (_truncated_gzip, TruncatedDownloadError),
        (_bad_gzip, FetchError),
    ],
    ids=["html", "404", "500", "too-large", "redirect-loop", "truncated-gzip", "bad-gzip"],
)
def test_failed_download_leaves_no_temp_file_and_no_row(
    http: HTTPServer,
    make_store: Callable[..., MediaStore],
    scenario: Callable[[HTTPServer], str],
    error: type[Exception],
) -> None:
    """Whatever the failure, tmp/ and media/ stay empty and the catalog has no row."""
    store = make_store(max_file_size=100_000, retries=1)
    url = scenario(http)
    with pytest.raises(error) as info:
        store.fetch(url, timeout=2)
    assert info.value.url == url  # type: ignore[attr-defined]
    assert_nothing_stored(store)
    assert store.get_by_url(url) is None


# --- 15. the HTTP layer on its own (fetch.open_url) --------------------------------------------
def _open(session: requests.Session, url: object, **options: Any) -> bytes:
    options.setdefault("timeout", 2)
    with open_url(session, url, chunk_size=1 << 16, **options) as resp:  # type: ignore[arg-type]
        return b"".join(resp.chunks)


@pytest.fixture
def session() -> Iterator[requests.Session]:
    """A guarded session allowed to reach loopback, with one fast retry."""
    made = make_session(FetchSettings(allow_private_networks=True, retries=1, backoff_factor=0.01))
    yield made
    made.close()


@pytest.mark.parametrize(
    "url",
    [
        "http://[127.0.0.1]:1337/",
        "http://[[example.net]]:1337/",
        "http://[\u2460\u2461\u2466.0.0.1]/",
        "http://a\udcff.com/",
        "http://a.com/\udcff",
        None,
        42,
        b"http://example.com/",
    ],
)
def test_open_url_refuses_malformed_urls_as_invalid(session: requests.Session, url: object) -> None:
    """Whatever is passed as a URL, the failure is a MediaStoreError (InvalidURLError)."""
    with pytest.raises(InvalidURLError) as info:
        _open(session, url)
    assert isinstance(info.value, MediaStoreError)
    str(info.value).encode("utf-8")


def test_open_url_needs_a_guarded_session() -> None:
    """A plain requests.Session has no guard: open_url refuses it rather than go unchecked."""
    with requests.Session() as plain, pytest.raises(InvalidInputError):
        _open(plain, "http://example.com/")


def _pieces(body: bytes, parts: int, **headers: str | int) -> Handler:
    """Sends the head, then ``body`` in ``parts`` writes with a pause between them."""

    def behaviour(request: Request, reply: Reply) -> None:
        reply.send(head(**headers))
        step = -(-len(body) // parts)
        for start in range(0, len(body), step):
            reply.send(body[start : start + step])
            time.sleep(0.05)

    return behaviour


def _chunks_of(session: requests.Session, url: str, chunk_size: int) -> list[bytes]:
    with open_url(session, url, timeout=2, chunk_size=chunk_size) as resp:
        return list(resp.chunks)


def test_a_body_within_one_chunk_is_yielded_whole_however_it_arrives(
    session: requests.Session, scripted: Start
) -> None:
    """A body with a Content-Length of at most chunk_size, sent in 4 pieces, comes out as one
    bytes object (so ingest writes it once and probes it from memory); a larger one streams."""
    body = t.noisy_jpeg((160, 120))
    server = scripted(_pieces(body, 4, Content_Length=len(body)))
    chunks = _chunks_of(session, server.url("/a.jpg"), chunk_size=len(body))
    assert len(chunks) == 1 and type(chunks[0]) is bytes and chunks[0] == body
    streamed = _chunks_of(session, server.url("/a.jpg"), chunk_size=len(body) // 8)
    assert len(streamed) > 1 and b"".join(streamed) == body


def test_a_small_body_cut_short_yields_nothing(session: requests.Session, scripted: Start) -> None:
    """The whole body is handed on only once complete: one that ends short yields no bytes."""
    body = t.noisy_jpeg((160, 120))
    server = scripted(_pieces(body[:-100], 3, Content_Length=len(body)))
    got: list[bytes] = []
    with (
        pytest.raises(TruncatedDownloadError),
        open_url(session, server.url("/a.jpg"), timeout=2, chunk_size=1 << 20) as resp,
    ):
        got.extend(resp.chunks)
    assert got == []


def test_retries_log_no_urllib3_warning_and_no_internal_names(
    session: requests.Session, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused connection retried: no urllib3 'Retrying (...)' warning with internal class
    names; one readable INFO line per retry from mediastore, and the error says 'refused'."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    caplog.set_level(logging.DEBUG)
    with pytest.raises(FetchConnectionError) as info:
        _open(session, f"http://127.0.0.1:{port}/a.jpg")
    assert "refused" in info.value.reason.lower()
    text = "\n".join(record.getMessage() for record in caplog.records)
    for internal in ("_DeadlineRetry", "_WatchedHTTP", "Retry(total", "object at 0x"):
        assert internal not in text
        assert internal not in str(info.value)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    retries = [r for r in caplog.records if r.name == "mediastore.net.client"]
    assert len(retries) == 1 and "\n" not in retries[0].getMessage()


def test_a_urllib3_warning_about_broken_headers_is_one_line(
    session: requests.Session,
    scripted: Start,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Headers urllib3 cannot parse: its warning (which carries a traceback) is one line."""
    body = b"\xff\xd8 not checked here"
    server = scripted(
        respond(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n bad continuation\r\nno colon here\r\n"
                b"\r\n%s" % (len(body), body))
    )  # fmt: skip
    caplog.set_level(logging.WARNING)
    _open(session, server.url("/a.jpg"))
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings, "urllib3 did not warn: the test proves nothing"
    for record in warnings:
        assert record.exc_info is None
        assert "\n" not in record.getMessage() and len(record.getMessage()) <= 300


def test_a_kept_alive_connection_is_reused_without_a_new_lookup(http: HTTPServer) -> None:
    """Two downloads from one host in one session: one lookup, and the second request rides
    the first one's connection (checked once, pinned to the checked address)."""
    calls: list[str] = []
    settings = FetchSettings(
        allow_private_networks=True, resolver=mapping({"media.test": "127.0.0.1"}, calls)
    )
    serve(http, "/a.jpg", b"a" * 100)
    serve(http, "/b.jpg", b"b" * 100)
    with make_session(settings) as guarded:
        assert _open(guarded, f"http://media.test:{http.port}/a.jpg") == b"a" * 100
        assert _open(guarded, f"http://media.test:{http.port}/b.jpg") == b"b" * 100
    assert calls == ["media.test"]
    assert [req.headers["Host"] for req, _ in http.log] == [f"media.test:{http.port}"] * 2


def test_a_checked_route_is_looked_up_again_after_its_ttl(
    http: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name -> address answer is reused for ROUTE_TTL only, then resolved and judged anew."""
    calls: list[str] = []
    settings = FetchSettings(
        allow_private_networks=True, resolver=mapping({"media.test": "127.0.0.1"}, calls)
    )
    serve(http, "/a.jpg", b"a" * 10)
    monkeypatch.setattr(fetch_module, "ROUTE_TTL", 0.0)
    with make_session(settings) as guarded:
        _open(guarded, f"http://media.test:{http.port}/a.jpg")
        _open(guarded, f"http://media.test:{http.port}/a.jpg")
    assert calls == ["media.test", "media.test"]


def test_a_redirect_hop_is_checked_even_when_its_host_was_seen(
    http: HTTPServer, scripted: Start
) -> None:
    """Cached routes never skip the policy: a refused hop is refused every time."""
    inner = scripted(respond(head(Content_Length=0)), host="127.0.0.2")
    settings = FetchSettings(address_policy=only("127.0.0.1"))
    http.expect_request("/go").respond_with_response(
        Response(status=302, headers={"Location": inner.url("/secret")})
    )
    with make_session(settings) as guarded:
        for _ in range(2):
            with pytest.raises(BlockedURLError):
                _open(guarded, http.url_for("/go"))
    assert inner.connections == 0


def test_a_redirect_to_an_unparseable_location_is_blocked(
    session: requests.Session, scripted: Start
) -> None:
    server = scripted(respond(head("302 Found", Location="http://[::1/x", Content_Length=0)))
    with pytest.raises(BlockedURLError):
        _open(session, server.url("/a.jpg"))


@pytest.mark.slow
def test_retry_after_is_waited_for_without_host_limits(
    http: HTTPServer, session: requests.Session
) -> None:
    """A single download (no HostLimits) sleeps the Retry-After itself."""
    answers = iter([Response("wait", status=503, headers={"Retry-After": "1"})])
    http.expect_request("/a.jpg").respond_with_handler(
        lambda request: next(answers, Response(b"ok" * 10))
    )
    start = time.monotonic()
    assert _open(session, http.url_for("/a.jpg")) == b"ok" * 10
    assert time.monotonic() - start >= 0.95


def test_a_chunked_body_read_to_its_end_keeps_the_connection_alive(
    session: requests.Session, scripted: Start
) -> None:
    """Three chunked downloads from one host in one session ride one connection."""

    def chunked_body(request: Request, reply: Reply) -> None:
        reply.start(200, chunked=True)
        for piece in (b"abc", b"def", b"g"):
            reply.write(piece)
        reply.end()

    server = scripted(chunked_body)
    for _ in range(3):
        assert _open(session, server.url("/x")) == b"abcdefg"
    assert server.connections == 1
