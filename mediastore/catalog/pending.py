"""URLs that lookups found by identity, recorded by a writer thread rather than by the lookup."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from ..errors import MediaStoreError
from ..identity import Identity
from .rows import UrlInfo

log = logging.getLogger(__name__)

#: URLs written in one transaction, at most.
BATCH = 256
#: Seconds a URL waits at most before the writer records it.
DELAY = 1.0
#: URLs held at most; more are not held until the writer has caught up.
LIMIT = 8192

Record = Callable[[Sequence[tuple[str, UrlInfo]], datetime], None]


class PendingUrls:
    """URLs to record for stored content, written in batches by a thread of their own.

    A lookup that finds a URL's content through its identity could record the URL itself,
    but writing a URL row into a large catalog costs as much as hundreds of lookups (an
    insert into each index of ``media_urls``, at a random page). What is held here is only
    a shortcut and a fresher URL for repairs (the identity finds the content again), so
    lookups hand it over and go on: a writer thread records it in batches of :data:`BATCH`,
    :data:`DELAY` seconds after the first at the latest. When the writer falls behind by
    :data:`LIMIT` URLs, further ones are let go (their next lookup offers them again).
    :meth:`close` writes what is held. A write that fails is logged, never raised into a
    lookup.
    """

    def __init__(
        self, record: Record, *, batch: int = BATCH, delay: float = DELAY, limit: int = LIMIT
    ) -> None:
        self._record = record
        self._batch = batch
        self._delay = delay
        self._limit = limit
        self._changed = threading.Condition(threading.Lock())
        self._held: dict[str, tuple[str, Identity]] = {}  # URL -> (md5, its identity)
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
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._run, name="mediastore-urls", daemon=True
                )
                self._writer.start()
            if len(self._held) >= self._batch:
                self._changed.notify()

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
                if not self._held and not self._closing:
                    self._changed.wait()
                if len(self._held) < self._batch and not self._closing:
                    self._changed.wait(self._delay)
                held, self._held = self._held, {}
                closing = self._closing
            self._write(held)
            if closing:
                return

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
