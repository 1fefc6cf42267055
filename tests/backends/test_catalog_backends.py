"""The catalog on SQLite and on PostgreSQL: URL keys, URL history, stats counters, retries.

Every test runs on both databases (the ``catalog_url`` fixture: a SQLite file, and a fresh
database on a PostgreSQL server the tests start). The expected figures are computed with
plain SQL over the tables, never with the counters or the store's own queries.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from mediastore import InvalidInputError, MediaNotFoundError, MediaStore
from mediastore import testing as t
from mediastore.catalog import schema

URL = "https://cdn.example/p/{}.jpg"


def _image(seed: int) -> bytes:
    """A distinct real JPEG per seed."""
    return t.image_bytes("JPEG", size=(16 + seed, 16), color=(seed * 30 % 256, 40, 90))


def _truth(engine: Engine) -> dict[str, Any]:
    """What stats() must say, counted from the rows with plain SQL."""
    with engine.connect() as conn:
        live = conn.execute(
            text(
                "SELECT status, count(*), coalesce(sum(size), 0) FROM media "
                "WHERE status <> 'removed' GROUP BY status"
            )
        ).all()
        unverified = conn.execute(
            text(
                "SELECT count(*) FROM media WHERE last_verified_at IS NULL AND status <> 'removed'"
            )
        ).scalar_one()
        urls = conn.execute(text("SELECT count(*) FROM media_urls")).scalar_one()
    return {
        "by_status": {s: (n, b) for s, n, b in live},
        "files": sum(n for _, n, _ in live),
        "bytes": sum(b for _, _, b in live),
        "unverified": unverified,
        "urls": urls,
    }


def _said(store: MediaStore) -> dict[str, Any]:
    stats = store.stats()
    return {
        "by_status": {s: (v.count, v.size) for s, v in stats.by_status.items() if v.count},
        "files": stats.total_files,
        "bytes": stats.total_size,
        "unverified": stats.unverified,
        "urls": stats.total_urls,
    }


def test_counters_follow_every_kind_of_change(
    tmp_path: Path, catalog_url: str, sql: Engine
) -> None:
    """Adds, duplicate adds, moved URLs, rm, a missing file, verify and gc: stats() agrees
    with the rows after each, and gc's recount finds nothing to repair."""
    with MediaStore(tmp_path / "s", db_url=catalog_url) as store:
        a = store.add_bytes(_image(1), url=URL.format(1))
        assert _said(store) == _truth(sql)
        store.add_bytes(_image(1), url=URL.format(2))  # dedup by content
        store.add_bytes(_image(1))  # a second copy, no URL
        b = store.add_bytes(_image(2), url=URL.format(3))
        store.add_bytes(_image(3), url=URL.format(1))  # URL 1 moves
        assert _said(store) == _truth(sql)
        stats = store.stats()
        assert stats.dedup_adds == 2 and stats.dedup_saved_bytes == 2 * a.size
        store.remove(b.md5)
        assert _said(store) == _truth(sql)
        assert a.path is not None
        a.path.unlink()
        store.verify()
        assert store.stats().by_status["missing"].count == 1
        assert _said(store) == _truth(sql)
        report = store.gc()
        assert report.counters_repaired == {}
        assert _said(store) == _truth(sql)


def test_recount_repairs_counters_that_drifted(
    tmp_path: Path, catalog_url: str, sql: Engine
) -> None:
    """Counters changed behind the store's back are found and repaired by gc."""
    with MediaStore(tmp_path / "s", db_url=catalog_url) as store:
        for i in range(3):
            store.add_bytes(_image(i), url=URL.format(i))
        with sql.begin() as conn:
            conn.execute(
                text(
                    "UPDATE stats_counters SET count = count + 5 WHERE name = 'urls' AND shard = "
                    "(SELECT min(shard) FROM stats_counters WHERE name = 'urls')"
                )
            )
            conn.execute(text("UPDATE media SET url_count = 7"))
        assert store.stats().total_urls == 8
        report = store.gc()
        # (a wrong url_count is repaired too; its trigger keeps shared_urls in step with it)
        assert set(report.counters_repaired) == {"urls"}
        assert report.counters_repaired["urls"][0] == (3, 0)
        assert _said(store) == _truth(sql)
        with sql.connect() as conn:
            assert conn.execute(text("SELECT max(url_count) FROM media")).scalar_one() == 1
        assert store.gc().counters_repaired == {}


