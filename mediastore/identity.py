"""URL identity: which URLs name the same bytes, whatever their signature of the day.

Social-media CDNs hand out the same asset under URLs that change: signed query strings that
rotate (``?e=<expiry>&t=<signature>``), one picture in several sizes. A :class:`Rule`
recognises URLs by host and path and derives from each

- an *identity*: the rule's name and the path's named groups (the asset, and whatever else
  makes it distinct, such as a document's page); two URLs of one identity and one variant are
  the same bytes, so a lookup or a fetch of one is answered by the other;
- a *variant* (the size or rendition class, the group named by ``variant``) and its *rank*
  (which variant is larger: by default the largest number in its name);
- an *expiry*, from a query parameter holding a Unix time (``e=2147483647`` means never).

A rule without a path pattern keeps the path and the query, minus the parameters it drops
(signatures, expiries, ``utm_*``): the generic rule for hosts a user lists. Rules match the
host name whatever the scheme and port, so http and https of one asset are one identity.

The built-in rules cover LinkedIn: feed images and profile photos (``media.licdn.com/dms/
image/...``, the class is the variant), document pages (the segment after the class is the
page: part of the identity, each page another picture) and progressive MP4 videos and their
thumbnails (``dms.licdn.com/playlist/vid/...``; HLS playlists are not media and match none).
User rules, from ``mediastore.toml`` (``[[rules]]``) or ``StoreConfig.identity_rules``, are
tried first.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from .errors import InvalidInputError

#: ``e=`` values at or beyond this are "never expires" (2**31 - 1, the 32-bit time limit).
NEVER = 2**31 - 1
#: Keys a rule may have in ``mediastore.toml``.
RULE_KEYS = frozenset({"name", "hosts", "path", "drop", "variant", "rank", "expiry"})
_NUMBER = re.compile(r"\d+")


@dataclass(frozen=True, slots=True)
class Identity:
    """What a rule derived from a URL.

    Attributes:
        key: The identity, as text (``rule:group=value/...``); :attr:`digest` is what the
            catalog indexes.
        variant: The size or rendition class, or None when the rule has no variants.
        rank: How large the variant is (higher is larger), or None.
        expires_at: When the URL stops working, or None (no expiry, or never).
    """

    key: str
    variant: str | None = None
    rank: int | None = None
    expires_at: datetime | None = None
    #: The SHA-256 of :attr:`key` (fixed length, for the catalog's index).
    digest: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", hashlib.sha256(self.key.encode("utf-8")).hexdigest())


@dataclass(frozen=True, slots=True)
class Rule:
    """One way of recognising URLs and deriving their identity (see the module doc).

    Attributes:
        name: Names the rule in identities and messages.
        hosts: Host name globs (``media.licdn.com``, ``*.cdn.example``), lower case.
        path: A regular expression the whole path must match, with named groups; None
            keeps the path as it is (the generic rule).
        drop: Query parameters that do not change the bytes (globs: ``utm_*``); the others
            stay part of the identity. With a path pattern the query is dropped whole.
        variant: The group that names the variant, or None.
        rank: ``number`` (the largest number in the variant) or the variants in order,
            smallest first.
        expiry: The query parameter that holds the URL's expiry (a Unix time), or None.
    """

    name: str
    hosts: tuple[str, ...]
    path: re.Pattern[str] | None = None
    drop: tuple[str, ...] = ()
    variant: str | None = None
    rank: str | tuple[str, ...] = "number"
    expiry: str | None = None

    def matches_host(self, host: str) -> bool:
        return _hosts_pattern(self.hosts).fullmatch(host) is not None

    def identify(self, host: str, path: str, query: str) -> Identity | None:
        """The identity of a URL whose host this rule serves, or None if its path does not
        match."""
        if self.path is None:
            params = parse_qsl(query, keep_blank_values=True)
            kept = sorted((k, v) for k, v in params if not self._dropped(k))
            key = f"{self.name}:{host}{path}" + (f"?{urlencode(kept)}" if kept else "")
            return Identity(key, expires_at=_expiry(query, self.expiry))
        found = self.path.fullmatch(path)
        if found is None:
            return None
        names = _key_groups(self.path, self.variant)
        parts = "/".join(f"{k}={v}" for k in names if (v := found.group(k)) is not None)
        variant = found.group(self.variant) if self.variant else None
        return Identity(
            f"{self.name}:{parts}", variant, self._rank(variant), _expiry(query, self.expiry)
        )

    def _dropped(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.drop)

    def _rank(self, variant: str | None) -> int | None:
        return None if variant is None else _rank(self.rank, variant)


def _expiry(query: str, name: str | None) -> datetime | None:
    """The time in the query parameter ``name`` (the first one of digits only), if any.

    The query is not decoded: a value of digits needs no decoding, and a name that needs
    it is not one a rule can give (see :func:`rule_from_mapping`).
    """
    if name is None:
        return None
    prefix = name + "="
    for part in query.split("&"):
        if part.startswith(prefix) and (value := part[len(prefix) :]).isdigit():
            seconds = int(value)
            return None if seconds >= NEVER else datetime.fromtimestamp(seconds, UTC)
    return None


@functools.lru_cache(maxsize=256)
def _key_groups(pattern: re.Pattern[str], variant: str | None) -> tuple[str, ...]:
    """The groups of ``pattern`` that make an identity, in name order (the variant's is not
    one: sizes of one asset share their identity)."""
    return tuple(sorted(name for name in pattern.groupindex if name != variant))


@functools.lru_cache(maxsize=1024)
def _rank(rank: str | tuple[str, ...], variant: str) -> int:
    """A variant's rank: its largest number, or its place in the rule's list (-1: absent).
    Cached: a store meets few variant names, many times each."""
    if rank == "number":
        numbers = [int(n) for n in _NUMBER.findall(variant)]
        return max(numbers) if numbers else 0
    return rank.index(variant) if variant in rank else -1


#: An http(s) URL in the form most are given (a lower-case host, no credentials, nothing to
#: clean up): split by one match, several times faster than urlsplit, which the rest takes.
_PLAIN_URL = re.compile(
    r"https?://([a-z0-9.-]+)(?::[0-9]{1,5})?(/[^?#\s]*)?(?:\?([^#\s]*))?(?:#\S*)?"
)


def _split(url: str) -> tuple[str, str, str] | None:
    """(host in lower case, path, query) of an http(s) URL, or None for any other text."""
    plain = _PLAIN_URL.fullmatch(url)
    if plain is not None:
        host, path, query = plain.groups()
        return host, path or "/", query or ""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    return host, parts.path or "/", parts.query


@functools.lru_cache(maxsize=256)
def _hosts_pattern(hosts: tuple[str, ...]) -> re.Pattern[str]:
    """One expression for a rule's host globs (matching them one by one costs more)."""
    return re.compile("|".join(f"(?:{fnmatch.translate(glob)})" for glob in hosts))


