"""The course's skeleton: pycont.course (the helper every chapter imports) and the generator.

No root and no kernel needed: the probe is faked, the store is the session's empty temporary
one, and the notebooks are built in memory or into a temporary folder, never executed (nbval
and check_solutions.py execute them).
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat
import pytest

from pycont import course
from pycont.kernel import probe as probe_module

SRC = Path(__file__).resolve().parents[2] / "notebooks" / "_src"


@dataclass(frozen=True)
class FakeAnswer:
    ok: bool
    reason: str


@dataclass(frozen=True)
class FakeProbe:
    mode: str = "root"
    mode_summary: str = "root: everything"
    root: FakeAnswer = FakeAnswer(True, "uid 0")
    cgroup_writable: FakeAnswer = FakeAnswer(False, "no cgroup here")
    overlay: FakeAnswer = FakeAnswer(True, "overlay mounts")


@pytest.fixture
def fake_probe(monkeypatch: pytest.MonkeyPatch) -> FakeProbe:
    found = FakeProbe()
    monkeypatch.setattr(probe_module, "probe", lambda refresh=False: found)
    return found


def test_check_prints_a_verdict_and_never_raises(capsys: pytest.CaptureFixture[str]) -> None:
    course.check("exercise 1", True, "a hint")
    course.check("exercise 2", lambda: None, "look again")
    course.check("exercise 3", lambda: 1 / 0, "divide")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "✓ exercise 1: correct"
    assert out[1] == "✗ exercise 2: not yet — hint: look again"
    assert out[2].startswith("✗ exercise 3: not yet — hint: divide (checking raised")
    assert "ZeroDivisionError" in out[2]


def test_wait_for_returns_the_last_verdict() -> None:
    calls = iter([False, False, True, True])
    assert course.wait_for(lambda: next(calls), timeout=5)
    assert not course.wait_for(lambda: False, timeout=0.1)


def test_chapter_prints_what_this_machine_allows(
    fake_probe: FakeProbe, capsys: pytest.CaptureFixture[str]
) -> None:
    chapter = course.Chapter("42", needs=("namespaces", "cgroups"))
    assert capsys.readouterr().out.splitlines() == [
        "✓ namespaces: root: everything",
        "✗ cgroup limits: no cgroup here",
    ]
    assert chapter.prefix == "ch42-"
    assert chapter.allowed("namespaces") and not chapter.allowed("cgroups")


def test_chapter_removes_only_its_own_paths(
    fake_probe: FakeProbe, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine, other = tmp_path / "ch42-lab", tmp_path / "ch43-lab"
    (mine / "sub").mkdir(parents=True)
    other.mkdir()
    steps: list[str] = []
    chapter = course.Chapter("42", paths=[str(mine)], also=lambda: steps.append("also"))
    assert not mine.exists() and other.exists()
    assert steps == ["also"]
    assert f"left: {mine}" in capsys.readouterr().out
    chapter.clean()
    assert capsys.readouterr().out.strip() == "✓ nothing is left from chapter 42"
    assert chapter.left() == {"containers": [], "vms": [], "volumes": [], "images": [], "paths": []}


def test_chapter_refuses_an_unknown_need(fake_probe: FakeProbe) -> None:
    with pytest.raises(ValueError, match="unknown needs"):
        course.Chapter("42", needs=("kvm",))


# ---- the generator (notebooks/_src/build.py) ---------------------------------------------------


@pytest.fixture(scope="module")
def build() -> ModuleType:
    sys.path.insert(0, str(SRC))
    try:
        return importlib.import_module("build")
    finally:
        sys.path.remove(str(SRC))


def test_every_chapter_has_the_parts_in_order(build: Any) -> None:
    for name in build.SOURCES:
        _, cells, file = build.notebook(name)
        heads = [c.source.splitlines()[0] for c in cells if c.kind == "markdown"]
        order = [
            h
            for h in heads
            if h
            in (
                "## What this machine allows",
                "## Exercises",
                "### Clean up",
                "## Questionnaire",
                "## Further reading",
            )
        ]
        expected = ["## What this machine allows", "### Clean up"]
        if name != "ch00":
            expected = [
                "## What this machine allows",
                "## Exercises",
                "### Clean up",
                "## Questionnaire",
                "## Further reading",
            ]
        assert order == expected, file
        setup = next(c for c in cells if c.kind == "code")
        assert setup.source.startswith("%load_ext pycont\n"), file
        assert f'course = Chapter("{file[:2]}"' in setup.source, file
        last_code = [c for c in cells if c.kind == "code"][-1]
        assert last_code.source.startswith("course.clean()"), file


def test_learner_cells_carry_no_linter_comment_or_nbval_marker(build: Any) -> None:
    for name in build.SOURCES:
        _, cells, file = build.notebook(name)
        for cell in cells:
            if cell.kind == "code":
                for word in ("noqa", "type: ignore", "NBVAL_"):
                    assert word not in cell.source, f"{file}: {cell.source[:60]!r}"


def test_every_exercise_has_a_check_and_a_folded_solution(build: Any) -> None:
    for name in build.SOURCES:
        mod = sys.modules[name]
        _, cells, file = build.notebook(name)
        checks = [c for c in cells if c.role and c.role[0] == "check"]
        assert len(checks) == len(getattr(mod, "EXERCISES", [])), file
        for n, cell in enumerate(checks, 1):
            assert f'course.check("exercise {n}"' in cell.source, file
            solution = cells[cells.index(cell) + 1]
            assert solution.source.startswith("<details><summary>Solution</summary>"), file


def test_check_names_a_notebook_edited_by_hand(
    build: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build, "NOTEBOOKS", tmp_path)
    path = build.build("ch01")
    assert build.differs("ch01") is None
    nb = nbformat.read(path, as_version=4)
    nb.cells[5].source += "\nprint('edited by hand')"
    nb.cells[5].outputs = [nbformat.v4.new_output("stream", text="outputs do not count")]
    nbformat.write(nb, path)
    problem = build.differs("ch01")
    assert problem is not None
    assert problem.startswith("01-containers-are-processes.ipynb: cell 5 ")
    assert "source" in problem
    assert build.main(["--check", "ch01"]) == 1


def test_check_ignores_outputs_and_execution_counts(
    build: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build, "NOTEBOOKS", tmp_path)
    path = build.build("ch00")
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.execution_count = 7
            cell.outputs = [nbformat.v4.new_output("stream", text="hello")]
    nbformat.write(nb, path)
    assert build.differs("ch00") is None
