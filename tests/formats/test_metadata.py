"""Metadata read by the structure walk: what the same single pass says about a file's content.

Videos are made by ffmpeg in the test run and held to ffprobe's reading of the same file;
animations and EXIF are written by Pillow and held to Pillow's reading; PDFs are written by
Pillow and pypdf (and one with object and cross-reference streams by hand) and held to
pypdf's page count. ffmpeg and ffprobe are only fixture makers and oracles here.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from media_videos import unavailable
from PIL import Image

from mediastore import CorruptMediaError
from mediastore.formats.detect import sniff
from mediastore.formats.images import read_exif
from mediastore.formats.stream import MediaMetadata
from mediastore.formats.structure import checker_for

pypdf = pytest.importorskip("pypdf")

CAP = 89_478_485


def _metadata(data: bytes, *, chunk: int = 1 << 20, deep: bool = False) -> MediaMetadata | None:
    """The metadata the completeness check of ``data``, fed in ``chunk``-byte pieces, records."""
    check = checker_for(sniff(data[:4096]), max_pixels=CAP, deep=deep)
    for start in range(0, len(data), chunk):
        check.feed(memoryview(data)[start : start + chunk])
    check.finish()
    return check.metadata


# --- videos ------------------------------------------------------------------------------------
FFMPEG, FFPROBE = shutil.which("ffmpeg"), shutil.which("ffprobe")
SOURCE = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=25"]
SECOND = ["-t", "1"]  # 25 frames, and 1 s of audio
AUDIO = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1"]
STAMP = ["-metadata", "creation_time=2020-01-02T03:04:05Z"]

#: name -> (encoders needed, ffmpeg output arguments, file suffix)
VIDEOS: dict[str, tuple[tuple[str, ...], list[str], str]] = {
    "h264-aac": (("libx264",), [*AUDIO, "-c:v", "libx264", "-c:a", "aac", *STAMP], "mp4"),
    "h264-faststart": (("libx264",), ["-c:v", "libx264", "-movflags", "+faststart"], "mp4"),
    "h264-fragmented": (
        ("libx264",),
        [*AUDIO, "-c:v", "libx264", "-c:a", "aac",
         "-movflags", "frag_keyframe+empty_moov"],
        "mp4",
    ),
    "h264-sar": (("libx264",), ["-c:v", "libx264", "-aspect", "16:9"], "mp4"),
    "mpeg4-mp3": (("mpeg4", "libmp3lame"), [*AUDIO, "-c:v", "mpeg4", "-c:a", "libmp3lame"], "mp4"),
    "mov-h264-aac": (("libx264",), [*AUDIO, "-c:v", "libx264", "-c:a", "aac", *STAMP], "mov"),
    "mov-mpeg4": (("mpeg4",), ["-c:v", "mpeg4"], "mov"),
    "hevc": (("libx265",), ["-c:v", "libx265", "-x265-params", "log-level=none", "-tag:v", "hvc1"],
             "mp4"),
    "vp8-vorbis": (("libvpx", "libvorbis"), [*AUDIO, "-c:v", "libvpx", "-c:a", "libvorbis"],
                   "webm"),
    "vp9-opus": (("libvpx-vp9", "libopus"),
                 [*AUDIO, "-c:v", "libvpx-vp9", "-c:a", "libopus", *STAMP], "webm"),
    "vp9-sar": (("libvpx-vp9",), ["-c:v", "libvpx-vp9", "-aspect", "16:9"], "webm"),
}  # fmt: skip
#: Made from another by a stream copy: name -> (source, ffmpeg arguments).
COPIES = {
    "rotated-90": ("h264-faststart", ["-metadata:s:v", "rotate=90"]),
    "rotated-180": ("h264-faststart", ["-metadata:s:v", "rotate=180"]),
    "rotated-270": ("h264-faststart", ["-metadata:s:v", "rotate=270"]),
}
#: Written to a pipe, so the Matroska muxer cannot go back to write Info's Duration.
LIVE = {"vp8-live": ["-c:v", "libvpx"], "vp9-opus-live": [*AUDIO, "-c:v", "libvpx-vp9",
        "-c:a", "libopus", "-shortest"]}  # fmt: skip


def _encoders() -> set[str]:
    if FFMPEG is None:
        return set()
    out = subprocess.run([FFMPEG, "-hide_banner", "-encoders"], capture_output=True, text=True)
    return {line.split()[1] for line in out.stdout.splitlines()[10:] if len(line.split()) > 1}


@pytest.fixture(scope="session")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Makes (once) the named video of VIDEOS, COPIES or LIVE; skips one ffmpeg cannot make."""
    if FFMPEG is None or FFPROBE is None:
        unavailable("ffmpeg and ffprobe are needed to make and read the test videos")
    folder = tmp_path_factory.mktemp("videos")
    encoders = _encoders()
    made: dict[str, Path] = {}

    def make(name: str) -> Path:
        if name in made:
            return made[name]
        run = [FFMPEG, "-v", "error", "-y", *SOURCE]
        if name in COPIES:
            source, args = COPIES[name]
            path = folder / f"{name}.mp4"
            cmd = [FFMPEG, "-v", "error", "-y", "-i", str(make(source)), "-c", "copy", *args]
            subprocess.run([*cmd, str(path)], check=True)
        elif name in LIVE:
            path = folder / f"{name}.webm"
            with path.open("wb") as out:
                # -t would tell the muxer the duration: a frame count does not
                cmd = [*run, *LIVE[name], "-frames:v", "25", "-f", "webm", "-"]
                subprocess.run(cmd, check=True, stdout=out)
        else:
            needs, args, suffix = VIDEOS[name]
            missing = set(needs) - encoders
            if missing:
                unavailable(f"this ffmpeg has no {', '.join(sorted(missing))} encoder")
            path = folder / f"{name}.{suffix}"
            subprocess.run([*run, *args, *SECOND, str(path)], check=True)
        made[name] = path
        return path

    return make


