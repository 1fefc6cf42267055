"""Read-only use: a store the user may read but not write, and commands that never
create a store.

The tests run as root, for whom mode 555 changes nothing, so the unprivileged part runs in a
forked child that drops to ``nobody`` (uid/gid 65534) and reports back through a pipe. The
interpreter lives under a directory ``nobody`` cannot read, so the child cannot import
anything new: every module and code path it needs is warmed up in the parent first.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import checker
import pytest
from click.testing import CliRunner
from nobody import NOBODY, needs_root, run_as_nobody

from mediastore import MediaStore, errors
from mediastore import testing as t
from mediastore.cli import main

CATALOG_FILES = ("catalog.sqlite3", "catalog.sqlite3-wal", "catalog.sqlite3-shm")
CLEAN_ENV = {"MEDIASTORE_ROOT": None, "MEDIASTORE_DB_URL": None}


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _cli(*args: str) -> Any:
    return CliRunner(env=CLEAN_ENV).invoke(main, list(args))


# --- commands that must not create a store ----------------------------------------------------
def test_create_false_on_a_missing_root_raises_and_creates_nothing(tmp_path: Path) -> None:
    """MediaStore(root, create=False) where there is no store raises StoreNotFoundError (a
    MediaNotFoundError, exit code 5) and creates neither the directory nor a catalog."""
    missing = tmp_path / "typo"
    with pytest.raises(errors.StoreNotFoundError) as caught:
        MediaStore(missing, create=False)
    assert isinstance(caught.value, errors.MediaNotFoundError)
    assert caught.value.exit_code == 5
    assert not os.path.lexists(missing)


def test_create_false_on_an_empty_directory_leaves_it_empty(tmp_path: Path) -> None:
    """An existing directory without a catalog is no store: create=False raises and writes
    nothing into it (no media/, tmp/ or catalog)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(errors.StoreNotFoundError):
        MediaStore(empty, create=False)
    assert os.listdir(empty) == []


def test_create_false_with_a_catalog_url_in_a_missing_directory(tmp_path: Path) -> None:
    """create=False with ``db_url`` in a directory that does not exist raises, and the
    directory is not created (neither for a new root nor beside an existing store)."""
    db_url = f"sqlite:///{tmp_path}/nonexistent/dir/x.db"
    with pytest.raises(errors.StoreNotFoundError):
        MediaStore(tmp_path / "new-root", db_url=db_url, create=False)
    assert not os.path.lexists(tmp_path / "nonexistent")
    assert not os.path.lexists(tmp_path / "new-root")
    MediaStore(tmp_path / "store").close()
    before = checker.tree_snapshot(tmp_path / "store")
    with pytest.raises(errors.StoreNotFoundError):
        MediaStore(tmp_path / "store", db_url=db_url, create=False)
    assert not os.path.lexists(tmp_path / "nonexistent")
    assert checker.tree_snapshot(tmp_path / "store") == before


def test_create_false_opens_an_existing_store(tmp_path: Path) -> None:
    """create=False only refuses to make a store: an existing one opens and works as usual."""
    with MediaStore(tmp_path / "s") as store:
        rec = store.add_bytes(t.noisy_jpeg(seed=1), url="https://ro.test/1.jpg")
    with MediaStore(tmp_path / "s", create=False) as store:
        assert store.stats().total_files == 1
        store.add_bytes(t.noisy_jpeg(seed=2))
        got = store.get_by_url("https://ro.test/1.jpg")
        assert got is not None and got.md5 == rec.md5


NO_STORE_COMMANDS = [
    ["stats"], ["stats", "--json"], ["get", "https://ro.test/x.jpg"], ["show", "0" * 32],
    ["verify"],
]  # fmt: skip


@pytest.mark.parametrize("command", NO_STORE_COMMANDS, ids=" ".join)
def test_read_only_commands_never_create_a_store(tmp_path: Path, command: list[str]) -> None:
    """``mediastore --root typo <stats|get|show|verify>`` exits 5 with one line on stderr and
    ``typo/`` does not exist afterwards; the same with ``--db`` in a missing directory."""
    typo = tmp_path / "typo"
    result = _cli("--root", str(typo), *command)
    assert result.exit_code == 5, (result.exit_code, result.output, result.exception)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not os.path.lexists(typo)
    db = f"sqlite:///{tmp_path}/nonexistent/dir/x.db"
    result = _cli("--root", str(typo), "--db", db, *command)
    assert result.exit_code == 5, (result.exit_code, result.output, result.exception)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not os.path.lexists(typo) and not os.path.lexists(tmp_path / "nonexistent")


