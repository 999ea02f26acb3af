"""The lifecycle has one door: only ``pycont/runtime/state.py`` changes a container's status.

Read from the source with :mod:`ast` (nothing imported): no other module assigns a ``.status``
attribute or a ``["status"]`` key, calls ``setattr(x, "status", ...)`` or
``dataclasses.replace(x, status=...)``, or writes ``state.json`` itself (``save_state``), so
every status change goes through ``state.transition`` and its ``check_transition``. And the
runtime draws nothing: the notebook layer registers the HTML (pycont.display).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pycont"
STATE = PACKAGE / "runtime" / "state.py"
# file (relative to pycont/) -> why its `.status` is not a container's (checked with grep).
NOT_CONTAINER_STATUS = {
    "images/progress.py": "a pulled layer's progress line ('Pull complete'), docker pull's output",
}
# Writes the first record of a new container: a creation, not a status change.
SAVE_STATE_ALLOWED = {"runtime/state.py", "runtime/api.py"}


def sources() -> list[tuple[str, ast.Module]]:
    return [
        (str(p.relative_to(PACKAGE)), ast.parse(p.read_text(), str(p)))
        for p in sorted(PACKAGE.rglob("*.py"))
    ]


def _status_target(node: ast.expr) -> bool:
    if isinstance(node, ast.Attribute):
        return node.attr == "status"
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value == "status"
    if isinstance(node, ast.Tuple | ast.List):
        return any(_status_target(e) for e in node.elts)
    return False


def status_changes(tree: ast.Module) -> list[int]:
    """Line numbers where the code sets a status."""
    lines = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        elif isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            args = node.args
            if (
                name == "setattr"
                and len(args) > 1
                and isinstance(args[1], ast.Constant)
                and args[1].value == "status"
            ):
                lines.append(node.lineno)
            if name.endswith("replace") and any(k.arg == "status" for k in node.keywords):
                lines.append(node.lineno)
        if any(_status_target(t) for t in targets):
            lines.append(node.lineno)
    return lines


def test_the_scan_finds_what_it_looks_for() -> None:
    code = (
        "rec.status = 'exited'\n"
        "doc['status'] = 'x'\n"
        "a.b.status += 'y'\n"
        "setattr(rec, 'status', 1)\n"
        "dataclasses.replace(rec, status=2)\n"
        "print(rec.status)\n"
        "x = {'status': 1}\n"
    )
    assert status_changes(ast.parse(code)) == [1, 2, 3, 4, 5]


def test_only_state_py_changes_a_container_status() -> None:
    found = [
        f"pycont/{name}:{line}"
        for name, tree in sources()
        if name != "runtime/state.py" and name not in NOT_CONTAINER_STATUS
        for line in status_changes(tree)
    ]
    assert found == [], "status set outside state.transition():\n" + "\n".join(found)


def test_state_json_is_written_only_by_the_state_module() -> None:
    found = [
        f"pycont/{name}:{node.lineno}"
        for name, tree in sources()
        if name not in SAVE_STATE_ALLOWED
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("save_state")
    ]
    assert found == []


def test_the_shim_and_the_container_change_status_through_transition() -> None:
    # The claim of chapter 07: every change goes through transition() / check_transition.
    for name in ("runtime/shim.py", "runtime/_container.py"):
        text = (PACKAGE / name).read_text()
        assert "st.transition(" in text, name
        assert "modify_state" not in text, name


def test_the_runtime_imports_no_presentation() -> None:
    found = []
    for name, tree in sources():
        if not name.startswith("runtime/"):
            continue
        for node in ast.walk(tree):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mods = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            found += [f"pycont/{name}: {m}" for m in mods if m.startswith("pycont.display")]
            if isinstance(node, ast.FunctionDef) and node.name == "_repr_html_":
                found.append(f"pycont/{name}: defines _repr_html_")
    assert found == []
