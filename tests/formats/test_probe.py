"""Image dimensions from headers, with the decompression-bomb guard; the deep check."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from mediastore import CorruptMediaError, ImageTooLargeError, MediaStore
from mediastore import testing as t
from mediastore.config import DEFAULT_MAX_IMAGE_PIXELS
from mediastore.formats.detect import GIF, JPEG, PNG, WEBP, sniff
from mediastore.formats.probe import deep_check, image_size
from mediastore.formats.structure import check_file


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP"])
def test_dimensions_of_each_format(tmp_path: Path, fmt: str) -> None:
    """Width and height come from the header of every supported format."""
    path = tmp_path / "img"
    path.write_bytes(t.image_bytes(fmt, size=(37, 21)))
    assert image_size(path, sniff(path.read_bytes()), max_pixels=10_000) == (37, 21)


def test_png_bomb_in_pillows_warning_zone_is_refused(tmp_path: Path) -> None:
    """A tiny PNG declaring 10000x10000 (Pillow would only warn) is an error."""
    path = tmp_path / "bomb.png"
    path.write_bytes(t.png_bomb())
    assert path.stat().st_size < 100
    with pytest.raises(ImageTooLargeError, match="10000x10000"):
        image_size(path, PNG, max_pixels=89_478_485)


def test_pixel_cap_is_configurable(tmp_path: Path) -> None:
    """A cap below the image's pixel count refuses it."""
    path = tmp_path / "a.png"
    path.write_bytes(t.image_bytes("PNG", size=(100, 100)))
    assert image_size(path, PNG, max_pixels=10_000) == (100, 100)
    with pytest.raises(ImageTooLargeError):
        image_size(path, PNG, max_pixels=9_999)


def test_far_beyond_pillow_limit_is_refused_by_the_default_cap(tmp_path: Path) -> None:
    """3.6 gigapixels: refused as ImageTooLargeError under the default cap..."""
    path = tmp_path / "huge.png"
    path.write_bytes(t.png_bomb(60_000, 60_000))
    with pytest.raises(ImageTooLargeError, match="60000x60000"):
        image_size(path, PNG, max_pixels=DEFAULT_MAX_IMAGE_PIXELS)


def test_far_beyond_pillow_limit_is_read_under_a_cap_that_allows_it(tmp_path: Path) -> None:
    """...and read when the store's cap allows it: the cap is ours, not Pillow's."""
    path = tmp_path / "huge.png"
    path.write_bytes(t.png_bomb(60_000, 60_000))
    assert image_size(path, PNG, max_pixels=10**12) == (60_000, 60_000)


def _with_size(fmt: str, width: int, height: int) -> bytes:
    """A small real image whose header is patched to declare ``width`` x ``height``."""
    data = bytearray(t.image_bytes(fmt, size=(32, 24)))
    if fmt == "JPEG":
        at = data.index(b"\xff\xc0") + 5
        data[at : at + 4] = struct.pack(">HH", height, width)
    elif fmt == "GIF":  # the logical screen (the frame stays inside it)
        data[6:10] = struct.pack("<HH", width, height)
    elif fmt == "WEBP":  # a lossy still: dimensions in the VP8 key frame header
        at = data.index(b"\x9d\x01\x2a") + 3
        data[at : at + 4] = struct.pack("<HH", width, height)
    else:
        return t.png_bomb(width, height)
    return bytes(data)


#: Pillow's own hard limit is twice MAX_IMAGE_PIXELS: 178,956,970 pixels by default.
PILLOW_DOUBLE = 2 * DEFAULT_MAX_IMAGE_PIXELS
_SIZES = {"JPEG": (20_000, 10_000), "PNG": (20_000, 10_000), "GIF": (20_000, 10_000),
          "WEBP": (16_383, 12_000)}  # fmt: skip