def test_two_urls_never_share_a_row_through_their_md5(
    tmp_path: Path, catalog_url: str, sql: Engine
) -> None:
    """URL rows are keyed by SHA-256: a URL whose MD5 equals another's (forced here) keeps
    its own row and content."""
    first, second = URL.format("first"), URL.format("second")
    with MediaStore(tmp_path / "s", db_url=catalog_url) as store:
        a = store.add_bytes(_image(1), url=first)
        with sql.begin() as conn:  # as if md5(first) == md5(second)
            conn.execute(
                text("UPDATE media_urls SET url_md5 = :h"),
                {"h": hashlib.md5(second.encode()).hexdigest()},
            )
        b = store.add_bytes(_image(2), url=second)
        assert store.get_by_url(first).md5 == a.md5  # type: ignore[union-attr]
        assert store.get_by_url(second).md5 == b.md5  # type: ignore[union-attr]
    with sql.connect() as conn:
        keys = dict(conn.execute(text("SELECT url, url_key FROM media_urls")).all())
    assert keys == {u: hashlib.sha256(u.encode()).hexdigest() for u in (first, second)}


def test_a_url_longer_than_a_btree_row_is_stored_and_found(
    tmp_path: Path, catalog_url: str
) -> None:
    url = "https://cdn.example/p/" + "a" * 10_000 + ".png"
    with MediaStore(tmp_path / "s", db_url=catalog_url) as store:
        rec = store.add_bytes(t.image_bytes(), url=url)
        assert store.get_by_url(url).md5 == rec.md5  # type: ignore[union-attr]
        assert store.get_by_url(url + "x") is None


def test_moved_and_removed_urls_leave_history(
    tmp_path: Path, catalog_url: str, sql: Engine
) -> None:
    url = URL.format("h")
    with MediaStore(tmp_path / "s", db_url=catalog_url) as store:
        a = store.add_bytes(_image(1), url=url)
        b = store.add_bytes(_image(2), url=url)
        store.add_bytes(_image(2), url=url)  # same content again: no history
        store.remove(b.md5)
    with sql.connect() as conn:
        rows = conn.execute(
            text("SELECT url, md5, event, url_key FROM url_history ORDER BY id")
        ).all()
    key = hashlib.sha256(url.encode()).hexdigest()
    assert [tuple(r) for r in rows] == [(url, a.md5, "moved", key), (url, b.md5, "removed", key)]


def _writer(db_url: str, root: str, worker: int, rounds: int) -> None:
    """Add overlapping content under overlapping URLs, and rm some of it (one process)."""
    with MediaStore(root, db_url=db_url) as store:
        for i in range(rounds):
            rec = store.add_bytes(_image(i % 7), url=URL.format((i + worker) % 11))
            if (i + worker) % 5 == 0:
                with contextlib.suppress(MediaNotFoundError):  # another writer removed it
                    store.remove(rec.md5)


@pytest.mark.slow
def test_concurrent_writers_keep_counters_exact(
    tmp_path: Path, catalog_url: str, sql: Engine
) -> None:
    """Four processes racing adds, URL moves and rm on one catalog: afterwards the counters
    equal the rows (gc's recount repairs nothing) and every ok row's file is intact."""
    root = tmp_path / "s"
    MediaStore(root, db_url=catalog_url).close()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(catalog_url, str(root), w, 40)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 4
    with MediaStore(root, db_url=catalog_url) as store:
        assert _said(store) == _truth(sql)
        assert store.gc().counters_repaired == {}
    with sql.connect() as conn:
        ok = conn.execute(text("SELECT md5, extension FROM media WHERE status = 'ok'")).all()
    for md5, ext in ok:
        data = (root / "media" / "images" / f"{md5}.{ext}").read_bytes()
        assert hashlib.md5(data).hexdigest() == md5


