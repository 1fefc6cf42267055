"""Bringing catalog and disk into agreement: legacy import, gc, reindex and repair.

Everything here reads files through the single ingest path (stage -> claim -> place ->
record, :mod:`mediastore.lifecycle`), so an imported, adopted, re-indexed or repaired file gets
the same checks as a new one, and is re-hashed (never through a link) before it is accepted.
Files leave their address only through the lifecycle, which re-checks under the catalog's
lock that no writer is placing the same content.

gc and reindex classify what they find in the media tree the same way (:func:`_classify`):
a file at its content's address is recorded; valid content elsewhere (a wrong directory or
extension) is recorded at its own address and the stray copy quarantined; anything else in
an address that has a row is that row's damaged file (quarantined, the row marked corrupt);
the rest is quarantined. Nothing is deleted.
"""

from __future__ import annotations

import logging
import os
import re
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from . import verify
from .blobs.base import BlobRef, StoredEntry
from .catalog import MediaRow, UrlInfo, url_md5
from .config import StoreConfig
from .errors import (
    FetchError,
    InvalidInputError,
    MediaNotFoundError,
    MediaStoreError,
    StorageError,
)
from .formats.detect import BY_EXTENSION
from .formats.structure import checker_for
from .ingest import Staged, open_file_chunks
from .lifecycle import LEASE_SECONDS, Entry, Lifecycle, ref_of
from .net.downloader import Downloader
from .records import (
    STATUS_CORRUPT,
    STATUS_MISSING,
    STATUS_OK,
    STATUS_REMOVED,
    GcReport,
    LegacyImportReport,
    MediaMetadata,
    ProbeReport,
    ReidentifyReport,
    ReindexReport,
)
from .types import Progress
from .verify import Repaired

log = logging.getLogger(__name__)

_MD5_NAME = re.compile(r"[0-9a-f]{32}")
#: Extensions the previous system gave its cached images.
LEGACY_EXTENSIONS = ("jpg", "jpeg", "png", "gif", "webp")
#: Legacy files imported in parallel: hashing and Pillow release the GIL, fsync waits on disk.
IMPORT_WORKERS = 4
#: Files committed together: one fsync round, one directory fsync, one transaction.
IMPORT_BATCH = 128
#: Rows checked for a missing file per lifecycle call.
MISSING_BATCH = 500


# --- legacy cache ----------------------------------------------------------------------------
def legacy_dir(config: StoreConfig) -> Path:
    """The legacy cache's directory: ``config.legacy_dir`` or ``<root>/images``."""
    return Path(config.legacy_dir or config.root / "images")


def legacy_file(directory: str, url: str) -> Path | None:
    """The file for ``url`` (named by the URL's MD5) in the legacy cache ``directory``.

    Runs on every catalog miss (each new URL a fetch sees), so it takes the directory as a
    string made once (:func:`legacy_dir`) and stops at one stat when it does not exist.
    """
    if not os.path.isdir(directory):
        return None
    stem = os.path.join(directory, url_md5(url))
    for ext in LEGACY_EXTENSIONS:
        if os.path.isfile(candidate := f"{stem}.{ext}") and not os.path.islink(candidate):
            return Path(candidate)
    return None


