"""The life of a blob: stage, claim, place, record, remove, collect. The protocol is in
``docs/lifecycle.md``; this module is the one place that carries it out.

Every path that puts content into the store (files, bytes, downloads, legacy imports, gc
adoption, reindex, repairs) ends in :meth:`Lifecycle.commit` or :meth:`Lifecycle.commit_many`,
and every path that takes a file away from its address goes through :meth:`Lifecycle.collect`,
:meth:`Lifecycle.quarantine` or :meth:`Lifecycle.mark_missing`. In short:

- a writer *claims* its md5s (an intent row, committed) before it places a file or relies on
  one, and drops the claim in the transaction that records the row;
- a remover acts on a file only inside a catalog transaction that finds no intent on its md5
  (SQLite's write lock keeps any new claim out until it commits);
- the foreground path never unlinks a file it placed: a failed commit leaves it for gc.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from .blobs.base import BlobRef, BlobStore, Location
from .catalog import (
    Catalog,
    MediaRow,
    NewMedia,
    PlacementNeeded,
    Recording,
    UrlInfo,
    check_same_content,
)
from .config import StoreConfig
from .errors import HashCollisionError, MediaNotFoundError, MediaStoreError, StorageError
from .formats.detect import BY_EXTENSION
from .identity import Identities, Identity
from .ingest import Chunks, Staged, stage
from .records import (
    STATUS_BROKEN,
    STATUS_CORRUPT,
    STATUS_MISSING,
    STATUS_OK,
    STATUS_REMOVED,
    MediaRecord,
)
from .references import RefTake
from .types import ByteProgress

log = logging.getLogger(__name__)

#: Seconds between a writer's heartbeats, and silence after which its intents are reaped.
HEARTBEAT_SECONDS = 15
LEASE_SECONDS = 120
#: Times a commit re-places files whose rows changed under it before giving up.
PLACEMENT_ROUNDS = 3
#: Unreferenced content tombstoned (and collected) per transaction.
UNREFERENCED_PAGE = 500

Outcome = MediaRow | MediaStoreError


@dataclass(frozen=True, slots=True)
class Entry:
    """One staged file to commit, with its URLs.

    ``adopt``: the file was found in the store (gc, reindex), not added by a user: it is
    recorded only where the content was not removed (``rm`` is not undone behind its back).
    """

    staged: Staged
    urls: Sequence[UrlInfo] = ()
    adopt: bool = False
    #: references to take on the content, in the transaction that records it
    refs: Sequence[RefTake] = ()


def utcnow() -> datetime:
    return datetime.now(UTC)


def ref_of(row: MediaRow) -> BlobRef:
    """The address of a catalog row's file."""
    return BlobRef(BY_EXTENSION[row.extension], row.md5)


@dataclass(frozen=True, slots=True)
class Removal:
    """What :meth:`Lifecycle.quarantine` did: moved the file (``where``), or why not."""

    done: bool
    where: str | None = None
    reason: str = ""


