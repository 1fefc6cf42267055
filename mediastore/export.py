"""Getting files out of the store: ``export`` into a directory, with safe names.

A file is exported as a copy by default: a reflink (``FICLONE``, sharing the stored file's
blocks copy-on-write, on Btrfs, XFS, bcachefs...) where the filesystem has one, else
``os.copy_file_range`` (which lets the kernel or an NFS server copy), else a plain read and
write. A hard link is made only when asked: it is the stored file itself, so editing the
exported file in place would damage the stored one (``verify`` would then quarantine it).

Names are the content's MD5 or the file name of a URL recorded for it, made safe: no
separators, no ``..`` or leading dot, no control characters, at most 200 bytes; the
extension is the one the content's type has. Nothing is overwritten: a name in use by other
content is numbered (``photo-1.jpg``), and a file of the same content already there counts as
exported. Each file may get a JSON sidecar (``<name>.json``) with its record and URLs.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import itertools
import json
import os
import shutil
import stat
import unicodedata
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from .errors import InvalidInputError, MediaStoreError, StorageError
from .records import STATUS_OK, ExportedFile, ExportReport, MediaRecord

#: ``_IOW(0x94, 9, int)`` from ``linux/fs.h``: clone a whole file's extents.
FICLONE = 0x40049409
#: Errors that mean "this filesystem (pair) cannot do that", not "the copy failed".
_UNSUPPORTED = frozenset(
    {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EBADF}
)
_MAX_NAME_BYTES = 200
_UNSAFE = frozenset('/\\<>:"|?*')
NAME_BY = ("md5", "url")
#: Synonyms of a stored extension a URL's file name may carry.
_SAME_EXTENSION = {"jpg": {"jpg", "jpeg", "jpe"}, "mov": {"mov", "qt"}}


def safe_name(name: str, *, fallback: str) -> str:
    """``name`` as a single, harmless file name; ``fallback`` if nothing is left of it.

    Separators, characters Windows refuses, control and format characters (newlines,
    escapes, bidi overrides) become ``_``; leading dots and spaces go (no ``..``, no hidden
    file); the result is cut to 200 UTF-8 bytes.
    """
    cleaned = "".join(
        "_" if ch in _UNSAFE or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs") else ch
        for ch in name
    )
    cleaned = cleaned.strip().lstrip(". ").rstrip(". ")
    encoded = cleaned.encode("utf-8")
    if len(encoded) > _MAX_NAME_BYTES:
        cleaned = encoded[:_MAX_NAME_BYTES].decode("utf-8", "ignore").rstrip(". ")
    return cleaned or fallback


def export_name(rec: MediaRecord, urls: list[str], name_by: str) -> str:
    """The file name ``rec`` is exported under (before numbering), with its type's extension."""
    if name_by not in NAME_BY:
        raise InvalidInputError(f"name_by must be one of {', '.join(NAME_BY)}, got {name_by!r}")
    stem = rec.md5
    if name_by == "url":
        for url in urls:
            last = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
            if last:
                stem = safe_name(last, fallback=rec.md5)
                break
    base, dot, ext = stem.rpartition(".")
    if dot and base and ext.lower() in _SAME_EXTENSION.get(rec.extension, {rec.extension}):
        stem = base
    return f"{stem}.{rec.extension}"


def numbered(name: str, n: int) -> str:
    """``photo.jpg``, then ``photo-1.jpg``, ``photo-2.jpg``..."""
    if n == 0:
        return name
    stem, dot, ext = name.rpartition(".")
    return f"{stem}-{n}.{ext}" if dot else f"{name}-{n}"


