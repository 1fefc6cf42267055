"""Images read by Pillow, with only the four supported decoders and our own pixel cap.

Pillow's own decompression-bomb guard is process-wide (``Image.MAX_IMAGE_PIXELS``, which the
importer's code may rely on): it warns above that limit and refuses above twice it, whatever
cap the store was given. So files are opened through the format's plugin class directly, which
skips the guard ``Image.open`` applies, and the store's ``max_pixels`` is enforced from the
dimensions the file's structure declares (:mod:`mediastore.formats.structure`, every frame). The GIF
and WebP plugins apply the global guard internally as well; an image whose canvas is beyond it
is never handed to them (its header was already checked by the structure walk). Nothing here
changes Pillow's global state or the warning filters, so ``DecompressionBombWarning`` never
reaches the user.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from pathlib import Path
from typing import IO, BinaryIO

from PIL import GifImagePlugin, Image, ImageFile, JpegImagePlugin, PngImagePlugin

from ..errors import CorruptMediaError, ImageTooLargeError, StorageError, UnsupportedMediaError
from .detect import GIF, WEBP, MediaKind
from .structure import ImageLayout, check_file, checker_for

log = logging.getLogger(__name__)

_PIL_FORMATS = {"jpg": "JPEG", "png": "PNG", "gif": "GIF", "webp": "WEBP"}
#: Bytes of a JPEG, PNG or GIF file Pillow may read to find its size. Pillow walks these headers
#: in Python, byte by byte over junk (JPEG, GIF) and chunk by chunk (PNG, keeping every private
#: chunk in memory): unbounded, a hostile 1 GiB file took minutes and several GiB of RAM. Real
#: headers (EXIF, ICC, XMP, text chunks) fit in far less; the pixel data after them is not read.
HEADER_LIMIT = 16 << 20

Opener = Callable[[IO[bytes]], ImageFile.ImageFile]


def _open_webp(fp: IO[bytes]) -> ImageFile.ImageFile:
    from PIL import WebPImagePlugin  # needs Pillow's libwebp module: imported when used

    return WebPImagePlugin.WebPImageFile(fp)


#: The plugin entry points ``Image.open`` would call, minus its global bomb check.
_OPENERS: dict[str, Opener] = {
    "JPEG": lambda fp: JpegImagePlugin.jpeg_factory(fp),
    "PNG": lambda fp: PngImagePlugin.PngImageFile(fp),
    "GIF": lambda fp: GifImagePlugin.GifImageFile(fp),
    "WEBP": _open_webp,
}


def _pillow_guard_allows(kind: MediaKind, layout: ImageLayout | None, *, decode: bool) -> bool:
    """Whether Pillow's internal guard can stay silent on this image.

    The JPEG and PNG plugins apply no guard of their own; GIF applies it to frames (warning
    above ``MAX_IMAGE_PIXELS``), WebP when opening (refusing above twice it).
    """
    if kind not in (GIF, WEBP) or layout is None:
        return True
    limit = Image.MAX_IMAGE_PIXELS
    if limit is None:
        return True
    if kind == WEBP and not decode:
        return layout.canvas_pixels <= 2 * limit
    return layout.canvas_pixels <= limit


def _header_layout(content: bytes, kind: MediaKind, max_pixels: int) -> ImageLayout | None:
    """The layout the structure declares within ``content`` (a file's start or all of it)."""
    check = checker_for(kind, max_pixels=max_pixels)
    check.feed(content)
    return check.layout


def image_size(
    source: str | Path | bytes,
    kind: MediaKind,
    *,
    max_pixels: int,
    layout: ImageLayout | None = None,
) -> tuple[int, int]:
    """Width and height of an image, read from its header (no full decode).

    Only the decoder of the detected kind is allowed, so a file cannot reach any other
    Pillow plugin. Images above ``max_pixels`` are refused, whatever Pillow's own limit.

    Args:
        source: The image file, or its whole content (read from memory then).
        kind: Its sniffed kind (JPEG, PNG, GIF or WebP).
        max_pixels: The pixel cap (any frame).
        layout: What the structure check found (ingest has it); read here when not given.

    Raises:
        ImageTooLargeError: more pixels than ``max_pixels``.
        CorruptMediaError: Pillow cannot parse the header, or it disagrees with the sniffer.
        StorageError: ``path`` could not be read.
    """
    fmt = _PIL_FORMATS.get(kind.extension)
    if fmt is None:
        raise ValueError(f"not an image kind: {kind}")
    if isinstance(source, bytes):
        content = source if fmt == "WEBP" else source[:HEADER_LIMIT]
        where = "content in memory"
    else:
        content = _read_header(source, whole=fmt == "WEBP")
        where = str(source)
    if layout is None:
        layout = _header_layout(content, kind, max_pixels)
    if layout is not None and not _pillow_guard_allows(kind, layout, decode=False):
        # beyond Pillow's own guard but within ours: the structure walk read the header
        return _within_cap(layout.width, layout.height, max_pixels)
    width, height = _pillow_size(content, kind, fmt, where)
    if width <= 0 or height <= 0:
        raise CorruptMediaError(f"image declares an empty size {width}x{height}")
    return _within_cap(width, height, max_pixels)


def _read_header(path: str | Path, *, whole: bool) -> bytes:
    """A file's first HEADER_LIMIT bytes (all of it for WebP, which libwebp parses whole)."""
    try:
        with open(path, "rb") as fh:
            return fh.read() if whole else fh.read(HEADER_LIMIT)
    except OSError as exc:
        raise StorageError(f"reading image {path} failed: {exc}") from exc


def _within_cap(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"image of {width}x{height} = {width * height} pixels exceeds the cap of "
            f"{max_pixels} (decompression bomb guard)"
        )
    return width, height


def _pillow_size(content: bytes, kind: MediaKind, fmt: str, where: str) -> tuple[int, int]:
    try:
        with _OPENERS[fmt](io.BytesIO(content)) as im:
            width, height = im.size
            found = im.format
    except Image.DecompressionBombError as exc:  # only if Pillow's limit was lowered meanwhile
        raise ImageTooLargeError(f"image refused as a decompression bomb: {exc}") from exc
    except (SyntaxError, OSError, ValueError, EOFError) as exc:
        raise CorruptMediaError(f"{kind.extension} image could not be parsed: {exc}") from exc
    except Exception as exc:  # a Pillow plugin bug on hostile input must not escape raw
        log.debug("unexpected Pillow failure on %s", where, exc_info=True)
        raise CorruptMediaError(f"{kind.extension} image could not be parsed: {exc!r}") from exc
    # An MPO (a JPEG followed by more JPEGs, indexed in an APP2 segment: phone depth maps,
    # 3D cameras) is a valid JPEG to every viewer; Pillow only names it differently.
    if found != fmt and not (fmt == "JPEG" and found == "MPO"):
        raise CorruptMediaError(f"content sniffed as {fmt} but Pillow read {found}")
    return width, height


def deep_check(fileobj: BinaryIO, kind: MediaKind, *, max_pixels: int) -> None:
    """Full check of a stored file, for ``verify --deep``: slower than ingest, reads everything.

    The structure is walked as at ingest and deeper (MP4 boxes inside ``moov`` and fragments
    tile their parents and sample offsets lie inside the file; WebM master elements tile
    theirs). Images are then decoded by Pillow, every frame (GIF, APNG, animated WebP; an
    MPO's primary image), within ``max_pixels``. A GIF whose canvas is above Pillow's own
    ``MAX_IMAGE_PIXELS`` (only possible with a raised cap) is structure-checked only, since
    Pillow would warn while decoding it.

    Args:
        fileobj: The file, open for binary reading and seekable; read from its start.
        kind: The kind it is stored as.
        max_pixels: The pixel cap (any frame).

    Raises:
        CorruptMediaError: truncated, malformed, or pixel data that does not decode.
        UnsupportedMediaError: a video without a video track.
        ImageTooLargeError: a frame above ``max_pixels``.
    """
    fileobj.seek(0)
    layout = check_file(fileobj, kind, max_pixels=max_pixels, deep=True)
    fmt = _PIL_FORMATS.get(kind.extension)
    if fmt is None:
        return
    if not _pillow_guard_allows(kind, layout, decode=True):
        log.debug("%s canvas beyond Pillow's own limit: structure checked, not decoded", fmt)
        return
    fileobj.seek(0)
    _decode_frames(fileobj, kind, fmt)


def decode_image(source: str | Path | bytes, kind: MediaKind, layout: ImageLayout | None) -> None:
    """Decode every frame of an image whose structure was checked (``verify_deep`` at ingest).

    Args:
        source: The image: a file's path, or its bytes.
        kind: Its sniffed kind (an image kind).
        layout: What its structure check found (frames above the pixel cap were refused).

    Raises:
        CorruptMediaError: pixel data that does not decode.
        ImageTooLargeError: refused by Pillow's own guard.
    """
    fmt = _PIL_FORMATS[kind.extension]
    if not _pillow_guard_allows(kind, layout, decode=True):
        log.debug("%s canvas beyond Pillow's own limit: structure checked, not decoded", fmt)
        return
    if isinstance(source, bytes):
        _decode_frames(io.BytesIO(source), kind, fmt)
        return
    with open(source, "rb") as fh:
        _decode_frames(fh, kind, fmt)


def _decode_frames(fileobj: BinaryIO, kind: MediaKind, fmt: str) -> None:
    frame = 0
    try:
        with _OPENERS[fmt](fileobj) as im:
            # MPO: seeking to its other images would apply Pillow's global guard
            frames = 1 if im.format == "MPO" else getattr(im, "n_frames", 1)
            for frame in range(frames):
                im.seek(frame)
                im.load()
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"image refused as a decompression bomb: {exc}") from exc
    except Exception as exc:  # any decoder failure means the pixel data is broken
        where = f" (frame {frame + 1})" if frame else ""
        raise CorruptMediaError(
            f"{kind.extension} image data could not be decoded{where}: {exc}"
        ) from exc


