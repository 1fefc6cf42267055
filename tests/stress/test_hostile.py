"""Hostile input: random, mutated and spliced bytes against sniff, probe and the whole ingest.

The contract under attack: every failure is a MediaStoreError (never another exception, never a
hang), and a refused input leaves nothing behind. Seeds are real files from the builders in
``mediastore.testing``; mutations truncate, flip bits, insert, delete, overwrite length fields
with boundary values and splice in pieces of other formats' headers.

Pillow's UserWarnings about metadata it skips (a malformed MPF index, corrupt EXIF tags, an
invalid APNG chunk) are ignored here as they are in production, so the fuzzing exercises the
path production takes; ``probe`` deliberately leaves the warning filters alone (see
``test_malformed_mpf_index_is_read_as_a_base_jpeg``).
"""

from __future__ import annotations

import hashlib
import io
import random
import struct
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from mediastore import CorruptMediaError, MediaStore, MediaStoreError
from mediastore import testing as t
from mediastore.formats import probe
from mediastore.formats.detect import GIF, HEAD_SIZE, JPEG, KINDS, PNG, WEBP, MediaKind, sniff
from mediastore.formats.probe import image_size
from mediastore.formats.structure import check_file

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")

_FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=2000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# --- seeds -------------------------------------------------------------------------------------
def _saved(fmt: str, frames: int = 1, size: tuple[int, int] = (24, 16), **params: object) -> bytes:
    colors = ["red", "green", "blue", "white"]
    images = [Image.new("RGB", size, colors[i % len(colors)]) for i in range(frames)]
    if frames > 1:
        params = {"save_all": True, "append_images": images[1:], "duration": 40, **params}
    buf = io.BytesIO()
    images[0].save(buf, fmt, **params)  # type: ignore[arg-type]
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = struct.pack(">I", zlib.crc32(kind + data))
    return struct.pack(">I", len(data)) + kind + data + crc


def _fixed_png_crcs(data: bytearray) -> bytearray:
    """Recompute PNG chunk CRCs: mutations then reach the chunk parsers, not just the CRC check."""
    pos = 8
    while data.startswith(b"\x89PNG") and pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        end = pos + 8 + length
        if end + 4 > len(data):
            break
        data[end : end + 4] = struct.pack(">I", zlib.crc32(data[pos + 4 : end]))
        pos = end + 4
    return data


def _png_ihdr(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)


def _ebml_odd_vints() -> bytes:
    """A WebM EBML header whose sizes use long (2-, 4- and 8-byte) vint encodings."""
    doctype = b"\x42\x82" + b"\x40\x04" + b"webm"  # DocType, size as a 2-byte vint
    version = b"\x42\x86" + b"\x10\x00\x00\x01" + b"\x01"  # EBMLVersion, 4-byte vint
    body = version + doctype
    size = b"\x01" + len(body).to_bytes(7, "big")  # 8-byte vint
    return b"\x1a\x45\xdf\xa3" + size + body + bytes(32)


def _exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "camera"  # Make
    exif[0x0110] = "model"  # Model
    return exif


def _jpeg_with_app2(payload: bytes) -> bytes:
    """The test JPEG with an APP2 segment (where the MPF index of an MPO lives) after SOI."""
    return _JPEG[:2] + b"\xff\xe2" + struct.pack(">H", 2 + len(payload)) + payload + _JPEG[2:]


def _apng_without_frames() -> bytes:
    """An APNG whose acTL chunk declares 0 frames (Pillow warns and reads it as a PNG; the
    store refuses it as inconsistent frame control)."""
    apng = bytearray(_saved("PNG", frames=2))
    at = apng.index(b"acTL") + 4
    apng[at : at + 4] = bytes(4)
    return bytes(_fixed_png_crcs(apng))


def _with_box_size(data: bytes, size: int) -> bytes:
    return struct.pack(">I", size) + data[4:]


_JPEG = t.image_bytes("JPEG")
# An MPF index without the number of images: Pillow warns "malformed MPO" and reads a JPEG.
_BAD_MPF = b"MPF\x00" + b"II*\x00\x08\x00\x00\x00" + b"\x00\x00" + bytes(4)
_MP4 = t.mp4_bytes(256)

