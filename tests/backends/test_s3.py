"""S3BlobStore on a real Ceph RGW (tests/servers.py): integrity checks made by the server, races
between stores sharing a bucket and a catalog, multipart uploads, crash leftovers, removal and
verification. What is stored is checked with boto3 and sqlite3 directly, not through
mediastore. (moto accepts corrupted uploads, so none of this runs on it.)"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import servers
from scripted import Reply, Request, ScriptedServer

from mediastore import (
    HashCollisionError,
    InvalidInputError,
    MediaNotFoundError,
    MediaStore,
    StorageError,
)
from mediastore import testing as t
from mediastore.blobs import open_blob_store
from mediastore.blobs.base import BlobRef
from mediastore.blobs.s3 import MEMORY_TEMP_LIMIT, S3BlobStore
from mediastore.formats.detect import BY_EXTENSION

PART = 5 << 20
#: A threshold and part size that make an 11 MiB file a 3-part upload.
MULTIPART = f"multipart_threshold={6 << 20}&part_size={PART}"
BIG_PAYLOAD = 11 << 20


@pytest.fixture
def bucket(s3_env: servers.S3Bucket) -> servers.S3Bucket:
    return s3_env


@pytest.fixture
def open_store(tmp_path: Path, bucket: servers.S3Bucket) -> Iterator[Callable[..., MediaStore]]:
    """Stores on the test bucket: own local roots, one shared SQLite catalog file."""
    opened: list[MediaStore] = []

    def make(name: str = "a", options: str = "", **settings: Any) -> MediaStore:
        url = f"s3://{bucket.name}/store" + (f"?{options}" if options else "")
        store = MediaStore(tmp_path / name, db_url=f"sqlite:///{tmp_path / 'catalog.db'}",
                           blob_url=url, **settings)  # fmt: skip
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def objects(bucket: servers.S3Bucket, under: str = "store/media/") -> dict[str, dict[str, Any]]:
    """Key -> listing entry of every object under ``under`` (boto3, paged)."""
    found: dict[str, dict[str, Any]] = {}
    for page in bucket.client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket.name, Prefix=under
    ):
        found.update({o["Key"]: o for o in page.get("Contents", [])})
    return found


def uploads(bucket: servers.S3Bucket) -> list[dict[str, Any]]:
    return list(bucket.client.list_multipart_uploads(Bucket=bucket.name).get("Uploads", []))


def rows(tmp_path: Path) -> dict[str, tuple[str, str, str, int]]:
    """md5 -> (status, extension, sha256, size) of the shared catalog, read with sqlite3."""
    with sqlite3.connect(tmp_path / "catalog.db") as conn:
        return {
            md5: (status, ext, sha, size)
            for md5, status, ext, sha, size in conn.execute(
                "SELECT md5, status, extension, sha256, size FROM media"
            )
        }


def key_of(md5: str, ext: str) -> str:
    return f"store/{BlobRef(BY_EXTENSION[ext], md5).key}"


def b64md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def in_threads(work: Callable[[int], None], count: int) -> None:
    """Run ``work(0..count-1)`` on that many threads at once and wait for all."""
    threads = [threading.Thread(target=work, args=(n,)) for n in range(count)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


def temp_files(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "tmp").iterdir() if p.is_file())


# --- integrity decided by the server --------------------------------------------------------


@pytest.mark.parametrize("body", ["stream", "bytes"])
def test_a_wrong_content_md5_is_refused_by_the_server(
    open_store: Callable[..., MediaStore], bucket: servers.S3Bucket, body: str
) -> None:
    """The upload path with a corrupted digest: RGW answers BadDigest, no object is made.
    A stream goes through the client's put_object, bytes through the signed PUT."""
    store = open_store()
    blobs = store.blobs
    assert isinstance(blobs, S3BlobStore)
    data = t.noisy_jpeg()
    sha256 = hashlib.sha256(data).hexdigest()
    good = hashlib.md5(data).hexdigest()
    ref = BlobRef(BY_EXTENSION["jpg"], good)
    wrong = good[:-1] + ("0" if good[-1] != "0" else "1")

    def content() -> io.BytesIO | bytes:
        return io.BytesIO(data) if body == "stream" else data

    with pytest.raises(StorageError, match=r"BadDigest \(HTTP 400\)"):
        blobs.upload(content(), ref, md5=wrong, sha256=sha256, size=len(data))
    assert objects(bucket) == {}
    blobs.upload(content(), ref, md5=good, sha256=sha256, size=len(data))
    head = bucket.client.head_object(Bucket=bucket.name, Key=f"store/{ref.key}")
    assert head["ETag"] == f'"{good}"' and head["ContentType"] == "image/jpeg"
    assert head["Metadata"] == {"sha256": sha256}


