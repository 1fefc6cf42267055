"""Type detection from magic bytes: the content decides, never a URL, header or file name.

Supported: JPEG, PNG, GIF, WebP (images); MP4, WebM, QuickTime/MOV (videos); PDF (documents).
The ISO-BMFF ``ftyp`` brands and the EBML DocType are parsed here rather than trusted to a
generic sniffer, because those are exactly the cases generic sniffers get wrong (AVIF, HEIC and
M4A reported as video/mp4; Matroska reported as WebM; PDFs with leading bytes missed).

ISO-BMFF: the major brand decides. Compatible brands are read only when the major brand is a
generic one (:data:`GENERIC_BRANDS`: ``isom``, ``iso2``-``iso9``, ``mp41``, ``mp42``), and
then only to refuse still images (AVIF, HEIC). Refused by their major brand: still images
(AVIF, HEIC/HEIF, Canon CR3 ``crx ``), audio (M4A, M4B, M4P, F4A, F4B), protected F4P, 3GPP
and any unknown brand. Adobe F4V (``F4V ``) is accepted as video/mp4. Brands padded with NULs
are read as padded with spaces. Whether a file sniffed as MP4 or MOV really holds a video track
is checked later, from its boxes (:mod:`mediastore.formats.structure`).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from ..errors import UnsupportedMediaError

#: Bytes of a stream's start that :func:`sniff` looks at.
HEAD_SIZE = 4096
_PDF_WINDOW = 1024


@dataclass(frozen=True, slots=True)
class MediaKind:
    """What a stream is: ``media_type`` (image/video/document), MIME type and file extension."""

    media_type: str
    mime_type: str
    extension: str

    @property
    def directory(self) -> str:
        """Name of the typed directory (``images``, ``videos``, ``documents``)."""
        return self.media_type + "s"


JPEG = MediaKind("image", "image/jpeg", "jpg")
PNG = MediaKind("image", "image/png", "png")
GIF = MediaKind("image", "image/gif", "gif")
WEBP = MediaKind("image", "image/webp", "webp")
MP4 = MediaKind("video", "video/mp4", "mp4")
WEBM = MediaKind("video", "video/webm", "webm")
MOV = MediaKind("video", "video/quicktime", "mov")
PDF = MediaKind("document", "application/pdf", "pdf")

KINDS: tuple[MediaKind, ...] = (JPEG, PNG, GIF, WEBP, MP4, WEBM, MOV, PDF)
BY_EXTENSION: dict[str, MediaKind] = {k.extension: k for k in KINDS}
BY_MIME: dict[str, MediaKind] = {k.mime_type: k for k in KINDS}

# ISO base media file format brands. The major brand says what a file is; compatible brands
# only say which readers can parse it (a Canon CR3 raw photo lists ``isom``), so they are read
# only when the major brand is one of the generic ones below. Brands are four bytes; a brand
# padded with NULs instead of spaces (``M4A\0``) is read as the space-padded one.
_MOV_BRANDS = {b"qt  "}
#: Major brands that name an MP4 video. Adobe F4V (``F4V ``, an H.264 MP4 written by Flash
#: tools) is played by every MP4 player and stored as video/mp4; its protected variant F4P
#: and the audio-only F4A/F4B are refused.
_MP4_BRANDS = {
    b"avc1", b"av01", b"hvc1", b"hev1", b"dash", b"msnv", b"MSNV", b"ndas", b"M4V ", b"M4VH",
    b"M4VP", b"mmp4", b"F4V ", b"cmfc", b"cmf2", b"XAVC", b"mp71",
}  # fmt: skip
#: Generic major brands (ISO base media, MPEG-4 version 1 and 2): the compatible brands then
#: decide between a still image (refused) and an MP4. Whether it holds video is then checked
#: from its tracks (an audio-only file is refused at ingest, see ``structure``).
GENERIC_BRANDS = frozenset(
    {b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"iso7", b"iso8", b"iso9",
     b"mp41", b"mp42"}
)  # fmt: skip
_STILL_IMAGE_BRANDS = {
    b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1",
    b"mif2", b"jpeg", b"avci", b"crx ",
}  # fmt: skip
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
_PROTECTED_BRANDS = {b"F4P "}
# Old QuickTime files have no ftyp box and start with one of these atoms.
_QT_FIRST_ATOMS = {b"moov", b"mdat", b"wide", b"pnot", b"free", b"skip"}


def sniff(head: bytes) -> MediaKind:
    """Detect the kind of a stream from its first bytes (``HEAD_SIZE`` is plenty).

    Raises:
        UnsupportedMediaError: empty, or not one of the supported kinds.
    """
    if not head:
        raise UnsupportedMediaError("empty content")
    kind = _sniff_known(head)
    if kind is None:
        raise UnsupportedMediaError(f"unsupported content ({_describe(head)})")
    return kind


def _sniff_known(head: bytes) -> MediaKind | None:
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[4:8] == b"ftyp":
        return _sniff_ftyp(head)
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return WEBM if _ebml_doctype(head) == b"webm" else None
    if _is_pdf(head):
        return PDF
    if _looks_like_bare_quicktime(head):
        return MOV
    return None


#: Before ``%PDF-``, these mean the bytes are a text format quoting a PDF, not a PDF: markup
#: (HTML, XML, script tags), JSON, an HTTP response's status line.
_NOT_PDF_PREFIX = re.compile(rb"<[!?/a-zA-Z]|^\s*[{\[]|^\s*HTTP/\d", re.MULTILINE)


def _is_pdf(head: bytes) -> bool:
    """``%PDF-`` near the start, after nothing that marks a text format.

    Real PDFs may carry a few junk bytes first (a BOM, blank lines, a mail header); an HTML,
    XML or JSON page, or a saved HTTP response, that mentions ``%PDF-`` near its top is not
    a PDF.
    """
    at = head.find(b"%PDF-", 0, _PDF_WINDOW)
    if at < 0:
        return False
    prefix = head[:at].lstrip(b" \t\r\n\x00\xef\xbb\xbf")
    return _NOT_PDF_PREFIX.search(prefix) is None


def _brand(raw: bytes) -> bytes:
    """A brand with NUL padding read as space padding (``M4A\\0`` is ``M4A ``)."""
    return raw.rstrip(b"\x00").ljust(4, b" ") if len(raw) == 4 else raw


def _sniff_ftyp(head: bytes) -> MediaKind | None:
    major = _brand(head[8:12])
    if major in _MOV_BRANDS:
        return MOV
    if major in _MP4_BRANDS:
        return MP4
    if major not in GENERIC_BRANDS:  # stills, audio, 3GP, raw photos, unknown brands
        return None
    (box_size,) = struct.unpack(">I", head[:4])
    if box_size < 16 or box_size > len(head):
        box_size = min(len(head), 256)  # truncated head: read what is there
    compatible = {_brand(head[i : i + 4]) for i in range(16, box_size - 3, 4)}
    if compatible & _STILL_IMAGE_BRANDS:
        return None
    return MP4


def _ftyp_kind_name(major: bytes) -> str:
    if major in _STILL_IMAGE_BRANDS or major in GENERIC_BRANDS:  # generic: refused for a still
        return "a still image"
    if major in _AUDIO_BRANDS:
        return "audio"
    if major in _PROTECTED_BRANDS:
        return "DRM-protected video"
    if major.startswith((b"3gp", b"3g2")):
        return "3GPP"
    return "not a known video brand"


def _looks_like_bare_quicktime(head: bytes) -> bool:
    """A QuickTime file without ``ftyp``: it starts with a QuickTime atom of plausible size.

    ``moov``, ``mdat`` and ``wide`` are distinctive enough alone; the generic ``free``,
    ``skip`` and ``pnot`` must be followed by another known atom.
    """
    if len(head) < 16 or head[4:8] not in _QT_FIRST_ATOMS:
        return False
    (size,) = struct.unpack(">I", head[:4])
    if size not in (0, 1) and size < 8:
        return False
    if head[4:8] in (b"moov", b"mdat", b"wide"):
        return True
    if size < 8 or size + 8 > len(head):
        return False
    return head[size + 4 : size + 8] in _QT_FIRST_ATOMS | {b"ftyp", b"uuid"}


def _read_vint(data: bytes, pos: int, *, keep_marker: bool) -> tuple[int, int]:
    """Read an EBML variable-length integer at ``pos``; return (value, new position)."""
    if pos >= len(data):
        raise ValueError("truncated")
    first = data[pos]
    length = 1
    mask = 0x80
    while length <= 8 and not first & mask:
        mask >>= 1
        length += 1
    if length > 8 or pos + length > len(data):
        raise ValueError("bad vint")
    value = first if keep_marker else first & (mask - 1)
    for b in data[pos + 1 : pos + length]:
        value = (value << 8) | b
    return value, pos + length


def _ebml_doctype(head: bytes) -> bytes | None:
    """The DocType of an EBML header (``webm``, ``matroska``...), or None if unreadable."""
    try:
        _, pos = _read_vint(head, 0, keep_marker=True)  # EBML element id
        size, pos = _read_vint(head, pos, keep_marker=False)
        end = min(len(head), pos + size)
        while pos < end:
            elem_id, pos = _read_vint(head, pos, keep_marker=True)
            elem_size, pos = _read_vint(head, pos, keep_marker=False)
            if elem_id == 0x4282:  # DocType
                return head[pos : pos + elem_size].rstrip(b"\x00")
            pos += elem_size
    except ValueError:
        return None
    return None


def _describe(head: bytes) -> str:
    start = head[:64].lstrip().lower()
    if start.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "an HTML page"
    if start.startswith((b"<?xml", b"<svg")):
        return "XML/SVG"
    if start.startswith((b"{", b"[")):
        return "looks like JSON"
    if re.match(rb"http/\d", start):
        return "an HTTP response saved with its headers"
    if head.find(b"%PDF-", 0, _PDF_WINDOW) >= 0:
        return "text or markup before a %PDF- marker: not a PDF"
    if head.startswith(b"PK\x03\x04"):
        return "a ZIP archive"
    if head[4:8] == b"ftyp":
        major = _brand(head[8:12])
        return f"ISO-BMFF brand {major.decode('latin-1')!r}: {_ftyp_kind_name(major)}"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        doctype = _ebml_doctype(head)
        return f"EBML doctype {doctype.decode('latin-1') if doctype else '?'!r}"
    # what kind of thing it is, never its bytes: they may be a secret (add /etc/shadow)
    if head.startswith(b"\x7fELF"):
        return "an ELF executable"
    if head.startswith(b"\x1f\x8b"):
        return "gzip data"
    if head.startswith(b"#!"):
        return "a script"
    try:
        head[:512].decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < min(len(head), 512) - 3:  # not merely a character cut at the end
            return "unrecognised binary data"
    return "text" if head.strip() and b"\x00" not in head[:512] else "unrecognised binary data"


def kind_for_hint(mime_type: str | None = None, extension: str | None = None) -> MediaKind | None:
    """The kind a MIME type or extension suggests (a hint only; content decides)."""
    if mime_type:
        kind = BY_MIME.get(mime_type.split(";")[0].strip().lower())
        if kind:
            return kind
    if extension:
        ext = extension.lower().lstrip(".")
        return BY_EXTENSION.get({"jpeg": "jpg", "qt": "mov"}.get(ext, ext))
    return None
