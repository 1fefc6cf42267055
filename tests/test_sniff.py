"""Type detection: the content's magic bytes decide."""

from __future__ import annotations

import pytest

from mediastore import UnsupportedMediaError
from mediastore import testing as t
from mediastore.sniff import GIF, JPEG, MOV, MP4, PDF, PNG, WEBM, WEBP, kind_for_hint, sniff


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (t.image_bytes("JPEG"), JPEG),
        (t.image_bytes("PNG"), PNG),
        (t.image_bytes("GIF"), GIF),
        (t.image_bytes("WEBP"), WEBP),
        (t.mp4_bytes(), MP4),
        (t.mp4_bytes(major=b"iso5"), MP4),
        (t.mp4_bytes(major=b"avc1"), MP4),
        (t.mp4_bytes(major=b"M4V "), MP4),
        (t.mov_bytes(), MOV),
        (t.ebml_bytes(b"webm"), WEBM),
        (t.pdf_bytes(), PDF),
        (t.pdf_bytes(prefix=b"\n\n\xef\xbb\xbf"), PDF),
    ],
)
def test_supported_kinds(data: bytes, kind: object) -> None:
    """Each supported format is recognised from its bytes."""
    assert sniff(data[:4096]) == kind


def test_quicktime_without_ftyp() -> None:
    """Old QuickTime files start with a moov/wide/mdat atom and no ftyp box."""
    wide = b"\x00\x00\x00\x08wide" + b"\x00\x00\x10\x00mdat" + bytes(100)
    assert sniff(wide) == MOV
    assert sniff(b"\x00\x00\x00\x20moov" + bytes(40)) == MOV


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty"),
        (b"<!DOCTYPE html><html><body>404</body></html>", "HTML"),
        (b"  <html>", "HTML"),
        (b'{"error": "not found"}', "JSON"),
        (b"PK\x03\x04" + bytes(40), "ZIP"),
        (t.ftyp_box(b"avif", (b"avif", b"mif1", b"miaf")) + bytes(40), "avif"),
        (t.ftyp_box(b"heic", (b"mif1", b"heic")) + bytes(40), "heic"),
        (t.ftyp_box(b"M4A ", (b"M4A ", b"mp42", b"isom")) + bytes(40), "M4A"),
        (t.ftyp_box(b"3gp5", (b"3gp5", b"isom")) + bytes(40), "3gp"),
        (t.ftyp_box(b"zzzz", (b"zzzz",)) + bytes(40), "zzzz"),
        (t.ebml_bytes(b"matroska"), "matroska"),
        (b"\x1a\x45\xdf\xa3\xff\xff", "EBML"),
        (b"hello world", "68656c6c6f"),
        (b"<?xml version='1.0'?><svg/>", "SVG"),
    ],
)
def test_unsupported_content_is_refused(data: bytes, why: str) -> None:
    """HTML, JSON, ZIP, still-image and audio ISO files, Matroska and junk are refused."""
    with pytest.raises(UnsupportedMediaError, match=why):
        sniff(data)


@pytest.mark.parametrize(
    "page",
    [
        b"<!doctype html><p>Download %PDF-1.4 here</p>",
        b'  {"file": "%PDF-1.7"}',
        b"<?xml version='1.0'?><x>%PDF-</x>",
    ],
)
def test_text_mentioning_the_pdf_marker_is_not_a_pdf(page: bytes) -> None:
    """An HTML, JSON or XML page that mentions ``%PDF-`` near its top is refused."""
    with pytest.raises(UnsupportedMediaError):
        sniff(page)


def test_pdf_marker_must_be_near_the_start() -> None:
    """``%PDF-`` is only believed within the first 1024 bytes."""
    with pytest.raises(UnsupportedMediaError):
        sniff(b"x" * 2000 + b"%PDF-1.4")


def test_hints_map_to_kinds_but_are_only_hints() -> None:
    """MIME types and extensions map to kinds (with parameters and aliases)."""
    assert kind_for_hint(mime_type="image/jpeg; charset=binary") == JPEG
    assert kind_for_hint(extension=".JPEG") == JPEG
    assert kind_for_hint(extension="qt") == MOV
    assert kind_for_hint(mime_type="text/html") is None
    assert kind_for_hint() is None
