"""Storage of bytes on the local disk: the staging area every backend uses, and the local
:class:`~mediastore.blobs.base.BlobStore`.

Content is staged in a temp
file in ``<root>/tmp/`` (:class:`LocalStaging`, local on every backend: hashing, sniffing and
refusing happen before anything is placed), synced, then placed at its address (renamed
here; uploaded by :class:`mediastore.blobs.s3.S3BlobStore`). *When* a blob may be placed, relied
on, moved or deleted is decided by :mod:`mediastore.lifecycle`, never here.

The local store never follows a link below its root (invariant I4 of ``docs/lifecycle.md``):
the root is resolved once; its ``media/<type>/``, ``tmp/`` and ``quarantine/`` directories are
opened once with ``O_NOFOLLOW`` (a link there makes the store refuse to open), and every
later operation runs relative to those directory descriptors (``openat``, ``renameat``), so
a directory swapped for a link afterwards is not followed either. A link where a file
belongs is reported as not a regular file, never opened or hashed through.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import itertools
import logging
import os
import re
import stat
import threading
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import MediaStoreError, ReadOnlyStoreError, StorageError
from ..records import MEDIA_TYPES
from .base import MARKER_KEY, MARKER_MAX, BlobRef, BlobStat, Location, StoredEntry, TempBlob

log = logging.getLogger(__name__)

TEMP_PREFIX = "ingest-"
TEMP_SUFFIX = ".part"
WRITER_LOCK_PREFIX = "writer-"
WRITER_LOCK_SUFFIX = ".lock"
FSYNC_THREADS = 8
#: From this many temp files on, a batch is made durable by one syncfs(2) of the store's
#: filesystem instead of an fsync per file: one device flush for the batch. Concurrent
#: downloads commit in batches of 10-16; with one syncfs each instead of their own fsyncs
#: they ran 13-23% faster (3 alternating pairs, 2,000 images). A lone file keeps its fsync,
#: which waits for nothing else the filesystem has to write.
SYNCFS_MIN = 2
TYPED_DIRECTORIES: tuple[str, ...] = tuple(f"{t}s" for t in MEDIA_TYPES)
#: What a local store opens below its root, parents first.
STORE_DIRECTORIES: tuple[str, ...] = (
    "media",
    *(f"media/{d}" for d in TYPED_DIRECTORIES),
    "tmp",
    "quarantine",
)
#: A temp file's name: the writer that owns it, then a counter.
_TEMP_NAME = re.compile(rf"{TEMP_PREFIX}([0-9a-f]{{32}})-\d+{re.escape(TEMP_SUFFIX)}")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _storage_error(action: str, path: Path | str, exc: OSError) -> StorageError:
    reason = "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else exc.strerror or str(exc)
    return StorageError(f"{action} {path} failed: {reason}")


def _load_syncfs() -> Any:
    """libc's syncfs(2), or None where there is none (then temps are fsynced one by one)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    fn = getattr(ctypes.CDLL(name, use_errno=True), "syncfs", None)
    if fn is not None:
        fn.argtypes = [ctypes.c_int]
        fn.restype = ctypes.c_int
    return fn


_SYNCFS = _load_syncfs()


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalTemp:
    """An open temp file in the store's ``tmp/`` directory, written with unbuffered os.write.

    Its name carries the id of the writer that owns it; the writer holds a lock on its own
    lock file for as long as it lives, which is how gc tells live temp files from abandoned
    ones (see :meth:`LocalBlobStore.abandoned_temp_files`).
    """

    def __init__(self, dir_fd: int, directory: Path, name: str, *, fsync: bool = True) -> None:
        self.written = 0
        self.synced = False
        self.sha256: str | None = None
        self._fsync = fsync
        self.name = name
        self.path = directory / name
        try:
            self._fd: int | None = os.open(
                name,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW,
                0o644,
                dir_fd=dir_fd,
            )
        except OSError as exc:
            raise _storage_error("creating", self.path, exc) from exc

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
        if not self._fsync:
            return  # an uploaded temp is read back at once: better left in the page cache
        if self._fd is not None and hasattr(os, "posix_fadvise"):
            with contextlib.suppress(OSError):
                os.posix_fadvise(self._fd, offset, length, os.POSIX_FADV_DONTNEED)

    def sync(self) -> None:
        """fsync the data (once); a failure is final (the page cache state is unknown then).

        A temp made without ``fsync`` (its bytes are uploaded, not renamed) is only marked.
        """
        if self.synced:
            return
        assert self._fd is not None
        try:
            if self._fsync:
                os.fsync(self._fd)
        except OSError as exc:
            raise _storage_error("fsync of", self.path, exc) from exc
        self.synced = True

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


