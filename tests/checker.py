"""An independent checker of a store's catalog and files: ``sqlite3``, ``hashlib`` and ``os`` only.

It never imports mediastore, so a bug in the store's own path or hashing code cannot hide a
violation from it. It reads the on-disk layout that the README documents::

    <root>/catalog.sqlite3                      media(md5, sha256, media_type, extension,
                                                      size, status, ...), media_urls(url, md5)
    <root>/media/<media_type>s/<md5>.<ext>      one regular file per row with status 'ok'
    <root>/tmp/, <root>/quarantine/

Every function returns data or a list of violations (human-readable strings); none asserts,
so a test decides what a violation means for it and lists all of them in its message.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
from typing import Any

CATALOG_NAME = "catalog.sqlite3"
STATUSES = frozenset({"ok", "missing", "corrupt", "broken", "removed"})
_CHUNK = 1 << 20


def catalog_path(root: str | os.PathLike[str]) -> str:
    """The default catalog file of a store root."""
    return os.path.join(os.fspath(root), CATALOG_NAME)


def connect(db_path: str | os.PathLike[str]) -> sqlite3.Connection:
    """A query-only connection to a catalog file.

    A read-write handle (with ``query_only``) rather than ``mode=ro``: when it is the last
    connection to close, SQLite checkpoints and removes the ``-wal``/``-shm`` files it had to
    create, so checking a cleanly closed store leaves it as it was.
    """
    path = os.fspath(db_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no catalog at {path}")
    conn = sqlite3.connect(path, timeout=30)
    conn.execute("PRAGMA query_only = 1")
    return conn


def _query(db_path: str | os.PathLike[str], sql: str) -> list[tuple[Any, ...]]:
    conn = connect(db_path)
    try:
        return list(conn.execute(sql))
    finally:
        conn.close()


def media_rows(db_path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Every row of ``media``, by md5."""
    cols = ("md5", "sha256", "media_type", "extension", "size", "status", "last_verified_at")
    rows = _query(db_path, f"SELECT {', '.join(cols)} FROM media")
    return {r[0]: dict(zip(cols, r, strict=True)) for r in rows}


def url_rows(db_path: str | os.PathLike[str]) -> list[tuple[str | None, str, str]]:
    """Every row of ``media_urls`` as (url, url_md5, md5)."""
    return [(r[0], r[1], r[2]) for r in _query(db_path, "SELECT url, url_md5, md5 FROM media_urls")]


def url_map(db_path: str | os.PathLike[str]) -> dict[str, str]:
    """URL -> md5 of the content it is recorded for (rows that know their URL)."""
    return {url: md5 for url, _, md5 in url_rows(db_path) if url is not None}


