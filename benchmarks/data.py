"""The data sets the cases run on, made from scratch in the work directory.

Everything is deterministic (seeded), so two runs of the benchmark time the same bytes.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import sqlite3
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mediastore import MediaStore
from mediastore.identity import Identities
from mediastore.testing import mp4_header, noisy_jpeg

from .config import MIB, STORE_OPTIONS

#: Sizes of the generated JPEGs: uniform between these bounds (bytes, approximately).
IMAGE_MIN_BYTES = 20_000
IMAGE_MAX_BYTES = 200_000
#: Bytes per pixel of a quality-90 JPEG of random pixels (measured with Pillow).
_JPEG_BYTES_PER_PIXEL = 0.93
#: Seeds of the three image sets, far apart so no two files are the same.
SEED_DOWNLOAD, SEED_VERIFY, SEED_LEGACY = 1_000_000, 2_000_000, 3_000_000


def md5_hex(text: str) -> str:
    """Lowercase hex MD5 of a string's UTF-8 bytes (the legacy cache's file names)."""
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


# --- the "video" -------------------------------------------------------------------------------
def write_video(path: Path, payload: int) -> int:
    """A real MP4 structure (``ftyp``, a ``moov`` with a video track, the ``mdat`` header) around
    ``payload`` random bytes of sample data, written 1 MiB at a time.

    Returns:
        The file's size in bytes.
    """
    rng = random.Random(42)
    with open(path, "wb") as fh:
        fh.write(mp4_header(payload))
        left = payload
        while left:
            piece = min(MIB, left)
            fh.write(rng.randbytes(piece))
            left -= piece
        fh.flush()
        os.fsync(fh.fileno())
    return path.stat().st_size


# --- JPEGs -------------------------------------------------------------------------------------
def jpeg_for_seed(seed: int) -> bytes:
    """A distinct JPEG of random pixels, 20-200 KB, its size drawn from ``seed``."""
    target = random.Random(seed).randint(IMAGE_MIN_BYTES, IMAGE_MAX_BYTES)
    height = max(16, int(math.sqrt(target / _JPEG_BYTES_PER_PIXEL * 3 / 4)))
    width = height * 4 // 3
    return noisy_jpeg((width, height), seed)


def _write_jpeg_batch(batch: tuple[str, list[tuple[str, int]]]) -> int:
    """Write ``(name, seed)`` JPEGs into a directory (runs in a pool process)."""
    directory, items = batch
    total = 0
    for name, seed in items:
        data = jpeg_for_seed(seed)
        with open(os.path.join(directory, name), "wb") as fh:
            fh.write(data)
        total += len(data)
    return total


def write_jpegs(directory: Path, named_seeds: Sequence[tuple[str, int]]) -> int:
    """Write one JPEG per ``(file name, seed)`` into ``directory``, on every core.

    Returns:
        Bytes written in all.
    """
    directory.mkdir(parents=True, exist_ok=True)
    workers = os.cpu_count() or 1
    step = max(1, math.ceil(len(named_seeds) / (workers * 8)))
    batches = [
        (str(directory), list(named_seeds[i : i + step])) for i in range(0, len(named_seeds), step)
    ]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        total = sum(pool.map(_write_jpeg_batch, batches))
    os.sync()  # the timed runs must not pay for writing back the inputs
    return total


def download_image_names(count: int) -> list[str]:
    """File names (under ``data/images``) of the images the download cases fetch."""
    return [f"img-{i:05d}.jpg" for i in range(count)]


def write_download_images(directory: Path, count: int) -> int:
    """The images served for the parallel download cases."""
    names = download_image_names(count)
    return write_jpegs(directory, [(name, SEED_DOWNLOAD + i) for i, name in enumerate(names)])


def legacy_url(i: int) -> str:
    """The URL the legacy cache's ``i``-th file was downloaded from."""
    return f"https://cdn.example/legacy/{i}.jpg"


def write_legacy_cache(directory: Path, count: int) -> int:
    """The legacy cache: ``<md5 of the URL>.jpg`` files."""
    return write_jpegs(
        directory, [(f"{md5_hex(legacy_url(i))}.jpg", SEED_LEGACY + i) for i in range(count)]
    )


def build_verify_store(source: Path, store_root: Path, count: int) -> int:
    """A store holding ``count`` distinct JPEGs (imported from ``source``), for ``verify()``.

    Returns:
        Bytes stored.

    Raises:
        RuntimeError: not every file was imported.
    """
    total = write_jpegs(
        source, [(f"{md5_hex(f'verify-{i}')}.jpg", SEED_VERIFY + i) for i in range(count)]
    )
    with MediaStore(store_root, **STORE_OPTIONS) as store:
        report = store.import_legacy(source)
    if report.imported != count:
        raise RuntimeError(f"verify store: {report.imported} of {count} files imported")
    os.sync()
    return total


