"""The package as a user installs it: a wheel built from the checkout carries the migrations, and
``mediastore db upgrade`` works from it in a directory that is no checkout."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from mediastore.catalog import schema

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())

pytestmark = pytest.mark.slow


def _run(
    argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{argv} exited {result.returncode}:\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of the checkout, built without build isolation (nothing is downloaded)."""
    dist = tmp_path_factory.mktemp("dist")
    pip = [sys.executable, "-m", "pip"]
    _run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), str(REPO)])
    (built,) = dist.glob("mediastore-*.whl")
    return built


def test_the_wheel_ships_every_migration_inside_the_package(wheel: Path) -> None:
    """Alembic's environment, its template and one file per revision sit under
    mediastore/migrations/ in the wheel; nothing of the checkout's top level is shipped."""
    names = set(zipfile.ZipFile(wheel).namelist())
    revisions = {n for n in names if n.startswith("mediastore/migrations/versions/0")}
    shipped = (REPO / "migrations" / "versions").glob("0*.py")
    expected = {f"mediastore/migrations/versions/{path.name}" for path in shipped}
    assert revisions == expected and len(expected) >= 5
    assert {"mediastore/migrations/env.py", "mediastore/migrations/script.py.mako"} <= names
    assert not {n for n in names if n.split("/")[0] in {"migrations", "tests", "benchmarks"}}


def test_db_upgrade_from_the_wheel_outside_any_checkout(wheel: Path, tmp_path: Path) -> None:
    """A fresh venv holding only the wheel (its dependencies borrowed from this environment's
    site-packages, whose editable install of mediastore is not followed) upgrades an empty
    directory's catalog to head and reports it, with no checkout in sight."""
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    _run([*pip, "install", "-q", "--no-deps", "--no-index", str(wheel)])
    ask = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = Path(_run([str(python), "-c", ask]).stdout.strip())
    # a path line adds the directory only: the .pth files in it (the editable install) are not read
    (purelib / "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDIASTORE_", "PYTHONPATH"))}
    ask = "import mediastore; print(mediastore.__file__)"
    where = _run([str(python), "-c", ask], cwd=empty, env=env)
    assert Path(where.stdout.strip()).is_relative_to(venv)

    mediastore = str(venv / "bin" / "mediastore")
    upgraded = _run([mediastore, "db", "upgrade"], cwd=empty, env=env)
    current = _run([mediastore, "db", "current"], cwd=empty, env=env)

    (head,) = schema.head_revisions()
    assert f"catalog at {head}" in upgraded.stdout
    assert f"current {head}; head {head}: up to date" in current.stdout
    with sqlite3.connect(empty / "cache" / "catalog.sqlite3") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]
