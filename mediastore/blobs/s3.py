"""Blobs in an S3-compatible bucket (:class:`S3BlobStore`, opened for an ``s3://bucket/prefix``
URL by :func:`mediastore.blobs.open_blob_store`).

Keys mirror the disk layout, so a bucket reads like a store: ``<prefix>/media/images/<md5>.jpg``
(:attr:`BlobRef.key` under the prefix), quarantined objects under ``<prefix>/quarantine/``.
Content is staged locally first (:class:`~mediastore.blobs.local.LocalStaging`: ``<root>/tmp/``, the
writer lock, gc's sweep of abandoned temp files), so hashing, sniffing and refusing happen
before anything is uploaded; a placed temp file is removed once its object exists. Content of
up to ``MEMORY_TEMP_LIMIT`` bytes is staged in memory and sent from there (:class:`UploadTemp`);
content that will go in parts has the MD5 of each part computed as it is staged, so the upload
reads each part once and sends it.

How an object is created (the lifecycle has claimed the md5 in the catalog before):

- every PUT carries ``Content-MD5`` (the address is the MD5, so the server checks the bytes
  against the address) and the SHA-256 as ``x-amz-meta-sha256``;
- creation is decided by the server with ``If-None-Match: *``, never by a HEAD first: a 412
  means the object exists, and it is then compared (its SHA-256 metadata and size) with ours:
  equal is success, different is a :class:`HashCollisionError`, the object left untouched;
  a temp whose ``if_absent`` is False is PUT without the condition (a move's copies: the
  catalog's row decides what the key holds, see :mod:`mediastore.migrate`);
- content held in memory goes in one PUT made by :class:`~mediastore.blobs.signedput.SignedPut`
  (botocore's signer and HTTP session without a client call, about half its CPU), its
  payload signed with the SHA-256, so the server checks that digest too; it is used with
  the client a store makes itself (a client passed in makes every call);
- files from ``multipart_threshold`` bytes go multipart, each part with its own
  ``Content-MD5``; any failure aborts the upload;
- botocore's default CRC32 of every body (``request_checksum_calculation``) is turned off
  for the client a store makes: it checks what Content-MD5 checks, at the cost of one more
  pass over the bytes (a client passed in is used as it is).

What Ceph RGW 16.2 does (checked by ``tests/test_s3.py``): a wrong ``Content-MD5`` (whole
object or part) is refused with 400 BadDigest, a body that does not hash to the signed payload
hash with 400 XAmzContentSHA256Mismatch; ``If-None-Match: *`` on PutObject is honoured
(412); on CompleteMultipartUpload it is **ignored** (the upload replaces an existing object);
``If-Match`` on DeleteObject is ignored; CopyObject ignores AWS's
``x-amz-copy-source-if-match`` but honours the same condition under its older name
``x-amz-copy-if-match`` (both are sent); GetObject honours ``If-Match``.

So multipart creation is guarded by the catalog, not the server: the lifecycle holds an intent
on the md5 before placing and records the row only after; two hosts uploading the same bytes
make the same object; and after completing, the object's SHA-256 metadata is read back, so a
writer whose upload was replaced by *other* content with the same MD5 fails with a collision.
Removal acts on "the object I examined": a HEAD compares the ETag with the identity given,
inside the catalog's write lock (no writer may claim the md5 meanwhile, which is what the
protocol relies on), then the copy is conditional on that ETag and the delete carries
``If-Match`` (honoured by AWS, ignored by RGW 16).

Endpoint, credentials and region come from boto3's own chain (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, ``AWS_PROFILE``,
``~/.aws/config``); this module reads no environment. boto3 is imported only when an
``s3://`` URL is opened (``pip install 'mediastore[s3]'``).
"""

from __future__ import annotations

import base64
import errno
import hashlib
import io
import logging
import math
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn
from urllib.parse import parse_qsl, unquote, urlsplit

from ..errors import HashCollisionError, InvalidInputError, MediaStoreError, StorageError
from .base import MARKER_KEY, MARKER_MAX, BlobRef, BlobStat, Location, StoredEntry, TempBlob
from .local import (
    TEMP_PREFIX,
    TEMP_SUFFIX,
    TYPED_DIRECTORIES,
    LocalStaging,
    LocalTemp,
)

