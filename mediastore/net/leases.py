"""One download at a time of the bytes an asset's URLs name, across processes and hosts.

Two importers that meet rotated URLs of one picture at once would each miss the catalog
and each download it. Before downloading a URL an identity rule covers, a downloader takes
a lease on the URL's identity and variant in the catalog (``fetch_leases``); one that finds
the lease held waits for it to end and looks the URL up again, which then finds the file
the holder stored. A lease ends when its download is recorded or has failed, or after
:data:`LEASE_SECONDS` by the database's clock (its holder died): a download that takes
longer may be started a second time, which costs a request, never a wrong answer.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable

from ..catalog import Catalog
from ..errors import MediaStoreError
from ..identity import Identity
from ..records import MediaRecord

log = logging.getLogger(__name__)

#: Seconds a lease holds unless its download ends first.
LEASE_SECONDS = 60
#: Seconds between looks at a lease held elsewhere: from the first to the last.
POLL_FIRST, POLL_MOST = 0.05, 0.5


def lease_key(found: Identity) -> str:
    """The lease of the bytes a URL of this identity and variant names."""
    return hashlib.sha256(f"{found.digest}/{found.variant or ''}".encode()).hexdigest()


class Lease:
    """A lease this downloader holds (or a null one, for a URL that needs none)."""

    def __init__(self, catalog: Catalog | None = None, key: str = "", token: str = "") -> None:
        self._catalog = catalog
        self._key = key
        self._token = token

    def release(self) -> None:
        """End the lease (once; a failure only leaves it to run out)."""
        catalog, self._catalog = self._catalog, None
        if catalog is None:
            return
        try:
            catalog.drop_lease(self._key, self._token)
        except MediaStoreError as exc:
            log.warning("download lease not released (it runs out by itself): %s", exc)


def acquire(
    catalog: Catalog,
    key: str,
    lookup: Callable[[], MediaRecord | None],
    check: Callable[[], None],
) -> Lease | MediaRecord:
    """The lease ``key``, or the record ``lookup`` finds once another holder's lease ended.

    ``check`` is called while waiting (it raises to give up: a cancelled batch).
    """
    token = uuid.uuid4().hex
    while not catalog.take_lease(key, token, LEASE_SECONDS):
        pause = POLL_FIRST
        while catalog.lease_held(key):
            check()
            time.sleep(pause)
            pause = min(POLL_MOST, pause * 2)
        found = lookup()
        if found is not None:
            return found
    return Lease(catalog, key, token)
