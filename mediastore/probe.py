"""Image dimensions read from headers by Pillow, with only the four supported decoders."""

from __future__ import annotations

import io
import logging
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .errors import CorruptMediaError, ImageTooLargeError
from .sniff import MediaKind

log = logging.getLogger(__name__)

_PIL_FORMATS = {"jpg": "JPEG", "png": "PNG", "gif": "GIF", "webp": "WEBP"}
#: Bytes of a JPEG, PNG or GIF file Pillow may read to find its size. Pillow walks these headers
#: in Python, byte by byte over junk (JPEG, GIF) and chunk by chunk (PNG, keeping every private
#: chunk in memory): unbounded, a hostile 1 GiB file took minutes and several GiB of RAM. Real
#: headers (EXIF, ICC, XMP, text chunks) fit in far less; the pixel data after them is not read.
HEADER_LIMIT = 16 << 20


def image_size(
    path: str | Path, kind: MediaKind, *, max_pixels: int, data: bytes | None = None
) -> tuple[int, int]:
    """Width and height of an image file, read from its header (no full decode).

    Only the decoder of the detected kind is allowed, so a file cannot reach any other
    Pillow plugin. Images above ``max_pixels`` are refused (Pillow's warning zone included).
    ``data``, when given, is the file's whole content, used instead of reading ``path``.

    Raises:
        ImageTooLargeError: more pixels than ``max_pixels``.
        CorruptMediaError: Pillow cannot parse the header, or it disagrees with the sniffer.
    """
    fmt = _PIL_FORMATS.get(kind.extension)
    if fmt is None:
        raise ValueError(f"not an image kind: {kind}")
    try:
        if data is not None:
            source: str | Path | io.BytesIO = io.BytesIO(
                data if fmt == "WEBP" else data[:HEADER_LIMIT]
            )
        elif fmt == "WEBP":  # parsed by libwebp, which needs the whole file (and is not slow)
            source = path
        else:  # a bounded header (see HEADER_LIMIT): past it, Pillow sees the end of the file
            with open(path, "rb") as fh:
                source = io.BytesIO(fh.read(HEADER_LIMIT))
        with Image.open(source, formats=[fmt]) as im:
            width, height = im.size
            found = im.format
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"image refused as a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:  # its message names the in-memory header buffer
        raise CorruptMediaError(f"{kind.extension} image could not be parsed as {fmt}") from exc
    except (SyntaxError, OSError, ValueError, EOFError) as exc:
        raise CorruptMediaError(f"{kind.extension} image could not be parsed: {exc}") from exc
    except Exception as exc:  # a Pillow plugin bug on hostile input must not escape raw
        log.debug("unexpected Pillow failure on %s", path, exc_info=True)
        raise CorruptMediaError(f"{kind.extension} image could not be parsed: {exc!r}") from exc
    # An MPO (a JPEG followed by more JPEGs, indexed in an APP2 segment: phone depth maps,
    # 3D cameras) is a valid JPEG to every viewer; Pillow only names it differently.
    if found != fmt and not (fmt == "JPEG" and found == "MPO"):
        raise CorruptMediaError(f"content sniffed as {fmt} but Pillow read {found}")
    if width <= 0 or height <= 0:
        raise CorruptMediaError(f"image declares an empty size {width}x{height}")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"image of {width}x{height} = {width * height} pixels exceeds the cap of "
            f"{max_pixels} (decompression bomb guard)"
        )
    return width, height
