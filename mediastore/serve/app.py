"""The web application over one store: files, thumbnails, a JSON API and the gallery.

:func:`make_app` returns an ``aiohttp`` application that a user may mount in a server of
their own; :mod:`mediastore.serve.server` runs it with the limits of ``mediastore serve``.
Every md5 in a path is checked (32 hex digits) before it names anything, and the only
files ever opened are the store's own (through :class:`~mediastore.MediaStore`) and its
thumbnails: there is no static directory, so nothing can be listed or reached by a path.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from .. import thumbnails
from ..errors import (
    ImageTooLargeError,
    InvalidInputError,
    MediaNotFoundError,
    MediaStoreError,
    UnsupportedMediaError,
)
from ..records import MediaRecord
from ..store import MediaStore
from . import files, gallery
from .data import MD5, STORE, details, filter_of, page_of, public

log = logging.getLogger(__name__)

TOKEN: web.AppKey[str] = web.AppKey("token", str)
PROXY: web.AppKey[bool] = web.AppKey("proxy", bool)
THUMB_SLOTS: web.AppKey[asyncio.Semaphore] = web.AppKey("thumb_slots", asyncio.Semaphore)
COOKIE = "mediastore_token"
#: what a client without the token may ask for: the login form (and the icon every browser
#: asks for, which would otherwise be an error in its console)
OPEN_PATHS = frozenset({"/login", "/favicon.ico"})
#: how long a presigned GET of an object store stays valid (seconds)
PRESIGN_SECONDS = 300
_NAME = re.compile(r"([0-9a-f]{32})(?:\.[a-z0-9]{1,5})?")
#: statuses whose bytes are not served: missing (404) or failing their check (410)
_GONE = {"missing": 404, "corrupt": 410, "broken": 410}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(
    store: MediaStore, *, token: str | None = None, proxy: bool = False, thumb_workers: int = 2
) -> web.Application:
    """The application serving ``store`` (opened read-only is best: nothing here writes).

    Args:
        store: The store to serve.
        token: When set, every request must carry it (``Authorization: Bearer <token>``,
            or the cookie the ``/login`` form sets).
        proxy: Stream an object store's bytes through this server instead of redirecting
            to a short-lived presigned GET.
        thumb_workers: How many thumbnails are made at once (each holds decoded pixels).
    """
    app = web.Application(middlewares=[_errors, _security], client_max_size=64 * 1024)
    app[STORE] = store
    app[TOKEN] = token or ""
    app[PROXY] = proxy
    app[THUMB_SLOTS] = asyncio.Semaphore(thumb_workers)
    app.add_routes(
        [
            web.get("/media/{name}", media),  # HEAD too
            web.get("/by-url", by_url),
            web.get("/thumb/{md5}/{size}", thumb),
            web.get("/api/media", api_list),
            web.get("/api/media/{md5}", api_media),
            web.get("/api/stats", api_stats),
            web.get("/login", gallery.login_form),
            web.post("/login", login),
            *gallery.routes(),
        ]
    )
    return app


def error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """A short JSON error answer: ``{"error": message}``."""
    return web.json_response(
        {"error": message, "status": status},
        status=status,
        headers={"X-Content-Type-Options": "nosniff", **(headers or {})},
    )


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes a short JSON answer (never a traceback, never partial bytes)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error(
            exc.status, exc.reason, {k: v for k, v in exc.headers.items() if k != "Content-Type"}
        )
    except MediaNotFoundError as exc:
        return error(404, str(exc))
    except InvalidInputError as exc:
        return error(400, str(exc))
    except MediaStoreError as exc:
        log.warning("%s %s: %s", request.method, request.path, exc)
        return error(500, type(exc).__name__)


@web.middleware
async def _security(request: web.Request, handler: Handler) -> web.StreamResponse:
    """With a token set, only requests carrying it pass (the login form excepted)."""
    token = request.app[TOKEN]
    if token and request.path not in OPEN_PATHS and not _authorized(request, token):
        if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
            raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")
        return error(401, "a token is required", {"WWW-Authenticate": "Bearer"})
    resp = await handler(request)
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    return resp


def _authorized(request: web.Request, token: str) -> bool:
    """Whether the request carries the token (compared in constant time)."""
    auth = request.headers.get("Authorization", "")
    given = auth[7:] if auth[:7].lower() == "bearer " else request.cookies.get(COOKIE, "")
    return hmac.compare_digest(given.encode(), token.encode())


async def login(request: web.Request) -> web.StreamResponse:
    """Check the token typed into the form and keep it in an HTTP-only cookie."""
    form = await request.post()
    given = str(form.get("token", ""))
    target = str(form.get("next", "/"))
    if not target.startswith("/") or target.startswith("//"):
        target = "/"  # only a path of this server: no open redirect
    if not hmac.compare_digest(given.encode(), request.app[TOKEN].encode()):
        return gallery.login_page(failed=True, target=target, status=401)
    resp = web.Response(status=303, headers={"Location": target})
    resp.set_cookie(COOKIE, given, httponly=True, samesite="Strict", path="/")
    return resp


def md5_of(text: str) -> str:
    """The md5 a path segment names, checked before it names anything.

    Raises:
        web.HTTPNotFound: not 32 hex digits (with an extension at most).
    """
    match = _NAME.fullmatch(text)
    if match is None:
        raise web.HTTPNotFound(reason="not an md5")
    return match.group(1)


def _servable(store: MediaStore, md5: str) -> MediaRecord:
    record = store.get_by_md5(md5)
    if record is None:
        raise web.HTTPNotFound(reason="no such media")
    if record.status in _GONE:
        raise _gone(record)
    return record


def _gone(record: MediaRecord) -> web.HTTPException:
    if _GONE[record.status] == 404:
        return web.HTTPNotFound(reason=f"the file is {record.status}")
    return web.HTTPGone(reason=f"the file is {record.status}")


async def media(request: web.Request) -> web.StreamResponse:
    """The bytes of one stored file (``GET``/``HEAD``), with validators and one range."""
    md5 = md5_of(request.match_info["name"])
    store = request.app[STORE]
    record = _servable(store, md5)
    headers = files.base_headers(md5, record.mime_type)
    if files.not_modified(request, md5):
        return web.Response(status=304, headers=headers)
    if record.path is None:
        return await _remote(request, store, record, headers)
    try:
        fh = open(record.path, "rb")  # noqa: SIM115 - closed below, after sending
    except FileNotFoundError:
        raise web.HTTPNotFound(reason="the file is missing") from None
    with fh:
        size = _checked_size(fh.fileno(), record)
        resp, offset, count = files.prepare_response(request, headers, record.mime_type, size)
        return await files.send_open_file(request, resp, fh, offset, count)


def _checked_size(fd: int, record: MediaRecord) -> int:
    """The file's size, which must be the recorded one (else no byte is sent: 410)."""
    size = os.fstat(fd).st_size
    if size != record.size:
        log.warning("%s is %d bytes on disk, %d recorded", record.md5, size, record.size)
        raise web.HTTPGone(reason="the file fails its check")
    return size


