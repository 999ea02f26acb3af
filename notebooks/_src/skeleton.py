"""The parts every chapter is made of, as the chapter modules (chNN.py) declare them.

A chapter module defines, besides ``FILE``:

- ``GOAL``: markdown, the title, the seed's quote and the goal (``## Goal``);
- ``ALLOWS``: markdown under "What this machine allows"; ``NEEDS``: what the chapter needs
  (``pycont.course.NEEDS``); ``LEFTOVERS``: optional keyword arguments of ``Chapter`` as Python
  text (``'also=stop_it'``, the chapter's own clean-up step); ``SETUP``: the chapter's imports
  and helpers; ``START``: optional code run once the chapter's session is open (its store, its
  scratch folders from ``course.scratch()``, a container the sections look into);
- ``SECTIONS``: the chapter's body, a list of ``(kind, source)``: kind "md", "code",
  "code-ignore-output" or "code-skip" (nbval tags, see ``TAGS``);
- ``EXERCISES_INTRO``: optional markdown after the standard "how to check your work";
  ``EXERCISES_SETUP``: optional code cell before the first exercise; ``EXERCISES``: a list of
  :class:`Exercise`; ``CLEANUP``: optional code run after ``course.clean()``;
- ``QUESTIONNAIRE``: markdown (the questions, then the answers folded in ``<details>``);
- ``READING``: markdown, the further reading.

``build.py`` turns them into the notebook in that order; ``check_solutions.py`` runs the
notebook with every exercise cell replaced by its solution.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

# The repository's public GitHub address, "owner/name": the one place the Binder links come from
# (README.md's chapter table, which build.py writes, and the index). A placeholder until the
# repository is public: fill it in once, then run build.py (tests/unit/test_binder.py checks it
# against `git remote get-url origin` when that is on GitHub).
BINDER_REPO = "OWNER/REPO"
BINDER_BADGE = "https://mybinder.org/badge_logo.svg"

# kind -> the nbval tag of a code cell (nbval reads tags as it reads "# NBVAL_..." comments).
TAGS = {
    "code": None,
    "code-ignore-output": "nbval-ignore-output",
    "code-skip": "nbval-skip",
    "code-raises": "raises-exception",
}


@dataclass(frozen=True)
class Exercise:
    """One exercise: what to do, the learner's cell(s), the check cell, the solution.

    ``cells`` and ``solutions`` run in parallel: ``solutions[i]`` replaces ``cells[i]`` in
    check_solutions.py and is shown, folded, under the check. A solution that starts with a
    cell magic (``%%container``) is shown as a plain code block, the others as Python."""

    task: str  # markdown, with its "### Exercise N — ..." heading
    cells: tuple[str, ...]  # what the learner fills in ("answer1 = None  # an int")
    check: str  # the check cell: calls course.check(...)
    solutions: tuple[str, ...]
    note: str = ""  # markdown after the solution's code, inside the fold
    setup: str = ""  # a code cell before the learner's (start a container to work on)

    def __post_init__(self) -> None:
        if len(self.cells) != len(self.solutions):
            raise ValueError(f"{self.task.splitlines()[0]}: one solution per cell")


def exercise(
    task: str,
    cell: str | tuple[str, ...],
    check: str,
    solution: str | tuple[str, ...],
    note: str = "",
    setup: str = "",
) -> Exercise:
    """An :class:`Exercise` from strings (one cell) or tuples (several cells)."""
    cells = (cell,) if isinstance(cell, str) else cell
    solutions = (solution,) if isinstance(solution, str) else solution
    return Exercise(task, cells, check, solutions, note, setup)


def binder_url(file: str, repo: str = BINDER_REPO) -> str:
    """mybinder.org's link that builds this repository and opens ``notebooks/<file>`` in
    JupyterLab (``labpath``; HEAD: the default branch as it is now)."""
    return f"https://mybinder.org/v2/gh/{repo}/HEAD?labpath={quote(f'notebooks/{file}', safe='')}"


def binder_badge(file: str, repo: str = BINDER_REPO) -> str:
    """The "launch binder" badge, as markdown, for the notebook ``file``."""
    return f"[![Binder]({BINDER_BADGE})]({binder_url(file, repo)})"
