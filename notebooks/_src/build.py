"""Generate the course notebooks from the chapter sources in this folder.

    .venv/bin/python notebooks/_src/build.py            # writes notebooks/NN-*.ipynb (no outputs)
    .venv/bin/jupyter nbconvert --to notebook --execute --inplace notebooks/NN-*.ipynb
    .venv/bin/python notebooks/_src/build.py --keep-outputs ch00 ch02   # markdown only
    .venv/bin/python notebooks/_src/build.py --check    # do the committed notebooks match?

Every chapter has the same parts, in this order (``skeleton.py`` says how a chapter module
declares them): the navigation, the goal, what this machine allows (one generated cell: the
chapter's imports and helpers, then ``course = Chapter(...)``, which removes what an interrupted
run left and prints what this machine allows), the sections, the exercises (each with its check
cell and its folded solution), the clean-up, the questionnaire, further reading.

``--keep-outputs`` rebuilds the markdown of notebooks that are already executed and keeps every
code cell whose source did not change, with its outputs: adding a chapter then needs no re-run
of the others. It names the code cells that did change (execute that notebook again). It also
copies each dashboard's picture into the markdown cell after it (``PICTURE``): run it once more
after executing a chapter that has one.

``--check`` builds every notebook in memory and compares it with the committed one, outputs and
execution counts aside: cell types, sources, tags and ids. It exits 1 naming the notebook and its
first differing cell, so that a notebook edited by hand out of step with its source is caught.
It also checks README.md's chapter table, which every build writes (titles, files, and the
Binder badges from ``skeleton.BINDER_REPO``).

nbval markers are cell tags, never comments: a code cell whose source starts with
``# NBVAL_IGNORE_OUTPUT`` (or another ``# NBVAL_...`` line) loses that line and gets the tag.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import nbformat

HERE = Path(__file__).resolve().parent
NOTEBOOKS = HERE.parent
sys.path.insert(0, str(HERE))

from skeleton import TAGS, Exercise, binder_badge  # noqa: E402  (found through the path above)

# (number, title, file or None while it is not written yet)
CHAPTERS = [
    ("00", "Index", "00-index.ipynb"),
    ("01", "A container is a process on the host", "01-containers-are-processes.ipynb"),
    ("02", "Namespaces: what a process can see", "02-namespaces.ipynb"),
    ("03", "cgroups: how much a process can use", "03-cgroups.ipynb"),
    ("04", "OverlayFS: layers and the read/write layer", "04-overlayfs.ipynb"),
    ("05", "Images and registries", "05-images-and-registries.ipynb"),
    ("06", "Dockerfile and build", "06-dockerfile-and-build.ipynb"),
    ("07", "Lifecycle and volumes", "07-lifecycle-and-volumes.ipynb"),
    ("08", "Networks and Compose", "08-networks.ipynb"),
    ("09", "Containers vs virtual machines", "09-containers-vs-vms.ipynb"),
    ("10", "What keeps a container in, and who runs it", "10-security.ipynb"),
]
SOURCES = ["ch00", "ch01", "ch02", "ch03", "ch04", "ch05", "ch06", "ch07", "ch08", "ch09", "ch10"]

# The course's kernel (python -m pycont.vm.labkernel install) as every notebook names it, and the
# language_info it reports. JupyterLab writes both into a notebook it opens, from the running
# kernel; any difference marks the notebook modified, and autosave then rewrites the file.
# language_info carries no Python version: a learner's 3.11.x (or Binder's) must not differ.
KERNELSPEC = {"display_name": "Python 3 (pycont)", "language": "python", "name": "pycont"}
LANGUAGE_INFO = {
    "codemirror_mode": {"name": "ipython", "version": 3},
    "file_extension": ".py",
    "mimetype": "text/x-python",
    "name": "python",
    "nbconvert_exporter": "python",
    "pygments_lexer": "ipython3",
}

# After a code cell that draws a dashboard: its picture from the committed (root) run, as an
# attachment of the markdown, so that it stays in the text when the cell's own output is
# replaced: a run where the experiment cannot happen prints one "skipped" line there.
PICTURE_FILE = "recorded.png"
PICTURE = (
    f"*Recorded on a machine that allows this experiment, what the cell above draws:*\n\n"
    f"![the dashboard as recorded](attachment:{PICTURE_FILE})"
)

README = NOTEBOOKS.parent / "README.md"
README_BEGIN = "<!-- chapters: written by notebooks/_src/build.py; edit CHAPTERS there -->"
README_END = "<!-- /chapters -->"

# nbval's comment markers, turned into the tags nbval reads the same way.
MARKERS = {
    "NBVAL_IGNORE_OUTPUT": "nbval-ignore-output",
    "NBVAL_SKIP": "nbval-skip",
    "NBVAL_RAISES_EXCEPTION": "raises-exception",
    "NBVAL_CHECK_OUTPUT": "nbval-check-output",
}

HOW_TO_CHECK = """\
**How to check your work:** each exercise has a cell where you set a variable (or run the code
it asks for), then a check cell that prints `✓ exercise N: correct` or `✗ exercise N: not yet —
hint: …`. Run your cell, then the check cell. The solution is folded below each check: try
first."""


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
    """The index's list of chapters (its ``{{TOC}}``), each with its Binder badge."""
    rows = []
    for num, title, f in CHAPTERS[1:]:
        rows.append(
            f"{num}. [{title}]({f}) {binder_badge(f)}" if f else f"{num}. {title} — *coming soon*"
        )
    return "\n".join(rows)


