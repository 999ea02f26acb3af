"""Generate the course notebooks from the chapter sources in this folder.

    .venv/bin/python notebooks/_src/build.py            # writes notebooks/NN-*.ipynb (no outputs)
    .venv/bin/jupyter nbconvert --to notebook --execute --inplace notebooks/NN-*.ipynb
    .venv/bin/python notebooks/_src/build.py --keep-outputs ch00 ch02   # markdown only

``--keep-outputs`` rebuilds the markdown (the navigation, the table of contents, the prose) of
notebooks that are already executed and keeps every code cell whose source did not change, with
its outputs, as it is: adding a chapter then needs no re-run of the others. It names the code
cells that did change (those have no outputs: execute that notebook again).

Each chapter module (``chNN.py``) defines ``FILE`` and ``CELLS``: a list of (kind, source) pairs,
kind "md", "code", or "code-ignore-output" (a code cell tagged for nbval not to compare its
output: for cell magics, which cannot start with a ``# NBVAL_IGNORE_OUTPUT`` comment).
The navigation line (previous | index | next) is generated here from ``CHAPTERS``, so the links
stay right when a chapter is added. Chapters without a file yet are listed, not linked.
Then run the notebooks as root (the committed outputs come from that run), and
``check_solutions.py`` to prove that the folded solutions pass their check cells.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
NOTEBOOKS = HERE.parent

# (number, title, file or None while it is not written yet)
CHAPTERS = [
    ("00", "Index", "00-index.ipynb"),
    ("01", "A container is a process on the host", "01-containers-are-processes.ipynb"),
    ("02", "Namespaces: what a process can see", "02-namespaces.ipynb"),
    ("03", "cgroups: how much a process can use", "03-cgroups.ipynb"),
    ("04", "OverlayFS: layers and the read/write layer", "04-overlayfs.ipynb"),
    ("05", "Images and registries", "05-images-and-registries.ipynb"),
    ("06", "Dockerfile and build", None),
    ("07", "Lifecycle and volumes", "07-lifecycle-and-volumes.ipynb"),
    ("08", "Containers vs virtual machines", None),
]
SOURCES = ["ch00", "ch01", "ch02", "ch03", "ch04", "ch05", "ch07"]


def nav(file: str) -> str:
    """``← previous | index | next →`` for the chapter in ``file``."""
    idx = next(i for i, c in enumerate(CHAPTERS) if c[2] == file)
    parts = []
    if idx > 0:
        num, title, f = CHAPTERS[idx - 1]
        parts.append(f"[← {num} {title}]({f})" if f else f"← {num} {title}")
    parts.append("[Index](00-index.ipynb)" if idx else "**Index**")
    if idx + 1 < len(CHAPTERS):
        num, title, f = CHAPTERS[idx + 1]
        parts.append(f"[{num} {title} →]({f})" if f else f"{num} {title} (coming soon) →")
    return " | ".join(parts)


def toc() -> str:
    rows = []
    for num, title, f in CHAPTERS[1:]:
        rows.append(f"{num}. [{title}]({f})" if f else f"{num}. {title} — *coming soon*")
    return "\n".join(rows)


def keep_outputs(nb: nbformat.NotebookNode, path: Path) -> list[str]:
    """Take the executed code cells of ``path`` whose source is unchanged into ``nb`` (outputs,
    execution counts, metadata), and its notebook metadata; return the ids of the others."""
    if not path.exists():
        return [c["id"] for c in nb.cells if c.cell_type == "code"]
    old = nbformat.read(path, as_version=4)
    before = {c.get("id"): c for c in old.cells}
    changed = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        prev = before.get(cell["id"])
        if prev is not None and prev.cell_type == "code" and prev.source == cell.source:
            nb.cells[i] = prev
        else:
            changed.append(cell["id"])
    nb.metadata = old.metadata
    return changed


def build(modname: str, keep: bool = False) -> Path:
    mod = importlib.import_module(modname)
    line = nav(mod.FILE)
    cells = [nbformat.v4.new_markdown_cell(line)]
    for kind, src in mod.CELLS:
        src = src.strip("\n").replace("{{TOC}}", toc())
        if kind == "md":
            cells.append(nbformat.v4.new_markdown_cell(src))
        elif kind == "code-ignore-output":
            # For cell magics, whose first line must be the magic: nbval reads the same marker
            # from the cell's tags as from a "# NBVAL_IGNORE_OUTPUT" comment.
            cell = nbformat.v4.new_code_cell(src)
            cell.metadata["tags"] = ["nbval-ignore-output"]
            cells.append(cell)
        else:
            cells.append(nbformat.v4.new_code_cell(src))
    cells.append(nbformat.v4.new_markdown_cell("---\n" + line))
    for i, cell in enumerate(cells):
        cell["id"] = f"{mod.FILE[:2]}-{i:03d}"  # stable ids: clean diffs between builds
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    out = NOTEBOOKS / mod.FILE
    if keep:
        for cell_id in keep_outputs(nb, out):
            print(f"{mod.FILE}: code cell {cell_id} is new or changed: execute this notebook again")
    nbformat.validate(nb)
    nbformat.write(nb, out)
    return out


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(HERE))
    keep = "--keep-outputs" in argv
    names = [a for a in argv if a != "--keep-outputs"]
    for name in names or SOURCES:
        print("wrote", build(name, keep).relative_to(NOTEBOOKS.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
