"""References: taking, listing and dropping them, and the opt-in collection of content
whose last reference went (gc --unreferenced), on one process; races are in
tests/stress/test_references_race.py."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from mediastore import (
    FetchError,
    InvalidInputError,
    InvalidMD5Error,
    MediaNotFoundError,
    MediaStore,
    RefUrl,
)
from mediastore import testing as t
from mediastore.identity import rule_from_mapping
from mediastore.references import MAX_REF_LENGTH, MAX_ROLE_LENGTH

NOW = timedelta(0)


def png(seed: int) -> bytes:
    return t.image_bytes("PNG", (8 + seed, 8), color=(seed % 256, 0, 0))


def rows(store: MediaStore, sql: str) -> list[tuple[object, ...]]:
    """Rows read with plain sqlite3, not through the store."""
    with sqlite3.connect(store.root / "catalog.sqlite3") as db:
        return db.execute(sql).fetchall()


def snapshot(store: MediaStore) -> tuple[object, ...]:
    """Everything a reference changes: refs, counts, statuses."""
    return (
        rows(store, "SELECT ref, md5, url, position, role FROM refs ORDER BY id"),
        rows(store, "SELECT md5, status, ref_count, unreferenced_since FROM media ORDER BY md5"),
    )


def serve(http: HTTPServer, path: str, data: bytes) -> str:
    http.expect_request(path).respond_with_data(data, content_type="image/png")
    return http.url_for(path)


def test_an_add_takes_its_reference_and_media_for_lists_in_order(store: MediaStore) -> None:
    """Files of a key come by position (none last), then as taken; refs(md5) lists keys."""
    a = store.add_bytes(png(1), ref="post:1", position=1)
    b = store.add_bytes(png(2), ref="post:1", position=0, role="cover")
    c = store.add_bytes(png(3), ref="post:1")
    store.add_bytes(png(1), ref="post:2")
    assert [r.md5 for r in store.media_for("post:1")] == [b.md5, a.md5, c.md5]
    assert [(r.ref, r.position, r.role) for r in store.refs(b.md5)] == [("post:1", 0, "cover")]
    assert sorted(r.ref for r in store.refs(a.md5)) == ["post:1", "post:2"]
    assert rows(store, f"SELECT ref_count FROM media WHERE md5 = '{a.md5}'") == [(2,)]
    stats = store.stats()
    assert (stats.referenced_files, stats.unreferenced_files) == (3, 0)
    assert stats.referenced_bytes == a.size + b.size + c.size


def test_importer_life_import_reimport_edit_delete(store: MediaStore, tmp_path: Path) -> None:
    """post:123 through its life: a re-import changes nothing, an edit that swaps an image
    leaves the old one to the collection, a delete leaves shared content to the other post,
    and content never referenced is never collected."""
    plain = store.add_bytes(png(9))  # a store's own content: no reference, ever
    first = store.add_bytes(png(1), ref="post:123", position=0)
    second = store.add_bytes(png(2), ref="post:123", position=1)
    shared = store.add_bytes(png(3), ref="post:123", position=2)
    store.add_ref("post:456", shared.md5)
    before = snapshot(store)
    store.add_bytes(png(1), ref="post:123", position=0)  # re-import: the same state
    store.add_ref("post:123", second.md5, position=1)
    assert snapshot(store) == before
    swapped = store.add_bytes(png(4), ref="post:123", position=1)  # the edit
    assert store.drop_ref("post:123", second.md5) == 1
    assert store.gc(unreferenced=True).unreferenced == []  # within the 24 h grace
    assert store.gc(unreferenced=True, grace=NOW).unreferenced == [second.md5]
    assert [r.md5 for r in store.media_for("post:123")] == [first.md5, swapped.md5, shared.md5]
    assert store.drop_ref("post:123") == 3  # the post is deleted
    report = store.gc(unreferenced=True, grace=NOW)
    assert sorted(report.unreferenced) == sorted([first.md5, swapped.md5])
    for kept in (shared, plain):
        assert store.get_by_md5(kept.md5) is not None
        assert hashlib.md5(Path(str(kept.path)).read_bytes()).hexdigest() == kept.md5
    for gone in (first, second, swapped):
        assert store.get_by_md5(gone.md5) is None
        assert not Path(str(gone.path)).exists()
    assert rows(store, f"SELECT status FROM media WHERE md5 = '{first.md5}'") == [("removed",)]
    again = store.add_bytes(png(1))  # the removed row is the usual one: a later add works
    assert again.status == "ok" and Path(str(again.path)).read_bytes() == png(1)
    assert store.gc(unreferenced=True, grace=NOW).unreferenced == []  # never referenced now


def test_a_store_without_references_is_never_collected(store: MediaStore) -> None:
    """gc --unreferenced on content that never had a reference removes nothing."""
    recs = [store.add_bytes(png(i)) for i in range(3)]
    report = store.gc(unreferenced=True, grace=NOW)
    assert report.unreferenced == [] and report.collected == []
    assert all(store.get_by_md5(r.md5) is not None for r in recs)
    assert store.stats().unreferenced_files == 0


def test_dry_run_lists_and_changes_nothing(store: MediaStore) -> None:
    rec = store.add_bytes(png(1), ref="k")
    store.drop_ref("k")
    before = snapshot(store)
    assert store.gc(unreferenced=True, grace=NOW, dry_run=True).unreferenced == [rec.md5]
    assert snapshot(store) == before
    assert store.stats().unreferenced_files == 1
    assert store.stats().unreferenced_bytes == rec.size


def test_rm_forgets_the_references_of_what_it_removes(store: MediaStore) -> None:
    rec = store.add_bytes(png(1), ref="post:1")
    store.remove(rec.md5)
    assert store.media_for("post:1") == []
    assert rows(store, "SELECT count(*) FROM refs") == [(0,)]


def test_fetch_takes_its_reference_when_cached_and_when_failed(
    http: HTTPServer, lstore: MediaStore
) -> None:
    """A cached answer holds the reference; a failed URL holds a row naming the URL with no
    file, which the first successful fetch of the URL fills in."""
    url = serve(http, "/a.png", png(1))
    rec = lstore.fetch(url, ref="post:1")
    assert lstore.fetch(url, ref="post:2").md5 == rec.md5  # from the store
    assert sorted(r.ref for r in lstore.refs(rec.md5)) == ["post:1", "post:2"]
    missing = http.url_for("/later.png")
    http.expect_oneshot_request("/later.png").respond_with_data("gone", status=404)
    with pytest.raises(FetchError):
        lstore.fetch(missing, ref="post:3", position=4)
    [waiting] = lstore.references("post:3")
    assert (waiting.md5, waiting.url, waiting.position) == (None, missing, 4)
    assert lstore.media_for("post:3") == []
    serve(http, "/later.png", png(2))
    later = lstore.fetch(missing, retry_failed=True)  # no reference of its own
    [filled] = lstore.references("post:3")
    assert (filled.md5, filled.url, filled.position) == (later.md5, missing, 4)
    assert [r.md5 for r in lstore.media_for("post:3")] == [later.md5]
    assert rows_of(lstore, later.md5) == 1


def rows_of(store: MediaStore, md5: str) -> int:
    return int(rows(store, f"SELECT ref_count FROM media WHERE md5 = '{md5}'")[0][0])  # type: ignore[arg-type]


def test_fetch_many_and_iter_fetch_take_per_url_references(
    http: HTTPServer, lstore: MediaStore
) -> None:
    urls = [serve(http, f"/{i}.png", png(i)) for i in range(3)]
    results = lstore.fetch_many([RefUrl("post:1", urls[0], 0), ("post:1", urls[1]), urls[2]])
    assert all(r.ok for r in results)
    assert [r.md5 for r in lstore.media_for("post:1")] == [
        results[0].record.md5,  # type: ignore[union-attr]
        results[1].record.md5,  # type: ignore[union-attr]
    ]
    streamed = list(lstore.iter_fetch([RefUrl("post:2", u) for u in urls]))
    assert len(streamed) == 3 and all(r.from_cache for r in streamed)
    assert len(lstore.media_for("post:2")) == 3
    assert lstore.refs(results[2].record.md5)[0].ref == "post:2"  # type: ignore[union-attr]


def test_fetch_of_content_collected_under_it_downloads_again(
    http: HTTPServer, lstore: MediaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache answered, then a collection removed the content before the reference was
    taken: the reference finds it gone, the URL is fetched again, and the file is there."""
    url = serve(http, "/a.png", png(1))
    rec = lstore.fetch(url, ref="old")
    lstore.drop_ref("old")
    take = lstore.catalog.take_refs
    collected: list[str] = []

    def collect_first(*args: object, **kwargs: object) -> set[str]:
        if not collected:
            collected.extend(lstore.gc(unreferenced=True, grace=NOW).unreferenced)
        return take(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(lstore.catalog, "take_refs", collect_first)
    again = lstore.fetch(url, ref="new")
    assert collected == [rec.md5]
    assert again.md5 == rec.md5 and Path(str(again.path)).read_bytes() == png(1)
    assert [r.md5 for r in lstore.media_for("new")] == [rec.md5]
    assert len(http.log) == 2  # downloaded again


def test_add_ref_by_md5_prefix_and_url(http: HTTPServer, lstore: MediaStore) -> None:
    url = serve(http, "/a.png", png(1))
    rec = lstore.fetch(url)
    assert lstore.add_ref("by-url", url).md5 == rec.md5
    assert lstore.add_ref("by-prefix", rec.md5[:8]).md5 == rec.md5
    assert [(r.ref, r.url) for r in lstore.refs(rec.md5)] == [("by-prefix", None), ("by-url", url)]
    assert lstore.drop_ref("by-url", url) == 1


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda s, m: s.add_ref("", m), InvalidInputError),
        (lambda s, m: s.add_ref(123, m), InvalidInputError),
        (lambda s, m: s.add_ref("x" * (MAX_REF_LENGTH + 1), m), InvalidInputError),
        (lambda s, m: s.add_ref("a\x00b", m), InvalidInputError),
        (lambda s, m: s.add_ref("k", m, position=-1), InvalidInputError),
        (lambda s, m: s.add_ref("k", m, position=True), InvalidInputError),
        (lambda s, m: s.add_ref("k", m, role="r" * (MAX_ROLE_LENGTH + 1)), InvalidInputError),
        (lambda s, m: s.add_ref("k", "0" * 32), MediaNotFoundError),
        (lambda s, m: s.add_ref("k", "https://example.com/never.png"), MediaNotFoundError),
        (lambda s, m: s.add_ref("k", "xyz"), InvalidMD5Error),
        (lambda s, m: s.add_ref("k", None), InvalidInputError),
        (lambda s, m: s.drop_ref("unknown"), MediaNotFoundError),
        (lambda s, m: s.drop_ref("held", "0" * 32), MediaNotFoundError),
        (lambda s, m: s.drop_ref(""), InvalidInputError),
        (lambda s, m: s.add_bytes(png(5), ref=""), InvalidInputError),
        (lambda s, m: s.add_bytes(png(5), position=1), InvalidInputError),
        (lambda s, m: s.fetch("https://example.com/a.png", ref=[1]), InvalidInputError),
        (lambda s, m: s.fetch_many([("", "https://example.com/a")]), InvalidInputError),
        (lambda s, m: s.fetch_many([("k", 1)]), InvalidInputError),
        (lambda s, m: s.gc(unreferenced=True, grace=timedelta(seconds=-1)), InvalidInputError),
        (lambda s, m: s.gc(unreferenced=True, grace=3600), InvalidInputError),
        (lambda s, m: s.media_for(None), InvalidInputError),
    ],
)
def test_bad_input_is_one_error_and_changes_nothing(
    store: MediaStore,
    call: Callable[[MediaStore, str], object],
    error: type[Exception],
) -> None:
    rec = store.add_bytes(png(1), ref="held")
    before = snapshot(store)
    with pytest.raises(error):
        call(store, rec.md5)
    assert snapshot(store) == before