if TYPE_CHECKING:
    from .signedput import SignedPut

log = logging.getLogger(__name__)

S3_EXTRA_HINT = "pip install 'mediastore[s3]'"
#: Files from this size on are uploaded in parts.
DEFAULT_MULTIPART_THRESHOLD = 64 << 20
DEFAULT_PART_SIZE = 16 << 20
#: S3's smallest part (all but the last) and most parts per upload.
MIN_PART_SIZE = 5 << 20
MAX_PARTS = 10_000
#: Parts of one file in flight at once (boto3's upload_file sends 10).
PART_THREADS = 4
#: Content up to this size is staged in memory and sent from there (no temp file).
MEMORY_TEMP_LIMIT = 1 << 20
#: A multipart upload older than this (on the server's clock) is a crash leftover for gc.
DEFAULT_UPLOAD_CUTOFF = timedelta(days=1)
#: The object metadata that holds the content's SHA-256 (``x-amz-meta-sha256``).
SHA256_METADATA = "sha256"
#: Read buffer of an open object (reads of the body are streamed, never the whole object).
READ_BUFFER = 256 << 10
#: botocore settings of the client a store makes for itself.
CLIENT_SETTINGS: dict[str, Any] = {
    # path-style: what S3-compatible servers on a plain host:port understand
    "s3": {"addressing_style": "path"},
    # every PUT carries Content-MD5: botocore's default CRC32 of each body on top would be
    # one more pass over the bytes, checking what the MD5 checks already
    "request_checksum_calculation": "when_required",
}
#: The query options an ``s3://`` URL may carry, with how to read each.
URL_OPTIONS: dict[str, Callable[[str], Any]] = {
    "multipart_threshold": int,
    "part_size": int,
    "upload_cutoff": lambda v: timedelta(seconds=float(v)),
}


def _boto3() -> tuple[Any, Any]:
    """boto3 and botocore's ``Config``, or a one-line error naming the extra."""
    try:
        import boto3  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]
    except ImportError:
        raise InvalidInputError(f"s3:// blob URLs need boto3: {S3_EXTRA_HINT}") from None
    return boto3, Config


def _b64(hex_md5: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_md5)).decode("ascii")


