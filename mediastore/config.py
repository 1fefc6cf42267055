"""Store settings: one frozen :class:`StoreConfig`, built once and passed down."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidInputError
from .identity import Rule
from .types import Resolver

DEFAULT_ROOT = "cache"
DEFAULT_CATALOG_NAME = "catalog.sqlite3"
#: Pillow's own default; images above it are refused, not merely warned about.
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485
DEFAULT_MAX_FILE_SIZE = 1 << 30  # 1 GiB
DEFAULT_CHUNK_SIZE = 1 << 20  # 1 MiB
DEFAULT_TIMEOUT = 30.0
#: fetch_many's threads: enough to keep the adaptive per-host limit (up to 16) busy
DEFAULT_MAX_WORKERS = 16
#: one child per extra core of the usual 2-core machine (see mediastore.net.processes)
DEFAULT_FETCH_PROCESSES = 2
DEFAULT_MAX_REDIRECTS = 5
DEFAULT_BUSY_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 0.5
#: A day: a post's media that answered 404 or 410 rarely comes back within one, and a second
#: scrape the same day then spends no request on it; 0 remembers nothing.
DEFAULT_FAILURE_TTL = 86400.0
#: Seconds content stays after its last reference went (references.DEFAULT_GRACE).
DEFAULT_GC_GRACE = 86400.0


def default_db_url(root: str | Path) -> str:
    """The SQLite catalog that lives inside a store root."""
    return f"sqlite:///{Path(root) / DEFAULT_CATALOG_NAME}"


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreConfig:
    """Everything a :class:`~mediastore.MediaStore` can be tuned with.

    Attributes:
        root: Directory holding ``media/``, ``tmp/``, ``quarantine/`` and the default catalog.
        db_url: SQLAlchemy URL of the catalog; ``None`` means ``<root>/catalog.sqlite3``.
        max_image_pixels: Images declaring more pixels are refused (decompression bombs).
        max_file_size: Largest accepted file, in bytes, enforced while streaming.
        chunk_size: Read size of the ingest pipeline: the largest chunk of a download or
            stream, and the size up to which a file is read in one piece (larger files are
            read 256 KiB at a time, or in ``chunk_size`` if that is smaller).
        busy_timeout: Seconds a writer waits for another writer's lock before failing.
        verify_on_access: ``fetch`` re-hashes a cached file before returning it (else size only).
        verify_deep: ``verify`` also decodes images fully and walks containers (``--deep``),
            and so does every add: nothing that would fail ``verify --deep`` is stored.
        allow_private_networks: Lift the download address policy (intranets, tests on loopback).
        user_agent: User-Agent of downloads; ``None`` means ``mediastore/<version>``.
        per_host: A fixed cap on concurrent requests to one host in ``fetch_many``; ``None``
            (default) lets each host's limit adapt from ``per_host_start`` to ``per_host_max``.
        max_redirects: Redirects followed per download.
        download_deadline: Seconds one download may take in all, or ``None`` (default): a
            stalled or drip-feeding server is cut by ``timeout`` and the low-speed check,
            and a large file on a slow link is not.
        retries: Retries of connection errors, 429 and 5xx (with backoff, Retry-After <= 60 s).
        backoff_factor: Base of the exponential backoff between retries, in seconds.
        ca_bundle: CA bundle (file or directory) for https instead of the system's.
        resolver: ``(host, port) -> [ip, ...]`` used instead of the system resolver.
        legacy_dir: The previous system's cache (files named by the MD5 of their URL);
            default ``<root>/images``.
        address_policy: ``ip -> reason or None`` deciding which addresses downloads may reach;
            default :func:`mediastore.net.policy.refused_reason` (public addresses only).
        speed_limit: Bytes per second below which a download is too slow (0: no check).
        speed_time: Seconds a download may stay below ``speed_limit`` before it is cut.
        per_host_start: Concurrent requests a host gets at first in ``fetch_many``.
        per_host_max: The most that grows to while the host answers promptly, without 429/503.
        host_rate: At most this many requests started per second to one host (None: no cap).
        fetch_processes: Processes a large ``fetch_many``/``iter_fetch`` batch is spread
            over (capped at the CPU count; 1: this process's threads only). Each gets its
            share of the workers and of every host's limits. A config holding a function
            (``resolver``, ``address_policy``) that cannot be pickled keeps to one process.
        failure_ttl: Seconds a URL's permanent failure (404, 410, refused or corrupt
            content) is remembered: a fetch of it within them fails from memory, with no
            request (0: never remembered; ``refresh=True`` always asks again).
        identity_rules: URL identity rules tried before the built-in ones (see
            :mod:`mediastore.identity`; ``[[rules]]`` in ``mediastore.toml``).
        variants: What a batch fetch does with several sizes of one asset: ``"each"``
            (default: every URL is its own download) or ``"largest"`` (only the
            highest-ranked size is downloaded, and answers the others).
        collect_unreferenced: A plain ``gc`` also removes content that had references and
            has had none for ``gc_grace`` seconds, as ``gc(unreferenced=True)`` does (an
            explicit ``unreferenced=`` argument wins).
        gc_grace: Seconds content stays after its last reference went before a collection
            removes it, when ``gc`` is given no ``grace`` (default 24 h; 0: at once).
    """

    root: Path = Path(DEFAULT_ROOT)
    db_url: str | None = None
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    chunk_size: int = DEFAULT_CHUNK_SIZE
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT
    verify_on_access: bool = True
    verify_deep: bool = False
    allow_private_networks: bool = False
    user_agent: str | None = None
    per_host: int | None = None
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    download_deadline: float | None = None
    retries: int = DEFAULT_RETRIES
    backoff_factor: float = DEFAULT_BACKOFF
    ca_bundle: str | None = None
    legacy_dir: Path | None = None
    resolver: Resolver | None = None
    address_policy: Callable[[ipaddress.IPv4Address | ipaddress.IPv6Address], str | None] | None = (
        None
    )
    # the defaults of mediastore.net.client (DEFAULT_SPEED_*) and mediastore.net.hosts (DEFAULT_*)
    speed_limit: float = 2048.0
    speed_time: float = 30.0
    per_host_start: int = 6
    per_host_max: int = 16
    host_rate: float | None = None
    fetch_processes: int = DEFAULT_FETCH_PROCESSES
    identity_rules: tuple[Rule, ...] = ()
    failure_ttl: float = DEFAULT_FAILURE_TTL
    variants: str = "each"
    collect_unreferenced: bool = False
    gc_grace: float = DEFAULT_GC_GRACE

    def __post_init__(self) -> None:
        _check_fields(self)

    @property
    def catalog_url(self) -> str:
        """The catalog URL actually used."""
        return self.db_url or default_db_url(self.root)


#: What a batch fetch may do with several sizes of one asset (see ``StoreConfig.variants``).
VARIANT_POLICIES = ("each", "largest")


def check_variants(policy: object, what: str = "variants") -> str:
    """A batch fetch's variant policy, checked (``what`` names where it came from).

    Raises:
        InvalidInputError: not one of :data:`VARIANT_POLICIES`.
    """
    if policy not in VARIANT_POLICIES:
        raise InvalidInputError(
            f"{what} must be one of {', '.join(VARIANT_POLICIES)}, got {policy!r}"
        )
    return str(policy)


#: Fields and the smallest value each accepts (``None`` allowed where the name is in
#: _OPTIONAL); ints must be ints (not bools), the others any finite real number.
_POSITIVE_INTS = ("max_image_pixels", "max_file_size", "chunk_size", "per_host_start",
                  "per_host_max", "per_host", "fetch_processes")  # fmt: skip
_NONNEGATIVE_INTS = ("max_redirects", "retries")
_NONNEGATIVE_REALS = ("busy_timeout", "backoff_factor", "speed_limit", "failure_ttl", "gc_grace")
_POSITIVE_REALS = ("speed_time", "download_deadline", "host_rate")
_OPTIONAL = frozenset({"per_host", "download_deadline", "host_rate"})
#: The largest value each field accepts: past these a typo, not a wish (1 PiB files...).
_MAXIMA: dict[str, float] = {
    "max_file_size": 1 << 50,
    "max_image_pixels": 1 << 40,
    "chunk_size": 1 << 30,
    "per_host_start": 1024,
    "per_host_max": 1024,
    "per_host": 1024,
    "fetch_processes": 64,
    "max_redirects": 100,
    "retries": 100,
    "busy_timeout": 86400.0,
    "backoff_factor": 3600.0,
    "speed_time": 86400.0,
    "download_deadline": 7 * 86400.0,
    "gc_grace": 100 * 365 * 86400.0,
}


def _check_fields(cfg: StoreConfig) -> None:
    """Refuse a setting no store could work with, naming it (a ValueError, exit code 2)."""
    if not isinstance(cfg.root, str | Path):
        raise InvalidInputError(f"root must be a path, got {type(cfg.root).__name__}")
    if cfg.db_url is not None and (not isinstance(cfg.db_url, str) or not cfg.db_url.strip()):
        raise InvalidInputError(f"db_url must be a non-empty string, got {cfg.db_url!r}")
    for names, is_int, low, strict in (
        (_POSITIVE_INTS, True, 0, True),
        (_NONNEGATIVE_INTS, True, 0, False),
        (_NONNEGATIVE_REALS, False, 0, False),
        (_POSITIVE_REALS, False, 0, True),
    ):
        for name in names:
            value = getattr(cfg, name)
            if value is None and name in _OPTIONAL:
                continue
            kind = int if is_int else (int, float)
            if isinstance(value, bool) or not isinstance(value, kind):
                raise InvalidInputError(
                    f"{name} must be {'an integer' if is_int else 'a number'}, got {value!r}"
                )
            if not math.isfinite(value) or value < low or (strict and value == low):
                bound = "greater than" if strict else "at least"
                raise InvalidInputError(f"{name} must be {bound} {low}, got {value!r}")
            if value > _MAXIMA.get(name, math.inf):
                most = _MAXIMA[name]
                shown = f"{int(most):,}" if isinstance(value, int) else f"{most:g}"
                raise InvalidInputError(f"{name} must be at most {shown}, got {value!r}")
    check_variants(cfg.variants)
    if not isinstance(cfg.collect_unreferenced, bool):
        raise InvalidInputError(
            f"collect_unreferenced must be True or False, got {cfg.collect_unreferenced!r}"
        )
    if cfg.per_host_start > cfg.per_host_max:
        raise InvalidInputError(
            f"per_host_start ({cfg.per_host_start}) is above per_host_max ({cfg.per_host_max})"
        )
