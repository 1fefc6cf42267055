"""Finding and getting files out through the CLI: ``ls`` filters, MD5 prefixes,
``show``/``get`` output, ``cat``, ``export`` and ``rm --dry-run``/``--yes``."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import checker
import pytest
from click.testing import CliRunner, Result

from mediastore import MediaStore
from mediastore import testing as t
from mediastore.cli import main

CLEAN_ENV = {"MEDIASTORE_ROOT": None, "MEDIASTORE_DB_URL": None}


def run(root: Path, *args: str) -> Result:
    return CliRunner(env=CLEAN_ENV).invoke(main, ["--root", str(root), *args])


@pytest.fixture
def filled(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A store with two images, a PDF and a video, some with URLs; name -> md5."""
    root = tmp_path / "store"
    with MediaStore(root) as store:
        md5s = {
            "jpg": store.add_bytes(t.noisy_jpeg(seed=1), url="https://cdn.test/p/Sunset.JPG").md5,
            "png": store.add_bytes(t.image_bytes("PNG"), url="https://img.test/a/logo.png").md5,
            "pdf": store.add_bytes(t.pdf_bytes("report")).md5,
            "mp4": store.add_bytes(t.mp4_bytes(), url="https://cdn.test/v/clip.mp4?x=1").md5,
        }
    return root, md5s


def _lose_file(root: Path, md5: str) -> None:
    """Delete a stored file behind the store's back; verify then marks it missing."""
    with MediaStore(root) as store:
        rec = store.get_by_md5(md5)
        assert rec is not None and rec.path is not None
        rec.path.unlink()
        store.verify()


def _ls(root: Path, *args: str) -> list[str]:
    result = run(root, "ls", "--json", *args)
    assert result.exit_code == 0, result.output
    return [item["md5"] for item in json.loads(result.stdout)]


def test_ls_filters(filled: tuple[Path, dict[str, str]]) -> None:
    """ls lists every live file in md5 order; --type, --status, sizes, dates, --url and
    --limit narrow it; the text form has one line per file."""
    root, m = filled
    assert _ls(root) == sorted(m.values())
    assert sorted(_ls(root, "--type", "image")) == sorted([m["jpg"], m["png"]])
    assert _ls(root, "--type", "document") == [m["pdf"]]
    assert sorted(_ls(root, "--url", "cdn.test")) == sorted([m["jpg"], m["mp4"]])
    assert _ls(root, "--url", "%") == [] and _ls(root, "--url", "_") == []  # LIKE escaped
    assert _ls(root, "--url", "?x=1") == [m["mp4"]]
    with MediaStore(root) as store:
        sizes = {r.md5: r.size for r in store.list_media()}
    smallest = min(sizes.values())
    assert _ls(root, "--max-size", str(smallest)) == [k for k, v in sizes.items() if v == smallest]
    assert sorted(_ls(root, "--min-size", str(smallest + 1))) == sorted(
        k for k, v in sizes.items() if v > smallest
    )
    assert _ls(root, "--since", "1d") == sorted(m.values())
    assert _ls(root, "--before", "1d") == []
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert _ls(root, "--since", tomorrow) == []
    assert len(_ls(root, "--limit", "2")) == 2
    assert _ls(root, "--status", "missing") == []
    text = run(root, "ls").stdout.splitlines()
    assert len(text) == 4 and all(line.split()[0] in m.values() for line in text)


def test_ls_status_and_removed(filled: tuple[Path, dict[str, str]]) -> None:
    """A file whose bytes are gone is listed with --status missing after verify; removed
    content is never listed."""
    root, m = filled
    _lose_file(root, m["png"])
    with MediaStore(root) as store:
        store.remove(m["pdf"])
    assert _ls(root, "--status", "missing") == [m["png"]]
    assert m["pdf"] not in _ls(root)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--type", "audio"], "audio"), (["--min-size", "lots"], "not a size"),
        (["--since", "yesterday"], "not a date"), (["--limit", "-1"], "-1"),
    ],
)  # fmt: skip
def test_ls_bad_filters_exit_2(
    filled: tuple[Path, dict[str, str]], args: list[str], message: str
) -> None:
    root, _ = filled
    result = run(root, "ls", *args)
    assert result.exit_code == 2 and message in result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1


