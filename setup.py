"""Ships the top-level ``migrations/`` inside the built package as ``mediastore/migrations``.

Everything else is declared in ``pyproject.toml``. The migrations sit beside the package in a
checkout (where Alembic's ``alembic.ini`` and a developer find them), and inside it once built,
so that ``mediastore db upgrade`` works from a wheel with no checkout. Mapping the folder as a
package through ``package-dir`` would do the same, but it makes ``pip install -e .`` install an
import hook instead of a plain path entry, and type checkers of projects that use an editable
install cannot follow that hook.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MIGRATIONS = Path("migrations")


class BuildWithMigrations(build_py):
    """``build_py`` that also copies ``migrations/`` into the built ``mediastore`` package."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads migrations/ from the checkout
            return
        for source in sorted(MIGRATIONS.rglob("*")):
            if source.is_file() and "__pycache__" not in source.parts:
                target = Path(self.build_lib, "mediastore", source)
                self.mkpath(str(target.parent))
                self.copy_file(str(source), str(target))


setup(cmdclass={"build_py": BuildWithMigrations})
