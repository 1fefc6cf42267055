"""The README and ``docs/`` tell the truth, in the manner of sqlite-utils' ``test_docs.py``.

- the README stays short, keeps its two commands verbatim (the second is the one CI runs),
  its quick start and Python example run, and its table names every command;
- ``docs/cli.md`` matches ``--help``: a section per command whose usage line is click's and
  whose options are exactly the command's; its exit codes are the errors' and each is
  produced by some test; its settings are the CLI's; its examples run with the exit codes
  they state;
- ``docs/python-api.md`` names the whole declared API, and its examples run;
- ``docs/architecture.md``'s module map names exactly the package's modules;
- every relative link, module path and dotted module name in the docs exists;
- a project that installs mediastore (editable, as the README does) can type-check its own
  code against it.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.metadata
import inspect
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import mediastore
from mediastore import MediaStore, MediaStoreError, StoreConfig, compat, errors
from mediastore.cli import main
from mediastore.cli.common import EXIT_INTERRUPTED, EXIT_SOME_FAILED
from mediastore.settings import ENV_PREFIX, SETTINGS

#: The repository's root: the nearest folder above this file with a ``pyproject.toml``.
REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
README = REPO / "README.md"
DOCS = REPO / "docs"
README_MAX_BYTES = 8500
QUICK_START = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install . && "
    "mediastore add examples/media && mediastore stats"
)
TEST_COMMAND = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install -q -e '.[test]' && pytest"
)
#: An option as the docs spell it: ``--per-host``, ``-v``.
OPTION = re.compile(r"(?<![\w-])(--?[a-z][\w-]*)")


# --- reading Markdown ---------------------------------------------------------------------------
def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _doc_pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _headings(text: str) -> Iterator[tuple[int, str, int]]:
    """(level, title, offset of the line after it) of each heading outside fenced code."""
    fenced = False
    offset = 0
    for line in text.splitlines(keepends=True):
        offset += len(line)
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"(#+) (.*)", line)):
            yield len(match[1]), match[2].strip(), offset


def _section(text: str, title: str) -> str:
    """The text under the heading ``title``, up to the next heading of any level."""
    found = list(_headings(text))
    for i, (_, name, start) in enumerate(found):
        if name == title:
            if i + 1 < len(found):
                end = text.rfind("\n", 0, found[i + 1][2] - 1)
                return text[start:end]
            return text[start:]
    raise AssertionError(f"no section {title!r}")


def _blocks(section: str, lang: str = "") -> list[str]:
    """The fenced code blocks of a section (``lang`` "sh" for shell ones, "" for plain)."""
    return re.findall(rf"(?:^|\n)```{lang}\n(.*?)\n```", section, flags=re.DOTALL)


def _slug(title: str) -> str:
    """The anchor a Markdown renderer gives a heading (GitHub's rule, without numbering)."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


# --- the CLI --------------------------------------------------------------------------------
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


def _usage(path: str) -> str:
    """The usage line ``mediastore PATH --help`` prints, without its ``Usage: ``."""
    ctx = click.Context(main, info_name="mediastore")
    cmd: click.Command = main
    for name in path.split():
        assert isinstance(cmd, click.Group)
        cmd = cmd.commands[name]
        ctx = click.Context(cmd, info_name=name, parent=ctx)
    return cmd.get_usage(ctx).removeprefix("Usage: ")


def _documented_options(section: str) -> set[str]:
    """Options a section defines: the bullets that start with backticked options and a colon
    (``- `--workers N`: ...``, ``- `-v`, `--verbose`: ...``)."""
    found: set[str] = set()
    for names in re.findall(r"^- ((?:`[^`]+`(?:,\s+)?)+):", section, flags=re.MULTILINE):
        for spelled in re.findall(r"`([^`]+)`", names):
            found.add(spelled.split()[0])
    return found


def _cli_doc() -> str:
    return _read(DOCS / "cli.md")


def test_the_cli_reference_has_a_section_for_every_command_and_none_other() -> None:
    """``docs/cli.md`` has a ``mediastore COMMAND`` section for each command and ``db``
    subcommand, and names no command that does not exist."""
    sections = {m[1] for _, title, _ in _headings(_cli_doc())
                if (m := re.fullmatch(r"`mediastore ([a-z -]+)`", title))}  # fmt: skip
    assert sections == set(_commands()), sorted(sections ^ set(_commands()))


@pytest.mark.parametrize("path", ["", *_commands()])
def test_a_cli_section_matches_its_help(path: str) -> None:
    """A command's section (the global options' for "") starts with the usage line that
    ``--help`` prints, and defines exactly the command's options: none missing, none that
    does not exist."""
    title = f"`mediastore {path}`" if path else "Global options"
    section = _section(_cli_doc(), title)
    (usage, *_) = _blocks(section)
    assert usage.splitlines()[0] == _usage(path)
    cmd = _commands()[path] if path else main
    documented = _documented_options(section)
    assert documented == _options(cmd), (sorted(_options(cmd) - documented), "missing",
                                         sorted(documented - _options(cmd)), "unknown")  # fmt: skip


def test_every_option_the_docs_name_exists() -> None:
    """An option written anywhere in the README or ``docs/cli.md`` (in a code span or line
    that is a mediastore command or an option) belongs to some command, or is a global one,
    or ``--help``."""
    every = {"--help", "-h"}.union(_options(main), *map(_options, _commands().values()))
    starts = ("mediastore", "-", *main.commands)
    for page in (README, DOCS / "cli.md"):
        text = _read(page)
        spans = re.findall(r"`([^`\n]+)`", text) + re.findall(r"^mediastore .*$", text, re.M)
        named = set()
        for code in spans:
            if code.startswith(starts):
                # a repeated short flag (-vv) is that flag counted
                named.update(re.sub(r"^-(\w)\1+$", r"-\1", o) for o in OPTION.findall(code))
        assert named and named <= every, (page.name, sorted(named - every))


def test_every_command_has_help_text() -> None:
    """Each command has a real help text, ``--help`` works, and every option explains itself."""
    for name, cmd in _commands().items():
        assert cmd.help and len(cmd.help.strip()) > 20, name
        result = CliRunner().invoke(main, [*name.split(), "--help"])
        assert result.exit_code == 0 and "Usage:" in result.stdout, name
        for param in cmd.params:
            if isinstance(param, click.Option):
                assert param.help, (name, param.opts)


def _exit_table() -> set[int]:
    table = re.findall(r"^\| (\d+) \|", _section(_cli_doc(), "Exit codes"), flags=re.MULTILINE)
    return {int(code) for code in table}


def test_the_exit_codes_documented_are_the_errors_codes() -> None:
    """The exit-code table lists 0, the codes of the error classes, 1 for a partly failed
    batch and 130 for Ctrl-C: no more, no fewer."""
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)
               if issubclass(c, MediaStoreError)]  # fmt: skip
    codes = {c.exit_code for c in classes} | {0, EXIT_SOME_FAILED, EXIT_INTERRUPTED}
    assert _exit_table() == codes


