"""Completeness checks: whole files pass, cut, damaged and incomplete ones are refused.

Every file is made here (Pillow images, container structures from ``mediastore.testing``),
then cut at many points, flipped in its headers, prefixed with junk or cut in its middle.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from mediastore import CorruptMediaError, ImageTooLargeError, MediaStoreError, UnsupportedMediaError
from mediastore import testing as t
from mediastore.formats.detect import GIF, JPEG, MP4, PDF, PNG, WEBM, WEBP, sniff
from mediastore.formats.probe import deep_check
from mediastore.formats.stream import ImageLayout
from mediastore.formats.structure import check_file, checker_for

CAP = 89_478_485


def _check(
    data: bytes, *, chunk: int = 1 << 20, max_pixels: int = CAP, deep: bool = False
) -> ImageLayout | None:
    """sniff + completeness check of ``data`` fed in chunks of ``chunk`` bytes; the layout
    of an image (None for other kinds)."""
    kind = sniff(data[:4096])
    check = checker_for(kind, max_pixels=max_pixels, deep=deep)
    for start in range(0, len(data), chunk):
        check.feed(memoryview(data)[start : start + chunk])
    return check.finish()


def _assert_passes(data: bytes, *, chunk: int = 1 << 20, max_pixels: int = CAP) -> None:
    """``data`` passes the completeness check: an image with the size Pillow reads from it,
    anything else with no image layout."""
    layout = _check(data, chunk=chunk, max_pixels=max_pixels)
    if sniff(data[:4096]).media_type != "image":
        assert layout is None
        return
    assert layout is not None and layout.frames >= 1
    with Image.open(io.BytesIO(data)) as image:
        assert (layout.width, layout.height) == image.size


class _Reader(io.BytesIO):
    """A file that remembers the furthest offset read from it."""

    furthest = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.furthest = max(self.furthest, self.tell())
        return data

    def readinto(self, buffer: Any) -> int:
        count = super().readinto(buffer)
        self.furthest = max(self.furthest, self.tell())
        return count


def _noisy(fmt: str, size: tuple[int, int] = (96, 64), **params: object) -> bytes:
    """An image of random pixels (large enough to span several chunks and sub-blocks)."""
    pixels = t._seeded(size[0] * size[1] * 3, 5)
    buf = io.BytesIO()
    Image.frombytes("RGB", size, pixels).save(buf, fmt, **params)  # type: ignore[arg-type]
    return buf.getvalue()


VALID: dict[str, bytes] = {
    "jpeg": t.image_bytes("JPEG"),
    "jpeg-noisy": t.noisy_jpeg((120, 90), seed=3),
    "jpeg-progressive": _noisy("JPEG", progressive=True),
    "jpeg-mpo": t.animated_bytes("MPO", frames=2),
    "png": t.image_bytes("PNG"),
    "png-noisy": _noisy("PNG"),
    "apng": t.animated_bytes("PNG", frames=3),
    "apng-default-not-a-frame": t.animated_bytes("PNG", frames=3, default_image=True),
    "gif": t.image_bytes("GIF"),
    "gif-noisy": _noisy("GIF"),
    "gif-animated": t.animated_bytes("GIF", frames=4),
    "webp": t.image_bytes("WEBP"),
    "webp-lossless": _noisy("WEBP", lossless=True),
    "webp-animated": t.animated_bytes("WEBP", frames=3),
    "mp4": t.mp4_bytes(20_000),
    "mp4-video-and-audio": t.mp4_bytes(20_000, handlers=(b"soun", b"vide")),
    "mov": t.mov_bytes(20_000),
    "webm": t.webm_bytes(20_000),
    "webm-live": t.webm_bytes(20_000, live=True),
    "webm-video-and-audio": t.ebml_bytes(payload=20_000, tracks=(2, 1)),
    "pdf": t.pdf_bytes(),
}


@pytest.mark.parametrize("name", sorted(VALID))
@pytest.mark.parametrize("chunk", [1, 7, 1000, 1 << 20])
def test_valid_media_pass_in_any_chunking(name: str, chunk: int) -> None:
    """Whole files of every kind pass, however the stream is cut into chunks, with the same
    layout."""
    _assert_passes(VALID[name], chunk=chunk)
    assert _check(VALID[name], chunk=chunk) == _check(VALID[name])


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_media_pass_the_deep_check(name: str) -> None:
    """Whole files also pass the deep check (full decode of images, containers walked),
    which reads them to their last byte."""
    kind = sniff(VALID[name][:4096])
    reader = _Reader(VALID[name])
    deep_check(reader, kind, max_pixels=CAP)
    assert reader.furthest == len(VALID[name])


def _cut_points(size: int, count: int = 60) -> Iterator[int]:
    step = max(1, size // count)
    yield from range(1, size - 1, step)
    yield from (size - 3, size - 2, size - 1)


#: Kinds where a file cut at an element boundary is a valid shorter file by design.
_CUT_EXCEPTIONS = {"webm-live"}


@pytest.mark.parametrize("name", sorted(set(VALID) - _CUT_EXCEPTIONS))
def test_files_cut_at_many_points_are_refused(name: str) -> None:
    """A prefix of a file is refused: corrupt (or, too short to sniff, unsupported)."""
    data = VALID[name]
    if name == "pdf":  # "%%EOF\n": a cut after the marker keeps a complete PDF
        data = data[: data.rindex(b"%%EOF") + 1]
    if name == "jpeg-mpo":  # the images after the primary one are extra data after its EOI
        data = data[: data.index(b"\xff\xd9") + 1]
    for cut in _cut_points(len(data)):
        with pytest.raises((CorruptMediaError, UnsupportedMediaError)):
            _check(data[:cut], chunk=997)


def test_live_webm_cut_inside_a_block_is_refused() -> None:
    """A live WebM (unknown sizes) may end at any element, but not inside one."""
    data = VALID["webm-live"]
    with pytest.raises(CorruptMediaError, match="WebM ends inside a Cluster: truncated"):
        _check(data[:-100])


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("jpeg-noisy", "JPEG ends before its EOI marker: truncated?"),
        ("png-noisy", "PNG ends inside its IDAT chunk: truncated?"),
        ("gif-noisy", "GIF ends inside frame 1's image data"),
        ("webp-lossless", "WebP ends before the end its RIFF header declares"),
        ("mp4", "MP4 ends inside its 'mdat' box: truncated?"),
        ("webm", "WebM ends inside its Cluster: truncated?"),
        ("pdf", "PDF ends without its %%EOF end marker: truncated?"),
    ],
)
def test_truncation_is_explained(name: str, message: str) -> None:
    """The reason names the format and what is missing."""
    data = VALID[name]
    with pytest.raises(CorruptMediaError, match=message.replace("?", r"\?")):
        _check(data[: len(data) * 2 // 3])


#: Pieces cut from the middle: (start, length) as fractions of the file.
_MIDDLE_CUTS = [(0.3, 1), (0.4, 7), (0.5, 100), (0.55, 0.1), (0.6, 3), (0.7, 0.2)]


@pytest.mark.parametrize(
    "name",
    ["png-noisy", "apng", "gif-noisy", "gif-animated", "webp", "webp-lossless",
     "webp-animated", "mp4", "mov", "webm"],
)  # fmt: skip
@pytest.mark.parametrize(("where", "length"), _MIDDLE_CUTS)
def test_piece_cut_from_the_middle_is_refused(name: str, where: float, length: float) -> None:
    """PNG, GIF, WebP, MP4/MOV and WebM with bytes removed from the middle are refused."""
    data = VALID[name]
    start = int(len(data) * where)
    count = max(1, int(len(data) * length)) if length < 1 else int(length)
    with pytest.raises(CorruptMediaError):
        _check(data[:start] + data[start + count :])


def _flipped(data: bytes, at: int, bit: int = 0x40) -> bytes:
    out = bytearray(data)
    out[at] ^= bit
    return bytes(out)


def _gif_first_frame(data: bytes) -> int:
    """Offset of a GIF's first image descriptor (past the colour table and extensions)."""
    pos = 13 + ((3 << ((data[10] & 7) + 1)) if data[10] & 0x80 else 0)
    while data[pos] == 0x21:
        pos += 2
        while data[pos]:
            pos += 1 + data[pos]
        pos += 1
    assert data[pos] == 0x2C
    return pos


