"""Legacy cache, reindex, gc and scheduled verification / repair, on real files."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer
from sqlalchemy import text

from mediastore import InvalidInputError, MediaStore
from mediastore import testing as t
from mediastore.cli import main


def _legacy(root: Path, url: str, data: bytes, ext: str = "jpg") -> Path:
    """Write a file into the legacy cache the way the old system named it."""
    directory = root / "images"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{hashlib.md5(url.encode()).hexdigest()}.{ext}"
    path.write_bytes(data)
    return path


def _count(store: MediaStore, sql: str) -> int:
    with store.catalog.engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


# --- legacy cache ----------------------------------------------------------------------------
def test_get_by_url_falls_back_to_the_legacy_cache(tmp_path: Path) -> None:
    """A legacy file is ingested on first lookup, left in place, then served from the catalog."""
    url = "https://media.licdn.com/dms/image/abc/photo.jpg"
    data = t.image_bytes("JPEG", size=(20, 10))
    legacy = _legacy(tmp_path, url, data)
    with MediaStore(tmp_path) as store:
        rec = store.get_by_url(url)
        assert rec is not None and rec.md5 == hashlib.md5(data).hexdigest()
        assert (rec.width, rec.height, rec.extension) == (20, 10, "jpg")
        assert rec.path.read_bytes() == data and rec.path != legacy
        assert legacy.read_bytes() == data  # read-only input
        legacy.unlink()
        assert store.get_by_url(url) == rec  # now a plain catalog hit
        assert store.urls_for(rec.md5) == [url]
        assert store.get_by_url("https://other.test/x.jpg") is None


def test_broken_legacy_file_is_not_served(tmp_path: Path) -> None:
    """A corrupt legacy file found by lookup is not imported; the lookup returns None."""
    url = "https://x.test/broken.jpg"
    _legacy(tmp_path, url, b"\xff\xd8\xff" + bytes(64))
    with MediaStore(tmp_path) as store:
        assert store.get_by_url(url) is None
        assert store.stats().total_files == 0


def test_import_legacy_then_lookup_and_idempotence(tmp_path: Path) -> None:
    """import_legacy ingests every good file once, reports bad ones, and a rerun changes nothing."""
    urls = [f"https://cdn.test/p/{i}.jpg" for i in range(12)]
    for i, url in enumerate(urls):
        _legacy(tmp_path, url, t.noisy_jpeg(seed=i), ext="png" if i == 3 else "jpg")
    _legacy(tmp_path, urls[0].replace("0", "dup"), t.noisy_jpeg(seed=0))  # same content
    bad_html = _legacy(tmp_path, "https://cdn.test/page", b"<html>gone</html>")
    bad_jpeg = _legacy(tmp_path, "https://cdn.test/cut.jpg", b"\xff\xd8\xff" + bytes(99))
    (tmp_path / "images" / "notes.txt").write_text("not a cache file")
    with MediaStore(tmp_path) as store:
        seen: list[tuple[int, int]] = []
        report = store.import_legacy(progress=lambda d, n: seen.append((d, n)))
        assert report.imported == 13 and report.already == 0
        skipped = dict(report.skipped)
        assert set(skipped) == {str(bad_html), str(bad_jpeg), str(tmp_path / "images/notes.txt")}
        assert "HTML" in skipped[str(bad_html)]
        assert seen[-1] == (16, 16)
        assert store.stats().total_files == 12  # the duplicate content is one file
        assert _count(store, "SELECT count(*) FROM media_urls WHERE source = 'legacy'") == 13
        rec = store.get_by_url(urls[5])
        assert rec is not None and rec.md5 == hashlib.md5(t.noisy_jpeg(seed=5)).hexdigest()
        assert store.urls_for(rec.md5) == [urls[5]]
        again = store.import_legacy()
        assert (again.imported, again.already) == (0, 13)
        assert store.stats().total_files == 12


def test_import_legacy_bad_directory(tmp_path: Path) -> None:
    """A missing legacy directory is a clear error."""
    with MediaStore(tmp_path) as store, pytest.raises(InvalidInputError, match="not found"):
        store.import_legacy(tmp_path / "nope")


def test_cli_import_legacy(tmp_path: Path) -> None:
    """The CLI imports, reports skipped files (exit 1), and says when nothing is left."""
    _legacy(tmp_path, "https://x.test/a.jpg", t.noisy_jpeg(seed=1))
    runner = CliRunner()
    first = runner.invoke(main, ["--root", str(tmp_path), "import-legacy"])
    assert first.exit_code == 0 and "imported 1 file(s)" in first.stdout
    second = runner.invoke(main, ["--root", str(tmp_path), "import-legacy"])
    assert "nothing to import: 1 file(s) already imported" in second.stdout
    _legacy(tmp_path, "https://x.test/b.jpg", b"junk")
    third = runner.invoke(main, ["--root", str(tmp_path), "import-legacy", "--json"])
    assert third.exit_code == 1 and json.loads(third.stdout)["skipped"][0]["path"].endswith(".jpg")


# --- reindex ---------------------------------------------------------------------------------
def test_reindex_after_losing_the_catalog(tmp_path: Path) -> None:
    """With the catalog gone, reindex rebuilds every media row from the files."""
    with MediaStore(tmp_path) as store:
        recs = [store.add_bytes(d) for d in (t.image_bytes("PNG"), t.mp4_bytes(), t.pdf_bytes())]
    for f in tmp_path.glob("catalog.sqlite3*"):
        f.unlink()
    with MediaStore(tmp_path) as store:
        assert store.stats().total_files == 0
        report = store.reindex()
        assert (report.indexed, report.added, report.missing, report.corrupt) == (3, 3, [], [])
        for rec in recs:
            again = store.get_by_md5(rec.md5)
            assert again is not None and (again.sha256, again.size) == (rec.sha256, rec.size)
        assert store.verify().all_ok


def test_reindex_after_restoring_an_older_backup(tmp_path: Path) -> None:
    """Rows without files are marked missing (URLs kept), new files get rows, a misnamed file's
    content is recorded at its own address and the stray copy quarantined."""
    backup = tmp_path / "backup.sqlite3"
    with MediaStore(tmp_path / "s") as store:
        kept = store.add_bytes(t.image_bytes("PNG"), url="https://x.test/kept")
        gone = store.add_bytes(t.image_bytes("GIF"), url="https://x.test/gone")
        with sqlite3.connect(store.root / "catalog.sqlite3") as src, sqlite3.connect(backup) as dst:
            src.backup(dst)
        newer = store.add_bytes(t.mp4_bytes(), url="https://x.test/newer")
        store.remove(gone.md5)
        misnamed = store.root / "media" / "images" / f"{'0' * 32}.png"
        misnamed.write_bytes(t.image_bytes("PNG", color="blue"))
    for f in (tmp_path / "s").glob("catalog.sqlite3*"):
        f.unlink()
    with sqlite3.connect(backup) as src, sqlite3.connect(tmp_path / "s" / "catalog.sqlite3") as dst:
        src.backup(dst)
    with MediaStore(tmp_path / "s") as store:
        report = store.reindex()
        assert report.missing == [gone.md5]
        assert store.urls_for(gone.md5) == ["https://x.test/gone"]  # kept, for a repair
        assert store.get_by_md5(gone.md5).status == "missing"  # type: ignore[union-attr]
        assert report.added == 2 and report.indexed == 3
        assert [p for p, _ in report.mismatched] == [str(misnamed)]
        assert store.urls_for(kept.md5) == ["https://x.test/kept"]
        assert store.get_by_url("https://x.test/gone") is None
        assert store.get_by_md5(newer.md5) is not None
        blue = store.get_by_md5(hashlib.md5(t.image_bytes("PNG", color="blue")).hexdigest())
        assert blue is not None and blue.path.exists()  # type: ignore[union-attr]
        assert not misnamed.exists() and len(t.files_under(store.root / "quarantine")) == 1
        assert store.reindex().mismatched == []  # reindex and gc agree: nothing left to report


# --- gc --------------------------------------------------------------------------------------
def test_gc_cleans_up_after_crashes(tmp_path: Path) -> None:
    """gc drops abandoned temps, adopts orphans, quarantines misnamed files, marks missing."""
    with MediaStore(tmp_path) as store:
        orphan = store.add_bytes(t.image_bytes("PNG"), url="https://x.test/o")
        with store.catalog.engine.begin() as conn:
            conn.execute(text("DELETE FROM media WHERE md5 = :m"), {"m": orphan.md5})
        lost = store.add_bytes(t.pdf_bytes(), url="https://x.test/lost")
        lost.path.unlink()
        abandoned = store.root / "tmp" / "ingest-dead.part"
        abandoned.write_bytes(b"half a file")
        other = MediaStore(tmp_path)  # another writer, still running
        in_use = other.blobs.create_temp()
        misnamed = store.root / "media" / "videos" / "holiday.mp4"
        misnamed.write_bytes(t.mp4_bytes())
        wrong = store.root / "media" / "images" / f"{'1' * 32}.png"
        wrong.write_bytes(t.image_bytes("GIF"))

        valid_strays = {hashlib.md5(p.read_bytes()).hexdigest() for p in (misnamed, wrong)}
        dry = store.gc(dry_run=True)
        assert dry.temp_removed == [str(abandoned)] and abandoned.exists()
        assert set(dry.adopted) == {orphan.md5, *valid_strays}
        assert store.get_by_md5(orphan.md5) is None
        assert dry.marked_missing == [lost.md5]

        report = store.gc()
        assert report.temp_removed == [str(abandoned)] and not abandoned.exists()
        assert in_use.path.exists()
        assert set(report.adopted) == {orphan.md5, *valid_strays}  # valid content is kept
        assert store.get_by_md5(orphan.md5) is not None and orphan.path.exists()
        # each planted file counted once: both adopted, their misplaced copies relocated
        assert {p for p, _ in report.relocated} == {str(misnamed), str(wrong)}
        assert report.quarantined == []
        assert not misnamed.exists() and not wrong.exists()
        assert len(t.files_under(store.root / "quarantine")) == 2
        assert report.marked_missing == [lost.md5]
        assert store.get_by_md5(lost.md5).status == "missing"  # type: ignore[union-attr]
        in_use.close()
        other.close()  # a closing store removes the temp files it still had
        assert not in_use.path.exists()
        clean = store.gc()
        assert clean.temp_removed == []
        assert (clean.adopted, clean.quarantined, clean.marked_missing) == ([], [], [])
        assert clean.relocated == []


def test_cli_gc_dry_run(tmp_path: Path) -> None:
    """`gc --dry-run` reports and changes nothing."""
    with MediaStore(tmp_path) as store:
        (store.root / "tmp" / "ingest-x.part").write_bytes(b"x")
    result = CliRunner().invoke(main, ["--root", str(tmp_path), "gc", "--dry-run"])
    assert result.exit_code == 0 and "would remove 1 temp file(s)" in result.stdout
    assert (tmp_path / "tmp" / "ingest-x.part").exists()


# --- scheduled verification and repair -------------------------------------------------------
def test_verify_older_than_and_limit(tmp_path: Path) -> None:
    """--older-than picks files not verified within the period; --limit caps the run."""
    with MediaStore(tmp_path) as store:
        recs = [store.add_bytes(t.mp4_bytes(100, seed=i)) for i in range(5)]
        assert store.verify(older_than=timedelta(days=7)).checked == 5  # never verified
        assert store.verify(older_than=timedelta(days=7)).checked == 0
        old = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=10)
        with store.catalog.engine.begin() as conn:
            conn.execute(
                text("UPDATE media SET last_verified_at = :t WHERE md5 IN (:a, :b)"),
                {"t": old, "a": recs[1].md5, "b": recs[3].md5},
            )
        report = store.verify(older_than=timedelta(days=7))
        assert sorted(report.ok) == sorted([recs[1].md5, recs[3].md5])
        assert store.verify(limit=2).checked == 2
    result = CliRunner().invoke(main, ["--root", str(tmp_path), "verify", "--older-than", "7d"])
    assert result.exit_code == 0 and "verified 0" in result.stdout
    bad = CliRunner().invoke(main, ["--root", str(tmp_path), "verify", "--older-than", "7 years"])
    assert bad.exit_code == 2 and "duration" in bad.stderr


def test_verify_repair_from_recorded_url(tmp_path: Path, httpserver: HTTPServer) -> None:
    """--repair downloads a damaged file again; other content at the URL is not accepted."""
    good, changed = t.image_bytes("PNG", color="red"), t.image_bytes("PNG", color="blue")
    httpserver.expect_request("/good.png").respond_with_data(good)
    httpserver.expect_request("/changed.png").respond_with_data(changed)
    with MediaStore(tmp_path, allow_private_networks=True) as store:
        a = store.add_bytes(good, url=httpserver.url_for("/good.png"))
        b = store.add_bytes(
            t.image_bytes("PNG", color="green"), url=httpserver.url_for("/changed.png")
        )
        c = store.add_bytes(t.pdf_bytes())  # no URL to repair from
        a.path.write_bytes(b"damaged")
        b.path.unlink()
        c.path.unlink()
        report = store.verify(repair=True)
        assert report.corrupt == [a.md5] and sorted(report.missing) == sorted([b.md5, c.md5])
        assert report.repaired == [a.md5] and a.path.read_bytes() == good
        assert "other content" in report.unrepaired[b.md5]
        assert "no URL" in report.unrepaired[c.md5]
        assert not report.all_ok
        assert store.get_by_md5(a.md5).status == "ok"  # type: ignore[union-attr]
        assert store.get_by_md5(b.md5).status == "missing"  # type: ignore[union-attr]
        assert store.get_by_url(httpserver.url_for("/changed.png")) is None
        assert len(t.files_under(store.root / "quarantine")) == 1


def _store_as_an_older_mediastore_did(root: Path, data: bytes, url: str) -> str:
    """Put ``data`` in the store the way a mediastore without the completeness checks would
    have (file at its address, an ok row, its URL), by hand; returns its md5."""
    md5 = hashlib.md5(data).hexdigest()
    with MediaStore(root) as store:
        (store.root / "media" / "images" / f"{md5}.jpg").write_bytes(data)
        with store.catalog.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO media (md5, sha256, media_type, mime_type, extension, size, "
                    "width, height, created_at, status) VALUES (:m, :s, 'image', 'image/jpeg', "
                    "'jpg', :n, 64, 48, '2026-01-01 00:00:00', 'ok')"
                ),
                {"m": md5, "s": hashlib.sha256(data).hexdigest(), "n": len(data)},
            )
            conn.execute(
                text(
                    "INSERT INTO media_urls (url, url_key, url_md5, source, md5, first_seen_at) "
                    "VALUES (:u, :key, :k, 'url', :m, '2026-01-01 00:00:00')"
                ),
                {
                    "u": url,
                    "key": hashlib.sha256(url.encode()).hexdigest(),
                    "k": hashlib.md5(url.encode()).hexdigest(),
                    "m": md5,
                },
            )
    return md5


def test_verify_deep_finds_a_broken_file_and_repair_stores_the_good_one(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    """A JPEG cut short before its EOI, stored by an older mediastore, passes plain verify (it
    hashes right); verify --deep marks it broken and quarantines it, URLs kept; a later
    verify --repair downloads the good file, which is new content: the URL moves to it and
    the report says so."""
    good = t.noisy_jpeg(seed=77)
    httpserver.expect_request("/p.jpg").respond_with_data(good)
    url = httpserver.url_for("/p.jpg")
    cut = _store_as_an_older_mediastore_did(tmp_path, good[: len(good) // 2], url)
    with MediaStore(tmp_path, allow_private_networks=True) as store:
        assert store.verify().ok == [cut]
        deep = store.verify(deep=True)
        assert deep.corrupt == [cut] and "EOI" in deep.reasons[cut]
        assert store.get_by_md5(cut).status == "broken"  # type: ignore[union-attr]
        assert store.urls_for(cut) == [url] and store.get_by_url(url) is None
        assert len(t.files_under(store.root / "quarantine")) == 1
        fixed = store.verify(cut, repair=True)
        new = hashlib.md5(good).hexdigest()
        assert fixed.repaired == [cut] and fixed.replaced == {cut: new}
        rec = store.get_by_url(url)
        assert rec is not None and rec.md5 == new and rec.path.read_bytes() == good  # type: ignore[union-attr]
        assert store.urls_for(cut) == [] and len(t.files_under(store.root / "quarantine")) == 1
    out = CliRunner().invoke(main, ["--root", str(tmp_path), "verify", "--deep", new])
    assert out.exit_code == 0 and "1 ok" in out.stdout
