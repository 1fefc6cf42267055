"""Sizes of a benchmark run and the layout of its work directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 1 << 20
GIB = 1 << 30

#: Options every benchmarked store is opened with (the brief's settings).
STORE_OPTIONS: dict[str, Any] = {
    "max_file_size": 2 << 30,
    "allow_private_networks": True,
    "per_host": 16,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Scale:
    """How much data each case works on, and how often it is timed.

    Attributes:
        video_bytes: Random bytes after the MP4 header of the "video" (ingest and download).
        images: JPEGs of 20-200 KB served for the parallel download cases.
        catalog_rows: Media rows (and URL rows) of the catalog for lookups and stats.
        lookups: Existing URLs looked up per timed run.
        stats_calls: ``stats()`` calls per timed run.
        verify_files: Files in the store that ``verify()`` re-hashes.
        legacy_files: Files of the legacy cache that ``import_legacy`` imports.
        rss_small: URLs of the smaller ``iter_fetch`` whose peak RSS is the baseline.
        rss_large: URLs of the larger ``iter_fetch`` whose peak RSS must not grow with them.
        runs: Timed runs per side; the median is reported.
    """

    video_bytes: int
    images: int
    catalog_rows: int
    lookups: int
    stats_calls: int
    verify_files: int
    legacy_files: int
    rss_small: int
    rss_large: int
    runs: int


FULL = Scale(
    video_bytes=GIB,
    images=2_000,
    catalog_rows=1_000_000,
    lookups=20_000,
    stats_calls=3,
    verify_files=5_000,
    legacy_files=20_000,
    rss_small=10_000,
    rss_large=200_000,
    runs=3,
)

QUICK = Scale(
    video_bytes=64 * MIB,
    images=200,
    catalog_rows=20_000,
    lookups=20_000,
    stats_calls=3,
    verify_files=500,
    legacy_files=2_000,
    # a smoke run: 20,000 URLs take ~30 s here (200,000 take ~5 min, at ~1.5 ms per URL)
    rss_small=2_000,
    rss_large=20_000,
    runs=1,
)


class Workdir:
    """Paths inside one benchmark's fresh work directory.

    ``data/`` holds the inputs (and is the HTTP server's document root); ``runs/`` gets a
    fresh directory for every timed run, since deleting many files slows the disk down for
    the runs after (measured on these VMs): everything is removed only at the end.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.runs = root / "runs"
        self.state = root / "state"
        for directory in (self.data, self.runs, self.state):
            directory.mkdir(parents=True, exist_ok=True)

    @property
    def video(self) -> Path:
        """The 1 GiB (64 MiB with ``--quick``) "video" file."""
        return self.data / "video.mp4"

    @property
    def images(self) -> Path:
        """The JPEGs served to the parallel download cases."""
        return self.data / "images"

    @property
    def catalog_store(self) -> Path:
        """Store root whose catalog holds ``catalog_rows`` rows (lookups, stats)."""
        return self.state / "catalog-store"

    @property
    def verify_source(self) -> Path:
        """The files that are imported into the store ``verify()`` checks."""
        return self.state / "verify-source"

    @property
    def verify_store(self) -> Path:
        """Store root holding ``verify_files`` files."""
        return self.state / "verify-store"

    @property
    def legacy(self) -> Path:
        """The legacy cache: ``<md5 of the URL>.jpg`` files."""
        return self.state / "legacy"

    def run_dir(self, name: str) -> Path:
        """A new, empty directory for one timed run (the name must be unique)."""
        path = self.runs / name
        path.mkdir(parents=True, exist_ok=False)
        return path
