"""``%%dockerfile`` in a real InteractiveShell: the cell is the Dockerfile, the build log
streams into the cell, the result is the cell's value; a failing build is one ERROR line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError as IPythonUsageError

import pycont
from pycont.builder.progress import BuildResult
from tests.helpers import container_ids, requires

pytestmark = requires("root", "overlay")


def test_a_cell_builds_and_its_log_streams(
    ip: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "msg.txt").write_text("from the context\n")
    cell = "FROM busybox\nCOPY msg.txt /msg.txt\nRUN echo running step; cat /msg.txt\n"
    line = f"-t pc-magic-build:1 --context {tmp_path}"
    result = ip.run_cell_magic("dockerfile", line, cell)
    out = capsys.readouterr().out
    assert isinstance(result, BuildResult)
    assert "#3 [3/3] RUN echo running step; cat /msg.txt" in out
    assert "running step" in out and "from the context" in out
    assert "naming to pc-magic-build:1 done" in out
    assert "<table>" in result._repr_html_()
    c = pycont.run("pc-magic-build:1", ["cat", "/msg.txt"], rm=True)
    assert c.output == "from the context\n"
    again = ip.run_cell_magic("dockerfile", line, cell)
    assert again.cache_hits == 2 and again.id == result.id


def test_without_a_context_copy_fails_in_one_line(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    before = container_ids()
    result = ip.run_cell_magic("dockerfile", "-t pc-magic-build:2", "FROM busybox\nCOPY x /x\n")
    out = capsys.readouterr().out
    assert result is None
    errors = [ln for ln in out.splitlines() if ln.startswith("ERROR:")]
    assert len(errors) == 1 and "file not found in build context: x" in errors[0], out
    assert "Traceback" not in out
    assert container_ids() == before


def test_a_failing_run_is_one_error_line(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    before = container_ids()
    result = ip.run_cell_magic("dockerfile", "-t pc-magic-build:3", "FROM busybox\nRUN exit 7\n")
    out = capsys.readouterr().out
    assert result is None
    assert out.strip().splitlines()[-1] == (
        "ERROR: Dockerfile:2: RUN exit 7: the command exited with code 7"
    )
    assert container_ids() == before
    assert not [i for i in pycont.images.Store().images() if i.reference == "pc-magic-build:3"]


def test_a_bad_flag_is_a_usage_error(ip: Any) -> None:
    with pytest.raises(IPythonUsageError, match="--bogus"):
        ip.run_cell_magic("dockerfile", "--bogus", "FROM busybox\n")