def _ffprobe(path: Path) -> dict[str, Any]:
    assert FFPROBE is not None
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-show_streams", "-show_format", "-count_packets", "-of",
         "json", str(path)],
        capture_output=True, check=True, text=True,
    )  # fmt: skip
    probe: dict[str, Any] = json.loads(out.stdout)
    return probe


def _expected_rotation(stream: dict[str, Any], suffix: str) -> int | None:
    """Clockwise degrees: ffprobe's display matrix rotation is counter-clockwise."""
    if suffix == ".webm":
        return None
    for side in stream.get("side_data_list", []):
        if "rotation" in side:
            return int(-side["rotation"]) % 360
    return 0


@pytest.mark.parametrize("name", [*VIDEOS, *COPIES, *LIVE])
def test_video_metadata_is_ffprobes(name: str, videos: Callable[[str], Path]) -> None:
    """Size, rotation, displayed size, pixel aspect ratio, codecs, audio and frames equal
    ffprobe's; duration is within one frame of it; rate, bit rate and creation time agree."""
    path = videos(name)
    data = path.read_bytes()
    meta = _metadata(data, chunk=4096)
    probe = _ffprobe(path)
    video = next(s for s in probe["streams"] if s["codec_type"] == "video")
    audio = [s for s in probe["streams"] if s["codec_type"] == "audio"]
    assert meta is not None
    assert (meta.width, meta.height) == (video["width"], video["height"])
    assert meta.video_codec == video["codec_name"]
    assert meta.has_audio is bool(audio)
    assert meta.audio_codec == (audio[0]["codec_name"] if audio else None)
    assert meta.frames == int(video["nb_read_packets"])
    rotation = _expected_rotation(video, path.suffix)
    assert meta.rotation == rotation
    sar = Fraction(video.get("sample_aspect_ratio", "1:1").replace(":", "/").replace("0/1", "1"))
    shown = (round(video["width"] * sar), video["height"])
    if rotation in (90, 270):
        shown = shown[::-1]
    assert (meta.display_width, meta.display_height) == shown
    if name.endswith("-sar"):  # the files that set it; the others may leave it out
        assert meta.pixel_aspect is not None
    if meta.pixel_aspect is not None:
        assert Fraction(meta.pixel_aspect.replace(":", "/")) == sar
    frame = 1 / float(Fraction(video["avg_frame_rate"]))
    expected = float(probe["format"].get("duration", meta.frames * frame))
    assert meta.duration is not None and abs(meta.duration - expected) <= frame + 1e-6
    assert meta.frame_rate == pytest.approx(1 / frame, rel=0.01)
    assert meta.bit_rate == pytest.approx(len(data) * 8 / meta.duration, abs=1)
    stamp = probe["format"].get("tags", {}).get("creation_time")
    created = None if stamp is None else datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert meta.creation_time == created