def test_migration_0004_keys_and_counts_existing_rows(catalog_url: str, sql: Engine) -> None:
    """0004 keys every URL row by SHA-256 (legacy rows by their URL's MD5), counts what is
    there, and downgrades back to 0003 with the rows kept."""
    from alembic import command

    cfg = schema.alembic_config(catalog_url)
    command.upgrade(cfg, "0003")
    legacy = "c" * 32
    with sql.begin() as conn:
        for md5, size, status in (
            ("a" * 32, 10, "ok"),
            ("b" * 32, 20, "ok"),
            ("d" * 32, 5, "removed"),
        ):
            conn.execute(
                text(
                    "INSERT INTO media (md5, sha256, media_type, mime_type, extension, size, "
                    "created_at, status) VALUES (:m, :s, 'image', 'image/png', 'png', :n, "
                    "'2026-01-01 00:00:00', :st)"
                ),
                {"m": md5, "s": "0" * 64, "n": size, "st": status},
            )
        for url, md5, source in (
            (URL.format(1), "a" * 32, "url"),
            (URL.format(2), "a" * 32, "url"),
            (None, "b" * 32, "legacy"),
        ):
            conn.execute(
                text(
                    "INSERT INTO media_urls (url, url_md5, source, md5, first_seen_at) "
                    "VALUES (:u, :h, :src, :m, '2026-01-02 00:00:00')"
                ),
                {"u": url, "h": hashlib.md5(url.encode()).hexdigest() if url else legacy,
                 "src": source, "m": md5},
            )  # fmt: skip
    command.upgrade(cfg, "0004")
    with sql.connect() as conn:
        keys = conn.execute(text("SELECT url, url_key FROM media_urls ORDER BY id")).all()
        counts = dict(conn.execute(text("SELECT md5, url_count FROM media")).all())
        counters = dict(
            conn.execute(text("SELECT name, sum(count) FROM stats_counters GROUP BY name")).all()
        )
    assert [k for _, k in keys] == [
        hashlib.sha256(URL.format(1).encode()).hexdigest(),
        hashlib.sha256(URL.format(2).encode()).hexdigest(),
        f"md5:{legacy}",
    ]
    assert counts == {"a" * 32: 2, "b" * 32: 1, "d" * 32: 0}
    assert counters["media:image:ok"] == 2 and counters["media:image:removed"] == 1
    assert counters["urls"] == 3 and counters["shared_urls"] == 1
    assert counters["unverified"] == 2
    command.downgrade(cfg, "0003")
    with sql.connect() as conn:
        urls = conn.execute(text("SELECT url FROM media_urls ORDER BY id")).scalars().all()
        assert conn.execute(text("SELECT count(*) FROM media")).scalar_one() == 3
    assert urls == [URL.format(1), URL.format(2), None]
    command.upgrade(cfg, "head")


def test_counter_triggers_exist_at_head(catalog_url: str, sql: Engine) -> None:
    """A later migration that rebuilds media or media_urls must not lose the triggers."""
    from alembic import command

    command.upgrade(schema.alembic_config(catalog_url), "head")
    query = (
        "SELECT tgrelid::regclass::text FROM pg_trigger WHERE NOT tgisinternal"
        if sql.dialect.name == "postgresql"
        else "SELECT tbl_name FROM sqlite_master WHERE type = 'trigger'"
    )
    with sql.connect() as conn:
        tables = set(conn.execute(text(query)).scalars())
    assert tables == {"media", "media_urls"}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("garbage", "not a database URL"),
        ("mysql://u@127.0.0.1/db", "unsupported catalog database 'mysql'"),
        ("postgresql+psycopg2://u@127.0.0.1:1/db", "mediastore uses postgresql\\+psycopg://"),
    ],
)
def test_bad_catalog_urls_are_one_clear_error(tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        MediaStore(tmp_path / "s", db_url=url)
    assert not (tmp_path / "s").exists()


def test_missing_postgres_driver_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without psycopg (made unimportable: it cannot be uninstalled from the test run)."""
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(InvalidInputError, match=r"pip install 'mediastore\[postgres\]'"):
        MediaStore(tmp_path / "s", db_url="postgresql://u@127.0.0.1:1/db")
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_alembic_upgrade_head_from_the_repo_root(
    tmp_path: Path, catalog_url: str, pytestconfig: pytest.Config
) -> None:
    """The deploy step: ``alembic upgrade head`` with MEDIASTORE_DB_URL, then the store opens."""
    repo = pytestconfig.rootpath  # where pyproject.toml is
    env = {**os.environ, "MEDIASTORE_DB_URL": catalog_url}
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"], cwd=repo, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with MediaStore(tmp_path / "s", db_url=catalog_url) as store:
        assert store.stats().total_files == 0
