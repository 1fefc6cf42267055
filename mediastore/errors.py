"""The exceptions mediastore raises. Every public failure is a :class:`MediaStoreError`.

::

    MediaStoreError                      exit_code 1
    ├── InvalidInputError (ValueError)   exit_code 2   a caller's argument is wrong
    │   ├── InvalidMD5Error                            not 32 hex characters (or a prefix)
    │   └── AmbiguousMD5Error                          an MD5 prefix several files share
    ├── UnsupportedMediaError (ValueError) exit_code 3 not a supported image, video or PDF
    │   ├── ImageTooLargeError                         decompression bomb (pixel cap)
    │   └── FileTooLargeError                          more bytes than max_file_size
    ├── CorruptMediaError                exit_code 4   damaged (unparseable, hash mismatch)
    ├── HashCollisionError               exit_code 4   same MD5, different SHA-256 or size
    ├── MediaNotFoundError (LookupError) exit_code 5   no such md5 / url in the catalog
    │   └── StoreNotFoundError                         no store at that root / catalog URL
    ├── StorageError                     exit_code 6   writing or moving bytes failed (ENOSPC)
    │   ├── ReadOnlyStoreError                         a write asked of a read-only store
    │   └── BlobStoreMismatchError                     the blob location is another store's
    ├── CatalogError                     exit_code 7   the database failed or cannot be opened
    │   └── SchemaOutdatedError                        catalog not at the migrations' head
    └── FetchError                       exit_code 8   a download failed; .url, .reason
        ├── BlockedURLError (ValueError)               scheme, credentials or address refused
        ├── InvalidURLError (InvalidInputError)        not a URL: syntax, host, port; exit 2
        ├── UnresolvableHostError                      DNS gave no address
        ├── FetchConnectionError                       could not connect / connection dropped
        ├── DownloadTimeoutError                       per-read timeout or total deadline hit
        ├── TooManyRedirectsError                      more than max_redirects hops
        ├── HTTPStatusError                            final status not 200 (304); .status
        ├── TruncatedDownloadError                     body shorter than its Content-Length
        ├── DownloadTooLargeError (FileTooLargeError)  over max_file_size
        ├── RefusedContentError (UnsupportedMediaError) body is not supported media
        └── CorruptDownloadError (CorruptMediaError)   body is damaged or incomplete media

Third-party exceptions (SQLAlchemy, OSError, Pillow, requests) are wrapped where they enter
mediastore, with the original chained as ``__cause__``.
"""

from __future__ import annotations

from typing import Any

#: Exit status of a command stopped by Ctrl-C: 128 + SIGINT, as a shell reports a process
#: killed by it.
EXIT_INTERRUPTED = 130


class MediaStoreError(Exception):
    """Base class of every error mediastore raises on purpose."""

    exit_code: int = 1

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as message and attributes, not by calling __init__ again: subclasses take
        # other arguments than the message they pass up (a download process sends its errors
        # to the process that asked for the URL).
        return (_restore, (type(self), self.args, self.__dict__))


def _restore(cls: type[MediaStoreError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class InvalidInputError(MediaStoreError, ValueError):
    """An argument is invalid (missing file, directory, bad md5, bad option)."""

    exit_code = 2


class InvalidMD5Error(InvalidInputError):
    """A string that should be an MD5 hex digest is not one."""


class AmbiguousMD5Error(InvalidInputError):
    """An MD5 prefix matches several stored files; ``candidates`` lists some of them."""

    def __init__(self, message: str, candidates: list[str]) -> None:
        super().__init__(message)
        self.candidates = candidates


class UnsupportedMediaError(MediaStoreError, ValueError):
    """The content is not one of the supported media types; nothing was stored."""

    exit_code = 3


class ImageTooLargeError(UnsupportedMediaError):
    """An image declares more pixels than the configured cap (decompression bomb guard)."""


class FileTooLargeError(UnsupportedMediaError):
    """Content is larger than the store's ``max_file_size``; refused while streaming."""


class CorruptMediaError(MediaStoreError):
    """Content is damaged: an image Pillow cannot parse, or a file that no longer hashes right."""

    exit_code = 4


class HashCollisionError(MediaStoreError):
    """Content has the MD5 of a stored file but a different SHA-256 or size: refused."""

    exit_code = 4


class MediaNotFoundError(MediaStoreError, LookupError):
    """The catalog holds no media for that md5 (or url)."""

    exit_code = 5


class StoreNotFoundError(MediaNotFoundError):
    """There is no store at that root (or no catalog at that URL), and none was to be made."""


class StorageError(MediaStoreError):
    """Writing, syncing or moving bytes in the store failed (full disk, I/O error)."""

    exit_code = 6


class ReadOnlyStoreError(StorageError):
    """A write was asked of a store opened read-only (or that this user cannot write)."""


class BlobStoreMismatchError(StorageError):
    """The blob location does not hold this catalog's files (no marker of this store there),
    so nothing that would judge or change them (verify, gc, reindex, migrate-store) runs."""


class CatalogError(MediaStoreError):
    """The catalog database failed, or is not a database, or stayed locked."""

    exit_code = 7


class SchemaOutdatedError(CatalogError):
    """The catalog's schema is not at the revision this mediastore needs."""


class FetchError(MediaStoreError):
    """A download failed; ``url`` names it and ``reason`` says why."""

    exit_code = 8

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


class FetchConnectionError(FetchError):
    """The server could not be reached, or dropped the connection (after retries)."""


class DownloadTimeoutError(FetchError):
    """A read took longer than the timeout, or the whole download overran its deadline."""


class TooManyRedirectsError(FetchError):
    """More redirects than allowed."""


class HTTPStatusError(FetchError):
    """The final response had a status other than 200 (or 304 on revalidation)."""

    def __init__(self, url: str, status: int, reason: str | None = None) -> None:
        super().__init__(url, reason or f"HTTP {status}")
        self.status = status


class TruncatedDownloadError(FetchError):
    """The body ended before its Content-Length (or the connection broke mid-body)."""


class DownloadTooLargeError(FetchError, FileTooLargeError):
    """The body (after content decoding) is larger than ``max_file_size``."""


class RefusedContentError(FetchError, UnsupportedMediaError):
    """The body is not a supported media file (an HTML error page, JSON, a ZIP...)."""


class CorruptDownloadError(FetchError, CorruptMediaError):
    """The body claims a supported type but cannot be parsed.

    (An image over the pixel cap is refused as :class:`RefusedContentError`, like every
    :class:`UnsupportedMediaError`.)
    """


class BlockedURLError(FetchError, ValueError):
    """The URL is refused: a scheme other than http(s), credentials, or a non-public address."""


class InvalidURLError(FetchError, InvalidInputError):
    """The text is not a URL that can be fetched: no scheme or host, bad syntax, a bad port,
    characters a URL cannot hold. Bad input (exit code 2), and a fetch failure (``url``,
    ``reason``) where a download reports it."""

    exit_code = 2


class UnresolvableHostError(FetchError):
    """The host name did not resolve (resolver error or no addresses)."""