def test_every_exit_code_the_docs_list_is_produced_by_a_test() -> None:
    """Each code of the exit-code table is asserted by some test of the suite (in any folder
    of ``tests/``)."""
    codes = sorted(_exit_table() - {0})
    assert {1, 2, 3, 4, 5, 6, 7, 8, 130} <= set(codes), codes
    sources = "\n".join(_read(p) for p in (REPO / "tests").rglob("test_*.py"))
    for code in codes:
        pattern = rf"(exit_code|returncode)\s*==\s*{code}\b|exit_code in \([^)]*\b{code}\b"
        assert re.search(pattern, sources), f"no test expects exit code {code}"


#: Variables the CLI reads besides the settings: the global options' (click ``envvar``).
GLOBAL_ENV = tuple(p.envvar for p in main.params if isinstance(p.envvar, str))
#: Variables one command reads for one of its options (``serve --token``).
COMMAND_ENV = tuple(
    p.envvar for cmd in _commands().values() for p in cmd.params if isinstance(p.envvar, str)
)
ENV_SETTINGS = (
    *GLOBAL_ENV,
    *COMMAND_ENV,
    *(ENV_PREFIX + name.upper() for name in SETTINGS),
)


def test_the_settings_table_is_the_clis() -> None:
    """The settings table has a row for each setting the CLI reads (by its ``MEDIASTORE_*``
    variable), and no page names a ``MEDIASTORE_*`` variable the CLI does not read."""
    table = _section(_cli_doc(), "Settings").split("\n\n")[1]
    rows = set(re.findall(r"`(MEDIASTORE_[A-Z_]+)", table))
    assert rows == {ENV_PREFIX + name.upper() for name in SETTINGS}
    assert set(GLOBAL_ENV) == {"MEDIASTORE_ROOT", "MEDIASTORE_DB_URL", "MEDIASTORE_BLOB_URL"}
    for page in _doc_pages():
        named = set(re.findall(r"(?<![\w])(MEDIASTORE_[A-Z_]+)", _read(page)))
        assert named <= set(ENV_SETTINGS), (page.name, sorted(named - set(ENV_SETTINGS)))


