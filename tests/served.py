"""A store served on a loopback port by a thread of the test (tests/serve/)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass

from mediastore import MediaStore
from mediastore.serve import Limits, make_app
from mediastore.serve.server import start
from mediastore.testing import image_bytes, noisy_jpeg, pdf_bytes


@dataclass
class Served:
    """A running server: its base URL and the md5s of what it serves."""

    url: str
    store: MediaStore
    md5s: dict[str, str]


def run_in_thread(
    store: MediaStore, limits: Limits | None = None, **app_options: object
) -> tuple[str, Callable[[], None]]:
    """Start the app on 127.0.0.1:0 in a thread; return its URL and a stopper."""
    loop = asyncio.new_event_loop()
    ready: dict[str, object] = {}
    started = threading.Event()

    async def main() -> None:
        app = make_app(store, **app_options)  # type: ignore[arg-type]
        runner, listener, address = await start(app, "127.0.0.1", 0, limits or Limits())
        ready.update(runner=runner, listener=listener, address=address)
        started.set()

    def body() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main())
        loop.run_forever()

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    assert started.wait(10), "the server did not start"

    def stop() -> None:
        async def down() -> None:
            ready["listener"].close()  # type: ignore[attr-defined]
            await ready["runner"].cleanup()  # type: ignore[attr-defined]

        asyncio.run_coroutine_threadsafe(down(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()

    return str(ready["address"]), stop


def fill(store: MediaStore) -> dict[str, str]:
    """A JPEG, a PNG and a PDF, each with a URL."""
    return {
        "jpeg": store.add_bytes(noisy_jpeg((320, 240)), url="https://example.com/a.jpg").md5,
        "png": store.add_bytes(
            image_bytes("PNG", (64, 48), "blue"), url="https://example.com/b.png"
        ).md5,
        "pdf": store.add_bytes(pdf_bytes(), url="https://example.com/c.pdf").md5,
    }
