"""Serving a store whose bytes are in an S3 bucket (RADOS Gateway on loopback)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from served import run_in_thread

from mediastore import MediaStore
from mediastore.testing import noisy_jpeg


@pytest.fixture
def s3_store(tmp_path: Path, s3_env: object) -> Iterator[tuple[MediaStore, str]]:
    root = tmp_path / "store"
    blob_url = f"s3://{s3_env.name}/store"  # type: ignore[attr-defined]
    with MediaStore(root, blob_url=blob_url) as writer:
        md5 = writer.add_bytes(noisy_jpeg((300, 200))).md5
    with MediaStore(root, blob_url=blob_url, read_only=True) as store:
        yield store, md5


def test_media_redirects_to_a_presigned_get(s3_store: tuple[MediaStore, str]) -> None:
    """By default /media answers 307 to a presigned URL that GETs the object's bytes."""
    store, md5 = s3_store
    url, stop = run_in_thread(store)
    try:
        resp = requests.get(f"{url}media/{md5}", allow_redirects=False, timeout=10)
        assert resp.status_code == 307
        assert resp.headers["Cache-Control"] == "no-store"
        target = resp.headers["Location"]
        assert "Signature" in target or "X-Amz-Signature" in target
        body = requests.get(target, timeout=10).content
        assert hashlib.md5(body).hexdigest() == md5
    finally:
        stop()


def test_proxy_streams_with_ranges(s3_store: tuple[MediaStore, str]) -> None:
    """With proxy, the server streams the object: whole, one range, HEAD."""
    store, md5 = s3_store
    url, stop = run_in_thread(store, proxy=True)
    try:
        whole = requests.get(f"{url}media/{md5}", timeout=10)
        assert whole.status_code == 200
        assert hashlib.md5(whole.content).hexdigest() == md5
        assert whole.headers["ETag"] == f'"{md5}"'
        part = requests.get(f"{url}media/{md5}", headers={"Range": "bytes=10-19"}, timeout=10)
        assert part.status_code == 206
        assert part.content == whole.content[10:20]
        head = requests.head(f"{url}media/{md5}", timeout=10)
        assert head.content == b""
        assert int(head.headers["Content-Length"]) == len(whole.content)
        thumb = requests.get(f"{url}thumb/{md5}/128", timeout=10)
        assert thumb.status_code == 200
    finally:
        stop()