def _stage_path(life: Lifecycle, path: Path) -> Staged:
    """Stage a file the store did not write, opened without following a link."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with open(fd, "rb", buffering=0) as fh:
        return life.stage(open_file_chunks(fh))


def import_legacy(
    life: Lifecycle, directory: Path | None = None, *, progress: Progress | None = None
) -> LegacyImportReport:
    """Import every legacy file of ``directory`` (default :func:`legacy_dir`), in one pass.

    Each file is ingested like a new one and its name (the URL's MD5) is recorded, so that
    ``get_by_url`` finds it by an indexed query. Files already imported are skipped without
    being read; a corrupt or unsupported file (or a link) is reported and skipped.
    """
    source = Path(directory) if directory is not None else legacy_dir(life.config)
    if not source.is_dir():
        raise InvalidInputError(f"legacy cache directory not found: {source}")
    files = sorted(p for p in source.iterdir() if p.is_file() or p.is_symlink())
    skipped: list[tuple[str, str]] = []
    todo: list[tuple[Path, str]] = []
    for path in files:
        key = path.stem.lower()
        if not _MD5_NAME.fullmatch(key):
            skipped.append((str(path), "name is not the MD5 of a URL"))
        else:
            todo.append((path, key))
    known = life.catalog.existing_url_keys([key for _, key in todo])
    fresh = [(p, k) for p, k in todo if k not in known]
    tally = _ImportTally(skipped)
    done = len(files) - len(fresh)
    if progress is not None:
        progress(done, len(files))

    def stage_one(item: tuple[Path, str]) -> Staged | str:
        # not synced here: the batch's commit makes all its temp files durable at once
        # (one syncfs), before their renames, directory fsync and transaction
        try:
            return _stage_path(life, item[0])
        except MediaStoreError as exc:
            return str(exc)

    batches = [fresh[i : i + IMPORT_BATCH] for i in range(0, len(fresh), IMPORT_BATCH)]
    pool = ThreadPoolExecutor(max_workers=IMPORT_WORKERS)
    staging: list[Future[Staged | str]] = []
    try:
        # the next batch is staged while this one is committed
        ahead = [pool.submit(stage_one, item) for item in batches[0]] if batches else []
        for k, items in enumerate(batches):
            current = ahead
            nxt = batches[k + 1] if k + 1 < len(batches) else []
            ahead = [pool.submit(stage_one, item) for item in nxt]
            staging = current + ahead
            tally.commit(life, items, [f.result() for f in current])
            staging = ahead
            done += len(items)
            if progress is not None:
                progress(done, len(files))
    except BaseException:
        # interrupted (Ctrl-C): stop staging and leave no temp file behind
        pool.shutdown(wait=True, cancel_futures=True)
        _discard_staged(life, staging)
        raise
    finally:
        pool.shutdown(wait=True)
    return LegacyImportReport(
        imported=tally.imported, already=len(known), bytes=tally.size, skipped=skipped
    )


def _discard_staged(life: Lifecycle, futures: list[Future[Staged | str]]) -> None:
    """Remove the temps of staged files that no commit took (a taken one is gone already)."""
    for future in futures:
        if future.cancel() or not future.done() or future.exception() is not None:
            continue
        staged = future.result()
        if not isinstance(staged, str):
            life.discard(staged)


class _ImportTally:
    """Commits staged legacy files batch by batch and counts what happened."""

    def __init__(self, skipped: list[tuple[str, str]]) -> None:
        self.skipped = skipped
        self.imported = 0
        self.size = 0

    def commit(
        self, life: Lifecycle, items: list[tuple[Path, str]], staged: list[Staged | str]
    ) -> None:
        good = [(i, s) for i, s in enumerate(staged) if not isinstance(s, str)]
        outcomes = life.commit_many(
            [Entry(s, [UrlInfo(url=None, url_md5=items[i][1])]) for i, s in good]
        )
        reasons = {i: s for i, s in enumerate(staged) if isinstance(s, str)}
        reasons.update(
            (i, str(o))
            for (i, _), o in zip(good, outcomes, strict=True)
            if isinstance(o, MediaStoreError)
        )
        for i, (path, _) in enumerate(items):
            if i in reasons:
                log.info("legacy file %s skipped: %s", path, reasons[i])  # in the report
                self.skipped.append((str(path), reasons[i]))
        for outcome in outcomes:
            if not isinstance(outcome, MediaStoreError):
                self.imported += 1
                self.size += outcome.size


def ingest_legacy_file(life: Lifecycle, path: Path, url: str) -> MediaRow:
    """Ingest one legacy file for ``url`` (the lookup fallback of ``get_by_url``)."""
    return life.commit(_stage_path(life, path), [UrlInfo(url=url, url_md5=url_md5(url))])


# --- what gc and reindex find ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Found:
    """How an entry of the media tree was classified (see the module docstring).

    ``action``: ``recorded`` (at its address), ``moved`` (valid content recorded at its own
    address; this copy is a stray), ``damaged`` (a row's file that no longer matches it),
    ``stray`` (not valid content, no row's file), ``skip`` (gone, or removed content).
    """

    action: str
    md5: str | None = None  # the content recorded, or the row whose file it is
    reason: str = ""
    identity: str | None = None  # the entry that was hashed
    is_new: bool = False


def _address_md5(entry: StoredEntry) -> str | None:
    """The md5 whose address this entry's name is (right directory and extension), if any."""
    stem, dot, ext = entry.name.partition(".")
    kind = BY_EXTENSION.get(ext) if dot else None
    if _MD5_NAME.fullmatch(stem) and kind is not None and kind.directory == entry.directory:
        return stem
    return None


def _owner_row(life: Lifecycle, entry: StoredEntry) -> MediaRow | None:
    """The row whose file belongs exactly where ``entry`` is, if any."""
    md5 = _address_md5(entry)
    row = life.catalog.by_md5(md5) if md5 else None
    return row if row is not None and ref_of(row).key == entry.key else None


def _classify(life: Lifecycle, entry: StoredEntry, *, dry_run: bool) -> _Found:
    """Re-hash ``entry`` and record its content, or say why not (acting unless ``dry_run``)."""
    row = _owner_row(life, entry)
    if row is not None and row.status == STATUS_REMOVED:
        return _Found("skip")  # collected by gc, not adopted back
    bad = "damaged" if row is not None else "stray"
    owner = row.md5 if row is not None else None
    try:
        fh, info = life.blobs.open(entry)
    except FileNotFoundError:
        return _Found("skip")
    except StorageError as exc:
        current = life.blobs.stat(entry)
        return _Found(bad, owner, str(exc), current.identity if current else None)
    with fh:
        try:
            staged = life.stage(open_file_chunks(fh, info.size))
        except MediaStoreError as exc:
            return _Found(bad, owner, str(exc), info.identity)
    ref = BlobRef(staged.kind, staged.md5)
    where = f"holds {ref.name} ({ref.directory})"
    if ref.key != entry.key and row is not None:
        life.discard(staged)
        return _Found("damaged", owner, where, info.identity)
    action = "recorded" if ref.key == entry.key else "moved"
    if dry_run:
        life.discard(staged)
        return _Found(action, staged.md5, where, info.identity)
    is_new = life.catalog.by_md5(staged.md5) is None
    try:
        life.commit(staged, adopt=True)
    except MediaNotFoundError:  # removed content: rm is not undone by gc or reindex
        if action == "moved":
            return _Found("stray", None, f"a copy of removed content {ref.name}", info.identity)
        return _Found("skip")  # at its address: gc's collection deletes it
    return _Found(action, staged.md5, where, info.identity, is_new)


def _set_aside(life: Lifecycle, entry: StoredEntry, found: _Found) -> bool:
    """Quarantine an entry that is not (or no longer) a stored file; True if moved.

    A damaged file's row is marked corrupt in the same step, unless a writer is placing
    that content right now (it then replaces the damaged file itself).
    """
    moved = life.quarantine(
        entry,
        md5=_address_md5(entry),
        identity=found.identity,
        status=STATUS_CORRUPT if found.action == "damaged" else None,
    )
    return moved.done


# --- garbage collection ----------------------------------------------------------------------
def gc(
    life: Lifecycle,
    *,
    dry_run: bool = False,
    unreferenced_grace: int | None = None,
) -> GcReport:
    """Clean up after crashes and finish removals; never deletes a file a row may need.

    - temp files whose writer is gone are removed;
    - writers silent for longer than the lease lose their intents;
    - with ``unreferenced_grace`` (seconds), content whose last reference went away at
      least that long ago is removed (see :meth:`Lifecycle.collect_unreferenced`);
    - files of removed content that no writer holds are deleted;
    - a file with no row is adopted when it is valid content (recorded at its address),
      quarantined otherwise; rows whose file is gone are marked missing;
    - the stats counters are recounted from the rows, and repaired if they drifted.
    """
    blobs, catalog = life.blobs, life.catalog
    temp = blobs.abandoned_temp_files(remove=not dry_run)
    temp += blobs.abandoned_uploads(remove=not dry_run)  # an upload is the server's temp file
    reaped = 0 if dry_run else catalog.reap_writers(LEASE_SECONDS)
    unreferenced = (
        []
        if unreferenced_grace is None
        else life.collect_unreferenced(unreferenced_grace, dry_run=dry_run)
    )
    collected = [] if dry_run else life.collect()
    entries = list(blobs.walk())
    rows = catalog.by_md5_many([md5 for entry in entries if (md5 := _address_md5(entry))])
    adopted: list[str] = []
    quarantined: list[tuple[str, str]] = []
    relocated: list[tuple[str, str]] = []
    returned: list[tuple[str, str]] = []  # (md5, identity) of intact files of rows not ok
    for entry in entries:
        owner = _address_md5(entry)
        if owner in rows and ref_of(rows[owner]).key == entry.key:
            if rows[owner].status in (STATUS_MISSING, STATUS_CORRUPT):
                returned += _intact_again(life, rows[owner])
            continue  # a recorded file: verify's to judge
        found = _classify(life, entry, dry_run=dry_run)
        if found.action == "recorded":
            adopted.append(str(found.md5))
        elif found.action == "moved":  # recorded at its own address; this copy set aside
            adopted.append(str(found.md5))
            if dry_run or _set_aside(life, entry, found):
                relocated.append((blobs.describe(entry), str(found.md5)))
        elif found.action in ("stray", "damaged") and (dry_run or _set_aside(life, entry, found)):
            quarantined.append((blobs.describe(entry), found.reason))
    restored = [md5 for md5, _ in returned] if dry_run else life.revive(returned)
    missing = _rows_without_files(life)
    if not dry_run:
        missing = _mark_missing(life, missing)
    repaired = {} if dry_run else catalog.recount()
    if repaired:
        log.warning("stats counters recounted: %s", sorted(repaired))
    return GcReport(
        dry_run=dry_run,
        temp_removed=temp,
        adopted=adopted,
        quarantined=quarantined,
        relocated=relocated,
        marked_missing=missing,
        restored=restored,
        collected=collected,
        writers_reaped=reaped,
        counters_repaired=repaired,
        unreferenced=unreferenced,
    )


def _intact_again(life: Lifecycle, row: MediaRow) -> list[tuple[str, str]]:
    """``[(md5, identity)]`` when the file at a missing or corrupt row's address hashes right."""
    found = verify.check(life, row)
    return [(row.md5, found.identity)] if found.outcome == "ok" and found.identity else []


def _rows_without_files(life: Lifecycle) -> list[str]:
    """Rows marked ok whose file is not at their address."""
    gone: list[str] = []
    for page in life.catalog.iter_media():
        for row in page:
            if row.status == STATUS_OK and life.blobs.stat(ref_of(row)) is None:
                gone.append(row.md5)
    return gone


def _mark_missing(life: Lifecycle, md5s: list[str]) -> list[str]:
    marked: list[str] = []
    for start in range(0, len(md5s), MISSING_BATCH):
        marked += life.mark_missing(md5s[start : start + MISSING_BATCH])
    return marked


# --- reindex ---------------------------------------------------------------------------------
def reindex(life: Lifecycle, *, progress: Progress | None = None) -> ReindexReport:
    """Rebuild media rows from the files on disk (a lost or restored catalog).

    Every file is re-hashed and re-typed, and recorded at its content's address. A file at a
    row's address that no longer matches it is quarantined and the row marked corrupt; rows
    whose file is gone are marked missing. URLs are never dropped (``verify --repair`` needs
    them). Entries not at their content's address are quarantined, as gc does.
    """
    entries = list(life.blobs.walk())
    found_md5s: set[str] = set()
    corrupt: list[str] = []
    mismatched: list[tuple[str, str]] = []
    added = 0
    for done, entry in enumerate(entries, 1):
        found = _classify(life, entry, dry_run=False)
        if found.action in ("recorded", "moved") and found.md5:
            found_md5s.add(found.md5)
            added += found.is_new
        if found.action in ("moved", "stray", "damaged") and _set_aside(life, entry, found):
            if found.action == "damaged" and found.md5:
                corrupt.append(found.md5)
            else:
                mismatched.append((life.blobs.describe(entry), found.reason))
        if progress is not None:
            progress(done, len(entries))
    missing = _mark_missing(life, _rows_without_files(life))
    return ReindexReport(
        indexed=len(found_md5s),
        added=added,
        missing=missing,
        corrupt=corrupt,
        mismatched=mismatched,
    )


# --- repair ----------------------------------------------------------------------------------
def _by_expiry(life: Lifecycle, urls: list[str]) -> tuple[list[str], list[str]]:
    """``urls`` split into those that have not expired (by their identity rule) and those
    that have."""
    now = datetime.now(UTC)
    fresh: list[str] = []
    expired: list[str] = []
    for url in urls:
        found = life.identities.of(url)
        when = found.expires_at if found is not None else None
        (expired if when is not None and when <= now else fresh).append(url)
    return fresh, expired


def repair(
    life: Lifecycle, downloader: Downloader, md5: str, *, timeout: float, broken: bool = False
) -> Repaired:
    """Download a missing or corrupt file again from a URL recorded for it.

    A download must hash back to ``md5`` (else the server now serves other content, which is
    not accepted), unless ``broken``: the stored file hashed right but its content was
    damaged (the deep check), so the good file is other content: it is stored as new
    content, the URLs move to it, and the broken file stays in quarantine.
    """
    urls = life.catalog.urls_for(md5)
    if not urls:
        return Repaired(False, "no URL recorded for it")
    fresh, expired = _by_expiry(life, urls)
    # an expired URL is tried only when no fresh one is recorded (a CDN refuses it anyway)
    reasons = [f"{url}: expired, not tried" for url in expired] if fresh else []
    for url in fresh or expired:
        try:
            outcome = downloader.download(url, timeout=timeout)
        except FetchError as exc:
            reasons.append(str(exc))
            continue
        if outcome is None:
            reasons.append(f"{url}: not modified")
            continue
        staged, infos = outcome
        if staged.md5 == md5 and broken:
            life.discard(staged)
            reasons.append(f"{url}: still serves the same broken file")
            continue
        if staged.md5 != md5 and not broken:
            life.discard(staged)
            reasons.append(f"{url}: now serves other content ({staged.md5})")
            continue
        row = life.commit(staged, [UrlInfo(url=u) for u in urls if u != url] + list(infos))
        log.info("repaired %s from %s", md5, url)
        return Repaired(True, replaced_by=row.md5 if row.md5 != md5 else None)
    return Repaired(False, "; ".join(reasons))


#: URL rows read and updated per transaction by :func:`reidentify`.
REIDENTIFY_PAGE = 2000


def reidentify(life: Lifecycle, *, progress: Progress | None = None) -> ReidentifyReport:
    """Give every recorded URL the identity, variant, rank and expiry the rules in use say
    (a rule added or changed after its URLs were recorded), a page of rows per transaction.

    Online and resumable: each page is read and updated on its own, and a rerun finds
    nothing left to change where the previous run got. ``progress(done, total)`` counts URL
    rows; the total is the highest row id (an estimate: ids of removed rows are gaps).
    """
    identities = life.identities
    urls = changed = 0
    after = 0
    total = life.catalog.last_url_id()
    while page := life.catalog.url_identities(after, REIDENTIFY_PAGE):
        changes = []
        for row_id, url, recorded in page:
            found = identities.of(url)
            now = (
                (found.digest, found.variant, found.rank, found.expires_at)
                if found is not None
                else (None, None, None, None)
            )
            if now != recorded:
                changes.append((row_id, now))
        life.catalog.set_url_identities(changes)
        urls += len(page)
        changed += len(changes)
        after = page[-1][0]
        if progress is not None:
            progress(min(after, total), total)
    return ReidentifyReport(urls=urls, changed=changed)


#: Rows read per page of ``probe`` (each page's results are one transaction).
PROBE_PAGE = 200
#: Files read at once by ``probe``: an object store's reads wait on the network.
PROBE_WORKERS = 4
#: Bytes read at a time from a stored file by ``probe``.
PROBE_CHUNK = 1 << 20


def probe(life: Lifecycle, *, progress: Progress | None = None) -> ProbeReport:
    """Read and record the metadata of every ``ok`` file whose row has never had it read
    (stored before catalog revision 0010), a page of rows per transaction.

    Each file is streamed once through its format's structure walk (the check ingest runs,
    not deep; nothing is hashed): a local file or an object store's object is read once.
    Online and resumable: a row is marked read (``metadata_read_at``) in the page's
    transaction, only if still unread, and a rerun visits what is left. A file whose walk
    fails now is recorded as read with unknown metadata (``unreadable``: ``verify`` says
    what is wrong with it); a file not found is left unread (``missing``).
    ``progress(done, total)`` counts files.

    Raises:
        ReadOnlyStoreError: the catalog is read-only and some file needs reading.
        StorageError: a stored file could not be read (the pages before are recorded).
    """
    total = life.catalog.count_unprobed()
    done = read = size = 0
    unreadable: dict[str, str] = {}
    missing: list[str] = []
    after = ""
    with ThreadPoolExecutor(PROBE_WORKERS, thread_name_prefix="probe") as pool:
        while page := life.catalog.unprobed(after, PROBE_PAGE):
            after = page[-1].md5
            found: list[tuple[str, MediaMetadata | None]] = []
            outcomes = list(pool.map(lambda r: _probe_one(life, r), page))
            for row, outcome in zip(page, outcomes, strict=True):
                if outcome is None:
                    missing.append(row.md5)
                    continue
                metadata, reason = outcome
                if reason is not None:
                    unreadable[row.md5] = reason
                    log.warning("metadata of %s not readable: %s", row.md5, reason)
                found.append((row.md5, metadata))
                size += row.size
            read += life.catalog.record_metadata(found, datetime.now(UTC))
            done += len(page)
            if progress is not None:
                progress(min(done, total), max(total, done))
    return ProbeReport(read=read, unreadable=unreadable, missing=missing, bytes=size)


def _probe_one(life: Lifecycle, row: MediaRow) -> tuple[MediaMetadata | None, str | None] | None:
    """(metadata, None) of a stored file, (None, why) if its walk fails, None if missing."""
    kind = BY_EXTENSION.get(row.extension)
    if kind is None:
        return None, f"unknown extension {row.extension!r}"
    try:
        fh, _ = life.blobs.open(ref_of(row))
    except FileNotFoundError:
        return None
    check = checker_for(kind, max_pixels=life.config.max_image_pixels)
    try:
        with fh:
            while chunk := fh.read(PROBE_CHUNK):
                check.feed(chunk)
        check.finish()
    except MediaStoreError as exc:
        return None, str(exc)
    except OSError as exc:
        raise StorageError(f"reading the file of {row.md5} failed: {exc}") from exc
    return check.metadata, None
