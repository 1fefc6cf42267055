"""Sizes and periods as people type them (``100M``, ``1.5GiB``, ``7d``) and as they read them
(``3.2 MB``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from .errors import InvalidInputError

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)", re.IGNORECASE)
_SIZE_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_size(text: str | int, *, what: str = "size") -> int:
    """Bytes from ``123``, ``10K``, ``100MB``, ``1.5GiB`` (K, M, G, T are powers of 1024).

    Raises:
        InvalidInputError: not a size.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise InvalidInputError(f"{what} must not be negative, got {text}")
        return text
    match = _SIZE.fullmatch(str(text).strip())
    if not match or (match[3] and match[3].lower() == "i"):
        raise InvalidInputError(f"{what}: {text!r} is not a size like 500K, 100M or 1G")
    return int(float(match[1]) * 1024 ** _SIZE_POWERS[match[2].lower()])


def parse_duration(text: str) -> timedelta:
    """A period from ``90s``, ``30m``, ``12h``, ``7d`` or ``2w``.

    Raises:
        InvalidInputError: not a period.
    """
    match = _DURATION.fullmatch(str(text).strip().lower())
    if not match:
        raise InvalidInputError(f"{text!r} is not a duration like 90s, 30m, 12h, 7d or 2w")
    return timedelta(seconds=float(match[1]) * _SECONDS[match[2]])


def parse_when(text: str, *, now: datetime | None = None) -> datetime:
    """A moment from an ISO date or time (UTC unless it says otherwise) or a period ago (``7d``).

    Raises:
        InvalidInputError: neither.
    """
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        try:
            return (now or datetime.now(UTC)) - parse_duration(text)
        except InvalidInputError:
            raise InvalidInputError(
                f"{text!r} is not a date (2026-01-31, 2026-01-31T12:00) or a period ago (7d)"
            ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def format_size(size_bytes: float) -> str:
    """Human-readable size: ``512 B``, ``1.5 KB``, ``3.2 MB``... (powers of 1024)."""
    size = float(size_bytes)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1024 or unit == "TB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
