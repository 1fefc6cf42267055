"""``mediastore serve`` as a program: a subprocess, its first line, its refusals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from mediastore import MediaStore
from mediastore.testing import noisy_jpeg

pytestmark = pytest.mark.slow


def command(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "mediastore", "--root", str(root), "serve", *args]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASTORE_")}
    return {**env, **extra}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    with MediaStore(tmp_path / "store") as store:
        store.add_bytes(noisy_jpeg())
    return tmp_path / "store"


@pytest.fixture
def server(root: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        command(root, "--port", "0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    try:
        yield proc, first
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)


def test_port_zero_announces_the_address(server: tuple[subprocess.Popen[str], str]) -> None:
    """The first stdout line says where it listens (127.0.0.1 by default); requests are
    logged in the combined format on stderr; SIGINT stops it with status 0."""
    proc, first = server
    assert first.startswith("serving http://127.0.0.1:")
    url = first.split()[1]
    assert requests.get(url + "api/stats", timeout=10).json()["total_files"] == 1
    proc.send_signal(signal.SIGINT)
    _, log = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert '"GET /api/stats HTTP/1.1" 200' in log


def test_two_workers_serve(root: Path) -> None:
    """--workers 2: both processes answer on the one port, and SIGINT stops them all."""
    proc = subprocess.Popen(
        command(root, "--port", "0", "--workers", "2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=clean_env(),
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[1]
        for _ in range(10):
            assert requests.get(url + "api/stats", timeout=10).json()["total_files"] == 1
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    assert proc.returncode == 0


def test_non_loopback_without_token_refused(root: Path) -> None:
    """Listening beyond loopback without a token: exit 2 and one line saying why."""
    done = subprocess.run(
        command(root, "--host", "0.0.0.0", "--port", "0"),
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "token" in lines[0]
    assert done.stdout == ""


def test_non_loopback_with_token_from_env_starts(root: Path) -> None:
    """The token may come from MEDIASTORE_SERVE_TOKEN; then every request needs it."""
    proc = subprocess.Popen(
        command(root, "--host", "0.0.0.0", "--port", "0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=clean_env(MEDIASTORE_SERVE_TOKEN="tok"),
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("serving http://0.0.0.0:")
        port = first.strip().rsplit(":", 1)[1].strip("/")
        url = f"http://127.0.0.1:{port}/api/stats"
        assert requests.get(url, timeout=10).status_code == 401
        ok = requests.get(url, headers={"Authorization": "Bearer tok"}, timeout=10)
        assert ok.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
