"""A consistent copy of a SQLite catalog, taken while writers run (SQLite's online backup).

The copy is read in one step inside one read transaction: in WAL mode writers go on
meanwhile, and the copy is the catalog as of that transaction's start. It is written to a
temp file beside the destination, switched to a rollback journal (one self-contained file),
checked, synced, and only then renamed into place, so a destination either holds a whole
copy or nothing. A PostgreSQL catalog is copied with the server's own tools (``pg_dump``).
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from ..errors import InvalidInputError, StorageError
from ..records import BackupReport
from .engine import connect_read_only

#: Name of a copy made into a directory (UTC time of the copy).
BACKUP_NAME = "catalog-{:%Y%m%dT%H%M%SZ}.sqlite3"


def backup_target(dest: Path) -> Path:
    """Where a copy asked for at ``dest`` goes: a new file, or a new name in a directory.

    Raises:
        InvalidInputError: ``dest`` exists and is not a directory, or its parent is missing.
    """
    if dest.is_dir():
        dest = dest / BACKUP_NAME.format(datetime.now(UTC))
    if dest.exists() or dest.is_symlink():
        raise InvalidInputError(f"{dest} exists: give a new file name or a directory")
    if not dest.parent.is_dir():
        raise InvalidInputError(f"no directory {dest.parent} to write the copy into")
    return dest


def backup_sqlite(source: Path, dest: Path, busy_timeout: float) -> BackupReport:
    """Copy the catalog at ``source`` to ``dest`` (see :func:`backup_target`).

    Raises:
        InvalidInputError: a bad destination.
        StorageError: the copy could not be written or read back intact.
    """
    target = backup_target(dest)
    temp = target.with_name(f".{target.name}.part-{os.getpid()}")
    try:
        with connect_read_only(source, busy_timeout) as src, sqlite3.connect(temp) as copy:
            src.backup(copy)
            copy.execute("PRAGMA journal_mode = DELETE")
            checked = copy.execute("PRAGMA quick_check").fetchone()[0]
            if checked != "ok":
                raise StorageError(f"the copy of {source} does not read back: {checked}")
            media = copy.execute("SELECT count(*) FROM media WHERE status != 'removed'")
            urls = copy.execute("SELECT count(*) FROM media_urls")
            counts = (int(media.fetchone()[0]), int(urls.fetchone()[0]))
        _sync(temp)
        os.replace(temp, target)
        _sync(target.parent)
    except sqlite3.Error as exc:
        raise StorageError(f"copying the catalog {source} failed: {exc}") from exc
    except OSError as exc:
        raise StorageError(f"writing {target} failed: {exc.strerror or exc}") from exc
    finally:
        temp.unlink(missing_ok=True)
    return BackupReport(
        path=str(target), size=target.stat().st_size, files=counts[0], urls=counts[1]
    )


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