async def _remote(
    request: web.Request, store: MediaStore, record: MediaRecord, headers: dict[str, str]
) -> web.StreamResponse:
    """An object store's file: a presigned redirect, or streamed (``proxy``)."""
    if not request.app[PROXY]:
        url = await asyncio.to_thread(store.presigned_url, record.md5, PRESIGN_SECONDS)
        if url is not None:
            raise web.HTTPTemporaryRedirect(url, headers={"Cache-Control": "no-store"})
    fh = await asyncio.to_thread(store.open, record.md5)
    with fh:
        resp, offset, count = files.prepare_response(
            request, headers, record.mime_type, record.size
        )
        return await files.send_stream(request, resp, fh, offset, count)


async def by_url(request: web.Request) -> web.StreamResponse:
    """A redirect from a URL (by the store's identity rules) to its stored file."""
    url = request.query.get("url", "")
    if not url:
        return error(400, "give ?url=")
    store = request.app[STORE]
    record = await asyncio.to_thread(store.get_by_url, url)
    if record is None:
        return error(404, "no media stored for this URL")
    raise web.HTTPFound(f"/media/{record.md5}.{record.extension}")


async def thumb(request: web.Request) -> web.StreamResponse:
    """A JPEG thumbnail of an image at one of the fixed sizes, made on first request."""
    md5 = md5_of(request.match_info["md5"])
    try:
        size = int(request.match_info["size"])
    except ValueError:
        raise web.HTTPNotFound(reason="not a thumbnail size") from None
    if size not in thumbnails.SIZES:
        raise web.HTTPNotFound(reason="not a thumbnail size")
    store = request.app[STORE]
    record = _servable(store, md5)
    if record.media_type != "image":
        raise web.HTTPNotFound(reason=f"no thumbnails of a {record.media_type}")
    headers = files.base_headers(f"{md5}-{size}", "image/jpeg")
    if files.not_modified(request, f"{md5}-{size}"):
        return web.Response(status=304, headers=headers)
    path = thumbnails.cached(store.root, md5, size)
    if path is None:
        async with request.app[THUMB_SLOTS]:
            body = await asyncio.to_thread(_make_thumb, store, md5, size)
        return web.Response(body=body, content_type="image/jpeg", headers=headers)
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below, after sending
    except FileNotFoundError:  # trimmed meanwhile: made again on the next request
        raise web.HTTPServiceUnavailable(reason="thumbnail being replaced") from None
    with fh:
        size_now = os.fstat(fh.fileno()).st_size
        resp, offset, count = files.prepare_response(request, headers, "image/jpeg", size_now)
        return await files.send_open_file(request, resp, fh, offset, count)


