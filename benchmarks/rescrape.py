"""Requests a re-scrape costs: 60 assets x 3 sizes on a LinkedIn-shaped CDN on loopback.

    python -m benchmarks.rescrape

A first scrape fetches every URL; a re-scrape meets the same assets under rotated
signatures (``t=``); then a fresh store fetches them with ``variants="largest"``. Prints the
requests each sent and the lookups that hit.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from mediastore import MediaStore
from mediastore import testing as t

ASSETS = 60
SIZES = ("feedshare-shrink_800", "feedshare-shrink_1280", "feedshare-shrink_2048_1536")


class _Cdn(BaseHTTPRequestHandler):
    """Each path (the query ignored) answers its own JPEG; requests are counted."""

    asked = 0
    lock = threading.Lock()

    def do_GET(self) -> None:
        with _Cdn.lock:
            _Cdn.asked += 1
        seed = int(hashlib.md5(self.path.split("?")[0].encode()).hexdigest()[:8], 16)
        body = t.noisy_jpeg((64, 48), seed=seed)
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def urls(port: int, signature: str) -> list[str]:
    return [
        f"http://media.licdn.com:{port}/dms/image/v2/D4E{i:05d}/{size}/{size}/0/1700000000000"
        f"?e=2147483647&v=beta&t={signature}{i}"
        for i in range(ASSETS)
        for size in SIZES
    ]


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Cdn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    options = {"resolver": lambda host, p: ["127.0.0.1"], "allow_private_networks": True}
    with tempfile.TemporaryDirectory() as tmp:
        with MediaStore(f"{tmp}/a", **options) as store:
            began = time.perf_counter()
            first = store.fetch_many(urls(port, "first"))
            asked = _Cdn.asked
            print(
                f"first scrape: {asked} requests, {sum(r.ok for r in first)} ok, "
                f"{store.stats().total_files} files, {time.perf_counter() - began:.2f} s"
            )
            again = urls(port, "rotated")
            hits = sum(store.get_by_url(url) is not None for url in again)
            began = time.perf_counter()
            results = store.fetch_many(again)
            print(
                f"re-scrape, rotated signatures: {hits}/{len(again)} lookups hit, "
                f"{_Cdn.asked - asked} requests, {sum(r.from_cache for r in results)} from the "
                f"store, {time.perf_counter() - began:.2f} s"
            )
        asked = _Cdn.asked
        with MediaStore(f"{tmp}/b", **options) as store:
            results = store.fetch_many(urls(port, "big"), variants="largest")
            print(
                f'variants="largest", fresh store: {_Cdn.asked - asked} requests for '
                f"{len(results)} URLs, {sum(r.variant_of is not None for r in results)} "
                f"answered by the largest size, {store.stats().total_files} files"
            )
    server.shutdown()


if __name__ == "__main__":
    main()
