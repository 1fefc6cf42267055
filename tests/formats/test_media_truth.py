"""What add_bytes / add_file store and refuse, through the public API: valid media of every
type (with harmless extra bytes too), cut or damaged files, and look-alikes that are not
supported media (raw photos, audio, AVIF/HEIC, web pages wrapping a PDF).

Each case is made here as a real file; a refusal must be a clear CorruptMediaError or
UnsupportedMediaError and leave nothing stored.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from mediastore import (
    CorruptMediaError,
    ImageTooLargeError,
    MediaStore,
    UnsupportedMediaError,
)
from mediastore import testing as t


def _cut(data: bytes, fraction: float) -> bytes:
    return data[: int(len(data) * fraction)]


def _without_middle(data: bytes) -> bytes:
    third = len(data) // 3
    return data[:third] + data[third + 37 :]


def _webp_26_bytes() -> bytes:
    vp8 = b"\x10\x02\x00\x9d\x01\x2a" + struct.pack("<HH", 11330, 446)
    return b"RIFF" + struct.pack("<I", 18) + b"WEBPVP8 " + struct.pack("<I", 1000) + vp8


VALID = {
    "jpeg": t.noisy_jpeg(seed=1),
    "png": t.image_bytes("PNG"),
    "apng": t.animated_bytes("PNG", frames=3),
    "gif": t.animated_bytes("GIF", frames=3),
    "webp": t.image_bytes("WEBP"),
    "webp-animated": t.animated_bytes("WEBP", frames=2),
    "mp4": t.mp4_bytes(50_000),
    "f4v": t.mp4_bytes(1000, major=b"F4V "),
    "mov": t.mov_bytes(50_000),
    "webm": t.webm_bytes(50_000),
    "webm-live": t.webm_bytes(50_000, live=True),
    "pdf": t.pdf_bytes(),
    "jpeg-motion-photo": t.noisy_jpeg(seed=2) + t.mp4_bytes(2000),
    "png-after-iend": t.image_bytes("PNG") + b"trailing",
    "mp4-zero-padding": t.mp4_bytes(1000) + bytes(100),
}

CORRUPT = {
    "truncated JPEG": _cut(t.noisy_jpeg(seed=3), 0.9),
    "half a JPEG": _cut(t.noisy_jpeg(seed=3), 0.5),
    "truncated PNG": _cut(VALID["png"], 0.8),
    "PNG without IEND": VALID["png"][:-12],
    "APNG cut in a frame": _cut(VALID["apng"], 0.7),
    "GIF cut before trailer": VALID["gif"][:-1],
    "GIF with a piece cut out": _without_middle(VALID["gif"]),
    "26-byte WebP of 11330x446": _webp_26_bytes(),
    "WebP with a piece cut out": _without_middle(VALID["webp"]),
    "12-byte ftyp-only MP4": struct.pack(">I", 12) + b"ftypisom",
    "MP4 without streams": t.mp4_bytes(handlers=()),
    "truncated MP4": _cut(VALID["mp4"], 0.6),
    "MP4 with a piece cut out": _without_middle(VALID["mp4"]),
    "truncated MOV": _cut(VALID["mov"], 0.6),
    "truncated WebM": _cut(VALID["webm"], 0.6),
    "WebM with a piece cut out": _without_middle(VALID["webm"]),
    "PDF without %%EOF": _cut(VALID["pdf"], 0.7),
}

UNSUPPORTED = {
    "CR3 raw photo": t.ftyp_box(b"crx ", (b"crx ", b"isom")) + t.mp4_bytes(500)[24:],
    "M4A with a NUL-padded brand": t.ftyp_box(b"M4A\x00", (b"M4A ", b"3gp5", b"isom")) + bytes(64),
    "audio-only MP4": t.mp4_bytes(2000, handlers=(b"soun",)),
    "audio-only WebM": t.ebml_bytes(tracks=(2,)),
    "AVIF": t.ftyp_box(b"avif", (b"avif", b"mif1", b"miaf")) + bytes(64),
    "HEIC": t.ftyp_box(b"heic", (b"mif1", b"heic")) + bytes(64),
    "HTML then %PDF": b"hello\n<html><script>var a = 1;</script>\n" + VALID["pdf"],
    "HTTP headers, HTML, %PDF": b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n"
    b"<html><body>" + VALID["pdf"],
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_media_of_every_type_is_stored(store: MediaStore, name: str) -> None:
    """Valid files of every type (and with harmless extra bytes) are stored intact."""
    rec = store.add_bytes(VALID[name])
    assert rec.path.read_bytes() == VALID[name]
    assert store.verify(rec.md5).ok == [rec.md5]


def test_f4v_is_stored_as_mp4(store: MediaStore) -> None:
    """Adobe F4V (brand ``F4V ``) is an MP4 video: stored as video/mp4."""
    rec = store.add_bytes(VALID["f4v"])
    assert (rec.mime_type, rec.extension) == ("video/mp4", "mp4")


@pytest.mark.parametrize("name", sorted(CORRUPT))
def test_broken_media_is_refused_as_corrupt(store: MediaStore, name: str) -> None:
    """Truncated, cut or incomplete files: CorruptMediaError, nothing stored."""
    with pytest.raises(CorruptMediaError) as info:
        store.add_bytes(CORRUPT[name])
    assert str(info.value)
    t.assert_nothing_stored(store)


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_non_video_containers_and_pages_are_unsupported(store: MediaStore, name: str) -> None:
    """Stills, audio and web pages quoting a PDF marker: UnsupportedMediaError, nothing stored."""
    with pytest.raises(UnsupportedMediaError):
        store.add_bytes(UNSUPPORTED[name])
    t.assert_nothing_stored(store)


def test_gif_bomb_in_its_second_frame_is_refused(store: MediaStore) -> None:
    """A GIF whose second frame declares 65535x65535 is refused; the first frame is harmless."""
    with pytest.raises(ImageTooLargeError, match="decompression bomb"):
        store.add_bytes(t.gif_with_frame(65535, 65535, base=VALID["gif"]))
    t.assert_nothing_stored(store)


def test_truncation_reason_names_the_problem(store: MediaStore) -> None:
    """The reason says what is missing, in words a person understands."""
    with pytest.raises(CorruptMediaError, match=r"JPEG ends before its EOI marker: truncated\?"):
        store.add_bytes(CORRUPT["half a JPEG"])


@pytest.mark.parametrize("chunk_size", [1000, 4096, 1 << 20])
def test_add_file_refuses_a_file_cut_by_a_crashed_download(tmp_path: Path, chunk_size: int) -> None:
    """add_file streams the file through the same check: a cut MP4 larger than one chunk is
    refused whatever the chunk size."""
    data = t.mp4_bytes(3 << 20, seed=7)
    src = tmp_path / "cut.mp4"
    src.write_bytes(data[: len(data) - 1000])
    with MediaStore(tmp_path / "s", chunk_size=chunk_size) as store:
        with pytest.raises(CorruptMediaError, match="mdat"):
            store.add_file(src)
        t.assert_nothing_stored(store)
        src.write_bytes(data)
        assert store.add_file(src).size == len(data)


def test_stream_of_a_large_video_built_from_a_header(store: MediaStore) -> None:
    """mp4_header() + payload chunks is a complete MP4, streamed in constant memory."""
    payload = 8 << 20
    chunk = bytes(range(256)) * 4096

    def chunks() -> list[bytes]:
        return [t.mp4_header(payload)] + [chunk] * (payload // len(chunk))

    assert store.add_stream(chunks()).size == len(t.mp4_header(payload)) + payload