def urls_by_md5(db_path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """md5 -> its URL rows (the URL, or ``md5:<url_md5>`` for a legacy row without one)."""
    out: dict[str, list[str]] = {}
    for url, key, md5 in url_rows(db_path):
        out.setdefault(md5, []).append(url if url is not None else f"md5:{key}")
    return out


def table_dump(db_path: str | os.PathLike[str], table: str) -> list[tuple[Any, ...]]:
    """Every row of ``table``, every column, sorted: to compare a catalog before and after."""
    return sorted(_query(db_path, f"SELECT * FROM {table}"), key=repr)


def address(root: str | os.PathLike[str], row: dict[str, Any]) -> str:
    """Where a row's file belongs: ``<root>/media/<media_type>s/<md5>.<extension>``."""
    return os.path.join(
        os.fspath(root), "media", f"{row['media_type']}s", f"{row['md5']}.{row['extension']}"
    )


def digest(path: str | os.PathLike[str]) -> tuple[int, str, str]:
    """(size, md5, sha256) of a file, read without following a symlink at ``path``.

    Raises:
        OSError: missing, a symlink (``ELOOP``), or unreadable.
    """
    fd = os.open(os.fspath(path), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    md5, sha = hashlib.md5(), hashlib.sha256()
    size = 0
    try:
        while chunk := os.read(fd, _CHUNK):
            md5.update(chunk)
            sha.update(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    return size, md5.hexdigest(), sha.hexdigest()


def file_problem(path: str | os.PathLike[str], row: dict[str, Any]) -> str | None:
    """Why the file at ``path`` is not the intact, regular file ``row`` describes, or None."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "is missing"
    if stat.S_ISLNK(st.st_mode):
        return f"is a symlink (-> {os.readlink(path)})"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    try:
        size, md5, sha = digest(path)
    except OSError as exc:
        return f"cannot be read: {exc}"
    wrong = [
        f"{name} {got} != row's {want}"
        for name, got, want in (
            ("size", size, row["size"]),
            ("md5", md5, row["md5"]),
            ("sha256", sha, row["sha256"]),
        )
        if got != want
    ]
    return "; ".join(wrong) or None


def check_i1(
    root: str | os.PathLike[str], db_path: str | os.PathLike[str] | None = None
) -> list[str]:
    """I1: every row with status 'ok' has its intact regular file at its address.

    Also flags a status outside ``ok/missing/corrupt/broken/removed``.
    """
    rows = media_rows(db_path or catalog_path(root))
    violations = [
        f"{md5}: unknown status {row['status']!r}"
        for md5, row in rows.items()
        if row["status"] not in STATUSES
    ]
    for md5, row in sorted(rows.items()):
        if row["status"] == "ok" and (problem := file_problem(address(root, row), row)):
            violations.append(f"{md5}: row is ok but its file {problem}")
    return violations


def check_stored(
    root: str | os.PathLike[str],
    md5s: Any,
    db_path: str | os.PathLike[str] | None = None,
) -> list[str]:
    """Each md5 of ``md5s`` has a row with status 'ok' and its intact file (I2 after an add)."""
    rows = media_rows(db_path or catalog_path(root))
    violations: list[str] = []
    for md5 in sorted(set(md5s)):
        row = rows.get(md5)
        if row is None:
            violations.append(f"{md5}: acknowledged but has no row")
        elif row["status"] != "ok":
            violations.append(f"{md5}: acknowledged but its row is {row['status']!r}")
        elif problem := file_problem(address(root, row), row):
            violations.append(f"{md5}: acknowledged, row ok, but its file {problem}")
    return violations


def check_forgotten(
    root: str | os.PathLike[str],
    md5s: Any,
    db_path: str | os.PathLike[str] | None = None,
) -> list[str]:
    """Each md5 of ``md5s`` has no 'ok' row and no URL row (what a remove must leave)."""
    db = db_path or catalog_path(root)
    rows = media_rows(db)
    urls = urls_by_md5(db)
    violations: list[str] = []
    for md5 in sorted(set(md5s)):
        row = rows.get(md5)
        if row is not None and row["status"] == "ok":
            violations.append(f"{md5}: removed but its row is ok again")
        if md5 in urls:
            violations.append(f"{md5}: removed but URLs still map to it: {sorted(urls[md5])}")
    return violations


def walk_files(directory: str | os.PathLike[str]) -> list[str]:
    """Every non-directory entry below ``directory`` (symlinks included, never followed)."""
    found: list[str] = []
    top = os.fspath(directory)
    if not os.path.isdir(top) or os.path.islink(top):
        return found
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        # os.walk lists a symlink to a directory among dirnames: it is an entry, not a subtree
        found.extend(
            os.path.join(dirpath, d) for d in dirnames if os.path.islink(os.path.join(dirpath, d))
        )
        found.extend(os.path.join(dirpath, f) for f in filenames)
    return sorted(found)


def temp_files(root: str | os.PathLike[str]) -> list[str]:
    """Everything left in ``<root>/tmp``."""
    return walk_files(os.path.join(os.fspath(root), "tmp"))


def quarantined(root: str | os.PathLike[str]) -> list[str]:
    """Everything in ``<root>/quarantine``."""
    return walk_files(os.path.join(os.fspath(root), "quarantine"))


def media_files_without_ok_row(
    root: str | os.PathLike[str], db_path: str | os.PathLike[str] | None = None
) -> list[str]:
    """Entries under ``<root>/media`` that are not the file of a row with status 'ok'."""
    rows = media_rows(db_path or catalog_path(root))
    wanted = {address(root, row) for row in rows.values() if row["status"] == "ok"}
    return [
        path
        for path in walk_files(os.path.join(os.fspath(root), "media"))
        if path not in wanted and os.path.basename(path) != ".gitkeep"
    ]


def tree_snapshot(directory: str | os.PathLike[str]) -> dict[str, tuple[Any, ...]]:
    """Relative path -> what is there (kind, size, sha256 or link target, mode), without following.

    Two snapshots are equal exactly when nothing below ``directory`` was created, removed,
    renamed, rewritten or re-linked.
    """
    top = os.fspath(directory)
    snap: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, top)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                snap[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                snap[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                size, _, sha = digest(path)
                snap[rel] = ("file", size, sha, stat.S_IMODE(st.st_mode))
    return snap


def ref_rows(db_path: str | os.PathLike[str]) -> list[tuple[str, str | None]]:
    """Every row of ``refs`` as (ref, md5); md5 None for a reference waiting on a URL."""
    return [(r[0], r[1]) for r in _query(db_path, "SELECT ref, md5 FROM refs")]


def check_references(root: str | os.PathLike[str]) -> list[str]:
    """Every reference that names content names an ``ok`` row whose file is intact, and each
    row's ``ref_count`` is the number of references naming it (``unreferenced_since`` set
    only where it is 0)."""
    db = catalog_path(root)
    rows = media_rows(db)
    held: dict[str, int] = {}
    violations: list[str] = []
    for ref, md5 in ref_rows(db):
        if md5 is None:
            continue
        held[md5] = held.get(md5, 0) + 1
        row = rows.get(md5)
        if row is None or row["status"] != "ok":
            violations.append(f"{ref!r} -> {md5}: row is {row and row['status']!r}")
        elif problem := file_problem(address(root, row), row):
            violations.append(f"{ref!r} -> {md5}: its file {problem}")
    counts = _query(db, "SELECT md5, ref_count, unreferenced_since FROM media")
    for md5, count, since in counts:
        if count != held.get(md5, 0):
            violations.append(f"{md5}: ref_count {count}, {held.get(md5, 0)} reference rows")
        if count and since is not None:
            violations.append(f"{md5}: referenced but unreferenced_since {since}")
    return violations


def removed_with_file(root: str | os.PathLike[str]) -> list[str]:
    """Md5s whose row is ``removed`` while a file is still at its address (a collection
    that has not finished)."""
    rows = media_rows(catalog_path(root))
    return sorted(
        md5
        for md5, row in rows.items()
        if row["status"] == "removed" and os.path.lexists(address(root, row))
    )
