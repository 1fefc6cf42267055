"""The gallery: server-rendered pages over the store (no script, no asset from elsewhere).

Pages are plain HTML with one inline style sheet; every value from the catalog is escaped.
Images show as thumbnails; a video or a PDF is a typed tile with its duration or page count
(no poster frame: making one would need a video decoder in the package). The detail page
plays a video with the browser's own ``<video>`` (seeking uses byte ranges) and links a PDF
(served with a sandbox policy) instead of embedding it. Charts are inline SVG.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from ..listing import MediaFilter
from ..records import MediaRecord
from ..store import MediaStore
from ..units import format_size
from .data import MD5, STORE, details, filter_of, page_of

#: What a gallery page may load and do: its own images, media and forms, its inline style.
PAGE_POLICY = (
    "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
GRID_PAGE = 60
FILTERS = ("type", "status", "since", "before", "min_size", "max_size", "url", "ref")

STYLE = """
*{box-sizing:border-box}
body{font:16px/1.4 system-ui,sans-serif;margin:0;color:#111;background:#fafafa}
header{display:flex;gap:1em;align-items:center;padding:.5em 1em;background:#223;color:#fff}
header a{color:#fff}main{padding:1em;max-width:1200px;margin:auto}
a:focus,button:focus,input:focus,select:focus{outline:3px solid #f90;outline-offset:2px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(140px,1fr));gap:.5em;
list-style:none;padding:0}
.grid a{display:flex;flex-direction:column;align-items:center;justify-content:center;
aspect-ratio:1;background:#fff;border:1px solid #ccc;text-decoration:none;color:#223}
.grid img{max-width:100%;max-height:100%}.tile{font-size:1.1em;text-align:center}
.bad{border-color:#c00!important}form.filters{display:flex;flex-wrap:wrap;gap:.5em}
form.filters label{display:flex;flex-direction:column;font-size:.85em}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.2em .5em;
text-align:left;vertical-align:top;word-break:break-all}
.view img,.view video{max-width:100%;max-height:70vh}nav.pages{margin:1em 0;display:flex;gap:1em}
"""


def routes() -> list[web.RouteDef]:
    """The gallery's pages."""
    return [
        web.get("/", index),
        web.get("/item/{md5}", item),
        web.get("/stats", stats_page),
        web.get("/favicon.ico", no_icon),
    ]


async def no_icon(request: web.Request) -> web.StreamResponse:
    """No icon (a browser asks for one on every page; a 404 would be logged as an error)."""
    return web.Response(status=204, headers={"Cache-Control": "public, max-age=86400"})


def page(title: str, body: str, *, status: int = 200) -> web.Response:
    """A whole HTML page around ``body`` (already escaped)."""
    text = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)} - mediastore</title><style>{STYLE}</style></head><body>"
        '<header><a href="/">Gallery</a><a href="/stats">Stats</a></header>'
        f"<main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )
    return web.Response(
        text=text,
        content_type="text/html",
        status=status,
        headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-store"},
    )


def login_page(*, failed: bool = False, target: str = "/", status: int = 200) -> web.Response:
    """The form that keeps the token in a cookie."""
    note = "<p role=alert>Wrong token.</p>" if failed else ""
    return page(
        "Sign in",
        f"{note}<form method=post action=/login><input type=hidden name=next "
        f'value="{escape(target)}"><label>Token <input type=password name=token '
        "autocomplete=current-password required autofocus></label> "
        "<button>Sign in</button></form>",
        status=status,
    )


async def login_form(request: web.Request) -> web.StreamResponse:
    """``GET /login``."""
    return login_page(target=request.query.get("next", "/"))


def _store(request: web.Request) -> MediaStore:
    return request.app[STORE]


async def index(request: web.Request) -> web.StreamResponse:
    """The grid: filters, a page of files, a link to the next page."""
    query = {k: v for k, v in request.query.items() if k in (*FILTERS, "after") and v}
    where = filter_of({**query, "limit": str(GRID_PAGE)})
    records, cursor = await asyncio.to_thread(page_of, _store(request), where)
    tiles = "".join(_tile(r) for r in records) or "<p>No files match.</p>"
    nav = []
    if "after" in query:
        first = {k: v for k, v in query.items() if k != "after"}
        nav.append(f'<a href="/?{escape(urlencode(first))}">First page</a>')
    if cursor:
        nav.append(
            f'<a rel=next href="/?{escape(urlencode({**query, "after": cursor}))}">Next page</a>'
        )
    body = (
        _filter_form(query)
        + f'<ul class=grid aria-label="Stored files">{tiles}</ul>'
        + f'<nav class=pages aria-label="Pages">{"".join(nav)}</nav>'
    )
    return page("Gallery", body)


def _filter_form(query: dict[str, str]) -> str:
    def field(name: str, label: str, kind: str = "text") -> str:
        value = escape(query.get(name, ""))
        return f'<label>{label}<input type={kind} name={name} value="{value}"></label>'

    def choice(name: str, label: str, options: tuple[str, ...]) -> str:
        opts = "".join(
            f'<option value="{o}"{" selected" if query.get(name) == o else ""}>'
            f"{o or 'any'}</option>"
            for o in ("", *options)
        )
        return f"<label>{label}<select name={name}>{opts}</select></label>"

    return (
        '<form class=filters method=get action="/" role=search>'
        + choice("type", "Type", ("image", "video", "document"))
        + choice("status", "Status", ("ok", "missing", "corrupt", "broken"))
        + field("since", "Added since", "date")
        + field("before", "Added before", "date")
        + field("min_size", "Min bytes", "number")
        + field("max_size", "Max bytes", "number")
        + field("url", "URL contains")
        + field("ref", "Reference")
        + "<button>Filter</button></form>"
    )


def _tile(record: MediaRecord) -> str:
    label = f"{record.media_type} {record.md5[:8]}, {format_size(record.size)}"
    bad = " class=bad" if record.status != "ok" else ""
    if record.media_type == "image" and record.status == "ok":
        inner = (
            f'<img src="/thumb/{record.md5}/256" alt="{escape(label)}" loading=lazy '
            f"width=128 height=128 style=object-fit:contain>"
        )
    else:
        inner = f"<span class=tile>{escape(_tile_text(record))}</span>"
    return f'<li><a{bad} href="/item/{record.md5}" aria-label="{escape(label)}">{inner}</a></li>'


def _tile_text(record: MediaRecord) -> str:
    meta = record.metadata
    if record.status != "ok":
        return f"{record.extension.upper()} ({record.status})"
    if record.media_type == "video":
        seconds = meta.duration if meta else None
        return f"▶ {record.extension.upper()}" + (f" {seconds:.0f} s" if seconds else "")
    pages = getattr(meta, "pages", None) if meta else None
    return f"{record.extension.upper()}" + (f" {pages} pages" if pages else "")


async def item(request: web.Request) -> web.StreamResponse:
    """One file: the viewer, its record, metadata, URLs, references, variants and (an
    image) the stored images within the default distance of it."""
    md5 = request.match_info["md5"]
    if not MD5.fullmatch(md5):
        raise web.HTTPNotFound(reason="not an md5")
    found = await asyncio.to_thread(details, _store(request), md5)
    if found is None:
        raise web.HTTPNotFound(reason="no such media")
    body = f"<div class=view>{_viewer(found)}</div>" + _details_html(found)
    return page(f"{found['media_type']} {md5}", body)


def _viewer(d: dict[str, Any]) -> str:
    href = escape(d["href"])
    if d["status"] != "ok":
        return f"<p role=alert>The file is {escape(d['status'])}: its bytes are not served.</p>"
    if d["media_type"] == "image":
        return f'<img src="{href}" alt="Stored image {escape(d["md5"])}">'
    if d["media_type"] == "video":
        return (
            f'<video controls preload=metadata src="{href}" aria-label="Stored video">'
            f'<a href="{href}">Download the video</a></video>'
        )
    return (
        f'<p><a href="{href}">Open the PDF</a> (sandboxed) · '
        f'<a href="{href}" download>Download</a></p>'
    )


def _details_html(d: dict[str, Any]) -> str:
    skip = {"urls", "references", "variants", "href", "near_duplicates"}
    rows = "".join(
        f"<tr><th scope=row>{escape(k)}</th><td>{escape(str(v))}</td></tr>"
        for k, v in d.items()
        if k not in skip and v is not None
    )
    urls = "".join(f"<li>{escape(u)}</li>" for u in d["urls"]) or "<li>none</li>"
    refs = (
        "".join(
            f'<li><a href="/?{escape(urlencode({"ref": r["ref"]}))}">{escape(r["ref"])}</a></li>'
            for r in d["references"]
        )
        or "<li>none</li>"
    )
    variants = (
        "".join(
            f'<li><a href="/item/{escape(v["md5"])}">{escape(str(v["variant"]))}</a></li>'
            for v in d["variants"]
        )
        or "<li>none</li>"
    )
    near = (
        "".join(
            f'<li><a href="/item/{escape(n["md5"])}">{escape(n["md5"])}</a> '
            f"distance {n['distance']}{', same pixels' if n['same_pixels'] else ''}</li>"
            for n in d["near_duplicates"]
        )
        or "<li>none</li>"
    )
    return (
        f"<h2>Record</h2><table>{rows}</table><h2>URLs</h2><ul>{urls}</ul>"
        f"<h2>References</h2><ul>{refs}</ul><h2>Variants</h2><ul>{variants}</ul>"
        f"<h2>Near-duplicates</h2><ul>{near}</ul>"
    )


async def stats_page(request: web.Request) -> web.StreamResponse:
    """Files and bytes per type and status, adds per day over 30 days, as SVG bars."""
    store = _store(request)
    st = await asyncio.to_thread(store.stats)
    days = await asyncio.to_thread(_adds_per_day, store, 30)
    body = (
        f"<p>{st.total_files} files, {escape(format_size(st.total_size))}, "
        f"{st.total_urls} URLs.</p>"
        + bars("Files per type", {k: v.count for k, v in st.by_type.items()})
        + bars("Bytes per type", {k: v.size for k, v in st.by_type.items()}, sizes=True)
        + bars("Files per status", {k: v.count for k, v in st.by_status.items()})
        + bars("Adds per day (30 days)", days)
    )
    return page("Stats", body)


def _adds_per_day(store: MediaStore, span: int) -> dict[str, int]:
    since = datetime.now(UTC) - timedelta(days=span)
    counts = Counter(
        r.created_at.date().isoformat() for r in store.list_media(MediaFilter(since=since))
    )
    return dict(sorted(counts.items()))


def bars(title: str, data: dict[str, int], *, sizes: bool = False) -> str:
    """A horizontal bar chart as inline SVG, with its numbers as text (readable unstyled)."""
    if not data:
        return f"<h2>{escape(title)}</h2><p>Nothing yet.</p>"
    top = max(data.values()) or 1
    row = 22
    parts = []
    for i, (name, value) in enumerate(data.items()):
        width = 300 * value / top
        shown = format_size(value) if sizes else str(value)
        y = i * row
        parts.append(
            f'<text x=0 y="{y + 15}">{escape(name)}</text>'
            f'<rect x=110 y="{y + 3}" width="{width:.1f}" height=16 fill="#4a6"></rect>'
            f'<text x="{115 + width:.1f}" y="{y + 15}">{escape(shown)}</text>'
        )
    height = row * len(data)
    return (
        f'<h2>{escape(title)}</h2><svg role=img aria-label="{escape(title)}" '
        f'viewBox="0 0 520 {height}" width="100%" style="max-width:520px">'
        + "".join(parts)
        + "</svg>"
    )