def _status(exc: BaseException) -> int | None:
    """The HTTP status of a botocore ClientError (None for other failures)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


def _reason(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        err = response["Error"]
        message = f": {err['Message']}" if err.get("Message") else ""
        return f"{err.get('Code', '?')} (HTTP {_status(exc)}){message}"
    return str(exc) or type(exc).__name__


def _mirror_copy_condition(request: Any, **_: Any) -> None:
    """Send CopyObject's source condition under RGW's name too (it ignores AWS's)."""
    condition = request.headers.get("x-amz-copy-source-if-match")
    if condition is not None:
        request.headers["x-amz-copy-if-match"] = condition


#: A bucket name S3 accepts: 3-63 lowercase letters, digits, dots and hyphens, a letter or
#: digit at each end (no two dots in a row, not an IPv4 address: checked apart).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def check_bucket(name: str) -> None:
    """Refuse a bucket name S3 would refuse, before any request is made.

    Raises:
        InvalidInputError: credentials in the name, or a name S3's rules do not allow.
    """
    if "@" in name:
        raise InvalidInputError(
            "credentials do not belong in an s3:// URL: boto3 reads them "
            "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws)"
        )
    if not _BUCKET.fullmatch(name) or ".." in name or re.fullmatch(r"\d+\.\d+\.\d+\.\d+", name):
        raise InvalidInputError(
            f"invalid bucket name {name!r}: 3-63 lowercase letters, digits, dots and hyphens, "
            "beginning and ending with a letter or digit"
        )


class S3BlobStore(LocalStaging):
    """Blobs as objects in a bucket, under ``prefix``; temp files in ``<root>/tmp``.

    Args:
        root: The local staging root (``tmp/`` and the writer lock live there).
        bucket: The bucket, which must exist.
        prefix: Key prefix of the store (``""`` for the bucket's top).
        read_only: Create nothing locally or remotely; writes raise ReadOnlyStoreError.
        multipart_threshold: Files of at least this many bytes are uploaded in parts.
        part_size: Bytes per part (at least 5 MiB; grown for files over 10,000 parts).
        upload_cutoff: Multipart uploads older than this are aborted by gc.
        client: A boto3 S3 client to use (default: one from boto3's default session,
            path-style addressing).

    Raises:
        InvalidInputError: a bad option, or boto3 is not installed.
        StorageError: the bucket cannot be reached (missing, no permission, no endpoint).
    """

    def __init__(
        self,
        root: Path,
        bucket: str,
        prefix: str = "",
        *,
        read_only: bool = False,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        part_size: int = DEFAULT_PART_SIZE,
        upload_cutoff: timedelta = DEFAULT_UPLOAD_CUTOFF,
        client: Any = None,
    ) -> None:
        if multipart_threshold < 1:
            raise InvalidInputError(f"multipart_threshold must be >= 1, got {multipart_threshold}")
        if part_size < MIN_PART_SIZE:
            raise InvalidInputError(
                f"part_size must be >= {MIN_PART_SIZE} (5 MiB), got {part_size}"
            )
        if upload_cutoff < timedelta(0):
            raise InvalidInputError(f"upload_cutoff must be >= 0, got {upload_cutoff}")
        if not bucket or "/" in bucket:
            raise InvalidInputError(f"not a bucket name: {bucket!r}")
        boto3, config = _boto3()
        from botocore.exceptions import (  # type: ignore[import-untyped]
            BotoCoreError,
            ClientError,
        )
        from botocore.session import get_session as botocore_session  # type: ignore[import-untyped]

        from .signedput import SignedPut

        self._failures: tuple[type[BaseException], ...] = (BotoCoreError, ClientError)
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._key_prefix = f"{self.prefix}/" if self.prefix else ""
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.upload_cutoff = upload_cutoff
        self._own_client = client is None
        #: Single PUTs of content in memory, without a client call (own client only: a
        #: client passed in is used as it is, with whatever hooks its owner registered).
        self._signed_put: SignedPut | None = None
        core = None
        try:
            if client is None:
                core = botocore_session()
                session = boto3.session.Session(botocore_session=core)
                client = session.client("s3", config=config(**CLIENT_SETTINGS))
        except self._failures as exc:
            raise InvalidInputError(f"cannot set up an S3 client: {_reason(exc)}") from exc
        self.client = client
        self.client.meta.events.register("before-sign.s3.CopyObject", _mirror_copy_condition)
        try:
            head = self.client.head_bucket(Bucket=bucket)
            if core is not None:
                region = head["ResponseMetadata"]["HTTPHeaders"].get("x-amz-bucket-region")
                self._signed_put = SignedPut.for_client(core, client, bucket, bucket_region=region)
        except self._failures as exc:
            self._close_client()
            raise StorageError(f"cannot open bucket s3://{bucket}: {_reason(exc)}") from exc
        super().__init__(root, read_only=read_only, fsync_temps=False)

    @classmethod
    def from_url(cls, url: str, root: Path, *, read_only: bool = False) -> S3BlobStore:
        """The store an ``s3://bucket/prefix?option=value`` URL names (see URL_OPTIONS)."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise InvalidInputError(f"not an s3://bucket/prefix URL: {url!r}")
        check_bucket(parts.netloc)
        options: dict[str, Any] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name not in URL_OPTIONS:
                raise InvalidInputError(
                    f"unknown option {name!r} in {url!r} (known: {', '.join(URL_OPTIONS)})"
                )
            try:
                options[name] = URL_OPTIONS[name](value)
            except ValueError:
                raise InvalidInputError(f"bad value {value!r} for {name} in {url!r}") from None
        return cls(root, parts.netloc, unquote(parts.path), read_only=read_only, **options)

    def __repr__(self) -> str:
        return f"S3BlobStore(s3://{self.bucket}/{self.prefix})"

    # --- names ---------------------------------------------------------------------------
    def key(self, loc: Location) -> str:
        """The object key of ``loc``."""
        return f"{self._key_prefix}{loc.key}"

    def describe(self, loc: Location) -> str:
        return self._url(self.key(loc))

    def presigned_get(self, loc: Location, seconds: int) -> str:
        """A URL that GETs ``loc`` without credentials for ``seconds`` (signed locally: no
        request is made)."""
        url = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.key(loc)}, ExpiresIn=seconds
        )
        return str(url)

    def local_path(self, loc: Location) -> None:
        """There is none: the bytes are in the bucket (``MediaRecord.path`` is None)."""
        return None

    def _url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _error(self, action: str, key: str, exc: BaseException) -> StorageError:
        return StorageError(f"{action} {self._url(key)} failed: {_reason(exc)}")

    # --- staging ---------------------------------------------------------------------------
    # LocalStaging.create_temp promises a LocalTemp; the blob store protocol, a TempBlob
    def create_temp(self) -> UploadTemp:  # type: ignore[override]
        """A temp for content to upload: in memory while small, else a file in ``tmp/``."""
        self._writable()
        memory_limit = min(MEMORY_TEMP_LIMIT, self.multipart_threshold - 1)
        # the file's name is taken now (gc and close know a writer's temps by their names)
        name = f"{TEMP_PREFIX}{self._writer}-{next(self._counter)}{TEMP_SUFFIX}"
        return UploadTemp(
            lambda: LocalTemp(self._dirs.fd("tmp"), self.tmp_dir, name, fsync=False),
            self.tmp_dir / name,
            memory_limit=memory_limit,
            part_threshold=self.multipart_threshold,
            part_size=self.part_size,
        )

    def discard(self, temp: TempBlob) -> None:
        if isinstance(temp, UploadTemp):
            temp.close()
            if temp.file is not None:
                super().discard(temp.file)
            return
        super().discard(temp)

    # --- placing ---------------------------------------------------------------------------
    def place_many(self, items: Sequence[tuple[TempBlob, BlobRef]]) -> list[MediaStoreError | None]:
        """Upload temps to their addresses (several at once); each temp is removed after.

        An object that exists already with the same content counts as placed; each item
        fails alone (its error in the result, None for the rest).
        """
        self._writable()
        if len(items) == 1:
            return [self._place(*items[0])]
        return list(self._threads().map(lambda item: self._place(*item), items))

    def _place(self, temp: TempBlob, ref: BlobRef) -> MediaStoreError | None:
        assert temp.sha256 is not None, "staged content carries its SHA-256 (ingest.stage)"
        try:
            staged = temp if isinstance(temp, UploadTemp) else None
            content = staged.content() if staged is not None else None
            if_absent = staged is None or staged.if_absent
            if content is not None:
                self.upload(
                    content,
                    ref,
                    md5=ref.md5,
                    sha256=temp.sha256,
                    size=temp.written,
                    if_absent=if_absent,
                )
            else:
                file = staged.file if staged is not None and staged.file is not None else temp
                with self._open_temp(file) as fh:
                    self.upload(
                        fh,
                        ref,
                        md5=ref.md5,
                        sha256=temp.sha256,
                        size=temp.written,
                        part_md5s=staged.part_md5s() if staged is not None else None,
                        if_absent=if_absent,
                    )
        except MediaStoreError as exc:
            return exc
        finally:
            self.discard(temp)
        return None

    def upload(
        self,
        fh: BinaryIO | bytes,
        ref: BlobRef,
        *,
        md5: str,
        sha256: str,
        size: int,
        part_md5s: dict[tuple[int, int], bytes] | None = None,
        if_absent: bool = True,
    ) -> None:
        """Create the object of ``ref`` from ``fh`` (``size`` bytes) unless it exists.

        ``md5`` is sent as Content-MD5 (the server refuses bytes that do not match it),
        ``sha256`` as metadata. The lifecycle's claim on the md5 must be held.
        ``part_md5s``: MD5s of byte ranges ``(offset, length)`` computed as the content was
        staged; a part found there is not hashed again before it is sent (the server
        still checks it against them). ``if_absent=False``: a single PUT without
        ``If-None-Match``, replacing what is there (only where the catalog's row decides
        what the key holds: a move's copy, :attr:`UploadTemp.if_absent`).

        Raises:
            HashCollisionError: the object exists with other content (left untouched), or,
                for a multipart upload, was replaced by other content as it completed.
            StorageError: the server refused the upload or could not be reached.
        """
        self._writable()
        key = self.key(ref)
        meta = {"Metadata": {SHA256_METADATA: sha256}, "ContentType": ref.kind.mime_type}
        if size >= self.multipart_threshold:
            if isinstance(fh, bytes):
                fh = io.BytesIO(fh)
            self._upload_parts(fh, key, size=size, meta=meta, part_md5s=part_md5s or {})
            # RGW 16 ignores If-None-Match on completion: read back whose object it is
            self._check_existing(key, md5=md5, sha256=sha256, size=size)
            return
        condition = {"IfNoneMatch": "*"} if if_absent else {}
        try:
            if self._signed_put is not None and isinstance(fh, bytes):
                self._signed_put.put(
                    key,
                    fh,
                    sha256=sha256,
                    headers={
                        "Content-MD5": _b64(md5),
                        "Content-Type": ref.kind.mime_type,
                        f"x-amz-meta-{SHA256_METADATA}": sha256,
                        **({"If-None-Match": "*"} if if_absent else {}),
                    },
                )
            else:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=fh,
                    ContentLength=size,
                    ContentMD5=_b64(md5),
                    **condition,
                    **meta,
                )
        except self._failures as exc:
            if _status(exc) != 412:
                raise self._error("uploading", key, exc) from exc
            self._check_existing(key, md5=md5, sha256=sha256, size=size)

    def _upload_parts(
        self,
        fh: BinaryIO,
        key: str,
        *,
        size: int,
        meta: dict[str, Any],
        part_md5s: dict[tuple[int, int], bytes],
    ) -> None:
        try:
            upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, **meta)[
                "UploadId"
            ]
        except self._failures as exc:
            raise self._error("starting the upload of", key, exc) from exc
        part_size = max(self.part_size, math.ceil(size / MAX_PARTS))
        read = _range_reader(fh)

        def send(number: int) -> dict[str, Any]:
            # each thread reads its own part: at most PART_THREADS parts are in memory
            offset = (number - 1) * part_size
            length = min(part_size, size - offset)
            data = read(length, offset)
            known = part_md5s.get((offset, length))
            digest = base64.b64encode(
                known if known is not None else hashlib.md5(data, usedforsecurity=False).digest()
            )
            result = self.client.upload_part(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=data,
                ContentLength=len(data),
                ContentMD5=digest.decode("ascii"),
            )
            return {"PartNumber": number, "ETag": result["ETag"]}

        pool = ThreadPoolExecutor(PART_THREADS, thread_name_prefix="mediastore-s3-part")
        try:
            try:
                parts = list(pool.map(send, range(1, math.ceil(size / part_size) + 1)))
            finally:
                pool.shutdown(cancel_futures=True)
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                IfNoneMatch="*",
            )
        except BaseException as exc:
            self._abort(key, upload_id)
            if isinstance(exc, self._failures) and _status(exc) == 412:
                return  # the object exists (a server that honours the condition)
            if isinstance(exc, self._failures):
                raise self._error("uploading", key, exc) from exc
            raise

    def _abort(self, key: str, upload_id: str) -> None:
        """Abort a multipart upload (best effort: gc aborts what is left after the cut-off)."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except self._failures:
            log.warning(
                "could not abort the upload %s of %s", upload_id, self._url(key), exc_info=True
            )

    def _check_existing(self, key: str, *, md5: str, sha256: str, size: int) -> None:
        """The object at ``key`` holds our content (by its SHA-256 metadata and size).

        An object without that metadata (not made by mediastore) is taken as ours when its
        size matches and its ETag is the MD5 (a single-part upload's ETag is its MD5).
        """
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except self._failures as exc:
            raise self._error("checking", key, exc) from exc
        theirs = head.get("Metadata", {}).get(SHA256_METADATA)
        same_size = head["ContentLength"] == size
        if same_size and (theirs == sha256 or (theirs is None and head["ETag"] == f'"{md5}"')):
            return
        raise HashCollisionError(
            f"{self._url(key)} holds other content with md5 {md5} "
            f"(sha256 {theirs or 'unknown'}, {head['ContentLength']} bytes; ours: sha256 "
            f"{sha256}, {size} bytes): left as it is"
        )

    # --- reading -----------------------------------------------------------------------------
    def stat(self, loc: Location) -> BlobStat | None:
        """Size and ETag of the object at ``loc`` (a HEAD), or None if there is none."""
        key = self.key(loc)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except self._failures as exc:
            if _status(exc) == 404:
                return None
            raise self._error("reading", key, exc) from exc
        return BlobStat(size=head["ContentLength"], regular=True, identity=head["ETag"])

    def open(self, loc: Location) -> tuple[BinaryIO, BlobStat]:
        """The object at ``loc`` as a seekable, streaming file (GetObject), and what it is.

        Raises:
            FileNotFoundError: no such object.
            StorageError: the object could not be read.
        """
        key = self.key(loc)
        try:
            got = self.client.get_object(Bucket=self.bucket, Key=key)
        except self._failures as exc:
            if _status(exc) == 404:
                raise FileNotFoundError(errno.ENOENT, "no such object", self._url(key)) from exc
            raise self._error("opening", key, exc) from exc
        info = BlobStat(size=got["ContentLength"], regular=True, identity=got["ETag"])
        reader = _ObjectReader(
            got["Body"],
            info,
            url=self._url(key),
            failures=self._failures,
            reopen=lambda start: self._get_range(key, start, info.identity),
        )
        return io.BufferedReader(reader, buffer_size=READ_BUFFER), info

    def _get_range(self, key: str, start: int, etag: str) -> Any:
        """The body of ``key`` from byte ``start``, if it is still the object ``etag`` names.

        Raises:
            OSError: it was replaced or removed, or could not be read.
        """
        try:
            return self.client.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes={start}-", IfMatch=etag
            )["Body"]
        except self._failures as exc:
            raise OSError(errno.EIO, f"reading {self._url(key)} failed: {_reason(exc)}") from exc

    # --- the marker ------------------------------------------------------------------------
    def read_marker(self) -> bytes | None:
        """The marker object's bytes, or None if there is none."""
        key = f"{self._key_prefix}{MARKER_KEY}"
        try:
            got = self.client.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes=0-{MARKER_MAX - 1}"
            )
            data: bytes = got["Body"].read()
        except self._failures as exc:
            if _status(exc) == 404:
                return None
            raise self._error("reading", key, exc) from exc
        return data

    def write_marker(self, data: bytes) -> None:
        """Put the marker object (one PUT: it is whole or absent)."""
        self._writable()
        key = f"{self._key_prefix}{MARKER_KEY}"
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType="application/json"
            )
        except self._failures as exc:
            raise self._error("writing", key, exc) from exc

    def delete_marker(self) -> None:
        """Delete the marker object, if there is one."""
        self._writable()
        key = f"{self._key_prefix}{MARKER_KEY}"
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except self._failures as exc:
            raise self._error("deleting", key, exc) from exc

    def walk(self) -> Iterator[StoredEntry]:
        """Every object directly under ``<prefix>/media/<type>s/`` (ListObjectsV2, paged)."""
        pages = self.client.get_paginator("list_objects_v2")
        for directory in TYPED_DIRECTORIES:
            base = f"{self._key_prefix}media/{directory}/"
            try:
                for page in pages.paginate(Bucket=self.bucket, Prefix=base, Delimiter="/"):
                    for obj in page.get("Contents", []):
                        if name := obj["Key"][len(base) :]:
                            yield StoredEntry(directory, name)
            except self._failures as exc:
                raise self._error("listing", base, exc) from exc

    # --- removing --------------------------------------------------------------------------
    def delete(self, loc: Location, *, if_identity: str | None = None) -> bool:
        """Delete the object at ``loc``; True if it was there.

        With ``if_identity``, only if its ETag is still that one (checked by a HEAD just
        before, and sent as If-Match, which RGW 16 ignores: see the module docstring).
        """
        self._writable()
        found = self.stat(loc)
        if found is None or (if_identity is not None and found.identity != if_identity):
            return False
        key = self.key(loc)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key, IfMatch=found.identity)
        except self._failures as exc:
            if _status(exc) in (404, 412):
                return False
            raise self._error("deleting", key, exc) from exc
        return True

    def quarantine(self, loc: Location, *, if_identity: str | None = None) -> str | None:
        """Copy the object at ``loc`` to ``<prefix>/quarantine/``, then delete it.

        The copy is conditional on the ETag examined. Returns where it went, or None if
        nothing was there (or, with ``if_identity``, something else is there now).
        """
        self._writable()
        found = self.stat(loc)
        if found is None or (if_identity is not None and found.identity != if_identity):
            return None
        src = self.key(loc)
        stem, dot, suffix = loc.name.partition(".")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        dest = f"{self._key_prefix}quarantine/{stem}.{stamp}{dot}{suffix}"
        try:
            self.client.copy_object(
                Bucket=self.bucket,
                Key=dest,
                CopySource={"Bucket": self.bucket, "Key": src},
                CopySourceIfMatch=found.identity,
            )
        except self._failures as exc:
            if _status(exc) in (404, 412):
                return None
            raise self._error("quarantining", src, exc) from exc
        try:
            self.client.delete_object(Bucket=self.bucket, Key=src, IfMatch=found.identity)
        except self._failures as exc:
            if _status(exc) in (404, 412):
                return None  # replaced after the copy: the copy stays in quarantine
            raise self._error("quarantining", src, exc) from exc
        return self._url(dest)

    # --- crash leftovers -------------------------------------------------------------------
    def abandoned_uploads(self, *, remove: bool) -> list[str]:
        """Multipart uploads under the prefix older than ``upload_cutoff``; aborted if asked.

        Ages are measured on the server's clock (its Date header against the upload's
        start), never on this host's.
        """
        self._writable()
        found: list[str] = []
        pages = self.client.get_paginator("list_multipart_uploads")
        base = f"{self._key_prefix}media/"
        try:
            for page in pages.paginate(Bucket=self.bucket, Prefix=base):
                now = parsedate_to_datetime(page["ResponseMetadata"]["HTTPHeaders"]["date"])
                for upload in page.get("Uploads", []):
                    if now - upload["Initiated"] < self.upload_cutoff:
                        continue
                    if remove:
                        self._abort(upload["Key"], upload["UploadId"])
                    found.append(f"{self._url(upload['Key'])} (upload {upload['UploadId']})")
        except self._failures as exc:
            raise self._error("listing the uploads under", base, exc) from exc
        return found

    # --- closing ---------------------------------------------------------------------------
    def close(self) -> None:
        """Close the staging area, and the client if this store made it."""
        super().close()
        self._close_client()

    def _close_client(self) -> None:
        if self._signed_put is not None:
            self._signed_put.close()
        if self._own_client:
            self.client.close()


