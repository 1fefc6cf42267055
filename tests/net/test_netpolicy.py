"""The SSRF address policy: only http(s) URLs whose every address is public may be fetched."""

from __future__ import annotations

import ipaddress
import random
import socket
from typing import Any

import pytest

from mediastore.errors import FetchError, InvalidInputError, InvalidURLError
from mediastore.net.policy import (
    ALLOWED_SCHEMES,
    BlockedURLError,
    Resolver,
    Target,
    UnresolvableHostError,
    check_url,
    parse_host_literal,
    parse_url,
    refused_reason,
    system_resolver,
    validate_url,
)


def no_dns(host: str, port: int) -> list[str]:
    """Fail the test: IP literals and refused syntax must never reach the resolver."""
    raise AssertionError(f"resolver called for {host!r}:{port}")


def fake_resolver(table: dict[str, list[str]]) -> Resolver:
    """Resolve from ``table``; unknown names fail like NXDOMAIN."""

    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(table[host])

    return resolve


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Shorthand for ipaddress.ip_address."""
    return ipaddress.ip_address(text)


# --- refused_reason -------------------------------------------------------------------------

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("::1", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("fc00::1", "private"),
    ("fd12:3456:789a::1", "private"),
    ("169.254.169.254", "link-local"),
    ("169.254.0.1", "link-local"),
    ("fe80::1", "link-local"),
    ("febf::1", "link-local"),
    ("100.64.0.1", "shared (CGNAT)"),
    ("100.127.255.254", "shared (CGNAT)"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("0.1.2.3", "this network"),
    ("192.0.0.1", "IETF protocol assignments"),
    ("192.0.0.170", "IETF protocol assignments"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.255", "benchmarking"),
    ("2001:2::1", "benchmarking"),
    ("192.88.99.1", "6to4 relay anycast"),
    ("fec0::1", "site-local"),
    ("100::1", "discard"),
    ("2001:10::1", "ORCHID"),
    ("2001:20::1", "ORCHIDv2"),
    ("2001:100::1", "IETF protocol assignments"),
    ("64:ff9b:1::a00:1", "local-use NAT64"),
    ("64:ff9b:1::808:808", "local-use NAT64"),
    ("4000::1", "reserved"),
    ("::1:0:0:0", "reserved"),
    ("fe00::1", "reserved"),
    ("::ffff:127.0.0.1", "IPv4-mapped 127.0.0.1: loopback"),
    ("::ffff:169.254.169.254", "IPv4-mapped 169.254.169.254: link-local"),
    ("::ffff:0.0.0.0", "IPv4-mapped 0.0.0.0: unspecified"),
    ("::127.0.0.1", "IPv4-compatible 127.0.0.1: loopback"),
    ("::10.0.0.1", "IPv4-compatible 10.0.0.1: private"),
    ("::ffff:0:127.0.0.1", "IPv4-translated 127.0.0.1: loopback"),
    ("64:ff9b::10.0.0.1", "NAT64 10.0.0.1: private"),
    ("64:ff9b::a9fe:a9fe", "NAT64 169.254.169.254: link-local"),
    ("2002:a00:1::", "6to4 10.0.0.1: private"),
    ("2002:7f00:1:ffff::1", "6to4 127.0.0.1: loopback"),
    # Teredo: server 65.54.227.120, client 127.0.0.1 stored inverted (0x80fffffe).
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo client 127.0.0.1: loopback"),
    # Teredo: server 10.0.0.1, client 8.8.8.8 (0xf7f7f7f7).
    ("2001:0:a00:1::f7f7:f7f7", "Teredo server 10.0.0.1: private"),
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "151.101.1.69",
    "100.63.255.255",
    "100.128.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "223.255.255.255",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",
    "::8.8.8.8",
    "::ffff:0:8.8.8.8",
    "64:ff9b::8.8.8.8",
    "2002:808:808::",
    "2002:0808:0808:1::1",
    "2001:0:4136:e378::f7f7:f7f7",
]


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_refused_ranges(address: str, reason: str) -> None:
    """Every non-public range is refused with a precise reason."""
    assert refused_reason(ip(address)) == reason


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_allowed(address: str) -> None:
    """Public IPv4/IPv6 addresses, and IPv6 embedding a public IPv4, are allowed."""
    assert refused_reason(ip(address)) is None


@pytest.mark.parametrize("address", ["224.0.0.1", "192.88.99.1", "64:ff9b::a00:1", "2002:a00:1::"])
def test_python_is_global_quirks_are_refused(address: str) -> None:
    """Addresses that Python 3.11 wrongly calls global are still refused."""
    assert refused_reason(ip(address)) is not None


def test_scoped_link_local_refused() -> None:
    """An IPv6 scope ID does not hide a link-local address."""
    assert refused_reason(ipaddress.IPv6Address("fe80::1%eth0")) == "link-local"


def test_ipv4_policy_covers_python_non_global() -> None:
    """Every IPv4 address that Python calls non-global is also refused (sampled sweep)."""
    rng = random.Random(20240501)
    samples = [ipaddress.IPv4Address(rng.getrandbits(32)) for _ in range(20000)]
    samples += [ipaddress.IPv4Address((first << 24) | 1) for first in range(256)]
    for address in samples:
        if not address.is_global:
            assert refused_reason(address) is not None, address


def test_ipv6_only_global_unicast_allowed() -> None:
    """Outside 2000::/3 only embedded-IPv4 forms can be allowed (sampled sweep)."""
    rng = random.Random(7)
    embedding = [
        ipaddress.IPv6Network(n)
        for n in ("::/96", "::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96")
    ]
    for _ in range(20000):
        address = ipaddress.IPv6Address(rng.getrandbits(128))
        if address not in ipaddress.IPv6Network("2000::/3"):
            assert refused_reason(address) is not None, address
    for network in embedding:
        assert refused_reason(network[0x08080808]) is None


# --- parse_host_literal ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("10.1.1", "10.1.0.1"),
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),
        ("00", "0.0.0.0"),
        ("017700000001", "127.0.0.1"),
        ("0xa9.0376.43518", "169.254.169.254"),
        ("127.0.0.1.", "127.0.0.1"),
        ("4294967295", "255.255.255.255"),
        ("0000000000000000000000000177.1", "127.0.0.1"),
        ("::1", "::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("0:0:0:0:0:ffff:169.254.169.254", "::ffff:a9fe:a9fe"),
    ],
)
def test_parse_host_literal_spellings(host: str, expected: str) -> None:
    """Every inet_aton/WHATWG spelling of an address is recognised."""
    assert parse_host_literal(host) == ip(expected)


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "localhost",
        "",
        ".",
        "1.2.3.4.5",
        "256.0.0.1",
        "1.256.0.1",
        "4294967296",
        "08.0.0.1",
        "0x1g",
        "1..1",
        "+1.2.3.4",
        "1_0.0.0.1",
        " 127.0.0.1",
        "\u0661\u0662\u0667.0.0.1",
        "fe80::1%eth0",
        ":::1",
        "::ffff:0177.0.0.1",
    ],
)
def test_parse_host_literal_rejects_non_literals(host: str) -> None:
    """Names and malformed numbers are not addresses."""
    assert parse_host_literal(host) is None


def test_parse_host_literal_trailing_dot_is_not_a_part() -> None:
    """One trailing dot is ignored ('1.2.3.' is 1.2.0.3), a second one makes it no literal."""
    assert parse_host_literal("1.2.3.") == ip("1.2.0.3")
    assert parse_host_literal("1.2.3.4..") is None


# --- check_url: literals in odd spellings ---------------------------------------------------

TEREDO_LOOPBACK = "2001:0:4136:e378:8000:63bf:80ff:fffe"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://0x7f.0.0.1/",
        "http://0x7f000001/",
        "http://0x7F.1/",
        "http://127.1/",
        "http://0/",
        "http://0.0.0.0/",
        "http://0x/",
        "http://127.0.0.1./",
        "https://169.254.169.254/latest/meta-data/",
        "http://0xa9fea9fe/",
        "http://10.1.1/",
        "http://[::1]/",
        "http://[::]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[0:0:0:0:0:ffff:169.254.169.254]/",
        "http://[64:ff9b::10.0.0.1]/",
        "http://[2002:0a00:0001::]/",
        f"http://[{TEREDO_LOOPBACK}]/",
        "http://[FE80::1]:8080/",
        "http://%31%32%37.0.0.1/",
        "http://%31%32%37%2e%30%2e%30%2e%31/",
        "http://\uff11\uff12\uff17\u3002\uff10\u3002\uff10\u3002\uff11/",
        "HTTP://127.0.0.1:8080/x?y#z",
    ],
)
def test_odd_literal_spellings_refused(url: str) -> None:
    """Non-public IP literals are refused in every spelling, without any DNS lookup."""
    with pytest.raises(BlockedURLError):
        check_url(url, resolver=no_dns)


def test_blocked_reason_names_address_and_reason() -> None:
    """The refusal says which address was refused and why."""
    with pytest.raises(BlockedURLError) as info:
        check_url("http://0x7f.1/", resolver=no_dns)
    assert "127.0.0.1" in info.value.reason
    assert "loopback" in info.value.reason


# --- check_url: schemes and syntax ----------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "file://localhost/etc/passwd",
        "ftp://example.com/file.jpg",
        "data:image/png;base64,iVBORw0KGgo=",
        "gopher://example.com:70/_GET",
        "javascript:alert(1)",
        "dict://example.com:11211/stats",
        "example.com/image.jpg",
        "//example.com/image.jpg",
        "localhost:8080/x",
        "",
    ],
)
def test_disallowed_schemes_refused(url: str) -> None:
    """Only http and https are allowed; a missing scheme is refused (as no URL at all)."""
    assert {"http", "https"} == ALLOWED_SCHEMES
    with pytest.raises((BlockedURLError, InvalidURLError)):
        check_url(url, resolver=no_dns)


@pytest.mark.parametrize(
    "url",
    [
        "http://user@127.0.0.1/",
        "http://user@example.com/",
        "http://user:pass@example.com/",
        "http://@example.com/",
        "http://example.com@127.0.0.1/",
        "http://a@b@example.com/",
        "http://example.com\\@127.0.0.1/",
        "http://example.com\\.evil.com/",
        "http:\\\\127.0.0.1\\",
        "http:/\\127.0.0.1/",
        "http:example.com/",
        "http:///example.com/",
        "http://",
        "http:///",
        "http://:80/",
        "http://[]/",
        "http://example.com:0/",
        "http://example.com:99999/",
        "http://example.com:65536/",
        "http://example.com:http/",
        "http://example.com:8_0/",
        "http://example.com:+80/",
        "http://example.com:\uff18\uff10/",
        "http://example.com:80:80/",
        "http://example.com:-1/",
        "http://exa mple.com/",
        " http://example.com/",
        "http://example.com/ ",
        "http://example.com\t/",
        "http://127.0.0.1\n.example.com/",
        "http://example.com\x00.evil/",
        "http://example.com/\x7f",
        "http://example.com\u3000/",
        "http://example.com\u0085/",
        "http://[::1/",
        "http://[::1]x/",
        "http://[127.0.0.1]/",
        "http://[fe80::1%25eth0]/",
        "http://[::ffff:0177.0.0.1]/",
        "http://::1/",
        "http://%3a%3a1/",
        "http://exa%40mple.com/",
        "http://exa%5cmple.com/",
        "http://exa%00mple.com/",
        "http://exa%ffmple.com/",
        "http://%2531%2532%2537.0.0.1/",
        "http://256.256.256.256/",
        "http://1.2.3.4.5/",
        "http://0x7f.0.0.0.1/",
        "http://08.0.0.1/",
        "http://4294967296/",
        "http://example.123/",
        "http://-example.com/",
        "http://example-.com/",
        "http://exa_mple..com/",
        "http://" + "a" * 64 + ".com/",
        "http://" + ".".join(["a" * 63] * 4) + "/",
        "http://exa!mple.com/",
        "http://exa$mple.com/",
    ],
)
def test_malformed_urls_refused(url: str) -> None:
    """Credentials, backslashes, control chars, bad hosts and bad ports are refused: the
    policy's refusals as blocked, text that is no URL as invalid."""
    with pytest.raises((BlockedURLError, InvalidURLError)):
        check_url(url, resolver=no_dns)


