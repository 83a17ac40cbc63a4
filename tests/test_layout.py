"""The package tree follows the pipeline: each stage imports only itself and the stages before it,
and no import circle exists anywhere in ``analyzer`` (imports inside functions and under
TYPE_CHECKING count too: a circle hidden in a function is still a circle)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "analyzer"

# The pipeline's stages in order, then the edges (I/O and the command line), in order.
STAGES = ["base", "source", "packets", "flows", "protocols", "events", "contacts", "attribution",
          "findings", "causes", "pipeline", "report"]
EDGES = ["filters", "probe", "live", "commands", "cli"]
ORDER = {name: i for i, name in enumerate(STAGES + EDGES)}


def _modules() -> dict[str, Path]:
    mods = {}
    for path in ROOT.rglob("*.py"):
        parts = ("analyzer",) + path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every analyzer module that ``name`` imports, anywhere in the file."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("analyzer"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[:len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if not base.startswith("analyzer"):
                continue
            subs = {f"{base}.{a.name}" for a in node.names} & MODULES.keys()
            out.update(subs)
            if len(subs) < len(node.names):
                out.add(base)
    return {m for m in out if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_package_has_a_stage() -> None:
    unknown = {_stage(m) for m in MODULES} - set(ORDER) - {None}
    assert not unknown, f"packages with no place in the pipeline: {sorted(unknown)}"


def _backward(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for mod, deps in graph.items():
        here = _stage(mod)
        for dep in deps:
            there = _stage(dep)
            if here is None or there is None:
                continue
            if ORDER[there] > ORDER[here]:
                bad.append(f"{mod} imports {dep} ({here} comes before {there})")
    return sorted(bad)


def test_no_backward_import_between_stages() -> None:
    bad = _backward(GRAPH)
    assert not bad, "\n".join(bad)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle() -> None:
    assert _cycles(GRAPH) == []


def test_the_checks_see_a_circle_and_a_backward_import() -> None:
    # the graph is real: the pipeline wires the stages, and the contacts read the events
    assert "analyzer.contacts.build" in GRAPH["analyzer.pipeline.offline"]
    assert "analyzer.events.records" in GRAPH["analyzer.contacts.build"]
    graph = {m: set(deps) for m, deps in GRAPH.items()}
    graph["analyzer.events.records"].add("analyzer.contacts.build")
    assert ["analyzer.contacts.build", "analyzer.events.records"] in _cycles(graph)
    assert _backward(graph) == ["analyzer.events.records imports analyzer.contacts.build "
                                "(events comes before contacts)"]
