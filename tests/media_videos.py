"""Small real videos made by ffmpeg for the tests of recorded metadata (skipped without it
on a developer's machine; with CI set, which installs it, a failure)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from servers import in_ci

FFMPEG = shutil.which("ffmpeg")


def unavailable(reason: str) -> None:
    """Skip the test for lack of a tool (fail it in CI, which installs every tool)."""
    if in_ci():
        pytest.fail(f"{reason} (.ci/run installs it)")
    pytest.skip(reason)


def make_video(folder: Path, name: str, *, size: str, seconds: float, audio: bool) -> bytes:
    """A VP8 WebM (Opus audio if ``audio``) of ``size`` (WxH) lasting ``seconds`` at 25 fps."""
    if FFMPEG is None:
        unavailable("ffmpeg is needed to make the test videos")
    path = folder / f"{name}.webm"
    source = ["-f", "lavfi", "-i", f"testsrc=duration={seconds}:size={size}:rate=25"]
    if audio:
        source += ["-f", "lavfi", "-i", f"sine=duration={seconds}"]
    codecs = ["-c:v", "libvpx", *(["-c:a", "libopus"] if audio else [])]
    cmd = [FFMPEG, "-v", "error", "-y", *source, *codecs, str(path)]
    subprocess.run(cmd, check=True, timeout=120)
    return path.read_bytes()