def test_webm_without_duration_ends_with_its_last_block(videos: Callable[[str], Path]) -> None:
    """A WebM written to a pipe has no Duration in Info: its duration is the end of its last
    block, which equals the Duration ffmpeg writes when it can (25 frames at 25 fps: 1 s)."""
    live = videos("vp8-live").read_bytes()
    info = live.index(b"\x15\x49\xa9\x66")
    assert b"\x44\x89" not in live[info : live.index(b"\x16\x54\xae\x6b")]
    meta = _metadata(live)
    assert meta is not None and meta.duration == pytest.approx(1.0)


def test_metadata_does_not_depend_on_chunking(videos: Callable[[str], Path]) -> None:
    """The same file fed whole, in 1-byte-odd chunks or deep gives the same metadata."""
    for name in ("h264-fragmented", "vp9-opus-live", "mov-h264-aac"):
        data = videos(name).read_bytes()
        whole = _metadata(data)
        assert whole == _metadata(data, chunk=7) == _metadata(data, chunk=1000, deep=True)


def test_a_fragment_that_does_not_fit_leaves_the_check_as_it_was(
    videos: Callable[[str], Path],
) -> None:
    """A moof whose child box overruns it passed the check before its fragments were read,
    and still does; its frames and duration become unknown rather than wrong."""
    data = bytearray(videos("h264-fragmented").read_bytes())
    moof = data.index(b"moof") - 4
    traf = data.index(b"traf", moof) - 4
    struct.pack_into(">I", data, traf, 0x7FFF0000)
    meta = _metadata(bytes(data))
    assert meta is not None and meta.frames is None and meta.width == 64


def test_cut_videos_are_still_refused(videos: Callable[[str], Path]) -> None:
    """Reading metadata changes no verdict: a cut video is refused as before."""
    for name in ("h264-aac", "vp9-opus"):
        data = videos(name).read_bytes()
        with pytest.raises(CorruptMediaError):
            _metadata(data[: len(data) * 2 // 3])


# --- animations and still images ---------------------------------------------------------------
DELAYS_MS = [0, 10, 20, 500, 30]  # GIF: 0 and 1 centisecond, then ordinary delays


def _frames(count: int = 5) -> list[Image.Image]:
    return [Image.new("RGB", (40, 30), (40 * i, 255 - 40 * i, 0)) for i in range(count)]


def _animation(fmt: str, durations: list[int]) -> bytes:
    frames = _frames(len(durations))
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return buf.getvalue()


def _pillow_durations(data: bytes) -> tuple[int, list[float]]:
    """Pillow's frame count and per-frame durations (milliseconds, as stored)."""
    with Image.open(io.BytesIO(data)) as image:
        durations = []
        for index in range(image.n_frames):
            image.seek(index)
            image.load()
            durations.append(float(image.info.get("duration") or 0))
        return image.n_frames, durations


def _as_browsers_play(durations: list[float]) -> float:
    """A GIF's frames as Chromium and Firefox play them: 10 ms or less lasts 100 ms."""
    return sum(100 if ms <= 10 else ms for ms in durations) / 1000


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_animation_frames_and_duration_are_pillows(fmt: str) -> None:
    """Frames equal Pillow's n_frames; the duration is the sum of Pillow's frame durations
    (a GIF's 0 and 1 cs delays counted as 10 cs, as browsers play them)."""
    data = _animation(fmt, DELAYS_MS)
    frames, durations = _pillow_durations(data)
    meta = _metadata(data, chunk=97)
    assert meta is not None and meta.animated is True and meta.frames == frames == 5
    expected = _as_browsers_play(durations) if fmt == "GIF" else sum(durations) / 1000
    assert meta.duration == pytest.approx(expected)


def test_gif_short_delays_play_as_browsers_play_them() -> None:
    """GIF delays of 0 and 1 cs count as 10 cs; 2 cs counts as 2 cs."""
    data = _animation("GIF", [0, 10, 20])
    meta = _metadata(data)
    assert meta is not None and meta.duration == pytest.approx(0.10 + 0.10 + 0.02)


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP", "JPEG"])
def test_still_images_are_one_frame(fmt: str) -> None:
    """A still image: not animated, one frame, no duration; its size is Pillow's."""
    buf = io.BytesIO()
    _frames(1)[0].save(buf, fmt)
    meta = _metadata(buf.getvalue())
    assert meta == MediaMetadata(width=40, height=30, display_width=40, display_height=30,
                                 frames=1, animated=False)  # fmt: skip


# --- EXIF --------------------------------------------------------------------------------------
def _with_exif(fmt: str, orientation: int, taken: str | None, offset: str | None = None) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    if taken is not None:
        exif.get_ifd(0x8769)[0x9003] = taken
    if offset is not None:
        exif.get_ifd(0x8769)[0x9011] = offset
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 20, 30)).save(buf, fmt, exif=exif)
    return buf.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_turns_the_displayed_size(orientation: int) -> None:
    """Orientation 1-8 is read; 5-8 swap the displayed width and height."""
    data = _with_exif("JPEG", orientation, "2021:05:06 07:08:09")
    meta = _metadata(data, chunk=13)
    with Image.open(io.BytesIO(data)) as image:
        assert image.getexif()[0x0112] == orientation
    assert meta is not None and meta.orientation == orientation
    shown = (30, 40) if orientation >= 5 else (40, 30)
    assert (meta.display_width, meta.display_height) == shown
    assert meta.capture_time == datetime(2021, 5, 6, 7, 8, 9)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_exif_capture_time_with_its_offset(fmt: str) -> None:
    """DateTimeOriginal with OffsetTimeOriginal is an aware datetime, in JPEG, PNG and WebP."""
    meta = _metadata(_with_exif(fmt, 6, "2021:05:06 07:08:09", "-03:30"))
    zone = timezone(-timedelta(hours=3, minutes=30))
    assert meta is not None and meta.orientation == 6
    assert meta.capture_time == datetime(2021, 5, 6, 7, 8, 9, tzinfo=zone)


