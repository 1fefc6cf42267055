"""What every blob backend provides: addresses (:class:`BlobRef`), what a walk finds
(:class:`StoredEntry`, :class:`BlobStat`), a staged temp (:class:`TempBlob`) and the
:class:`BlobStore` protocol.

A blob is addressed by a :class:`BlobRef` (kind, md5), which names the same relative key on
every backend: ``media/<images|videos|documents>/<md5>.<ext>``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple, Protocol

from ..errors import MediaStoreError
from ..formats.detect import MediaKind

#: Where a blob store keeps the marker naming the store its files belong to.
MARKER_KEY = "mediastore-store.json"
#: A marker is a few dozen bytes: a longer one is read only this far.
MARKER_MAX = 4096


class BlobRef(NamedTuple):
    """The address of one content: its kind and its MD5.

    A named tuple: every lookup makes one to ask where the row's file is, and a tuple is
    built several times faster than a frozen dataclass.
    """

    kind: MediaKind
    md5: str

    @property
    def directory(self) -> str:
        return self.kind.directory

    @property
    def name(self) -> str:
        return f"{self.md5}.{self.kind.extension}"

    @property
    def key(self) -> str:
        """The relative key, the same on disk and in a bucket."""
        return f"media/{self.directory}/{self.name}"


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """Something found in a typed directory by :meth:`BlobStore.walk` (maybe not a blob)."""

    directory: str
    name: str

    @property
    def key(self) -> str:
        return f"media/{self.directory}/{self.name}"


#: What :meth:`BlobStore.quarantine` and :meth:`BlobStore.delete` accept.
Location = BlobRef | StoredEntry


@dataclass(frozen=True, slots=True)
class BlobStat:
    """What is at an address: its size, whether it is a regular file, and an identity.

    ``identity`` changes when the entry is replaced (inode on disk, ETag in a bucket), so a
    caller can act on "the file I checked" and not on whatever took its place meanwhile.
    """

    size: int
    regular: bool
    identity: str


class TempBlob(Protocol):
    """A temp file being written; :meth:`BlobStore.place` moves it into place."""

    path: Path
    written: int
    synced: bool
    #: The content's SHA-256, set once it is complete (an object store sends it along).
    sha256: str | None

    def write(self, data: bytes | memoryview) -> None: ...
    def start_writeback(self, offset: int, length: int) -> None: ...
    def sync(self) -> None: ...
    def close(self) -> None: ...


class BlobStore(Protocol):
    """Where bytes live: the local disk here; an object store implements the same calls.

    Addresses (:class:`BlobRef`) cross this seam, not paths; :meth:`local_path` and
    :meth:`local_dir` (the directory it is in) are the calls that admit a path, and may
    return None (:meth:`describe` names an entry for reports on every backend).
    :meth:`abandoned_uploads` finds uploads a crash left on the server (none on disk).
    The marker (:data:`MARKER_KEY`, at the top, outside the ``media/`` tree :meth:`walk` lists)
    names the store whose files these are (see :mod:`mediastore.ownership`).
    """

    read_only: bool

    def create_temp(self) -> TempBlob: ...
    def discard(self, temp: TempBlob) -> None: ...
    def sync_temps(self, temps: Sequence[TempBlob]) -> None: ...
    def place_many(
        self, items: Sequence[tuple[TempBlob, BlobRef]]
    ) -> list[MediaStoreError | None]: ...
    def stat(self, loc: Location) -> BlobStat | None: ...
    def open(self, loc: Location) -> tuple[BinaryIO, BlobStat]: ...
    def delete(self, loc: Location, *, if_identity: str | None = None) -> bool: ...
    def quarantine(self, loc: Location, *, if_identity: str | None = None) -> str | None: ...
    def walk(self) -> Iterator[StoredEntry]: ...
    def local_path(self, loc: Location) -> Path | None: ...
    def local_dir(self, loc: Location) -> Path | None: ...
    def describe(self, loc: Location) -> str: ...
    def abandoned_temp_files(self, *, remove: bool) -> list[str]: ...
    def abandoned_uploads(self, *, remove: bool) -> list[str]: ...
    def read_marker(self) -> bytes | None: ...
    def write_marker(self, data: bytes) -> None: ...
    def delete_marker(self) -> None: ...
    def close(self) -> None: ...
