"""MediaStore: adding, dedup, atomicity, lookups, verify, stats and remove on real files."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import sqlite3
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from mediastore import (
    CatalogError,
    FileTooLargeError,
    HashCollisionError,
    InvalidInputError,
    InvalidMD5Error,
    MediaNotFoundError,
    MediaRecord,
    MediaStore,
    MediaStoreError,
    StorageError,
)
from mediastore import testing as t
from mediastore.catalog import Catalog
from mediastore.testing import assert_nothing_stored, catalog_rows, files_under


def stored_bytes(store: MediaStore, md5: str) -> bytes:
    """The stored bytes of ``md5``, read through the store (on any backend)."""
    with store.open(md5) as fh:
        return fh.read()


def test_record_fields_match_the_catalog_row(store: MediaStore, tmp_path: Path) -> None:
    """A looked-up record carries each column of its row (read with plain sqlite3)."""
    src = tmp_path / "p.png"
    src.write_bytes(t.image_bytes("PNG", size=(33, 21)))
    md5 = store.add_file(src).md5
    rec = store.get_by_md5(md5)
    assert rec is not None
    con = sqlite3.connect(store.root / "catalog.sqlite3")
    try:
        con.row_factory = sqlite3.Row
        row = con.execute("SELECT * FROM media WHERE md5 = ?", (md5,)).fetchone()
    finally:
        con.close()
    for name in ("md5", "sha256", "media_type", "mime_type", "extension", "size", "status"):
        assert getattr(rec, name) == row[name], name
    assert (rec.width, rec.height) == (row["width"], row["height"]) == (33, 21)
    assert rec.created_at.isoformat().startswith(row["created_at"][:19].replace(" ", "T"))
    assert rec.last_verified_at is None and row["last_verified_at"] is None
    assert rec.directory == store.root / "media" / "images" and rec.url is None


def test_add_file_records_everything(store: MediaStore, tmp_path: Path) -> None:
    """A JPEG is stored under images/<md5>.jpg with hashes, type, size and dimensions."""
    data = t.image_bytes("JPEG", size=(40, 30))
    src = tmp_path / "photo.jpeg"
    src.write_bytes(data)
    rec = store.add_file(src, url="https://example.com/p.jpg")
    md5 = hashlib.md5(data).hexdigest()
    assert rec.md5 == md5
    assert rec.sha256 == hashlib.sha256(data).hexdigest()
    assert (rec.media_type, rec.mime_type, rec.extension) == ("image", "image/jpeg", "jpg")
    assert (rec.size, rec.width, rec.height) == (len(data), 40, 30)
    assert rec.path == store.root / "media" / "images" / f"{md5}.jpg"
    assert rec.path.read_bytes() == data
    assert rec.created_at.tzinfo is not None
    assert rec.url == "https://example.com/p.jpg"
    assert src.read_bytes() == data  # the original is untouched
    assert store.get_by_url("https://example.com/p.jpg") == rec
    assert store.get_by_md5(md5.upper()) == rec._replace(url=None)


@pytest.mark.parametrize(
    ("data", "directory", "ext"),
    [
        (t.image_bytes("PNG"), "images", "png"),
        (t.image_bytes("GIF"), "images", "gif"),
        (t.image_bytes("WEBP"), "images", "webp"),
        (t.mp4_bytes(), "videos", "mp4"),
        (t.mov_bytes(), "videos", "mov"),
        (t.ebml_bytes(), "videos", "webm"),
        (t.pdf_bytes(), "documents", "pdf"),
    ],
)
def test_type_and_extension_come_from_content(
    store: MediaStore, data: bytes, directory: str, ext: str
) -> None:
    """The typed directory and extension follow the bytes, not the hint or URL; a video's
    width and height are its video track's, a PDF has none."""
    rec = store.add_bytes(data, url="https://cdn.test/file.jpg", mime_type="image/jpeg")
    assert rec.path.parent.name == directory
    assert rec.path.suffix == f".{ext}"
    if directory == "videos":
        assert rec.width and rec.height
    elif directory == "documents":
        assert rec.width is None and rec.height is None


