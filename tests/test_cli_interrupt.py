"""Ctrl-C: a real SIGINT to a real `mediastore fetch` process blocked on dripping downloads."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mediastore import MediaStore
from mediastore import testing as t


def _interruptible() -> None:
    """In the child: SIGINT as at a terminal. A test run started in the background (as CI
    may do) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt for it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class _Handler(BaseHTTPRequestHandler):
    """``/fast.jpg`` whole at once; anything else a JPEG sent one byte every 0.2 s."""

    body = t.noisy_jpeg(seed=7)
    fast = t.noisy_jpeg(seed=8)
    started = 0
    lock = threading.Lock()

    def do_GET(self) -> None:
        body = self.fast if self.path == "/fast.jpg" else self.body
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body is self.fast:
            self.wfile.write(body)
            return
        with _Handler.lock:
            _Handler.started += 1
        try:
            for i in range(len(body)):
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass  # the client hung up: what a cancelled download does

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def base_url() -> Iterator[str]:
    _Handler.started = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _temp_files(root: Path) -> list[Path]:
    return [p for p in (root / "tmp").rglob("*") if not p.is_dir()]


@pytest.mark.parametrize("mode", [[], ["--jsonl"]])
def test_sigint_stops_fetch_promptly_and_cleanly(
    tmp_path: Path, base_url: str, mode: list[str]
) -> None:
    """SIGINT during dripping downloads: exit 130 within ~3 s, one line saying how far it
    got, no temp file left, and a store that verifies clean with what was done kept."""
    root = tmp_path / "store"
    listing = tmp_path / "urls.txt"
    listing.write_text(
        f"{base_url}/fast.jpg\n" + "".join(f"{base_url}/drip/{i}.jpg\n" for i in range(40))
    )
    command = [
        sys.executable, "-m", "mediastore", "--root", str(root), "fetch", "--allow-private",
        "--workers", "4", "--from-file", str(listing), *mode,
    ]  # fmt: skip
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_interruptible,
    ) as proc:  # fmt: skip
        try:
            waited = time.monotonic()
            while _Handler.started < 3:  # downloads are blocked mid-body now
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() - waited < 20, "the drips never started"
                time.sleep(0.05)
            time.sleep(0.5)
            assert _temp_files(root), "no download was in progress"
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=10)
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130, err
    assert took < 3, f"took {took:.1f} s to stop"
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
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_interruptible,
    ) as proc:  # fmt: skip
        try:
            waited = time.monotonic()
            while not images.is_dir() or sum(1 for _ in images.rglob("*.jpg")) < 20:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() - waited < 30, "add never got going"
                time.sleep(0.02)
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=10)
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130, err
    assert took < 3, f"took {took:.1f} s to stop"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted: "), err
    assert "of 3000 file(s) done" in lines[0]
    assert _temp_files(root) == []
    on_disk = sum(1 for _ in images.rglob("*.jpg"))
    with MediaStore(root) as store:
        report = store.verify()
        assert report.all_ok and 0 < report.checked < 3000
        # a file placed when the signal landed has no row yet: gc adopts it (never deletes)
        adopted = store.gc().adopted
        assert report.checked + len(adopted) == on_disk >= 20 and len(adopted) <= 1