def test_non_string_url_refused() -> None:
    """A URL that is not a string is refused, not parsed."""
    bad: Any = b"http://example.com/"
    with pytest.raises(InvalidURLError):
        check_url(bad, resolver=no_dns)


def test_blocked_error_is_fetch_error_and_value_error() -> None:
    """BlockedURLError is a FetchError and a ValueError; its message names the URL."""
    url = "file:///etc/passwd"
    with pytest.raises(BlockedURLError) as info:
        check_url(url, resolver=no_dns)
    error = info.value
    assert isinstance(error, FetchError)
    assert isinstance(error, ValueError)
    assert error.url == url
    assert url in str(error)
    assert error.reason
    assert error.exit_code == 8


# --- check_url: resolution ------------------------------------------------------------------


def test_name_resolving_to_loopback_refused() -> None:
    """A public-looking name that resolves to 127.0.0.1 is refused, naming host and address."""
    resolver = fake_resolver({"evil.example": ["127.0.0.1"]})
    with pytest.raises(BlockedURLError) as info:
        check_url("http://evil.example/x.jpg", resolver=resolver)
    assert "evil.example" in info.value.reason
    assert "127.0.0.1" in info.value.reason


def test_localhost_refused_by_resolution() -> None:
    """'localhost' is refused because of where it resolves."""
    resolver = fake_resolver({"localhost": ["::1", "127.0.0.1"]})
    with pytest.raises(BlockedURLError):
        check_url("http://localhost:8080/", resolver=resolver)