def _box_offsets(data: bytes, path: tuple[bytes, ...]) -> int:
    """Offset of the box at ``path`` (types from the top level down)."""
    pos, end = 0, len(data)
    for btype in path:
        while pos < end:
            size, found = struct.unpack(">I4s", data[pos : pos + 8])
            if found == btype:
                break
            pos += size
        else:
            raise AssertionError(f"no {btype!r}")
        if btype != path[-1]:
            end, pos = pos + size, pos + 8
    return pos


_TRACK = (b"moov", b"trak", b"mdia")


def _header_flips() -> Iterator[tuple[str, bytes]]:
    png = VALID["png"]
    for at in range(8, 33):  # IHDR: length, type, content, CRC
        yield f"png-ihdr-{at}", _flipped(png, at)
    jpeg = VALID["jpeg"]
    segments = 2
    for _ in range(4):  # marker and length bytes of the first segments
        yield f"jpeg-marker-{segments}", _flipped(jpeg, segments + 1)
        yield f"jpeg-length-{segments}", _flipped(jpeg, segments + 2)
        segments += 2 + struct.unpack(">H", jpeg[segments + 2 : segments + 4])[0]
    gif = VALID["gif-animated"]
    frame = _gif_first_frame(gif)
    table = (3 << ((gif[frame + 9] & 7) + 1)) if gif[frame + 9] & 0x80 else 0
    yield "gif-introducer", _flipped(gif, frame)
    yield "gif-code-size", _flipped(gif, frame + 10 + table)
    webp = VALID["webp-animated"]
    for at in (4, 5, 12, 16):  # RIFF size, VP8X fourcc and size
        yield f"webp-{at}", _flipped(webp, at)
    anmf = webp.index(b"ANMF")
    yield "webp-frame-width", _flipped(webp, anmf + 8 + 6)  # wider than the canvas
    yield "webp-frame-fourcc", _flipped(webp, anmf + 8 + 16)
    lossy = VALID["webp"]
    yield "webp-vp8-start-code", _flipped(lossy, lossy.index(b"\x9d\x01\x2a"))
    mp4 = VALID["mp4"]
    for path in ((b"ftyp",), (b"moov",), (b"mdat",), _TRACK, (*_TRACK, b"hdlr")):
        at = _box_offsets(mp4, path)
        yield f"mp4-size-{path[-1]!r}", _flipped(mp4, at + 1)
        yield f"mp4-type-{path[-1]!r}", _flipped(mp4, at + 5, 0x80)
    hdlr = _box_offsets(mp4, (*_TRACK, b"hdlr"))
    yield "mp4-handler", _flipped(mp4, hdlr + 16)
    webm = VALID["webm"]
    segment = webm.index(b"\x18\x53\x80\x67")
    yield "webm-segment-size", _flipped(webm, segment + 11)
    yield "webm-segment-id", _flipped(webm, segment)
    yield "webm-tracktype", _flipped(webm, webm.index(b"\x83\x81\x01") + 2)


