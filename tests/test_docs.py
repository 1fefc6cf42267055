"""The README tells the truth (issue 13), in the manner of sqlite-utils' ``test_docs.py``.

- every command and option the README's CLI section names exists, and every command has
  help text;
- every exit code the README lists is produced by some test;
- the README's shell examples run, with the exit codes they state;
- a project that installs mediastore (editable, as the README does) can type-check its own
  code against it.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


# --- installing -------------------------------------------------------------------------------
def test_installed_without_an_import_hook() -> None:
    """The install this suite runs against puts mediastore on a plain path entry: an editable
    install writes a static .pth, not setuptools' ``__editable___*_finder`` import hook that
    type checkers cannot follow."""
    files = importlib.metadata.distribution("mediastore").files or []
    hooks = [str(f) for f in files if f.name.startswith("__editable___")]
    assert hooks == [], hooks


def test_downstream_project_type_checks(tmp_path: Path) -> None:
    """A tiny project outside the repository that imports mediastore passes ``mypy --strict``
    (no ``import-not-found``, and the package's own annotations are used: a wrong type is
    reported)."""
    project = tmp_path / "downstream"
    project.mkdir()
    (project / "uses_store.py").write_text(
        textwrap.dedent(
            """\
            from mediastore import MediaRecord, MediaStore, MediaStoreError


            def size_of(store: MediaStore, md5: str) -> int:
                rec: MediaRecord | None = store.get_by_md5(md5)
                return rec.size if rec is not None else 0


            def exit_code(exc: MediaStoreError) -> int:
                return exc.exit_code
            """
        )
    )
    (project / "wrong.py").write_text(
        "from mediastore import MediaStore\n\n"
        "def count(store: MediaStore) -> str:\n"
        "    return store.stats().total_files\n"
    )

    def mypy(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "--no-incremental", name],
            cwd=project, capture_output=True, text=True, timeout=110,
        )  # fmt: skip

    good = mypy("uses_store.py")
    assert good.returncode == 0, good.stdout + good.stderr
    bad = mypy("wrong.py")
    assert bad.returncode == 1 and "Incompatible return value" in bad.stdout, bad.stdout
    assert "import-not-found" not in good.stdout + bad.stdout
