"""``serve``: the store over HTTP (files, thumbnails, the JSON API and the gallery)."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

import click

from ..store import MediaStore

if TYPE_CHECKING:
    from aiohttp import web
from .common import errors, state

TOKEN_ENV = "MEDIASTORE_SERVE_TOKEN"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port to listen on (0: a free one; the first line on stdout says which).",
)
@click.option(
    "--token",
    metavar="TOKEN",
    envvar=TOKEN_ENV,
    show_envvar=True,
    help="Require this token (Bearer header or the /login cookie). "
    "Required to listen on anything but loopback.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Processes accepting on the socket, each with its own store connection.",
)
@click.option(
    "--proxy",
    is_flag=True,
    help="Stream an object store's files instead of redirecting to a presigned URL.",
)
@click.pass_context
@errors
def serve(
    ctx: click.Context, host: str, port: int, token: str | None, workers: int, proxy: bool
) -> None:
    """Serve the store read-only over HTTP: /media/<md5>, /thumb/<md5>/<size>, /api/... and
    a gallery at /.

    Stops on Ctrl-C. One access log line per request (combined format) on stderr.
    """
    try:
        from ..serve import is_loopback, make_app, run
    except ImportError:  # aiohttp is the serve extra
        click.echo("error: serving needs aiohttp: pip install 'mediastore[serve]'", err=True)
        sys.exit(2)
    token = token or None
    if not is_loopback(host) and not token:
        click.echo(f"error: listening on {host} needs a token (--token or ${TOKEN_ENV})", err=True)
        sys.exit(2)
    _log_access()
    cfg = state(ctx).settings().config
    blob_url = state(ctx).blob_url
    # the store is checked here (a missing or outdated catalog is one error line), and each
    # worker opens its own
    MediaStore(config=cfg, create=False, read_only=True, blob_url=blob_url).close()

    def app() -> web.Application:
        store = MediaStore(config=cfg, create=False, read_only=True, blob_url=blob_url)
        application = make_app(store, token=token, proxy=proxy)
        application.on_cleanup.append(lambda _: _close(store))
        return application

    run(app, host, port, workers=workers, announce=_announce)


async def _close(store: MediaStore) -> None:
    store.close()


def _announce(address: str) -> None:
    click.echo(f"serving {address}")
    sys.stdout.flush()


def _log_access() -> None:
    """Access log lines go to stderr as they are (combined format)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access = logging.getLogger("aiohttp.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
