"""Seams inside the package, read from the source with ``ast``, nothing imported.

- Imports point one way: no cycle among ``mediastore`` modules, counting every import
  statement wherever it is (module level, inside a function, under ``if TYPE_CHECKING:``),
  relative or absolute.
- Layers: every module belongs to one layer of :data:`LAYERS` and imports only from its own
  layer or the ones below it; the bytes (``blobs``) and the index (``catalog``) never import
  each other.
- No module reaches into another object's underscore names: ``x._name`` where ``x`` is not
  ``self``/``cls`` (or ``super()``), ``getattr(x, "_name")``, ``from .mod import _name``.
  Dunders are public protocol; the namedtuple API (``_asdict``, ``_replace``, ``_fields``,
  ``_mapping``...) of third-party rows is public by design.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "mediastore"
#: Underscore names that are public API of namedtuples and SQLAlchemy rows (and os._exit).
NAMEDTUPLE_API = frozenset(
    {"_asdict", "_replace", "_fields", "_mapping", "_make", "_field_defaults", "_exit"}
)
OWN = frozenset({"self", "cls"})
ATTR_FUNCS = frozenset({"getattr", "setattr", "hasattr", "delattr"})

#: The package's layers, lowest first: (name, modules). ``pkg.*`` is a package and all its
#: modules. A module imports only from its own layer and those below; a new module is placed
#: here on purpose (an unplaced module fails the test).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "base",
        (
            "version",
            "errors",
            "types",
            "records",
            "config",
            "hashing",
            "units",
            "settings",
            "identity",
            "references",
            "similarity",
        ),
    ),
    ("formats", ("formats.*",)),
    ("storage", ("blobs.*", "catalog.*")),
    ("ingest", ("ingest", "lifecycle", "verify", "listing", "export", "ownership")),
    ("network", ("net.*",)),
    ("operations", ("maintenance", "migrate", "thumbnails", "duplicates")),
    ("facade", ("store",)),
    # programs and the API's front: the CLI, the child of a download process, the legacy
    # functions, the test helpers and the package's __init__
    ("front", ("", "__main__", "launch", "cli.*", "net.child", "compat", "testing", "serve.*")),
)
#: Packages of one layer that must not import each other (bytes and index stay apart).
APART: tuple[tuple[str, str], ...] = (("blobs", "catalog"),)


def _package_dir() -> Path:
    """Where ``mediastore`` would be imported from (found, not imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    assert spec is not None and spec.submodule_search_locations, "mediastore is not importable"
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool


def modules(package_dir: Path, package: str) -> dict[str, Module]:
    """Every module of the package by dotted name (``pkg.sub`` for ``pkg/sub/__init__.py``)."""
    found: dict[str, Module] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        name = ".".join([package, *parts])
        found[name] = Module(name, path, is_package)
    return found


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _resolve(module: Module, target: str | None, level: int) -> str:
    """The absolute module an ``ImportFrom`` names."""
    if level == 0:
        return target or ""
    base = module.name.split(".")
    if not module.is_package:
        base.pop()
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports(module: Module, known: dict[str, Module]) -> Iterator[tuple[str, int]]:
    """(imported package module, line) for every import statement of ``module``."""
    tree = ast.parse(module.path.read_text(), str(module.path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.name
                while name and name not in known:
                    name = name.rpartition(".")[0]
                if name:
                    yield name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node.module, node.level)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in known:
                    yield sub, node.lineno
                elif base in known:
                    yield base, node.lineno


def import_cycles(package_dir: Path, package: str) -> list[str]:
    """Each cycle among the package's modules, spelled out with the line of every import."""
    known = modules(package_dir, package)
    edges: dict[str, dict[str, int]] = {name: {} for name in known}
    for name, module in known.items():
        for target, line in imports(module, known):
            if target != name:
                edges[name].setdefault(target, line)
    problems = []
    for component in _strongly_connected(edges):
        if len(component) < 2:
            continue
        cycle = _one_cycle(edges, component)
        hops = " -> ".join(
            f"{a} (line {edges[a][b]} of {known[a].path.relative_to(package_dir.parent)})"
            for a, b in zip(cycle, [*cycle[1:], cycle[0]], strict=True)
        )
        problems.append(f"{sorted(component)}: {hops} -> {cycle[0]}")
    return sorted(problems)


def _strongly_connected(edges: dict[str, dict[str, int]]) -> list[set[str]]:
    """Tarjan's algorithm (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[set[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                out.append(component)
    return out


def _one_cycle(edges: dict[str, dict[str, int]], component: set[str]) -> list[str]:
    """A shortest cycle through the component's first module (breadth-first)."""
    start = min(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(edges[node]):
                if child not in component:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return path[::-1]
                if child not in previous:
                    previous[child] = node
                    nxt.append(child)
        frontier = nxt
    raise AssertionError(f"no cycle in {component}")  # pragma: no cover


def _matches(name: str, pattern: str) -> bool:
    if pattern.endswith(".*"):
        return name == pattern[:-2] or name.startswith(pattern[:-1])
    return name == pattern


def layer_of(
    name: str, package: str, layers: tuple[tuple[str, tuple[str, ...]], ...] = LAYERS
) -> int | None:
    """The index in ``layers`` of a module (by dotted name), the most specific pattern first
    (``net.child`` before ``net.*``), or None when no layer names it."""
    local = name[len(package) + 1 :] if name != package else ""
    best: tuple[int, int] | None = None  # (specificity, layer)
    for index, (_, patterns) in enumerate(layers):
        for pattern in patterns:
            if _matches(local, pattern):
                specific = len(pattern) + (0 if pattern.endswith(".*") else 1000)
                if best is None or specific > best[0]:
                    best = (specific, index)
    return None if best is None else best[1]


def layer_problems(
    package_dir: Path,
    package: str,
    layers: tuple[tuple[str, tuple[str, ...]], ...] = LAYERS,
    apart: tuple[tuple[str, str], ...] = APART,
) -> list[str]:
    """Unplaced modules, imports from a higher layer, and imports between packages kept apart."""
    known = modules(package_dir, package)
    problems = []
    for name, module in sorted(known.items()):
        mine = layer_of(name, package, layers)
        if mine is None:
            problems.append(f"{name}: in no layer (place it in LAYERS)")
            continue
        where = module.path.relative_to(package_dir.parent)
        for target, line in imports(module, known):
            theirs = layer_of(target, package, layers)
            if theirs is not None and theirs > mine:
                problems.append(
                    f"{where}:{line}: {name} ({layers[mine][0]}) imports {target} "
                    f"({layers[theirs][0]}, a higher layer)"
                )
            for a, b in apart:
                for mine_pkg, their_pkg in ((a, b), (b, a)):
                    if _matches(name, f"{package}.{mine_pkg}.*") and _matches(
                        target, f"{package}.{their_pkg}.*"
                    ):
                        problems.append(f"{where}:{line}: {name} imports {target} (kept apart)")
    return problems


def private_reach_ins(package_dir: Path, package: str) -> list[str]:
    """Every use of another object's (or module's) underscore name, as ``file:line: what``."""
    problems = []
    for module in modules(package_dir, package).values():
        where = module.path.relative_to(package_dir.parent)
        tree = ast.parse(module.path.read_text(), str(module.path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _is_private(node.attr):
                if node.attr in NAMEDTUPLE_API or _is_own(node.value):
                    continue
                problems.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(module, node.module, node.level)
                problems.extend(
                    f"{where}:{node.lineno}: from {source} import {alias.name}"
                    for alias in node.names
                    if _is_private(alias.name)
                )
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ATTR_FUNCS
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
                and _is_private(node.args[1].value)
                and node.args[1].value not in NAMEDTUPLE_API
                and not _is_own(node.args[0])
            ):
                problems.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
    return sorted(problems, key=_by_place)


def _by_place(problem: str) -> tuple[str, int, str]:
    """Sort ``file:line: what`` by file, then line number."""
    path, line, what = problem.split(":", 2)
    return path, int(line), what


def _is_own(value: ast.expr) -> bool:
    """``self``, ``cls`` or ``super()``: an object reaching into its own names."""
    if isinstance(value, ast.Name):
        return value.id in OWN
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "super"
    )


# --- the rules, on mediastore -----------------------------------------------------------------
def test_mediastore_imports_point_one_way() -> None:
    """No import cycle among mediastore's modules, TYPE_CHECKING and function-level imports
    included, relative and absolute."""
    package_dir = _package_dir()
    assert len(modules(package_dir, PACKAGE)) > 10  # really looking at the package
    cycles = import_cycles(package_dir, PACKAGE)
    assert cycles == [], "import cycles:\n  " + "\n  ".join(cycles)


def test_every_module_imports_only_from_its_layer_and_below() -> None:
    """Each mediastore module sits in one layer of LAYERS and imports nothing from a higher
    one; blobs and catalog do not import each other."""
    problems = layer_problems(_package_dir(), PACKAGE)
    assert not problems, "layering broken:\n" + "\n".join(problems)


def test_the_layer_check_finds_upward_imports_and_unplaced_modules(tmp_path: Path) -> None:
    """A low module importing a high one, a module no layer names, and an import between two
    packages kept apart are each reported; the allowed downward import is not."""
    pkg = tmp_path / "fake"
    (pkg / "blobs").mkdir(parents=True)
    (pkg / "catalog").mkdir()
    for path in ("__init__.py", "blobs/__init__.py", "catalog/__init__.py"):
        (pkg / path).write_text("")
    (pkg / "low.py").write_text("from . import high\n")
    (pkg / "high.py").write_text("from . import low\n")
    (pkg / "stray.py").write_text("")
    (pkg / "blobs" / "disk.py").write_text("from ..catalog import rows\n")
    (pkg / "catalog" / "rows.py").write_text("")
    layers = (("low", ("", "low")), ("storage", ("blobs.*", "catalog.*")), ("high", ("high",)))
    problems = layer_problems(pkg, "fake", layers, (("blobs", "catalog"),))
    assert problems == [
        "fake/blobs/disk.py:1: fake.blobs.disk imports fake.catalog.rows (kept apart)",
        "fake/low.py:1: fake.low (low) imports fake.high (high, a higher layer)",
        "fake.stray: in no layer (place it in LAYERS)",
    ]


def test_no_module_reaches_into_private_names() -> None:
    """No mediastore module uses another object's underscore names (``x._name`` with x not
    self/cls, ``getattr(x, "_name")``, ``from .mod import _name``)."""
    found = private_reach_ins(_package_dir(), PACKAGE)
    assert found == [], f"{len(found)} reach-in(s):\n  " + "\n  ".join(found)


# --- the rules can fail ---------------------------------------------------------------------
@pytest.fixture
def fake_package(tmp_path: Path) -> Path:
    """A small package with known cycles and reach-ins (never imported, only parsed)."""
    pkg = tmp_path / "fakepkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from .facade import Facade\n__all__ = ['Facade']\n",
        # a cycle only through TYPE_CHECKING: facade -> helper -> facade
        "facade.py": (
            "from . import helper\n"
            "class Facade:\n"
            "    def __init__(self):\n        self._catalog = object()\n"
            "    def run(self):\n        return self._catalog, super()._hidden\n"
        ),
        "helper.py": (
            "from __future__ import annotations\nfrom typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from .facade import Facade\n"
            "def work(f: Facade, row):\n"
            "    row._asdict(); row._mapping; f.__class__\n"
            "    return f._catalog.query()\n"
        ),
        # an absolute, function-level cycle: sub.leaf -> sub -> sub.leaf
        "sub/__init__.py": "import fakepkg.sub.leaf\n",
        "sub/leaf.py": (
            "from ..helper import _private_fn, __doc__\n"
            "def late():\n    from fakepkg import sub\n    return getattr(sub, '_cache')\n"
        ),
        "lone.py": "import os\nfrom fakepkg.helper import work\nos.getcwd(); os.__name__\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    return pkg


def test_the_cycle_check_finds_cycles(fake_package: Path) -> None:
    """The cycle check reports a TYPE_CHECKING cycle and an absolute function-level one, and
    only those."""
    cycles = import_cycles(fake_package, "fakepkg")
    assert len(cycles) == 2, cycles
    assert cycles[0].startswith("['fakepkg.facade', 'fakepkg.helper']")
    assert cycles[1].startswith("['fakepkg.sub', 'fakepkg.sub.leaf']")
    assert "line 4 of fakepkg/helper.py" in cycles[0]


def test_the_reach_in_check_finds_reach_ins(fake_package: Path) -> None:
    """The reach-in check reports ``f._catalog``, ``getattr(sub, '_cache')`` and
    ``import _private_fn``, and none of self/super()/dunder/namedtuple uses."""
    found = private_reach_ins(fake_package, "fakepkg")
    assert found == [
        "fakepkg/helper.py:7: f._catalog",
        "fakepkg/sub/leaf.py:1: from fakepkg.helper import _private_fn",
        "fakepkg/sub/leaf.py:4: getattr(sub, '_cache')",
    ], found