def test_unreadable_exif_values_are_none() -> None:
    """A date that is no date, and an orientation out of 1-8, give None."""
    meta = _metadata(_with_exif("JPEG", 9, "0000:00:00 00:00:00"))
    assert meta is not None and meta.orientation is None and meta.capture_time is None
    assert meta.display_width == 40


EXIF_JPEG = _with_exif("JPEG", 6, "2021:05:06 07:08:09", "+01:00")
EXIF_AT = EXIF_JPEG.index(b"Exif\x00\x00") + 6  # the TIFF structure
EXIF_END = EXIF_AT + struct.unpack(">H", EXIF_JPEG[EXIF_AT - 8 : EXIF_AT - 6])[0] - 8


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, EXIF_END - EXIF_AT - 1), st.integers(0, 255)),
                min_size=1, max_size=8))  # fmt: skip
def test_fuzzed_exif_never_fails_the_check(edits: list[tuple[int, int]]) -> None:
    """Bytes of the EXIF structure changed at random (offsets, counts, types): the check
    passes as before with the same layout, and whatever it reads is None or in range."""
    data = bytearray(EXIF_JPEG)
    for offset, value in edits:
        data[EXIF_AT + offset] = value
    meta = _metadata(bytes(data))
    assert meta is not None and (meta.width, meta.height) == (40, 30)
    assert meta.orientation is None or 1 <= meta.orientation <= 8


@given(st.binary(max_size=300))
def test_exif_garbage_reads_as_nothing(data: bytes) -> None:
    """Any bytes at all, with a TIFF header or without, never raise."""
    for tiff in (data, b"MM\x00\x2a\x00\x00\x00\x08" + data, b"II\x2a\x00\x08\x00\x00\x00" + data):
        found = read_exif(tiff)
        assert found.orientation is None or 1 <= found.orientation <= 8


def test_exif_loops_and_wild_offsets_read_as_nothing() -> None:
    """An EXIF IFD pointer back to IFD0, or past the end, reads no date and raises nothing."""
    loop = b"II*\x00\x08\x00\x00\x00" + b"\x01\x00" + struct.pack("<HHII", 0x8769, 4, 1, 8)
    wild = b"MM\x00*\x00\x00\x00\x08" + b"\x00\x01" + struct.pack(">HHII", 0x8769, 4, 1, 1 << 31)
    assert read_exif(loop).capture_time is None
    assert read_exif(wild) == read_exif(b"")


# --- PDF ---------------------------------------------------------------------------------------
def _pillow_pdf(pages: int) -> bytes:
    frames = [Image.new("RGB", (50, 40), (30 * i, 0, 0)) for i in range(pages)]
    buf = io.BytesIO()
    frames[0].save(buf, "PDF", save_all=True, append_images=frames[1:])
    return buf.getvalue()


def _written(writer: Any) -> bytes:
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def _rewritten(data: bytes) -> bytes:
    """``data`` written anew by pypdf."""
    return _written(pypdf.PdfWriter(clone_from=io.BytesIO(data)))


