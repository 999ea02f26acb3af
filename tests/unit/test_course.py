"""The course's skeleton: pycont.course (the helper every chapter imports) and the generator.

No root and no kernel needed: the probe is faked, the store is the session's empty temporary
one, and the notebooks are built in memory or into a temporary folder, never executed (nbval
and check_solutions.py execute them).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat
import pytest

from pycont import course, procfs
from pycont.course.session import Session
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


@pytest.fixture
def root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """A pycont root of the test's own and no session of this process yet; the chapter's
    PYCONT_ROOT is undone afterwards (monkeypatch restores the variable)."""
    monkeypatch.setenv("PYCONT_ROOT", str(tmp_path / "root"))
    monkeypatch.setattr(course, "_mine", {})
    yield tmp_path / "root"
    for session in course._mine.values():
        session.remove()


def _dead_pid() -> tuple[int, int]:
    """A pid and start time whose process has gone (an interrupted kernel)."""
    proc = subprocess.Popen(["sleep", "60"])
    start = procfs.start_time(proc.pid)
    proc.kill()
    proc.wait()
    return proc.pid, start


def _session_of(root: Path, number: str, pid: int, start: int, lab: bool = True) -> Session:
    """A session folder as another run of chapter ``number`` would leave it."""
    folder = root / "sessions" / f"ch{number}-{os.urandom(3).hex()}"
    folder.mkdir(parents=True)
    session = Session(number, str(folder), pid, start)
    session.save()
    if lab:
        os.makedirs(session.scratch("lab"))
    return session


def test_chapter_prints_what_this_machine_allows(
    fake_probe: FakeProbe, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chapter = course.Chapter("42", needs=("namespaces", "cgroups"))
    assert capsys.readouterr().out.splitlines() == [
        "✓ namespaces: root: everything",
        "✗ cgroup limits: no cgroup here",
    ]
    assert chapter.prefix == "ch42-"
    assert chapter.allowed("namespaces") and not chapter.allowed("cgroups")


def test_chapter_works_in_a_pycont_root_of_its_own(
    fake_probe: FakeProbe, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chapter = course.Chapter("42")
    assert os.environ["PYCONT_ROOT"] == chapter.root
    assert re.fullmatch(rf"{root}/sessions/ch42-[0-9a-f]{{6}}", chapter.root)
    assert chapter.scratch("lab") == f"{chapter.root}/scratch/lab"
    record = Session.load(chapter.root)
    assert record is not None and record.pid == os.getpid() and record.owner_alive()
    assert os.path.realpath(f"{chapter.root}/cache") == str(root / "cache")  # shared, not copied
    os.makedirs(chapter.scratch("lab"))
    assert chapter.left()["paths"] == ["lab"]
    capsys.readouterr()
    chapter.clean()
    assert capsys.readouterr().out.strip() == "✓ nothing is left from chapter 42"
    assert all(not names for names in chapter.left().values())
    assert not os.path.exists(chapter.root)  # the session ends with the chapter
    assert os.environ["PYCONT_ROOT"] == str(root)


def test_a_second_run_in_the_same_kernel_starts_over_in_the_same_session(
    fake_probe: FakeProbe, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    steps: list[str] = []
    first = course.Chapter("42", also=lambda: steps.append("also"))
    os.makedirs(first.scratch("lab"))
    capsys.readouterr()
    second = course.Chapter("42", also=lambda: steps.append("also"))
    assert second.root == first.root and os.environ["PYCONT_ROOT"] == first.root
    assert not os.path.exists(first.scratch("lab"))
    assert steps == ["also"]  # the earlier run's clean-up step, not one at the first start
    assert "removed what an earlier run of this chapter left: scratch/lab" in (
        capsys.readouterr().out
    )


def test_a_run_removes_only_the_sessions_of_its_chapter_whose_owner_has_gone(
    fake_probe: FakeProbe, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parent = os.getppid()  # alive, and not this process: another learner's kernel
    dead = _session_of(root, "42", *_dead_pid())
    running = _session_of(root, "42", parent, procfs.start_time(parent))
    other_chapter = _session_of(root, "43", *_dead_pid())
    unrecorded = root / "sessions" / "ch42-abcdef"  # no session.json: nothing says whose
    unrecorded.mkdir()
    chapter = course.Chapter("42")
    assert "removed what an earlier run of this chapter left: scratch/lab" in (
        capsys.readouterr().out
    )
    assert not os.path.exists(dead.dir)
    assert os.path.isdir(running.scratch("lab")) and os.path.isdir(other_chapter.scratch("lab"))
    assert unrecorded.is_dir()
    chapter.clean()
    assert os.path.isdir(running.scratch("lab"))


def test_a_short_scratch_folder_outside_the_session_goes_with_it(
    fake_probe: FakeProbe, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chapter = course.Chapter("42")
    short = chapter.scratch("podman", short=True)  # podman: a runroot of 50 characters at most
    assert os.path.isdir(short) and os.path.basename(short).startswith("ch42-podman-")
    assert len(short) < 40 and short in chapter.left()["paths"]
    chapter.clean()
    assert not os.path.exists(short)
    # one a crashed run made: the next run takes it back
    dead = _session_of(root, "42", *_dead_pid(), lab=False)
    left = dead.scratch("podman", short=True)
    capsys.readouterr()
    course.Chapter("42")
    assert left in capsys.readouterr().out and not os.path.exists(left)


def test_the_processes_a_chapter_adopts_end_with_it(
    fake_probe: FakeProbe, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chapter = course.Chapter("42")
    mine = subprocess.Popen(["sleep", "60"])
    chapter.adopt(mine.pid)
    assert chapter.left()["processes"] == [str(mine.pid)]
    chapter.clean()
    assert mine.wait(5) == -signal.SIGTERM
    # one a crashed run adopted: the next run ends it (a registry outliving its kernel)
    orphan = subprocess.Popen(["sleep", "60"])
    dead = _session_of(root, "42", *_dead_pid(), lab=False)
    dead.adopt(orphan.pid)
    capsys.readouterr()
    course.Chapter("42")
    assert f"process {orphan.pid}" in capsys.readouterr().out
    assert orphan.wait(5) == -signal.SIGTERM


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


def test_in_the_lab_vm_the_chapter_says_so_first(
    fake_probe: FakeProbe,
    root: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    info = {"reason": "no userns", "accel": "TCG: no KVM", "kernel": "6.1.0-57-amd64"}
    monkeypatch.setenv("PYCONT_LAB_VM", json.dumps({**info, "memory": "1G", "cpus": 1}))
    course.Chapter("42", needs=("root",))
    assert capsys.readouterr().out.splitlines()[0] == (
        "→ in pycont's lab VM (6.1.0-57-amd64, TCG) because no userns"
    )
