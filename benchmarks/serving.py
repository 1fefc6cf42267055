"""``python -m benchmarks.serving``: requests/s of ``mediastore serve`` beside nginx.

Both serve the same files on loopback in the same run, measured by the same load generator
(``wrk``: one thread, 32 connections, keep-alive): a 200 KB JPEG (200), the same with its
ETag in ``If-None-Match`` (304), a cached 256 px thumbnail against nginx serving the same
thumbnail file; then the cold thumbnail of a 12 MP JPEG, timed one request at a time with
the kept thumbnail deleted before each. Needs nginx and wrk on PATH.
"""

from __future__ import annotations

import argparse
import http.client
import io
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from benchmarks.servers import free_port, nginx_config, nginx_version
from mediastore import MediaStore, thumbnails
from mediastore.testing import noisy_jpeg

HOST = "127.0.0.1"


def photo_like(size: tuple[int, int]) -> bytes:
    """A JPEG of a photo's weight (a gradient under mild noise: ~4.7 MB at 12 MP)."""
    noise = Image.effect_noise(size, 40).convert("RGB")
    gradient = Image.linear_gradient("L").resize(size).convert("RGB")
    out = io.BytesIO()
    Image.blend(noise, gradient, 0.7).save(out, "JPEG", quality=90)
    return out.getvalue()


def wrk(url: str, seconds: int, header: str | None = None) -> float:
    """Requests per second ``wrk`` reports for ``url``."""
    cmd = ["wrk", "-t1", "-c32", f"-d{seconds}s", "--latency"]
    if header:
        cmd += ["-H", header]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    # with If-None-Match every answer is a 304, which wrk counts as "Non-2xx"
    if match is None or ("Non-2xx" in out and header is None):
        raise RuntimeError(out)
    return float(match.group(1))


def head(port: int, path: str, name: str) -> str:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    conn.request("HEAD", path)
    resp = conn.getresponse()
    value = resp.getheader(name) or ""
    conn.close()
    return value


def start_nginx(root: Path, work: Path) -> tuple[subprocess.Popen[bytes], int]:
    prefix = work / "nginx"
    prefix.mkdir()
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_config(root, prefix, port), encoding="utf-8")
    binary = shutil.which("nginx")
    assert binary, "nginx is not on PATH"
    proc = subprocess.Popen([binary, "-c", str(conf), "-p", str(prefix)])
    time.sleep(0.5)
    return proc, port


def start_mediastore(root: Path, workers: int) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mediastore",
            "--root",
            str(root),
            "serve",
            "--port",
            "0",
            "--workers",
            str(workers),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    return proc, int(first.strip().rstrip("/").rsplit(":", 1)[1])


def cold_thumbs(root: Path, port: int, md5: str, runs: int) -> list[float]:
    """Milliseconds of each cold 256 px thumbnail request (the kept file deleted first)."""
    times = []
    for _ in range(runs):
        thumbnails.remove(root, md5)
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        started = time.perf_counter()
        conn.request("GET", f"/thumb/{md5}/256")
        resp = conn.getresponse()
        resp.read()
        times.append((time.perf_counter() - started) * 1000)
        assert resp.status == 200, resp.status
        conn.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2, help="mediastore serve --workers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        root = work / "store"
        with MediaStore(root) as store:
            small = store.add_bytes(noisy_jpeg((520, 400))).md5  # about 200 KB of noise
            big = store.add_bytes(photo_like((4000, 3000)), url="x://12mp").md5
            small_size = store.get_by_md5(small).size  # type: ignore[union-attr]
        ms, ms_port = start_mediastore(root, args.workers)
        ng, ng_port = start_nginx(root, work)
        try:
            urlopen = f"http://{HOST}:{ms_port}"
            nginx = f"http://{HOST}:{ng_port}"
            ng_path = f"/media/images/{small}.jpg"
            tag = head(ng_port, ng_path, "ETag")
            # a thumbnail made once, then served cached by both
            cold = cold_thumbs(root, ms_port, big, 5)
            http.client.HTTPConnection(HOST, ms_port).request("GET", f"/thumb/{small}/256")
            time.sleep(0.5)
            thumb_rel = thumbnails.thumb_path(root, small, 256).relative_to(root)
            rows = [
                ("media 200", f"{urlopen}/media/{small}", f"{nginx}{ng_path}", None, None),
                (
                    "media 304",
                    f"{urlopen}/media/{small}",
                    f"{nginx}{ng_path}",
                    f'If-None-Match: "{small}"',
                    f"If-None-Match: {tag}",
                ),
                (
                    "thumb cached",
                    f"{urlopen}/thumb/{small}/256",
                    f"{nginx}/{thumb_rel}",
                    None,
                    None,
                ),
            ]
            version = nginx_version(shutil.which("nginx") or "")
            print(f"file {small_size} bytes; mediastore serve --workers {args.workers};")
            print(f"nginx {version}, 2 workers, sendfile; wrk -t1 -c32 -d{args.seconds}s")
            print(f"{'case':<14}{'mediastore':>12}{'nginx':>12}{'ratio':>8}")
            for name, ours, theirs, our_header, their_header in rows:
                a = wrk(ours, args.seconds, our_header)
                b = wrk(theirs, args.seconds, their_header)
                print(f"{name:<14}{a:>12.0f}{b:>12.0f}{a / b:>8.2f}")
            print(
                f"cold 256 px thumbnail of a 12 MP JPEG: median {statistics.median(cold):.0f} ms "
                f"(runs: {', '.join(f'{t:.0f}' for t in cold)})"
            )
        finally:
            for proc in (ms, ng):
                proc.terminate()
                proc.wait(10)


if __name__ == "__main__":
    main()