def test_any_refused_address_refuses_host() -> None:
    """A name resolving to a public and a private address is refused."""
    resolver = fake_resolver({"mixed.example": ["93.184.216.34", "10.0.0.1"]})
    with pytest.raises(BlockedURLError) as info:
        check_url("https://mixed.example/", resolver=resolver)
    assert "10.0.0.1" in info.value.reason


def test_resolved_mapped_ipv6_refused() -> None:
    """A resolved IPv4-mapped IPv6 answer is unwrapped and refused."""
    resolver = fake_resolver({"sneaky.example": ["::ffff:169.254.169.254"]})
    with pytest.raises(BlockedURLError, match=r"169\.254\.169\.254"):
        check_url("http://sneaky.example/", resolver=resolver)


def test_resolver_error_is_unresolvable() -> None:
    """A resolver OSError becomes UnresolvableHostError, chained."""
    with pytest.raises(UnresolvableHostError) as info:
        check_url("http://nxdomain.example/", resolver=fake_resolver({}))
    assert "cannot resolve host" in info.value.reason
    assert isinstance(info.value, FetchError)
    assert not isinstance(info.value, BlockedURLError)
    assert isinstance(info.value.__cause__, OSError)


def test_empty_resolution_is_unresolvable() -> None:
    """A name resolving to no addresses raises UnresolvableHostError."""
    with pytest.raises(UnresolvableHostError, match="cannot resolve host"):
        check_url("http://empty.example/", resolver=fake_resolver({"empty.example": []}))


