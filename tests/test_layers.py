"""Imports only run downward: every module under src/docalign, parsed (not imported), against the layer order.

A module may import from its own group (e.g. ``docalign.models.backbone`` from ``docalign.models.layoutlm``) and from
any group on a lower floor, never from a sibling group on its own floor or from above; and no two modules may import
each other, directly or round a longer loop (imports inside functions count: they are the same dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Floors, lowest first; each floor holds groups of module prefixes.
LAYERS: list[list[tuple[str, ...]]] = [
    [("docalign", "docalign.conventions", "docalign.hub", "docalign.distributed", "docalign.resume")],  # ground floor
    [("docalign.ocr",)],
    [("docalign.data",)],
    [("docalign.models",), ("docalign.losses",), ("docalign.metrics",), ("docalign.hub_replica",)],  # replica: data
    [("docalign.alignment",)],  # alignment components: encoders (models) + their losses, injected into systems
    [("docalign.systems",)],
    [("docalign.inference",)],  # ``docalign predict`` and ``export``: trained systems on pages, exported folders
    [("docalign.compare",)],  # ``docalign compare``: reads TensorBoard logs, imports no other docalign module
    [("docalign.cli", "docalign.cli_errors")],  # the command and its parse-stage checks
]


def module_files() -> dict[str, Path]:
    files = {}
    for path in sorted((SRC / "docalign").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """The docalign modules that ``name`` imports, anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # ``from pkg import sub`` imports the module pkg.sub; ``from pkg import name``, pkg itself
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # ``import docalign.x.y`` of a name -> the module holding it
                target = target.rpartition(".")[0]
            if target.startswith("docalign") and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imports_of(name, path, set(files)) for name, path in files.items()}


def place(module: str) -> tuple[int, int]:
    """(floor, group) of ``module``: the group with the longest matching prefix."""
    best, where = -1, None
    for floor, groups in enumerate(LAYERS):
        for group, prefixes in enumerate(groups):
            for prefix in prefixes:
                matches = module == prefix or (prefix != "docalign" and module.startswith(prefix + "."))
                if matches and len(prefix) > best:
                    best, where = len(prefix), (floor, group)
    assert where is not None, f"{module} is on no floor of LAYERS: add it"
    return where


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for succ in sorted(graph.get(node, ())):
            if state.get(succ) == 1:
                return path[path.index(succ) :] + [succ]
            if succ not in state and (cycle := visit(succ)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_sees_the_imports():
    graph = import_graph()
    assert "docalign.systems.base" in graph and "docalign.cli" in graph
    assert "docalign.systems.base" in graph["docalign.cli"]
    assert "docalign.conventions" in graph["docalign.data.encoding"]


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_imports_run_downward():
    wrong = []
    for module, targets in sorted(import_graph().items()):
        floor, group = place(module)
        for target in sorted(targets):
            t_floor, t_group = place(target)
            if t_floor > floor or (t_floor == floor and t_group != group):
                wrong.append(f"{module} (floor {floor}) imports {target} (floor {t_floor})")
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_cycle_finder_finds_a_loop():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
