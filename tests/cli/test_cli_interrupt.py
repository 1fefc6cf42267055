"""Ctrl-C: a real SIGINT to a real `mediastore fetch` process blocked on dripping downloads."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from interrupt import Interrupted, interrupt_when
from scripted import Reply, Request, ScriptedServer

from mediastore import MediaStore
from mediastore import testing as t
from mediastore.maintenance import IMPORT_BATCH

#: Each test runs a real mediastore process until it is busy, then signals it (2 to 4 s).
pytestmark = pytest.mark.slow

#: /fast.jpg is sent whole; the other JPEGs one byte every 0.2 s (downloads blocked mid-body).
FAST, DRIPPED = t.noisy_jpeg(seed=8), t.noisy_jpeg(seed=7)


@pytest.fixture
def drip_server(scripted: Callable[..., ScriptedServer]) -> ScriptedServer:
    """``/fast.jpg`` whole at once; any other path a JPEG sent one byte every 0.2 s."""

    def drip(request: Request, reply: Reply) -> None:
        reply.start(200, {"Content-Type": "image/jpeg"}, length=len(DRIPPED))
        reply.drip(DRIPPED, 0.2)

    server = scripted(drip)
    server.route(
        "/fast.jpg", lambda request, reply: reply.respond(200, FAST, {"Content-Type": "image/jpeg"})
    )
    return server


def _drips_started(server: ScriptedServer) -> int:
    return sum(1 for request in server.requests if request.path != "/fast.jpg")


def _temp_files(root: Path) -> list[Path]:
    return [p for p in (root / "tmp").rglob("*") if not p.is_dir()]


@pytest.mark.parametrize("mode", [[], ["--jsonl"]])
def test_sigint_stops_fetch_promptly_and_cleanly(
    tmp_path: Path, drip_server: ScriptedServer, mode: list[str]
) -> None:
    """SIGINT during dripping downloads: exit 130 within ~3 s, one line saying how far it
    got, no temp file left, and a store that verifies clean with what was done kept."""
    base_url = drip_server.base_url
    root = tmp_path / "store"
    listing = tmp_path / "urls.txt"
    listing.write_text(
        f"{base_url}/fast.jpg\n" + "".join(f"{base_url}/drip/{i}.jpg\n" for i in range(40))
    )
    command = [
        sys.executable, "-m", "mediastore", "--root", str(root), "fetch", "--allow-private",
        "--workers", "4", "--from-file", str(listing), *mode,
    ]  # fmt: skip

    def in_progress() -> None:
        assert _temp_files(root), "no download was in progress"

    # downloads are blocked mid-body once three drips have started
    ended = interrupt_when(
        command,
        lambda _: _drips_started(drip_server) >= 3,
        within=20,
        settle=0.5,
        check=in_progress,
    )
    out, err = ended.out, ended.err
    assert ended.returncode == 130, err
    assert ended.took < 3, f"took {ended.took:.1f} s to stop"
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted: "), err
    assert "1 fetched" in lines[0]
    if mode:
        done = [json.loads(ln) for ln in out.splitlines()]
        assert [d["url"] for d in done] == [f"{base_url}/fast.jpg"]
    assert _temp_files(root) == []
    with MediaStore(root, allow_private_networks=True) as store:
        assert store.verify().all_ok
        assert store.get_by_url(f"{base_url}/fast.jpg") is not None
        assert store.get_by_url(f"{base_url}/drip/0.jpg") is None
    verify = subprocess.run(
        [sys.executable, "-m", "mediastore", "--root", str(root), "verify"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr


def test_sigint_stops_add_cleanly(tmp_path: Path) -> None:
    """SIGINT during `add` of many files: exit 130 promptly, one line saying how far it got,
    no temp file, and every file stored so far intact."""
    source = tmp_path / "in"
    source.mkdir()
    for i in range(3000):
        (source / f"{i:05}.jpg").write_bytes(t.noisy_jpeg((16, 16), seed=i))
    root = tmp_path / "store"
    images = root / "media" / "images"
    command = [sys.executable, "-m", "mediastore", "--root", str(root), "add", str(source)]
    ended = interrupt_when(
        command, lambda _: images.is_dir() and sum(1 for _ in images.rglob("*.jpg")) >= 20
    )
    _stopped_promptly(ended, 3000)
    assert _temp_files(root) == []
    on_disk = sum(1 for _ in images.rglob("*.jpg"))
    with MediaStore(root) as store:
        report = store.verify()
        assert report.all_ok and 0 < report.checked < 3000
        # a file placed when the signal landed has no row yet: gc adopts it (never deletes)
        adopted = store.gc().adopted
        assert report.checked + len(adopted) == on_disk >= 20 and len(adopted) <= 1


def _bytes_read(pid: int) -> int:
    """What process ``pid`` has read so far (``rchar`` of /proc/PID/io), 0 if unknown."""
    try:
        text = Path(f"/proc/{pid}/io").read_text()
    except OSError:
        return 0
    return next(int(line.split()[1]) for line in text.splitlines() if line.startswith("rchar"))


def _stopped_promptly(ended: Interrupted, total: int) -> None:
    """Exit 130 within 3 s of the signal, and one stderr line: how many of ``total`` files."""
    assert ended.returncode == 130, ended.err
    assert ended.took < 3, f"took {ended.took:.1f} s to stop"
    lines = ended.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted: "), ended.err
    assert f"of {total} file(s) done" in lines[0], ended.err


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/PID/io")
def test_sigint_stops_verify_promptly(tmp_path: Path) -> None:
    """SIGINT while `verify` hashes large files: exit 130 within a few seconds (queued files
    are not checked, the ones being hashed are given up), one line, the store unchanged."""
    root = tmp_path / "store"
    with MediaStore(root) as store:
        for i in range(24):
            store.add_bytes(t.mp4_bytes(8 << 20, seed=i))
    command = [sys.executable, "-m", "mediastore", "--root", str(root), "verify"]
    _stopped_promptly(interrupt_when(command, lambda pid: _bytes_read(pid) > 24 << 20), 24)
    assert _temp_files(root) == []
    with MediaStore(root) as store:
        report = store.verify()
    assert report.all_ok and report.checked == 24


def test_sigint_stops_import_legacy_cleanly(tmp_path: Path) -> None:
    """SIGINT during `import-legacy`: exit 130 promptly, one line saying how far it got, no
    temp file, and every file imported so far intact; running it again imports the rest."""
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for i in range(3000):
        (legacy / f"{i:032x}.jpg").write_bytes(t.noisy_jpeg((16, 16), seed=i))
    root = tmp_path / "store"
    command = [sys.executable, "-m", "mediastore", "--root", str(root), "import-legacy",
               str(legacy)]  # fmt: skip
    ended = interrupt_when(command, lambda _: _rows(root / "catalog.sqlite3") >= 200)
    _stopped_promptly(ended, 3000)
    assert _temp_files(root) == []
    with MediaStore(root) as store:
        report = store.verify()
        assert report.all_ok and 200 <= report.checked < 3000
        # a batch placed when the signal landed has no rows: gc adopts its files
        assert len(store.gc().adopted) <= IMPORT_BATCH
        assert store.import_legacy(legacy).imported == 3000 - report.checked
        assert store.verify().checked == 3000


def _rows(db: Path) -> int:
    """Media rows of a catalog, read with plain sqlite3 (0 before it has its schema)."""
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as conn:
            return int(conn.execute("SELECT count(*) FROM media").fetchone()[0])
    except sqlite3.Error:
        return 0