# --- the big catalog ---------------------------------------------------------------------------
#: (media_type, mime_type, extension, smallest size, largest size) in proportion 16:3:1.
_KINDS = (
    *[("image", "image/jpeg", "jpg", 20_000, 200_000)] * 10,
    *[("image", "image/png", "png", 20_000, 400_000)] * 3,
    *[("image", "image/webp", "webp", 10_000, 150_000)] * 2,
    ("image", "image/gif", "gif", 5_000, 2_000_000),
    *[("video", "video/mp4", "mp4", 1_000_000, 200_000_000)] * 2,
    ("video", "video/webm", "webm", 1_000_000, 100_000_000),
    ("document", "application/pdf", "pdf", 20_000, 5_000_000),
)
#: Every this-many URLs, one points at the media of an earlier URL (dedup shows in stats).
_SHARED_EVERY = 20
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def catalog_url(i: int, signature: str = "s") -> str:
    """The ``i``-th URL of the big catalog: a signed CDN URL of the shape the built-in LinkedIn
    rule knows, so that a lookup with another ``signature`` is a rotated one."""
    return (
        f"https://media.licdn.com/dms/image/v2/D4E22AQ{i:011d}/feedshare-shrink_800/"
        f"feedshare-shrink_800/0/1700000000000?e=2147483647&v=beta&t={signature}{i}"
    )


def catalog_media_rows(rows: int) -> Iterator[tuple[object, ...]]:
    rng = random.Random(7)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for i in range(rows):
        media_type, mime, ext, low, high = _KINDS[i % len(_KINDS)]
        created = start + timedelta(seconds=i * 7)
        verified = (
            (created + timedelta(days=rng.randint(1, 60))).strftime(_TIME_FORMAT) if i % 2 else None
        )
        image = media_type == "image"
        yield (
            md5_hex(f"media-{i}"),
            hashlib.sha256(f"media-{i}".encode()).hexdigest(),
            media_type,
            mime,
            ext,
            rng.randint(low, high),
            rng.randint(100, 4000) if image else None,
            rng.randint(100, 3000) if image else None,
            created.strftime(_TIME_FORMAT),
            verified,
            "ok",
        )


def catalog_url_rows(rows: int) -> Iterator[tuple[object, ...]]:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rules = Identities()
    for i in range(rows):
        # 1 in 20 URLs shares the content of the URL before it
        media = i - 1 if i % _SHARED_EVERY == _SHARED_EVERY - 1 else i
        url = catalog_url(i)
        seen = (start + timedelta(seconds=i * 7)).strftime(_TIME_FORMAT)
        key = hashlib.sha256(url.encode()).hexdigest()
        found = rules.of(url)
        assert found is not None, url
        identity = (found.digest, found.variant, found.rank)
        yield (url, key, md5_hex(url), "url", md5_hex(f"media-{media}"), seen, *identity)


@contextmanager
def bulk_load(db: Path, *, analyze: bool = False) -> Iterator[sqlite3.Connection]:
    """A connection to a store's SQLite catalog inside one transaction for a one-off bulk
    load: no WAL copy of every page, no fsync, a cache that holds it all. Committed (then
    ANALYZEd if asked) and put back in WAL mode at the end."""
    con = sqlite3.connect(db, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode = DELETE")
        con.execute("PRAGMA synchronous = OFF")
        con.execute("PRAGMA cache_size = -1048576")
        con.execute("BEGIN")
        yield con
        con.execute("COMMIT")
        if analyze:
            con.execute("ANALYZE")
        con.execute("PRAGMA journal_mode = WAL")
    finally:
        con.close()


def build_catalog(store_root: Path, rows: int) -> None:
    """A store whose catalog has ``rows`` media rows and ``rows`` URL rows.

    The store creates the schema (Alembic); the rows are then bulk inserted with sqlite3
    ``executemany`` in one transaction, and the result is checked through the store.

    Raises:
        RuntimeError: the store does not see what was inserted.
    """
    MediaStore(store_root, **STORE_OPTIONS).close()
    with bulk_load(store_root / "catalog.sqlite3") as con:
        con.executemany(
            "INSERT INTO media (md5, sha256, media_type, mime_type, extension, size, width, "
            "height, created_at, last_verified_at, status) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            sorted(catalog_media_rows(rows)),
        )
        con.executemany(
            "INSERT INTO media_urls (url, url_key, url_md5, source, md5, first_seen_at, "
            "identity, variant, variant_rank) VALUES (?,?,?,?,?,?,?,?,?)",
            catalog_url_rows(rows),
        )
    os.sync()
    with MediaStore(store_root, **STORE_OPTIONS) as store:
        stats = store.stats()
        found = store.get_by_url(catalog_url(rows - 1))
    if stats.total_files != rows or stats.total_urls != rows or found is None:
        raise RuntimeError(
            f"catalog build: store sees {stats.total_files} media, {stats.total_urls} URLs"
        )


def lookup_sample(rows: int, count: int, signature: str = "s") -> list[str]:
    """``count`` existing URLs of the big catalog, in random order (repeats if count > rows),
    signed with ``signature`` (another one than the catalog's: rotated URLs of its assets)."""
    rng = random.Random(11)
    picks: list[int] = []
    while len(picks) < count:
        picks.extend(rng.sample(range(rows), min(rows, count - len(picks))))
    return [catalog_url(i, signature) for i in picks]


def write_lines(path: Path, lines: Sequence[str]) -> Path:
    """Write one string per line (URL lists handed to worker processes)."""
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path