@pytest.mark.parametrize("answer", ["not-an-ip", "0177.0.0.1", "2130706433", ""])
def test_resolver_garbage_refused(answer: str) -> None:
    """A resolver answer that is not a strict address string is refused."""
    resolver = fake_resolver({"odd.example": [answer]})
    with pytest.raises(BlockedURLError):
        check_url("http://odd.example/", resolver=resolver)


def test_public_name_target() -> None:
    """A public name yields its checked, deduplicated addresses in order and the default port."""
    calls: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "93.184.216.34"]

    target = check_url("https://Example.COM/image.jpg?x=1", resolver=resolver)
    assert target == Target(
        scheme="https",
        host="example.com",
        port=443,
        addresses=("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"),
    )
    assert calls == [("example.com", 443)]


def test_http_default_port_and_explicit_port() -> None:
    """http defaults to port 80; an explicit port is used and passed to the resolver."""
    resolver = fake_resolver({"cdn.example": ["151.101.1.69"]})
    assert check_url("http://cdn.example/a.png", resolver=resolver).port == 80
    assert check_url("http://cdn.example:/a.png", resolver=resolver).port == 80
    assert check_url("http://cdn.example:8080/a.png", resolver=resolver).port == 8080
    assert check_url("https://cdn.example:08443/a.png", resolver=resolver).port == 8443


