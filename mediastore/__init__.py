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
"""

# the legacy media_cache API (compat.__all__): importable from here, outside __all__
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
from .listing import MediaFilter
from .records import (
    BackupReport,
    ExportedFile,
    ExportReport,
    FetchResult,
    GcReport,
    LegacyImportReport,
    MediaRecord,
    MoveReport,
    ReindexReport,
    StoreStats,
    TypeStats,
    VerifyReport,
)
from .store import MediaStore
from .types import Progress, Resolver
from .version import __version__

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
    "ExportReport",
    "ExportedFile",
    "FetchConnectionError",
    "FetchError",
    "FetchResult",
    "FileTooLargeError",
    "GcReport",
    "HTTPStatusError",
    "HashCollisionError",
    "ImageTooLargeError",
    "InvalidInputError",
    "InvalidMD5Error",
    "InvalidURLError",
    "LegacyImportReport",
    "MediaFilter",
    "MediaKind",
    "MediaNotFoundError",
    "MediaRecord",
    "MediaStore",
    "MediaStoreError",
    "MoveReport",
    "Progress",
    "ReadOnlyStoreError",
    "RefusedContentError",
    "ReindexReport",
    "Resolver",
    "SchemaOutdatedError",
    "StorageError",
    "StoreConfig",
    "StoreNotFoundError",
    "StoreStats",
    "TooManyRedirectsError",
    "TruncatedDownloadError",
    "TypeStats",
    "UnresolvableHostError",
    "UnsupportedMediaError",
    "VerifyReport",
    "__version__",
]