@pytest.mark.slow
def test_ls_streams_many_pages(tmp_path: Path) -> None:
    """More rows than a page (500): every one listed once, in order, as one JSON array."""
    root = tmp_path / "store"
    with MediaStore(root) as store:
        md5s = sorted(store.add_bytes(t.pdf_bytes(f"doc {i}")).md5 for i in range(1203))
    assert _ls(root) == md5s
    assert _ls(root, "--limit", "501") == md5s[:501]


def test_md5_prefixes(filled: tuple[Path, dict[str, str]]) -> None:
    """show, cat, export, verify and rm --yes accept a unique prefix of 6+ characters; a
    short or non-hex one is refused (exit 2); one no file starts with exits 5."""
    root, m = filled
    a = m["jpg"]
    assert json.loads(run(root, "show", a[:6], "--json").stdout)["md5"] == a
    assert json.loads(run(root, "show", a.upper(), "--json").stdout)["md5"] == a
    assert run(root, "verify", a[:7]).exit_code == 0
    short = run(root, "show", a[:5])
    assert short.exit_code == 2 and "6 to 32 hex" in short.stderr
    assert run(root, "show", "zzzzzzzz").exit_code == 2
    taken = {md5[:6] for md5 in m.values()}
    free = next(p for p in (f"{i:06x}" for i in range(1 << 24)) if p not in taken)
    missing = run(root, "show", free)
    assert missing.exit_code == 5 and f"starting with {free}" in missing.stderr


def test_ambiguous_prefix_lists_candidates(tmp_path: Path) -> None:
    """A prefix shared by two rows (made so by hand in the catalog) is refused with both."""
    root = tmp_path / "store"
    with MediaStore(root) as store:
        one = store.add_bytes(t.pdf_bytes("one")).md5
    twin = one[:10] + ("0" if one[10] != "0" else "1") + one[11:]
    with sqlite3.connect(root / "catalog.sqlite3") as conn:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(media)")]
        values = conn.execute("SELECT * FROM media WHERE md5 = ?", (one,)).fetchone()
        row = dict(zip(cols, values, strict=True))
        row["md5"] = twin
        conn.execute(
            f"INSERT INTO media ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            list(row.values()),
        )
    conn.close()
    result = run(root, "show", one[:8])
    assert result.exit_code == 2
    assert "ambiguous" in result.stderr and one in result.stderr and twin in result.stderr
    assert json.loads(run(root, "show", one[:11], "--json").stdout)["md5"] == one


def test_show_json_has_urls_not_a_null_url(filled: tuple[Path, dict[str, str]]) -> None:
    root, m = filled
    shown = json.loads(run(root, "show", m["jpg"], "--json").stdout)
    assert "url" not in shown and shown["urls"] == ["https://cdn.test/p/Sunset.JPG"]
    got = json.loads(run(root, "get", "https://cdn.test/p/Sunset.JPG", "--json").stdout)
    assert got["url"] == "https://cdn.test/p/Sunset.JPG"


def test_get_of_a_url_whose_file_is_missing_says_so(filled: tuple[Path, dict[str, str]]) -> None:
    """get of a URL the catalog knows but whose file is gone: exit 5, naming the md5, the
    status and the repair, while show still lists the URL."""
    root, m = filled
    _lose_file(root, m["png"])
    result = run(root, "get", "https://img.test/a/logo.png")
    assert result.exit_code == 5
    assert f"recorded for {m['png']}, whose file is missing" in result.stderr
    assert "verify --repair" in result.stderr
    assert "https://img.test/a/logo.png" in run(root, "show", m["png"]).stdout


def test_cat_by_md5_prefix_and_url(filled: tuple[Path, dict[str, str]]) -> None:
    """cat writes the exact stored bytes, named by md5, prefix or URL; unknown ones exit 5."""
    root, m = filled
    for name in (m["jpg"], m["jpg"][:8], "https://cdn.test/p/Sunset.JPG"):
        out = CliRunner(env=CLEAN_ENV).invoke(main, ["--root", str(root), "cat", name])
        assert out.exit_code == 0, out.output
        assert out.stdout_bytes == t.noisy_jpeg(seed=1)
    assert run(root, "cat", "https://cdn.test/none.jpg").exit_code == 5
    assert run(root, "cat", "0" * 32).exit_code == 5