def test_dedup_same_content_many_sources(store: MediaStore, tmp_path: Path) -> None:
    """Same bytes from two paths and three URLs: one file, one row, every URL recorded."""
    data = t.image_bytes("PNG", color="blue")
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(data)
    b.write_bytes(data)
    r1 = store.add_file(a, url="https://x.test/1")
    r2 = store.add_file(b, url="https://x.test/2")
    r3 = store.add_bytes(data, url="https://x.test/3")
    assert r1.md5 == r2.md5 == r3.md5
    assert len(files_under(store.root / "media")) == 1
    assert catalog_rows(store) == 1
    assert store.urls_for(r1.md5) == ["https://x.test/1", "https://x.test/2", "https://x.test/3"]
    st = store.stats()
    assert (st.total_files, st.total_urls, st.dedup_saved_bytes) == (1, 3, 2 * len(data))


def test_url_moves_to_new_content(backend_store: MediaStore) -> None:
    """When a URL is recorded again with other content, it maps to the new content."""
    store = backend_store
    store.add_bytes(t.image_bytes("PNG", color="red"), url="https://x.test/a")
    new = store.add_bytes(t.image_bytes("PNG", color="green"), url="https://x.test/a")
    found = store.get_by_url("https://x.test/a")
    assert found is not None and found.md5 == new.md5


def test_md5_collision_is_refused_loudly(backend_store: MediaStore) -> None:
    """Known md5 with a different sha256 is refused and the stored file is untouched."""
    store = backend_store
    data = t.image_bytes("PNG")
    rec = store.add_bytes(data)
    with store.catalog.engine.begin() as conn:
        conn.execute(text("UPDATE media SET sha256 = :s"), {"s": "0" * 64})
    with pytest.raises(HashCollisionError, match="collision"):
        store.add_bytes(data, url="https://x.test/other")
    assert stored_bytes(store, rec.md5) == data
    assert store.urls_for(rec.md5) == []
    assert files_under(store.root / "tmp") == []


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"", "empty"),
        (b"<!doctype html><html><body>Not found</body></html>", "HTML"),
        (b"PK\x03\x04" + bytes(100), "ZIP"),
        (b"\xff\xd8\xff" + bytes(200), "could not be parsed"),
        (t.png_bomb(), "decompression bomb"),
        (t.ebml_bytes(b"matroska"), "matroska"),
    ],
)
def test_refused_content_changes_nothing(
    backend_store: MediaStore, tmp_path: Path, content: bytes, error: str
) -> None:
    """Empty, HTML, ZIP, broken image, bomb, Matroska: a clear error, nothing stored."""
    store = backend_store
    src = tmp_path / "in.jpg"
    src.write_bytes(content)
    with pytest.raises(MediaStoreError, match=error) as info:
        store.add_file(src, url="https://x.test/bad")
    assert str(src) in str(info.value)
    assert_nothing_stored(store)
    assert list(store.blobs.walk()) == []  # nothing uploaded either


def test_bad_paths(store: MediaStore, tmp_path: Path) -> None:
    """A missing path or a directory is an InvalidInputError (also a ValueError)."""
    with pytest.raises(InvalidInputError, match="no such file"):
        store.add_file(tmp_path / "nope.jpg")
    with pytest.raises(ValueError, match="not a regular file"):
        store.add_file(tmp_path)
    assert_nothing_stored(store)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "", "xyz", "a" * 31, "g" * 32, "a" * 33])
def test_bad_md5_everywhere(store: MediaStore, bad: str) -> None:
    """Anything but 32 hex characters is refused by every md5-taking call."""
    for call in (store.get_by_md5, store.urls_for, store.remove, store.verify, store.open):
        with pytest.raises(InvalidMD5Error):
            call(bad)


