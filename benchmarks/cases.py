"""The cases: what mediastore runs, what it is compared with, and the target ratio.

Cases that share their mediastore side (the same ``add_file``, ``fetch`` or ``fetch_many``
compared with two references) form a *group*: each timed run of a group runs the mediastore
side, then each selected reference, every one after ``sync`` and a warm page cache, so the
sides alternate and share the machine's mood of the moment.

A reference may be the slower of several commands (:class:`Slowest`), each timed in every
run: the ingest case compares ``add_file`` with ``min(md5sum, cp && sync)``, since the VM's
disk throttles sustained writes and whichever of hashing and writing is the limit changes
during a run. A *paired* case takes its ratio per run (mediastore against the reference
timed right after it, on the same disk state) and reports the median of those ratios.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from . import data
from .config import Scale, Workdir
from .measure import (
    Measurement,
    files_in,
    median,
    run_worker,
    settle,
    shell,
    time_batched,
    time_command,
    warm,
)
from .servers import Server, serve, server_stats

Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Unit:
    """How a side's amount per second is shown: bytes as MB/s, items as items/s."""

    name: str
    divisor: float = 1.0


MB_S = Unit("MB/s", 1e6)
FILES_S = Unit("files/s")
LOOKUPS_S = Unit("lookups/s")
CALLS_S = Unit("calls/s")


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseSpec:
    """One row of the results: mediastore against one reference.

    ``title``, ``mediastore`` and ``reference`` may use ``{video}``, ``{images}``, ``{rows}``,
    ``{lookups}``, ``{verify}``, ``{legacy}``, ``{rss_small}`` and ``{rss_large}``, filled in
    from the run's :class:`~benchmarks.config.Scale`.
    """

    key: str
    group: str
    title: str
    mediastore: str
    reference: str
    target: float | None  # None: the figure is reported, not held to a ratio
    unit: Unit
    rss_limit_mb: float | None = None
    #: the ratio is the median of the per-run ratios, not the ratio of the two medians
    paired: bool = False

    def describe(self, scale: Scale) -> str:
        """The title with this run's sizes."""
        return fill(self.title, scale)


def fill(text: str, scale: Scale) -> str:
    """``text`` with ``{video}``, ``{images}``, ``{rows}``... replaced by this run's sizes."""
    video = scale.video_bytes
    return text.format(
        video=f"{video >> 30} GiB" if video >= 1 << 30 else f"{video >> 20} MiB",
        images=f"{scale.images:,}",
        rows=f"{scale.catalog_rows:,}",
        lookups=f"{scale.lookups:,}",
        verify=f"{scale.verify_files:,}",
        legacy=f"{scale.legacy_files:,}",
        rss_small=f"{scale.rss_small:,}",
        rss_large=f"{scale.rss_large:,}",
    )


#: The network cases (fixed sizes: what they show does not depend on the scale).
LATENCY_IMAGES = 300
LATENCY_S = 0.05
RATE_IMAGES = 120
RATE_MAX_IN_FLIGHT = 2

#: Groups timed fewer times than ``--runs`` asks. rss: a peak RSS is the maximum over one
#: run, not a rate to take the median of, and one run of 200,000 URLs takes ~5 minutes here.
MAX_RUNS: dict[str, int] = {"rss": 1}


def group_runs(group: str, runs: int) -> int:
    """How many timed runs ``group`` gets when ``runs`` are asked for."""
    return min(runs, MAX_RUNS.get(group, runs))