class Lifecycle:
    """Owns the protocol between one :class:`BlobStore` and one :class:`Catalog`.

    Thread-safe. Commits of one store object are grouped (:class:`GroupCommit`) and run one
    batch at a time; other processes and hosts commit in parallel, settled by the catalog.
    """

    def __init__(self, blobs: BlobStore, catalog: Catalog, config: StoreConfig) -> None:
        self.blobs = blobs
        self.catalog = catalog
        self.config = config
        #: the URL identity rules in use: user rules first, then the built-in ones
        self.identities = Identities.with_user_rules(config.identity_rules)
        self.read_only = blobs.read_only or catalog.read_only
        self._writer: _Writer | None = None
        self._writer_lock = threading.Lock()
        self._batch_lock = threading.Lock()
        self._group = GroupCommit(self.commit_many)

    def identified(self, info: UrlInfo, found: Identity | None = None) -> UrlInfo:
        """``info`` with the identity, variant, rank and expiry its URL has, if a rule says
        (``found``: that identity, when the caller has it already)."""
        if found is None and info.url is not None:
            found = self.identities.of(info.url)
        if found is None:
            return info
        return replace(
            info,
            identity=found.digest,
            variant=found.variant,
            rank=found.rank,
            expires_at=found.expires_at,
        )

    def close(self) -> None:
        with self._writer_lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.stop()

    def writer_id(self) -> str:
        """This store's writer id in the catalog (registered on first use)."""
        with self._writer_lock:
            if self._writer is None:
                self._writer = _Writer(self.catalog)
            return self._writer.id

    # --- records -------------------------------------------------------------------------
    def record(self, row: MediaRow, url: str | None = None) -> MediaRecord:
        """The public record of a row (with the local directory of its file)."""
        return MediaRecord(*row, self.blobs.local_dir(ref_of(row)), url)

    # --- adding ----------------------------------------------------------------------------
    def stage(
        self,
        chunks: Chunks,
        *,
        mime_hint: str | None = None,
        progress: ByteProgress | None = None,
    ) -> Staged:
        """Stream content into a checked temp file (see :func:`mediastore.ingest.stage`)."""
        cfg = self.config
        return stage(
            chunks,
            self.blobs,
            max_size=cfg.max_file_size,
            max_pixels=cfg.max_image_pixels,
            mime_hint=mime_hint,
            progress=progress,
            deep=cfg.verify_deep,
        )

    def discard(self, staged: Staged) -> None:
        self.blobs.discard(staged.temp)

    def ingest(
        self,
        chunks: Chunks,
        urls: Sequence[UrlInfo] = (),
        *,
        mime_hint: str | None = None,
        refs: Sequence[RefTake] = (),
    ) -> MediaRow:
        """Stage and commit: the whole way in for one piece of content."""
        return self.commit(self.stage(chunks, mime_hint=mime_hint), urls, refs=refs)

    def commit(
        self,
        staged: Staged,
        urls: Sequence[UrlInfo] = (),
        *,
        adopt: bool = False,
        refs: Sequence[RefTake] = (),
    ) -> MediaRow:
        """Place (unless an intact copy is in place) and record ``staged``; grouped.

        ``adopt`` for a file found in the store rather than added (see :class:`Entry`);
        ``refs`` are taken in the recording transaction, so no collection can come between
        the file's record and its references.

        Raises:
            HashCollisionError: its md5 is stored with other content (nothing changed).
            StorageError / CatalogError: it could not be placed or recorded. A file placed
                before a failed commit stays (gc adopts it): no one else's file is undone.
        """
        # Not synced here: the batch syncs the temps it places (one syncfs for several),
        # after its claim has shown which are new. An fsync per caller cost a device flush
        # each: 2,000 downloads spent 1.6 ms of system time per file, and the batch's
        # renames and directory fsync queued behind those flushes.
        outcome = self._group.commit(Entry(staged, urls, adopt, refs))
        if isinstance(outcome, MediaStoreError):
            raise outcome
        return outcome

    def commit_many(self, batch: Sequence[Entry]) -> list[Outcome]:
        """Commit staged files as one batch: one claim, the placements, one recording.

        Each entry fails alone (a collision, a failed placement); what fails the batch as a
        whole (the catalog) is the outcome of every entry still pending. Temps are consumed.
        """
        with self._batch_lock:
            return _Batch(self, batch).run()

    # --- removing ------------------------------------------------------------------------
    def remove(self, md5: str) -> MediaRow:
        """Forget ``md5`` and its URLs now; delete its file unless a writer holds it.

        Raises:
            MediaNotFoundError: no such content (or it was removed already).
        """
        row = self.catalog.tombstone(md5, utcnow())
        if row is None:
            raise MediaNotFoundError(f"no media with md5 {md5}")
        self.collect([md5])
        return row

    def collect(self, md5s: Sequence[str] | None = None) -> list[str]:
        """Delete the files of removed content that no writer holds; the md5s deleted.

        The check (status still ``removed``, no intent) and the unlink happen inside one
        catalog transaction, which no claim can enter: a writer arriving later finds the
        row ``removed`` and places its own copy. The row stays, without URLs, as the record
        that the content was removed: gc and reindex never adopt such content back; only a
        new add records it again.
        """
        batches = [list(md5s)] if md5s is not None else self.catalog.removed_md5s()
        deleted: list[str] = []
        for batch in batches:
            with self.catalog.exclusive() as ex:
                held = ex.held(batch)
                rows = ex.rows(batch)
                deleted += [
                    md5
                    for md5 in batch
                    if md5 not in held
                    and (row := rows.get(md5)) is not None
                    and row.status == STATUS_REMOVED
                    and self.blobs.delete(ref_of(row))
                ]
        return deleted

    def collect_unreferenced(self, grace_seconds: int, *, dry_run: bool = False) -> list[str]:
        """Remove content whose last reference went away ``grace_seconds`` ago or more (by
        the database's clock); the md5s removed (``dry_run``: that would be).

        The decision is one indexed read; each page of it is then tombstoned in a
        transaction that checks the conditions again (a reference taken meanwhile wins), and
        collected as ``rm`` collects: a file a writer holds stays until gc. A crash between
        the two leaves ``removed`` rows whose files the next gc deletes.
        """
        found = self.catalog.unreferenced(grace_seconds)
        if dry_run:
            return found
        removed: list[str] = []
        for start in range(0, len(found), UNREFERENCED_PAGE):
            page = found[start : start + UNREFERENCED_PAGE]
            gone = self.catalog.tombstone_unreferenced(page, grace_seconds, utcnow())
            if gone:
                self.collect(gone)
                removed += gone
        return removed

    def quarantine(
        self,
        loc: Location,
        *,
        md5: str | None,
        identity: str | None,
        status: str | None = STATUS_CORRUPT,
    ) -> Removal:
        """Move a damaged entry out of the media tree (never deleted).

        Args:
            loc: What to move (the file of ``md5``, or a stray entry).
            md5: The content whose address ``loc`` is, or None for a name that is no
                address (nobody ever places a file there).
            identity: The entry that was checked: a replacement found in its place is left.
            status: What to mark ``md5``'s row (if it is ``ok``) in the same step, or None.
        """
        with self.catalog.exclusive() as ex:
            if md5 is not None and ex.held([md5]):
                return Removal(False, reason="a writer is placing this content right now")
            where = self.blobs.quarantine(loc, if_identity=identity)
            if where is None:
                return Removal(False, reason="replaced or gone since it was checked")
            row = ex.rows([md5]).get(md5) if md5 is not None and status else None
            if row is not None and status is not None and row.status == STATUS_OK:
                ex.set_status([row.md5], status)
        return Removal(True, where=where)

    def revive(self, found: Sequence[tuple[str, str]], *, deep: bool = False) -> list[str]:
        """Return rows marked missing or corrupt to ``ok``: their intact file is back.

        Args:
            found: ``(md5, identity)`` of each file that was just hashed right at its
                address; re-checked under the lock, so a file moved or replaced since (a
                concurrent quarantine, say) is left for the next check.
            deep: The files also passed the deep check, so ``broken`` rows come back too
                (a broken file hashes right: hashing alone says nothing of it).

        Returns:
            The md5s whose rows are ``ok`` again.
        """
        if not found:
            return []
        revivable = {STATUS_MISSING, STATUS_CORRUPT} | ({STATUS_BROKEN} if deep else set())
        with self.catalog.exclusive() as ex:
            rows = ex.rows([md5 for md5, _ in found])
            back = [
                md5
                for md5, identity in found
                if (row := rows.get(md5)) is not None
                and row.status in revivable
                and (now := self.blobs.stat(ref_of(row))) is not None
                and now.identity == identity
            ]
            ex.set_status(back, STATUS_OK)
        return back

    def mark_missing(self, md5s: Sequence[str]) -> list[str]:
        """Mark ``ok`` rows whose file is absent ``missing``, re-checked under the lock."""
        if not md5s:
            return []
        with self.catalog.exclusive() as ex:
            held = ex.held(md5s)
            rows = ex.rows(md5s)
            gone = [
                md5
                for md5 in md5s
                if md5 not in held
                and (row := rows.get(md5)) is not None
                and row.status == STATUS_OK
                and self.blobs.stat(ref_of(row)) is None
            ]
            ex.set_status(gone, STATUS_MISSING)
        return gone


