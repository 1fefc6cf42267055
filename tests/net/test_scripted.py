"""The scripted test server (tests/scripted.py) does what the network tests rely on: routes,
records, framing and keep-alive, slow and cut bodies, hangs, and reports its handlers' errors.
Checked with requests and with plain sockets and http.client, as the tests' clients see it."""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Callable, Iterator

import pytest
import requests
from scripted import Reply, Request, ScriptedServer, Start


def ok(body: bytes) -> Callable[[Request, Reply], None]:
    return lambda request, reply: reply.respond(200, body, {"Content-Type": "text/plain"})


def test_a_response_and_the_request_as_recorded(scripted: Start) -> None:
    server = scripted(ok(b"hello"))
    got = requests.get(server.url("/a.txt?x=1"), headers={"X-Test": "yes"}, timeout=5)
    assert (got.status_code, got.content) == (200, b"hello")
    assert got.headers["Content-Type"] == "text/plain" and got.headers["Content-Length"] == "5"
    [request] = server.requests
    assert (request.method, request.target, request.path) == ("GET", "/a.txt?x=1", "/a.txt")
    assert request.headers["x-test"] == "yes" and request.body == b""
    assert request.head.startswith(b"GET /a.txt?x=1 HTTP/1.1\r\n")
    assert request.head.endswith(b"\r\n\r\n") and request.connection == 1


def test_routes_by_path_with_a_default(scripted: Start) -> None:
    server = scripted(ok(b"default"))
    url = server.route("/special", ok(b"special"))
    assert url == f"http://127.0.0.1:{server.port}/special" == server.base_url + "/special"
    assert requests.get(url + "?q", timeout=5).content == b"special"
    assert requests.get(server.url("/other"), timeout=5).content == b"default"


def test_a_request_without_a_route_is_404_and_fails_the_check() -> None:
    server = ScriptedServer()
    server.route("/known", ok(b""))
    try:
        assert requests.get(server.url("/unknown"), timeout=5).status_code == 404
    finally:
        server.close()
    with pytest.raises(AssertionError, match="GET /unknown: no route"):
        server.check()


def test_a_handler_that_raises_answers_500_and_fails_the_check() -> None:
    def broken(request: Request, reply: Reply) -> None:
        raise KeyError("no such answer")

    with (
        pytest.raises(AssertionError, match="KeyError: 'no such answer'"),
        ScriptedServer(broken) as server,
    ):
        assert requests.get(server.url(), timeout=5).status_code == 500


def test_framed_responses_keep_the_connection_and_raw_bytes_close_it(scripted: Start) -> None:
    """Content-Length and chunked responses leave the connection open for the next request;
    raw bytes (whose framing the server cannot know) close it."""

    def chunked(request: Request, reply: Reply) -> None:
        reply.start(200, chunked=True)
        for piece in (b"abc", b"def", b"g"):
            reply.write(piece)
        reply.end()

    def raw(request: Request, reply: Reply) -> None:
        # Says Connection: close itself: otherwise the client may reuse the socket
        # before the server's close reaches it.
        reply.send(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nraw")

    server = scripted(ok(b"whole"))
    server.route("/chunked", chunked)
    server.route("/raw", raw)
    with requests.Session() as session:
        assert session.get(server.url("/"), timeout=5).content == b"whole"
        got = session.get(server.url("/chunked"), timeout=5)
        assert got.content == b"abcdefg" and got.headers["Transfer-Encoding"] == "chunked"
        assert server.connections == 1
        assert session.get(server.url("/raw"), timeout=5).content == b"raw"
        assert session.get(server.url("/"), timeout=5).content == b"whole"
    assert server.connections == 2
    assert [r.connection for r in server.requests] == [1, 1, 1, 2]


def test_request_bodies_by_length_and_chunked(scripted: Start) -> None:
    server = scripted(ok(b""))
    requests.put(server.url("/one"), data=b"x" * 100_000, timeout=5)
    requests.put(server.url("/two"), data=iter([b"ab", b"cd"]), timeout=5)  # chunked
    assert [(r.method, r.path, r.body) for r in server.requests] == [
        ("PUT", "/one", b"x" * 100_000),
        ("PUT", "/two", b"abcd"),
    ]
    assert server.requests[1].headers["Transfer-Encoding"] == "chunked"


def test_expect_100_continue_is_answered_before_the_body_is_read(scripted: Start) -> None:
    server = scripted(ok(b"stored"))
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(
            b"PUT /k HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"data")
        assert sock.recv(1000).startswith(b"HTTP/1.1 200 OK\r\n")
    assert server.requests[0].body == b"data"


def test_a_drip_sends_a_byte_per_interval(scripted: Start) -> None:
    """burst bytes at once, then one every interval: the rest takes (n - burst) intervals."""
    body = b"0123456789"

    def drip(request: Request, reply: Reply) -> None:
        reply.start(200, length=len(body))
        reply.drip(body, 0.1, burst=5)

    server = scripted(drip)
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        start = time.monotonic()
        assert response.read(5) == b"01234"
        assert time.monotonic() - start < 0.4  # not after the pauses of the other five
        assert response.read() == b"56789"
        assert 0.45 < time.monotonic() - start < 2
    finally:
        conn.close()


def test_a_body_cut_short_is_an_incomplete_read(scripted: Start) -> None:
    def cut(request: Request, reply: Reply) -> None:
        reply.start(200, length=100)
        reply.write(b"x" * 10)
        reply.hang_up()

    server = scripted(cut)
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        conn.request("GET", "/")
        with pytest.raises(http.client.IncompleteRead) as info:
            conn.getresponse().read()
        assert info.value.partial == b"x" * 10
    finally:
        conn.close()


def test_a_hanging_handler_times_the_client_out_and_ends_when_the_server_closes() -> None:
    waited: list[bool] = []

    def hang(request: Request, reply: Reply) -> None:
        waited.append(reply.wait(30))

    server = ScriptedServer(hang)
    try:
        with pytest.raises(requests.Timeout):
            requests.get(server.url(), timeout=0.3)
    finally:
        start = time.monotonic()
        server.close()
    assert time.monotonic() - start < 1
    assert waited == [True]  # the wait ended because the server closed
    server.check()


@pytest.fixture
def second_loopback() -> Iterator[str]:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.2", 0))
        except OSError:
            pytest.skip("127.0.0.2 is not a loopback address here")
    yield "127.0.0.2"


def test_another_loopback_address(scripted: Start, second_loopback: str) -> None:
    server = scripted(ok(b"there"), host=second_loopback)
    assert server.url("/p") == f"http://127.0.0.2:{server.port}/p"
    assert requests.get(server.url("/p"), timeout=5).content == b"there"
    assert requests.get(server.url("/p", host="127.0.0.2"), timeout=5).content == b"there"