CASES: tuple[CaseSpec, ...] = (
    CaseSpec(
        key="ingest-md5sum", group="ingest", title="ingest a {video} video file",
        mediastore="add_file (fresh store each run)",
        reference="the slower of `cp FILE DEST && sync` and `md5sum FILE`, both timed right "
        "after add_file in each pair",
        target=0.9, unit=MB_S, rss_limit_mb=100, paired=True,
    ),
    CaseSpec(
        key="ingest-script", group="ingest", title="ingest the same file",
        mediastore="add_file (fresh store each run)",
        reference="`cp FILE DEST && md5sum DEST && sha256sum DEST && sync` (the same result "
        "by shell, one step after another), in the same pairs",
        target=2.0, unit=MB_S, rss_limit_mb=100, paired=True,
    ),
    CaseSpec(
        key="download-curl", group="download", title="download {video} over loopback",
        mediastore="fetch (fresh store each run)", reference="`curl -s -o FILE URL && sync`",
        target=0.8, unit=MB_S, rss_limit_mb=100,
    ),
    CaseSpec(
        key="download-tee", group="download", title="download {video} over loopback",
        mediastore="fetch (fresh store each run)",
        reference="`curl -s URL | tee FILE | md5sum`, then `sync`",
        target=1.0, unit=MB_S, rss_limit_mb=100,
    ),
    CaseSpec(
        key="images-seed", group="images", title="download {images} images of 20-200 KB",
        mediastore="fetch_many(urls) on its defaults, fresh store",
        reference="the old script's way: `requests.get` + `ThreadPoolExecutor(5)`, a file per "
        "content MD5, no catalog",
        target=1.0, unit=FILES_S,
    ),
    CaseSpec(
        key="images-curl", group="images", title="download the same {images} images",
        mediastore="fetch_many(urls) on its defaults, fresh store",
        reference="`curl --parallel --parallel-max 16 -s -K CONFIG` (one invocation, all URLs)",
        target=0.15, unit=FILES_S,
    ),
    CaseSpec(
        key="lookup", group="lookup", title="URL lookups on a {rows}-URL catalog",
        mediastore="get_by_url, {lookups} random existing URLs, one thread",
        reference="raw `sqlite3` point lookups (`SELECT ... FROM media_urls JOIN media "
        "WHERE url_key = ?`, the URL's SHA-256 made with hashlib)",
        target=0.75, unit=LOOKUPS_S,
    ),
    CaseSpec(
        key="lookup-mmap", group="lookup", title="the same lookups",
        mediastore="get_by_url, {lookups} random existing URLs, one thread",
        reference="the same raw `sqlite3` lookups on a connection with the store's "
        "`PRAGMA mmap_size` (what the store's own read path is up against)",
        target=None, unit=LOOKUPS_S,
    ),
    CaseSpec(
        key="lookup-rotated", group="rotated",
        title="lookups of rotated URLs on a {rows}-URL catalog",
        mediastore="get_by_url, {lookups} random assets of the catalog under a signature "
        "never seen (answered by identity; the URLs recorded by the writer thread)",
        reference="raw `sqlite3` point lookups of the catalog's own URLs (one indexed read "
        "each, as in the lookup case)",
        target=0.5, unit=LOOKUPS_S,
    ),
    CaseSpec(
        key="stats", group="stats", title="stats() on {rows} media rows",
        mediastore="stats()",
        reference="Catalog.stats's 2 statements (counters summed) via raw `sqlite3`",
        target=0.5, unit=CALLS_S,
    ),
    CaseSpec(
        key="verify", group="verify", title="verify {verify} files",
        mediastore="verify()", reference="`md5sum` over the same files",
        target=1.0, unit=FILES_S,
    ),
    CaseSpec(
        key="adds-full", group="adds", title="add {images} images from 8 threads",
        mediastore="add_file from 8 threads, one store, fresh each run",
        reference="by hand: hash, temp, fsync, rename, dir fsync, one raw sqlite3 WAL "
        "commit per file with synchronous=FULL, 8 threads",
        target=0.8, unit=FILES_S,
    ),
    CaseSpec(
        key="adds-normal", group="adds", title="add the same images from 8 threads",
        mediastore="add_file from 8 threads, one store, fresh each run",
        reference="the same by hand with synchronous=NORMAL (what FULL costs on this disk)",
        target=None, unit=FILES_S,
    ),
    CaseSpec(
        key="adds-deep", group="deep", title="add {images} images from 8 threads, deep",
        mediastore="add_file from 8 threads with verify_deep (every image decoded at ingest)",
        reference="the same add_file without verify_deep: the ratio is what the deep check "
        "costs per image",
        target=None, unit=FILES_S,
    ),
    CaseSpec(
        key="legacy", group="legacy", title="import {legacy} legacy images",
        mediastore="import_legacy (fresh store each run)",
        reference="`md5sum` over the same files",
        target=0.5, unit=FILES_S,
    ),
    CaseSpec(
        key="legacy-disk", group="legacy", title="import the same legacy images",
        mediastore="import_legacy (fresh store each run)",
        reference="`cp -r DIR DEST && sync`: the same bytes written durably, nothing hashed "
        "or checked (what this disk allows)",
        target=None, unit=FILES_S,
    ),
    CaseSpec(
        key="latency", group="latency",
        title=f"download {LATENCY_IMAGES} images from one host answering each request after "
        f"{LATENCY_S * 1000:.0f} ms",
        mediastore="fetch_many(urls) on its defaults (16 workers, per host 6 growing to 16)",
        reference="the old script's way: `requests.get` + `ThreadPoolExecutor(5)`, a file per "
        "content MD5, no catalog",
        target=2.0, unit=FILES_S,
    ),
    CaseSpec(
        key="ratelimit", group="ratelimit",
        title=f"download {RATE_IMAGES} images from a host that answers 429 + `Retry-After: 1` "
        f"beyond {RATE_MAX_IN_FLIGHT} requests in flight ({LATENCY_S * 1000:.0f} ms each)",
        mediastore="fetch_many(urls) on its defaults; every URL must be stored",
        reference="the old script's way (it fails the URLs answered 429); stored files/s",
        target=None, unit=FILES_S,
    ),
    CaseSpec(
        key="rss", group="rss",
        title="iter_fetch of {rss_large} URLs answering 404 (peak RSS, one run; the "
        "reference side is {rss_small} URLs)",
        mediastore="iter_fetch over a generator of {rss_large} URLs, defaults",
        reference="the same over {rss_small} URLs",
        target=None, unit=Unit("URLs/s"),
    ),
)  # fmt: skip