IMAGE_SEEDS: dict[str, bytes] = {
    "jpeg": _JPEG,
    "jpeg-progressive": _saved("JPEG", progressive=True),
    "jpeg-exif": _saved("JPEG", exif=_exif()),
    "jpeg-mpo": _saved("MPO", frames=2),
    "jpeg-bad-mpf": _jpeg_with_app2(_BAD_MPF),
    "jpeg-noisy": t.noisy_jpeg((80, 60), seed=1),  # larger than HEAD_SIZE
    "png": t.image_bytes("PNG"),
    "png-apng": _saved("PNG", frames=3),
    "png-apng-no-frames": _apng_without_frames(),
    "png-bomb": t.png_bomb(),
    "png-beyond-pillow": t.png_bomb(70_000, 70_000),
    "png-huge-width": t.png_bomb(2**31 - 1, 1),
    "png-zero": t.png_bomb(0, 5),
    "gif": t.image_bytes("GIF"),
    "gif-animated": _saved("GIF", frames=3, loop=0),
    "webp": t.image_bytes("WEBP"),
    "webp-lossless": _saved("WEBP", lossless=True),
    "webp-animated": _saved("WEBP", frames=3),
}
OTHER_SEEDS: dict[str, bytes] = {
    "mp4": _MP4,
    "mp4-large": t.mp4_bytes(HEAD_SIZE + 500, major=b"iso5"),
    "mp4-avif": t.mp4_bytes(64, major=b"avif"),
    "mov": t.mov_bytes(256),
    "mov-bare": b"\x00\x00\x00\x08wide" + struct.pack(">I", 72) + b"mdat" + bytes(64),  # no moov
    "mov-moov-last": t.mov_bytes(256)[20:],  # no ftyp: an old QuickTime file
    "ftyp-size-0": _with_box_size(_MP4, 0),
    "ftyp-size-1": _with_box_size(_MP4, 1),
    "ftyp-size-huge": _with_box_size(_MP4, 0xFFFFFFFF),
    "ftyp-size-odd": _with_box_size(t.ftyp_box(b"abcd", (b"avif", b"isom")), 21),
    "webm": t.ebml_bytes(payload=256),
    "webm-large": t.ebml_bytes(payload=HEAD_SIZE + 500),
    "matroska": t.ebml_bytes(b"matroska", payload=64),
    "webm-odd-vints": _ebml_odd_vints(),  # a header only: sniffs as WebM, refused at ingest
    "webm-live": t.webm_bytes(256, live=True),
    "pdf": t.pdf_bytes(),
    "pdf-prefixed": t.pdf_bytes(prefix=b"\n\xef\xbb\xbf junk " * 20),
}
ALL_SEEDS = {**IMAGE_SEEDS, **OTHER_SEEDS}

# Values that make length and size fields lie: empty, tiny, off by one, sign bit, all ones.
_BOUNDARY_INTS = [0, 1, 7, 8, 15, 16, 0x7F, 0x80, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]


# --- mutation strategies -----------------------------------------------------------------------
@st.composite
def mutated(draw: st.DrawFn, seeds: dict[str, bytes]) -> bytes:
    """A seed with up to six mutations applied."""
    data = bytearray(seeds[draw(st.sampled_from(sorted(seeds)))])
    for op in draw(st.lists(st.sampled_from(_OPS), max_size=6)):
        data = op(draw, data)
    return bytes(data)


def _pos(draw: st.DrawFn, data: bytearray, *, end: bool = False) -> int:
    return draw(st.integers(0, max(0, len(data) - (0 if end else 1))))


def _truncate(draw: st.DrawFn, data: bytearray) -> bytearray:
    return data[: _pos(draw, data, end=True)]


def _flip_bit(draw: st.DrawFn, data: bytearray) -> bytearray:
    if data:
        data[_pos(draw, data)] ^= 1 << draw(st.integers(0, 7))
    return data


def _insert(draw: st.DrawFn, data: bytearray) -> bytearray:
    at = _pos(draw, data, end=True)
    data[at:at] = draw(st.binary(min_size=1, max_size=16))
    return data


def _delete(draw: st.DrawFn, data: bytearray) -> bytearray:
    at = _pos(draw, data)
    del data[at : at + draw(st.integers(1, 32))]
    return data