def _range_reader(fh: BinaryIO) -> Callable[[int, int], bytes]:
    """``read(length, offset)`` of ``fh``: pread on a file, a locked seek and read otherwise."""
    try:
        fd = fh.fileno()
    except (OSError, io.UnsupportedOperation):
        lock = threading.Lock()

        def seek_and_read(length: int, offset: int) -> bytes:
            with lock:
                fh.seek(offset)
                return fh.read(length)

        return seek_and_read
    return lambda length, offset: os.pread(fd, length, offset)


class UploadTemp:
    """The temp of content an :class:`S3BlobStore` is staging (a :class:`TempBlob`).

    Content of up to ``memory_limit`` bytes stays in memory and is sent from there: no file
    to create, write, read back and remove per file (a file is made if ``path`` is asked
    for). Larger content goes to a temp file in the staging area (``file``), and once it
    reaches ``part_threshold`` bytes (it will be sent in parts) the MD5 of each further
    part is computed as it is written, on the staging pipeline's writer thread, beside
    the whole-content hashes, so the upload sends those parts without hashing them first.
    """

    def __init__(
        self,
        make_file: Callable[[], LocalTemp],
        name: Path,
        *,
        memory_limit: int,
        part_threshold: int,
        part_size: int,
    ) -> None:
        self.written = 0
        self.synced = False
        self.sha256: str | None = None
        self.file: LocalTemp | None = None
        #: Create the object only if there is none (If-None-Match). A move sets it False:
        #: there the catalog's row, not the server, decides what the key holds.
        self.if_absent = True
        self._make_file = make_file
        self._name = name
        self._chunks: list[bytes] = []
        self._memory_limit = memory_limit
        self._part_threshold = part_threshold
        self._part_size = part_size
        self._part_start: int | None = None  # offset of the part being hashed
        self._part_hash: Any = None
        self._part_md5s: dict[tuple[int, int], bytes] = {}

    @property
    def path(self) -> Path:
        """The temp file's path; content held in memory is written to the file first."""
        return self._spill().path

    @path.setter
    def path(self, value: Path) -> None:
        raise AttributeError("an upload temp names its own file")

    def write(self, data: bytes | memoryview) -> None:
        if self.file is None and self.written + len(data) <= self._memory_limit:
            # a chunk handed over may be a reused buffer: keep a copy (none for bytes)
            self._chunks.append(data if isinstance(data, bytes) else bytes(data))
            self.written += len(data)
            return
        file = self._spill()
        file.write(data)
        self._hash_parts(memoryview(data), self.written)
        self.written = file.written

    def _hash_parts(self, view: memoryview, offset: int) -> None:
        """Feed the part MD5s with ``view`` (the bytes at ``offset``)."""
        end = offset + len(view)
        if self._part_start is None:
            if end < self._part_threshold:
                return
            # the first part boundary from here on; earlier parts are hashed by the upload
            start = -(-offset // self._part_size) * self._part_size
            if start >= end:
                return
            view, offset = view[start - offset :], start
            self._part_start, self._part_hash = start, hashlib.md5(usedforsecurity=False)
        while view:
            room = self._part_start + self._part_size - offset
            piece, view = view[:room], view[room:]
            self._part_hash.update(piece)
            offset += len(piece)
            if offset - self._part_start == self._part_size:
                self._part_md5s[(self._part_start, self._part_size)] = self._part_hash.digest()
                self._part_start, self._part_hash = offset, hashlib.md5(usedforsecurity=False)

    def part_md5s(self) -> dict[tuple[int, int], bytes]:
        """MD5s of the parts hashed while staging, by ``(offset, length)`` (the last, short
        part included)."""
        found = dict(self._part_md5s)
        if self._part_start is not None and self.written > self._part_start:
            found[(self._part_start, self.written - self._part_start)] = self._part_hash.digest()
        return found

    def content(self) -> bytes | None:
        """The whole content if it is held in memory, else None (it is in ``file``)."""
        if self.file is not None:
            return None
        return self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)

    def _spill(self) -> LocalTemp:
        if self.file is None:
            self.file = self._make_file()
            if self.file.path != self._name:
                raise AssertionError(f"temp {self.file.path} made where {self._name} was named")
            for chunk in self._chunks:
                self.file.write(chunk)
            self._chunks = []
        return self.file

    def start_writeback(self, offset: int, length: int) -> None:
        if self.file is not None:
            self.file.start_writeback(offset, length)

    def sync(self) -> None:
        """Mark it synced: uploaded content needs no fsync (a crash only loses the add)."""
        if self.file is not None:
            self.file.sync()
        self.synced = True

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


