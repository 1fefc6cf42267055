"""mediastore: content-addressed media files (images, videos, PDFs) with a SQL catalog.

Typical use::

    from mediastore import MediaStore

    with MediaStore("cache") as store:
        rec = store.add_file("photo.jpg", url="https://example.com/photo.jpg")
        store.get_by_url("https://example.com/photo.jpg")  # -> MediaRecord

``__all__`` is the API: the store, its configuration, every record and report its methods
return, the filter they take, the callback types and the error tree. The legacy
``media_cache`` functions live in :mod:`mediastore.compat`; they stay importable from here for
old scripts, outside ``__all__``.

Nothing heavy is imported with the package: each name is imported from its module on first
use, so ``import mediastore`` is quick and the command can answer Ctrl-C while it starts.
"""

from __future__ import annotations

import importlib

from .version import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a start-up cost)
if TYPE_CHECKING:
    from typing import Any

    from .compat import *  # noqa: F403
    from .config import StoreConfig
    from .errors import (
        AmbiguousMD5Error,
        BlobStoreMismatchError,
        BlockedURLError,
        CatalogError,
        CorruptDownloadError,
        CorruptMediaError,
        DownloadTimeoutError,
        DownloadTooLargeError,
        FetchConnectionError,
        FetchError,
        FileTooLargeError,
        HashCollisionError,
        HTTPStatusError,
        ImageTooLargeError,
        InvalidInputError,
        InvalidMD5Error,
        InvalidURLError,
        MediaNotFoundError,
        MediaStoreError,
        ReadOnlyStoreError,
        RefusedContentError,
        SchemaOutdatedError,
        StorageError,
        StoreNotFoundError,
        TooManyRedirectsError,
        TruncatedDownloadError,
        UnresolvableHostError,
        UnsupportedMediaError,
    )
    from .formats.detect import MediaKind
    from .identity import Identity, Rule
    from .listing import MediaFilter
    from .records import (
        BackupReport,
        DuplicateGroup,
        ExportedFile,
        ExportReport,
        Failure,
        FetchResult,
        GcReport,
        IndexReport,
        LegacyImportReport,
        MediaMetadata,
        MediaRecord,
        MoveReport,
        ProbeReport,
        Reference,
        ReidentifyReport,
        ReindexReport,
        SimilarImage,
        StoreStats,
        TypeStats,
        Variant,
        VerifyReport,
    )
    from .references import RefUrl
    from .store import MediaStore
    from .types import Progress, Resolver

#: Where each name of the API lives.
_HOMES: dict[str, str] = {
    "AmbiguousMD5Error": "errors",
    "BackupReport": "records",
    "DuplicateGroup": "records",
    "IndexReport": "records",
    "SimilarImage": "records",
    "BlobStoreMismatchError": "errors",
    "BlockedURLError": "errors",
    "CatalogError": "errors",
    "CorruptDownloadError": "errors",
    "CorruptMediaError": "errors",
    "DownloadTimeoutError": "errors",
    "DownloadTooLargeError": "errors",
    "ExportReport": "records",
    "ExportedFile": "records",
    "FetchConnectionError": "errors",
    "FetchError": "errors",
    "FetchResult": "records",
    "FileTooLargeError": "errors",
    "GcReport": "records",
    "HTTPStatusError": "errors",
    "HashCollisionError": "errors",
    "ImageTooLargeError": "errors",
    "InvalidInputError": "errors",
    "InvalidMD5Error": "errors",
    "InvalidURLError": "errors",
    "LegacyImportReport": "records",
    "MediaFilter": "listing",
    "MediaKind": "formats.detect",
    "MediaNotFoundError": "errors",
    "MediaMetadata": "records",
    "MediaRecord": "records",
    "ProbeReport": "records",
    "MediaStore": "store",
    "MediaStoreError": "errors",
    "MoveReport": "records",
    "Progress": "types",
    "ReadOnlyStoreError": "errors",
    "RefUrl": "references",
    "Reference": "records",
    "RefusedContentError": "errors",
    "ReindexReport": "records",
    "ReidentifyReport": "records",
    "Resolver": "types",
    "Rule": "identity",
    "Identity": "identity",
    "SchemaOutdatedError": "errors",
    "StorageError": "errors",
    "StoreConfig": "config",
    "StoreNotFoundError": "errors",
    "StoreStats": "records",
    "TooManyRedirectsError": "errors",
    "TruncatedDownloadError": "errors",
    "TypeStats": "records",
    "Variant": "records",
    "Failure": "records",
    "UnresolvableHostError": "errors",
    "UnsupportedMediaError": "errors",
    "VerifyReport": "records",
}
#: The legacy media_cache functions (compat.__all__): importable from here, outside __all__.
_LEGACY = frozenset(
    {
        "calculate_md5",
        "calculate_md5_from_bytes",
        "default_store",
        "detect_media_type",
        "download_and_cache_media",
        "download_multiple_media",
        "find_cached_by_md5",
        "find_cached_by_url",
        "format_size",
        "get_cache_stats",
        "get_image_dimensions",
        "get_media_cache_path",
        "set_default_store",
        "verify_cached_media",
    }
)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name) or ("compat" if name in _LEGACY else None)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_LEGACY})


__all__ = [
    "AmbiguousMD5Error",
    "BackupReport",
    "BlobStoreMismatchError",
    "BlockedURLError",
    "CatalogError",
    "CorruptDownloadError",
    "CorruptMediaError",
    "DownloadTimeoutError",
    "DownloadTooLargeError",
    "DuplicateGroup",
    "ExportReport",
    "ExportedFile",
    "Failure",
    "FetchConnectionError",
    "FetchError",
    "FetchResult",
    "FileTooLargeError",
    "GcReport",
    "HTTPStatusError",
    "HashCollisionError",
    "Identity",
    "ImageTooLargeError",
    "IndexReport",
    "InvalidInputError",
    "InvalidMD5Error",
    "InvalidURLError",
    "LegacyImportReport",
    "MediaFilter",
    "MediaKind",
    "MediaMetadata",
    "MediaNotFoundError",
    "MediaRecord",
    "MediaStore",
    "MediaStoreError",
    "MoveReport",
    "ProbeReport",
    "Progress",
    "ReadOnlyStoreError",
    "RefUrl",
    "Reference",
    "RefusedContentError",
    "ReidentifyReport",
    "ReindexReport",
    "Resolver",
    "Rule",
    "SchemaOutdatedError",
    "SimilarImage",
    "StorageError",
    "StoreConfig",
    "StoreNotFoundError",
    "StoreStats",
    "TooManyRedirectsError",
    "TruncatedDownloadError",
    "TypeStats",
    "UnresolvableHostError",
    "UnsupportedMediaError",
    "Variant",
    "VerifyReport",
    "__version__",
]