def _overwrite_int(draw: st.DrawFn, data: bytearray) -> bytearray:
    at = _pos(draw, data)
    value = draw(st.sampled_from([*_BOUNDARY_INTS, len(data), len(data) + 1]))
    width, order = draw(st.sampled_from([(1, "big"), (2, "big"), (2, "little"), (4, "big")]))
    data[at : at + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, order)
    return data


def _splice(draw: st.DrawFn, data: bytearray) -> bytearray:
    other = ALL_SEEDS[draw(st.sampled_from(sorted(ALL_SEEDS)))]
    start = draw(st.integers(0, len(other) - 1))
    at = _pos(draw, data, end=True)
    data[at:at] = other[start : start + draw(st.integers(1, 64))]
    return data


def _duplicate(draw: st.DrawFn, data: bytearray) -> bytearray:
    at = _pos(draw, data)
    piece = data[at : at + draw(st.integers(1, 64))]
    return data[:at] + piece * draw(st.integers(2, 8)) + data[at:]


def _fix_png_crcs(draw: st.DrawFn, data: bytearray) -> bytearray:
    return _fixed_png_crcs(data)


_OPS = [_truncate, _flip_bit, _insert, _delete, _overwrite_int, _splice, _duplicate]
_OPS += [_fix_png_crcs] * 3  # mostly last, after the damage


@st.composite
def spliced(draw: st.DrawFn) -> bytes:
    """The start of one real file glued to the rest of another (or to random bytes)."""
    head = ALL_SEEDS[draw(st.sampled_from(sorted(ALL_SEEDS)))]
    head = head[: draw(st.integers(0, min(len(head), 128)))]
    if draw(st.booleans()):
        tail = ALL_SEEDS[draw(st.sampled_from(sorted(ALL_SEEDS)))]
        return head + tail[draw(st.integers(0, len(tail))) :]
    return head + draw(st.binary(max_size=256))


def _vint(value: int, width: int) -> bytes:
    """``value`` as an EBML vint of ``width`` bytes (marker bit included), possibly too wide."""
    value &= (1 << (7 * width)) - 1
    return ((1 << (7 * width)) | value).to_bytes(width, "big")


_BRANDS = [b"isom", b"mp42", b"qt  ", b"avif", b"heic", b"M4A ", b"3gp5", b"\xa9xyz", b"\x00" * 4]
_brand = st.one_of(st.sampled_from(_BRANDS), st.binary(min_size=4, max_size=4))
_size_field = st.one_of(st.sampled_from(_BOUNDARY_INTS), st.integers(0, 0xFFFFFFFF))


@st.composite
def forged_ftyp(draw: st.DrawFn) -> bytes:
    """An ftyp box with any declared size, major brand and compatible brands."""
    compatible = draw(st.lists(_brand, max_size=8))
    body = draw(_brand) + draw(st.binary(min_size=4, max_size=4)) + b"".join(compatible)
    return struct.pack(">I", draw(_size_field)) + b"ftyp" + body + draw(st.binary(max_size=64))


_DOCTYPE_ID = b"\x42\x82"


@st.composite
def forged_ebml(draw: st.DrawFn) -> bytes:
    """An EBML header with vints of any width (or an invalid first byte) and any DocType."""
    elements = b""
    for _ in range(draw(st.integers(1, 4))):
        elem_id = draw(st.sampled_from([_DOCTYPE_ID] * 3 + [b"\x42\x86", b"\xec", b"\x00"]))
        payload = draw(st.sampled_from([b"webm", b"webm\x00", b"matroska", b"", b"\xffwebm"]))
        declared = draw(st.sampled_from([len(payload)] * 3 + [0, 2**56 - 2, 2**56 - 1]))
        elements += elem_id + _vint(declared, draw(st.integers(1, 8))) + payload
    size = draw(st.sampled_from([len(elements)] * 3 + [0, 1, 2**56 - 1]))
    width = draw(st.integers(0, 8))  # 0: the invalid vint 0x00
    size_bytes = _vint(size, width) if width else b"\x00"
    return b"\x1a\x45\xdf\xa3" + size_bytes + elements + draw(st.binary(max_size=32))


