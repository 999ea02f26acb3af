"""Run each chapter with its exercise cells replaced by their solutions; every check must say ✓.

    .venv/bin/python notebooks/_src/check_solutions.py          # every chapter with exercises
    .venv/bin/python notebooks/_src/check_solutions.py ch03     # one chapter

Run it as root, like the committed run. The committed notebooks keep the learner's empty
answers (their check cells print ✗); this proves the other half: that the solutions folded under
each exercise really pass their check cells. The solutions are the ones the chapter modules
declare (``EXERCISES``, see skeleton.py), the same text build.py folds into the notebooks, and the
notebook run is the one build.py generates, in memory: nothing on disk changes.
Exit status 1 if any check is not ✓.
"""

from __future__ import annotations

import sys
import time

import nbformat
from build import NOTEBOOKS, SOURCES, notebook
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def with_solutions(modname: str) -> tuple[nbformat.NotebookNode, dict[int, int], str]:
    """``modname``'s notebook with the solutions in, its check cells (exercise -> cell index)
    and its file name."""
    nb, cells, file = notebook(modname)
    mod = sys.modules[modname]
    checks = {}
    for i, cell in enumerate(cells):
        if cell.role is not None and len(cell.role) == 3:  # ("exercise", n, i)
            n, j = cell.role[1], cell.role[2]
            nb.cells[i].source = mod.EXERCISES[n - 1].solutions[j].strip("\n")
        elif cell.role is not None:  # ("check", n)
            checks[cell.role[1]] = i
    return nb, checks, file


def run(modname: str) -> int:
    """Execute ``modname``'s notebook with the solutions in; return how many checks fail."""
    nb, checks, file = with_solutions(modname)
    if not checks:
        return 0
    t0 = time.monotonic()
    client = NotebookClient(nb, timeout=180, resources={"metadata": {"path": str(NOTEBOOKS)}})
    try:
        client.execute()
    except CellExecutionError as err:
        print(f"{file}: a cell failed: {str(err).strip().splitlines()[-1]}")
        # The chapter's clean-up cell did not run: run its setup cell (whose Chapter removes
        # what the run left) and the clean-up, so that nothing is left behind.
        setup = next(c.source for c in nb.cells if c.source.startswith("%load_ext pycont"))
        rescue = nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_code_cell(setup), nbformat.v4.new_code_cell("course.clean()")]
        )
        NotebookClient(
            rescue, timeout=120, resources={"metadata": {"path": str(NOTEBOOKS)}}
        ).execute()
        return len(checks)
    failed = 0
    for n, i in sorted(checks.items()):
        text = "".join(o.get("text", "") for o in nb.cells[i].get("outputs", [])).strip()
        ok = text.startswith("✓") and "✗" not in text
        failed += not ok
        print(f"{file}: {text if text else f'exercise {n}: the check printed nothing'}")
    print(f"{file}: {time.monotonic() - t0:.0f} s")
    return failed


def main(argv: list[str]) -> int:
    t0 = time.monotonic()
    failed = sum(run(name) for name in (argv or SOURCES))
    took = f"in {time.monotonic() - t0:.0f} s"
    print(f"all solutions pass ({took})" if not failed else f"{failed} check(s) fail ({took})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
