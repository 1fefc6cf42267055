"""Storage of bytes: the :class:`BlobStore` protocol and the local-disk implementation.

A blob is addressed by (kind, md5): ``<root>/media/<images|videos|documents>/<md5>.<ext>``.
Writes go to a temp file in ``<root>/tmp/`` (same filesystem), are fsynced, then renamed into
place and the directory fsynced, so a reader never sees a partial file and a crash leaves at
worst an orphan temp file. The catalog row is committed by the caller only after :meth:`put`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol

from .errors import StorageError
from .records import MEDIA_TYPES
from .sniff import MediaKind

log = logging.getLogger(__name__)

TEMP_PREFIX = "ingest-"
FSYNC_THREADS = 8
TEMP_SUFFIX = ".part"


class TempBlob(Protocol):
    """A temp file being written; :meth:`BlobStore.put` moves it into place."""

    path: Path

    def write(self, data: bytes | memoryview) -> None: ...
    def close(self) -> None: ...


class BlobStore(Protocol):
    """Where bytes live. The local disk today; an S3 bucket can implement the same calls."""

    def create_temp(self) -> TempBlob: ...
    def put(self, temp: TempBlob, kind: MediaKind, md5: str) -> bool: ...
    def put_many(self, items: Sequence[tuple[TempBlob, MediaKind, str]]) -> list[bool]: ...
    def discard(self, temp: TempBlob) -> None: ...
    def path(self, kind: MediaKind, md5: str) -> Path: ...
    def size(self, kind: MediaKind, md5: str) -> int | None: ...
    def open(self, kind: MediaKind, md5: str) -> BinaryIO: ...
    def delete(self, kind: MediaKind, md5: str) -> bool: ...
    def quarantine(self, kind: MediaKind, md5: str) -> Path | None: ...
    def close(self) -> None: ...


def _local(temp: TempBlob) -> LocalTemp:
    assert isinstance(temp, LocalTemp), "a LocalBlobStore only moves its own temp files"
    return temp


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _storage_error(action: str, path: Path, exc: OSError) -> StorageError:
    reason = "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else exc.strerror or str(exc)
    return StorageError(f"{action} {path} failed: {reason}")


class LocalTemp:
    """An open temp file in the store's ``tmp/`` directory, written with unbuffered os.write."""

    def __init__(self, directory: Path) -> None:
        self.written = 0
        self.synced = False
        self.path = directory / f"{TEMP_PREFIX}{uuid.uuid4().hex}{TEMP_SUFFIX}"
        try:
            self._fd: int | None = os.open(
                self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644
            )
        except OSError as exc:
            raise _storage_error("creating", self.path, exc) from exc
        # held while the file is being written: gc removes only temp files nobody holds
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def write(self, data: bytes | memoryview) -> None:
        assert self._fd is not None, "write after close"
        view = memoryview(data)
        try:
            while view:
                n = os.write(self._fd, view)
                self.written += n
                view = view[n:]
        except OSError as exc:
            raise _storage_error("writing", self.path, exc) from exc

    def start_writeback(self, offset: int, length: int) -> None:
        """Ask the kernel to write a range out now (asynchronously) and drop it from the cache.

        Spreading writeback over the copy leaves little for the final fsync, and keeps a large
        ingest from filling the page cache with dirty pages. Best effort: errors surface at
        fsync, which is checked.
        """
        if self._fd is not None and hasattr(os, "posix_fadvise"):
            with contextlib.suppress(OSError):
                os.posix_fadvise(self._fd, offset, length, os.POSIX_FADV_DONTNEED)

    def sync(self) -> None:
        """fsync the data (once); a failure is final (the page cache state is unknown then)."""
        if self.synced:
            return
        assert self._fd is not None
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise _storage_error("fsync of", self.path, exc) from exc
        self.synced = True

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