def _make_thumb(store: MediaStore, md5: str, size: int) -> bytes:
    """Make (and keep, when the root is writable) one thumbnail; its bytes."""
    try:
        with store.open(md5) as source:
            try:
                return thumbnails.make(
                    store.root, md5, size, source, max_pixels=store.config.max_image_pixels
                ).read_bytes()
            except OSError:  # a read-only root: send it without keeping it
                source.seek(0)
                return thumbnails.encode(
                    thumbnails.render(source, size, max_pixels=store.config.max_image_pixels)
                )
    except ImageTooLargeError as exc:
        raise web.HTTPRequestEntityTooLarge(
            max_size=store.config.max_image_pixels, actual_size=0, reason=str(exc)[:200]
        ) from None
    except UnsupportedMediaError as exc:
        raise web.HTTPUnsupportedMediaType(reason=str(exc)[:200]) from None


# --- JSON API ---------------------------------------------------------------------------


def _json(data: Any) -> web.Response:
    return web.Response(
        text=json.dumps(data, ensure_ascii=False, default=str),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


async def api_list(request: web.Request) -> web.StreamResponse:
    """``/api/media``: a page of records (the ``ls`` filters) and the next page's cursor."""
    store = request.app[STORE]
    where = filter_of(request.query)
    records, cursor = await asyncio.to_thread(page_of, store, where)
    return _json({"media": [public(r) for r in records], "next": cursor})


async def api_media(request: web.Request) -> web.StreamResponse:
    """``/api/media/<md5>``: one file's details."""
    md5 = request.match_info["md5"]
    if not MD5.fullmatch(md5):
        raise web.HTTPNotFound(reason="not an md5")
    found = await asyncio.to_thread(details, request.app[STORE], md5)
    if found is None:
        raise web.HTTPNotFound(reason="no such media")
    return _json(found)


async def api_stats(request: web.Request) -> web.StreamResponse:
    """``/api/stats``: the store's counts, as ``mediastore stats --json``."""
    stats = await asyncio.to_thread(request.app[STORE].stats, content=True)
    return _json(stats.to_dict())
