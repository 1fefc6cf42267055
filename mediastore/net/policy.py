"""Which URLs a download may fetch: the guard against server-side request forgery (SSRF).

:func:`check_url` validates an untrusted URL, refuses every scheme but ``http``/``https``,
resolves the host exactly once and refuses the URL if *any* address is not public. The caller
must then connect to one of :attr:`Target.addresses` (sending ``Target.host`` as Host/SNI)
instead of resolving the name again: a second lookup could return a different answer (DNS
rebinding) and reach an internal service that the check never saw.

:func:`validate_url` is the first check on a user's URL (syntax only, no lookup: whatever is
passed, a bad value fails as :class:`InvalidInputError` or :class:`BlockedURLError`);
:func:`parse_url` and :func:`resolve` are the two halves of :func:`check_url`, so that a
caller can cache the second per host.

Decisions worth knowing:

* Percent-encoded hosts are decoded, as browsers do, and the decoded host is what gets checked
  (``http://%31%32%37.0.0.1/`` is refused as loopback). A decoded host may only be a DNS name or
  a dotted IPv4 literal; characters such as ``:``, ``@`` or ``%`` that only decoding produced
  make the host invalid.
* IPv4 literals are recognised in every spelling that ``inet_aton`` or the WHATWG URL parser
  accepts (decimal, octal, hex, 1 to 4 parts, trailing dot). A host whose last label is a
  number but which is no valid IPv4 address (``256.1.1.1``, ``1.2.3.4.5``) is refused, as
  browsers refuse it, rather than handed to a resolver that might interpret it differently.
* For an IP-literal host, :attr:`Target.host` is the canonical address (``127.1`` becomes
  ``127.0.0.1``), so no later parser can read the odd spelling another way.
* IPv6 zone IDs (``[fe80::1%25eth0]``) are refused as syntax, even with ``allow_private``.
* IPv6 is allow-listed: only global unicast 2000::/3 may pass, minus the special ranges in it.
  IPv4 embedded in IPv6 (mapped, compatible, translated, 6to4, Teredo, NAT64 64:ff9b::/96) is
  unwrapped and the IPv4 address decides. Local-use NAT64 64:ff9b:1::/48 (RFC 8215) is refused
  whole: its mapping is site-specific, so the embedded bits cannot be trusted.
* Anycast ranges that IANA marks globally reachable (AS112 192.31.196.0/24 and 192.175.48.0/24,
  AMT 192.52.193.0/24) are allowed; all of 192.0.0.0/24 and 2001::/23 apart from Teredo is
  refused, including the few anycast services in them, because no media lives there.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, NoReturn, TypeAlias
from urllib.parse import unquote_to_bytes, urlsplit

from ..errors import BlockedURLError, InvalidInputError, InvalidURLError, UnresolvableHostError
from ..types import Resolver

__all__ = [
    "ALLOWED_SCHEMES",
    "PRIVATE_HINT",
    "AddressPolicy",
    "BlockedURLError",
    "IPAddress",
    "ParsedURL",
    "Resolver",
    "Target",
    "UnresolvableHostError",
    "check_url",
    "parse_host_literal",
    "parse_url",
    "refused_reason",
    "resolve",
    "system_resolver",
    "validate_url",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address


#: Decides whether an address may be contacted: ``None`` to allow, else the reason to refuse.
AddressPolicy: TypeAlias = Callable[[IPAddress], str | None]

#: Appended to every refused address, so that a user on an intranet knows the way out.
PRIVATE_HINT: Final = "allow it with --allow-private (CLI) or allow_private_networks=True"

ALLOWED_SCHEMES: Final = frozenset({"http", "https"})
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class ParsedURL:
    """A URL whose syntax passed the checks; nothing resolved yet.

    Attributes:
        scheme: ``http`` or ``https``.
        host: The host, lowercase and IDNA-encoded, without brackets; for an IP literal the
            canonical address.
        port: The explicit port, else 80 for http and 443 for https.
        literal: The address when the host is an IP literal, else ``None``.
        target: What follows the authority, as given: path (``/`` if empty) and query,
            without the fragment.
    """

    scheme: str
    host: str
    port: int
    literal: IPAddress | None
    target: str = "/"


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL: connect to one of ``addresses``, never to a fresh lookup of ``host``.

    Attributes:
        scheme: ``http`` or ``https``.
        host: The host, lowercase and IDNA-encoded, without brackets; for an IP literal the
            canonical address.
        port: The explicit port, else 80 for http and 443 for https.
        addresses: The checked addresses, deduplicated, in the resolver's order.
    """

    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