GROUPS: tuple[str, ...] = tuple(dict.fromkeys(case.group for case in CASES))


def select(only: Sequence[str]) -> list[CaseSpec]:
    """The cases named by ``--only`` (case keys or group names); all when empty.

    Raises:
        ValueError: an unknown name.
    """
    if not only:
        return list(CASES)
    known = {c.key for c in CASES} | set(GROUPS)
    unknown = [name for name in only if name not in known]
    if unknown:
        raise ValueError(
            f"unknown case(s) {', '.join(unknown)}; choose from: {', '.join(sorted(known))}"
        )
    return [c for c in CASES if c.key in only or c.group in only]


# --- results -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class Pair:
    """One run of a paired case: mediastore and the reference timed right after it.

    Attributes:
        mediastore: mediastore's throughput, in the case's unit.
        reference: The reference's throughput (the slower command's, for a :class:`Slowest`).
        ratio: ``mediastore / reference``.
        parts: Each command's throughput when the reference is the slower of several.
        slower: The command that was the slower one (None: a single-command reference).
    """

    mediastore: float
    reference: float
    ratio: float
    parts: dict[str, float]
    slower: str | None


@dataclass(slots=True)
class CaseResult:
    """Every run of one case, and what they add up to."""

    spec: CaseSpec
    title: str
    mediastore: list[Measurement] = field(default_factory=list)
    reference: list[Measurement] = field(default_factory=list)
    bytes_per_item: float | None = None
    error: str | None = None
    #: the short names of the two sides (as in the log), set when the group is built
    mediastore_label: str = "mediastore"
    reference_label: str = "reference"

    def _throughputs(self, runs: list[Measurement]) -> list[float]:
        return [m.amount / m.seconds / self.spec.unit.divisor for m in runs]

    @property
    def mediastore_runs(self) -> list[float]:
        """mediastore's throughput in each run, in the case's unit."""
        return self._throughputs(self.mediastore)

    @property
    def reference_runs(self) -> list[float]:
        """The reference's throughput in each run, in the case's unit."""
        return self._throughputs(self.reference)

    @property
    def mediastore_figure(self) -> float | None:
        """Median throughput of mediastore."""
        return median(self.mediastore_runs) if self.mediastore else None

    @property
    def reference_figure(self) -> float | None:
        """Median throughput of the reference."""
        return median(self.reference_runs) if self.reference else None

    @property
    def pairs(self) -> list[Pair]:
        """The runs side by side (mediastore's ``i``-th run with the reference's ``i``-th)."""
        divisor = self.spec.unit.divisor
        out: list[Pair] = []
        for ms, ref in zip(self.mediastore, self.reference, strict=False):
            ms_rate = ms.amount / ms.seconds / divisor
            ref_rate = ref.amount / ref.seconds / divisor
            parts = {
                label: amount / seconds / divisor
                for label, (seconds, amount) in ref.detail.get("parts", {}).items()
            }
            out.append(
                Pair(
                    mediastore=ms_rate,
                    reference=ref_rate,
                    ratio=ms_rate / ref_rate,
                    parts=parts,
                    slower=ref.detail.get("slower"),
                )
            )
        return out

    @property
    def ratio(self) -> float | None:
        """mediastore throughput / reference throughput: of the medians, or for a paired case
        the median of the per-run ratios."""
        if self.spec.paired:
            pairs = self.pairs
            return median([p.ratio for p in pairs]) if pairs else None
        ms, ref = self.mediastore_figure, self.reference_figure
        return ms / ref if ms is not None and ref else None

    @property
    def passed(self) -> bool:
        """The case ran without error and the ratio reached the target (if it has one)."""
        if self.error is not None or self.ratio is None:
            return False
        return self.spec.target is None or self.ratio >= self.spec.target

    @property
    def peak_rss_mb(self) -> float | None:
        """Largest peak RSS of the mediastore worker over the runs, in MB (10^6 bytes)."""
        peaks = [m.peak_rss_kb for m in self.mediastore if m.peak_rss_kb is not None]
        return max(peaks) * 1024 / 1e6 if peaks else None

    @property
    def rss_ok(self) -> bool | None:
        """Whether the peak RSS stayed under the case's limit (None: no limit)."""
        limit, peak = self.spec.rss_limit_mb, self.peak_rss_mb
        if limit is None or peak is None:
            return None
        return peak < limit


# --- groups ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Side:
    """One side of a group: ``run(i)`` performs the ``i``-th timed run."""

    label: str
    run: Callable[[int], Measurement]


