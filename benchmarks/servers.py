"""The loopback HTTP server of the download cases: nginx if installed, else benchmarks.fileserver.

Either way it runs as a child process of the harness, listens on 127.0.0.1 only, and is
stopped when the benchmark ends. nginx gets a minimal config in the work directory
(sendfile, tcp_nopush, no access log, two workers, every path under the work directory).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
START_TIMEOUT = 15.0


@dataclass(frozen=True, slots=True)
class Server:
    """A running file server.

    Attributes:
        name: What it is, as written in the results (e.g. ``nginx 1.22.1``).
        base_url: ``http://127.0.0.1:<port>``, no trailing slash.
    """

    name: str
    base_url: str

    def url(self, relative: str) -> str:
        """The URL of a file under the document root."""
        return f"{self.base_url}/{relative.lstrip('/')}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def nginx_version(binary: str) -> str:
    """``nginx/1.22.1`` -> ``1.22.1`` (nginx prints its version on stderr)."""
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
    text = (out.stderr or out.stdout).strip()
    return text.split("/", 1)[1] if "/" in text else text


def nginx_config(root: Path, prefix: Path, port: int) -> str:
    """A minimal nginx.conf serving ``root`` on 127.0.0.1:``port``, all state under ``prefix``."""
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read 0700 temp dirs
    temp = {name: prefix / name for name in ("client", "proxy", "fastcgi", "uwsgi", "scgi")}
    return f"""{user}worker_processes 2;
daemon off;
master_process on;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 100000;
    keepalive_timeout 60s;
    client_body_temp_path {temp["client"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    types {{ image/jpeg jpg; video/mp4 mp4; }}
    default_type application/octet-stream;
    server {{
        listen {HOST}:{port};
        root {root};
        location / {{ }}
    }}
}}
"""


def _wait_until_serving(proc: subprocess.Popen[bytes], port: int, probe: str) -> None:
    """Wait until ``probe`` answers 200 on the port; raise if the process died or hung."""
    ends = time.monotonic() + START_TIMEOUT
    while time.monotonic() < ends:
        if proc.poll() is not None:
            raise RuntimeError(f"file server exited with status {proc.returncode} at start")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("HEAD", "/" + probe.lstrip("/"))
            status = conn.getresponse().status
            conn.close()
        except OSError:
            time.sleep(0.05)
            continue
        if status != 200:
            raise RuntimeError(f"file server answers {status} for /{probe}")
        return
    raise RuntimeError(f"file server did not answer on port {port} within {START_TIMEOUT:g} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()  # nginx: fast shutdown of master and workers
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def server_stats(server: Server) -> dict[str, int]:
    """The counts of a Python server (``GET /__stats``, see :mod:`benchmarks.fileserver`)."""
    conn = http.client.HTTPConnection(HOST, int(server.base_url.rsplit(":", 1)[1]), timeout=10)
    try:
        conn.request("GET", "/__stats")
        stats: dict[str, int] = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    return stats


@contextmanager
def serve(
    root: Path,
    state: Path,
    probe: str,
    *,
    use_nginx: bool = True,
    behaviour: Sequence[str] = (),
) -> Iterator[Server]:
    """Serve ``root`` on loopback for the duration of the block.

    Args:
        root: Document root.
        state: A directory for the server's config, pid and logs.
        probe: A file under ``root`` that must be served before the block starts.
        use_nginx: Use nginx when it is on PATH (else, and when False, the Python server).
        behaviour: Options of the Python server (``--delay S``, ``--max-in-flight N``);
            given, the Python server is used.
    """
    port = free_port()
    binary = shutil.which("nginx") if use_nginx and not behaviour else None
    if binary is not None:
        prefix = state / "nginx"
        prefix.mkdir(parents=True, exist_ok=True)
        conf = prefix / "nginx.conf"
        conf.write_text(nginx_config(root, prefix, port), encoding="utf-8")
        argv = [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
        name = f"nginx {nginx_version(binary)} (sendfile, 2 workers)"
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    else:
        argv = [sys.executable, "-m", "benchmarks.fileserver", str(root), str(port), *behaviour]
        name = "Python fallback benchmarks.fileserver (threaded, sendfile, TCP_NODELAY)"
        proc = subprocess.Popen(
            argv,
            cwd=Path(__file__).resolve().parent.parent,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
    try:
        _wait_until_serving(proc, port, probe)
        yield Server(name=name, base_url=f"http://{HOST}:{port}")
    finally:
        _stop(proc)