def test_drop_ref_missing_ok(store: MediaStore) -> None:
    assert store.drop_ref("nothing", missing_ok=True) == 0


# --- the store setting: plain gc collects ----------------------------------------------------
def _one_unreferenced(store: MediaStore) -> tuple[str, str]:
    """A file that lost its only reference, and one never referenced."""
    lost = store.add_bytes(png(60), ref="post:1").md5
    never = store.add_bytes(png(61)).md5
    store.drop_ref("post:1")
    return lost, never


def test_collect_unreferenced_setting_makes_plain_gc_collect(tmp_path: Path) -> None:
    """With collect_unreferenced and gc_grace=0, a plain gc() removes content whose last
    reference went (not content never referenced); gc(unreferenced=False) skips it once, and
    an explicit grace wins over gc_grace. Without the setting, gc() removes nothing."""
    with MediaStore(tmp_path / "plain") as plain:
        lost, never = _one_unreferenced(plain)
        assert plain.config.collect_unreferenced is False and plain.config.gc_grace == 86400
        assert plain.gc().unreferenced == [] and plain.get_by_md5(lost) is not None
    with MediaStore(tmp_path / "s", collect_unreferenced=True, gc_grace=0) as store:
        lost, never = _one_unreferenced(store)
        assert store.gc(unreferenced=False).unreferenced == []
        assert store.gc(grace=timedelta(hours=1)).unreferenced == []  # explicit grace wins
        assert store.gc(dry_run=True).unreferenced == [lost]
        assert store.gc().unreferenced == [lost]
        assert store.get_by_md5(lost) is None and store.get_by_md5(never) is not None
    with MediaStore(tmp_path / "day", collect_unreferenced=True) as day:
        lost, _ = _one_unreferenced(day)
        assert day.gc().unreferenced == []  # within the default 24 h
        assert day.gc(grace=NOW).unreferenced == [lost]


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"collect_unreferenced": "yes"}, "collect_unreferenced"),
        ({"collect_unreferenced": 1}, "collect_unreferenced"),
        ({"gc_grace": -1}, "gc_grace"),
        ({"gc_grace": float("nan")}, "gc_grace"),
        ({"gc_grace": "1h"}, "gc_grace"),
        ({"gc_grace": True}, "gc_grace"),
    ],
)
def test_bad_collection_settings_are_refused(
    tmp_path: Path, options: dict[str, object], match: str
) -> None:
    """A setting no collection could use is refused when the store opens, naming it."""
    with pytest.raises(InvalidInputError, match=match):
        MediaStore(tmp_path / "s", **options)


