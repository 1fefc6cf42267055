"""Type detection: the content's magic bytes decide."""

from __future__ import annotations

import pytest

from mediastore import UnsupportedMediaError
from mediastore import testing as t
from mediastore.formats.detect import (
    GIF,
    JPEG,
    MOV,
    MP4,
    PDF,
    PNG,
    WEBM,
    WEBP,
    kind_for_hint,
    sniff,
)


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
        (t.ftyp_box(b"M4A\x00", (b"3gp5", b"isom")) + bytes(40), "'M4A ': audio"),
        (t.ftyp_box(b"crx ", (b"crx ", b"isom")) + bytes(40), "'crx ': a still image"),
        (t.ftyp_box(b"M4B ", (b"isom",)) + bytes(40), "audio"),
        (t.ftyp_box(b"F4A ", (b"isom",)) + bytes(40), "audio"),
        (t.ftyp_box(b"F4B ", (b"isom",)) + bytes(40), "audio"),
        (t.ftyp_box(b"F4P ", (b"isom",)) + bytes(40), "protected"),
        (t.ftyp_box(b"isom", (b"isom", b"avif")) + bytes(40), "'isom': a still image"),
        (t.ftyp_box(b"mif1", (b"heic", b"isom")) + bytes(40), "still image"),
        (t.ftyp_box(b"3gp5", (b"3gp5", b"isom")) + bytes(40), "3gp"),
        (t.ftyp_box(b"zzzz", (b"zzzz",)) + bytes(40), "zzzz"),
        (t.ebml_bytes(b"matroska"), "matroska"),
        (b"\x1a\x45\xdf\xa3\xff\xff", "EBML"),
        (b"hello world", r"\(text\)"),  # its kind, never its bytes
        (b"\x7fELF\x02\x01\x01" + bytes(40), "ELF executable"),
        (b"\x00\x01\x02\xfe\xff" * 20, "unrecognised binary data"),
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


@pytest.mark.parametrize(
    ("major", "compatible", "kind"),
    [
        (b"F4V ", (b"isom", b"mp42"), MP4),  # Adobe F4V is an H.264 MP4: stored as video/mp4
        (b"mp42", (b"isom", b"mp42"), MP4),
        (b"iso6", (b"iso6", b"dash"), MP4),
        (b"qt\x00\x00", (), MOV),  # NUL-padded brand read as space-padded
        (b"avc1", (b"M4A ", b"avif"), MP4),  # a specific major brand decides alone
    ],
)
def test_the_major_brand_decides(major: bytes, compatible: tuple[bytes, ...], kind: object) -> None:
    """The major brand decides; compatible brands only refine a generic one."""
    assert sniff(t.ftyp_box(major, compatible) + bytes(40)) == kind


@pytest.mark.parametrize("compatible", [(b"isom",), (b"isom", b"mp42", b"avc1"), (b"qt  ",)])
def test_compatible_brands_do_not_make_an_unknown_major_brand_a_video(
    compatible: tuple[bytes, ...],
) -> None:
    """A file whose major brand is unknown (a CR3, a vendor's format) is not an MP4 because it
    lists ``isom`` as compatible."""
    with pytest.raises(UnsupportedMediaError, match="not a known video brand"):
        sniff(t.ftyp_box(b"abcd", compatible) + bytes(40))


@pytest.mark.parametrize(
    ("page", "why"),
    [
        (b"hello\n<html><script>var a = 1;</script>%PDF-1.4\n", "not a PDF"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html><body>%PDF-1.4",
            "HTTP response",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4", "HTTP"),
        (b"junk <p>text</p> %PDF-1.7", "not a PDF"),
    ],
)
def test_pdf_marker_after_markup_or_http_headers_is_not_a_pdf(page: bytes, why: str) -> None:
    """``%PDF-`` after HTML, script or an HTTP header block is a saved page, not a PDF."""
    with pytest.raises(UnsupportedMediaError, match=why):
        sniff(page)


@pytest.mark.parametrize("prefix", [b"", b"\r\n", b"\xef\xbb\xbf", b"\x00\x00junk bytes 1 < 2 "])
def test_pdf_after_a_few_junk_bytes_is_a_pdf(prefix: bytes) -> None:
    """A BOM, blank lines or a few junk bytes before the header keep a PDF a PDF."""
    assert sniff(prefix + t.pdf_bytes()) == PDF