def first_frame(fileobj: BinaryIO, kind: MediaKind, *, max_pixels: int) -> Image.Image:
    """The first frame of a stored image, decoded (an animation's first frame, an MPO's
    primary image), for the similarity hashes.

    The structure is walked first, as at ingest, so the pixel cap applies before Pillow
    decodes anything.

    Raises:
        CorruptMediaError: truncated or malformed, or pixel data that does not decode.
        ImageTooLargeError: above ``max_pixels`` or Pillow's own guard.
        UnsupportedMediaError: ``kind`` is not an image.
    """
    fmt = _PIL_FORMATS.get(kind.extension)
    if fmt is None:
        raise UnsupportedMediaError(f"not an image: {kind.extension}")
    fileobj.seek(0)
    layout = check_file(fileobj, kind, max_pixels=max_pixels)
    if not _pillow_guard_allows(kind, layout, decode=True):
        raise ImageTooLargeError(f"{fmt} canvas beyond Pillow's own limit: not decoded")
    fileobj.seek(0)
    try:
        with _OPENERS[fmt](fileobj) as im:
            im.load()
            return im.copy()
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"image refused as a decompression bomb: {exc}") from exc
    except Exception as exc:  # any decoder failure means the pixel data is broken
        raise CorruptMediaError(f"{kind.extension} image data could not be decoded: {exc}") from exc