# --- a store this user can read but not write -------------------------------------------------
def _warm_up(scratch: Path) -> None:
    """Run every path the unprivileged child will take once here, so that the lazy imports
    (stdlib, Pillow plugins, click, Alembic's scripts) are done before it loses access."""
    jpeg, png = t.noisy_jpeg(seed=900), t.image_bytes("PNG", color="gray")
    with MediaStore(scratch) as store:
        rec = store.add_bytes(jpeg, url="https://warm.test/1.jpg")
        store.add_bytes(png)
        store.get_by_url("https://warm.test/1.jpg")
        store.get_by_url("https://warm.test/none.jpg")
        store.get_by_md5(rec.md5)
        store.urls_for(rec.md5)
        store.stats()
        store.verify()
        store.verify([rec.md5])
    for options in ({"read_only": True}, {"create": False}):
        with contextlib.suppress(Exception), MediaStore(scratch, **options) as store:
            store.stats()
            store.verify()
            store.get_by_url("https://warm.test/1.jpg")
            with contextlib.suppress(Exception):
                store.add_bytes(t.noisy_jpeg(seed=901))
    for args in (["stats"], ["stats", "--json"], ["get", "https://warm.test/1.jpg"],
                 ["show", rec.md5], ["verify"], ["verify", rec.md5]):  # fmt: skip
        _cli("--root", str(scratch), *args)
    json.dumps({"warm": [1, "x", None]})