# --- running the documented examples -----------------------------------------------------------
def _run_line(line: str) -> tuple[int, bytes]:
    """Run one documented shell line (``mediastore ...``) in-process; (exit code, stdout)."""
    args = shlex.split(line)
    assert args[0] == "mediastore", line
    result = CliRunner(env=dict.fromkeys(ENV_SETTINGS)).invoke(
        main, args[1:], prog_name="mediastore"
    )
    return result.exit_code, result.stdout_bytes


@pytest.fixture
def clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory like a fresh clone's for the examples: a copy of ``examples/``, as cwd."""
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    for name in ENV_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_quick_start_runs(clone: Path) -> None:
    """The quick start's mediastore commands (after its install steps) and what it says of
    their output: 5 new files and 1 already stored, a copy counted as saved by dedup."""
    (first, *_) = _blocks(_section(_read(README), "Quick start"), "sh")
    steps = [s.strip() for s in first.split("&&") if s.strip().startswith("mediastore")]
    assert steps == ["mediastore add examples/media", "mediastore stats"]
    code, out = _run_line(steps[0])
    assert code == 0 and b"added 5 new file(s)" in out and b"1 already stored" in out
    code, out = _run_line(steps[1])
    assert code == 0 and b"saved by dedup: 0 B" not in out
    (_, tour, *_) = _blocks(_section(_read(README), "Quick start"), "sh")
    for line in tour.splitlines():
        code, _ = _run_line(line.split("#")[0])
        assert code == 0, line
    assert len(list((clone / "exported").glob("*.json"))) == 5


def test_cli_examples_give_their_exit_codes(clone: Path) -> None:
    """Every line of ``docs/cli.md``'s examples exits as its ``# exit N`` says."""
    (block, *_) = _blocks(_section(_cli_doc(), "Examples"), "sh")
    lines = block.splitlines()
    assert len(lines) >= 10
    for line in lines:
        command, _, comment = line.partition("#")
        expected = int(re.fullmatch(r"\s*exit (\d+)\s*", comment)[1])  # type: ignore[index]
        code, out = _run_line(command)
        assert code == expected, (line, code)
        if command.startswith("mediastore cat"):
            assert out == (clone / "examples" / "media" / "sunset.jpg").read_bytes()


def _run_python(blocks: list[str]) -> dict[str, object]:
    """Run Python blocks in order in one namespace, as a reader would paste them."""
    namespace: dict[str, object] = {"__name__": "__docs__"}
    try:
        for block in blocks:
            exec(compile(block, "<docs>", "exec"), namespace)
    finally:
        compat.default_store().close()  # the legacy API's store, if a block made one
        compat.set_default_store(None)
    return namespace


