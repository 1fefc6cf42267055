"""The two similarity hashes of an image: a pixel hash and a 64-bit perceptual hash.

**Pixel hash**: SHA-256 of the decoded first frame's mode, size and raw pixel bytes (a
palette image is expanded to RGBA first, so two palettes drawing the same pixels agree).
Same pixels and mode give the same hash whatever the encoding, compression or metadata:
a PNG re-saved with other chunks, a JPEG with its EXIF stripped losslessly.

**Perceptual hash** (DCT, after pHash and hydrus):

1. the first frame is converted to 8-bit grayscale (``L``) and resized to 32x32 by box
   averaging (each output pixel the mean of its area: resizing the source first changes
   little);
2. the 2-D DCT-II of the 32x32 block is taken, and of it only the 8x8 lowest frequencies
   (the coarse structure that survives re-encoding and resizing);
3. the median of the 63 AC coefficients is taken, the DC term (the mean brightness, far
   larger than the rest) left out so it cannot skew the median;
4. bit ``8*u + v`` counted from the most significant (``u`` the vertical frequency) is 1
   when coefficient ``(u, v)`` is above that median. The DC term's bit (the top bit) is
   always 0: the hash has 63 informative bits, and a hash of another tool that keeps the
   DC term differs from ours in that bit only if it sets it.

The hashes describe the stored pixels, not the EXIF-rotated view: a copy rotated by 90
degrees is a different picture to both (its perceptual hash is about 32 bits away).
No numpy: the DCT is two small matrix products (8x32x32 + 8x8x32 multiplications, about a
millisecond); the decode of the image costs far more.
"""

from __future__ import annotations

import hashlib
import math
from typing import BinaryIO

from PIL import Image

from .detect import MediaKind
from .probe import first_frame

#: Side of the grayscale block the DCT is taken of.
SIDE = 32
#: Side of the low-frequency block kept.
KEEP = 8
#: ``_COS[u][x]``: the DCT-II basis, frequency ``u`` at sample ``x`` (unscaled).
_COS: tuple[tuple[float, ...], ...] = tuple(
    tuple(math.cos((2 * x + 1) * u * math.pi / (2 * SIDE)) for x in range(SIDE))
    for u in range(KEEP)
)
#: The orthonormal DCT-II scale of frequency ``u``.
_SCALE: tuple[float, ...] = tuple(math.sqrt((1 if u == 0 else 2) / SIDE) for u in range(KEEP))


def hash_file(fileobj: BinaryIO, kind: MediaKind, *, max_pixels: int) -> tuple[str, int]:
    """(pixel hash, perceptual hash) of a stored image, decoded once.

    Raises:
        CorruptMediaError / ImageTooLargeError / UnsupportedMediaError: as
            :func:`mediastore.formats.probe.first_frame`.
    """
    with first_frame(fileobj, kind, max_pixels=max_pixels) as image:
        return pixel_hash(image), perceptual_hash(image)


def pixel_hash(image: Image.Image) -> str:
    """SHA-256 (hex) of an image's mode, size and pixels (palette expanded)."""
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")
    digest = hashlib.sha256(f"{image.mode} {image.width}x{image.height}\n".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def perceptual_hash(image: Image.Image) -> int:
    """The 64-bit DCT hash of an image (module docstring), as an unsigned integer."""
    gray = image.convert("L").resize((SIDE, SIDE), Image.Resampling.BOX)
    data = gray.tobytes()
    rows = [data[y * SIDE : (y + 1) * SIDE] for y in range(SIDE)]
    coefficients = _dct_low(rows)
    median = sorted(coefficients[1:])[(len(coefficients) - 1) // 2]
    value = 0
    for index, coefficient in enumerate(coefficients):
        bit = 1 if index and coefficient > median else 0
        value = (value << 1) | bit
    return value


def _dct_low(rows: list[bytes]) -> list[float]:
    """The 8x8 lowest-frequency coefficients of the 2-D DCT-II of a 32x32 block, row-major."""
    columns = list(zip(*rows, strict=True))
    # vertical pass: partial[u][x] = sum_y cos_u(y) * pixel(y, x)
    partial = [
        [math.fsum(map(float.__mul__, basis, map(float, col))) for col in columns] for basis in _COS
    ]
    return [
        _SCALE[u] * _SCALE[v] * math.fsum(map(float.__mul__, _COS[v], partial[u]))
        for u in range(KEEP)
        for v in range(KEEP)
    ]
