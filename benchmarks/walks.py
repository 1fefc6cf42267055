"""The structure walk's cost per file, by format: what reading a file's metadata on the way
costs at ingest, against hashing the same bytes (MD5, which ingest does anyway).

    python -m benchmarks.walks [--runs N]

Makes its files in a temp directory: 200 small images (JPEG, PNG, GIF, WebP, each with
EXIF where the format holds it), a 20-frame GIF and WebP, a 30-page PDF (Pillow), and 20 s
videos (H.264/AAC MP4, fragmented MP4, VP8/Opus WebM) when ffmpeg is installed. Each file is
walked from memory in 1 MiB chunks; the figure is the median over ``--runs`` of the mean
time per file.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from mediastore.formats.detect import sniff
from mediastore.formats.structure import checker_for

CHUNK = 1 << 20
_VIDEO = ["-f", "lavfi", "-i", "testsrc=size=640x360:rate=30", "-f", "lavfi", "-i", "sine"]
_VIDEOS = {
    "mp4": ["-c:v", "libx264", "-c:a", "aac"],
    "mp4-fragmented": ["-c:v", "libx264", "-c:a", "aac", "-movflags", "frag_keyframe+empty_moov"],
    "webm": ["-c:v", "libvpx", "-b:v", "1M", "-deadline", "realtime", "-c:a", "libopus"],
}


def _noise(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    return Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))


def make_files(where: Path) -> dict[str, list[Path]]:
    """The files of each set, made under ``where``."""
    rng = random.Random(1)
    sets: dict[str, list[Path]] = {"jpeg": [], "png": [], "gif": [], "webp": []}
    exif = Image.Exif()
    exif[0x0112] = 6
    exif.get_ifd(0x8769)[0x9003] = "2021:05:06 07:08:09"
    for i in range(200):
        kind = ("jpeg", "png", "gif", "webp")[i % 4]
        path = where / f"{i:03d}.{kind}"
        options = {} if kind == "gif" else {"exif": exif}
        _noise(rng, (320, 240)).save(path, kind.upper(), **options)
        sets[kind].append(path)
    frames = [_noise(rng, (160, 120)) for _ in range(20)]
    for kind in ("gif", "webp"):
        path = where / f"anim.{kind}"
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)
        sets[f"animated {kind}"] = [path]
    pages = [_noise(rng, (300, 200)) for _ in range(30)]
    pages[0].save(where / "doc.pdf", save_all=True, append_images=pages[1:])
    sets["pdf, 30 pages"] = [where / "doc.pdf"]
    if shutil.which("ffmpeg"):
        for name, codec in _VIDEOS.items():
            path = where / f"video-{name}.{'webm' if name == 'webm' else 'mp4'}"
            argv = ["ffmpeg", "-v", "error", "-y", *_VIDEO, "-t", "20", *codec, str(path)]
            if subprocess.run(argv, check=False).returncode == 0:
                sets[f"{name}, 20 s"] = [path]
    return sets


def walk(data: bytes) -> None:
    check = checker_for(sniff(data[:4096]), max_pixels=10**9)
    view = memoryview(data)
    for start in range(0, len(data), CHUNK):
        check.feed(view[start : start + CHUNK])
    check.finish()


def md5(data: bytes) -> None:
    hashlib.md5(data).digest()


def per_file(run: Callable[[bytes], None], blobs: list[bytes], runs: int) -> float:
    """Median over ``runs`` of the mean seconds per file."""
    reps = max(1, 200 // len(blobs))
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        for _ in range(reps):
            for data in blobs:
                run(data)
        times.append((time.perf_counter() - began) / (reps * len(blobs)))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sets = make_files(Path(tmp))
        print("| set | bytes per file | walk per file | MD5 per file | walk / MD5 |")
        print("| --- | --- | --- | --- | --- |")
        for name, paths in sets.items():
            blobs = [p.read_bytes() for p in paths]
            walked = per_file(walk, blobs, args.runs)
            hashed = per_file(md5, blobs, args.runs)
            size = sum(map(len, blobs)) // len(blobs)
            print(
                f"| {name} | {size:,} | {walked * 1e6:,.1f} µs | {hashed * 1e6:,.1f} µs | "
                f"{walked / hashed:.2f} |"
            )


if __name__ == "__main__":
    main()