def test_gc_refuses_an_unreferenced_that_is_not_a_bool(store: MediaStore) -> None:
    """gc(unreferenced="yes") is an error, and nothing is removed."""
    lost, _ = _one_unreferenced(store)
    with pytest.raises(InvalidInputError, match="unreferenced"):
        store.gc(unreferenced="yes", grace=NOW)  # type: ignore[arg-type]
    assert store.get_by_md5(lost) is not None


def test_collection_settings_from_the_file_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """collect_unreferenced and gc_grace come from mediastore.toml, then MEDIASTORE_* over
    it; gc_grace takes seconds or a duration; a bad value is refused naming the setting."""
    root = tmp_path / "s"
    root.mkdir()
    (root / "mediastore.toml").write_text('collect_unreferenced = true\ngc_grace = "0"\n')
    for name in ("MEDIASTORE_COLLECT_UNREFERENCED", "MEDIASTORE_GC_GRACE"):
        monkeypatch.delenv(name, raising=False)
    with MediaStore(root) as store:
        assert (store.config.collect_unreferenced, store.config.gc_grace) == (True, 0.0)
        lost, _ = _one_unreferenced(store)
        assert store.gc().unreferenced == [lost]
    monkeypatch.setenv("MEDIASTORE_GC_GRACE", "7d")
    monkeypatch.setenv("MEDIASTORE_COLLECT_UNREFERENCED", "off")
    with MediaStore(root) as store:
        assert (store.config.collect_unreferenced, store.config.gc_grace) == (False, 604800.0)
    monkeypatch.setenv("MEDIASTORE_GC_GRACE", "90")
    with MediaStore(root) as store:
        assert store.config.gc_grace == 90.0
    for name, bad in (("MEDIASTORE_GC_GRACE", "soon"), ("MEDIASTORE_GC_GRACE", "-5"),
                      ("MEDIASTORE_COLLECT_UNREFERENCED", "maybe")):  # fmt: skip
        monkeypatch.setenv(name, bad)
        with pytest.raises(InvalidInputError, match=name.removeprefix("MEDIASTORE_").lower()):
            MediaStore(root)
        monkeypatch.delenv(name)