def test_readme_python_example_runs(clone: Path) -> None:
    """The README's Python example runs as written in a fresh clone, and stores the photo."""
    (block,) = _blocks(_read(README), "python")
    _run_python([block])
    with MediaStore("cache", create=False) as store:
        assert store.get_by_url("https://cdn.example/p/1.jpg") is not None


def test_python_api_examples_run(clone: Path) -> None:
    """Every Python block of ``docs/python-api.md`` runs, in order, in a fresh clone."""
    blocks = _blocks(_read(DOCS / "python-api.md"), "python")
    assert len(blocks) >= 3
    _run_python(blocks)
    assert (clone / "exported").is_dir()


# --- the README ----------------------------------------------------------------------------
def test_readme_is_short() -> None:
    """The README stays a front page: at most 8,500 bytes; the rest lives in ``docs/``."""
    assert len(_read(README).encode()) <= README_MAX_BYTES


def test_readme_keeps_its_two_commands_verbatim() -> None:
    """The quick start and the test command are whole lines of the README, byte for byte,
    and the test command is the one ``.ci/run`` runs."""
    lines = _read(README).splitlines()
    assert QUICK_START in lines
    assert TEST_COMMAND in lines
    assert TEST_COMMAND in _read(REPO / ".ci" / "run").splitlines()
    assert '`pytest -m "not slow"`' in _read(README)


def test_readme_command_table_names_every_command() -> None:
    """The README's table of commands has one row per command, ``db`` with its subcommands."""
    table = _section(_read(README), "Commands")
    rows = re.findall(r"^\| `([a-z-]+)", table, flags=re.MULTILINE)
    assert sorted(rows) == sorted(main.commands)
    for sub in _commands()["db"].commands:  # type: ignore[attr-defined]
        assert f"`db {sub}`" in table, sub


# --- the Python API page ---------------------------------------------------------------------
def test_python_api_page_names_the_whole_api() -> None:
    """``docs/python-api.md`` names every name of ``mediastore.__all__``, every public method
    of ``MediaStore``, every ``StoreConfig`` field and every legacy function."""
    text = _read(DOCS / "python-api.md")
    names = {n for n in mediastore.__all__ if n != "__version__"}
    methods = {n for n, _ in inspect.getmembers(MediaStore, inspect.isfunction)
               if not n.startswith("_")}  # fmt: skip
    fields = {f.name for f in dataclasses.fields(StoreConfig)}
    for name in sorted(names):  # the errors are named in the tree, a code block
        assert re.search(rf"\b{name}\b", text), name
    for name in sorted(fields | set(compat.__all__)):
        assert f"`{name}" in text, name
    for name in sorted(methods):
        assert f"`{name}(" in text, name


# --- the architecture page ---------------------------------------------------------------------
def test_module_map_names_every_module() -> None:
    """The module map of ``docs/architecture.md`` names exactly the ``.py`` files of the
    package: a module added or removed without updating the map fails here."""
    section = _section(_read(DOCS / "architecture.md"), "Module map")
    mapped = set(re.findall(r"`(mediastore/[\w/]+\.py)`", section))
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "mediastore").rglob("*.py")}
    assert mapped == modules, (sorted(modules - mapped), "unmapped",
                               sorted(mapped - modules), "gone")  # fmt: skip


def test_the_layers_described_are_the_architecture_tests() -> None:
    """The layer table of ``docs/architecture.md`` names the layers of
    ``test_architecture.LAYERS``, in the same order."""
    found = list((REPO / "tests").rglob("test_architecture.py"))
    assert len(found) == 1, found
    tree = ast.parse(_read(found[0]))
    values = [
        node.value
        for node in tree.body
        if isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and node.target.id == "LAYERS"
        and node.value is not None
    ]
    assert len(values) == 1, "LAYERS is one annotated constant of test_architecture.py"
    layers = [name for name, _ in ast.literal_eval(values[0])]
    table = _section(_read(DOCS / "architecture.md"), "Layers")
    assert re.findall(r"^\| (\w+) \| `", table, flags=re.MULTILINE) == layers