class LocalBlobStore:
    """Blobs as files under ``<root>/media``, temp files in ``<root>/tmp``."""

    def __init__(self, root: Path) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self.root = root
        self.media_dir = root / "media"
        self.tmp_dir = root / "tmp"
        self.quarantine_dir = root / "quarantine"
        for directory in [self.tmp_dir, *(self.media_dir / f"{t}s" for t in MEDIA_TYPES)]:
            self._ensure_dir(directory)

    def _ensure_dir(self, directory: Path) -> None:
        """Create ``directory`` durably: fsync each parent whose entries changed."""
        if directory.is_dir():
            return
        missing = [directory, *(p for p in directory.parents if not p.exists())]
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for created in reversed(missing):
                fsync_dir(created.parent)
        except OSError as exc:
            raise _storage_error("creating directory", directory, exc) from exc

    def path(self, kind: MediaKind, md5: str) -> Path:
        return self.media_dir / kind.directory / f"{md5}.{kind.extension}"

    def create_temp(self) -> LocalTemp:
        return LocalTemp(self.tmp_dir)

    def _fsync_pool(self) -> ThreadPoolExecutor:
        """Threads that fsync batches (kept: starting 8 threads per batch costs milliseconds)."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    FSYNC_THREADS, thread_name_prefix="mediastore-fsync"
                )
            return self._pool

    def close(self) -> None:
        """Stop the fsync threads."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown()

    def put(self, temp: TempBlob, kind: MediaKind, md5: str) -> bool:
        """fsync ``temp``, rename it to its address, fsync the directory.

        Returns:
            True if the address was empty before (this call created the file).

        Raises:
            StorageError: any step failed; the temp file is removed, nothing is in place.
        """
        return self.put_many([(temp, kind, md5)])[0]

    def put_many(self, items: Sequence[tuple[TempBlob, MediaKind, str]]) -> list[bool]:
        """:meth:`put` for a batch: temps fsynced in parallel, each directory fsynced once.

        Small files are dominated by their fsyncs; issued together from several threads,
        the filesystem folds them into few journal commits.

        Raises:
            StorageError: an fsync failed (nothing was renamed, every temp is removed), or a
                rename failed (the temps not yet renamed are removed).
        """
        temps = [_local(temp) for temp, _, _ in items]
        if not temps:
            return []
        unsynced = [temp for temp in temps if not temp.synced]  # callers may sync beforehand
        try:
            if len(unsynced) == 1:
                unsynced[0].sync()
            elif unsynced:
                list(self._fsync_pool().map(LocalTemp.sync, unsynced))
        except BaseException:
            for temp in temps:
                self.discard(temp)
            raise
        created: list[bool] = []
        directories: set[Path] = set()
        for i, (_, kind, md5) in enumerate(items):
            final = self.path(kind, md5)
            try:
                temps[i].close()
                created.append(not final.exists())
                os.replace(temps[i].path, final)
            except OSError as exc:
                for rest in temps[i:]:
                    self.discard(rest)
                raise _storage_error("moving into place", final, exc) from exc
            directories.add(final.parent)
        try:
            for directory in directories:
                fsync_dir(directory)
        except OSError as exc:
            raise _storage_error("fsync of directory", next(iter(directories)), exc) from exc
        return created

    def discard(self, temp: TempBlob) -> None:
        temp.close()
        try:
            temp.path.unlink(missing_ok=True)
        except OSError:
            log.warning("could not remove temp file %s", temp.path, exc_info=True)

    def size(self, kind: MediaKind, md5: str) -> int | None:
        try:
            return self.path(kind, md5).stat().st_size
        except FileNotFoundError:
            return None

    def open(self, kind: MediaKind, md5: str) -> BinaryIO:
        return open(self.path(kind, md5), "rb", buffering=0)

    def delete(self, kind: MediaKind, md5: str) -> bool:
        path = self.path(kind, md5)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise _storage_error("deleting", path, exc) from exc
        fsync_dir(path.parent)
        return True

    def quarantine(self, kind: MediaKind, md5: str) -> Path | None:
        """Move a damaged file out of ``media/`` (never deleted); None if it was not there."""
        src = self.path(kind, md5)
        return self.quarantine_file(src) if src.exists() else None

    def abandoned_temp_files(self, *, remove: bool) -> list[Path]:
        """Temp files no writer holds (left by a crash); removed when ``remove`` is true.

        A live ingest holds an exclusive flock on its temp file, so a file whose lock can be
        taken belongs to nobody; the lock is kept while it is unlinked.
        """
        found: list[Path] = []
        for path in sorted(self.tmp_dir.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}")):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # finished meanwhile
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # being written right now
            try:
                if remove:
                    path.unlink(missing_ok=True)
                found.append(path)
            finally:
                os.close(fd)
        return found

    def walk(self) -> Iterator[Path]:
        """Every file under the typed media directories."""
        for media_type in MEDIA_TYPES:
            directory = self.media_dir / f"{media_type}s"
            if directory.is_dir():
                yield from sorted(p for p in directory.iterdir() if p.is_file())

    def quarantine_file(self, path: Path) -> Path:
        """Move any file of the store (a misnamed one) to quarantine; never deleted."""
        self._ensure_dir(self.quarantine_dir)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        dest = self.quarantine_dir / f"{path.stem}.{stamp}{path.suffix}"
        try:
            os.replace(path, dest)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise _storage_error("quarantining", path, exc) from exc
        fsync_dir(path.parent)
        fsync_dir(dest.parent)
        return dest