# --- a reference waiting on a URL that is later answered through URL identity ---------------
def _signed_store(
    make_store: Callable[..., MediaStore], name: str, db_url: str | None = None
) -> MediaStore:
    """A store whose rule says ``sig`` is a signature: /x.png?sig=1 and ?sig=2 are one asset."""
    rule = rule_from_mapping({"name": "loop", "hosts": ["127.0.0.1"], "drop": ["sig"]}, "test")
    return make_store(name, identity_rules=(rule,), db_url=db_url)


def _waiting_on_a_rotated_url(http: HTTPServer, store: MediaStore, path: str) -> tuple[str, str]:
    """post:9 waits on ``path?sig=2`` (its download failed); then ``path?sig=1`` is stored
    (no reference): returns the rotated URL and the md5."""
    http.expect_request(path, query_string="sig=2").respond_with_data("no", status=503)
    http.expect_request(path, query_string="sig=1").respond_with_data(
        png(80), content_type="image/png"
    )
    rotated, first = http.url_for(f"{path}?sig=2"), http.url_for(f"{path}?sig=1")
    with pytest.raises(FetchError):
        store.fetch(rotated, ref="post:9", position=2)
    md5 = store.fetch(first).md5
    [waiting] = store.references("post:9")
    assert (waiting.md5, waiting.url) == (None, rotated)  # another URL: not filled yet
    return rotated, md5