# --- links and names -----------------------------------------------------------------------
def _link_targets(page: Path) -> Iterator[str]:
    text = re.sub(r"```.*?```", "", _read(page), flags=re.DOTALL)
    yield from re.findall(r"\]\(([^)\s]+)\)", text)


def test_relative_links_point_at_what_exists() -> None:
    """Every relative link in the README, ``docs/`` and the benchmarks' README names a file
    of the repository, and an anchor names a heading of that file."""
    pages = [*_doc_pages(), REPO / "benchmarks" / "README.md"]
    checked = 0
    for page in pages:
        for target in _link_targets(page):
            if re.match(r"[a-z]+:", target):
                continue  # an absolute URL
            path_text, _, anchor = target.partition("#")
            path = (page.parent / path_text).resolve() if path_text else page
            assert path.exists() and path.is_relative_to(REPO), (page.name, target)
            if anchor:
                slugs = {_slug(title) for _, title, _ in _headings(_read(path))}
                assert anchor in slugs, (page.name, target)
            checked += 1
    assert checked > 20


def _resolves(dotted: str) -> bool:
    """``mediastore.a.b`` names a module, or an attribute of one."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


def test_module_names_in_the_docs_exist() -> None:
    """Every ``mediastore/...`` path (a ``.py`` file or a folder) and every dotted
    ``mediastore.x.y`` name in the README and ``docs/`` exists in the code."""
    for page in _doc_pages():
        text = _read(page)
        for path in re.findall(r"(?<![\w./-])(mediastore/(?:[\w/]*\w\.py|[\w/]+/))", text):
            assert (REPO / path).exists(), (page.name, path)
        for dotted in re.findall(r"(?<![\w./-])(mediastore(?:\.[a-z_]\w*)+)", text):
            if dotted != "mediastore.toml":
                assert _resolves(dotted), (page.name, dotted)


def test_docs_point_nowhere_outside_the_repository() -> None:
    """The README and ``docs/`` speak of the repository only: no tracker numbers, no
    nickname for the previous system (it is "the legacy media_cache API" or "the old
    cache")."""
    for page in _doc_pages():
        text = _read(page)
        assert not re.search(r"\bissues? #?\d+|\bseed\b", text, flags=re.IGNORECASE), page.name


# --- installing ------------------------------------------------------------------------------
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


# --- the benchmarks ------------------------------------------------------------------------
def _benchmarks() -> object:
    sys.path.insert(0, str(REPO))
    try:
        return importlib.import_module("benchmarks.__main__")
    finally:
        sys.path.remove(str(REPO))


def test_benchmark_smoke_runs_write_outside_the_checkout() -> None:
    """``python -m benchmarks --quick`` (and --only) never rewrite a tracked results file."""
    default_output = _benchmarks().default_output  # type: ignore[attr-defined]
    assert default_output(False, False) == REPO / "benchmarks" / "RESULTS.md"
    for quick, partial in ((True, False), (False, True), (True, True)):
        out = default_output(quick, partial)
        assert not out.resolve().is_relative_to(REPO), out
        assert out.parent.is_dir()


def test_benchmarks_readme_describes_every_case() -> None:
    """``benchmarks/README.md`` has a row for every case and names every group."""
    cases = _benchmarks().CASES  # type: ignore[attr-defined]
    text = _read(REPO / "benchmarks" / "README.md")
    rows = re.findall(r"^\| `([\w-]+)` \| (\w+) \|", text, flags=re.MULTILINE)
    assert rows == [(case.key, case.group) for case in cases]