# --- address policy -------------------------------------------------------------------------

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# First match wins, so the narrower network with the more precise reason comes first.
_IPV4_REFUSED: Final[tuple[tuple[ipaddress.IPv4Network, str], ...]] = (
    (_V4("0.0.0.0/32"), "unspecified"),
    (_V4("0.0.0.0/8"), "this network"),
    (_V4("10.0.0.0/8"), "private"),
    (_V4("100.64.0.0/10"), "shared (CGNAT)"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.0.0/16"), "link-local"),  # includes the cloud metadata 169.254.169.254
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.0.0.0/24"), "IETF protocol assignments"),
    (_V4("192.0.2.0/24"), "documentation"),
    (_V4("192.88.99.0/24"), "6to4 relay anycast"),
    (_V4("192.168.0.0/16"), "private"),
    (_V4("198.18.0.0/15"), "benchmarking"),
    (_V4("198.51.100.0/24"), "documentation"),
    (_V4("203.0.113.0/24"), "documentation"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("240.0.0.0/4"), "reserved"),  # includes the limited broadcast 255.255.255.255
)

_IPV6_GLOBAL_UNICAST: Final = _V6("2000::/3")

# Ranges outside 2000::/3 that get a precise reason; the rest of that space is "reserved".
_IPV6_NON_GLOBAL: Final[tuple[tuple[ipaddress.IPv6Network, str], ...]] = (
    (_V6("64:ff9b:1::/48"), "local-use NAT64"),
    (_V6("100::/64"), "discard"),
    (_V6("fc00::/7"), "private"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "site-local"),
    (_V6("ff00::/8"), "multicast"),
)

# Special ranges inside 2000::/3 (Teredo 2001::/32 and 6to4 are unwrapped before this table).
_IPV6_REFUSED_IN_GLOBAL: Final[tuple[tuple[ipaddress.IPv6Network, str], ...]] = (
    (_V6("2001:2::/48"), "benchmarking"),
    (_V6("2001:10::/28"), "ORCHID"),
    (_V6("2001:20::/28"), "ORCHIDv2"),
    (_V6("2001::/23"), "IETF protocol assignments"),
    (_V6("2001:db8::/32"), "documentation"),
    (_V6("3fff::/20"), "documentation"),
)

_MAPPED: Final = _V6("::ffff:0:0/96")
_TRANSLATED: Final = _V6("::ffff:0:0:0/96")
_COMPATIBLE: Final = _V6("::/96")
_NAT64: Final = _V6("64:ff9b::/96")
_TEREDO: Final = _V6("2001::/32")
_SIX_TO_FOUR: Final = _V6("2002::/16")
_LOW32: Final = 0xFFFFFFFF


def refused_reason(ip: IPAddress) -> str | None:
    """Say why ``ip`` may not be contacted under the default (public-only) policy.

    The decision comes from explicit tables, not from :attr:`ipaddress.IPv4Address.is_global`,
    which on Python 3.11 calls multicast, 6to4 and NAT64 addresses global.

    Args:
        ip: The address to judge.

    Returns:
        ``None`` if the address is public, else a short reason such as ``'loopback'``,
        ``'shared (CGNAT)'`` or ``'IPv4-mapped 127.0.0.1: loopback'``.
    """
    if isinstance(ip, ipaddress.IPv4Address):
        return _ipv4_reason(ip)
    return _ipv6_reason(ip)


def _ipv4_reason(ip: ipaddress.IPv4Address) -> str | None:
    for network, reason in _IPV4_REFUSED:
        if ip in network:
            return reason
    return None


def _embedded_reason(kind: str, value: int) -> str | None:
    embedded = ipaddress.IPv4Address(value & _LOW32)
    reason = _ipv4_reason(embedded)
    return None if reason is None else f"{kind} {embedded}: {reason}"


def _ipv6_reason(ip: ipaddress.IPv6Address) -> str | None:
    # int() drops a scope ID, so "fe80::1%eth0" is judged like fe80::1.
    value = int(ip)
    if value == 0:
        return "unspecified"
    if value == 1:
        return "loopback"
    # Embedded IPv4 is unwrapped first: the kernel or a NAT64/6to4/Teredo relay delivers such
    # packets to the IPv4 address, so that address is what must be public.
    if ip in _MAPPED:
        return _embedded_reason("IPv4-mapped", value)
    if ip in _TRANSLATED:
        return _embedded_reason("IPv4-translated", value)
    if ip in _COMPATIBLE:
        return _embedded_reason("IPv4-compatible", value)
    if ip in _NAT64:
        return _embedded_reason("NAT64", value)
    for network, reason in _IPV6_NON_GLOBAL:
        if ip in network:
            return reason
    # Allow-list: whatever IANA assigns outside 2000::/3 later is refused until reviewed.
    if ip not in _IPV6_GLOBAL_UNICAST:
        return "reserved"
    if ip in _TEREDO:
        # 2001:0:SSSS:SSSS:flags:port:CCCC:CCCC, client bits stored inverted (RFC 4380).
        client = _embedded_reason("Teredo client", ~value)
        return client or _embedded_reason("Teredo server", value >> 64)
    if ip in _SIX_TO_FOUR:
        return _embedded_reason("6to4", value >> 80)  # 2002:AABB:CCDD::/48
    for network, reason in _IPV6_REFUSED_IN_GLOBAL:
        if ip in network:
            return reason
    return None


# --- host literals --------------------------------------------------------------------------

_DEC_DIGITS: Final = frozenset("0123456789")
_OCT_DIGITS: Final = frozenset("01234567")
_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")


def _ipv4_number(part: str) -> int | None:
    """Read one dotted part as inet_aton does: ``0x`` hex, leading ``0`` octal, else decimal."""
    if part[:2] in ("0x", "0X"):
        digits, base, allowed = part[2:], 16, _HEX_DIGITS
        if not digits:
            return 0  # a bare "0x" is 0 for both inet_aton and WHATWG
    elif len(part) > 1 and part[0] == "0":
        digits, base, allowed = part[1:], 8, _OCT_DIGITS
    else:
        digits, base, allowed = part, 10, _DEC_DIGITS
    # Checked by hand because int() also accepts "_", whitespace, signs and non-ASCII digits.
    if not digits or not set(digits) <= allowed:
        return None
    significant = digits.lstrip("0") or "0"
    if len(significant) > 16:
        return None  # above 2**32 in every base; also keeps int() off huge strings
    return int(significant, base)


_OCTET: Final = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD_RE: Final = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_LETTERS: Final = frozenset("ghijklmnopqrstuvwyzGHIJKLMNOPQRSTUVWYZ-_")  # never in a literal


def _parse_ipv4_any(host: str) -> ipaddress.IPv4Address | None:
    if not host or not host.isascii():
        return None
    if not _LETTERS.isdisjoint(host):
        return None  # a name: no hex or octal spelling of a number has these characters
    if _DOTTED_QUAD_RE.fullmatch(host):
        return ipaddress.IPv4Address(host)  # the usual spelling, without the part-by-part read
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()  # "127.0.0.1." is the same literal
    if len(parts) > 4:
        return None
    numbers: list[int] = []
    for part in parts:
        number = _ipv4_number(part)
        if number is None:
            return None
        numbers.append(number)
    *head, last = numbers
    # The last part fills all remaining bytes: "127.1" is 127.0.0.1, "10.1.1" is 10.1.0.1.
    if any(number > 255 for number in head) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for index, number in enumerate(head):
        value |= number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def parse_host_literal(host: str) -> IPAddress | None:
    """Read ``host`` as an IP address in any spelling a C resolver or browser accepts.

    Args:
        host: A host already taken from a URL: brackets removed, lowercased.

    Returns:
        The address for an IPv6 literal or an IPv4 literal in any ``inet_aton``/WHATWG form
        (``2130706433``, ``0177.0.0.1``, ``0x7f.1``, ``127.1``, ``10.1.1``, ``0``, a trailing
        dot), else ``None`` (a host name, or no valid address). IPv6 with a zone ID gives
        ``None``.
    """
    if ":" in host:
        if "%" in host or not host.isascii():
            return None
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            return None
    return _parse_ipv4_any(host)


def _ends_in_number(host: str) -> bool:
    """WHATWG's test for hosts that must be IPv4: the last label is decimal or ``0x`` hex."""
    labels = host.split(".")
    if len(labels) > 1 and labels[-1] == "":
        labels.pop()
    last = labels[-1]
    if last and set(last) <= _DEC_DIGITS:
        return True
    return last[:2] in ("0x", "0X") and set(last[2:]) <= _HEX_DIGITS


# --- URL syntax -----------------------------------------------------------------------------

_LABEL: Final = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_HOSTNAME_RE: Final = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_MAX_HOSTNAME: Final = 253


def _refuse(url: str, reason: str) -> NoReturn:
    raise BlockedURLError(url, reason)


def _malformed(url: str, reason: str) -> NoReturn:
    raise InvalidURLError(url, reason)


# Unicode whitespace (what str.isspace() calls space) and category Cc (C0, DEL, C1): urlsplit
# would silently strip or drop some of these (tab, CR, LF, leading spaces), so the URL it
# parses would not be the URL that was given.
_CONTROL_OR_SPACE_RE: Final = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def _check_characters(url: str) -> None:
    if url.isascii() and url.isprintable() and " " not in url:
        return  # the common case, decided without a per-character scan
    try:
        url.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (e.g. from os.fsdecode) can be neither percent-encoded nor sent,
        # nor even printed in the error message as it is.
        _malformed(
            url.encode("utf-8", "backslashreplace").decode("ascii"), "URL is not valid Unicode"
        )
    bad = _CONTROL_OR_SPACE_RE.search(url)
    if bad is not None:
        _malformed(url, f"control character or whitespace {bad.group()!r} in URL")


def _split_authority(url: str, netloc: str) -> tuple[str, bool, str | None]:
    """Split ``netloc`` into (host, bracketed, port text or None)."""
    if netloc.startswith("["):
        end = netloc.find("]")
        if end == -1:
            _malformed(url, "unterminated IPv6 literal")
        rest = netloc[end + 1 :]
        if rest and not rest.startswith(":"):
            _malformed(url, "unexpected characters after IPv6 literal")
        return netloc[1:end], True, rest[1:] if rest else None
    host, colon, port_text = netloc.partition(":")
    return host, False, port_text if colon else None


def _parse_port(url: str, scheme: str, port_text: str | None) -> int:
    if not port_text:
        return _DEFAULT_PORTS[scheme]  # "http://host:/" means the default port, as in browsers
    # isdigit() alone admits non-ASCII digits and int() admits "_" and "+": both ruled out.
    if not (port_text.isascii() and port_text.isdigit()) or len(port_text.lstrip("0")) > 5:
        _malformed(url, f"invalid port {port_text!r}")
    port = int(port_text)
    if not 1 <= port <= 65535:
        _malformed(url, f"invalid port {port_text!r}")
    return port


def _decode_host(url: str, raw: str) -> str:
    """Percent-decode and IDNA-encode a non-bracketed host; lowercase ASCII result."""
    if raw.isascii() and "%" not in raw:
        return raw.lower()
    try:
        decoded = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        _malformed(url, "host is not valid percent-encoded UTF-8")
    if decoded.isascii():
        return decoded.lower()
    try:
        # Nameprep maps full-width digits and ideographic full stops (U+FF10.., U+3002) to
        # ASCII, so a full-width "127.0.0.1" comes out as an ASCII literal and is caught below,
        # as browsers also read it.
        return decoded.encode("idna").decode("ascii").lower()
    except UnicodeError:
        _malformed(url, f"invalid international host name {decoded!r}")


def parse_url(url: object) -> ParsedURL:
    """Check the syntax of an untrusted URL, without resolving anything.

    A download parses each URL twice (:func:`validate_url` on taking it, the request on
    sending it): the last few hundred URLs that passed are kept, so the second parse is a
    lookup. Only successes are kept, and a :class:`ParsedURL` is immutable.

    Args:
        url: Anything; only a string can pass.

    Returns:
        The scheme, host, port and (for an IP literal) address.

    Raises:
        BlockedURLError: ``url`` is not a string, or not an http/https URL this module accepts
            (see :func:`check_url`).
    """
    if not isinstance(url, str):
        _malformed(repr(url), "URL must be a string")
    return _parse_str(url)


#: URLs whose parse is kept: more than the downloads in flight in one process.
PARSED_CACHE_SIZE = 512


@functools.lru_cache(maxsize=PARSED_CACHE_SIZE)
def _parse_str(url: str) -> ParsedURL:
    _check_characters(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InvalidURLError(url, f"malformed URL: {exc}") from exc
    scheme = parts.scheme
    if not scheme:
        _malformed(url, "missing scheme (only http and https are allowed)")
    if scheme not in ALLOWED_SCHEMES:
        _refuse(url, f"scheme {scheme!r} is not allowed (only http and https)")
    netloc = parts.netloc
    if not netloc:
        _malformed(url, "missing host")
    # Browsers read "\" as "/" in http(s) URLs, so "http://a.com\@10.0.0.1/" means host a.com to
    # them but 10.0.0.1 to urlsplit; refusing removes the disagreement.
    if "\\" in netloc:
        _refuse(url, "backslash in authority")
    # Credentials are never needed for media, and "@" is the usual way to hide the real host.
    if "@" in netloc:
        _refuse(url, "credentials (user@ or user:password@) are not allowed")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    raw_host, bracketed, port_text = _split_authority(url, netloc)
    port = _parse_port(url, scheme, port_text)
    if not raw_host:
        _malformed(url, "empty host")

    if bracketed:
        # Percent-decoding never applies inside brackets (WHATWG), so "%" can only be a zone ID.
        if "%" in raw_host:
            _refuse(url, "IPv6 zone IDs are not allowed")
        try:
            address6 = ipaddress.IPv6Address(raw_host)
        except ValueError:
            _malformed(url, f"invalid IPv6 literal [{raw_host}]")
        return ParsedURL(scheme, str(address6), port, address6, target)

    host = _decode_host(url, raw_host)
    # Only IPv4 here: a ":" can only come from decoding "%3a", which browsers reject as well.
    address4 = _parse_ipv4_any(host)
    if address4 is not None:
        return ParsedURL(scheme, str(address4), port, address4, target)
    if _ends_in_number(host):
        _malformed(url, f"invalid IPv4 address {host!r}")
    if len(host.rstrip(".")) > _MAX_HOSTNAME or not _HOSTNAME_RE.fullmatch(host):
        _malformed(url, f"invalid host name {host!r}")
    return ParsedURL(scheme, host, port, None, target)


def validate_url(url: object) -> str:
    """Refuse what can never be downloaded, before any lookup: the first call on a user's URL.

    Args:
        url: Whatever the caller passed as a URL.

    Returns:
        ``url`` itself, now known to be a string with valid http/https syntax.

    Raises:
        InvalidInputError: ``url`` is not a string, or is empty or blank.
        BlockedURLError: Anything else wrong with it: scheme, syntax, credentials, host, port,
            control characters, lone surrogates (see :func:`check_url`).
    """
    if not isinstance(url, str) or not url.strip():
        shown = repr(url) if len(repr(url)) <= 200 else repr(url)[:200] + "..."
        raise InvalidInputError(f"url must be a non-empty string, got {shown}")
    parse_url(url)
    return url


# --- resolution -----------------------------------------------------------------------------


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the system resolver (``socket.getaddrinfo``); the default :data:`Resolver`.

    Args:
        host: An IDNA-encoded host name.
        port: The port to connect to (passed on, as some resolvers filter by service).

    Returns:
        The IPv4 and IPv6 address strings, in the resolver's order, possibly repeated.

    Raises:
        OSError: The lookup failed (``socket.gaierror``).
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [
        str(sockaddr[0])
        for family, _type, _proto, _canonname, sockaddr in infos
        if family in (socket.AF_INET, socket.AF_INET6)
    ]


def _resolve(url: str, host: str, port: int, resolver: Resolver) -> list[IPAddress]:
    try:
        answers = resolver(host, port)
    except OSError as exc:
        raise UnresolvableHostError(url, f"cannot resolve host {host!r}: {exc}") from exc
    if not answers:
        raise UnresolvableHostError(url, f"cannot resolve host {host!r}: no addresses")
    addresses: list[IPAddress] = []
    for answer in answers:
        # ip_address() would also take an int; only strict address strings are accepted.
        if not isinstance(answer, str):
            _refuse(url, f"resolver returned a non-address {answer!r} for {host!r}")
        try:
            addresses.append(ipaddress.ip_address(answer))
        except ValueError:
            _refuse(url, f"resolver returned a non-address {answer!r} for {host!r}")
    return addresses


def check_url(
    url: object,
    *,
    allow_private: bool = False,
    resolver: Resolver | None = None,
    policy: AddressPolicy | None = None,
) -> Target:
    """Validate ``url`` and resolve its host once; return where it is safe to connect.

    Args:
        url: The untrusted URL.
        allow_private: Lift the address checks (for tests and trusted intranets). Scheme,
            credential and syntax checks still apply, and the host is still resolved.
        resolver: ``(host, port) -> address strings``; defaults to :func:`system_resolver`.
            Not called when the host is an IP literal.
        policy: Judges each address instead of :func:`refused_reason`.

    Returns:
        The :class:`Target`; connect to one of its ``addresses``, never re-resolve ``host``.

    Raises:
        BlockedURLError: ``url`` is not a string; the scheme is not http/https; the URL has
            credentials, a backslash, control characters or lone surrogates in it, an
            invalid host or port; or (unless ``allow_private``) the literal address or any
            resolved address is refused by the policy.
        UnresolvableHostError: The resolver raised ``OSError`` or returned no addresses.
    """
    parsed = parse_url(url)
    assert isinstance(url, str)  # parse_url refuses anything else
    return resolve(url, parsed, allow_private=allow_private, resolver=resolver, policy=policy)


def resolve(
    url: str,
    parsed: ParsedURL,
    *,
    allow_private: bool = False,
    resolver: Resolver | None = None,
    policy: AddressPolicy | None = None,
) -> Target:
    """The second half of :func:`check_url`: resolve an already parsed URL and judge it.

    Args:
        url: The URL, for error messages.
        parsed: What :func:`parse_url` made of it.
        allow_private: Lift the address checks.
        resolver: As for :func:`check_url`.
        policy: As for :func:`check_url`.

    Returns:
        The :class:`Target`.

    Raises:
        BlockedURLError: An address is refused by the policy.
        UnresolvableHostError: The resolver raised ``OSError`` or returned no addresses.
    """
    judge = None if allow_private else policy or refused_reason
    host, literal = parsed.host, parsed.literal
    if literal is not None:
        reason = judge(literal) if judge is not None else None
        if reason is not None:
            _refuse(url, f"address {literal} is not allowed ({reason}); {PRIVATE_HINT}")
        return Target(parsed.scheme, host, parsed.port, (str(literal),))

    addresses = _resolve(url, host, parsed.port, resolver or system_resolver)
    if judge is not None:
        # Any refused answer refuses the host: a client may try every address in turn, and a
        # name that mixes public and internal answers is a rebinding attempt or a misconfig.
        for address in addresses:
            reason = judge(address)
            if reason is not None:
                _refuse(
                    url,
                    f"host {host!r} resolves to {address}, not allowed ({reason}); {PRIVATE_HINT}",
                )
    unique = tuple(dict.fromkeys(str(address) for address in addresses))
    return Target(parsed.scheme, host, parsed.port, unique)