class _Batch:
    """One run of the commit protocol over a batch (see :meth:`Lifecycle.commit_many`)."""

    def __init__(self, life: Lifecycle, batch: Sequence[Entry]) -> None:
        self.life = life
        self.batch = batch
        self.outcomes: list[Outcome | None] = [None] * len(batch)
        self.placed: set[str] = set()
        #: Entries whose own temp was placed (a duplicate of a placed md5 still has its temp).
        self.consumed: set[int] = set()

    def run(self) -> list[Outcome]:
        life = self.life
        try:
            writer = life.writer_id()
            rows = life.catalog.claim(writer, [e.staged.md5 for e in self.batch])
        except BaseException:
            self._discard_all()
            raise
        try:
            self._place_new(rows)
            self._record(writer)
        except MediaStoreError as exc:
            self._fail_pending(exc)
        except BaseException:
            self._finish(writer)  # placed files stay; the others' temps go
            raise
        self._finish(writer)
        return [o for o in self.outcomes if o is not None]

    def _pending(self) -> list[int]:
        return [i for i, o in enumerate(self.outcomes) if o is None]

    def _place_new(self, rows: dict[str, MediaRow]) -> None:
        """Place each md5 that has no intact, recorded file (once per md5 in the batch)."""
        to_place: dict[str, int] = {}
        for i, entry in enumerate(self.batch):
            staged = entry.staged
            row = rows.get(staged.md5)
            if row is not None:
                try:
                    check_same_content(row, _new_media(staged))
                except HashCollisionError as exc:
                    self.outcomes[i] = exc
                    continue
                if entry.adopt and row.status == STATUS_REMOVED:
                    self.outcomes[i] = _not_adopted(staged.md5)
                    continue
            if staged.md5 not in to_place and not _intact(self.life, row, staged):
                to_place[staged.md5] = i
        self._place(list(to_place.values()))

    def _place(self, indices: list[int]) -> None:
        """Sync and place these entries; a failure fails every entry of that md5."""
        if not indices:
            return
        temps = [self.batch[i].staged.temp for i in indices]
        try:
            self.life.blobs.sync_temps(temps)
        except StorageError as exc:
            for i in indices:
                self._fail_md5(self.batch[i].staged.md5, exc)
            return
        staged = [self.batch[i].staged for i in indices]
        errors = self.life.blobs.place_many([(s.temp, BlobRef(s.kind, s.md5)) for s in staged])
        for i, error in zip(indices, errors, strict=True):
            md5 = self.batch[i].staged.md5
            if error is None:
                self.placed.add(md5)
                self.consumed.add(i)
                log.debug("placed %s", md5)
            else:
                self._fail_md5(md5, error)

    def _fail_md5(self, md5: str, error: MediaStoreError) -> None:
        for j, entry in enumerate(self.batch):
            if entry.staged.md5 == md5 and self.outcomes[j] is None:
                self.outcomes[j] = error

    def _record(self, writer: str) -> None:
        """Record every pending entry; re-place files whose rows changed since the claim."""
        for _ in range(PLACEMENT_ROUNDS):
            pending = self._pending()
            if not pending:
                return
            entries = [
                Recording(
                    media=_new_media(self.batch[i].staged),
                    urls=[self.life.identified(info) for info in self.batch[i].urls],
                    placed=self.batch[i].staged.md5 in self.placed,
                    adopt=self.batch[i].adopt,
                    refs=self.batch[i].refs,
                )
                for i in pending
            ]
            try:
                rows = self.life.catalog.record_many(writer, entries, utcnow())
            except PlacementNeeded as need:
                self._place([self._unplaced(md5) for md5 in sorted(need.md5s)])
                continue
            for i, row in zip(pending, rows, strict=True):
                self.outcomes[i] = row if row.status == STATUS_OK else _not_adopted(row.md5)
            for row in {r.md5: r for r in rows if r.status == STATUS_OK}.values():
                log.info("stored %s (%s, %d bytes)", row.md5, row.mime_type, row.size)
            return
        self._fail_pending(StorageError("the stored file kept changing under this commit"))

    def _unplaced(self, md5: str) -> int:
        """A pending entry of ``md5`` (its temp is still there: temps go at the end)."""
        return next(i for i in self._pending() if self.batch[i].staged.md5 == md5)

    def _fail_pending(self, exc: MediaStoreError) -> None:
        """The batch failed as a whole: every entry still pending gets ``exc``.

        Files already placed stay where they are: another writer may have recorded the
        same content meanwhile, and an unrecorded one is adopted by gc.
        """
        for i in self._pending():
            self.outcomes[i] = exc

    def _discard_all(self) -> None:
        for entry in self.batch:
            self.life.discard(entry.staged)

    def _finish(self, writer: str) -> None:
        """Drop the intents the recording did not (entries that failed); remove the temps
        that were not placed (entries that relied on a file already in place, or on a copy of
        the same content placed by another entry of the batch)."""
        recorded = {
            self.batch[i].staged.md5 for i, o in enumerate(self.outcomes) if isinstance(o, MediaRow)
        }
        failed = [e.staged.md5 for e in self.batch if e.staged.md5 not in recorded]
        if failed:
            try:
                self.life.catalog.release(writer, failed)
            except MediaStoreError:  # they go when this writer closes or is reaped
                log.warning("could not drop intents on %d md5(s)", len(failed), exc_info=True)
        for i, entry in enumerate(self.batch):
            if i not in self.consumed:
                self.life.discard(entry.staged)