@pytest.mark.parametrize(
    ("url", "host", "port", "address"),
    [
        ("http://8.8.8.8/", "8.8.8.8", 80, "8.8.8.8"),
        ("https://1.1.1.1:8443/x", "1.1.1.1", 8443, "1.1.1.1"),
        ("http://134744072/", "8.8.8.8", 80, "8.8.8.8"),
        ("http://0x8.0x8.0x8.0x8/", "8.8.8.8", 80, "8.8.8.8"),
        ("https://[2606:4700:4700::1111]/", "2606:4700:4700::1111", 443, "2606:4700:4700::1111"),
        ("http://[2A00:1450:4001:80B::200E]:81/", "2a00:1450:4001:80b::200e", 81, None),
        ("http://[::ffff:8.8.8.8]/", "::ffff:808:808", 80, None),
    ],
)
def test_public_literals_pass(url: str, host: str, port: int, address: str | None) -> None:
    """Public IP literals pass without a lookup; host is the canonical address."""
    target = check_url(url, resolver=no_dns)
    assert target.scheme in ALLOWED_SCHEMES
    assert target.host == host
    assert target.port == port
    assert target.addresses == (address or host,)


def test_percent_encoded_public_host_decoded() -> None:
    """A percent-encoded host is decoded before it is checked and resolved."""
    resolver = fake_resolver({"example.com": ["93.184.216.34"]})
    target = check_url("http://%65xample.com/", resolver=resolver)
    assert target.host == "example.com"


def test_international_name_idna_encoded() -> None:
    """A Unicode host is IDNA-encoded before resolution."""
    resolver = fake_resolver({"xn--bcher-kva.example": ["93.184.216.34"]})
    target = check_url("https://B\u00fccher.example/", resolver=resolver)
    assert target.host == "xn--bcher-kva.example"
    assert target.addresses == ("93.184.216.34",)


def test_trailing_dot_name_and_underscore_allowed() -> None:
    """Fully-qualified names with a trailing dot and labels with '_' are valid names."""
    resolver = fake_resolver({"example.com.": ["1.1.1.1"], "my_host.example": ["1.1.1.1"]})
    assert check_url("http://example.com./", resolver=resolver).host == "example.com."
    assert check_url("http://my_host.example/", resolver=resolver).host == "my_host.example"


def test_resolved_once() -> None:
    """check_url resolves the name exactly once (no second lookup to rebind)."""
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])
    calls: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    target = check_url("http://rebind.example/", resolver=rebinding)
    assert target.addresses == ("93.184.216.34",)
    assert calls == ["rebind.example"]


# --- allow_private --------------------------------------------------------------------------


def test_allow_private_lets_loopback_through() -> None:
    """allow_private=True allows 127.0.0.1 literals and private resolutions."""
    target = check_url("http://127.0.0.1:8000/x", allow_private=True, resolver=no_dns)
    assert target == Target("http", "127.0.0.1", 8000, ("127.0.0.1",))
    resolver = fake_resolver({"intranet": ["10.0.0.5", "10.0.0.5"]})
    target = check_url("http://intranet/", allow_private=True, resolver=resolver)
    assert target.addresses == ("10.0.0.5",)


def test_allow_private_still_resolves() -> None:
    """allow_private=True still resolves names and reports unresolvable ones."""
    with pytest.raises(UnresolvableHostError):
        check_url("http://nowhere.example/", allow_private=True, resolver=fake_resolver({}))


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "http://user:pass@127.0.0.1/",
        "http://example.com\\@127.0.0.1/",
        "http://127.0.0.1:0/",
        "http://[fe80::1%25lo]/",
        "gopher://127.0.0.1/",
    ],
)
def test_allow_private_keeps_syntax_checks(url: str) -> None:
    """allow_private=True never lifts scheme, credential or syntax checks."""
    with pytest.raises((BlockedURLError, InvalidURLError)):
        check_url(url, allow_private=True, resolver=no_dns)


# --- system_resolver ------------------------------------------------------------------------