class _Dirs:
    """The store's directories, opened once without following links, as descriptors."""

    def __init__(self, root: Path, rels: Sequence[str], *, create: bool) -> None:
        self.root = root
        self.fds: dict[str, int] = {}
        try:
            self.fds[""] = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise _storage_error("opening store root", root, exc) from exc
        for rel in rels:
            self._open(rel, create=create)

    def _open(self, rel: str, *, create: bool) -> None:
        parent_rel, _, name = rel.rpartition("/")
        parent = self.fds.get(parent_rel)
        if parent is None:
            return
        try:
            self.fds[rel] = os.open(name, _DIR_FLAGS, dir_fd=parent)
            return
        except FileNotFoundError:
            if not create:
                return  # a read-only store without this directory: it is empty
        except OSError as exc:
            raise self._refusal(rel, exc) from exc
        try:
            os.mkdir(name, 0o755, dir_fd=parent)
            os.fsync(parent)
            self.fds[rel] = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileExistsError:
            self._open(rel, create=False)  # another process made it meanwhile
        except OSError as exc:
            raise self._refusal(rel, exc) from exc

    def _refusal(self, rel: str, exc: OSError) -> StorageError:
        path = self.root / rel
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and path.is_symlink():
            return StorageError(
                f"{path} is a symbolic link: mediastore does not follow links inside its root "
                "(make it a real directory, or point the store's root at the target)"
            )
        if exc.errno == errno.ENOTDIR:
            return StorageError(f"{path} is not a directory")
        return _storage_error("opening directory", path, exc)

    def fd(self, rel: str) -> int:
        fd = self.fds.get(rel)
        if fd is None:
            raise FileNotFoundError(errno.ENOENT, "no such directory", str(self.root / rel))
        return fd

    def close(self) -> None:
        fds, self.fds = self.fds, {}
        for fd in fds.values():
            os.close(fd)


