"""The catalog knows its blob store: a store id in the catalog, the same id as a marker in the
blob store that holds its files.

Several roots may share one catalog (each host its own staging area), and a root's blob
location defaults to the root itself: a second root opened on a shared catalog without
``--blobs`` sees a location holding none of the catalog's files. Without the marker, a
``verify`` there would mark every row of the shared catalog missing. With it:

- a location whose marker holds the catalog's id is the store's: everything is allowed;
- a catalog that is new (no rows, no recorded location) opened on a location with a marker
  takes that marker's id over: a lost catalog made again by ``reindex``;
- a location without a marker is claimed (the marker written, its URL recorded in the
  catalog) when the catalog has never recorded another location, or recorded this one, and
  either has no rows or finds some of its files here: that is how a new store, and an
  existing store on its first open after the upgrade, get their marker;
- anything else (a marker of another store; no marker, and none of the files, or another
  recorded location) is foreign: the store opens, lookups and adds work, but verify, gc,
  reindex and migrate-store refuse with one line naming both locations, until
  :func:`claim` is asked for deliberately (``mediastore db claim-blobs``, after moving the
  files by hand); ``migrate-store`` moves the marker itself when it finishes.
"""

from __future__ import annotations

import json
import logging

from .blobs.base import BlobStore
from .catalog import Catalog
from .errors import BlobStoreMismatchError
from .lifecycle import ref_of

log = logging.getLogger(__name__)

#: Rows whose files are looked for when a location without a marker is to be claimed.
SAMPLE_ROWS = 16


def marker_bytes(store_id: str, catalog_where: str) -> bytes:
    """The marker's content: the store id, and where its catalog is (for people)."""
    return json.dumps({"store_id": store_id, "catalog": catalog_where}).encode() + b"\n"


def marker_id(data: bytes | None) -> str | None:
    """The store id a marker names ("" for a marker that cannot be read as one)."""
    if data is None:
        return None
    try:
        found = json.loads(data)
    except ValueError:
        return ""
    store_id = found.get("store_id") if isinstance(found, dict) else None
    return store_id if isinstance(store_id, str) else ""


def check(catalog: Catalog, blobs: BlobStore, blob_url: str, *, read_only: bool) -> str | None:
    """Claim ``blobs`` for the catalog when it is safe to (see the module doc).

    Returns:
        None when the location is the store's; else the one-line reason it is not.
    """
    info = catalog.store_info()
    store_id, recorded = info["store_id"], info.get("blob_url")
    found = marker_id(blobs.read_marker())
    if found == store_id and recorded not in (None, blob_url):
        if catalog.finished_move(blob_url, recorded) is not None:
            # the source of a finished move whose marker a crash left behind
            if not read_only:
                blobs.delete_marker()
            found = None
        elif not read_only:
            catalog.set_store_info("blob_url", blob_url)  # the store was moved whole
    if found == store_id:
        return None
    if found and recorded is None and not catalog.some_live_rows(1):
        # a new catalog on a store's files (the old catalog lost): it takes their id over
        if not read_only:
            catalog.set_store_info("store_id", found)
            catalog.set_store_info("blob_url", blob_url)
        return None
    if found is None and recorded in (None, blob_url) and _holds_its_files(catalog, blobs):
        if not read_only:
            claim(catalog, blobs, blob_url)
        return None
    if found is None:
        what = f"{blob_url} holds no marker and none of its files"
        if recorded not in (None, blob_url):
            what = f"{blob_url} holds no marker"
    else:
        what = f"{blob_url} belongs to another store ({found or 'an unreadable marker'})"
    return (
        f"the catalog {catalog.where} keeps its files at {recorded or 'another location'}; "
        f"{what}. Refusing to change anything there: open the store with the location of "
        "its files, or, if they were moved here, run `mediastore db claim-blobs`"
    )


def claim(catalog: Catalog, blobs: BlobStore, blob_url: str) -> None:
    """Make ``blobs`` the catalog's blob store: write the marker, record the location."""
    store_id = catalog.store_info()["store_id"]
    blobs.write_marker(marker_bytes(store_id, catalog.where))
    catalog.set_store_info("blob_url", blob_url)
    log.info("blob store %s marked as the files of store %s", blob_url, store_id)


def refuse(problem: str | None, action: str) -> None:
    """Raise for ``action`` when the location is not the store's.

    Raises:
        BlobStoreMismatchError: ``problem`` is set.
    """
    if problem is not None:
        raise BlobStoreMismatchError(f"{action}: {problem}")


def _holds_its_files(catalog: Catalog, blobs: BlobStore) -> bool:
    rows = catalog.some_live_rows(SAMPLE_ROWS)
    return not rows or any(blobs.stat(ref_of(row)) is not None for row in rows)
