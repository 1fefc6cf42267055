"""mediastore.export: safe names, numbering, copies that never overwrite, sidecars."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from mediastore import MediaStore, errors
from mediastore import testing as t
from mediastore.export import clone_or_copy, export_name, numbered, safe_name


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("photo.jpg", "photo.jpg"), ("../../etc/passwd", "_.._etc_passwd"), ("..", "md5"),
        (".hidden.png", "hidden.png"), ("a/b\\c", "a_b_c"), ("x\ny\x1bz.gif", "x_y_z.gif"),
        ("bidi\u202egpj.exe", "bidi_gpj.exe"), ("   ", "md5"), ("a:b*c?.png", "a_b_c_.png"),
        ("é" * 150, "é" * 100),
    ],
)  # fmt: skip
def test_safe_name(given: str, expected: str) -> None:
    """No separators, no leading dots (so no ``..``), no control or format characters,
    at most 200 UTF-8 bytes; nothing left: the fallback."""
    name = safe_name(given, fallback="md5")
    assert name == expected
    assert "/" not in name and not name.startswith(".") and len(name.encode()) <= 200


def test_export_name_and_numbering(store: MediaStore) -> None:
    """By URL: the last path segment, percent-decoded and made safe, with the content's own
    extension (a synonym is kept as the stem's end only when it differs)."""
    rec = store.add_bytes(t.noisy_jpeg(seed=2))
    assert export_name(rec, [], "url") == f"{rec.md5}.jpg"
    assert export_name(rec, ["https://x.test/a/My%20Photo.JPEG?s=1"], "url") == "My Photo.jpg"
    assert export_name(rec, ["https://x.test/a/view.php"], "url") == "view.php.jpg"
    assert export_name(rec, ["https://x.test/", "https://y.test/%2e%2e%2fpwn"], "url") == "_pwn.jpg"
    assert export_name(rec, ["https://x.test/p.jpg"], "md5") == f"{rec.md5}.jpg"
    assert [numbered("a.jpg", n) for n in range(3)] == ["a.jpg", "a-1.jpg", "a-2.jpg"]
    with pytest.raises(errors.InvalidInputError):
        export_name(rec, [], "size")


def test_collisions_are_numbered_never_overwritten(store: MediaStore, tmp_path: Path) -> None:
    """Two contents named alike by URL get a.png and a-1.png; a file planted under the name
    is left alone (and so is a symlink's target)."""
    one = store.add_bytes(t.image_bytes("PNG", color="red"), url="https://a.test/x/a.png")
    two = store.add_bytes(t.image_bytes("PNG", color="blue"), url="https://b.test/y/a.png")
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (out / "a.png").symlink_to(victim)
    report = store.export(out, [one, two], name_by="url")
    assert report.failed == []
    assert sorted(e.path.name for e in report.exported) == ["a-1.png", "a-2.png"]
    assert victim.read_text() == "keep me" and (out / "a.png").is_symlink()
    side = json.loads((out / "a-1.png.json").read_text())
    assert side["exported_as"] == "a-1.png" and "url" not in side and side["urls"]


def test_clone_or_copy_falls_back_for_streams_without_a_descriptor(tmp_path: Path) -> None:
    """A source with no file descriptor (an object-store stream) is copied by read/write."""
    data = os.urandom(300_000)
    target = tmp_path / "t"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        assert clone_or_copy(io.BytesIO(data), fd) == "copy"
    finally:
        os.close(fd)
    assert target.read_bytes() == data


def test_clone_or_copy_of_a_real_file(tmp_path: Path) -> None:
    """A real file: a reflink where the filesystem has one, else a copy; same bytes."""
    src = tmp_path / "s"
    src.write_bytes(os.urandom(200_000))
    target = tmp_path / "t"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        with src.open("rb") as fh:
            assert clone_or_copy(fh, fd) in ("reflink", "copy")
    finally:
        os.close(fd)
    assert target.read_bytes() == src.read_bytes()


def test_a_status_other_than_ok_is_reported_not_exported(store: MediaStore, tmp_path: Path) -> None:
    rec = store.add_bytes(t.pdf_bytes())
    assert rec.path is not None
    rec.path.unlink()
    store.verify()
    missing = store.get_by_md5(rec.md5)
    assert missing is not None and missing.status == "missing"
    report = store.export(tmp_path / "out", [missing])
    assert report.exported == [] and "missing" in report.failed[0][1]
    assert list((tmp_path / "out").iterdir()) == []
