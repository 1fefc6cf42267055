"""Verification: re-hash stored files against the catalog, quarantine what fails.

Files are hashed on a few threads (hashlib and file reads release the GIL, so two cores
hash two files at once) and outcomes are written back in batches of one statement each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from . import maintenance
from .catalog import MediaRow
from .errors import InvalidInputError, MediaNotFoundError, StorageError
from .hashing import md5_of_file, normalize_md5
from .records import STATUS_CORRUPT, STATUS_MISSING, STATUS_OK, VerifyReport
from .sniff import BY_EXTENSION

if TYPE_CHECKING:
    from .store import MediaStore

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
#: Files hashed at once.
VERIFY_THREADS = 3
#: Outcomes written back per transaction.
STATUS_BATCH = 1000
_STATUS = {"ok": STATUS_OK, "missing": STATUS_MISSING, "corrupt": STATUS_CORRUPT}


def select_rows(
    store: MediaStore, md5: str | Iterable[str] | None, *, older_than: timedelta | None,
    limit: int | None,
) -> list[MediaRow]:  # fmt: skip
    """The rows to verify: the md5s given (all must exist), else by age from the catalog."""
    if limit is not None and limit < 0:
        raise InvalidInputError(f"limit must be >= 0, got {limit}")
    if md5 is None:
        since = datetime.now(UTC) - older_than if older_than is not None else None
        targets = store._catalog.iter_md5s(verified_before=since, limit=limit)
    else:
        targets = [normalize_md5(md5)] if isinstance(md5, str) else [normalize_md5(m) for m in md5]
    rows = store._catalog.by_md5_many(targets)
    unknown = [m for m in targets if m not in rows]
    if unknown:
        raise MediaNotFoundError(f"no media with md5 {', '.join(unknown[:5])}")
    return [rows[m] for m in targets]


def verify(
    store: MediaStore, rows: Sequence[MediaRow], *, progress: Progress | None = None,
    repair: bool = False, timeout: float,
) -> VerifyReport:  # fmt: skip
    """Check each row's file; record ok (with the time), missing or corrupt (quarantined)."""
    report = VerifyReport()
    pending: list[tuple[str, str, datetime | None]] = []
    with ThreadPoolExecutor(max_workers=VERIFY_THREADS) as pool:
        outcomes = pool.map(lambda row: _check(store, row), rows)
        for done, (row, outcome) in enumerate(zip(rows, outcomes, strict=True), 1):
            getattr(report, outcome).append(row.md5)
            when = datetime.now(UTC) if outcome == "ok" else None
            pending.append((row.md5, _STATUS[outcome], when))
            if len(pending) >= STATUS_BATCH:
                store._catalog.set_status(pending)
                pending = []
            if progress is not None:
                progress(done, len(rows))
    store._catalog.set_status(pending)
    if repair:
        for damaged in report.missing + report.corrupt:
            reason = maintenance.repair(store, damaged, timeout=timeout)
            if reason is None:
                report.repaired.append(damaged)
            else:
                report.unrepaired[damaged] = reason
    return report


def _check(store: MediaStore, row: MediaRow) -> str:
    """'ok', 'missing' or 'corrupt' (the file is then moved to quarantine)."""
    kind = BY_EXTENSION[row.extension]
    path = store._blobs.path(kind, row.md5)
    try:
        intact = path.stat().st_size == row.size and md5_of_file(path) == row.md5
    except FileNotFoundError:
        log.warning("file of %s is missing", row.md5)
        return "missing"
    except OSError as exc:
        raise StorageError(f"reading {path} failed: {exc.strerror or exc}") from exc
    if intact:
        return "ok"
    moved = store._blobs.quarantine(kind, row.md5)
    log.warning("file of %s is corrupt; moved to %s", row.md5, moved)
    return "corrupt"
