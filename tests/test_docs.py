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
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mediastore.cli import main

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


# --- the README's CLI section ---------------------------------------------------------------
def _section(title: str) -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def _blocks(section: str, lang: str = "") -> list[str]:
    """The fenced code blocks of a section (``lang`` "sh" for shell ones, "" for plain)."""
    return re.findall(rf"\n```{lang}\n(.*?)\n```", section, flags=re.DOTALL)


def _commands() -> dict[str, click.Command]:
    """Every command by its path below ``mediastore`` (``db upgrade`` for a group's)."""
    found: dict[str, click.Command] = {}

    def walk(group: click.Group, prefix: str) -> None:
        for name, cmd in group.commands.items():
            path = f"{prefix}{name}"
            found[path] = cmd
            if isinstance(cmd, click.Group):
                walk(cmd, f"{path} ")

    walk(main, "")
    return found


def _options(cmd: click.Command) -> set[str]:
    return {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts) if opt.startswith("-")}


def _usage_lines() -> dict[str, set[str]]:
    """Command -> options named on its lines of the README's usage block."""
    (usage, *_) = _blocks(_section("CLI"))
    named: dict[str, set[str]] = {}
    current = ""
    for line in usage.splitlines()[1:]:
        words = line.split()
        if line.startswith("  ") and not line.startswith("   ") and words:
            current = "db" if words[0] == "db" else words[0]
            for sub in re.findall(r"db (\w+)", line):
                named.setdefault(f"db {sub}", set())
        if current:
            named.setdefault(current, set()).update(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", line))
    return named


def test_every_command_is_in_the_readme_and_every_named_one_exists() -> None:
    commands = _commands()
    named = _usage_lines()
    top_level = {name for name in commands if " " not in name}
    assert top_level <= set(named), sorted(top_level - set(named))
    assert set(named) <= set(commands), sorted(set(named) - set(commands))


def test_every_option_the_readme_names_exists() -> None:
    """Options on each command's usage lines belong to that command (or the global ones);
    any other option the CLI section mentions belongs to some command."""
    commands = _commands()
    global_opts = _options(main) | {"--help", "-h"}  # click's own, on every command
    every = global_opts.union(*(_options(c) for c in commands.values()))
    for name, opts in _usage_lines().items():
        have = _options(commands[name]) | global_opts
        if isinstance(commands[name], click.Group):
            have |= set().union(*(_options(c) for c in commands[name].commands.values()))  # type: ignore[attr-defined]
        assert opts <= have, (name, sorted(opts - have))
    (usage, *_) = _blocks(_section("CLI"))
    first = set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", usage.splitlines()[0]))
    assert first == {"--root", "--db", "--blobs", "--max-file-size", "-v"} and first <= global_opts
    prose = set(re.findall(r"`[^`]*?(--[a-z][\w-]*)", _section("CLI")))
    assert prose <= every, sorted(prose - every)


def test_every_command_has_help_text() -> None:
    for name, cmd in _commands().items():
        assert cmd.help and len(cmd.help.strip()) > 20, name
        result = CliRunner().invoke(main, [*name.split(), "--help"])
        assert result.exit_code == 0 and "Usage:" in result.stdout, name
        for param in cmd.params:
            if isinstance(param, click.Option):
                assert param.help, (name, param.opts)


def test_every_exit_code_the_readme_lists_is_produced_by_a_test() -> None:
    """Each code of the CLI section's table is asserted by some test of the suite."""
    table = re.findall(r"^\| (\d+) \|", _section("CLI"), flags=re.MULTILINE)
    codes = sorted({int(c) for c in table} - {0})
    assert {1, 2, 3, 4, 5, 6, 7, 8, 130} <= set(codes), codes
    sources = "\n".join(p.read_text() for p in (REPO / "tests").glob("test_*.py"))
    for code in codes:
        pattern = rf"(exit_code|returncode)\s*==\s*{code}\b|exit_code in \([^)]*\b{code}\b"
        assert re.search(pattern, sources), f"no test expects exit code {code}"


def _run_line(line: str) -> tuple[int, bytes]:
    """Run one README shell line (``mediastore ...``) in-process; (exit code, stdout)."""
    args = shlex.split(line)
    assert args[0] == "mediastore", line
    result = CliRunner(env=dict.fromkeys(ENV_SETTINGS)).invoke(
        main, args[1:], prog_name="mediastore"
    )
    return result.exit_code, result.stdout_bytes


ENV_SETTINGS = ("MEDIASTORE_ROOT", "MEDIASTORE_DB_URL", "MEDIASTORE_MAX_FILE_SIZE",
                "MEDIASTORE_WORKERS", "MEDIASTORE_PER_HOST", "MEDIASTORE_TIMEOUT",
                "MEDIASTORE_ALLOW_PRIVATE")  # fmt: skip


@pytest.fixture
def clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory like a fresh clone's for the examples: a copy of ``examples/``, as cwd."""
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_quick_start_runs(clone: Path) -> None:
    """The quick start's mediastore commands (after its install steps) and what it says of
    their output: 5 new files and 1 already stored, a copy counted as saved by dedup."""
    (first, *_) = _blocks(_section("Quick start"), "sh")
    steps = [s.strip() for s in first.split("&&") if s.strip().startswith("mediastore")]
    assert steps == ["mediastore add examples/media", "mediastore stats"]
    code, out = _run_line(steps[0])
    assert code == 0 and b"added 5 new file(s)" in out and b"1 already stored" in out
    code, out = _run_line(steps[1])
    assert code == 0 and b"saved by dedup: 0 B" not in out
    (_, tour, *_) = _blocks(_section("Quick start"), "sh")
    for line in tour.splitlines():
        code, _ = _run_line(line.split("#")[0])
        assert code == 0, line
    assert len(list((clone / "exported").glob("*.json"))) == 5


def test_cli_examples_give_their_exit_codes(clone: Path) -> None:
    """Every line of the CLI section's example block exits as its ``# exit N`` says."""
    examples = _section("CLI").split("Examples, run by")[1]
    (block, *_) = _blocks(examples, "sh")
    lines = block.splitlines()
    assert len(lines) >= 10
    for line in lines:
        command, _, comment = line.partition("#")
        expected = int(re.fullmatch(r"\s*exit (\d+)\s*", comment)[1])  # type: ignore[index]
        code, out = _run_line(command)
        assert code == expected, (line, code)
        if command.startswith("mediastore cat"):
            assert out == (clone / "examples" / "media" / "sunset.jpg").read_bytes()


def test_benchmark_smoke_runs_write_outside_the_checkout() -> None:
    """``python -m benchmarks --quick`` (and --only) never rewrite a tracked results file."""
    sys.path.insert(0, str(REPO))
    try:
        from benchmarks.__main__ import default_output
    finally:
        sys.path.remove(str(REPO))
    assert default_output(False, False) == REPO / "benchmarks" / "RESULTS.md"
    for quick, partial in ((True, False), (False, True), (True, True)):
        out = default_output(quick, partial)
        assert not out.resolve().is_relative_to(REPO), out
        assert out.parent.is_dir()