def test_bad_add_bytes_and_url_arguments(store: MediaStore) -> None:
    """add_bytes needs bytes; a url (label or lookup) must be a non-empty string."""
    for bad in ("", "   ", None, 42):
        with pytest.raises(InvalidInputError):
            store.get_by_url(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        store.add_bytes("text")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        store.add_bytes(t.image_bytes(), url="  ")
    with pytest.raises(InvalidInputError, match="unknown MediaStore option"):
        MediaStore(store.root, nonsense=1)
    assert_nothing_stored(store)


def test_max_file_size_enforced_while_streaming(tmp_path: Path) -> None:
    """Content over max_file_size is refused and nothing is left behind."""
    with MediaStore(tmp_path / "s", max_file_size=1000) as small:
        with pytest.raises(FileTooLargeError, match="1000 bytes"):
            small.add_bytes(t.mp4_bytes(5000))
        assert_nothing_stored(small)
        assert small.add_bytes(t.mp4_bytes(100)).size < 1000
        big = tmp_path / "big.mp4"
        big.write_bytes(t.mp4_bytes(5000))
        with pytest.raises(FileTooLargeError, match=str(big)):
            small.add_file(big)


def test_failure_between_file_and_commit_leaves_no_row(
    store: MediaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catalog failure after the file is in place leaves no row and no temp file; the file
    stays (another writer may have recorded it meanwhile) and gc adopts it."""

    def boom(*args: object, **kwargs: object) -> None:
        raise CatalogError("injected failure before commit")

    monkeypatch.setattr(Catalog, "record_many", boom)
    with pytest.raises(CatalogError, match="injected"):
        store.add_bytes(t.image_bytes("PNG"), url="https://x.test/a")
    assert catalog_rows(store) == 0 and files_under(store.root / "tmp") == []
    monkeypatch.undo()
    assert store.gc().adopted == [hashlib.md5(t.image_bytes("PNG")).hexdigest()]


def test_failed_fsync_fails_the_add(store: MediaStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """An fsync error is final: StorageError, no row, no file, no temp file."""

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(StorageError, match="fsync"):
        store.add_bytes(t.image_bytes("PNG"))
    monkeypatch.undo()
    assert_nothing_stored(store)


def test_full_disk_is_a_clear_error(store: MediaStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC while writing: 'disk full', nothing stored, the store still works after."""
    real_write = os.write

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(StorageError, match="disk full"):
        store.add_bytes(t.mp4_bytes())
    monkeypatch.setattr(os, "write", real_write)
    assert_nothing_stored(store)
    assert store.add_bytes(t.mp4_bytes()).size > 0


def test_add_stream_file_object_and_iterable(backend_store: MediaStore) -> None:
    """add_stream takes a binary file object or an iterable of chunks."""
    store = backend_store
    data = t.mp4_bytes(100_000)
    r1 = store.add_stream(io.BytesIO(data))
    r2 = store.add_stream(iter([data[:10], data[10:5000], data[5000:]]))
    assert r1 == r2
    assert stored_bytes(store, r1.md5) == data


def test_large_stream_uses_constant_memory(store: MediaStore) -> None:
    """64 MiB streamed through ingest allocates a few MiB at most."""
    chunk = os.urandom(1 << 20)

    def chunks() -> Iterator[bytes]:
        yield t.mp4_header(64 << 20)  # a valid container whose mdat the chunks fill
        for _ in range(64):
            yield chunk

    rec, peak = _peak_allocated(lambda: store.add_stream(chunks()))
    assert rec.size > 64 << 20
    assert peak < 8 << 20


def test_add_file_reads_in_the_configured_chunk_size(tmp_path: Path) -> None:
    """``chunk_size`` sets add_file's read size: with 64 KiB chunks a 3 MiB file is read
    through a ring of 64 KiB buffers (~280 KB in all; the default chunk size reads it in
    256 KiB pieces, and its ring alone is 1 MiB)."""
    video = tmp_path / "clip.mp4"
    with video.open("wb") as fh:
        fh.write(t.mp4_header(3 << 20))
        fh.write(os.urandom(3 << 20))
    with MediaStore(tmp_path / "store", chunk_size=64 << 10) as small:
        rec, peak = _peak_allocated(lambda: small.add_file(video))
    assert rec.size == video.stat().st_size
    assert peak < 512 << 10


def test_add_file_of_a_large_file_uses_constant_memory(store: MediaStore, tmp_path: Path) -> None:
    """A 32 MiB file is read in chunks, never whole (only small files are read at once)."""
    video = tmp_path / "big.mp4"
    with video.open("wb") as fh:
        fh.write(t.mp4_header(32 << 20))
        for _ in range(32):
            fh.write(os.urandom(1 << 20))
    rec, peak = _peak_allocated(lambda: store.add_file(video))
    assert rec.size == video.stat().st_size
    assert peak < 8 << 20


def _peak_allocated(call: Callable[[], MediaRecord]) -> tuple[MediaRecord, int]:
    """What ``call`` returns, and the peak of Python allocations while it ran (bytes)."""
    tracemalloc.start()
    try:
        result = call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def test_verify_ok_missing_and_corrupt(store: MediaStore) -> None:
    """verify: ok files get a time, a flipped byte is quarantined, a deleted file is missing."""
    good = store.add_bytes(t.image_bytes("PNG", color="red"), url="https://x.test/good")
    bad = store.add_bytes(t.image_bytes("PNG", color="green"), url="https://x.test/bad")
    gone = store.add_bytes(t.pdf_bytes(), url="https://x.test/gone")
    raw = bytearray(bad.path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad.path.write_bytes(bytes(raw))
    gone.path.unlink()

    seen: list[tuple[int, int]] = []
    report = store.verify(progress=lambda done, total: seen.append((done, total)))
    assert (report.ok, report.missing, report.corrupt) == ([good.md5], [gone.md5], [bad.md5])
    assert seen[-1] == (3, 3)
    assert not bad.path.exists()
    quarantined = files_under(store.root / "quarantine")
    assert len(quarantined) == 1 and quarantined[0].read_bytes() == bytes(raw)
    after = store.get_by_md5(good.md5)
    assert after is not None and after.last_verified_at is not None
    assert store.get_by_md5(bad.md5).status == "corrupt"  # type: ignore[union-attr]
    assert store.get_by_md5(gone.md5).status == "missing"  # type: ignore[union-attr]
    assert store.get_by_url("https://x.test/bad") is None  # not served while damaged
    assert store.stats().oldest_verified_at == after.last_verified_at


def test_readding_repairs_a_damaged_entry(store: MediaStore) -> None:
    """Adding the content again puts the file back and marks the row ok."""
    data = t.image_bytes("GIF")
    rec = store.add_bytes(data, url="https://x.test/g")
    rec.path.unlink()
    assert store.verify(rec.md5).missing == [rec.md5]
    store.add_bytes(data)
    assert rec.path.read_bytes() == data
    assert store.get_by_url("https://x.test/g") is not None
    assert store.verify(rec.md5).ok == [rec.md5]


def test_stats_by_type(backend_store: MediaStore) -> None:
    """stats: per-type counts and sizes, totals and URL count, all from SQL."""
    store = backend_store
    png = store.add_bytes(t.image_bytes("PNG"), url="https://x.test/1")
    mp4 = store.add_bytes(t.mp4_bytes(3000))
    pdf = store.add_bytes(t.pdf_bytes())
    st = store.stats()
    assert st.total_files == 3
    assert st.total_size == png.size + mp4.size + pdf.size
    assert st.by_type["image"].count == 1 and st.by_type["image"]["size"] == png.size
    assert st.by_type["video"].size == mp4.size
    assert st.by_type["document"].count == 1
    assert st.total_urls == 1 and st.unverified == 3 and st.oldest_verified_at is None
    assert st.to_dict()["by_type"]["video"] == {"count": 1, "size": mp4.size}


def test_remove(store: MediaStore) -> None:
    """remove drops the row, its URLs and the file; a second remove is not found."""
    rec = store.add_bytes(t.image_bytes("PNG"), url="https://x.test/r")
    assert store.remove(rec.md5).md5 == rec.md5
    assert not rec.path.exists()
    assert store.get_by_md5(rec.md5) is None and store.get_by_url("https://x.test/r") is None
    assert catalog_rows(store, "media_urls") == 0
    with pytest.raises(MediaNotFoundError):
        store.remove(rec.md5)


def test_open_reads_stored_bytes(store: MediaStore) -> None:
    """open() returns the stored bytes; a missing file is MediaNotFoundError."""
    data = t.pdf_bytes()
    rec = store.add_bytes(data)
    with store.open(rec.md5) as fh:
        assert fh.read() == data
    rec.path.unlink()
    with pytest.raises(MediaNotFoundError):
        store.open(rec.md5)


def test_threads_share_one_store(backend_store: MediaStore) -> None:
    """8 threads adding shared and distinct content: exact counts, one file per content
    (on each catalog and each blob store)."""
    store = backend_store
    shared = t.image_bytes("PNG", color="purple")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                store.add_bytes(shared, url=f"https://x.test/shared/{n}/{i}")
                store.add_bytes(t.mp4_bytes(500, seed=n * 100 + i))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    st = store.stats()
    assert st.total_files == 81 and st.total_urls == 80
    assert len(list(store.blobs.walk())) == 81
    assert store.verify().all_ok


def test_reopen_sees_the_same_catalog(tmp_path: Path) -> None:
    """A second store on the same root sees what the first stored."""
    with MediaStore(tmp_path) as first:
        rec = first.add_bytes(t.image_bytes("WEBP"), url="https://x.test/w")
    with MediaStore(tmp_path) as second:
        assert second.get_by_url("https://x.test/w") == rec


def test_root_that_is_a_file(tmp_path: Path) -> None:
    """A store root that is a regular file is refused clearly."""
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InvalidInputError, match="not a directory"):
        MediaStore(f)


def test_concurrent_commits_are_grouped(store: MediaStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commits arriving during another commit go together in one batch; each gets its record."""
    sizes: list[int] = []
    real = Catalog.record_many

    def recording(self, writer, entries, now):  # type: ignore[no-untyped-def]
        sizes.append(len(entries))
        return real(self, writer, entries, now)

    monkeypatch.setattr(Catalog, "record_many", recording)
    datas = [t.mp4_bytes(50_000, seed=i) for i in range(40)]
    results: dict[int, str] = {}

    def add(i: int) -> None:
        results[i] = store.add_bytes(datas[i]).md5

    threads = [threading.Thread(target=add, args=(i,)) for i in range(40)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert results == {i: hashlib.md5(d).hexdigest() for i, d in enumerate(datas)}
    assert sum(sizes) == 40 and max(sizes) > 1
    assert store.verify().all_ok


def test_a_failed_group_fails_every_caller(
    store: MediaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a grouped commit fails as a whole, each caller gets the error and no row stays.

    The files already placed stay too (another writer may have recorded the same content
    meanwhile): gc adopts them, and no temp file is left.
    """

    def boom(*args: object) -> None:
        raise CatalogError("injected batch failure")

    monkeypatch.setattr(Catalog, "record_many", boom)
    errors: list[BaseException] = []

    def add(i: int) -> None:
        try:
            store.add_bytes(t.mp4_bytes(20_000, seed=i))
        except CatalogError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(10)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(errors) == 10
    monkeypatch.undo()
    assert catalog_rows(store) == 0 and catalog_rows(store, "media_urls") == 0
    assert files_under(store.root / "tmp") == []
    assert len(store.gc().adopted) == len(files_under(store.root / "media")) == 10
