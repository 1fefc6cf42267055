"""mediastore: content-addressed media files (images, videos, PDFs) with a SQL catalog.

Typical use::

    from mediastore import MediaStore

    with MediaStore("cache") as store:
        rec = store.add_file("photo.jpg", url="https://example.com/photo.jpg")
        store.get_by_url("https://example.com/photo.jpg")  # -> MediaRecord
"""

from .compat import (
    calculate_md5,
    calculate_md5_from_bytes,
    detect_media_type,
    download_and_cache_media,
    download_multiple_media,
    find_cached_by_md5,
    find_cached_by_url,
    format_size,
    get_cache_stats,
    get_image_dimensions,
    get_media_cache_path,
    set_default_store,
    verify_cached_media,
)
from .config import StoreConfig
from .errors import (
    AmbiguousMD5Error,
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
    MediaNotFoundError,
    MediaStoreError,
    RefusedContentError,
    SchemaOutdatedError,
    StorageError,
    TooManyRedirectsError,
    TruncatedDownloadError,
    UnresolvableHostError,
    UnsupportedMediaError,
)
from .formats.detect import MediaKind
from .records import (
    FetchResult,
    GcReport,
    LegacyImportReport,
    MediaRecord,
    ReindexReport,
    StoreStats,
    TypeStats,
    VerifyReport,
)
from .store import MediaStore
from .version import __version__

__all__ = [
    "AmbiguousMD5Error",
    "BlockedURLError",
    "CatalogError",
    "CorruptDownloadError",
    "CorruptMediaError",
    "DownloadTimeoutError",
    "DownloadTooLargeError",
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
    "LegacyImportReport",
    "MediaKind",
    "MediaNotFoundError",
    "MediaRecord",
    "MediaStore",
    "MediaStoreError",
    "RefusedContentError",
    "ReindexReport",
    "SchemaOutdatedError",
    "StorageError",
    "StoreConfig",
    "StoreStats",
    "TooManyRedirectsError",
    "TruncatedDownloadError",
    "TypeStats",
    "UnresolvableHostError",
    "UnsupportedMediaError",
    "VerifyReport",
    "__version__",
    "calculate_md5",
    "calculate_md5_from_bytes",
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
]