@dataclass(frozen=True, slots=True)
class Slowest:
    """A reference that is the slower of several commands, each timed (after ``sync`` and a
    warm cache, like any side) in every run, in the order given."""

    label: str
    parts: tuple[Side, ...]


@dataclass(frozen=True, slots=True)
class Group:
    """A mediastore side, the references it is compared with (by case key), and its inputs."""

    mediastore: Side
    references: Mapping[str, Side | Slowest]
    inputs: Callable[[], list[Path]]
    bytes_per_item: float | None = None


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise RuntimeError(message)


class Bench:
    """The data, server and work directory every group draws on; data is made on first use."""

    def __init__(
        self,
        workdir: Workdir,
        scale: Scale,
        server: Server | None,
        log: Log,
        *,
        verbose: bool = False,
    ) -> None:
        self.wd = workdir
        self.scale = scale
        self.server = server
        self.log = log
        #: logs every timed command line (``-v``): the way to re-run or profile one side
        self.trace: Log | None = log if verbose else None

    # --- data, made once -----------------------------------------------------------------
    @cached_property
    def video(self) -> Path:
        self.log(f"making the video ({self.scale.video_bytes >> 20} MiB of random bytes)")
        data.write_video(self.wd.video, self.scale.video_bytes)
        return self.wd.video

    @cached_property
    def image_names(self) -> list[str]:
        self.log(f"making {self.scale.images:,} JPEGs of 20-200 KB")
        data.write_download_images(self.wd.images, self.scale.images)
        return data.download_image_names(self.scale.images)

    @cached_property
    def catalog(self) -> Path:
        rows = self.scale.catalog_rows
        self.log(f"building the {rows:,}-row catalog")
        data.build_catalog(self.wd.catalog_store, rows)
        return self.wd.catalog_store

    @cached_property
    def verify_store(self) -> Path:
        self.log(f"making the store of {self.scale.verify_files:,} files to verify")
        data.build_verify_store(
            self.wd.verify_source, self.wd.verify_store, self.scale.verify_files
        )
        return self.wd.verify_store

    @cached_property
    def legacy(self) -> Path:
        self.log(f"making the legacy cache of {self.scale.legacy_files:,} files")
        data.write_legacy_cache(self.wd.legacy, self.scale.legacy_files)
        return self.wd.legacy

    def url(self, relative: str) -> str:
        assert self.server is not None, "download cases need the file server"
        return self.server.url(relative)

    def catalog_files(self) -> list[Path]:
        db = self.catalog / "catalog.sqlite3"
        return [p for p in (db, db.with_name(db.name + "-wal")) if p.exists()]

    # --- groups ----------------------------------------------------------------------------
    def group(self, name: str, keys: set[str]) -> Group:
        """The group ``name`` with the references of the selected case ``keys``."""
        build: dict[str, Callable[[set[str]], Group]] = {
            "ingest": self._ingest,
            "download": self._download,
            "images": self._images,
            "lookup": self._lookup,
            "rotated": self._lookup_rotated,
            "stats": self._stats,
            "verify": self._verify,
            "adds": self._adds,
            "deep": self._deep,
            "legacy": self._legacy,
            "latency": self._latency,
            "ratelimit": self._ratelimit,
            "rss": self._rss,
        }
        return build[name](keys)

    def _ingest(self, keys: set[str]) -> Group:
        video = self.video
        size = video.stat().st_size

        def mediastore(i: int) -> Measurement:
            root = self.wd.run_dir(f"ingest-store-{i}")
            m = run_worker({"op": "add_file", "root": str(root), "path": str(video)}, self.trace)
            _expect(m.amount == size, f"add_file stored {m.amount} of {size} bytes")
            return m

        def md5sum(i: int) -> Measurement:
            return Measurement(time_command(["md5sum", str(video)], trace=self.trace), size)

        def copy(script: str, name: str) -> Callable[[int], Measurement]:
            def run(i: int) -> Measurement:
                dest = self.wd.run_dir(f"ingest-{name}-{i}") / video.name
                seconds = time_command(shell(script, str(video), str(dest)), trace=self.trace)
                _expect(dest.stat().st_size == size, f"{script} copied a short file")
                return Measurement(seconds, size)

            return run

        # cp && sync first: it writes like add_file, right after it, on the same disk state
        slower = Slowest(
            "slower of cp+sync, md5sum",
            (
                Side("cp+sync", copy('cp "$1" "$2" && sync', "cp")),
                Side("md5sum", md5sum),
            ),
        )
        script = copy('cp "$1" "$2" && md5sum "$2" && sha256sum "$2" && sync', "script")
        refs: dict[str, Side | Slowest] = {
            "ingest-md5sum": slower,
            "ingest-script": Side("cp+sums", script),
        }
        return Group(
            Side("add_file", mediastore),
            {k: v for k, v in refs.items() if k in keys},
            lambda: [video],
        )

    def _download(self, keys: set[str]) -> Group:
        video = self.video
        size = video.stat().st_size
        url = self.url(video.name)

        def mediastore(i: int) -> Measurement:
            root = self.wd.run_dir(f"download-store-{i}")
            m = run_worker({"op": "fetch", "root": str(root), "url": url}, self.trace)
            _expect(m.amount == size, f"fetch stored {m.amount} of {size} bytes")
            return m

        def curl(i: int) -> Measurement:
            out = self.wd.run_dir(f"download-curl-{i}") / video.name
            seconds = time_command(
                shell('curl -s -o "$2" "$1" && sync', url, str(out)), trace=self.trace
            )
            _expect(out.stat().st_size == size, "curl -o saved a short file")
            return Measurement(seconds, size)

        def tee(i: int) -> Measurement:
            out = self.wd.run_dir(f"download-tee-{i}") / video.name
            argv = shell('curl -s "$1" | tee "$2" | md5sum && sync', url, str(out))
            seconds = time_command(argv, trace=self.trace)
            _expect(out.stat().st_size == size, "curl | tee saved a short file")
            return Measurement(seconds, size)

        refs = {"download-curl": Side("curl -o", curl), "download-tee": Side("curl|tee", tee)}
        return Group(
            Side("fetch", mediastore),
            {k: v for k, v in refs.items() if k in keys},
            lambda: [video],
        )

    def _images(self, keys: set[str]) -> Group:
        names = self.image_names
        paths = [self.wd.images / name for name in names]
        total = sum(p.stat().st_size for p in paths)
        urls = [self.url(f"{self.wd.images.name}/{name}") for name in names]
        urls_file = data.write_lines(self.wd.state / "image-urls.txt", urls)
        count = len(names)

        def mediastore(i: int) -> Measurement:
            root = self.wd.run_dir(f"images-store-{i}")
            m = run_worker(
                {
                    "op": "fetch_many",
                    "root": str(root),
                    "urls_file": str(urls_file),
                    "defaults": True,
                },
                self.trace,
            )
            _expect(
                m.detail["errors"] == 0,
                f"fetch_many: {m.detail['errors']} failed, first: {m.detail['first_error']}",
            )
            return m

        def seed(i: int) -> Measurement:
            out = self.wd.run_dir(f"images-seed-{i}")
            m = run_worker(
                {
                    "op": "seed_download",
                    "out_dir": str(out),
                    "urls_file": str(urls_file),
                    "max_workers": 5,
                },
                self.trace,
            )
            _expect(len(files_in(out)) == count, "the old script's way saved too few files")
            return m

        def curl(i: int) -> Measurement:
            out = self.wd.run_dir(f"images-curl-{i}")
            config = out.parent / f"images-curl-{i}.cfg"
            config.write_text(
                "".join(
                    f'url = "{u}"\noutput = "{out / n}"\n' for u, n in zip(urls, names, strict=True)
                ),
                encoding="utf-8",
            )
            argv = ["curl", "--parallel", "--parallel-max", "16", "-s", "-K", str(config)]
            seconds = time_command(argv, trace=self.trace)
            saved = files_in(out)
            _expect(
                len(saved) == count and sum(p.stat().st_size for p in saved) == total,
                "curl --parallel saved too few bytes",
            )
            return Measurement(seconds, count)

        refs = {"images-seed": Side("seed", seed), "images-curl": Side("curl -Z", curl)}
        return Group(
            Side("fetch_many", mediastore),
            {k: v for k, v in refs.items() if k in keys},
            lambda: paths,
            bytes_per_item=total / count,
        )

    def _lookup(self, keys: set[str]) -> Group:
        root = self.catalog
        db = root / "catalog.sqlite3"
        sample = data.lookup_sample(self.scale.catalog_rows, self.scale.lookups)
        urls_file = data.write_lines(self.wd.state / "lookup-urls.txt", sample)

        def mediastore(i: int) -> Measurement:
            m = run_worker(
                {"op": "get_by_url", "root": str(root), "urls_file": str(urls_file)}, self.trace
            )
            _expect(m.detail["errors"] == 0, f"get_by_url missed {m.detail['errors']} URLs")
            return m

        def raw(mmap: bool) -> Callable[[int], Measurement]:
            def run(i: int) -> Measurement:
                m = run_worker(
                    {
                        "op": "sqlite_lookup",
                        "db": str(db),
                        "urls_file": str(urls_file),
                        "mmap": mmap,
                    },
                    self.trace,
                )
                _expect(m.detail["errors"] == 0, f"sqlite3 missed {m.detail['errors']} URLs")
                return m

            return run

        refs = {
            "lookup": Side("sqlite3", raw(False)),
            "lookup-mmap": Side("sqlite3 + mmap", raw(True)),
        }
        return Group(
            Side("get_by_url", mediastore),
            {k: v for k, v in refs.items() if k in keys},
            self.catalog_files,
        )

    def _lookup_rotated(self, keys: set[str]) -> Group:
        root = self.catalog
        db = root / "catalog.sqlite3"
        rows, count = self.scale.catalog_rows, self.scale.lookups
        exact = data.write_lines(self.wd.state / "lookup-urls.txt", data.lookup_sample(rows, count))

        def mediastore(i: int) -> Measurement:
            # a signature of its own per run: each run's URLs are new to the catalog
            rotated = data.lookup_sample(rows, count, signature=f"run{i}-")
            urls_file = data.write_lines(self.wd.state / f"rotated-{i}.txt", rotated)
            m = run_worker(
                {"op": "get_by_url", "root": str(root), "urls_file": str(urls_file)}, self.trace
            )
            _expect(m.detail["errors"] == 0, f"get_by_url missed {m.detail['errors']} URLs")
            return m

        def raw(i: int) -> Measurement:
            m = run_worker(
                {"op": "sqlite_lookup", "db": str(db), "urls_file": str(exact)}, self.trace
            )
            _expect(m.detail["errors"] == 0, f"sqlite3 missed {m.detail['errors']} URLs")
            return m

        refs = {"lookup-rotated": Side("sqlite3", raw)}
        return Group(
            Side("get_by_url", mediastore),
            {k: v for k, v in refs.items() if k in keys},
            self.catalog_files,
        )

    def _stats(self, keys: set[str]) -> Group:
        root = self.catalog
        db = root / "catalog.sqlite3"
        rows = self.scale.catalog_rows
        calls = self.scale.stats_calls

        def mediastore(i: int) -> Measurement:
            m = run_worker({"op": "stats", "root": str(root), "calls": calls}, self.trace)
            _expect(m.detail["total_files"] == rows, f"stats() counted {m.detail['total_files']}")
            return m

        def raw(i: int) -> Measurement:
            m = run_worker({"op": "sqlite_stats", "db": str(db), "calls": calls}, self.trace)
            _expect(m.detail["total_files"] == rows, f"raw SQL counted {m.detail['total_files']}")
            return m

        refs = {"stats": Side("sqlite3", raw)}
        return Group(
            Side("stats", mediastore),
            {k: v for k, v in refs.items() if k in keys},
            self.catalog_files,
        )

    def _verify(self, keys: set[str]) -> Group:
        root = self.verify_store
        images = root / "media" / "images"
        paths = files_in(images)
        count = self.scale.verify_files
        _expect(len(paths) == count, f"the verify store holds {len(paths)} files")
        total = sum(p.stat().st_size for p in paths)
        db = root / "catalog.sqlite3"

        def mediastore(i: int) -> Measurement:
            m = run_worker({"op": "verify", "root": str(root)}, self.trace)
            _expect(m.amount == count and m.detail["errors"] == 0, "verify() found bad files")
            return m

        def md5sum(i: int) -> Measurement:
            return Measurement(
                time_batched(["md5sum"], [p.name for p in paths], cwd=images, trace=self.trace),
                count,
            )

        refs = {"verify": Side("md5sum", md5sum)}
        return Group(
            Side("verify", mediastore),
            {k: v for k, v in refs.items() if k in keys},
            lambda: [*paths, db],
            bytes_per_item=total / count,
        )

    def _adds(self, keys: set[str]) -> Group:
        self.image_names  # noqa: B018 (made on first use)
        directory = self.wd.images
        paths = files_in(directory)
        count = len(paths)
        total = sum(p.stat().st_size for p in paths)

        def mediastore(i: int) -> Measurement:
            root = self.wd.run_dir(f"adds-store-{i}")
            spec = {"op": "add_concurrent", "root": str(root), "directory": str(directory)}
            m = run_worker({**spec, "threads": 8}, self.trace)
            _expect(m.amount == count, f"added {m.amount:.0f} of {count}")
            return m

        def by_hand(synchronous: str) -> Callable[[int], Measurement]:
            def side(i: int) -> Measurement:
                out = self.wd.run_dir(f"adds-{synchronous.lower()}-{i}")
                spec = {"op": "raw_durable_adds", "out_dir": str(out), "directory": str(directory)}
                return run_worker({**spec, "threads": 8, "synchronous": synchronous}, self.trace)

            return side

        refs = {
            "adds-full": Side("by hand, FULL", by_hand("FULL")),
            "adds-normal": Side("by hand, NORMAL", by_hand("NORMAL")),
        }
        return Group(
            Side("add_file x 8 threads", mediastore),
            {k: v for k, v in refs.items() if k in keys},
            lambda: paths,
            bytes_per_item=total / count,
        )

    def _deep(self, keys: set[str]) -> Group:
        self.image_names  # noqa: B018 (made on first use)
        directory = self.wd.images
        paths = files_in(directory)

        def adds(deep: bool) -> Callable[[int], Measurement]:
            def side(i: int) -> Measurement:
                root = self.wd.run_dir(f"deep-{deep}-store-{i}")
                spec = {"op": "add_concurrent", "root": str(root), "directory": str(directory)}
                m = run_worker({**spec, "threads": 8, "deep": deep}, self.trace)
                _expect(m.amount == len(paths), f"added {m.amount:.0f} of {len(paths)}")
                return m

            return side

        refs = {"adds-deep": Side("add_file x 8 threads, not deep", adds(False))}
        return Group(
            Side("add_file x 8 threads, deep", adds(True)),
            {k: v for k, v in refs.items() if k in keys},
            lambda: paths,
        )

    def _legacy(self, keys: set[str]) -> Group:
        directory = self.legacy
        paths = files_in(directory)
        count = self.scale.legacy_files
        total = sum(p.stat().st_size for p in paths)

        def mediastore(i: int) -> Measurement:
            root = self.wd.run_dir(f"legacy-store-{i}")
            m = run_worker(
                {"op": "import_legacy", "root": str(root), "directory": str(directory)}, self.trace
            )
            _expect(m.amount == count, f"import_legacy imported {m.amount:.0f} of {count}")
            return m

        def md5sum(i: int) -> Measurement:
            return Measurement(
                time_batched(["md5sum"], [p.name for p in paths], cwd=directory, trace=self.trace),
                count,
            )

        def copy(i: int) -> Measurement:
            dest = self.wd.run_dir(f"legacy-cp-{i}")
            seconds = time_command(
                shell('cp -r "$1"/. "$2" && sync', str(directory), str(dest)), trace=self.trace
            )
            _expect(len(files_in(dest)) == count, "cp -r copied too few files")
            return Measurement(seconds, count)

        refs = {"legacy": Side("md5sum", md5sum), "legacy-disk": Side("cp -r+sync", copy)}
        return Group(
            Side("import_legacy", mediastore),
            {k: v for k, v in refs.items() if k in keys},
            lambda: paths,
            bytes_per_item=total / count,
        )

    # --- network behaviour: each run gets its own Python server with that behaviour -------
    @cached_property
    def small_jpegs(self) -> Path:
        """Distinct valid JPEGs (a few KB each) for the network cases."""
        from mediastore.testing import noisy_jpeg

        directory = self.wd.data / "net"
        directory.mkdir(exist_ok=True)
        for i in range(max(LATENCY_IMAGES, RATE_IMAGES)):
            (directory / f"{i:05}.jpg").write_bytes(noisy_jpeg((64, 48), seed=i))
        return directory

    def _net_sides(
        self,
        name: str,
        count: int,
        behaviour: list[str],
        *,
        every_url: bool,
    ) -> tuple[Side, Side, Callable[[], list[Path]]]:
        """fetch_many on its defaults and the old script's loop, each run against a fresh server."""
        directory = self.small_jpegs
        paths = sorted(directory.iterdir())[:count]
        rate_limited = "--max-in-flight" in behaviour  # the old script fails the URLs refused

        def urls_file(server: Server, i: int, side: str) -> Path:
            urls = [server.url(f"{directory.name}/{p.name}") for p in paths]
            return data.write_lines(self.wd.state / f"{name}-{side}-{i}.txt", urls)

        def mediastore(i: int) -> Measurement:
            root = self.wd.run_dir(f"{name}-store-{i}")
            with serve(self.wd.data, self.wd.state, "probe.txt", behaviour=behaviour) as server:
                spec = {
                    "op": "fetch_many",
                    "root": str(root),
                    "defaults": True,
                    "urls_file": str(urls_file(server, i, "ms")),
                }
                m = run_worker(spec, self.trace)
                m.detail["server"] = server_stats(server)
            if every_url:
                _expect(
                    m.detail["errors"] == 0,
                    f"fetch_many: {m.detail['errors']} failed, first: {m.detail['first_error']}",
                )
            self.log(
                f"[{name}] fetch_many: {m.amount:.0f} stored in {m.seconds:.2f} s, "
                f"server saw {m.detail['server']}"
            )
            return m

        def seed(i: int) -> Measurement:
            out = self.wd.run_dir(f"{name}-seed-{i}")
            with serve(self.wd.data, self.wd.state, "probe.txt", behaviour=behaviour) as server:
                spec = {
                    "op": "seed_download",
                    "out_dir": str(out),
                    "max_workers": 5,
                    "urls_file": str(urls_file(server, i, "seed")),
                    "tolerate_errors": rate_limited,
                }
                m = run_worker(spec, self.trace)
                m.detail["server"] = server_stats(server)
            _expect(rate_limited or m.amount == count, "the old script's way stored too few files")
            self.log(
                f"[{name}] seed: {m.amount:.0f} stored in {m.seconds:.2f} s, "
                f"server saw {m.detail['server']}"
            )
            return m

        return Side("fetch_many", mediastore), Side("seed", seed), lambda: paths

    def _latency(self, keys: set[str]) -> Group:
        (self.wd.data / "probe.txt").write_text("ok\n", encoding="ascii")
        ms, seed, inputs = self._net_sides(
            "latency", LATENCY_IMAGES, ["--delay", str(LATENCY_S)], every_url=True
        )
        return Group(ms, {"latency": seed} if "latency" in keys else {}, inputs)

    def _ratelimit(self, keys: set[str]) -> Group:
        (self.wd.data / "probe.txt").write_text("ok\n", encoding="ascii")
        behaviour = ["--delay", str(LATENCY_S), "--max-in-flight", str(RATE_MAX_IN_FLIGHT)]
        ms, seed, inputs = self._net_sides("ratelimit", RATE_IMAGES, behaviour, every_url=True)
        return Group(ms, {"ratelimit": seed} if "ratelimit" in keys else {}, inputs)

    def _rss(self, keys: set[str]) -> Group:
        (self.wd.data / "probe.txt").write_text("ok\n", encoding="ascii")

        def side(count: int) -> Callable[[int], Measurement]:
            def run(i: int) -> Measurement:
                root = self.wd.run_dir(f"rss-{count}-{i}")
                fast = ["--delay", "0"]
                with serve(self.wd.data, self.wd.state, "probe.txt", behaviour=fast) as server:
                    spec = {"op": "iter_fetch", "root": str(root), "count": count}
                    m = run_worker({**spec, "base_url": server.base_url}, self.trace)
                failed = m.detail["failed"]
                _expect(m.amount == count and failed == count, f"iter_fetch: {failed} failed")
                peak = (m.peak_rss_kb or 0) / 1024
                before = m.detail["base_rss_kb"] / 1024
                child = m.detail.get("child_peak_rss_kb", 0) / 1024
                self.log(
                    f"[rss] iter_fetch of {count:,} URLs: peak RSS {peak:.1f} MiB "
                    f"(before the call {before:.1f} MiB; its download process, if it "
                    f"started one: {child:.1f} MiB), {m.seconds:.1f} s"
                )
                return m

            return run

        small, large = self.scale.rss_small, self.scale.rss_large
        refs = {"rss": Side(f"{small:,} URLs", side(small))}
        return Group(
            Side(f"{large:,} URLs", side(large)),
            {k: v for k, v in refs.items() if k in keys},
            lambda: [],
        )