@st.composite
def forged_quicktime(draw: st.DrawFn) -> bytes:
    """A bare QuickTime start: atoms with any sizes, no ftyp."""
    atoms = st.sampled_from(
        [b"moov", b"mdat", b"wide", b"pnot", b"free", b"skip", b"ftyp", b"junk"]
    )
    data = b""
    for _ in range(draw(st.integers(1, 3))):
        size = draw(st.one_of(_size_field, st.integers(0, 40)))
        data += struct.pack(">I", size) + draw(atoms) + draw(st.binary(max_size=24))
    return data


def _cut(data: bytes, at: int) -> bytes:
    return data[:at]


forged_heads = st.one_of(forged_ftyp(), forged_ebml(), forged_ebml(), forged_quicktime()).flatmap(
    lambda data: st.one_of(st.just(data), st.builds(_cut, st.just(data), st.integers(0, len(data))))
)

hostile = st.one_of(st.binary(max_size=512), mutated(ALL_SEEDS), spliced())
hostile_images = st.one_of(mutated(IMAGE_SEEDS), mutated(IMAGE_SEEDS), spliced())  # 2:1


_REFUSED_SEEDS = {"mp4-avif", "ftyp-size-odd", "matroska"}  # AVIF brands; Matroska, not WebM
_SEED_EXTENSIONS = {"jpeg": "jpg", "ftyp": "mp4"}


@pytest.mark.parametrize("name", sorted(ALL_SEEDS))
def test_seeds_are_the_media_they_claim_to_be(name: str) -> None:
    """Every unmutated seed sniffs as its kind, or is refused when it is meant to be."""
    if name in _REFUSED_SEEDS:
        with pytest.raises(MediaStoreError):
            sniff(ALL_SEEDS[name])
    else:
        prefix = name.split("-")[0]
        assert sniff(ALL_SEEDS[name]).extension == _SEED_EXTENSIONS.get(prefix, prefix)


def _assert_sniff_contract(data: bytes) -> None:
    """sniff() returns a supported kind or raises a MediaStoreError, nothing else."""
    try:
        kind = sniff(data)
    except MediaStoreError as exc:
        event(type(exc).__name__)
        return
    event(kind.extension)
    assert kind in KINDS


# --- 1. sniff ----------------------------------------------------------------------------------
@settings(_FUZZ, max_examples=300)
@given(data=hostile)
def test_sniff_returns_a_kind_or_raises_a_media_store_error(data: bytes) -> None:
    """sniff() on hostile bytes returns one of the supported kinds or raises MediaStoreError."""
    _assert_sniff_contract(data)


@settings(_FUZZ, max_examples=300)
@given(data=forged_heads)
@example(b"\x00\x00\x00\x18ftyp")  # an ftyp box cut before its brands
@example(b"\x00\x00\x00\x18ftypis")
@example(b"\x00\x00\x00\x18ftypisom\x00\x00")
@example(b"\x1a\x45\xdf\xa3")  # an EBML id and nothing else
@example(b"\x1a\x45\xdf\xa3\x01\x00")  # an 8-byte size vint cut short
@example(b"\x1a\x45\xdf\xa3\x84\x42\x82\x88webm")  # DocType longer than the data
@example(b"\x00\x00\x00\x00free\x00\x00\x00\x00moov")  # size 0: "to the end"
@example(b"\x00\x00\x00\x01mdat" + bytes(8))  # size 1: a 64-bit size follows
def test_sniff_of_forged_container_headers(data: bytes) -> None:
    """sniff() on forged ftyp, EBML and QuickTime headers keeps its contract."""
    _assert_sniff_contract(data)


# --- 2. image_size -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def probe_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One scratch file, rewritten by every example."""
    return tmp_path_factory.mktemp("probe") / "image"


