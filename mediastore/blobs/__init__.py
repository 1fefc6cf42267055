"""Where the bytes live: a local directory or an S3 bucket, behind one small protocol
(:mod:`.base`); :func:`open_blob_store` opens the one a blob URL names.

- :mod:`.base`: addresses and the :class:`~.base.BlobStore` protocol;
- :mod:`.local`: the staging area every backend uses, and the local directory store;
- :mod:`.s3`: an S3-compatible bucket, with :mod:`.signedput` for single PUTs;
- :mod:`.mirror`: both ends of an unfinished ``migrate-store`` seen as one store.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import InvalidInputError, StorageError
from .base import BlobStore
from .local import LocalBlobStore
from .s3 import S3BlobStore, check_bucket


def open_blob_store(blob_url: str | None, root: Path, *, read_only: bool) -> BlobStore:
    """The blob store ``blob_url`` names: None (``<root>/media``), a directory, or S3.

    Args:
        blob_url: None, a directory path (or ``file://`` URL), or ``s3://bucket/prefix``
            with optional ``?multipart_threshold=<bytes>&part_size=<bytes>&upload_cutoff=<s>``.
        root: The store's root (staging area of every backend; the blobs of the default one).
        read_only: Open for reading only.

    Raises:
        InvalidInputError: an unsupported URL or option, or boto3 missing for ``s3://``.
        StorageError: the directory or bucket cannot be opened.
    """
    if blob_url is None:
        return LocalBlobStore(root, read_only=read_only)
    if urlsplit(blob_url).scheme == "s3":
        return S3BlobStore.from_url(blob_url, root, read_only=read_only)
    path = _directory(blob_url)
    if not read_only:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot make the blob directory {path}: {exc.strerror}") from exc
    return LocalBlobStore(path, read_only=read_only)


def _directory(blob_url: str) -> Path:
    """The directory a blob URL names (a path or a ``file://`` URL), checked: not a file.

    Raises:
        InvalidInputError: another scheme, or something that is not a directory.
    """
    parts = urlsplit(blob_url)
    if parts.scheme == "file" and parts.netloc in ("", "localhost"):
        path = Path(unquote(parts.path))
    elif parts.scheme == "":
        path = Path(blob_url)
    else:
        raise InvalidInputError(
            f"unsupported blob URL {blob_url!r}: give a directory or s3://bucket/prefix"
        )
    path = path.expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise InvalidInputError(f"blob location {path} is not a directory")
    return path


def canonical_blob_url(blob_url: str | None, root: Path) -> str:
    """One spelling per blob store: a resolved directory, or ``s3://bucket/prefix``.

    Raises:
        InvalidInputError: an unsupported URL, a bad bucket name, a path that is a file.
    """
    if blob_url is None:
        return str(Path(root).expanduser().resolve())
    parts = urlsplit(blob_url)
    if parts.scheme == "s3":
        check_bucket(parts.netloc)
        return f"s3://{parts.netloc}/{parts.path.strip('/')}".rstrip("/")
    return str(_directory(blob_url))