def run_group(
    bench: Bench, name: str, specs: Sequence[CaseSpec], runs: int, log: Log
) -> list[CaseResult]:
    """Time one group ``runs`` times, sides alternating; one result per selected case."""
    results = [CaseResult(spec, spec.describe(bench.scale)) for spec in specs]
    try:
        group = bench.group(name, {spec.key for spec in specs})
    except Exception as exc:  # data or server trouble: report it, go on with other groups
        for result in results:
            result.error = f"setup failed: {exc}"
        log(f"[{name}] setup failed: {exc}")
        return results
    by_key = {r.spec.key: r for r in results}
    for result in results:
        result.bytes_per_item = group.bytes_per_item
        result.mediastore_label = group.mediastore.label
        if result.spec.key in group.references:
            result.reference_label = group.references[result.spec.key].label
    unit = specs[0].unit

    def rate(m: Measurement) -> str:
        return f"{m.amount / m.seconds / unit.divisor:,.1f} {unit.name}"

    def timed(side: Side, i: int) -> Measurement:
        settle()
        warm(group.inputs())
        return side.run(i)

    try:
        for i in range(runs):
            m = timed(group.mediastore, i)
            for result in results:
                result.mediastore.append(m)
            figures = [f"{group.mediastore.label} {rate(m)}"]
            for key, ref in group.references.items():
                if isinstance(ref, Side):
                    by_key[key].reference.append(timed(ref, i))
                    figures.append(f"{ref.label} {rate(by_key[key].reference[-1])}")
                    continue
                parts = [(part.label, timed(part, i)) for part in ref.parts]
                label, slow = min(parts, key=lambda part: part[1].amount / part[1].seconds)
                detail = {"parts": {lb: (p.seconds, p.amount) for lb, p in parts}, "slower": label}
                by_key[key].reference.append(
                    Measurement(
                        slow.seconds, slow.amount, slow.peak_rss_kb, {**slow.detail, **detail}
                    )
                )
                figures += [f"{lb} {rate(p)}" for lb, p in parts]
                figures[-1] += f" (slower: {label})"
            paired = [r for r in results if r.spec.paired and len(r.reference) == i + 1]
            figures += [f"{r.spec.key} ratio {r.pairs[-1].ratio:.2f}" for r in paired]
            log(f"[{name}] run {i + 1}/{runs}: " + "; ".join(figures))
    except Exception as exc:
        for result in results:
            result.error = str(exc)
        log(f"[{name}] failed: {exc}")
    return results