def readme_table() -> str:
    """README.md's chapter table: each chapter's notebook and its Binder badge."""
    rows = ["| | chapter | Binder |", "|---|---|---|"]
    for num, title, f in CHAPTERS:
        if f:
            rows.append(f"| {num} | [{title}](notebooks/{f}) | {binder_badge(f)} |")
        else:
            rows.append(f"| {num} | {title} | *coming soon* |")
    return "\n".join(rows)


def readme_with_table(text: str) -> str:
    """``text`` (README.md) with the part between its chapter markers written again."""
    try:
        head, rest = text.split(README_BEGIN + "\n", 1)
        _, tail = rest.split(README_END, 1)
    except ValueError:
        raise SystemExit(f"README.md: no {README_BEGIN!r} ... {README_END!r} block") from None
    return f"{head}{README_BEGIN}\n{readme_table()}\n{README_END}{tail}"


@dataclass
class Cell:
    """One cell to be: ``role`` says what check_solutions.py needs to know about it:
    ("exercise", n, i) for the i-th learner cell of exercise n, ("check", n), or None."""

    kind: str  # "markdown" or "code"
    source: str
    tags: tuple[str, ...] = ()
    role: tuple[str, int, int] | tuple[str, int] | None = None
    picture: bool = False  # the recorded picture of the code cell before it (see PICTURE)


def code(
    source: str, kind: str = "code", role: tuple[str, int, int] | tuple[str, int] | None = None
) -> Cell:
    """A code cell; a leading ``# NBVAL_...`` line becomes a tag."""
    source = source.strip("\n")
    tag = TAGS[kind]
    tags = [tag] if tag else []
    while True:
        m = re.match(r"# (NBVAL_[A-Z_]+)[^\n]*\n?", source)
        if not m:
            break
        tags.append(MARKERS[m.group(1)])
        source = source[m.end() :]
    return Cell("code", source, tuple(dict.fromkeys(tags)), role)


def md(source: str) -> Cell:
    return Cell("markdown", source.strip("\n").replace("{{TOC}}", toc()))


def solution_md(ex: Exercise) -> str:
    blocks = []
    for sol in ex.solutions:
        lang = "" if sol.lstrip().startswith("%%") else "python"
        blocks.append(f"```{lang}\n{sol.strip()}\n```")
    note = f"\n\n{ex.note.strip()}" if ex.note.strip() else ""
    return "<details><summary>Solution</summary>\n\n" + "\n\n".join(blocks) + note + "\n</details>"