def _not_adopted(md5: str) -> MediaNotFoundError:
    return MediaNotFoundError(f"{md5} was removed: its file is not adopted back")


def _intact(life: Lifecycle, row: MediaRow | None, staged: Staged) -> bool:
    """An ``ok`` row's file is in place at the right size: rely on it, place nothing."""
    if row is None or row.status != STATUS_OK:
        return False
    found = life.blobs.stat(BlobRef(staged.kind, staged.md5))
    return found is not None and found.regular and found.size == staged.size


def _new_media(staged: Staged) -> NewMedia:
    return NewMedia(
        md5=staged.md5,
        sha256=staged.sha256,
        media_type=staged.kind.media_type,
        mime_type=staged.kind.mime_type,
        extension=staged.kind.extension,
        size=staged.size,
        width=staged.width,
        height=staged.height,
        metadata=staged.metadata,
    )


class _Writer:
    """This store's writer row in the catalog, kept alive by a heartbeat thread."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self.label = f"{socket.gethostname()}:{os.getpid()}"
        self.id = catalog.open_writer(self.label)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="mediastore-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                if not self._catalog.heartbeat(self.id, self.label):
                    log.warning("writer %s had been reaped; registered again", self.id)
            except MediaStoreError:
                log.warning("heartbeat of writer %s failed", self.id, exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        try:
            self._catalog.close_writer(self.id)
        except MediaStoreError:  # reaped later by gc, after the lease
            log.warning("could not unregister writer %s", self.id, exc_info=True)


class GroupCommit:
    """Commits that arrive while another is running are committed together, in one batch.

    A caller finding no commit under way commits at once (no added latency without
    contention). Callers arriving meanwhile queue up; when the running commit ends, one of
    them takes everything queued and commits it with one round of parallel fsyncs, one
    directory fsync and one transaction. Each leader commits one batch, its own entry in it,
    so no caller ends up committing for others indefinitely.
    """

    def __init__(self, commit_many: Callable[[Sequence[Entry]], list[Outcome]]) -> None:
        self._commit_many = commit_many
        self._cond = threading.Condition()
        self._pending: list[tuple[Entry, Future[Outcome]]] = []
        self._leading = False

    def commit(self, entry: Entry) -> Outcome:
        future: Future[Outcome] = Future()
        with self._cond:
            self._pending.append((entry, future))
            while self._leading and not future.done():
                self._cond.wait()
            if future.done():
                return future.result()
            self._leading = True
            batch, self._pending = self._pending, []
        try:
            outcomes = self._commit_many([e for e, _ in batch])
            for (_, waiting), outcome in zip(batch, outcomes, strict=True):
                waiting.set_result(outcome)
        except BaseException as exc:  # the batch failed as a whole: every caller sees it
            for _, waiting in batch:
                if not waiting.done():
                    waiting.set_exception(exc)
        finally:
            with self._cond:
                self._leading = False
                self._cond.notify_all()
        return future.result()
