"""The package along its seams: every module imports on its own, and no module imports back into one that imports it.

The import graph is read from the source with `ast`, counting every import, also those inside
functions (a lazy import hides a cycle from the interpreter, not from the design). Importing
`generator.a.b` runs `generator/a/__init__.py` too, so the package's own imports count for it.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "generator"


def modules(package: Path) -> dict[str, Path]:
    """Dotted name → source file of every module of the package."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module → the package's modules it imports (anywhere in its source), with their parent packages."""
    mods = modules(package)
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        here = name if is_pkg else name.rpartition(".")[0]  # what `from . import` means in this file
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = here.rsplit(".", node.level - 1)[0] if node.level else ""
                base = ".".join(p for p in (base, node.module or "") if p)
                targets.add(base)
                targets.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in mods)
        edges = set()
        for t in targets:
            if t not in mods:
                continue
            # an import also runs the target's parent packages, unless this module is inside them already
            for m in [*_ancestors(t), t]:
                if m != name and m not in _ancestors(name):
                    edges.add(m)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (as a path a → … → a), or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph(PACKAGE)
    assert {"generator.cli", "generator.locking", "generator.locking.resolvers", "generator.core.http"} <= set(graph)
    assert "generator.locking" in graph["generator.cli.lock"], "the graph must see imports inside functions (cli_lock's)"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def test_the_cycle_finder_finds_a_lazy_import_cycle(tmp_path: Path) -> None:
    """As on the code before the split: lock imported refresh inside a function, and refresh imported lock."""
    pkg = tmp_path / "generator"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "lock.py").write_text("def relock():\n    from .refresh import RefreshError\n")
    (pkg / "refresh.py").write_text("def default_relock():\n    from . import lock\n")
    (pkg / "sub" / "__init__.py").write_text("from .a import x\n")
    (pkg / "sub" / "a.py").write_text("from ..errors import E\nx = 1\n")  # inside its own package: no cycle
    (pkg / "errors.py").write_text("E = 1\n")
    graph = import_graph(pkg)
    assert graph["generator.sub.a"] == {"generator.errors"}
    assert find_cycle(graph) == ["generator.lock", "generator.refresh", "generator.lock"]


# The pipelines, bottom up: a module imports only from its own package or a lower layer, never a
# peer's (images and locking are peers, and so are app and refresh) or a higher one's.
LAYERS = {
    "generator": 0,  # the package's __init__: the version and the one Ctrl-C line
    "generator.core": 0,
    "generator.schedule": 1,
    "generator.images": 2,
    "generator.locking": 2,
    "generator.app": 3,
    "generator.refresh": 3,
    "generator.cli": 4,
    "generator.docs": 5,
    "generator.__main__": 5,
}


def layer_of(name: str) -> str:
    """The layer a module belongs to: its package below generator (generator itself for the __init__)."""
    parts = name.split(".")
    return ".".join(parts[:2])


def layering_violations(graph: dict[str, set[str]]) -> list[str]:
    out = []
    for name, targets in sorted(graph.items()):
        mine = layer_of(name)
        for target in sorted(targets):
            theirs = layer_of(target)
            if theirs != mine and LAYERS[theirs] >= LAYERS[mine] and theirs != "generator":
                out.append(f"{name} → {target} ({mine} may import only from layers below it)")
    return out


def test_every_module_is_in_a_layer() -> None:
    unplaced = sorted({layer_of(n) for n in modules(PACKAGE)} - set(LAYERS) - {"generator.incontainer", "generator.templates"})
    assert not unplaced, f"modules outside the layers (add them to a package, or to LAYERS): {unplaced}"


def test_imports_go_down_the_pipelines_only() -> None:
    """cli → app/refresh → images/locking → schedule → core: the direction a newcomer reads the tree in."""
    assert layering_violations(import_graph(PACKAGE)) == []


def test_the_layer_check_sees_a_peer_import() -> None:
    graph = {"generator.images.build": {"generator.locking.target"}, "generator.app.x": {"generator.images.render", "generator.core.errors"}}
    assert layering_violations(graph) == ["generator.images.build → generator.locking.target (generator.images may import only from layers below it)"]
    assert layering_violations({"generator.core.http": {"generator.cli.options"}})  # upward


@pytest.mark.parametrize("name", sorted(set(modules(PACKAGE)) - {"generator.__main__"}))  # __main__ runs the CLI
def test_every_module_imports_on_its_own(name: str) -> None:
    importlib.import_module(name)


MAX_LINES = 500  # split a module past this along its seams


@pytest.mark.parametrize("name", sorted(modules(PACKAGE)))
def test_no_module_is_past_the_size_where_it_should_be_split(name: str) -> None:
    lines = len(modules(PACKAGE)[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it along its seams"


@pytest.mark.parametrize("path", sorted((PACKAGE / "incontainer").glob("*.py")), ids=lambda p: p.name)
def test_in_container_scripts_run_under_python_2(path: Path) -> None:
    """They run inside the python2 images too: ASCII only (Python 2 refuses other bytes without a coding line)."""
    data = path.read_bytes()
    assert data.isascii(), [i + 1 for i, line in enumerate(data.splitlines()) if not line.isascii()]
    assert b"from __future__ import print_function" in data or b"print(" not in data


def test_every_slow_fixture_the_markers_name_exists() -> None:
    """A fixture moved or renamed would silently lose its marker, and the fast loop would start an image build."""
    from tests.conftest import SLOW_FIXTURES

    for module, name in SLOW_FIXTURES:
        assert hasattr(importlib.import_module(module), name), f"{module} defines no fixture {name!r} (tests/conftest.py SLOW_FIXTURES)"
