"""Both ends of an unfinished store move seen as one blob store (see :mod:`mediastore.migrate`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from ..errors import MediaStoreError
from .base import BlobRef, BlobStat, BlobStore, Location, StoredEntry, TempBlob


class MirroredBlobStore:
    """Both ends of an unfinished move as one blob store: writes to the target; reads from
    the target, else the source; removals on both; the walk covers both."""

    def __init__(self, target: BlobStore, source: BlobStore) -> None:
        self.target = target
        self.source = source
        self.read_only = target.read_only

    def create_temp(self) -> TempBlob:
        return self.target.create_temp()

    def discard(self, temp: TempBlob) -> None:
        self.target.discard(temp)

    def sync_temps(self, temps: Sequence[TempBlob]) -> None:
        self.target.sync_temps(temps)

    def place_many(self, items: Sequence[tuple[TempBlob, BlobRef]]) -> list[MediaStoreError | None]:
        return self.target.place_many(items)

    def stat(self, loc: Location) -> BlobStat | None:
        return self.target.stat(loc) or self.source.stat(loc)

    def open(self, loc: Location) -> tuple[BinaryIO, BlobStat]:
        try:
            return self.target.open(loc)
        except FileNotFoundError:
            return self.source.open(loc)

    def delete(self, loc: Location, *, if_identity: str | None = None) -> bool:
        deleted = self.target.delete(loc, if_identity=if_identity)
        return self.source.delete(loc, if_identity=if_identity) or deleted

    def quarantine(self, loc: Location, *, if_identity: str | None = None) -> str | None:
        moved = self.target.quarantine(loc, if_identity=if_identity)
        return self.source.quarantine(loc, if_identity=if_identity) or moved

    def walk(self) -> Iterator[StoredEntry]:
        seen: set[str] = set()
        for store in (self.target, self.source):
            for entry in store.walk():
                if entry.key not in seen:
                    seen.add(entry.key)
                    yield entry

    def local_path(self, loc: Location) -> Path | None:
        if self.target.stat(loc) is not None:
            return self.target.local_path(loc)
        return self.source.local_path(loc)

    def local_dir(self, loc: Location) -> Path | None:
        if self.target.stat(loc) is not None:
            return self.target.local_dir(loc)
        return self.source.local_dir(loc)

    def describe(self, loc: Location) -> str:
        return self.target.describe(loc)

    # the marker of the store being moved stays at the source until the move is finished
    def read_marker(self) -> bytes | None:
        return self.source.read_marker()

    def write_marker(self, data: bytes) -> None:
        self.source.write_marker(data)

    def delete_marker(self) -> None:
        self.source.delete_marker()

    def abandoned_temp_files(self, *, remove: bool) -> list[str]:
        return self.target.abandoned_temp_files(remove=remove) + (
            self.source.abandoned_temp_files(remove=remove)
        )

    def abandoned_uploads(self, *, remove: bool) -> list[str]:
        return self.target.abandoned_uploads(remove=remove) + (
            self.source.abandoned_uploads(remove=remove)
        )

    def close(self) -> None:
        self.target.close()
        self.source.close()