def test_system_resolver_uses_getaddrinfo(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default resolver asks getaddrinfo for TCP and returns the address strings."""
    seen: list[tuple[object, ...]] = []

    def fake_getaddrinfo(*args: object, **kwargs: object) -> list[tuple[Any, ...]]:
        seen.append((*args, kwargs))
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443)),
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2606:2800:220:1::1", 443, 0, 0)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    assert system_resolver("example.com", 443) == ["93.184.216.34", "2606:2800:220:1::1"]
    assert seen == [("example.com", 443, {"type": socket.SOCK_STREAM})]
    target = check_url("https://example.com/")
    assert target.addresses == ("93.184.216.34", "2606:2800:220:1::1")


def test_system_resolver_failure_is_unresolvable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A getaddrinfo failure through the default resolver raises UnresolvableHostError."""

    def failing(*args: object, **kwargs: object) -> list[tuple[Any, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", failing)
    with pytest.raises(UnresolvableHostError):
        check_url("http://nxdomain.example/")


# --- validate_url: the first check on a user's URL ------------------------------------------

#: Malformed URLs that each once raised a bare ValueError or UnicodeEncodeError from urlsplit
#: or from encoding, instead of a BlockedURLError.
MALFORMED_URLS = [
    "http://[127.0.0.1]:1337/",
    "http://[[example.net]]:1337/",
    "http://[\u2460\u2461\u2466.0.0.1]/",  # enclosed alphanumerics inside brackets
    "http://[\u2460\u2461\u2466.0.0.1]:80/",
    "http://[::ffff:\u2460\u2461\u2466.0.0.1]/",
    "http://a\udcff.com/",  # a lone surrogate in the host
    "http://a.com/\udcff.jpg",  # ... in the path
    "http://a.com/x.jpg?q=\ud800",  # ... in the query
    "http://a.com:\u2460/",
    "http://]/",
    "http://[/",
]


@pytest.mark.parametrize("url", MALFORMED_URLS)
def test_malformed_urls_are_invalid_url_errors(url: str) -> None:
    """Every malformed URL is an InvalidURLError (bad input, exit 2, and a FetchError), before
    any lookup, with a message that can be printed."""
    for check in (validate_url, parse_url, lambda u: check_url(u, resolver=no_dns)):
        with pytest.raises(InvalidURLError) as info:
            check(url)
        assert isinstance(info.value, InvalidInputError) and info.value.exit_code == 2
        str(info.value).encode("utf-8")  # printable: no lone surrogate left in it


@pytest.mark.parametrize("value", [None, 42, b"http://example.com/", ["http://a.com/"], "", "  "])
def test_validate_url_refuses_non_strings_and_blanks_as_invalid_input(value: object) -> None:
    with pytest.raises(InvalidInputError):
        validate_url(value)


def test_validate_url_returns_a_good_url_without_resolving_it() -> None:
    url = "https://media.example/p/1.jpg?size=large#x"
    assert validate_url(url) == url  # no resolver given, and none is called


def test_parse_url_gives_the_request_target() -> None:
    parsed = parse_url("https://Media.Example:8443/a%20b/c.jpg?x=1#frag")
    assert (parsed.scheme, parsed.host, parsed.port, parsed.literal) == (
        "https",
        "media.example",
        8443,
        None,
    )
    assert parsed.target == "/a%20b/c.jpg?x=1"
    assert parse_url("http://example.com").target == "/"


@pytest.mark.parametrize("url", ["http://127.0.0.1/", "http://localhost/"])
def test_private_address_refusal_names_the_way_to_allow_it(url: str) -> None:
    """The refusal tells the user about --allow-private and allow_private_networks=True."""
    with pytest.raises(BlockedURLError) as info:
        check_url(url, resolver=lambda host, port: ["127.0.0.1"])
    assert "--allow-private" in info.value.reason
    assert "allow_private_networks=True" in info.value.reason


def test_a_custom_policy_judges_instead_of_the_default() -> None:
    target = check_url("http://127.0.0.1/", policy=lambda ip: None)
    assert target.addresses == ("127.0.0.1",)
    with pytest.raises(BlockedURLError, match="nope"):
        check_url("http://8.8.8.8/", policy=lambda ip: "nope")
