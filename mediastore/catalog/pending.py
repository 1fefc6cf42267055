"""URLs that lookups found by identity, recorded by a writer thread rather than by the lookup."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from ..errors import MediaStoreError
from ..identity import Identity
from .rows import UrlInfo

log = logging.getLogger(__name__)

#: URLs written in one transaction, at most.
BATCH = 512
#: Seconds without a new URL after which the writer records what is held.
QUIET = 0.25
#: URLs held at most; more are let go until the writer has recorded these.
LIMIT = 8192

Record = Callable[[Sequence[tuple[str, UrlInfo]], datetime], None]


class PendingUrls:
    """URLs to record for stored content, written by a thread of their own when lookups
    pause.

    A lookup that finds a URL's content through its identity could record the URL itself,
    but writing a URL row into a large catalog costs as much as hundreds of lookups (an
    insert into each index of ``media_urls``, at a random page), and a writer thread that
    wrote while lookups run would still halve them (the database's and the interpreter's
    time are shared). What is held here is only a shortcut and a fresher URL for repairs
    (the identity finds the content again), so it waits: the writer records it once no URL
    has come for :data:`QUIET` seconds, in batches of :data:`BATCH` (going back to waiting
    as soon as lookups resume), and :meth:`close` and :meth:`flush` record what is left.
    At most :data:`LIMIT` URLs are held; more are let go (their next lookup offers them
    again). A write that fails is logged, never raised into a lookup.
    """

    def __init__(
        self, record: Record, *, batch: int = BATCH, quiet: float = QUIET, limit: int = LIMIT
    ) -> None:
        self._record = record
        self._batch = batch
        self._quiet = quiet
        self._limit = limit
        self._changed = threading.Condition(threading.Lock())
        self._held: dict[str, tuple[str, Identity]] = {}  # URL -> (md5, its identity)
        self._last_add = 0.0  # time.monotonic() of the last URL handed over
        self._writer: threading.Thread | None = None
        self._closing = False
        self._write_lock = threading.Lock()  # one batch written at a time

    def add(self, md5: str, url: str, found: Identity) -> None:
        """Hold ``url`` (found by the identity ``found``) to record for ``md5``; its row is
        made by the writer, off the lookup's path."""
        with self._changed:
            if self._closing or len(self._held) >= self._limit:
                return
            self._held.setdefault(url, (md5, found))
            self._last_add = time.monotonic()
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._run, name="mediastore-urls", daemon=True
                )
                self._writer.start()
            elif len(self._held) == 1:
                self._changed.notify()  # the writer sleeps until something is held

    def flush(self) -> None:
        """Write what is held now, in this thread, after a batch the writer is writing: a
        read that follows sees every URL handed over before it."""
        with self._write_lock:
            with self._changed:
                held, self._held = self._held, {}
            self._write_unlocked(held)

    def close(self) -> None:
        """Write what is held and stop the writer."""
        with self._changed:
            self._closing = True
            writer = self._writer
            self._changed.notify()
        if writer is not None:
            writer.join()
        self.flush()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._closing and not self._quiet_now():
                    self._changed.wait(self._wait_time())
                if self._closing:
                    return  # close() writes what is left, in its own thread
                batch = dict(list(self._held.items())[: self._batch])
                for url in batch:
                    del self._held[url]
            self._write(batch)

    def _quiet_now(self) -> bool:
        """Something is held, and no URL came for QUIET seconds (the lock is held)."""
        return bool(self._held) and time.monotonic() - self._last_add >= self._quiet

    def _wait_time(self) -> float | None:
        """How long to sleep before looking again (None: until a URL comes)."""
        if not self._held:
            return None
        return max(0.0, self._quiet - (time.monotonic() - self._last_add))

    def _write(self, held: dict[str, tuple[str, Identity]]) -> None:
        with self._write_lock:
            self._write_unlocked(held)

    def _write_unlocked(self, held: dict[str, tuple[str, Identity]]) -> None:
        if not held:
            return
        entries = [
            (
                md5,
                UrlInfo(
                    url=url,
                    identity=found.digest,
                    variant=found.variant,
                    rank=found.rank,
                    expires_at=found.expires_at,
                ),
            )
            for url, (md5, found) in held.items()
        ]
        try:
            self._record(entries, datetime.now(UTC))
        except MediaStoreError as exc:
            log.warning("%d URL(s) found by identity not recorded: %s", len(held), exc)