@pytest.mark.parametrize(("name", "data"), list(_header_flips()), ids=lambda v: str(v)[:24])
def test_bytes_flipped_in_headers_are_refused(name: str, data: bytes) -> None:
    """A flipped byte in a header field (size, type, marker, CRC, handler) is refused."""
    with pytest.raises((CorruptMediaError, UnsupportedMediaError)):
        _check(data)


@pytest.mark.parametrize("name", sorted(set(VALID) - {"pdf"}))
def test_junk_prepended_is_refused(name: str) -> None:
    """Bytes before a file's signature make it unsupported (no format allows them but PDF)."""
    with pytest.raises(UnsupportedMediaError):
        _check(b"junk" + VALID[name])


def test_a_few_junk_bytes_before_a_pdf_are_allowed_but_not_markup() -> None:
    """A PDF may follow a BOM or blank lines; after HTML or script it is a web page."""
    _assert_passes(b"\r\n\xef\xbb\xbf" + VALID["pdf"])
    for prefix in (b"hello\n<html><script>var x = 1;</script>", b"<!-- -->"):
        with pytest.raises(UnsupportedMediaError):
            _check(prefix + VALID["pdf"])


# --- extra bytes after a complete file --------------------------------------------------------
@pytest.mark.parametrize(
    "data",
    [
        VALID["jpeg"] + t.noisy_jpeg(seed=9),  # a motion photo's video after the EOI
        VALID["jpeg"] + b"\x00garbage",
        VALID["png"] + b"trailing bytes",
        VALID["gif"] + b"\x00\x00",
        VALID["mp4"] + bytes(3),
        VALID["mp4"] + bytes(5000),
        VALID["webm"] + bytes(10),
    ],
    ids=["jpeg-motion", "jpeg-junk", "png-after-iend", "gif-after-trailer", "mp4-pad-3",
         "mp4-pad-5000", "webm-pad"],
)  # fmt: skip
def test_extra_bytes_after_a_complete_file_are_allowed(data: bytes) -> None:
    """Data after JPEG's EOI, PNG's IEND, GIF's trailer; zero padding after MP4/WebM."""
    _assert_passes(data)


