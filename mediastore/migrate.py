"""Moving a store's bytes to another blob store, online and resumably (``migrate-store``).

A move copies every stored file from the *source* blob store (a directory, or
``s3://bucket/prefix``) to the *target*. While it is unfinished, every store that opens on
either end reads from both and writes to the target (:class:`MirroredBlobStore`), so reads
and writes keep working and new content lands where the move is going. Each file goes
through a temp of the target's staging area: a small file is read whole and hashed in
memory, a larger one streamed through the ingest path; either must hash to its row's MD5
and SHA-256 (the bytes that were sniffed and checked when they were added), is placed at the
target (on S3 without ``If-None-Match``: the row decides what the key holds, see
``_stage_and_place``), and only then recorded in ``moved_blobs`` (under an intent, so no
remover takes it meanwhile); a rerun skips what is recorded, so a killed migration
continues where it stopped. The source copy of a file is deleted only when asked, and only
after its copy was recorded.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from pathlib import Path

from .blobs import open_blob_store
from .blobs.base import BlobRef, BlobStore, TempBlob
from .blobs.mirror import MirroredBlobStore
from .blobs.s3 import UploadTemp
from .catalog import MediaRow, MoveRow
from .errors import InvalidInputError, MediaStoreError
from .hashing import md5_of_bytes
from .ingest import open_file_chunks, stage
from .lifecycle import Lifecycle, ref_of
from .ownership import marker_bytes
from .records import MoveReport
from .types import Progress

log = logging.getLogger(__name__)

#: Files copied at once: each waits mostly on a read or an upload.
COPY_THREADS = 8
#: Files claimed together and recorded in one transaction.
COPY_BATCH = 64
#: Batches claimed and queued beyond the one being recorded.
BATCHES_AHEAD = 1
#: Files up to this size are read whole and hashed in memory (no staging pipeline).
SMALL_FILE = 1 << 20


def with_moves(
    blobs: BlobStore, moves: Sequence[MoveRow], here: str, root: Path, *, read_only: bool
) -> BlobStore:
    """``blobs`` (the store at ``here``), mirrored with the other end of an unfinished move."""
    if not moves:
        return blobs
    move = moves[0]
    if move.source == here:
        log.info("store move %d in progress: new content goes to %s", move.id, move.target)
        return MirroredBlobStore(_open(move.target, root, read_only), blobs)
    return MirroredBlobStore(blobs, _open(move.source, root, read_only))


def _open(url: str, root: Path, read_only: bool) -> BlobStore:
    return open_blob_store(url, root, read_only=read_only)


def migrate(
    life: Lifecycle,
    source: BlobStore,
    target: BlobStore,
    move: MoveRow,
    *,
    delete_source: bool = False,
    progress: Progress | None = None,
) -> MoveReport:
    """Copy every live file of ``source`` to ``target`` under ``move``; see the module doc.

    Passes repeat until a pass finds nothing left to copy (content added meanwhile goes to
    the target already, unless a store opened before the move started is still writing to
    the source: its files are taken by the next pass or the next run).
    """
    report = MoveReport(source=move.source, target=move.target)
    report.already = life.catalog.count_moved(move.id)
    with ThreadPoolExecutor(COPY_THREADS, thread_name_prefix="mediastore-move") as pool:
        while todo := [r for r in _unmoved(life, move) if r.md5 not in report.failed]:
            _copy_all(life, pool, source, target, move, todo, report, progress)
    if delete_source and not report.failed:
        report.source_deleted = _delete_source(life, source, move)
    if not report.failed:
        # the target's marker first: until the commit both ends name the store, after it
        # the catalog names the target; a rerun after a crash here copies nothing
        target.write_marker(marker_bytes(life.catalog.store_info()["store_id"], life.catalog.where))
        life.catalog.finish_move(move, datetime.now(UTC))
        source.delete_marker()
        report.finished = True
    return report


def _unmoved(life: Lifecycle, move: MoveRow) -> list[MediaRow]:
    return [row for page in life.catalog.unmoved(move.id) for row in page]


#: A batch being copied: its rows, and each row's copy (None, or why it failed).
_Running = tuple[list[MediaRow], list["Future[str | None]"]]


def _copy_all(
    life: Lifecycle,
    pool: ThreadPoolExecutor,
    source: BlobStore,
    target: BlobStore,
    move: MoveRow,
    todo: list[MediaRow],
    report: MoveReport,
    progress: Progress | None,
) -> None:
    """Copy ``todo`` in batches, each claimed as one and recorded in one transaction.

    The next batch is claimed and its copies queued before the current one is recorded,
    so the copying threads never wait for the catalog (nor for a batch's slowest file).
    A failure of one file is reported, not raised: it stays uncopied, its intent dropped.
    """
    writer = life.writer_id()
    running: deque[_Running] = deque()
    done = 0
    try:
        for start in range(0, len(todo), COPY_BATCH):
            rows = todo[start : start + COPY_BATCH]
            life.catalog.claim(writer, [row.md5 for row in rows])
            copies = [pool.submit(_copy, life, source, target, row) for row in rows]
            running.append((rows, copies))
            while len(running) > BATCHES_AHEAD or (running and start + COPY_BATCH >= len(todo)):
                done += _record(life, writer, move, running.popleft(), report)
                if progress is not None:
                    progress(done, len(todo))
    finally:
        for rows, copies in running:  # after a failure: stop what has not begun, drop claims
            for copy in copies:
                copy.cancel()
            wait(copies)
            life.catalog.release(writer, [row.md5 for row in rows])


def _record(
    life: Lifecycle, writer: str, move: MoveRow, batch: _Running, report: MoveReport
) -> int:
    """Wait for a batch's copies, record those that succeeded, drop the other intents."""
    rows, copies = batch
    copied: list[str] = []
    recorded: set[str] = set()
    try:
        for row, copy in zip(rows, copies, strict=True):
            failure = copy.result()
            if failure is None:
                copied.append(row.md5)
            else:
                report.failed[row.md5] = failure
        life.catalog.record_moved(writer, move.id, copied, datetime.now(UTC))
        report.copied.extend(copied)
        recorded.update(copied)
    finally:
        for copy in copies:  # a failure above: nothing of this batch may still be copying
            copy.cancel()
        wait(copies)
        life.catalog.release(writer, [row.md5 for row in rows if row.md5 not in recorded])
    return len(rows)


def _copy(life: Lifecycle, source: BlobStore, target: BlobStore, row: MediaRow) -> str | None:
    """Copy one file through the ingest path (placing it where it is already is harmless)."""
    ref = ref_of(row)
    try:
        _stage_and_place(life, source, target, ref, row)
    except FileNotFoundError:
        # content added during the move went to the target only
        found = target.stat(ref)
        return None if found is not None and found.size == row.size else "not in the source"
    except MediaStoreError as exc:
        return str(exc)
    return None


def _stage_and_place(
    life: Lifecycle, source: BlobStore, target: BlobStore, ref: BlobRef, row: MediaRow
) -> None:
    fh, info = source.open(ref)
    with fh:
        if info.size <= SMALL_FILE:
            temp = _hashed_copy(fh.read(), target, row)
        else:
            cfg = life.config
            staged = stage(
                open_file_chunks(fh, info.size),
                target,
                max_size=cfg.max_file_size,
                max_pixels=cfg.max_image_pixels,
            )
            temp = staged.temp
            try:
                _check_hashes(row, staged.md5, staged.sha256)
            except InvalidInputError:
                target.discard(temp)
                raise
    if isinstance(temp, UploadTemp):
        # No If-None-Match: the row decides what this key may hold, not the server. The row
        # (this md5 and SHA-256) was there before the move and rows are never deleted; every
        # writer of this catalog checks its content against it before placing anything
        # (lifecycle: check_same_content), so any object a writer makes at this key is
        # these bytes and replacing it changes nothing; an object of other content there
        # is one no row refers to (a refused add leaves what it placed), which the copy
        # repairs instead of failing on it for ever. Removers keep off while our intent
        # is held, which is until the copy is recorded. Saves the server's existence check
        # (about 0.3 ms of its CPU per PUT, 8% of the PUT rate).
        temp.if_absent = False
    try:
        target.sync_temps([temp])
        error = target.place_many([(temp, ref)])[0]
        if error is not None:
            raise error
    finally:
        target.discard(temp)


def _check_hashes(row: MediaRow, md5: str, sha256: str) -> None:
    """The copy must be the row's content: its MD5 and SHA-256.

    Raises:
        InvalidInputError: the source copy hashes to something else (run ``verify``).
    """
    if md5 != row.md5 or sha256 != row.sha256:
        raise InvalidInputError(f"the source copy hashes to {md5}, not {row.md5}")


def _hashed_copy(data: bytes, target: BlobStore, row: MediaRow) -> TempBlob:
    """A temp of ``target`` holding ``data``, which must hash to the row's md5 and SHA-256.

    Content read whole is only hashed, not sniffed and checked again: bytes with the
    row's MD5 and SHA-256 are the bytes that were sniffed and checked when they were added.
    """
    sha256 = hashlib.sha256(data).hexdigest()
    _check_hashes(row, md5_of_bytes(data), sha256)
    temp = target.create_temp()
    try:
        temp.write(data)
    except BaseException:
        target.discard(temp)
        raise
    temp.sha256 = sha256
    return temp


def _delete_source(life: Lifecycle, source: BlobStore, move: MoveRow) -> list[str]:
    """Delete the source copy of every recorded file no writer holds an intent on."""
    deleted: list[str] = []
    for page in life.catalog.moved(move.id):
        rows = life.catalog.by_md5_many(page)
        with life.catalog.exclusive() as ex:
            held = ex.held(page)
            for md5 in page:
                if md5 in rows and md5 not in held and source.delete(ref_of(rows[md5])):
                    deleted.append(md5)
    return deleted