def _pattern(text: str, rule: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise InvalidInputError(f"identity rule {rule!r}: bad path pattern: {exc}") from None


#: LinkedIn's image classes: ``feedshare-shrink_800``, ``profile-displayphoto-shrink_100_100``,
#: ``feedshare-document-images_1920``...; the segment after the class is 0 for a picture and
#: the page of a document (each page another picture: part of the identity).
_LINKEDIN_IMAGE = (
    r"/dms/image/(?:v2/)?(?P<asset>[A-Za-z0-9_-]+)/(?P<variant>[a-z][a-z0-9_-]*)"
    r"(?:/(?P=variant))?/(?P<page>\d+)/\d+"
)
#: Progressive MP4 renditions (``mp4-720p-30fp-crf28``) and thumbnails of a video.
_LINKEDIN_VIDEO = (
    r"/playlist/vid/(?:v2/)?(?P<asset>[A-Za-z0-9_-]+)/"
    r"(?P<variant>(?P<kind>mp4|thumbnail)-[a-z0-9_-]+)(?:/[^/]+)*"
)

BUILT_IN: tuple[Rule, ...] = (
    Rule(
        "linkedin-image",
        ("media.licdn.com", "media-exp*.licdn.com"),
        re.compile(_LINKEDIN_IMAGE),
        variant="variant",
        expiry="e",
    ),
    Rule(
        "linkedin-video",
        ("dms.licdn.com",),
        re.compile(_LINKEDIN_VIDEO),
        variant="variant",
        expiry="e",
    ),
)


def rule_from_mapping(spec: Mapping[str, Any], where: str) -> Rule:
    """A rule from its settings-file form (``[[rules]]`` in ``mediastore.toml``).

    Raises:
        InvalidInputError: an unknown key, a missing or wrong-typed value, a bad pattern, a
            variant that is not a group of the pattern; the message names the rule.
    """
    name = spec.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", name):
        raise InvalidInputError(
            f"identity rule in {where}: 'name' must be lower-case letters, digits, '.', "
            f"'_' or '-', got {name!r}"
        )
    what = f"identity rule {name!r} in {where}"
    unknown = set(spec) - RULE_KEYS
    if unknown:
        raise InvalidInputError(f"{what}: unknown key(s) {', '.join(sorted(unknown))}")
    hosts = spec.get("hosts")
    if isinstance(hosts, str):
        hosts = [hosts]
    if not hosts or not all(isinstance(h, str) and h for h in hosts):
        raise InvalidInputError(f"{what}: 'hosts' must be a host name glob or a list of them")
    path = spec.get("path")
    if path is not None and not isinstance(path, str):
        raise InvalidInputError(f"{what}: 'path' must be a regular expression")
    pattern = _pattern(path, name) if path is not None else None
    drop = spec.get("drop", [])
    if not isinstance(drop, list) or not all(isinstance(d, str) and d for d in drop):
        raise InvalidInputError(f"{what}: 'drop' must be a list of query parameter names")
    variant = spec.get("variant")
    if variant is not None and (pattern is None or variant not in pattern.groupindex):
        raise InvalidInputError(f"{what}: 'variant' must name a group of 'path', got {variant!r}")
    rank = spec.get("rank", "number")
    if isinstance(rank, list) and all(isinstance(r, str) for r in rank):
        rank = tuple(rank)
    elif rank != "number":
        raise InvalidInputError(f"{what}: 'rank' must be \"number\" or a list of variants")
    expiry = spec.get("expiry")
    if expiry is not None and not (
        isinstance(expiry, str) and re.fullmatch(r"[A-Za-z0-9_.~-]+", expiry)
    ):
        raise InvalidInputError(
            f"{what}: 'expiry' must be a query parameter name (letters, digits, '_', '.', "
            f"'~' or '-'), got {expiry!r}"
        )
    if pattern is None and not drop:
        raise InvalidInputError(f"{what}: give 'path' (with named groups) or 'drop'")
    return Rule(name, tuple(h.lower() for h in hosts), pattern, tuple(drop), variant, rank, expiry)


@dataclass(frozen=True, slots=True)
class Identities:
    """The rules in use, user rules first, and the identity they give a URL."""

    rules: tuple[Rule, ...] = BUILT_IN

    @classmethod
    def with_user_rules(cls, rules: Iterable[Rule]) -> Identities:
        return cls((*rules, *BUILT_IN))

    def of(self, url: str) -> Identity | None:
        """The identity of ``url`` by the first rule whose host and path match, else None."""
        parts = _split(url)
        if parts is None:
            return None
        host, path, query = parts
        for rule in self.rules:
            if rule.matches_host(host):
                found = rule.identify(host, path, query)
                if found is not None:
                    return found
        return None

    def largest(self, urls: Iterable[str]) -> dict[str, str]:
        """For URLs of one asset in several sizes, the URL of the highest-ranked size that
        answers each of the others (the first such URL, when several have that rank).

        Only URLs a rule gives a ranked variant are collapsed; each URL of another asset,
        or of the top size, maps to nothing.
        """
        best: dict[str, tuple[int, str]] = {}
        members: dict[str, list[str]] = {}
        for url in urls:
            found = self.of(url)
            if found is None or found.rank is None:
                continue
            members.setdefault(found.digest, []).append(url)
            top = best.get(found.digest)
            if top is None or found.rank > top[0]:
                best[found.digest] = (found.rank, url)
        return {
            url: best[digest][1]
            for digest, group in members.items()
            for url in group
            if url != best[digest][1]
        }