def setup_cell(mod: ModuleType) -> Cell:
    """The one generated setup cell: the chapter's imports and helpers, then the Chapter."""
    number = mod.FILE[:2]
    needs = ", ".join(repr(n) for n in getattr(mod, "NEEDS", ("namespaces",)))
    needs = f"({needs},)" if "," not in needs else f"({needs})"
    args = ", ".join(
        a for a in (f'"{number}"', f"needs={needs}", getattr(mod, "LEFTOVERS", "")) if a
    )
    setup = mod.SETUP.strip("\n")
    if "from pycont.course import Chapter" not in setup:
        raise ValueError(f"{mod.__name__}.SETUP must import Chapter from pycont.course")
    parts = [
        "%load_ext pycont",
        setup,
        "",
        "# Removes what an interrupted run of this chapter left; prints what this machine allows.",
        f"course = Chapter({args})",
    ]
    start = getattr(mod, "START", "").strip("\n")
    if start:
        # where the chapter cannot run (pycont.degrade), its first experiment says so in one
        # line, as every later cell does
        indented = "\n".join(f"    {line}" if line else "" for line in start.splitlines())
        parts += ["with course.guarded():", indented]
    # What it prints describes the machine it runs on (the probe's reasons), and what an
    # interrupted run left: nbval runs the cell (an exception fails it) but does not compare it.
    return code("\n".join(parts), "code-ignore-output")


def cells_of(mod: ModuleType) -> list[Cell]:
    """Every cell of the chapter, in the order of the skeleton."""
    line = nav(mod.FILE)
    cells = [md(line), md(mod.GOAL)]
    if hasattr(mod, "ALLOWS"):
        cells += [md("## What this machine allows\n\n" + mod.ALLOWS.strip("\n")), setup_cell(mod)]
    for kind, src in mod.SECTIONS:
        cells.append(md(src) if kind == "md" else code(src, kind))
        if kind != "md" and "Dashboard(" in src:
            cells.append(Cell("markdown", PICTURE, picture=True))
    exercises: list[Exercise] = getattr(mod, "EXERCISES", [])
    if exercises:
        intro = getattr(mod, "EXERCISES_INTRO", "").strip("\n")
        cells.append(md("## Exercises\n\n" + HOW_TO_CHECK + (f" {intro}" if intro else "")))
        if getattr(mod, "EXERCISES_SETUP", ""):
            cells.append(code(mod.EXERCISES_SETUP))
        for n, ex in enumerate(exercises, 1):
            cells.append(md(ex.task))
            if ex.setup:
                cells.append(code(ex.setup))
            for i, src in enumerate(ex.cells):
                cells.append(code(src, role=("exercise", n, i)))
            cells.append(code(ex.check, role=("check", n)))
            cells.append(md(solution_md(ex)))
    if hasattr(mod, "ALLOWS"):
        cleanup = getattr(mod, "CLEANUP", "").strip("\n")
        cells.append(md("### Clean up\n\nRemove everything this chapter made."))
        cells.append(code("course.clean()" + (f"\n{cleanup}" if cleanup else "")))
    if hasattr(mod, "QUESTIONNAIRE"):
        cells.append(md("## Questionnaire\n\n" + mod.QUESTIONNAIRE.strip("\n")))
    if hasattr(mod, "READING"):
        cells.append(md("## Further reading\n\n" + mod.READING.strip("\n")))
    cells.append(md("---\n" + line))
    return cells


def notebook(modname: str) -> tuple[nbformat.NotebookNode, list[Cell], str]:
    """The chapter's notebook (no outputs), its cells as built, and its file name."""
    mod = importlib.import_module(modname)
    cells = cells_of(mod)
    nb_cells = []
    n = 0
    for cell in cells:
        if cell.kind == "markdown":
            nbc = nbformat.v4.new_markdown_cell(cell.source)
        else:
            nbc = nbformat.v4.new_code_cell(cell.source)
            if cell.tags:
                nbc.metadata["tags"] = list(cell.tags)
        if cell.picture:  # named after its code cell: the cells after it keep their ids
            nbc["id"] = f"{nb_cells[-1]['id']}-picture"
        else:
            nbc["id"] = f"{mod.FILE[:2]}-{n:03d}"  # stable ids: clean diffs between builds
            n += 1
        nb_cells.append(nbc)
    nb = nbformat.v4.new_notebook(cells=nb_cells)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = json.loads(json.dumps(LANGUAGE_INFO))  # a deep copy
    nbformat.validate(nb)
    return nb, cells, mod.FILE