@pytest.mark.parametrize("strict", [False, True], ids=["warnings-ignored", "warnings-as-errors"])
@pytest.mark.parametrize("kind", [JPEG, PNG, GIF, WEBP], ids=lambda k: k.extension)
@settings(_FUZZ, max_examples=100)
@given(choice=st.data(), max_pixels=st.sampled_from([1, 10_000, 89_478_485]))
def test_image_size_returns_a_size_or_raises_a_media_store_error(
    probe_file: Path, kind: MediaKind, strict: bool, choice: st.DataObject, max_pixels: int
) -> None:
    """image_size() on hostile bytes returns a size within the cap or raises MediaStoreError."""
    same_kind = {name: data for name, data in IMAGE_SEEDS.items() if sniff(data) == kind}
    probe_file.write_bytes(choice.draw(st.one_of(mutated(same_kind), hostile_images)))
    try:
        with warnings.catch_warnings():  # strict: as under pytest's filterwarnings = error
            warnings.simplefilter("error" if strict else "ignore", UserWarning)
            width, height = image_size(probe_file, kind, max_pixels=max_pixels)
    except MediaStoreError as exc:
        event(type(exc).__name__)
        return
    event("size read")
    assert width > 0
    assert height > 0
    assert width * height <= max_pixels


# --- 3. MediaStore.add_bytes -------------------------------------------------------------------
@pytest.fixture
def fuzz_store(tmp_path: Path) -> Iterator[MediaStore]:
    """One store for a whole fuzz test; small odd chunks so the head spans several of them."""
    with MediaStore(tmp_path / "store", chunk_size=1000) as store:
        yield store


@settings(_FUZZ, max_examples=60)
@given(data=st.one_of(mutated(ALL_SEEDS), mutated(IMAGE_SEEDS), spliced()))
def test_add_bytes_stores_intact_files_or_nothing(fuzz_store: MediaStore, data: bytes) -> None:
    """add_bytes() stores a file that hashes back to its md5, or raises and leaves no trace."""
    store = fuzz_store
    media, tmp = store.root / "media", store.root / "tmp"
    files_before = set(t.files_under(media))
    count_before = store.stats().total_files
    try:
        rec = store.add_bytes(data)
    except MediaStoreError as exc:
        event(type(exc).__name__)
        assert set(t.files_under(media)) == files_before
        assert store.stats().total_files == count_before
    else:
        event(f"stored {rec.extension}")
        assert rec.md5 == hashlib.md5(data).hexdigest()
        assert hashlib.md5(rec.path.read_bytes()).hexdigest() == rec.md5
        assert rec.mime_type == sniff(data[:HEAD_SIZE]).mime_type
        assert set(t.files_under(media)) - files_before <= {rec.path}
        assert store.stats().total_files - count_before in (0, 1)
        assert store.verify(rec.md5).ok == [rec.md5]
    assert t.files_under(tmp) == []


# --- regressions and decisions -----------------------------------------------------------------
def _jpeg_behind_fill(fill: int) -> bytes:
    """SOI, ``fill`` bytes of 0xFF marker padding, then the rest of a real JPEG."""
    return _JPEG[:2] + b"\xff" * fill + _JPEG[2:]