class LocalStaging:
    """The local half of every blob store: temp files in ``<root>/tmp`` and the writer lock.

    Content is staged here on every backend, so hashing, sniffing and refusing happen before
    anything is placed, and gc's sweep of abandoned temp files works the same everywhere.
    :class:`LocalBlobStore` renames a temp file into place; an object store uploads it and
    removes it.

    Args:
        root: The store's root, already resolved (it may itself be a link; nothing below is).
        read_only: Open nothing for writing and create nothing; writes raise
            :class:`ReadOnlyStoreError`.
        directories: The directories below ``root`` to open (``tmp`` at least).
        fsync_temps: Make temp files durable before they are placed. Not needed where
            placing copies the bytes elsewhere (an upload): a temp lost in a crash is only
            an add to do again.
    """

    def __init__(
        self,
        root: Path,
        *,
        read_only: bool = False,
        directories: Sequence[str] = ("tmp",),
        fsync_temps: bool = True,
    ) -> None:
        self.root = root
        self.read_only = read_only
        self.tmp_dir = root / "tmp"
        self._fsync_temps = fsync_temps
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._dirs = _Dirs(root, directories, create=not read_only)
        self._counter = itertools.count()
        self._writer_fd: int | None = None
        self._writer = ""
        if not read_only:
            self._take_writer_lock()

    # --- the writer lock ---------------------------------------------------------------------
    def _take_writer_lock(self) -> None:
        """Create and lock the directory ``tmp/writer-<id>.lock/``; held until :meth:`close`.

        A directory, not a file, so that the store's ``tmp/`` holds no file but temp files.
        gc removes an unlocked one (its writer is dead); if it did so between our mkdir and
        our lock, the name no longer names what we locked, so we check and retry.
        """
        tmp = self._dirs.fd("tmp")
        while True:
            writer = uuid.uuid4().hex
            name = f"{WRITER_LOCK_PREFIX}{writer}{WRITER_LOCK_SUFFIX}"
            try:
                os.mkdir(name, 0o755, dir_fd=tmp)
                fd = os.open(name, _DIR_FLAGS, dir_fd=tmp)
            except OSError as exc:
                raise _storage_error("creating", self.tmp_dir / name, exc) from exc
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                st = os.stat(name, dir_fd=tmp, follow_symlinks=False)
                same = st.st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._writer_fd, self._writer = fd, writer
                return
            os.close(fd)

    # --- temp files ----------------------------------------------------------------------------
    def local_dir(self, loc: Location) -> Path | None:
        """None: only a store on the local disk has its files in a directory."""
        return None

    def create_temp(self) -> LocalTemp:
        self._writable()
        name = f"{TEMP_PREFIX}{self._writer}-{next(self._counter)}{TEMP_SUFFIX}"
        return LocalTemp(self._dirs.fd("tmp"), self.tmp_dir, name, fsync=self._fsync_temps)

    def discard(self, temp: TempBlob) -> None:
        temp.close()
        try:
            os.unlink(_local(temp).name, dir_fd=self._dirs.fd("tmp"))
        except FileNotFoundError:
            pass
        except OSError:
            log.warning("could not remove temp file %s", temp.path, exc_info=True)

    def _open_temp(self, temp: TempBlob) -> BinaryIO:
        """A complete temp file opened for reading (closed for writing first)."""
        local = _local(temp)
        local.close()
        try:
            fd = os.open(
                local.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._dirs.fd("tmp")
            )
        except OSError as exc:
            raise _storage_error("reading", local.path, exc) from exc
        return open(fd, "rb", buffering=0)

    def sync_temps(self, temps: Sequence[TempBlob]) -> None:
        """Make temp files durable: fsync each, several at once, or one syncfs for many.

        syncfs writes back every dirty page and inode of the filesystem and flushes the
        device's cache, so it makes each temp file as durable as its own fsync would, in
        one journal commit instead of one per file (the per-file fsync rate was the limit
        of small-file imports).
        """
        unsynced = [temp for temp in temps if not temp.synced]
        if len(unsynced) >= SYNCFS_MIN and self._fsync_temps and _SYNCFS is not None:
            if _SYNCFS(self._dirs.fd("tmp")) != 0:
                err = ctypes.get_errno()
                raise _storage_error("syncfs of", self.tmp_dir, OSError(err, os.strerror(err)))
            for temp in unsynced:
                temp.synced = True
            return
        if len(unsynced) == 1:
            unsynced[0].sync()
        elif unsynced:
            list(self._threads().map(lambda temp: temp.sync(), unsynced))

    def _threads(self) -> ThreadPoolExecutor:
        """Threads that fsync (or upload) batches (kept: starting 8 per batch costs ms)."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    FSYNC_THREADS, thread_name_prefix="mediastore-fsync"
                )
            return self._pool

    def _writable(self) -> None:
        if self.read_only:
            raise ReadOnlyStoreError(f"store {self.root} is open read-only")

    # --- crash leftovers -----------------------------------------------------------------------
    def abandoned_temp_files(self, *, remove: bool) -> list[str]:
        """Temp files whose writer is gone (left by a crash); removed when ``remove`` is true.

        A temp file names its writer; a writer holds the lock on its ``writer-<id>.lock`` for
        as long as it lives. A temp file whose writer's lock file is missing, or can be locked,
        belongs to nobody. Lock files of dead writers are removed last, under their lock.
        """
        self._writable()
        tmp = self._dirs.fd("tmp")
        found: list[str] = []
        dead: dict[str, int | None] = {}
        try:
            for name in sorted(os.listdir(tmp)):
                match = _TEMP_NAME.fullmatch(name)
                if match is None:
                    if _is_old_temp(tmp, name, remove=remove):
                        found.append(str(self.tmp_dir / name))
                    continue
                writer = match.group(1)
                if writer not in dead and self._writer_alive(tmp, writer, dead):
                    continue
                if writer in dead:
                    if remove:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(name, dir_fd=tmp)
                    found.append(str(self.tmp_dir / name))
            if remove:
                self._remove_dead_locks(tmp, dead)
        finally:
            for fd in dead.values():
                if fd is not None:
                    os.close(fd)
        return found

    def _writer_alive(self, tmp: int, writer: str, dead: dict[str, int | None]) -> bool:
        """Whether ``writer`` holds its lock; a dead one is added to ``dead`` (lock kept)."""
        name = f"{WRITER_LOCK_PREFIX}{writer}{WRITER_LOCK_SUFFIX}"
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=tmp)
        except FileNotFoundError:
            dead[writer] = None  # gone: it only exists while its writer does
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return True
        dead[writer] = fd
        return False

    def _remove_dead_locks(self, tmp: int, dead: dict[str, int | None]) -> None:
        for name in os.listdir(tmp):
            if not (name.startswith(WRITER_LOCK_PREFIX) and name.endswith(WRITER_LOCK_SUFFIX)):
                continue
            writer = name[len(WRITER_LOCK_PREFIX) : -len(WRITER_LOCK_SUFFIX)]
            if writer == self._writer:
                continue
            if writer not in dead and self._writer_alive(tmp, writer, dead):
                continue
            fd = dead.get(writer)
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.rmdir(name, dir_fd=tmp)

    # --- closing -------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the fsync threads, drop the writer lock (and its file), close directories."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown()
        if self._writer_fd is not None:
            fd, self._writer_fd = self._writer_fd, None
            self._remove_own_temps()
            with contextlib.suppress(OSError):
                os.rmdir(
                    f"{WRITER_LOCK_PREFIX}{self._writer}{WRITER_LOCK_SUFFIX}",
                    dir_fd=self._dirs.fd("tmp"),
                )
            os.close(fd)
        self._dirs.close()

    def _remove_own_temps(self) -> None:
        """Remove temp files this writer still has: a closing store has no add in progress.

        A Ctrl-C can land between a temp file's creation and the code that would discard
        it (Python raises KeyboardInterrupt wherever the main thread is); the store's close
        is the one place that runs after every such path.
        """
        tmp = self._dirs.fd("tmp")
        mine = f"{TEMP_PREFIX}{self._writer}-"
        for name in os.listdir(tmp):
            if name.startswith(mine):
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=tmp)


class LocalBlobStore(LocalStaging):
    """Blobs as files under ``<root>/media``, temp files in ``<root>/tmp``.

    Args:
        root: The store's root, already resolved (it may itself be a link; nothing below is).
        read_only: Open nothing for writing and create nothing; writes raise
            :class:`ReadOnlyStoreError`.
    """

    def __init__(self, root: Path, *, read_only: bool = False) -> None:
        super().__init__(root, read_only=read_only, directories=STORE_DIRECTORIES)
        self.media_dir = root / "media"
        # each record carries its file's path: one join per lookup, not two
        self._typed_dirs = {d: self.media_dir / d for d in TYPED_DIRECTORIES}
        self.quarantine_dir = root / "quarantine"

    # --- placing ---------------------------------------------------------------------------
    def place_many(self, items: Sequence[tuple[TempBlob, BlobRef]]) -> list[MediaStoreError | None]:
        """Rename synced temps to their addresses, then fsync each directory once.

        Whatever is at an address (an older copy, a damaged file, a link) is replaced; the
        lifecycle decides when that is allowed. Each item fails alone: the result holds the
        error of each item that could not be placed (its temp is removed), None for the rest.
        """
        outcomes: list[MediaStoreError | None] = []
        touched: set[str] = set()
        for temp, ref in items:
            try:
                self._place(_local(temp), ref)
            except StorageError as exc:
                self.discard(temp)
                outcomes.append(exc)
                continue
            touched.add(ref.directory)
            outcomes.append(None)
        for directory in touched:
            try:
                os.fsync(self._dirs.fd(f"media/{directory}"))
            except OSError as exc:
                error = _storage_error("fsync of directory", self.media_dir / directory, exc)
                outcomes = [
                    error if o is None and ref.directory == directory else o
                    for o, (_, ref) in zip(outcomes, items, strict=True)
                ]
        return outcomes

    def _place(self, temp: LocalTemp, ref: BlobRef) -> None:
        assert temp.synced, "a temp file is placed only once its bytes are durable"
        temp.close()
        try:
            os.replace(
                temp.name,
                ref.name,
                src_dir_fd=self._dirs.fd("tmp"),
                dst_dir_fd=self._dirs.fd(f"media/{ref.directory}"),
            )
        except OSError as exc:
            raise _storage_error(
                "moving into place", self.media_dir / ref.directory / ref.name, exc
            ) from exc

    # --- reading -----------------------------------------------------------------------------
    def stat(self, loc: Location) -> BlobStat | None:
        """What is at ``loc`` (never following a link), or None if nothing."""
        try:
            fd = self._dirs.fd(f"media/{loc.directory}")
            st = os.stat(loc.name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _storage_error("reading", self.local_path(loc), exc) from exc
        return _blob_stat(st)

    def open(self, loc: Location) -> tuple[BinaryIO, BlobStat]:
        """The file at ``loc`` opened for reading, and what it is.

        Raises:
            FileNotFoundError: nothing there.
            StorageError: a link or another non-regular entry is there, or opening failed.
        """
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # a FIFO: no hang
        try:
            fd = os.open(loc.name, flags, dir_fd=self._dirs.fd(f"media/{loc.directory}"))
        except FileNotFoundError:
            raise
        except OSError as exc:
            path = self.local_path(loc)
            if exc.errno == errno.ELOOP:
                raise StorageError(f"{path} is a symbolic link, not a stored file") from exc
            raise _storage_error("opening", path, exc) from exc
        info = _blob_stat(os.fstat(fd))
        if not info.regular:
            os.close(fd)
            raise StorageError(f"{self.local_path(loc)} is not a regular file")
        os.set_blocking(fd, True)
        return open(fd, "rb", buffering=0), info

    def local_path(self, loc: Location) -> Path:
        return self._typed_dirs[loc.directory] / loc.name

    def local_dir(self, loc: Location) -> Path:
        return self._typed_dirs[loc.directory]

    def describe(self, loc: Location) -> str:
        return str(self.local_path(loc))

    # --- the marker ---------------------------------------------------------------------------
    def read_marker(self) -> bytes | None:
        """The marker's bytes (not through a link), or None if there is none."""
        top, name = self._dirs.fd(""), MARKER_KEY
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=top)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _storage_error("reading", self.root / MARKER_KEY, exc) from exc
        with open(fd, "rb") as fh:
            return fh.read(MARKER_MAX)

    def write_marker(self, data: bytes) -> None:
        """Write the marker atomically and durably (a synced temp renamed over it)."""
        self._writable()
        top, name = self._dirs.fd(""), MARKER_KEY
        temp = f".{name}.{uuid.uuid4().hex}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(temp, flags, 0o644, dir_fd=top)
            with open(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temp, name, src_dir_fd=top, dst_dir_fd=top)
            os.fsync(top)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=top)
            raise _storage_error("writing", self.root / MARKER_KEY, exc) from exc

    def delete_marker(self) -> None:
        """Remove the marker, if there is one."""
        self._writable()
        top = self._dirs.fd("")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(MARKER_KEY, dir_fd=top)
            os.fsync(top)

    def walk(self) -> Iterator[StoredEntry]:
        """Every entry of the typed media directories but sub-directories (links included)."""
        for directory in TYPED_DIRECTORIES:
            try:
                fd = self._dirs.fd(f"media/{directory}")
            except FileNotFoundError:
                continue
            for name in sorted(os.listdir(fd)):
                if name == ".gitkeep":
                    continue
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    yield StoredEntry(directory, name)

    # --- removing ----------------------------------------------------------------------------
    def delete(self, loc: Location, *, if_identity: str | None = None) -> bool:
        """Unlink what is at ``loc`` (a link itself, never its target); True if it was there.

        With ``if_identity``, only if the entry is still the one that identity names.
        """
        self._writable()
        fd = self._dirs.fd(f"media/{loc.directory}")
        if if_identity is not None and not self._is(fd, loc.name, if_identity):
            return False
        try:
            os.unlink(loc.name, dir_fd=fd)
            os.fsync(fd)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise _storage_error(
                "deleting", self.media_dir / loc.directory / loc.name, exc
            ) from exc
        return True

    def quarantine(self, loc: Location, *, if_identity: str | None = None) -> str | None:
        """Move what is at ``loc`` (a link itself, never its target) to ``quarantine/``.

        Never deletes. Returns where it went, or None if nothing was there (or, with
        ``if_identity``, something else is there now).
        """
        self._writable()
        src_fd = self._dirs.fd(f"media/{loc.directory}")
        if if_identity is not None and not self._is(src_fd, loc.name, if_identity):
            return None
        stem, dot, suffix = loc.name.partition(".")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        dest = f"{stem}.{stamp}{dot}{suffix}"
        q_fd = self._dirs.fd("quarantine")
        try:
            os.rename(loc.name, dest, src_dir_fd=src_fd, dst_dir_fd=q_fd)
            os.fsync(src_fd)
            os.fsync(q_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _storage_error(
                "quarantining", self.media_dir / loc.directory / loc.name, exc
            ) from exc
        return str(self.quarantine_dir / dest)

    def abandoned_uploads(self, *, remove: bool) -> list[str]:
        """None on disk: a placement is a rename, never left half done."""
        return []

    @staticmethod
    def _is(dir_fd: int, name: str, identity: str) -> bool:
        try:
            return (
                _blob_stat(os.stat(name, dir_fd=dir_fd, follow_symlinks=False)).identity == identity
            )
        except FileNotFoundError:
            return False


def _is_old_temp(tmp: int, name: str, *, remove: bool) -> bool:
    """An abandoned temp file of an older mediastore, which locked each temp file itself."""
    if not (name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)):
        return False
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=tmp)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if remove:
            os.unlink(name, dir_fd=tmp)
        return True
    except OSError:  # held: being written by an older writer right now
        return False
    finally:
        os.close(fd)


def _blob_stat(st: os.stat_result) -> BlobStat:
    return BlobStat(
        size=st.st_size, regular=stat.S_ISREG(st.st_mode), identity=f"{st.st_dev}:{st.st_ino}"
    )


def _local(temp: TempBlob) -> LocalTemp:
    assert isinstance(temp, LocalTemp), "a store only places its own temp files"
    return temp