@pytest.mark.parametrize(
    "data",
    [VALID["mp4"] + b"\x00\x00\x00\x00\x00junk", VALID["webp"] + b"\x00", VALID["mp4"] + b"abc"],
    ids=["mp4-junk", "webp-extra", "mp4-short-junk"],
)
def test_junk_after_a_complete_container_is_refused(data: bytes) -> None:
    """Non-zero bytes after the last MP4 box; anything after a WebP's RIFF end."""
    with pytest.raises(CorruptMediaError):
        _check(data)


# --- JPEG -------------------------------------------------------------------------------------
def test_half_a_jpeg_is_refused() -> None:
    """The first half of a JPEG is refused, with the reason."""
    data = VALID["jpeg-noisy"]
    with pytest.raises(CorruptMediaError, match=r"before its EOI marker: truncated\?"):
        _check(data[: len(data) // 2])


def test_jpeg_signature_then_zeros_could_not_be_parsed() -> None:
    """A JPEG signature followed by nothing readable is refused as unparseable."""
    with pytest.raises(CorruptMediaError, match="could not be parsed"):
        _check(b"\xff\xd8\xff" + bytes(200))


# --- PNG / APNG -------------------------------------------------------------------------------
def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        out.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def _png_join(chunks: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(
        struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d)) for k, d in chunks
    )
    return b"\x89PNG\r\n\x1a\n" + body


def _apng_edit(edit: str) -> bytes:
    """The test APNG with one frame-control error (CRCs recomputed, so only the error shows)."""
    chunks = _png_chunks(VALID["apng"])
    kinds = [k for k, _ in chunks]
    actl, fctl = kinds.index(b"acTL"), kinds.index(b"fcTL")
    if edit == "frames-low":
        chunks[actl] = (b"acTL", struct.pack(">II", 2, 0))
    elif edit == "frames-high":
        chunks[actl] = (b"acTL", struct.pack(">II", 4, 0))
    elif edit == "frames-zero":
        chunks[actl] = (b"acTL", struct.pack(">II", 0, 0))
    elif edit == "two-actl":
        chunks.insert(actl, chunks[actl])
    elif edit == "sequence-gap":
        last = len(kinds) - 1 - kinds[::-1].index(b"fdAT")
        chunks[last] = (b"fdAT", struct.pack(">I", 99) + chunks[last][1][4:])
    elif edit == "frame-outside":
        second = kinds.index(b"fcTL", fctl + 1)
        data = bytearray(chunks[second][1])
        data[12:16] = struct.pack(">I", 20)  # x offset: 20 + 24 > 24
        chunks[second] = (b"fcTL", bytes(data))
    elif edit == "fctl-without-data":
        last = len(kinds) - 1 - kinds[::-1].index(b"fdAT")
        del chunks[last]
    return _png_join(chunks)


@pytest.mark.parametrize(
    "edit",
    ["frames-low", "frames-high", "frames-zero", "two-actl", "sequence-gap", "frame-outside",
     "fctl-without-data"],
)  # fmt: skip
def test_apng_frame_errors_are_refused(edit: str) -> None:
    """Frame control must be consistent: counts, sequence numbers, canvas, frame data."""
    with pytest.raises(CorruptMediaError, match="APNG"):
        _check(_apng_edit(edit))


def test_apng_edit_helper_keeps_a_valid_file_valid() -> None:
    """Re-joining the APNG's chunks unchanged gives a file that passes (the helper is sound)."""
    rejoined = _png_join(_png_chunks(VALID["apng"]))
    assert rejoined == VALID["apng"]
    _assert_passes(rejoined)


def test_png_with_a_bad_crc_is_refused() -> None:
    """A chunk whose content does not match its CRC is refused."""
    chunks = _png_chunks(VALID["png"])
    data = bytearray(_png_join(chunks))
    at = data.index(b"IDAT") + 6
    data[at] ^= 0xFF
    with pytest.raises(CorruptMediaError, match=r"IDAT chunk at byte \d+ fails its CRC check"):
        _check(bytes(data))


def test_png_broken_data_stream_is_refused() -> None:
    """Image data that does not start a zlib stream (CRCs right) is refused at ingest;
    damage deeper in the stream is found by the deep check's decode."""
    chunks = _png_chunks(VALID["png-noisy"])
    idat = next(i for i, (k, _) in enumerate(chunks) if k == b"IDAT")
    broken = bytearray(chunks[idat][1])
    broken[0] = 0x79  # compression method 9
    chunks[idat] = (b"IDAT", bytes(broken))
    with pytest.raises(CorruptMediaError, match="broken data stream"):
        _check(_png_join(chunks))
    chunks = _png_chunks(VALID["png-noisy"])
    deep_broken = bytearray(chunks[idat][1])
    deep_broken[len(deep_broken) // 2 :] = bytes(len(deep_broken) - len(deep_broken) // 2)
    chunks[idat] = (b"IDAT", bytes(deep_broken))
    data = _png_join(chunks)
    _assert_passes(data)  # structure is intact: the cheap check cannot see it
    with pytest.raises(CorruptMediaError, match="could not be decoded"):
        deep_check(io.BytesIO(data), PNG, max_pixels=CAP)


def test_png_without_image_data_is_refused() -> None:
    """IHDR then IEND, no IDAT: refused."""
    chunks = [c for c in _png_chunks(VALID["png"]) if c[0] != b"IDAT"]
    with pytest.raises(CorruptMediaError, match="no image data"):
        _check(_png_join(chunks))


# --- GIF --------------------------------------------------------------------------------------
def test_gif_whose_second_frame_is_a_bomb_is_refused() -> None:
    """Every frame's size counts, not only the first one's."""
    bomb = t.gif_with_frame(65535, 65535, base=VALID["gif-animated"])
    with pytest.raises(ImageTooLargeError, match="65535x65535"):
        _check(bomb)


def test_gif_frame_within_a_raised_cap_is_accepted() -> None:
    """The cap is the store's: a large frame passes when the cap allows it."""
    _assert_passes(t.gif_with_frame(2000, 2000), max_pixels=4_000_000)
    with pytest.raises(ImageTooLargeError):
        _check(t.gif_with_frame(2000, 2000), max_pixels=3_999_999)


def test_gif_without_an_image_is_refused() -> None:
    """A GIF header and trailer with no frame in between is refused."""
    gif = VALID["gif"]
    with pytest.raises(CorruptMediaError, match="no image"):
        _check(gif[: gif.index(b"\x2c")] + b"\x3b")


# --- WebP -------------------------------------------------------------------------------------
def test_26_byte_webp_declaring_a_large_image_is_refused() -> None:
    """A WebP header declaring 11330x446 with no data behind it is refused."""
    vp8 = b"\x10\x02\x00\x9d\x01\x2a" + struct.pack("<HH", 11330, 446)
    for riff, chunk in ((18, 18), (1000, 1000), (18, 10)):
        data = b"RIFF" + struct.pack("<I", riff) + b"WEBPVP8 " + struct.pack("<I", chunk) + vp8
        data = data[:26]
        assert len(data) == 26
        with pytest.raises(CorruptMediaError):
            _check(data)


def test_webp_dimensions_must_agree() -> None:
    """A VP8X canvas that disagrees with its still image's bitstream is refused."""
    lossless = VALID["webp-lossless"]
    vp8l = lossless[12:]
    canvas = (
        struct.pack("<I", 0)[:1]
        + bytes(3)
        + (95).to_bytes(3, "little")
        + (63).to_bytes(3, "little")
    )
    vp8x = b"VP8X" + struct.pack("<I", 10) + canvas
    good = b"RIFF" + struct.pack("<I", 4 + len(vp8x) + len(vp8l)) + b"WEBP" + vp8x + vp8l
    _assert_passes(good)
    bad = bytearray(good)
    bad[24:27] = (94).to_bytes(3, "little")  # canvas height 95 instead of 96... width
    with pytest.raises(CorruptMediaError, match="disagrees"):
        _check(bytes(bad))


# --- MP4 / MOV --------------------------------------------------------------------------------
def test_ftyp_only_mp4_is_refused() -> None:
    """A 12-byte "MP4" that is only an ftyp box is refused."""
    data = struct.pack(">I", 12) + b"ftypisom"
    assert sniff(data) == MP4
    with pytest.raises(CorruptMediaError, match="no moov"):
        _check(data)
    with pytest.raises(CorruptMediaError, match="no moov"):
        _check(t.ftyp_box(b"isom", (b"isom",)) + t.box(b"free", bytes(10)))


def test_mp4_without_streams_is_refused() -> None:
    """An MP4 whose moov has no track is refused as corrupt."""
    with pytest.raises(CorruptMediaError, match="no tracks"):
        _check(t.mp4_bytes(handlers=()))


@pytest.mark.parametrize("major", [b"isom", b"mp42", b"M4A "])
def test_audio_only_mp4_is_unsupported(major: bytes) -> None:
    """An MP4 with only a sound track is audio: refused like M4A."""
    with pytest.raises(UnsupportedMediaError):
        _check(t.mp4_bytes(major=major, handlers=(b"soun",)))


def test_mp4_cut_between_moov_and_mdat_is_refused() -> None:
    """Cut exactly at a box boundary, the sample data the index points to is missing."""
    data = VALID["mp4"]
    with pytest.raises(CorruptMediaError, match="past the end of the file"):
        _check(data[: _box_offsets(data, (b"mdat",))])


def test_mp4_layouts_real_files_use() -> None:
    """moov after mdat, a last box of size 0 (to the end), 64-bit box sizes all pass."""
    data = VALID["mp4"]
    ftyp_end, mdat = _box_offsets(data, (b"moov",)), _box_offsets(data, (b"mdat",))
    ftyp, moov, mdat_box = data[:ftyp_end], data[ftyp_end:mdat], data[mdat:]
    _assert_passes(ftyp + mdat_box + moov)
    _assert_passes(ftyp + moov + struct.pack(">I", 0) + mdat_box[4:])
    large = struct.pack(">I", 1) + b"mdat" + struct.pack(">Q", len(mdat_box) + 8) + mdat_box[8:]
    _assert_passes(ftyp + moov + t.box(b"free") + large)


def test_box_overrunning_its_parent_is_refused() -> None:
    """A track box larger than the moov around it is refused."""
    data = bytearray(VALID["mp4"])
    trak = _box_offsets(bytes(data), (b"moov", b"trak"))
    (size,) = struct.unpack(">I", data[trak : trak + 4])
    data[trak : trak + 4] = struct.pack(">I", size + 64)
    with pytest.raises(CorruptMediaError, match="overruns its parent"):
        _check(bytes(data))


# --- WebM -------------------------------------------------------------------------------------
def test_audio_only_webm_is_unsupported() -> None:
    """A WebM whose only track is audio is refused as unsupported."""
    with pytest.raises(UnsupportedMediaError, match="no video track"):
        _check(t.ebml_bytes(tracks=(2,)))


def test_webm_without_tracks_is_refused() -> None:
    """An EBML header alone, or a Segment with no Tracks, is refused."""
    header_only = VALID["webm"][: VALID["webm"].index(b"\x18\x53\x80\x67")]
    with pytest.raises(CorruptMediaError, match="no Segment"):
        _check(header_only)
    with pytest.raises(CorruptMediaError, match="no tracks"):
        _check(t.ebml_bytes(tracks=()))


def test_webm_deep_check_walks_master_elements() -> None:
    """A child overrunning its master element (Info) is found by the deep check."""
    data = bytearray(VALID["webm"])
    info = data.index(b"\x15\x49\xa9\x66")
    assert data[info + 5 : info + 8] == b"\x2a\xd7\xb1"
    data[info + 8] += 1  # TimecodeScale's size: one byte more than Info holds
    _assert_passes(bytes(data))
    with pytest.raises(CorruptMediaError, match="overruns its parent"):
        _check(bytes(data), deep=True)


# --- PDF --------------------------------------------------------------------------------------
def test_pdf_with_an_incremental_update_after_its_last_eof() -> None:
    """%%EOF not in the last 1 KiB is allowed before an incremental-update section."""
    pdf = VALID["pdf"]
    update = b"\n5 0 obj\n<< /Big (" + b"x" * 3000 + b") >>\nendobj\nxref\n0 1\ntrailer\n<< >>\n"
    _assert_passes(pdf + update)
    with pytest.raises(CorruptMediaError, match="%%EOF"):
        _check(pdf + b"\n" + b"x" * 3000)


# --- pixel cap and deep check -----------------------------------------------------------------
def test_deep_check_refuses_a_truncated_file_and_checks_frames() -> None:
    """The deep check includes the ingest check, and decodes every frame."""
    data = VALID["gif-animated"]
    with pytest.raises(CorruptMediaError, match="truncated"):
        deep_check(io.BytesIO(data[:-30]), GIF, max_pixels=CAP)
    with pytest.raises(ImageTooLargeError):
        deep_check(io.BytesIO(VALID["png"]), PNG, max_pixels=100)


def test_check_file_reads_a_file_object() -> None:
    """check_file() runs the streaming check over an open file and returns the layout."""
    layout = check_file(io.BytesIO(VALID["apng"]), PNG, max_pixels=CAP)
    assert layout is not None
    assert (layout.width, layout.height, layout.frames) == (24, 16, 3)
    assert check_file(io.BytesIO(VALID["pdf"]), PDF, max_pixels=CAP) is None
    for kind in (JPEG, WEBP, WEBM):
        with pytest.raises(MediaStoreError):
            check_file(io.BytesIO(b""), kind, max_pixels=CAP)
