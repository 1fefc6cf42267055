"""Type aliases shared by the API: the shapes of the callbacks a caller may pass."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

#: Progress of work counted in items: ``(done, total)``, called as items finish.
Progress: TypeAlias = Callable[[int, int], None]
#: Progress of work counted in bytes: called with the bytes just read.
ByteProgress: TypeAlias = Callable[[int], None]
#: Name resolution for downloads: ``(host, port) -> [IP address, ...]``.
Resolver: TypeAlias = Callable[[str, int], list[str]]
