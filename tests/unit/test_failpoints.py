"""Failpoints: the variable's grammar, and a step that kills or raises only when asked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pycont import failpoints


def test_parse_accepts_kill_error_and_the_nth_time() -> None:
    assert failpoints.parse("") == {}
    assert failpoints.parse(" a.b=kill , c=error@3,") == {"a.b": ("kill", 1), "c": ("error", 3)}


@pytest.mark.parametrize("text", ["a", "a=boom", "a=kill@x", "a=kill@", "a=error@0"])
def test_parse_refuses_a_typo(text: str) -> None:
    with pytest.raises(ValueError, match="expected NAME=kill or NAME=error"):
        failpoints.parse(text)


def _child(points: str, code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, failpoints.ENV: points}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


PRELUDE = "from pycont import failpoints as f; f.STEPS['t.one'] = 'test'; f.STEPS['t.two'] = 't'\n"


def test_kill_is_sigkill_on_the_nth_time_only() -> None:
    out = _child(
        "t.one=kill@2",
        PRELUDE + "f.hit('t.two'); f.hit('t.one'); print('1st'); f.hit('t.one'); print('no')",
    )
    assert out.returncode == -9 and out.stdout == "1st\n"


def test_error_raises_and_an_undeclared_step_is_a_bug() -> None:
    out = _child("t.one=error", PRELUDE + "f.hit('t.one')")
    assert "FailpointError: failpoint t.one: injected error" in out.stderr
    out = _child("t.one=error", PRELUDE + "f.hit('t.nope')")
    assert "failpoint 't.nope' is not declared" in out.stderr


def test_unset_hit_does_nothing() -> None:
    out = _child("", "from pycont import failpoints as f; f.hit('no.such.step'); print('on')")
    assert out.returncode == 0 and out.stdout == "on\n"  # not even the name is checked


def test_a_point_that_fires_is_logged_with_its_pid(tmp_path: Path) -> None:
    log = tmp_path / "fired"
    env = {**os.environ, failpoints.ENV: "t.one=kill", failpoints.LOG_ENV: str(log)}
    code = PRELUDE + "import os; print(os.getpid(), flush=True); f.hit('t.two'); f.hit('t.one')"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == -9
    assert log.read_text() == f"t.one {out.stdout.strip()}\n"  # t.two has no point: not logged