@pytest.mark.parametrize("answer", ["get_by_url", "fetch"])
def test_a_waiting_reference_is_filled_when_identity_answers_its_url(
    http: HTTPServer,
    make_store: Callable[..., MediaStore],
    backend_db: str | None,
    answer: str,
) -> None:
    """A key waiting on a failed URL holds the content once that URL is answered through
    URL identity: by get_by_url, and by a fetch of it again (with no reference of its own),
    counted once, at its position; on SQLite and on PostgreSQL."""
    store = _signed_store(make_store, answer, backend_db)
    rotated, md5 = _waiting_on_a_rotated_url(http, store, f"/{answer}.png")
    got = getattr(store, answer)(rotated)
    assert got is not None and got.md5 == md5
    store.catalog.flush_urls()  # the identity's URLs are recorded by a writer thread
    [filled] = store.references("post:9")
    assert (filled.md5, filled.url, filled.position) == (md5, rotated, 2)
    assert [r.md5 for r in store.media_for("post:9")] == [md5]
    assert [(r.ref, r.md5) for r in store.refs(md5)] == [("post:9", md5)]
    with store.catalog.engine.connect() as conn:  # the count, read with plain SQL
        count = conn.exec_driver_sql(f"SELECT ref_count FROM media WHERE md5 = '{md5}'")
        assert count.scalar() == 1
    assert store.stats().unreferenced_files == 0
    assert store.gc(unreferenced=True, grace=NOW).unreferenced == []