def test_export_copies_with_sidecars_and_is_idempotent(
    filled: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """export DIR copies every file named by md5 with a JSON sidecar; editing an export
    leaves the store intact; a second export finds them already there."""
    root, m = filled
    out = tmp_path / "out"
    result = run(root, "export", str(out), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert sorted(e["md5"] for e in report["exported"]) == sorted(m.values())
    assert {e["method"] for e in report["exported"]} <= {"reflink", "copy"}
    jpg = out / f"{m['jpg']}.jpg"
    assert hashlib.md5(jpg.read_bytes()).hexdigest() == m["jpg"]
    side = json.loads((out / f"{m['jpg']}.jpg.json").read_text())
    assert side["md5"] == m["jpg"] and side["urls"] == ["https://cdn.test/p/Sunset.JPG"]
    jpg.write_bytes(b"edited")
    assert run(root, "verify").exit_code == 0  # a copy: the stored file is untouched
    again = json.loads(run(root, "export", str(out), "--json").stdout)["exported"]
    methods = {e["md5"]: e["method"] for e in again}
    assert methods[m["jpg"]] in ("reflink", "copy")  # the edited one is other content now
    assert (out / f"{m['jpg']}-1.jpg").exists()
    assert all(v == "already" for k, v in methods.items() if k != m["jpg"])


def test_export_by_url_name_selection_and_hardlink(
    filled: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """--name url uses the URL's file name (extension from the content), filters select,
    --hardlink warns and links; a file without URL falls back to its md5."""
    root, m = filled
    out = tmp_path / "by-url"
    result = run(root, "export", str(out), "--name", "url", "--type", "image", "--no-sidecar")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["Sunset.jpg", "logo.png"]
    links = tmp_path / "links"
    linked = run(root, "export", str(links), m["pdf"], "https://cdn.test/v/clip.mp4?x=1",
                 "--name", "url", "--hardlink", "--json")  # fmt: skip
    assert linked.exit_code == 0, linked.output
    assert "editing one in place damages" in linked.stderr
    entries = json.loads(linked.stdout)["exported"]
    assert {e["method"] for e in entries} == {"hardlink"}
    with MediaStore(root) as store:
        stored = store.get_by_md5(m["pdf"])
        assert stored is not None and stored.path is not None
        assert (links / f"{m['pdf']}.pdf").stat().st_ino == stored.path.stat().st_ino
    assert sorted(p.name for p in links.iterdir() if p.suffix != ".json") == sorted(
        [f"{m['pdf']}.pdf", "clip.mp4"]
    )


def test_export_failures_and_exit_codes(
    filled: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """One unknown item: exit 5; a target that is a file: exit 2, nothing written; a file
    whose bytes are missing among others: exit 1 and the rest exported."""
    root, m = filled
    assert run(root, "export", str(tmp_path / "o1"), "0" * 32).exit_code == 5
    target = tmp_path / "a-file"
    target.write_text("x")
    assert run(root, "export", str(target)).exit_code == 2
    under_a_file = run(root, "export", str(target / "sub"))
    assert under_a_file.exit_code == 6 and "cannot create" in under_a_file.stderr  # storage
    _lose_file(root, m["png"])
    result = run(root, "export", str(tmp_path / "o2"))
    assert result.exit_code == 1 and m["png"] in result.stderr and "missing" in result.stderr
    assert len(list((tmp_path / "o2").glob("*.json"))) == 3


def test_rm_dry_run_yes_and_partial(filled: tuple[Path, dict[str, str]]) -> None:
    """rm --dry-run changes nothing; a prefix needs --yes; a batch with an unknown md5
    removes the others and exits 1; one unknown md5 exits 5."""
    root, m = filled
    before = checker.tree_snapshot(root / "media")
    dry = run(root, "rm", "--dry-run", m["jpg"])
    assert dry.exit_code == 0 and f"would remove {m['jpg']}" in dry.stdout
    assert checker.tree_snapshot(root / "media") == before
    refused = run(root, "rm", m["jpg"][:8])
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    assert run(root, "rm", "--yes", m["jpg"][:8]).exit_code == 0
    partial = run(root, "rm", m["png"], "f" * 32, m["pdf"])
    assert partial.exit_code == 1 and "f" * 32 in partial.stderr
    assert sorted(_ls(root)) == [m["mp4"]]
    assert run(root, "rm", "e" * 32).exit_code == 5
