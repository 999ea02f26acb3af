"""The package's imports point down, as docs/DESIGN.md draws its layers: no import circles.

Reads every module of ``pycont/`` with :mod:`ast` (nothing is imported), builds the graph of
which module imports which, counting imports inside functions too (they still tie the two
modules together), and checks it: no strongly connected component of more than one module,
and no import from a lower layer into a higher one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pycont"

# Layer by layer, what a module may not import (prefixes of module names).
NOTEBOOK = (
    "pycont.magics",
    "pycont.widgets",
    "pycont.display",
    "pycont.display_probe",
    "pycont.course",
)
TOOLS = (
    "pycont.cli",
    "pycont.cli_",
    "pycont.monitor",
    "pycont.stats_table",
    "pycont.oci",
    "pycont.compose",
)
PRIMITIVES = (
    "pycont.cgroups",
    "pycont.namespaces",
    "pycont.overlay",
    "pycont.rootfs",
    "pycont.security",
    "pycont.volumes",
    "pycont.images",
    "pycont.fsutil",
    "pycont.procfs",
    "pycont.format",
    "pycont.paths",
    "pycont.errors",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The pycont modules ``name`` imports, anywhere in its body. ``from pycont.x import y``
    counts as importing ``pycont.x.y`` when that is a module, else ``pycont.x``."""
    known = set(known)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in known:
                    out.add(full)
                elif base in known:
                    out.add(base)
    out.discard(name)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: imports_of(name, path, mods) for name, path in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
    return sorted(found)


def _in(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p if p.endswith("_") else p + ".") for p in prefixes)


def violations(
    graph: dict[str, set[str]], who: tuple[str, ...], banned: tuple[str, ...]
) -> list[str]:
    return sorted(
        f"{m} imports {t}"
        for m, targets in graph.items()
        if _in(m, who)
        for t in targets
        if _in(t, banned)
    )


def test_cycles_finds_every_circle_and_nothing_else() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}, "f": {"a"}}
    assert cycles(graph) == [["a", "b", "c"], ["d", "e"]]


def test_the_graph_sees_function_level_imports() -> None:
    graph = import_graph()
    assert "pycont.kernel" in graph and "pycont.images.store" in graph
    assert "pycont.images.layers" in graph["pycont.images.store"]  # imported in a method
    assert "pycont.fsutil" in graph["pycont.overlay"]


def test_no_import_circles() -> None:
    found = cycles(import_graph())
    assert not found, "import circles (each a group of modules that import each other):\n" + (
        "\n".join(" <-> ".join(c) for c in found)
    )


def test_the_kernel_seam_imports_only_itself_errors_and_fsutil() -> None:
    graph = import_graph()
    bad = sorted(
        f"{m} imports {t}"
        for m, targets in graph.items()
        if _in(m, ("pycont.kernel",))
        for t in targets
        if not _in(t, ("pycont.kernel", "pycont.errors", "pycont.fsutil"))
    )
    assert not bad, "\n".join(bad)


def test_primitives_do_not_import_the_engine_or_the_tools() -> None:
    bad = violations(import_graph(), PRIMITIVES, ("pycont.runtime", *TOOLS, *NOTEBOOK))
    assert not bad, "\n".join(bad)


def test_the_runtime_does_not_import_the_tools_or_the_notebook_layer() -> None:
    bad = violations(import_graph(), ("pycont.runtime",), (*TOOLS, *NOTEBOOK))
    assert not bad, "\n".join(bad)