def test_a_signed_put_has_the_server_check_the_sha256_too(
    open_store: Callable[..., MediaStore], bucket: servers.S3Bucket
) -> None:
    """Content in memory is signed with its SHA-256 as the payload hash: bytes that do not
    hash to the SHA-256 given (right MD5) are refused by RGW, no object is made."""
    store = open_store()
    blobs = store.blobs
    assert isinstance(blobs, S3BlobStore)
    data = t.noisy_jpeg()
    ref = BlobRef(BY_EXTENSION["jpg"], hashlib.md5(data).hexdigest())
    with pytest.raises(StorageError, match="XAmzContentSHA256Mismatch"):
        blobs.upload(data, ref, md5=ref.md5, sha256="0" * 64, size=len(data))
    assert objects(bucket) == {}


def count_put_object_calls(store: MediaStore) -> list[str]:
    """Keys of the PutObject calls the store's boto3 client makes from now on."""
    calls: list[str] = []
    store.blobs.client.meta.events.register(  # type: ignore[attr-defined]
        "before-call.s3.PutObject", lambda params, **_: calls.append(params["url_path"])
    )
    return calls


def test_small_content_goes_by_signed_put_where_a_profile_says(
    tmp_path: Path, bucket: servers.S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Endpoint, region and keys named only by a profile of ~/.aws (AWS_PROFILE): content in
    memory is sent without a put_object call, to where the client goes, and the object is
    the content with its SHA-256 and MIME type; a 412 (the object exists) is success."""
    config, credentials = tmp_path / "aws-config", tmp_path / "aws-credentials"
    config.write_text(
        f"[profile rgw]\nendpoint_url = {bucket.endpoint}\nregion = {bucket.region}\n"
        "s3 =\n    addressing_style = path\n"
    )
    credentials.write_text(
        f"[rgw]\naws_access_key_id = {bucket.access_key}\n"
        f"aws_secret_access_key = {bucket.secret_key}\n"
    )
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_SESSION_TOKEN"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_PROFILE", "rgw")
    with MediaStore(tmp_path / "s", blob_url=f"s3://{bucket.name}/store") as store:
        calls = count_put_object_calls(store)
        data = t.pdf_bytes("by profile")  # not an image: no probe asks for a temp file
        rec = store.add_bytes(data)
        again = store.blobs.upload(  # type: ignore[attr-defined]
            data, BlobRef(BY_EXTENSION["pdf"], rec.md5), md5=rec.md5,
            sha256=rec.sha256, size=len(data),
        )  # fmt: skip
        assert calls == [] and again is None
    got = bucket.client.get_object(Bucket=bucket.name, Key=key_of(rec.md5, "pdf"))
    assert got["Body"].read() == data and got["ContentType"] == "application/pdf"
    assert got["Metadata"] == {"sha256": hashlib.sha256(data).hexdigest()}


def test_existing_object_with_other_content_is_a_collision_and_left_alone(
    open_store: Callable[..., MediaStore], bucket: servers.S3Bucket, tmp_path: Path
) -> None:
    """If-None-Match answers 412; the object's SHA-256 says it is other content: refused."""
    store = open_store()
    data = t.image_bytes("PNG")
    md5 = hashlib.md5(data).hexdigest()
    key = key_of(md5, "png")
    # same md5 and size as far as the server can tell; other content by its SHA-256
    bucket.client.put_object(Bucket=bucket.name, Key=key, Body=data,
                             Metadata={"sha256": "f" * 64})  # fmt: skip
    before = bucket.client.head_object(Bucket=bucket.name, Key=key)
    with pytest.raises(HashCollisionError, match="other content"):
        store.add_bytes(data, url="https://x.test/c")
    after = bucket.client.head_object(Bucket=bucket.name, Key=key)
    assert (after["ETag"], after["Metadata"], after["LastModified"]) == (
        before["ETag"], before["Metadata"], before["LastModified"],
    )  # fmt: skip
    assert rows(tmp_path) == {}
    assert temp_files(store.root) == []


def test_two_stores_adding_the_same_content_at_once_make_one_object_and_one_row(
    open_store: Callable[..., MediaStore], bucket: servers.S3Bucket, tmp_path: Path
) -> None:
    """Two stores (own roots, one catalog, one bucket), 4 threads, the same 12 contents (one
    of them multipart) in different orders: 12 objects, 12 rows, each object the row's bytes."""
    stores = [open_store("a", MULTIPART), open_store("b", MULTIPART)]
    contents = [t.noisy_jpeg(seed=i) for i in range(10)] + [
        t.pdf_bytes("shared"),
        t.mp4_bytes(BIG_PAYLOAD),
    ]
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        store = stores[n % 2]
        order = contents if n < 2 else contents[::-1]
        try:
            barrier.wait()
            for i, data in enumerate(order):
                store.add_bytes(data, url=f"https://x.test/{n}/{i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    in_threads(work, 4)
    assert errors == []
    found = objects(bucket)
    catalog = rows(tmp_path)
    assert len(found) == len(catalog) == len(contents)
    for data in contents:
        md5 = hashlib.md5(data).hexdigest()
        status, ext, sha, size = catalog[md5]
        assert status == "ok" and size == len(data) == found[key_of(md5, ext)]["Size"]
        head = bucket.client.head_object(Bucket=bucket.name, Key=key_of(md5, ext))
        assert head["Metadata"]["sha256"] == sha == hashlib.sha256(data).hexdigest()
    assert uploads(bucket) == []
    assert temp_files(tmp_path / "a") == temp_files(tmp_path / "b") == []


def test_same_content_added_at_once_in_one_store_leaves_no_temp_file(
    backend_store: MediaStore,
) -> None:
    """4 threads adding the same 40 contents into one store, on disk and on S3: commits
    group same-md5 entries into one batch, one is placed, and every temp file is removed."""
    store = backend_store
    contents = [t.noisy_jpeg(seed=i) for i in range(40)]
    barrier = threading.Barrier(4)

    def work() -> None:
        barrier.wait()
        for data in contents:
            store.add_bytes(data)

    in_threads(lambda _: work(), 4)
    assert store.stats().total_files == 40 and len(list(store.blobs.walk())) == 40
    assert temp_files(store.root) == []


@dataclass
class FakeS3:
    """A loopback S3 endpoint: any bucket exists (HEAD, in ``region`` if set), each PUT gets
    the next scripted answer ``(status, error code)``, and is kept with its headers and body.

    Attributes:
        url: The blob URL of a store on it.
        answers: What the next PUTs are answered, in order.
        seen: Each PUT's headers (as the client spelled them) and body.
        region: The region HeadBucket names (none if None).
    """

    url: str = "s3://any-bucket/store"
    answers: list[tuple[int, str]] = field(default_factory=list)
    seen: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    region: str | None = None

    def answer(self, request: Request, reply: Reply) -> None:
        if request.method == "HEAD":
            region = {} if self.region is None else {"x-amz-bucket-region": self.region}
            reply.respond(200, headers=region)
        elif request.method == "PUT":
            self.seen.append((dict(request.headers.items()), request.body))
            status, code = self.answers.pop(0)
            error = f"<Error><Code>{code}</Code><Message>said {code}</Message></Error>".encode()
            reply.respond(status, error if code else b"")
        else:
            reply.respond(501, b"only HEAD and PUT here")


@pytest.fixture
def scripted_s3(
    s3_env: servers.S3Bucket,
    monkeypatch: pytest.MonkeyPatch,
    scripted: Callable[..., ScriptedServer],
) -> FakeS3:
    """A FakeS3 on a scripted server, as AWS_ENDPOINT_URL (keys and region of s3_env)."""
    fake = FakeS3()
    monkeypatch.setenv("AWS_ENDPOINT_URL", scripted(fake.answer).base_url)
    return fake


def test_a_signed_put_retries_what_is_transient_and_reports_the_rest(
    tmp_path: Path, scripted_s3: FakeS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signed PUT signs its payload with the SHA-256, retries a 503 SlowDown and a 500
    (AWS_MAX_ATTEMPTS=3) and succeeds on the third attempt; an AccessDenied is not retried
    and is a StorageError naming code, status and message."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    (tmp_path / "root").mkdir()
    blobs = open_blob_store(scripted_s3.url, tmp_path / "root", read_only=False)
    assert isinstance(blobs, S3BlobStore)
    data = t.noisy_jpeg()
    ref = BlobRef(BY_EXTENSION["jpg"], hashlib.md5(data).hexdigest())
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        scripted_s3.answers = [(503, "SlowDown"), (500, "InternalError"), (200, "")]
        blobs.upload(data, ref, md5=ref.md5, sha256=sha256, size=len(data))
        assert len(scripted_s3.seen) == 3
        for headers, body in scripted_s3.seen:
            assert body == data and headers["x-amz-meta-sha256"] == sha256
            assert headers["X-Amz-Content-SHA256"] == sha256 and headers["If-None-Match"] == "*"
            assert headers["Content-MD5"] == b64md5(data)
            assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=")
        scripted_s3.seen.clear()
        scripted_s3.answers = [(403, "AccessDenied")]
        refused = r"/store/media/images/\w+\.jpg failed: AccessDenied \(HTTP 403\): said Acc"
        with pytest.raises(StorageError, match=refused):
            blobs.upload(data, ref, md5=ref.md5, sha256=sha256, size=len(data))
        assert len(scripted_s3.seen) == 1 and scripted_s3.answers == []
    finally:
        blobs.close()


def test_a_bucket_in_another_region_gets_its_puts_from_the_client(
    tmp_path: Path, scripted_s3: FakeS3
) -> None:
    """HeadBucket names another region than the client signs for (AWS does, RGW does not):
    content in memory goes by the client's put_object, which follows S3's redirects."""
    scripted_s3.region = "eu-west-1"
    (tmp_path / "root").mkdir()
    blobs = open_blob_store(scripted_s3.url, tmp_path / "root", read_only=False)
    assert isinstance(blobs, S3BlobStore)
    data = t.noisy_jpeg()
    ref = BlobRef(BY_EXTENSION["jpg"], hashlib.md5(data).hexdigest())
    try:
        scripted_s3.answers = [(200, "")]
        blobs.upload(data, ref, md5=ref.md5, sha256=hashlib.sha256(data).hexdigest(),
                     size=len(data))  # fmt: skip
    finally:
        blobs.close()
    [(headers, body)] = scripted_s3.seen
    assert body == data and headers["User-Agent"].startswith("Boto3/")


# --- multipart ------------------------------------------------------------------------------


def test_multipart_parts_carry_their_content_md5(
    open_store: Callable[..., MediaStore], bucket: servers.S3Bucket
) -> None:
    """An 11 MiB file over a 6 MiB threshold goes in three 5 MiB parts, each with the
    Content-MD5 of its own bytes; the object is the file, its SHA-256 in the metadata."""
    store = open_store(options=MULTIPART)
    sent: list[tuple[str, str]] = []

    def record(request: Any, **_: Any) -> None:
        body = request.body
        if not isinstance(body, bytes):  # a stream: read it, and leave it where it was
            start = body.tell()
            body, _ = body.read(), body.seek(start)
        sent.append((request.headers["Content-MD5"].decode(), b64md5(body)))

    store.blobs.client.meta.events.register("before-send.s3.UploadPart", record)  # type: ignore[attr-defined]
    data = t.mp4_bytes(BIG_PAYLOAD)
    rec = store.add_bytes(data)
    assert len(sent) == 3 and all(header == actual for header, actual in sent)
    head = bucket.client.head_object(Bucket=bucket.name, Key=key_of(rec.md5, "mp4"))
    assert head["ETag"].endswith('-3"') and head["ContentLength"] == len(data)
    assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
    got = bucket.client.get_object(Bucket=bucket.name, Key=key_of(rec.md5, "mp4"))
    assert hashlib.md5(got["Body"].read()).hexdigest() == rec.md5


def test_parts_hashed_while_staging_are_sent_with_those_digests(
    open_store: Callable[..., MediaStore], bucket: servers.S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Content over the multipart threshold has the MD5 of each part from the threshold on
    computed as it is staged (here parts 2 and 3 of 11 MiB, 5 MiB threshold and parts); the
    upload sends those digests as the parts' Content-MD5, and hashes part 1 itself; a digest
    from staging that is wrong is refused by the server (so the server, not staging, is
    what vouches for each part), the upload aborted and nothing recorded."""
    store = open_store(options=f"multipart_threshold={PART}&part_size={PART}")
    blobs = store.blobs
    assert isinstance(blobs, S3BlobStore)
    given: list[dict[tuple[int, int], bytes]] = []
    real = S3BlobStore._upload_parts

    def spy(self: S3BlobStore, *args: Any, **kwargs: Any) -> None:
        given.append(dict(kwargs["part_md5s"]))
        real(self, *args, **kwargs)

    monkeypatch.setattr(S3BlobStore, "_upload_parts", spy)
    data = t.mp4_bytes(BIG_PAYLOAD)
    rec = store.add_bytes(data)
    assert given == [{
        (PART, PART): hashlib.md5(data[PART : 2 * PART]).digest(),
        (2 * PART, len(data) - 2 * PART): hashlib.md5(data[2 * PART :]).digest(),
    }]  # fmt: skip
    got = bucket.client.get_object(Bucket=bucket.name, Key=key_of(rec.md5, "mp4"))
    assert hashlib.md5(got["Body"].read()).hexdigest() == rec.md5

    def corrupt(self: S3BlobStore, *args: Any, **kwargs: Any) -> None:
        kwargs["part_md5s"] = {
            k: hashlib.md5(b"not this part").digest() for k in kwargs["part_md5s"]
        }
        real(self, *args, **kwargs)

    monkeypatch.setattr(S3BlobStore, "_upload_parts", corrupt)
    other = t.mp4_bytes(BIG_PAYLOAD + 1)
    with pytest.raises(StorageError, match="BadDigest"):
        store.add_bytes(other)
    assert uploads(bucket) == []
    assert store.get_by_md5(hashlib.md5(other).hexdigest()) is None
    assert temp_files(store.root) == []


def test_small_content_is_staged_in_memory_and_larger_in_a_temp_file(
    open_store: Callable[..., MediaStore], bucket: servers.S3Bucket
) -> None:
    """Up to MEMORY_TEMP_LIMIT bytes a temp holds its content in memory (no file in tmp/)
    and is uploaded from there; beyond, it is a file in tmp/; asking a small temp for its
    path writes the file. Either way the object is the content and no temp file is left."""
    store = open_store()
    blobs = store.blobs
    assert isinstance(blobs, S3BlobStore)
    small = blobs.create_temp()
    small.write(b"x" * 10)
    small.write(memoryview(b"y" * 10))
    assert (
        small.file is None
        and temp_files(store.root) == []
        and small.content() == b"x" * 10 + b"y" * 10
    )
    named = small.path
    assert small.file is not None and temp_files(store.root) == [named.name]
    assert named.read_bytes() == b"x" * 10 + b"y" * 10
    blobs.discard(small)
    assert temp_files(store.root) == []
    large = blobs.create_temp()
    large.write(bytes(MEMORY_TEMP_LIMIT + 1))
    assert large.file is not None and large.content() is None and len(temp_files(store.root)) == 1
    blobs.discard(large)
    for data in (t.noisy_jpeg(), t.mp4_bytes(MEMORY_TEMP_LIMIT * 2)):
        rec = store.add_bytes(data)
        got = bucket.client.get_object(Bucket=bucket.name, Key=key_of(rec.md5, rec.extension))
        assert got["Body"].read() == data
    assert temp_files(store.root) == []


def test_a_refused_part_aborts_the_upload(
    open_store: Callable[..., MediaStore], bucket: servers.S3Bucket, tmp_path: Path
) -> None:
    """Part 2 sent with a wrong Content-MD5: RGW refuses it, the upload is aborted (none left
    in list_multipart_uploads), no object, no row, no temp file."""
    store = open_store(options=MULTIPART)

    def corrupt_part_two(params: dict[str, Any], **_: Any) -> None:
        if params["PartNumber"] == 2:
            params["ContentMD5"] = b64md5(b"not this part")

    store.blobs.client.meta.events.register(
        "before-parameter-build.s3.UploadPart", corrupt_part_two
    )  # type: ignore[attr-defined]
    with pytest.raises(StorageError, match="BadDigest"):
        store.add_bytes(t.mp4_bytes(BIG_PAYLOAD), url="https://x.test/big")
    assert uploads(bucket) == []
    assert objects(bucket) == {}
    assert rows(tmp_path) == {}
    assert temp_files(store.root) == []


def test_rgw_ignores_if_none_match_on_multipart_completion(bucket: servers.S3Bucket) -> None:
    """The server fact the multipart guard is built around: completing an upload with
    ``If-None-Match: *`` over an existing key replaces the object (a single PUT gets 412)."""
    s3, name = bucket.client, bucket.name
    s3.put_object(Bucket=name, Key="k", Body=b"first")
    with pytest.raises(s3.exceptions.ClientError, match="PreconditionFailed"):
        s3.put_object(Bucket=name, Key="k", Body=b"second", IfNoneMatch="*")
    upload = s3.create_multipart_upload(Bucket=name, Key="k")["UploadId"]
    etag = s3.upload_part(Bucket=name, Key="k", UploadId=upload, PartNumber=1, Body=b"third")
    s3.complete_multipart_upload(
        Bucket=name, Key="k", UploadId=upload, IfNoneMatch="*",
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag["ETag"]}]},
    )  # fmt: skip
    assert s3.get_object(Bucket=name, Key="k")["Body"].read() == b"third"


def test_a_multipart_upload_replaced_by_other_content_is_a_collision(
    open_store: Callable[..., MediaStore], bucket: servers.S3Bucket, tmp_path: Path
) -> None:
    """Another writer's completion of other content at the same address lands right after
    ours (the server does not stop it): the SHA-256 read back tells, and nothing is recorded."""
    store = open_store(options=MULTIPART)
    data = t.mp4_bytes(BIG_PAYLOAD)
    key = key_of(hashlib.md5(data).hexdigest(), "mp4")

    def other_writer(**_: Any) -> None:
        bucket.client.put_object(Bucket=bucket.name, Key=key, Body=b"other",
                                 Metadata={"sha256": "e" * 64})  # fmt: skip

    store.blobs.client.meta.events.register(  # type: ignore[attr-defined]
        "after-call.s3.CompleteMultipartUpload", other_writer
    )
    with pytest.raises(HashCollisionError, match="other content"):
        store.add_bytes(data)
    assert rows(tmp_path) == {}
    assert bucket.client.get_object(Bucket=bucket.name, Key=key)["Body"].read() == b"other"


CHILD = """
import sys, time
from mediastore import MediaStore
root, db, url, src = sys.argv[1:5]
store = MediaStore(root, db_url=db, blob_url=url)
def stall(**_):
    print("part sent", flush=True)
    time.sleep(600)
store.blobs.client.meta.events.register("after-call.s3.UploadPart", stall)
store.add_file(src)
"""


def test_a_crash_mid_upload_leaves_no_row_and_gc_aborts_the_upload(
    tmp_path: Path, bucket: servers.S3Bucket
) -> None:
    """A process SIGKILLed after its first part: no row, no object; gc (cut-off 0) aborts the
    upload and removes the dead writer's temp file; a dry run before only lists them."""
    src = tmp_path / "big.mp4"
    src.write_bytes(t.mp4_bytes(BIG_PAYLOAD))
    db = f"sqlite:///{tmp_path / 'catalog.db'}"
    url = f"s3://{bucket.name}/store?{MULTIPART}"
    env = {**os.environ, **bucket.env}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "a"), db, url, str(src)],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline() == "part sent\n"
        assert len(uploads(bucket)) == 1
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        if child.stdout is not None:
            child.stdout.close()
    assert rows(tmp_path) == {}
    assert objects(bucket) == {}
    assert len(temp_files(tmp_path / "a")) == 1
    with MediaStore(tmp_path / "a", db_url=db, blob_url=f"{url}&upload_cutoff=3600") as young:
        assert young.gc(dry_run=True).temp_removed == [
            str(tmp_path / "a" / "tmp" / name) for name in temp_files(tmp_path / "a")
        ]
    assert len(uploads(bucket)) == 1  # younger than the cut-off: a live writer's, maybe
    # ages are taken from the server's Date header, which has whole seconds: an upload
    # started in the current second is younger than the cut-off 0 until the second ends
    time.sleep(1.0)
    with MediaStore(tmp_path / "a", db_url=db, blob_url=f"{url}&upload_cutoff=0") as store:
        dry = store.gc(dry_run=True)
        assert len(dry.temp_removed) == 2 and len(uploads(bucket)) == 1
        report = store.gc()
    assert sorted(report.temp_removed) == sorted(dry.temp_removed)
    assert any("(upload " in entry for entry in report.temp_removed)
    assert uploads(bucket) == []
    assert temp_files(tmp_path / "a") == []
    assert rows(tmp_path) == {} and objects(bucket) == {}


# --- removing and verifying -----------------------------------------------------------------


def test_rm_and_gc_never_delete_an_object_a_row_references(
    open_store: Callable[..., MediaStore], bucket: servers.S3Bucket, tmp_path: Path
) -> None:
    """rm of 3 of 8 contents, then gc with an unrecorded valid object and a junk one in the
    tree: every ok row's object is there (boto3, sqlite3), removed ones are gone, the valid
    stray is adopted, the junk quarantined."""
    store = open_store()
    recs = [store.add_bytes(t.noisy_jpeg(seed=i), url=f"https://x.test/{i}") for i in range(8)]
    for rec in recs[:3]:
        store.remove(rec.md5)
    stray = t.pdf_bytes("stray")
    stray_md5 = hashlib.md5(stray).hexdigest()
    bucket.client.put_object(Bucket=bucket.name, Key=key_of(stray_md5, "pdf"), Body=stray)
    bucket.client.put_object(Bucket=bucket.name, Key="store/media/images/junk.jpg", Body=b"x")
    report = store.gc()
    assert report.adopted == [stray_md5]
    assert [where for where, _ in report.quarantined] == [
        f"s3://{bucket.name}/store/media/images/junk.jpg"
    ]
    catalog = rows(tmp_path)
    found = objects(bucket)
    for md5, (status, ext, _, size) in catalog.items():
        if status == "ok":
            assert found[key_of(md5, ext)]["Size"] == size
        else:
            assert status == "removed" and key_of(md5, ext) not in found
    assert sorted(m for m, r in catalog.items() if r[0] == "removed") == sorted(
        r.md5 for r in recs[:3]
    )
    assert len(found) == 6  # 5 kept + the adopted stray
    assert len(objects(bucket, "store/quarantine/")) == 1


def test_verify_finds_a_corrupted_object_and_quarantines_it(
    open_store: Callable[..., MediaStore], bucket: servers.S3Bucket, tmp_path: Path
) -> None:
    """An object overwritten behind the store's back (boto3): verify reports it corrupt, moves
    it to quarantine/ (bytes kept), marks the row; the intact one passes; re-adding repairs."""
    store = open_store()
    good = store.add_bytes(t.noisy_jpeg(seed=1))
    data = t.noisy_jpeg(seed=2)
    bad = store.add_bytes(data, url="https://x.test/bad")
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0xFF
    key = key_of(bad.md5, "jpg")
    bucket.client.put_object(Bucket=bucket.name, Key=key, Body=bytes(damaged))
    report = store.verify()
    assert (report.ok, report.corrupt) == ([good.md5], [bad.md5])
    assert rows(tmp_path)[bad.md5][0] == "corrupt"
    assert key not in objects(bucket)
    [moved] = objects(bucket, "store/quarantine/")
    assert bucket.client.get_object(Bucket=bucket.name, Key=moved)["Body"].read() == damaged
    store.add_bytes(data)
    assert rows(tmp_path)[bad.md5][0] == "ok"
    assert store.verify(bad.md5, deep=True).ok == [bad.md5]


def test_verify_repair_downloads_a_good_copy_into_the_bucket(
    open_store: Callable[..., MediaStore], bucket: servers.S3Bucket, tmp_path: Path, http: Any
) -> None:
    """verify --repair on S3: the overwritten object is quarantined and the content fetched
    again from its recorded URL (loopback) is uploaded to its address; the row is ok again."""
    store = open_store(allow_private_networks=True, retries=0)
    data = t.noisy_jpeg(seed=5)
    http.expect_request("/a.jpg").respond_with_data(data, content_type="image/jpeg")
    rec = store.fetch(http.url_for("/a.jpg"))
    key = key_of(rec.md5, "jpg")
    bucket.client.put_object(Bucket=bucket.name, Key=key, Body=b"\xff\xd8 not any more")
    report = store.verify(repair=True)
    assert (report.corrupt, report.repaired) == ([rec.md5], [rec.md5])
    assert bucket.client.get_object(Bucket=bucket.name, Key=key)["Body"].read() == data
    assert rows(tmp_path)[rec.md5][0] == "ok"
    assert len(objects(bucket, "store/quarantine/")) == 1


def test_quarantine_and_delete_act_only_on_the_object_examined(
    open_store: Callable[..., MediaStore], bucket: servers.S3Bucket
) -> None:
    """With an identity (ETag) that is no longer the object's, nothing is moved or deleted."""
    store = open_store()
    rec = store.add_bytes(t.noisy_jpeg())
    ref = BlobRef(BY_EXTENSION["jpg"], rec.md5)
    blobs = store.blobs
    assert blobs.quarantine(ref, if_identity='"0123"') is None
    assert blobs.delete(ref, if_identity='"0123"') is False
    assert list(objects(bucket)) == [key_of(rec.md5, "jpg")]
    assert objects(bucket, "store/quarantine/") == {}


def test_rgw_condition_headers(bucket: servers.S3Bucket) -> None:
    """The server facts the removal path is built on: RGW 16 honours If-Match on GetObject
    and ``x-amz-copy-if-match`` on CopyObject, but ignores If-Match on DeleteObject (so the
    catalog's lock, not the server, keeps writers out between the check and the delete)."""
    s3, name = bucket.client, bucket.name
    s3.put_object(Bucket=name, Key="k", Body=b"one")
    with pytest.raises(s3.exceptions.ClientError, match="PreconditionFailed"):
        s3.get_object(Bucket=name, Key="k", IfMatch='"0000"')

    def rgw_header(request: Any, **_: Any) -> None:
        request.headers["x-amz-copy-if-match"] = '"0000"'

    s3.meta.events.register("before-sign.s3.CopyObject", rgw_header, unique_id="rgw-if")
    try:
        with pytest.raises(s3.exceptions.ClientError, match="PreconditionFailed"):
            s3.copy_object(Bucket=name, Key="q", CopySource={"Bucket": name, "Key": "k"})
    finally:
        s3.meta.events.unregister("before-sign.s3.CopyObject", unique_id="rgw-if")
    s3.delete_object(Bucket=name, Key="k", IfMatch='"0000"')
    assert "Contents" not in s3.list_objects_v2(Bucket=name)


# --- the public API -------------------------------------------------------------------------


def test_public_api_on_a_bucket(
    open_store: Callable[..., MediaStore], bucket: servers.S3Bucket, tmp_path: Path
) -> None:
    """add_file, add_bytes, get_by_url, open (streaming, seekable), verify, stats, remove and
    gc with blob_url=; records have no local path; root holds only the staging area."""
    store = open_store(options=MULTIPART)
    src = tmp_path / "clip.mp4"
    big = t.mp4_bytes(BIG_PAYLOAD)
    src.write_bytes(big)
    video = store.add_file(src, url="https://x.test/clip.mp4")
    image = store.add_bytes(t.noisy_jpeg(), url="https://x.test/a.jpg")
    assert video.path is None and image.path is None
    found = store.get_by_url("https://x.test/clip.mp4")
    assert found is not None and found.md5 == video.md5
    with store.open(video.md5) as fh:
        assert fh.read(1000) == big[:1000]
        fh.seek(len(big) - 10)
        assert fh.read() == big[-10:]
        fh.seek(PART - 3)
        assert fh.read(6) == big[PART - 3 : PART + 3] and fh.tell() == PART + 3
    assert sorted(store.verify().ok) == sorted([video.md5, image.md5])
    st = store.stats()
    assert (st.total_files, st.total_size, st.total_urls) == (2, len(big) + image.size, 2)
    store.remove(image.md5)
    assert store.get_by_url("https://x.test/a.jpg") is None
    with pytest.raises(MediaNotFoundError):
        store.open(image.md5)
    assert list(objects(bucket)) == [key_of(video.md5, "mp4")]
    assert store.gc().adopted == []
    assert sorted(p.name for p in store.root.iterdir() if p.is_dir()) == ["tmp"]


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("ftp://host/x", "unsupported blob URL"),
        ("s3:///prefix", "not an s3://bucket/prefix URL"),
        ("s3://key:secret@bucket/p", "credentials do not belong"),
        ("s3://bucket/p?colour=red", "unknown option 'colour'"),
        ("s3://bucket/p?part_size=1024", "part_size must be"),
        ("s3://bucket/p?multipart_threshold=lots", "bad value 'lots'"),
    ],
)
def test_bad_blob_urls_are_clear_errors(tmp_path: Path, url: str, error: str) -> None:
    """A bad blob URL is an InvalidInputError (exit 2) before anything is created."""
    with pytest.raises(InvalidInputError, match=error) as info:
        open_blob_store(url, tmp_path / "root", read_only=False)
    assert info.value.exit_code == 2
    assert not (tmp_path / "root").exists()


def test_a_missing_bucket_is_a_storage_error(tmp_path: Path, s3_env: servers.S3Bucket) -> None:
    """A bucket that does not exist fails the open, naming it; no staging area is made."""
    with pytest.raises(StorageError, match="s3://no-such-bucket-here"):
        open_blob_store("s3://no-such-bucket-here/p", tmp_path / "root", read_only=False)
    assert not (tmp_path / "root").exists()


def test_without_boto3_the_error_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No boto3: one line naming ``pip install 'mediastore[s3]'``, exit code 2."""
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(InvalidInputError, match=r"pip install 'mediastore\[s3\]'") as info:
        open_blob_store("s3://bucket/p", tmp_path / "root", read_only=False)
    assert info.value.exit_code == 2 and "\n" not in str(info.value)
    assert not (tmp_path / "root").exists()
