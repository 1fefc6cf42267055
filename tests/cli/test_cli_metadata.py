"""The metadata through the command: ``show``/``show --json``, ``ls --json`` and its
duration, orientation and animation filters, ``stats``, ``probe``, and bad values refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from media_videos import make_video

from mediastore import MediaStore
from mediastore import testing as t
from mediastore.cli import main

CLEAN_ENV = {"MEDIASTORE_ROOT": None, "MEDIASTORE_DB_URL": None}


def run(root: Path, *args: str) -> Result:
    return CliRunner(env=CLEAN_ENV).invoke(main, ["--root", str(root), *args])


@pytest.fixture
def filled(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A store with a 2 s landscape video, an animated GIF and a PDF; name -> md5."""
    root = tmp_path / "store"
    video = make_video(tmp_path, "clip", size="160x90", seconds=2, audio=True)
    with MediaStore(root) as store:
        md5s = {
            "video": store.add_bytes(video).md5,
            "gif": store.add_bytes(t.animated_bytes("GIF", frames=3, size=(16, 24))).md5,
            "pdf": store.add_bytes(t.pdf_bytes()).md5,
        }
    return root, md5s


def test_show_and_ls_json_have_the_metadata(filled: tuple[Path, dict[str, str]]) -> None:
    """show prints the duration and codecs; show --json and ls --json carry the keys."""
    root, md5s = filled
    shown = run(root, "show", md5s["video"])
    assert shown.exit_code == 0, shown.output
    assert "duration" in shown.output and "vp8" in shown.output and "opus" in shown.output
    data = json.loads(run(root, "show", "--json", md5s["video"]).output)
    assert data["duration"] == pytest.approx(2.0, abs=0.05) and data["shape"] == "landscape"
    listed = json.loads(run(root, "ls", "--json").output)
    by_md5 = {row["md5"]: row for row in listed}
    assert by_md5[md5s["pdf"]]["pages"] == 1
    assert by_md5[md5s["gif"]]["animated"] is True and by_md5[md5s["gif"]]["frames"] == 3


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--min-duration", "1"], {"video"}),
        (["--max-duration", "1"], {"gif"}),
        (["--orientation", "portrait"], {"gif"}),
        (["--orientation", "landscape"], {"video"}),
        (["--animated"], {"gif"}),
        (["--still"], set()),
        (["--min-duration", "0", "--type", "video"], {"video"}),
    ],
)
def test_ls_filters_on_metadata(
    filled: tuple[Path, dict[str, str]], args: list[str], names: set[str]
) -> None:
    """Each metadata filter of ls lists exactly the files it describes."""
    root, md5s = filled
    result = run(root, "ls", *args)
    assert result.exit_code == 0, result.output
    listed = {line.split()[0] for line in result.output.splitlines()}
    assert listed == {md5s[name] for name in names}


@pytest.mark.parametrize(
    "args",
    [
        ["--orientation", "sideways"],
        ["--min-duration", "-1"],
        ["--max-duration", "nan"],
        ["--max-duration", "inf"],
        ["--min-duration", "ten"],
        ["--min-duration", ""],
    ],
)
def test_bad_metadata_filters_are_usage_errors(
    filled: tuple[Path, dict[str, str]], args: list[str]
) -> None:
    """A bad filter value is one clear error, exit 2, and nothing is listed or exported."""
    root, _ = filled
    for command in (["ls"], ["export", str(root.parent / "out")]):
        result = run(root, *command, *args)
        assert result.exit_code == 2, result.output
        assert result.output.startswith("error: Invalid value") and result.output.count("\n") == 1
        assert not (root.parent / "out").exists()


def test_stats_and_probe(filled: tuple[Path, dict[str, str]]) -> None:
    """stats shows the hours of video and the PDF pages; probe on a store whose files all
    have their metadata reads nothing and exits 0."""
    root, _ = filled
    stats = json.loads(run(root, "stats", "--json").output)
    assert stats["video_duration"] == pytest.approx(2.0, abs=0.05) and stats["pages"] == 1
    assert stats["unprobed"] == 0
    assert "pdf pages: 1" in run(root, "stats").output
    probed = run(root, "probe", "--json")
    assert probed.exit_code == 0, probed.output
    assert json.loads(probed.output)["read"] == 0