def _incremental(data: bytes, added: int) -> bytes:
    """``data`` with ``added`` pages appended by an incremental update (pypdf writes its
    cross-reference as a stream, whose dictionary carries the new /Root)."""
    writer = pypdf.PdfWriter(io.BytesIO(data), incremental=True)
    for _ in range(added):
        writer.add_blank_page(50, 40)
    return _written(writer)


def _encrypted(data: bytes) -> bytes:
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(data)))
    writer.encrypt("user", "owner")
    return _written(writer)


def _object_streams(pages: int, catalog: bytes = b"") -> bytes:
    """A PDF 1.5 whose catalog and page tree are inside an object stream, indexed by a
    cross-reference stream (what qpdf and most PDF libraries write)."""
    page_ids = list(range(3, 3 + pages))
    kids = " ".join(f"{n} 0 R" for n in page_ids)
    inner = {1: b"<< /Type /Catalog /Pages 2 0 R " + catalog + b">>",
             2: f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode()}  # fmt: skip
    for n in page_ids:
        inner[n] = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 50 40] >>"
    header = b" ".join(
        b"%d %d" % (n, sum(len(inner[m]) + 1 for m in inner if m < n)) for n in inner
    )
    body = header + b"\n" + b"".join(v + b"\n" for v in inner.values())
    stream = zlib.compress(body)
    out = bytearray(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
    objstm_id, xref_id = len(inner) + 1, len(inner) + 2
    objstm_at = len(out)
    out += (b"%d 0 obj\n<< /Type /ObjStm /N %d /First %d /Filter /FlateDecode /Length %d >>\n"
            b"stream\n" % (objstm_id, len(inner), len(header) + 1, len(stream)))  # fmt: skip
    out += stream + b"\nendstream\nendobj\n"
    xref_at = len(out)
    rows = [struct.pack(">BIB", 0, 0, 255)]  # W [1 4 1]: type, offset or stream, index
    rows += [struct.pack(">BIB", 2, objstm_id, i) for i in range(len(inner))]
    rows += [struct.pack(">BIB", 1, objstm_at, 0), struct.pack(">BIB", 1, xref_at, 0)]
    table = zlib.compress(b"".join(rows))
    out += (b"%d 0 obj\n<< /Type /XRef /Size %d /W [1 4 1] /Root 1 0 R /Filter /FlateDecode "
            b"/Length %d >>\nstream\n" % (xref_id, xref_id + 1, len(table)))  # fmt: skip
    out += table + b"\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)


PDFS: dict[str, Callable[[], bytes]] = {
    "pillow": lambda: _pillow_pdf(5),
    "pypdf": lambda: _rewritten(_pillow_pdf(3)),
    "incremental": lambda: _incremental(_pillow_pdf(2), 3),
    "incremental-of-pypdf": lambda: _incremental(_rewritten(_pillow_pdf(4)), 2),
    "encrypted": lambda: _encrypted(_pillow_pdf(6)),
    "object-streams": lambda: _object_streams(7),
    "object-streams-updated": lambda: _incremental(_object_streams(2), 2),
}  # fmt: skip


@pytest.mark.parametrize("name", PDFS)
def test_pdf_page_count_is_pypdfs(name: str) -> None:
    """Pages equal pypdf's count, whoever wrote the file and however it was updated, fed
    whole or in small chunks (a dictionary split between chunks)."""
    data = PDFS[name]()
    reader = pypdf.PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        reader.decrypt("user")
    for chunk in (1 << 20, 61):
        meta = _metadata(data, chunk=chunk)
        assert meta is not None and meta.pages == len(reader.pages)
        assert meta.encrypted is reader.is_encrypted
        assert meta.pdf_version == reader.pdf_header[5:]


def test_pdf_catalog_version_wins_when_later() -> None:
    """A catalog /Version later than the header's is the version; an earlier one is not."""
    data = _object_streams(1, catalog=b"/Version /1.7 ")
    meta = _metadata(data)
    assert meta is not None and meta.pdf_version == "1.7" and meta.pages == 1
    older = _object_streams(1, catalog=b"/Version /1.2 ")
    meta = _metadata(older)
    assert meta is not None and meta.pdf_version == "1.5"


def test_pdf_without_a_readable_catalog_has_no_page_count() -> None:
    """A trailer naming a catalog the scan never saw gives no page count, not a guess; the
    file still passes its check."""
    data = re.sub(rb"/Root \d+ 0 R", b"/Root 99 0 R", _pillow_pdf(3))
    meta = _metadata(data)
    assert meta is not None and meta.pages is None and meta.encrypted is False