def test_a_waiting_reference_taken_again_by_fetch_through_identity_is_one_row(
    http: HTTPServer, make_store: Callable[..., MediaStore]
) -> None:
    """fetch(rotated, ref=the same key) answered by identity: one reference row on the
    content, none left waiting, counted once."""
    store = _signed_store(make_store, "again")
    rotated, md5 = _waiting_on_a_rotated_url(http, store, "/again.png")
    assert store.fetch(rotated, ref="post:9").md5 == md5
    store.catalog.flush_urls()
    assert [(r.md5, r.url) for r in store.references("post:9")] == [(md5, rotated)]
    assert rows_of(store, md5) == 1


def test_a_waiting_reference_stays_waiting_when_the_content_was_removed(
    http: HTTPServer, make_store: Callable[..., MediaStore]
) -> None:
    """The identity answered, then the content was removed before its URL was recorded:
    the key keeps waiting on its URL, and no row names removed content."""
    store = _signed_store(make_store, "removed")
    rotated, md5 = _waiting_on_a_rotated_url(http, store, "/removed.png")
    assert store.get_by_url(rotated) is not None
    store.remove(md5)
    store.catalog.flush_urls()
    [waiting] = store.references("post:9")
    assert (waiting.md5, waiting.url) == (None, rotated)
    assert rows(store, f"SELECT ref_count, status FROM media WHERE md5 = '{md5}'") == [
        (0, "removed")
    ]


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_a_collection_locks_its_rows_in_md5_order_on_postgresql(
    tmp_path: Path, pg_url: str
) -> None:
    """On PostgreSQL a collection's tombstone takes its rows' locks in md5 order (as a batch
    taking references does), so the two wait for each other instead of deadlocking: while
    it waits for the last row, it already holds the first; it finishes once let through."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.pool import NullPool

    with MediaStore(tmp_path / "s", db_url=pg_url) as store:
        # rows written last in descending md5 order: a scan in heap order meets the last first
        contents = sorted((png(90 + i) for i in range(3)), key=_md5, reverse=True)
        for n, data in enumerate(contents):
            store.add_bytes(data, ref=f"k{n}")
        for n in range(len(contents)):
            store.drop_ref(f"k{n}")
        md5s = sorted(map(_md5, contents))
    engine = create_engine(pg_url, poolclass=NullPool)
    with engine.connect() as admin:  # the plan of a large page: a bitmap scan, heap order
        name = admin.execute(text("SELECT current_database()")).scalar()
        admin.execute(text(f'ALTER DATABASE "{name}" SET enable_indexscan = off'))
        admin.commit()
    with MediaStore(tmp_path / "s", db_url=pg_url) as store:
        done: list[list[str]] = []
        try:
            with engine.connect() as holder:
                holder.execute(
                    text("SELECT md5 FROM media WHERE md5 = :m FOR UPDATE"), {"m": md5s[-1]}
                )
                worker = threading.Thread(
                    target=lambda: done.append(store.gc(unreferenced=True, grace=NOW).unreferenced)
                )
                worker.start()
                with engine.connect() as probe:
                    deadline = time.monotonic() + 30
                    while not probe.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                            "'Lock' AND pid <> pg_backend_pid()"
                        )
                    ).scalar():
                        assert time.monotonic() < deadline, "the collection never waited"
                        time.sleep(0.02)
                    with pytest.raises(OperationalError, match="could not obtain lock"):
                        probe.execute(
                            text("SELECT md5 FROM media WHERE md5 = :m FOR UPDATE NOWAIT"),
                            {"m": md5s[0]},
                        )
                holder.rollback()
            worker.join(30)
        finally:
            engine.dispose()
        assert done == [md5s]