_KINDS = {"JPEG": JPEG, "PNG": PNG, "GIF": GIF, "WEBP": WEBP}


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("fmt", sorted(_SIZES))
def test_cap_above_pillows_double_limit_is_honoured(tmp_path: Path, fmt: str) -> None:
    """With max_pixels above 178,956,970, such images are read, without any warning."""
    width, height = _SIZES[fmt]
    assert width * height > PILLOW_DOUBLE
    path = tmp_path / "big"
    path.write_bytes(_with_size(fmt, width, height))
    assert image_size(path, _KINDS[fmt], max_pixels=300_000_000) == (width, height)
    with pytest.raises(ImageTooLargeError):
        image_size(path, _KINDS[fmt], max_pixels=PILLOW_DOUBLE)
    assert Image.MAX_IMAGE_PIXELS == DEFAULT_MAX_IMAGE_PIXELS  # Pillow's global untouched


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("fmt", sorted(_SIZES))
@pytest.mark.parametrize("cap", [DEFAULT_MAX_IMAGE_PIXELS, 150_000_000])
def test_no_decompression_bomb_warning_in_pillows_warning_zone(
    tmp_path: Path, fmt: str, cap: int
) -> None:
    """10,000 x 10,000 (between Pillow's warning and error limits): refused or read under our
    cap, and Pillow's DecompressionBombWarning never raised (warnings are errors here)."""
    path = tmp_path / "zone"
    path.write_bytes(_with_size(fmt, 10_000, 10_000))
    if cap < 10**8:
        with pytest.raises(ImageTooLargeError, match="10000x10000"):
            image_size(path, _KINDS[fmt], max_pixels=cap)
    else:
        assert image_size(path, _KINDS[fmt], max_pixels=cap) == (10_000, 10_000)


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_store_honours_a_raised_cap_without_warnings(tmp_path: Path) -> None:
    """Through the store: a 200-megapixel PNG is stored under a raised cap, refused by default."""
    data = t.png_bomb(20_000, 10_000)
    with MediaStore(tmp_path / "big", max_image_pixels=300_000_000) as store:
        rec = store.add_bytes(data)
        assert (rec.width, rec.height) == (20_000, 10_000)
    with MediaStore(tmp_path / "default") as store:
        with pytest.raises(ImageTooLargeError):
            store.add_bytes(data)
        t.assert_nothing_stored(store)


def test_deep_check_decodes_every_frame(tmp_path: Path) -> None:
    """deep_check decodes each frame: an APNG whose last frame's data is broken fails, though
    its structure (chunks, CRCs, frame control) is intact."""
    apng = bytearray(t.animated_bytes("PNG", frames=3, size=(40, 30)))
    deep_check(io.BytesIO(bytes(apng)), PNG, max_pixels=10_000)
    at = apng.rindex(b"fdAT")
    (length,) = struct.unpack(">I", apng[at - 4 : at])
    apng[at + 8 : at + 4 + length] = bytes(length - 4)  # zeros after the sequence number
    apng[at + 4 + length : at + 8 + length] = struct.pack(
        ">I", zlib.crc32(apng[at : at + 4 + length])
    )
    t_check = check_file(io.BytesIO(bytes(apng)), PNG, max_pixels=10_000)
    assert t_check is not None and t_check.frames == 3
    with pytest.raises(CorruptMediaError, match=r"could not be decoded \(frame 3\)"):
        deep_check(io.BytesIO(bytes(apng)), PNG, max_pixels=10_000)


def test_deep_check_of_a_truncated_jpeg(tmp_path: Path) -> None:
    """A JPEG cut short fails the deep check with the ingest check's reason."""
    data = t.noisy_jpeg(seed=4)
    deep_check(io.BytesIO(data), JPEG, max_pixels=10_000)
    with pytest.raises(CorruptMediaError, match="EOI"):
        deep_check(io.BytesIO(data[:-200]), JPEG, max_pixels=10_000)


def test_unparseable_image_is_corrupt(tmp_path: Path) -> None:
    """A file with a JPEG signature Pillow cannot parse is refused as corrupt."""
    path = tmp_path / "bad.jpg"
    path.write_bytes(b"\xff\xd8\xff" + bytes(50))
    with pytest.raises(CorruptMediaError):
        image_size(path, JPEG, max_pixels=10_000)


def test_only_the_sniffed_decoder_is_used(tmp_path: Path) -> None:
    """A PNG passed as WebP is not parsed by the PNG plugin."""
    path = tmp_path / "x"
    path.write_bytes(t.image_bytes("PNG"))
    with pytest.raises(CorruptMediaError):
        image_size(path, WEBP, max_pixels=10_000)