class _ObjectReader(io.RawIOBase):
    """A GetObject body as a raw, seekable file: a seek reopens at the new offset with a
    ranged GET conditional on the ETag first read, so bytes of two objects never mix."""

    def __init__(
        self,
        body: Any,
        info: BlobStat,
        *,
        url: str,
        failures: tuple[type[BaseException], ...],
        reopen: Callable[[int], Any],
    ) -> None:
        import urllib3.exceptions

        super().__init__()
        self._body: Any = body
        self._info = info
        self._url = url
        # what a body read raises: botocore's errors and urllib3's it does not wrap
        self._failures: tuple[type[BaseException], ...] = (
            *failures,
            urllib3.exceptions.HTTPError,
            OSError,
        )
        self._reopen = reopen
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self._info.size or not len(buffer):
            return 0
        if self._body is None:
            self._body = self._reopen(self._pos)
        try:
            n = int(self._body.readinto(buffer))
        except self._failures as exc:
            self._fail(exc)
        if n == 0:
            self._fail(EOFError(f"ended at byte {self._pos} of {self._info.size}"))
        self._pos += n
        return n

    def _fail(self, exc: BaseException) -> NoReturn:
        raise OSError(errno.EIO, f"reading {self._url} failed: {_reason(exc)}") from exc

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._info.size}[whence]
        target = base + offset
        if target < 0:
            raise OSError(errno.EINVAL, "negative seek position")
        if target != self._pos:
            self._drop_body()
            self._pos = target
        return self._pos

    def tell(self) -> int:
        return self._pos

    def _drop_body(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            body.close()

    def close(self) -> None:
        self._drop_body()
        super().close()
