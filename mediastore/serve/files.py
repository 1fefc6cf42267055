"""Sending one stored file over HTTP: validators, one byte range, zero-copy from disk.

The ETag is the content's md5, which never changes for a given address, so a client may
keep the bytes for a year (``immutable``). A single byte range is answered with 206; several
ranges are ignored and the whole file is sent with 200, which HTTP allows (a multipart
answer would cost a second code path for what no media player asks). A local file goes out
with ``sendfile`` (no copy through Python); an object's bytes are streamed in chunks.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import BinaryIO

from aiohttp import web

CACHE_FOREVER = "public, max-age=31536000, immutable"
#: What a PDF may do when opened from the gallery's origin: nothing (no scripts, no forms,
#: no same-origin access).
PDF_POLICY = "sandbox"
CHUNK = 256 * 1024
#: A response must be sent within SEND_BASE seconds plus one second per MIN_RATE bytes: a
#: client that stops reading is cut instead of holding a connection for ever.
SEND_BASE = 30.0
MIN_RATE = 64 * 1024


def send_deadline(count: int) -> float:
    """Seconds allowed to send ``count`` bytes."""
    return SEND_BASE + count / MIN_RATE


_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class Unsatisfiable(Exception):
    """The range starts beyond the end of the file (or asks for the last 0 bytes)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The ``(start, end)`` (inclusive) one ``Range`` header asks for, or None for all.

    A header that is malformed, names another unit or several ranges is ignored (the whole
    file is sent), as HTTP allows.

    Raises:
        Unsatisfiable: a well-formed single range outside the file.
    """
    if not header or "," in header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - length), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # malformed: ignored
    if start >= size:
        raise Unsatisfiable
    return start, min(int(last) if last else size - 1, size - 1)


def base_headers(md5: str, mime_type: str) -> dict[str, str]:
    """The headers of every answer about one stored file (200, 206, 304, 416)."""
    headers = {
        "ETag": f'"{md5}"',
        "Cache-Control": CACHE_FOREVER,
        "X-Content-Type-Options": "nosniff",
        "Accept-Ranges": "bytes",
    }
    if mime_type == "application/pdf":
        headers["Content-Security-Policy"] = PDF_POLICY
    return headers


def not_modified(request: web.Request, md5: str) -> bool:
    """Whether ``If-None-Match`` names this content (or ``*``)."""
    header = request.headers.get("If-None-Match")
    if not header:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or f'"{md5}"' in tags


def wanted_range(request: web.Request, md5: str, size: int) -> tuple[int, int] | None:
    """The range to send, honouring ``If-Range`` (another validator: the whole file).

    Raises:
        Unsatisfiable: as :func:`parse_range`.
    """
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range.strip() != f'"{md5}"':
        return None
    return parse_range(request.headers.get("Range"), size)


def prepare_response(
    request: web.Request, headers: dict[str, str], mime_type: str, size: int
) -> tuple[web.StreamResponse, int, int]:
    """The response head for a file of ``size`` bytes: (response, offset, count).

    Raises:
        web.HTTPRequestRangeNotSatisfiable: the range is outside the file.
    """
    md5 = headers["ETag"].strip('"')
    try:
        rng = wanted_range(request, md5, size)
    except Unsatisfiable:
        raise web.HTTPRequestRangeNotSatisfiable(
            headers={**headers, "Content-Range": f"bytes */{size}"}
        ) from None
    resp = web.StreamResponse(status=200 if rng is None else 206, headers=headers)
    resp.content_type = mime_type
    offset, count = (0, size) if rng is None else (rng[0], rng[1] - rng[0] + 1)
    if rng is not None:
        resp.headers["Content-Range"] = f"bytes {rng[0]}-{rng[1]}/{size}"
    resp.content_length = count
    return resp, offset, count


async def send_open_file(
    request: web.Request, resp: web.StreamResponse, fh: BinaryIO, offset: int, count: int
) -> web.StreamResponse:
    """Send ``count`` bytes of a local file from ``offset`` (sendfile where the OS has it)."""
    await resp.prepare(request)
    if request.method == "HEAD" or count == 0:
        await resp.write_eof()
        return resp
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("the client went away")
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(send_deadline(count)):
            try:
                await loop.sendfile(transport, fh, offset, count)
            except NotImplementedError:  # e.g. a TLS transport: copy in chunks instead
                await _copy(resp, _reader(fh, offset), count)
    except TimeoutError:
        transport.close()
        raise ConnectionResetError("the client did not read in time") from None
    await resp.write_eof()
    return resp


async def send_stream(
    request: web.Request, resp: web.StreamResponse, fh: BinaryIO, offset: int, count: int
) -> web.StreamResponse:
    """Send ``count`` bytes of a file object that is not on this disk (read in a thread)."""
    await resp.prepare(request)
    if request.method != "HEAD" and count:
        async with asyncio.timeout(send_deadline(count)):
            await _copy(resp, _reader(fh, offset), count)
    await resp.write_eof()
    return resp


def _reader(fh: BinaryIO, offset: int) -> Callable[[int], bytes]:
    fh.seek(offset)
    return fh.read


async def _copy(resp: web.StreamResponse, read: Callable[[int], bytes], count: int) -> None:
    """Copy ``count`` bytes, each read off the event loop. A file shorter than its recorded
    size raises, and the connection closes mid-body: the client sees fewer bytes than
    Content-Length, a broken transfer, never a short file taken for a whole one."""
    left = count
    while left > 0:
        chunk = await asyncio.to_thread(read, min(CHUNK, left))
        if not chunk:
            raise ConnectionResetError("the file ended before its recorded size")
        await resp.write(chunk)
        left -= len(chunk)
