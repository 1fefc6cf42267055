"""Bringing catalog and disk into agreement: legacy import, gc, reindex and repair.

Everything here reads files through the store's single ingest path (stage -> fsync -> rename
-> commit), so an imported, adopted, re-indexed or repaired file gets the same checks as a new
one: content hashing, type sniffing, the Pillow checks.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from .catalog import UrlInfo, url_md5
from .errors import FetchError, InvalidInputError, MediaStoreError
from .ingest import Staged, file_chunks, stage
from .records import STATUS_MISSING, STATUS_OK, GcReport, LegacyImportReport, ReindexReport
from .sniff import BY_EXTENSION

if TYPE_CHECKING:
    from .store import MediaStore

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
_MD5_NAME = re.compile(r"[0-9a-f]{32}")
#: Extensions the previous system gave its cached images.
LEGACY_EXTENSIONS = ("jpg", "jpeg", "png", "gif", "webp")
#: Legacy files imported in parallel: hashing and Pillow release the GIL, fsync waits on disk.
IMPORT_WORKERS = 4
#: Files committed together: one fsync round, one directory fsync, one transaction.
IMPORT_BATCH = 128


def _stage_file(store: MediaStore, path: Path) -> Staged:
    cfg = store.config
    return stage(
        file_chunks(path), store._blobs, max_size=cfg.max_file_size,
        max_pixels=cfg.max_image_pixels,
    )  # fmt: skip


def _stage_stored_file(store: MediaStore, path: Path) -> Staged | str:
    """Stage a file found under ``media/``, if it sits at its content's own address.

    Returns the staged copy, or what is wrong: the refusal, or the address it should have.
    """
    try:
        staged = _stage_file(store, path)
    except MediaStoreError as exc:
        return str(exc)
    if store._blobs.path(staged.kind, staged.md5) != path:
        store._blobs.discard(staged.temp)
        return f"holds {staged.md5}.{staged.kind.extension} ({staged.kind.directory})"
    return staged


# --- legacy cache ----------------------------------------------------------------------------
def legacy_file(store: MediaStore, url: str) -> Path | None:
    """The legacy cache's file for ``url`` (named by the URL's MD5), if there is one.

    Runs on every catalog miss (each new URL a fetch sees), so it uses plain string paths
    and stops at one stat when there is no legacy directory at all.
    """
    directory = str(store.config.legacy_dir or store.root / "images")
    if not os.path.isdir(directory):
        return None
    stem = os.path.join(directory, url_md5(url))
    for ext in LEGACY_EXTENSIONS:
        if os.path.isfile(candidate := f"{stem}.{ext}"):
            return Path(candidate)
    return None


def import_legacy(
    store: MediaStore, directory: Path | None = None, *, progress: Progress | None = None
) -> LegacyImportReport:
    """Import every legacy file of ``directory`` (default ``<root>/images``), in one pass.

    Each file is ingested like a new one and its name (the URL's MD5) is recorded, so that
    ``get_by_url`` finds it by an indexed query. Files already imported are skipped without
    being read; a corrupt or unsupported file is reported and skipped, never imported.
    """
    source = (
        Path(directory)
        if directory is not None
        else (store.config.legacy_dir or store.root / "images")
    )
    if not source.is_dir():
        raise InvalidInputError(f"legacy cache directory not found: {source}")
    files = sorted(p for p in source.iterdir() if p.is_file())
    skipped: list[tuple[str, str]] = []
    todo: list[tuple[Path, str]] = []
    for path in files:
        key = path.stem.lower()
        if not _MD5_NAME.fullmatch(key):
            skipped.append((str(path), "name is not the MD5 of a URL"))
        else:
            todo.append((path, key))
    known = store._catalog.existing_url_keys([key for _, key in todo])
    fresh = [(p, k) for p, k in todo if k not in known]
    imported = 0
    size = 0
    done = len(files) - len(fresh)
    if progress is not None:
        progress(done, len(files))

    def stage_one(item: tuple[Path, str]) -> Staged | str:
        try:
            staged = _stage_file(store, item[0])
        except MediaStoreError as exc:
            return str(exc)
        try:
            # fsync on the staging thread: the wait overlaps other files' hashing, and the
            # batch commit is left with renames, one directory fsync and one transaction
            staged.temp.sync()
        except MediaStoreError as exc:
            store._blobs.discard(staged.temp)
            return str(exc)
        return staged

    def commit(items: list[tuple[Path, str]], staged: list[Staged | str]) -> None:
        nonlocal imported, size
        good = [(i, s) for i, s in enumerate(staged) if not isinstance(s, str)]
        outcomes = store._commit_many(
            [(s, [UrlInfo(url=None, url_md5=items[i][1])]) for i, s in good]
        )
        reasons = {i: s for i, s in enumerate(staged) if isinstance(s, str)}
        reasons.update(
            (i, str(o))
            for (i, _), o in zip(good, outcomes, strict=True)
            if isinstance(o, MediaStoreError)
        )
        for i, (path, _) in enumerate(items):
            if i in reasons:
                log.warning("legacy file %s skipped: %s", path, reasons[i])
                skipped.append((str(path), reasons[i]))
        for outcome in outcomes:
            if not isinstance(outcome, MediaStoreError):
                imported += 1
                size += outcome.size

    batches = [fresh[i : i + IMPORT_BATCH] for i in range(0, len(fresh), IMPORT_BATCH)]
    with ThreadPoolExecutor(max_workers=IMPORT_WORKERS) as pool:
        # the next batch is staged while this one is committed
        ahead = [pool.submit(stage_one, item) for item in batches[0]] if batches else []
        for k, items in enumerate(batches):
            current = ahead
            nxt = batches[k + 1] if k + 1 < len(batches) else []
            ahead = [pool.submit(stage_one, item) for item in nxt]
            commit(items, [f.result() for f in current])
            done += len(items)
            if progress is not None:
                progress(done, len(files))
    return LegacyImportReport(imported=imported, already=len(known), bytes=size, skipped=skipped)


# --- garbage collection ----------------------------------------------------------------------
def gc(store: MediaStore, *, dry_run: bool = False) -> GcReport:
    """Remove abandoned temp files, adopt unrecorded files, mark rows whose file is gone.

    A file under ``media/`` with no row is *adopted* when its content hashes to its name
    (it is valid data: a crash between rename and commit, or a catalog restored from an
    older backup) and quarantined otherwise; gc never deletes a stored file.
    """
    blobs, catalog = store._blobs, store._catalog
    temp = [str(p) for p in blobs.abandoned_temp_files(remove=not dry_run)]
    files = list(blobs.walk())
    named = {p: p.stem for p in files if _MD5_NAME.fullmatch(p.stem)}
    known = set(catalog.by_md5_many(list(set(named.values()))))
    adopted: list[str] = []
    quarantined: list[tuple[str, str]] = []
    for path in files:
        if path not in named:
            quarantined.append((str(path), "name is not an md5"))
        elif named[path] not in known:
            _adopt(store, path, adopted, quarantined, dry_run=dry_run)
    if not dry_run:
        for path_text, _ in quarantined:
            if Path(path_text).exists():
                blobs.quarantine_file(Path(path_text))
    missing = _rows_without_files(store)
    if not dry_run:
        catalog.set_status([(md5, STATUS_MISSING, None) for md5 in missing])
    return GcReport(
        dry_run=dry_run, temp_removed=temp, adopted=adopted, quarantined=quarantined,
        marked_missing=missing,
    )  # fmt: skip


def _adopt(
    store: MediaStore, path: Path, adopted: list[str], quarantined: list[tuple[str, str]],
    *, dry_run: bool,
) -> None:  # fmt: skip
    staged = _stage_stored_file(store, path)
    if isinstance(staged, str):
        quarantined.append((str(path), staged))
        return
    if dry_run:
        store._blobs.discard(staged.temp)
    else:
        store._commit(staged, [])
    adopted.append(staged.md5)


def _rows_without_files(store: MediaStore) -> list[str]:
    """Rows marked ok whose file is not on disk."""
    gone: list[str] = []
    for page in store._catalog.iter_media():
        for row in page:
            kind = BY_EXTENSION[row.extension]
            if row.status == STATUS_OK and store._blobs.size(kind, row.md5) is None:
                gone.append(row.md5)
    return gone


# --- reindex ---------------------------------------------------------------------------------
def reindex(store: MediaStore, *, progress: Progress | None = None) -> ReindexReport:
    """Rebuild media rows from the files on disk; drop rows (and URLs) whose file is gone.

    Every file is re-hashed and re-typed; a file whose name does not match its content is
    reported and left where it is (``gc`` quarantines it).
    """
    files = list(store._blobs.walk())
    found: set[str] = set()
    mismatched: list[tuple[str, str]] = []
    added = 0
    for done, path in enumerate(files, 1):
        staged = _stage_stored_file(store, path)
        if isinstance(staged, str):
            mismatched.append((str(path), staged))
            continue
        is_new = store._catalog.by_md5(staged.md5) is None
        store._commit(staged, [])
        found.add(staged.md5)
        added += is_new
        if progress is not None:
            progress(done, len(files))
    removed = [
        row.md5 for page in store._catalog.iter_media() for row in page if row.md5 not in found
    ]
    for md5 in removed:
        store._catalog.delete(md5)
    return ReindexReport(indexed=len(found), added=added, removed=removed, mismatched=mismatched)


# --- repair ----------------------------------------------------------------------------------
def repair(store: MediaStore, md5: str, *, timeout: float) -> str | None:
    """Download a missing or corrupt file again from a URL recorded for it.

    Returns None when repaired, else the reason. A download that does not hash back to
    ``md5`` is discarded (the damaged copy stays in quarantine).
    """
    urls = store._catalog.urls_for(md5)
    if not urls:
        return "no URL recorded for it"
    downloader = store._get_downloader()
    reasons: list[str] = []
    for url in urls:
        try:
            outcome = downloader.download(url, timeout=timeout)
        except FetchError as exc:
            reasons.append(str(exc))
            continue
        if outcome is None:
            reasons.append(f"{url}: not modified")
            continue
        staged, infos = outcome
        if staged.md5 != md5:
            store._blobs.discard(staged.temp)
            reasons.append(f"{url}: now serves other content ({staged.md5})")
            continue
        store._commit(staged, infos)
        log.info("repaired %s from %s", md5, url)
        return None
    return "; ".join(reasons)