def _png_of(cell: nbformat.NotebookNode) -> str | None:
    """The last PNG a code cell's outputs show (a dashboard's static picture), base64."""
    outs = cell.get("outputs", [])
    pngs = [o["data"]["image/png"] for o in outs if "image/png" in o.get("data", {})]
    return pngs[-1] if pngs else None


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
        if (
            prev is not None
            and prev.cell_type == "code"
            and prev.source == cell.source
            and prev.metadata.get("tags", []) == cell.metadata.get("tags", [])
        ):
            nb.cells[i] = prev
        else:
            changed.append(cell["id"])
    for i, cell in enumerate(nb.cells):
        if cell.get("id", "").endswith("-picture"):
            png = _png_of(nb.cells[i - 1])
            if png:
                cell["attachments"] = {PICTURE_FILE: {"image/png": png}}
    nb.metadata = old.metadata  # the widgets' saved state among it
    # whatever kernel executed it: the course's kernelspec, the versionless language_info
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = json.loads(json.dumps(LANGUAGE_INFO))
    return changed


def build(modname: str, keep: bool = False) -> Path:
    nb, _, file = notebook(modname)
    out = NOTEBOOKS / file
    if keep:
        for cell_id in keep_outputs(nb, out):
            print(f"{file}: code cell {cell_id} is new or changed: execute this notebook again")
    nbformat.write(nb, out)
    return out


def _shape(cell: nbformat.NotebookNode) -> tuple[str, str, str, list[str]]:
    return (cell.get("id", ""), cell.cell_type, cell.source, list(cell.metadata.get("tags", [])))


def differs(modname: str) -> str | None:
    """How the committed notebook differs from what its source generates; None if it does not
    (outputs, execution counts and other metadata aside)."""
    nb, _, file = notebook(modname)
    path = NOTEBOOKS / file
    if not path.exists():
        return f"{file}: missing (run notebooks/_src/build.py)"
    old = nbformat.read(path, as_version=4)
    for i, (new, was) in enumerate(zip(nb.cells, old.cells, strict=False)):
        if _shape(new) != _shape(was):
            what = [
                name
                for name, a, b in zip(
                    ("id", "type", "source", "tags"), _shape(new), _shape(was), strict=True
                )
                if a != b
            ]
            first = (was.source.splitlines() or [""])[0][:70]
            return (
                f"{file}: cell {i} ({was.get('id', '?')}: {first!r}) differs in {', '.join(what)}"
            )
    if len(nb.cells) != len(old.cells):
        return f"{file}: {len(old.cells)} cells, its source makes {len(nb.cells)}"
    for i, cell in enumerate(old.cells):
        recorded = PICTURE_FILE in cell.get("attachments", {})
        if cell.get("id", "").endswith("-picture") and _png_of(old.cells[i - 1]) and not recorded:
            return f"{file}: cell {i} has no recorded picture (run build.py --keep-outputs)"
    return None


def main(argv: list[str]) -> int:
    keep = "--keep-outputs" in argv
    check = "--check" in argv
    names = [a for a in argv if not a.startswith("--")] or SOURCES
    readme = README.read_text()
    if check:
        problems = [p for p in map(differs, names) if p]
        if readme_with_table(readme) != readme:
            problems.append("README.md: its chapter table is not what build.py writes")
        for p in problems:
            print(p)
        if problems:
            print(
                "the committed notebooks are out of step with notebooks/_src: run "
                "notebooks/_src/build.py, then execute the notebooks named above"
            )
            return 1
        print(f"{len(names)} notebooks match notebooks/_src")
        return 0
    for name in names:
        print("wrote", build(name, keep).relative_to(NOTEBOOKS.parent))
    if readme_with_table(readme) != readme:
        README.write_text(readme_with_table(readme))
        print("wrote README.md (its chapter table)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