def _lock_down(root: Path) -> None:
    """Everything owned by root; directories 555, files 444."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o444)
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o555)
    root.chmod(0o555)


def _attempt(fn: Callable[[], Any]) -> dict[str, Any]:
    """``{"value": ...}`` or ``{"error": <type name>, "storage": is a StorageError, ...}``."""
    try:
        return {"value": fn()}
    except Exception as exc:
        return {
            "error": type(exc).__name__,
            "message": str(exc),
            "storage_error": isinstance(exc, errors.StorageError),
        }


def _cli_outcome(*args: str) -> dict[str, Any]:
    result = _cli(*args)
    return {
        "exit": result.exit_code,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "exception": repr(result.exception) if result.exit_code not in (0, 1) else None,
    }


def _unprivileged_checks(
    root: Path, options: dict[str, Any], good_url: str, good: str
) -> Callable[[], dict[str, Any]]:
    def run() -> dict[str, Any]:
        out: dict[str, Any] = {"uid": os.getuid()}
        opened = _attempt(lambda: MediaStore(root, **options))
        if "error" in opened:
            out["open"] = opened
            return out
        store = opened["value"]
        out["open"] = {"value": "opened"}
        try:
            out["stats"] = _attempt(lambda: store.stats().to_dict())
            out["get_by_url"] = _attempt(lambda: getattr(store.get_by_url(good_url), "md5", None))
            out["get_unknown_url"] = _attempt(lambda: store.get_by_url("https://ro.test/nope"))
            out["get_by_md5"] = _attempt(
                lambda: [getattr(store.get_by_md5(good), k, None) for k in ("md5", "status")]
            )
            out["urls_for"] = _attempt(lambda: store.urls_for(good))
            out["verify"] = _attempt(lambda: store.verify().to_dict())
            out["add_bytes"] = _attempt(lambda: store.add_bytes(t.noisy_jpeg(seed=77)).md5)
        finally:
            with contextlib.suppress(Exception):
                store.close()
        out["cli stats"] = _cli_outcome("--root", str(root), "stats")
        out["cli stats --json"] = _cli_outcome("--root", str(root), "stats", "--json")
        out["cli get"] = _cli_outcome("--root", str(root), "get", good_url)
        out["cli show"] = _cli_outcome("--root", str(root), "show", good)
        out["cli verify good"] = _cli_outcome("--root", str(root), "verify", good)
        out["cli verify"] = _cli_outcome("--root", str(root), "verify")
        return out

    return run


def _state(root: Path) -> tuple[Any, ...]:
    """The catalog's rows and every file but the catalog's own, to compare before/after."""
    db = checker.catalog_path(root)
    files = {k: v for k, v in checker.tree_snapshot(root).items() if k not in CATALOG_FILES}
    return checker.table_dump(db, "media"), checker.table_dump(db, "media_urls"), files


@needs_root
@pytest.mark.timeout(120)
@pytest.mark.parametrize("wal", ["closed-cleanly", "owner-has-it-open"])
@pytest.mark.parametrize("how", ["auto", "read_only=True"])
def test_a_store_this_user_cannot_write(public_dir: Path, wal: str, how: str) -> None:
    """As ``nobody``, on a root-owned store (dirs 555, files 444), with the WAL files absent
    (closed cleanly) or present (the owner has it open, with commits only in the WAL):
    MediaStore opens it read-only (by itself, or asked to), stats/get_by_url/get_by_md5/
    urls_for work, verify reports ok/missing/corrupt and changes nothing (no
    last_verified_at, nothing quarantined), add_bytes raises ReadOnlyStoreError, and the CLI's
    stats/get/show/verify work; the catalog and the files are exactly as before."""
    _warm_up(public_dir / "warm")
    root = public_dir / "store"
    good_jpeg, png = t.noisy_jpeg(seed=70), t.image_bytes("PNG", size=(20, 20), color="lime")
    damaged_data, gone_data = t.noisy_jpeg(seed=71), t.noisy_jpeg(seed=72)
    urls = ["https://ro.test/a.jpg", "https://ro.test/b.jpg"]
    with MediaStore(root) as store:
        for url in urls:
            store.add_bytes(good_jpeg, url=url)
        store.add_bytes(png, url="https://ro.test/c.png")
        damaged = store.add_bytes(damaged_data, url="https://ro.test/d.jpg")
        gone = store.add_bytes(gone_data)
    data = bytearray(damaged.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.path.write_bytes(bytes(data))
    gone.path.unlink()
    good, ok_md5s = _md5(good_jpeg), sorted([_md5(good_jpeg), _md5(png)])
    owner = None
    try:
        if wal == "owner-has-it-open":
            _lock_down(root)
            owner = MediaStore(root)
            late = owner.add_bytes(t.noisy_jpeg(seed=73), url="https://ro.test/late.jpg")
            ok_md5s = sorted([*ok_md5s, late.md5])
            assert os.path.exists(f"{checker.catalog_path(root)}-wal")
            expected_stats = owner.stats().to_dict()
        else:
            with MediaStore(root) as store:
                expected_stats = store.stats().to_dict()
            _lock_down(root)
        before = _state(root)
        if wal == "closed-cleanly":
            assert not os.path.exists(f"{checker.catalog_path(root)}-wal")
            assert not os.path.exists(f"{checker.catalog_path(root)}-shm")
        options = {"read_only": True} if how == "read_only=True" else {}

        got = run_as_nobody(_unprivileged_checks(root, options, urls[0], good))

        after = _state(root)
    finally:
        if owner is not None:
            owner.close()
    assert got["uid"] == NOBODY
    assert got["open"] == {"value": "opened"}, got["open"]
    assert got["stats"] == {"value": json.loads(json.dumps(expected_stats, default=str))}
    assert got["get_by_url"] == {"value": good}
    assert got["get_unknown_url"] == {"value": None}
    assert got["get_by_md5"] == {"value": [good, "ok"]}
    assert got["urls_for"] == {"value": urls}
    report = got["verify"].get("value")
    assert report is not None, got["verify"]
    assert (sorted(report["ok"]), report["missing"], report["corrupt"]) == (
        ok_md5s, [gone.md5], [damaged.md5],
    )  # fmt: skip
    assert got["add_bytes"].get("error") == "ReadOnlyStoreError", got["add_bytes"]
    assert got["add_bytes"]["storage_error"]
    for name in ("cli stats", "cli stats --json", "cli get", "cli show", "cli verify good"):
        assert got[name]["exit"] == 0, (name, got[name])
    assert (
        json.loads(got["cli stats --json"]["stdout"])["total_files"]
        == (expected_stats["total_files"])
    )
    assert good in got["cli get"]["stdout"] and urls[1] in got["cli show"]["stdout"]
    assert got["cli verify"]["exit"] == 1, got["cli verify"]  # it reports the damage...
    assert damaged.md5 in got["cli verify"]["stdout"]
    assert after == before  # ...and records nothing: no time, no status, no quarantine
    assert damaged.path.read_bytes() == bytes(data)
    assert not os.path.lexists(root / "quarantine") or os.listdir(root / "quarantine") == []
    assert stat.S_IMODE(root.stat().st_mode) == 0o555


def test_read_only_store_refuses_writes_even_for_its_owner(tmp_path: Path) -> None:
    """read_only=True on a store the user could write: add_bytes raises ReadOnlyStoreError,
    verify reports damage but records and moves nothing; the catalog and files are unchanged."""
    root = tmp_path / "s"
    with MediaStore(root) as store:
        good = store.add_bytes(t.noisy_jpeg(seed=80), url="https://ro.test/own.jpg")
        bad = store.add_bytes(t.noisy_jpeg(seed=81))
    data = bytearray(bad.path.read_bytes())
    data[100] ^= 0xFF
    bad.path.write_bytes(bytes(data))
    before = _state(root)
    with MediaStore(root, read_only=True) as store:
        with pytest.raises(errors.ReadOnlyStoreError):
            store.add_bytes(t.noisy_jpeg(seed=82), url="https://ro.test/new.jpg")
        report = store.verify()
        assert (report.ok, report.corrupt) == ([good.md5], [bad.md5])
        got = store.get_by_url("https://ro.test/own.jpg")
        assert got is not None and got.md5 == good.md5
    assert _state(root) == before
    assert checker.quarantined(root) == []
