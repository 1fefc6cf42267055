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
    find_cached_by_md5,
    format_size,
    get_cache_stats,
    get_image_dimensions,
    get_media_cache_path,
    set_default_store,
    verify_cached_media,
)
from .config import StoreConfig
from .errors import (
    CatalogError,
    CorruptMediaError,
    FetchError,
    FileTooLargeError,
    HashCollisionError,
    ImageTooLargeError,
    InvalidInputError,
    InvalidMD5Error,
    MediaNotFoundError,
    MediaStoreError,
    SchemaOutdatedError,
    StorageError,
    UnsupportedMediaError,
)
from .records import MediaRecord, StoreStats, TypeStats, VerifyReport
from .sniff import MediaKind
from .store import MediaStore
from .version import __version__

__all__ = [
    "CatalogError",
    "CorruptMediaError",
    "FetchError",
    "FileTooLargeError",
    "HashCollisionError",
    "ImageTooLargeError",
    "InvalidInputError",
    "InvalidMD5Error",
    "MediaKind",
    "MediaNotFoundError",
    "MediaRecord",
    "MediaStore",
    "MediaStoreError",
    "SchemaOutdatedError",
    "StorageError",
    "StoreConfig",
    "StoreStats",
    "TypeStats",
    "UnsupportedMediaError",
    "VerifyReport",
    "__version__",
    "calculate_md5",
    "calculate_md5_from_bytes",
    "detect_media_type",
    "find_cached_by_md5",
    "format_size",
    "get_cache_stats",
    "get_image_dimensions",
    "get_media_cache_path",
    "set_default_store",
    "verify_cached_media",
]