def _same_content(path: Path, rec: MediaRecord) -> bool:
    """A regular file (not a link) at ``path`` with ``rec``'s size and MD5."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not (stat.S_ISREG(st.st_mode) and st.st_size == rec.size):
            return False
        digest = hashlib.file_digest(fh, lambda: hashlib.md5(usedforsecurity=False))
    return digest.hexdigest() == rec.md5


def clone_or_copy(src: BinaryIO, dst_fd: int) -> str:
    """Copy ``src`` into the empty file ``dst_fd``: ``reflink`` if possible, else ``copy``."""
    try:
        src_fd = src.fileno()
    except (AttributeError, OSError, ValueError):
        src_fd = -1
    if src_fd >= 0:
        try:
            fcntl.ioctl(dst_fd, FICLONE, src_fd)
            return "reflink"
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                raise
        try:
            while os.copy_file_range(src_fd, dst_fd, 1 << 30):
                pass
            return "copy"
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                raise
            os.lseek(src_fd, 0, os.SEEK_SET)
            os.ftruncate(dst_fd, 0)
            os.lseek(dst_fd, 0, os.SEEK_SET)
    with os.fdopen(os.dup(dst_fd), "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    return "copy"


def _place(
    rec: MediaRecord, target: Path, *, link: bool, open_file: Callable[[str], BinaryIO]
) -> str:
    """Write ``rec``'s bytes at ``target``, which must not exist yet (never overwritten)."""
    if link and rec.path is not None:
        try:
            os.link(rec.path, target, follow_symlinks=False)
            return "hardlink"
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
            # another filesystem (or links refused there): a copy is the next best thing
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(target, flags, 0o644)
    try:
        with open_file(rec.md5) as src:
            method = clone_or_copy(src, fd)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        target.unlink(missing_ok=True)
        raise
    os.close(fd)
    return method


def _write_sidecar(path: Path, rec: MediaRecord, urls: list[str]) -> None:
    """``<file>.json``: the record and every URL, replaced atomically (never through a link)."""
    data = {**rec.to_dict(), "urls": urls, "exported_as": path.name[: -len(".json")]}
    data.pop("url", None)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def export_records(
    records: Iterable[MediaRecord],
    directory: Path,
    *,
    urls_for: Callable[[str], list[str]],
    open_file: Callable[[str], BinaryIO],
    name_by: str = "md5",
    link: bool = False,
    sidecar: bool = True,
    progress: Callable[[int], None] | None = None,
) -> ExportReport:
    """Export each record's file into ``directory`` (created if needed, once there is a file
    to export: nothing selected leaves nothing behind).

    Args:
        records: The files to export (only ``ok`` ones can be: others are reported failed).
        directory: Where to put them.
        urls_for: The URLs of an md5 (for ``url`` names and the sidecar).
        open_file: Opens the stored bytes of an md5.
        name_by: ``md5`` or ``url`` (the file name of the first URL that has one).
        link: Hard-link instead of copying (same filesystem only; else copied).
        sidecar: Write ``<name>.json`` beside each file.
        progress: Called with the number of files done so far.

    Returns:
        What was exported, and what failed with why (one file's failure never stops the rest).

    Raises:
        InvalidInputError: ``directory`` exists and is not a directory, or ``name_by`` is bad.
        StorageError: ``directory`` cannot be created.
    """
    if name_by not in NAME_BY:
        raise InvalidInputError(f"name_by must be one of {', '.join(NAME_BY)}, got {name_by!r}")
    if directory.exists() and not directory.is_dir():
        raise InvalidInputError(f"export target {directory} is not a directory")
    report = ExportReport()
    chosen = iter(records)
    first = next(chosen, None)
    if first is None:
        return report
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create {directory}: {exc.strerror or exc}") from exc
    for done, rec in enumerate(itertools.chain([first], chosen), 1):
        try:
            report.exported.append(
                _export_one(
                    rec,
                    directory,
                    urls_for=urls_for,
                    open_file=open_file,
                    name_by=name_by,
                    link=link,
                    sidecar=sidecar,
                )
            )
        except MediaStoreError as exc:
            report.failed.append((rec.md5, str(exc)))
        except OSError as exc:
            report.failed.append((rec.md5, f"cannot write into {directory}: {exc.strerror or exc}"))
        if progress is not None:
            progress(done)
    return report


def _export_one(
    rec: MediaRecord,
    directory: Path,
    *,
    urls_for: Callable[[str], list[str]],
    open_file: Callable[[str], BinaryIO],
    name_by: str,
    link: bool,
    sidecar: bool,
) -> ExportedFile:
    if rec.status != STATUS_OK:
        raise StorageError(f"its file is {rec.status} (`mediastore verify --repair` may fix it)")
    urls = urls_for(rec.md5)
    name = export_name(rec, urls, name_by)
    for n in range(10_000):
        target = directory / numbered(name, n)
        if os.path.lexists(target):
            if _same_content(target, rec):
                method = "already"
                break
            continue
        try:
            method = _place(rec, target, link=link, open_file=open_file)
        except FileExistsError:  # taken since the check (another export): the next number
            continue
        break
    else:
        raise StorageError(f"no free name for {name} in {directory}")
    side = target.with_name(target.name + ".json") if sidecar else None
    if side is not None:
        _write_sidecar(side, rec, urls)
    return ExportedFile(md5=rec.md5, path=target, method=method, sidecar=side)
