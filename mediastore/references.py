"""References: a caller's keys on stored files (``post:123``), what a key may be, and how
one is given with a position and a role.

A reference says "this caller's object uses this file". The store keeps them beside the
files (``refs``), counts them per file, and, when asked (``gc --unreferenced``), collects
content whose last reference went away long enough ago (see ``docs/lifecycle.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import NamedTuple

from .errors import InvalidInputError

#: Longest key, in characters (a URN of a social network's post fits many times over).
MAX_REF_LENGTH = 512
#: Longest role (``cover``, ``thumbnail``, ``attachment``).
MAX_ROLE_LENGTH = 64
#: Largest position (a SQL integer).
MAX_POSITION = (1 << 31) - 1
#: How long content stays after its last reference went, before ``gc --unreferenced``
#: removes it: time for a re-import or an edit to take a new reference.
DEFAULT_GRACE = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class RefTake:
    """A reference to take, checked: the key, and optionally a position and a role."""

    ref: str
    position: int | None = None
    role: str | None = None


class RefUrl(NamedTuple):
    """A URL to fetch under a reference (an item of ``fetch_many`` / ``iter_fetch``).

    A plain ``(ref, url)`` tuple is accepted too.
    """

    ref: str
    url: str
    position: int | None = None
    role: str | None = None


def check_ref(ref: object) -> str:
    """``ref`` if it is a usable key: a non-empty string of at most MAX_REF_LENGTH
    characters that a database can store (no NUL, valid Unicode).

    Raises:
        InvalidInputError: it is not.
    """
    if not isinstance(ref, str):
        raise InvalidInputError(f"a reference is a string, got {type(ref).__name__}")
    _check_text("reference", ref, MAX_REF_LENGTH)
    return ref


def _check_text(what: str, text: str, limit: int) -> None:
    if not text:
        raise InvalidInputError(f"empty {what}")
    if len(text) > limit:
        raise InvalidInputError(f"{what} longer than {limit} characters ({len(text)})")
    if "\x00" in text:
        raise InvalidInputError(f"{what} contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"{what} is not valid Unicode: {exc.reason}") from exc


def ref_take(ref: object, position: object = None, role: object = None) -> RefTake:
    """A checked :class:`RefTake` from a caller's arguments.

    Raises:
        InvalidInputError: the key, the position (an integer from 0 to MAX_POSITION) or the
            role (a string of at most MAX_ROLE_LENGTH characters) is not usable.
    """
    key = check_ref(ref)
    if position is not None and (
        not isinstance(position, int)
        or isinstance(position, bool)
        or not 0 <= position <= MAX_POSITION
    ):
        raise InvalidInputError(f"a position is an integer from 0 to {MAX_POSITION}: {position!r}")
    if role is not None:
        if not isinstance(role, str):
            raise InvalidInputError(f"a role is a string, got {type(role).__name__}")
        _check_text("role", role, MAX_ROLE_LENGTH)
    return RefTake(key, position, role)


def ref_url(item: object) -> tuple[str, RefTake | None]:
    """The URL of a ``fetch_many`` item and the reference it carries (None: a plain URL).

    Raises:
        InvalidInputError: a tuple that is not ``(ref, url[, position[, role]])``, or whose
            reference is not usable. A plain item that is not a URL is left for the
            download to refuse (it fails alone).
    """
    if not isinstance(item, tuple):
        return item, None  # type: ignore[return-value]  # the download checks it
    if not 2 <= len(item) <= 4:
        raise InvalidInputError(f"a reference item is (ref, url[, position[, role]]): {item!r}")
    ref, url, *rest = item
    if not isinstance(url, str):
        raise InvalidInputError(f"a reference item's URL is a string: {item!r}")
    return url, ref_take(ref, *rest)


def grace_seconds(grace: object) -> int:
    """Whole seconds of a grace period (a ``timedelta`` of 0 or more).

    Raises:
        InvalidInputError: not a timedelta, or negative.
    """
    if not isinstance(grace, timedelta):
        raise InvalidInputError(f"grace is a timedelta, got {type(grace).__name__}")
    if grace < timedelta(0):
        raise InvalidInputError(f"grace cannot be negative: {grace}")
    return int(grace.total_seconds())
