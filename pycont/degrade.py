"""Cell by cell: where a chapter's experiments cannot run, each cell says so in one line.

A chapter that needs namespaces, opened where there are none (and no lab VM either), would
otherwise fail at its first container and then cascade: every later cell a ``NameError`` about
the container that was never made, and "Run All" stopped at the first one. With the guard on,
an exception in a cell becomes one labelled line::

    skipped: needs namespaces; here: unprivileged: no user namespaces, no isolation
             (ContainerError: clone(...): Operation not permitted)

and the cell ends normally, so "Run All" goes on to the next one. The exception's own line
stays in the message: a typo in the learner's code still shows what it was.

How: an IPython AST transformer (the documented hook, ``shell.ast_transformers``) wraps each
cell in ``try``/``except Exception``; the value of a last expression is still displayed.
KeyboardInterrupt and SystemExit are not caught: an interrupt still interrupts.
"""

from __future__ import annotations

import ast
from typing import Any

_RESULT = "_pycont_cell_result"


def skipped_line(need: str, here: str, err: BaseException) -> str:
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    detail = f"{type(err).__name__}: {first}" if first else type(err).__name__
    return f"skipped: needs {need}; here: {here} ({detail})"


class _Guard(ast.NodeTransformer):
    """Wraps a cell's statements in try/except; keeps its last expression displayed."""

    def __init__(self, need: str, here: str) -> None:
        self.need = need
        self.here = here

    def visit_Module(self, node: ast.Module) -> ast.Module:
        if not node.body:
            return node
        body = list(node.body)
        last_expr = isinstance(body[-1], ast.Expr)
        if last_expr:
            value = body.pop().value  # type: ignore[attr-defined]
            body.append(ast.Assign(targets=[ast.Name(_RESULT, ast.Store())], value=value))
        report = "__import__('pycont.degrade').degrade.report"
        call = f"{report}({self.need!r}, {self.here!r}, _pycont_err)"
        handler = ast.ExceptHandler(
            type=ast.Name("Exception", ast.Load()),
            name="_pycont_err",
            body=list(ast.parse(call).body),
        )
        if last_expr:
            handler.body.append(
                ast.Assign(targets=[ast.Name(_RESULT, ast.Store())], value=ast.Constant(None))
            )
        new: list[ast.stmt] = [ast.Try(body=body, handlers=[handler], orelse=[], finalbody=[])]
        if last_expr:
            new.append(ast.Expr(ast.Name(_RESULT, ast.Load())))
        node.body = new
        return ast.fix_missing_locations(node)


def report(need: str, here: str, err: BaseException) -> None:
    """Print the one line a skipped cell leaves (called from the guarded cell)."""
    print(skipped_line(need, here, err))


def install(need: str, here: str, shell: Any = None) -> bool:
    """Guard every later cell of this IPython session; False outside IPython."""
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        shell = get_ipython()
    if shell is None:
        return False
    remove(shell)
    shell.ast_transformers.append(_Guard(need, here))
    return True


def remove(shell: Any = None) -> None:
    """Take the guard off (a chapter that does run here, after one that did not)."""
    if shell is None:
        from IPython import get_ipython

        shell = get_ipython()
    if shell is not None:
        shell.ast_transformers[:] = [t for t in shell.ast_transformers if not isinstance(t, _Guard)]


def current(shell: Any = None) -> tuple[str, str] | None:
    """(need, here) of the guard on this session, or None when cells run unguarded."""
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return None
        shell = get_ipython()
    if shell is None:
        return None
    for t in shell.ast_transformers:
        if isinstance(t, _Guard):
            return t.need, t.here
    return None


def active(shell: Any = None) -> bool:
    return current(shell) is not None