def test_jpeg_header_is_read_within_the_header_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pillow reads a JPEG header no further than HEADER_LIMIT bytes (it scans padding bytewise).

    Unbounded, SOI + 1 GiB of 0xFF kept a core busy for over 4 minutes; within the default
    16 MiB it costs about 5 s. The limit is shrunk here so the test is fast.
    """
    monkeypatch.setattr(probe, "HEADER_LIMIT", 64 << 10)
    path = tmp_path / "padded.jpg"
    path.write_bytes(_jpeg_behind_fill(32 << 10))
    assert image_size(path, JPEG, max_pixels=10_000) == (32, 24)
    path.write_bytes(_jpeg_behind_fill(128 << 10))
    with pytest.raises(CorruptMediaError):
        image_size(path, JPEG, max_pixels=10_000)


def test_png_chunk_flood_beyond_the_header_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PNG with its IDAT behind a flood of empty private chunks past HEADER_LIMIT is corrupt.

    Pillow keeps every private chunk: unbounded, 1 GiB of 12-byte chunks meant minutes of CPU
    and about 8 GiB of memory before the image was accepted. Limit shrunk for speed.
    """
    monkeypatch.setattr(probe, "HEADER_LIMIT", 64 << 10)
    idat_iend = _png_chunk(b"IDAT", zlib.compress(bytes(10 * 31))) + _png_chunk(b"IEND", b"")
    flood = _png_chunk(b"abCd", b"") * ((128 << 10) // 12)
    path = tmp_path / "flood.png"
    path.write_bytes(_png_ihdr(10, 10) + flood[: (32 << 10) // 12 * 12] + idat_iend)
    assert image_size(path, PNG, max_pixels=10_000) == (10, 10)
    path.write_bytes(_png_ihdr(10, 10) + flood + idat_iend)
    with pytest.raises(CorruptMediaError):
        image_size(path, PNG, max_pixels=10_000)


def test_pixel_data_beyond_the_header_limit_is_not_needed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real image larger than HEADER_LIMIT still has its size read from the header."""
    monkeypatch.setattr(probe, "HEADER_LIMIT", 4 << 10)
    for fmt, kind in [("JPEG", JPEG), ("PNG", PNG), ("GIF", GIF)]:
        buf = io.BytesIO()
        Image.frombytes("RGB", (200, 150), random.Random(7).randbytes(90_000)).save(buf, fmt)
        assert len(buf.getvalue()) > 4 << 10
        path = tmp_path / f"big.{kind.extension}"
        path.write_bytes(buf.getvalue())
        assert image_size(path, kind, max_pixels=10**6) == (200, 150)


def test_mpo_is_accepted_as_a_jpeg(store: MediaStore) -> None:
    """An MPO (a JPEG with more JPEGs appended, as phones write) is stored as a JPEG."""
    data = IMAGE_SEEDS["jpeg-mpo"]
    rec = store.add_bytes(data)
    assert (rec.extension, rec.width, rec.height) == ("jpg", 24, 16)
    assert rec.path.read_bytes() == data


def test_malformed_mpf_index_is_read_as_a_base_jpeg(tmp_path: Path) -> None:
    """A JPEG whose MPF index is malformed is read as a plain JPEG; Pillow only warns.

    probe does not turn such metadata warnings into errors: that needs warnings.catch_warnings,
    which swaps process-wide state and is not thread-safe on Python 3.11, while probes run in
    fetch_many's worker threads. Pillow has read the size; only an index it skips is bad.
    """
    path = tmp_path / "mpf.jpg"
    path.write_bytes(_jpeg_with_app2(_BAD_MPF))
    with pytest.warns(UserWarning, match="malformed MPO"):
        assert image_size(path, JPEG, max_pixels=10_000) == (32, 24)


# --- truncation: every prefix of a complete file is refused -------------------------------------
def _is_complete(data: bytes) -> bool:
    try:
        check_file(io.BytesIO(data), sniff(data[:HEAD_SIZE]), max_pixels=89_478_485)
    except MediaStoreError:
        return False
    return True


#: Seeds that are whole, valid files (a live WebM may end at any element: left out).
COMPLETE_SEEDS = {
    name: data for name, data in ALL_SEEDS.items() if name != "webm-live" and _is_complete(data)
}


def test_the_complete_seeds_cover_every_kind() -> None:
    """Each supported kind has at least one complete seed (the builders make valid media)."""
    assert {sniff(d).extension for d in COMPLETE_SEEDS.values()} == {k.extension for k in KINDS}


def _prefix_of_complete(draw: st.DrawFn) -> bytes:
    data = COMPLETE_SEEDS[draw(st.sampled_from(sorted(COMPLETE_SEEDS)))]
    if data.startswith(b"\xff\xd8"):  # JPEG: what follows its first EOI is extra data
        data = data[: data.index(b"\xff\xd9") + 2]
    elif b"%%EOF" in data[-8:]:  # PDF: the end of line after %%EOF is optional
        data = data[: data.rindex(b"%%EOF") + 5]
    return data[: draw(st.integers(0, len(data) - 1))]


@settings(_FUZZ, max_examples=150)
@given(data=st.composite(_prefix_of_complete)())
def test_add_bytes_refuses_every_prefix_of_a_complete_file(
    fuzz_store: MediaStore, data: bytes
) -> None:
    """A file cut anywhere (a crashed download, a legacy cache file) is never stored."""
    with pytest.raises(MediaStoreError) as info:
        fuzz_store.add_bytes(data)
    event(type(info.value).__name__)
    assert fuzz_store.stats().total_files == 0
    assert t.files_under(fuzz_store.root / "tmp") == []
