"""What files say about their content, recorded at ingest and read back: add, describe,
list_media filters, a fetch over loopback HTTP, export sidecars, stats, and probe() on a
catalog upgraded from before revision 0010."""

from __future__ import annotations

import json
from pathlib import Path

import checker
import pytest
from alembic import command as alembic_command
from media_videos import make_video
from pytest_httpserver import HTTPServer
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from mediastore import InvalidInputError, MediaFilter, MediaStore
from mediastore import testing as t
from mediastore.catalog.schema import alembic_config


def _execute(db_url: str, statement: str) -> None:
    """Change the catalog behind mediastore's back (as an older version left it)."""
    engine = create_engine(db_url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text(statement))
    engine.dispose()


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A 2 s landscape clip with audio and a 1 s portrait one without."""
    folder = tmp_path_factory.mktemp("clips")
    return {
        "wide": make_video(folder, "wide", size="160x90", seconds=2, audio=True),
        "tall": make_video(folder, "tall", size="72x128", seconds=1, audio=False),
    }


def test_an_added_video_records_its_metadata(store: MediaStore, clips: dict[str, bytes]) -> None:
    """describe() reads the metadata recorded in the ingest pass (the add's own record and a
    point lookup leave it out); the video's width and height are its track's; to_dict has
    the keys."""
    added = store.add_bytes(clips["wide"])
    assert (added.width, added.height) == (160, 90)
    assert added.metadata is None
    meta = store.describe(added.md5).metadata  # type: ignore[union-attr]
    assert meta is not None
    assert meta.duration == pytest.approx(2.0, abs=0.05)
    assert meta.frames == 50 and meta.video_codec == "vp8"
    assert meta.has_audio is True and meta.audio_codec == "opus"
    assert meta.shape == "landscape"
    described = store.describe(added.md5)
    assert described is not None and described.metadata == meta
    assert store.get_by_md5(added.md5).metadata is None  # type: ignore[union-attr]
    data = described.to_dict()
    assert data["duration"] == meta.duration and data["shape"] == "landscape"
    assert data["width"] == 160 and data["md5_sum"] == added.md5  # legacy keys kept
    json.dumps(data)


def test_filters_select_by_duration_orientation_and_animation(
    store: MediaStore, clips: dict[str, bytes]
) -> None:
    """min/max duration, orientation (as shown) and animated/still select the right files;
    a file whose value is unknown (a PDF's duration) meets no such condition."""
    wide = store.add_bytes(clips["wide"]).md5
    tall = store.add_bytes(clips["tall"]).md5
    gif = store.add_bytes(t.animated_bytes("GIF", frames=3)).md5
    still = store.add_bytes(t.image_bytes("PNG", size=(10, 10))).md5
    store.add_bytes(t.pdf_bytes())

    def md5s(**where: object) -> set[str]:
        return {r.md5 for r in store.list_media(MediaFilter(**where))}  # type: ignore[arg-type]

    assert md5s(min_duration=1.5) == {wide}
    assert md5s(max_duration=1.5) == {tall, gif}
    assert md5s(min_duration=0.5, media_type="video") == {wide, tall}
    assert md5s(orientation="portrait") == {tall}
    assert md5s(orientation="square") == {still}
    assert md5s(orientation="landscape") == {wide, gif}
    assert md5s(animated=True) == {gif}
    assert md5s(animated=False) == {still}
    listed = next(iter(store.list_media(MediaFilter(animated=True))))
    assert listed.metadata is not None and listed.metadata.frames == 3


@pytest.mark.parametrize(
    "where",
    [
        {"min_duration": -1},
        {"max_duration": float("nan")},
        {"max_duration": float("inf")},
        {"orientation": "sideways"},
        {"animated": "yes"},
    ],
)
def test_bad_metadata_conditions_are_refused(where: dict[str, object]) -> None:
    """A negative or non-finite duration, an unknown orientation or a non-bool animated is
    InvalidInputError (a ValueError)."""
    with pytest.raises(InvalidInputError):
        MediaFilter(**where)  # type: ignore[arg-type]


def test_a_fetched_video_gets_its_metadata(
    lstore: MediaStore, http: HTTPServer, clips: dict[str, bytes]
) -> None:
    """A video downloaded over loopback HTTP is recorded with its metadata."""
    http.expect_request("/clip.webm").respond_with_data(clips["tall"], content_type="video/webm")
    fetched = lstore.fetch(http.url_for("/clip.webm"))
    described = lstore.describe(fetched.md5)
    assert described is not None and described.metadata is not None
    assert described.metadata.shape == "portrait"
    assert described.metadata.has_audio is False
    assert (described.width, described.height) == (72, 128)


def test_a_file_whose_metadata_is_unreadable_is_still_stored(store: MediaStore) -> None:
    """A WebM whose Cluster cannot be parsed (its blocks unreadable, so its frames and
    duration unknown) passes the check as before and is stored; those fields are None, the
    ones its header declares are kept."""
    data = bytearray(t.webm_bytes(4000))
    cluster = data.index(b"\x1f\x43\xb6\x75")
    data[cluster + 12] = 0x00  # the Cluster's first child: no valid element ID
    rec = store.add_bytes(bytes(data))
    meta = store.describe(rec.md5).metadata  # type: ignore[union-attr]
    assert meta is not None
    assert meta.frames is None and meta.duration is None and meta.bit_rate is None
    assert meta.video_codec == "vp8" and (rec.width, rec.height) == (320, 240)


def test_export_sidecars_and_stats_carry_the_metadata(
    store: MediaStore, clips: dict[str, bytes], tmp_path: Path
) -> None:
    """An export's sidecar has the file's metadata; stats(content=True) sums the videos'
    seconds and the PDFs' pages."""
    wide = store.add_bytes(clips["wide"])
    store.add_bytes(t.pdf_bytes())
    report = store.export(tmp_path / "out", [store.get_by_md5(wide.md5)])  # type: ignore[list-item]
    sidecar = report.exported[0].sidecar
    assert sidecar is not None
    assert json.loads(sidecar.read_text())["video_codec"] == "vp8"
    stats = store.stats(content=True)
    assert stats.video_duration == pytest.approx(2.0, abs=0.05)
    assert stats.pages == 1 and stats.unprobed == 0
    assert store.stats().video_duration is None


def test_probe_reads_the_files_of_an_upgraded_catalog(
    tmp_path: Path, clips: dict[str, bytes]
) -> None:
    """Files stored before revision 0010: after the upgrade their metadata is unknown; probe()
    reads each once and records it; a rerun reads nothing; progress counts files."""
    root = tmp_path / "s"
    with MediaStore(root) as store:
        video = store.add_bytes(clips["wide"]).md5
        pdf = store.add_bytes(t.pdf_bytes()).md5
    db_url = f"sqlite:///{checker.catalog_path(root)}"
    alembic_command.downgrade(alembic_config(db_url), "0009")
    alembic_command.upgrade(alembic_config(db_url), "head")
    _execute(db_url, "UPDATE media SET width = NULL, height = NULL")  # as before 0010
    with MediaStore(root) as store:
        assert store.describe(video).metadata is None  # type: ignore[union-attr]
        assert store.stats(content=True).unprobed == 2
        seen: list[tuple[int, int]] = []
        report = store.probe(progress=lambda done, total: seen.append((done, total)))
        assert report.read == 2 and not report.unreadable and not report.missing
        assert seen[-1] == (2, 2)
        described = store.describe(video)
        assert described is not None and described.metadata is not None
        assert described.metadata.duration == pytest.approx(2.0, abs=0.05)
        assert (described.width, described.height) == (160, 90)
        assert store.describe(pdf).metadata.pages == 1  # type: ignore[union-attr]
        assert store.probe().read == 0


def test_probe_marks_a_file_it_cannot_walk_and_skips_a_missing_one(
    store: MediaStore, clips: dict[str, bytes]
) -> None:
    """A stored file damaged since (its walk fails) is reported unreadable and marked read;
    one whose file is gone is reported missing and left for the next run."""
    bad = store.add_bytes(clips["wide"])
    gone = store.add_bytes(t.pdf_bytes())
    _execute(store.config.catalog_url, "UPDATE media SET metadata_read_at = NULL")
    assert bad.path is not None and gone.path is not None
    bad.path.write_bytes(bad.path.read_bytes()[:200])
    gone.path.unlink()
    report = store.probe()
    assert list(report.unreadable) == [bad.md5] and report.missing == [gone.md5]
    again = store.probe()
    assert not again.unreadable and again.missing == [gone.md5]
