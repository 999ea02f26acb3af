"""The IPython extension in a real InteractiveShell: ``%load_ext pycont``, ``%%container`` and
``%pycont``.

A notebook's kernel must outlive whatever a cell does: a cell that is OOM-killed, a fork
bomb, a gigabyte of output, a container that is stopped. Each of these runs here for real,
and afterwards the shell still runs cells, the host can still fork, and nothing is left.
User errors read as one line, never as a traceback.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError as IPythonUsageError

import pycont
import pycont.magics as magics
from pycont.magics import OUTPUT_BUDGET, OUTPUT_TAIL, ContainerRunner, stream_output
from tests.helpers import cgroup_dirs, container_ids, requires, wait_for

pytestmark = requires("root", "overlay")

HOG = "x=a; while :; do x=$x$x; done"
# The classic bomb: it grows until the pids limit refuses forks, then burns out; PID 1 ends
# the container after its sleep either way.
FORK_BOMB = "f() { f | f & }; f; sleep 2; echo done"
GIB = 1 << 30
ONE_GIB_OF_X = f"head -c {GIB} /dev/zero | tr '\\0' x"


@pytest.fixture(autouse=True)
def own_started(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """A fresh list of the containers cells started, so that _cleanup() (at exit, or here)
    sees only this test's; the real one stays empty for the process's own atexit run."""
    started: list[Any] = []
    monkeypatch.setattr(magics, "_started", started)
    return started


class Recorder:
    """A file-like ``out`` that notes what was written and can wake a waiter on a word."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.lock = threading.Lock()

    def write(self, s: str) -> int:
        with self.lock:
            self.parts.append(s)
        return len(s)

    def flush(self) -> None:
        pass

    @property
    def text(self) -> str:
        with self.lock:
            return "".join(self.parts)


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    t = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    t.start()
    return t, result


def proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


# -- output ----------------------------------------------------------------------------------
def test_a_cell_runs_in_a_container_and_its_output_shows(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    before = container_ids()
    ip.run_cell_magic("container", "--rm busybox", "echo hello from the cell; echo $$")
    assert capsys.readouterr().out == "hello from the cell\n1\n"
    assert container_ids() == before


def test_output_streams_while_the_cell_runs(tmp_path: Path) -> None:
    # The cell prints, then waits for a file only the test makes after seeing that print:
    # output held back until the container ends would never let it finish.
    out = Recorder()
    script = "echo first; while [ ! -e /sync/go ]; do sleep 0.1; done; echo second"
    runner = ContainerRunner(out=out)
    t, result = in_thread(lambda: runner.run(f"--rm -v {tmp_path}:/sync busybox", script))
    wait_for(lambda: "first\n" in out.text, timeout=30, what="the first line")
    assert "second" not in out.text
    (tmp_path / "go").touch()
    t.join(30)
    assert not t.is_alive()
    assert (result, out.text) == ([0], "first\nsecond\n")


def test_a_gigabyte_of_output_is_drained_but_not_shown(
    ip: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[int] = []

    def counting(fd: int, out: Any, budget: int = OUTPUT_BUDGET) -> int:
        read.append(stream_output(fd, out, budget))
        return read[-1]

    monkeypatch.setattr(magics, "stream_output", counting)
    ip.run_cell_magic("container", "--rm busybox", ONE_GIB_OF_X)
    text = capsys.readouterr().out
    assert read == [GIB]  # every byte was read: the container never blocked on the pipe
    assert "output throttled" in text
    assert f"{GIB - OUTPUT_BUDGET - OUTPUT_TAIL:,} more bytes" in text  # shown: neither
    assert len(text) <= OUTPUT_BUDGET + OUTPUT_TAIL + 512  # budget + notice + tail
    assert text.startswith("x" * OUTPUT_BUDGET)
    assert text.endswith("x" * OUTPUT_TAIL)
    assert "[exit code" not in text


def test_stream_output_returns_when_a_stopped_writer_is_killed() -> None:
    writer = subprocess.Popen(["sh", "-c", "printf hello; exec sleep 600"], stdout=subprocess.PIPE)
    assert writer.stdout is not None
    fd = writer.stdout.fileno()
    out = Recorder()
    t, result = in_thread(lambda: stream_output(fd, out))
    try:
        wait_for(lambda: out.text == "hello", timeout=10, what="the writer's output")
        os.kill(writer.pid, signal.SIGSTOP)
        wait_for(lambda: proc_state(writer.pid) == "T", timeout=10, what="the writer to stop")
        assert t.is_alive()  # a stopped writer is not the end of its output
        os.kill(writer.pid, signal.SIGKILL)
        t.join(10)
        assert not t.is_alive(), "stream_output still reading after its writer died"
        assert result == [5]
    finally:
        writer.kill()
        writer.wait(10)
        writer.stdout.close()


def test_a_stopped_container_killed_ends_its_cell(name: str) -> None:
    out = Recorder()
    runner = ContainerRunner(out=out)
    t, result = in_thread(lambda: runner.run(f"--name {name} busybox", "echo hello; sleep 1000"))
    wait_for(lambda: "hello\n" in out.text, timeout=30, what="the cell's first line")
    c = pycont.get(name)
    pid = c.pid
    os.kill(pid, signal.SIGSTOP)
    wait_for(lambda: proc_state(pid) == "T", timeout=10, what="the container to stop")
    assert t.is_alive()
    c.kill()  # SIGKILL reaches a stopped process
    t.join(30)
    assert not t.is_alive()
    assert result == [137]
    assert out.text == "hello\n[exit code 137]\n"


# -- the kernel survives -------------------------------------------------------------------
OOM_NOTE = "[exit code 137: killed by the kernel's OOM killer (memory limit 32MiB)]\n"


def test_an_oom_killed_cell_returns_with_exit_code_137(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    before = container_ids()
    ip.run_cell_magic("container", "--rm -m 32m busybox", HOG)
    assert capsys.readouterr().out == OOM_NOTE  # named, though --rm removed its record
    assert container_ids() == before
    result = ip.run_cell("survived = 6 * 7")
    assert result.success and ip.user_ns["survived"] == 42


def test_an_oom_kill_is_named_as_such(
    ip: Any, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    ip.run_cell_magic("container", f"--name {name} -m 32m busybox", f"echo start; {HOG}")
    assert capsys.readouterr().out == "start\n" + OOM_NOTE
    assert pycont.get(name).inspect()["State"]["OOMKilled"] is True


def test_a_fork_bomb_cell_finishes_and_leaves_nothing(
    ip: Any, capsys: pytest.CaptureFixture[str], own_started: list[Any]
) -> None:
    before = container_ids()
    ip.run_cell_magic("container", "--rm busybox", FORK_BOMB)
    out = capsys.readouterr().out
    assert "can't fork" in out  # the default pids limit refused forks
    assert subprocess.run(["true"], check=False).returncode == 0  # the host can still fork
    (c,) = own_started
    assert container_ids() == before
    assert cgroup_dirs(c.id) == []
    assert ip.run_cell("1 + 1").success


@pytest.mark.parametrize(("flags", "expected"), [("", "1024"), ("--pids-limit 100", "100")])
def test_a_cell_gets_the_default_pids_limit_unless_given_one(
    ip: Any, capsys: pytest.CaptureFixture[str], name: str, flags: str, expected: str
) -> None:
    ip.run_cell_magic("container", f"-d --name {name} {flags} busybox", "sleep 1000")
    assert capsys.readouterr().out.startswith(f"{name} (")
    c = pycont.get(name)
    with open(os.path.join(c.cgroup().paths()["pids"], "pids.max")) as f:
        assert f.read().strip() == expected


# -- loading ---------------------------------------------------------------------------------
def test_reload_ext_twice_registers_once(
    ip: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    n = atexit._ncallbacks()
    ip.run_line_magic("reload_ext", "pycont")
    ip.run_line_magic("reload_ext", "pycont")
    assert atexit._ncallbacks() == n  # already registered by the first load
    assert magics._registered

    # From a fresh start: one registration, however often it is reloaded.
    registered: list[Any] = []
    monkeypatch.setattr(magics, "_registered", False)
    monkeypatch.setattr(atexit, "register", lambda fn, *a, **k: registered.append(fn))
    for _ in range(3):
        ip.run_line_magic("reload_ext", "pycont")
    assert registered == [magics._cleanup]

    manager = ip.magics_manager
    assert manager.magics["cell"]["container"].__self__ is manager.registry["PycontMagics"]
    ip.run_cell_magic("container", "--rm busybox", "echo once")
    assert capsys.readouterr().out == "once\n"  # one magic, not one per load


def test_containers_show_as_html_while_the_extension_is_loaded(
    ip: Any, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A terminal shell (this test's) shows no HTML; a notebook's does: turn it on here.
    monkeypatch.setattr(ip.display_formatter.formatters["text/html"], "enabled", True)
    c = pycont.run("busybox", ["true"], name=name)
    html = ip.display_formatter.format(c)[0].get("text/html", "")
    assert name in html and "exited" in html
    ip.run_line_magic("unload_ext", "pycont")
    try:
        assert "text/html" not in ip.display_formatter.format(c)[0]
    finally:
        ip.run_line_magic("load_ext", "pycont")
    assert "text/html" in ip.display_formatter.format(c)[0]


# -- %pycont ---------------------------------------------------------------------------------
def test_pycont_line_magic_prints_to_stdout(
    ip: Any, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    ip.run_cell_magic("container", f"--name {name} busybox", "true")
    capsys.readouterr()
    ip.run_line_magic("pycont", "ps -a")
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.startswith("CONTAINER ID")
    assert [r for r in rows if r.split()[-1] == name]


def test_pycont_keeps_templates_as_typed(
    ip: Any, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    # IPython would expand {{...}} (and $x) in a line magic; inspect needs them as they are.
    ip.run_cell_magic("container", f"--name {name} busybox", "true")
    capsys.readouterr()
    result = ip.run_cell(f"%pycont inspect -f '{{{{.State.Status}}}} {{{{.Name}}}}' {name}")
    assert result.success
    assert capsys.readouterr().out == f"exited /{name}\n"


def test_pycont_expands_a_notebook_variable_in_braces(
    ip: Any, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    # as chapter 05 does with %pycont push {REGISTRY}/myapp:v2 (a port picked at run time)
    ip.run_cell_magic("container", f"--name {name} busybox", "true")
    capsys.readouterr()
    ip.user_ns["target"] = name
    result = ip.run_cell("%pycont inspect -f '{{.Name}} {undefined}' {target}")
    assert result.success
    assert capsys.readouterr().out == f"/{name} {{undefined}}\n"


def test_pycont_stats_prints_one_reading(
    ip: Any, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    pycont.run("busybox", ["sleep", "1000"], detach=True, name=name)
    ip.run_line_magic("pycont", f"stats {name}")  # a live table would never return
    out = capsys.readouterr().out
    assert out.count("CONTAINER ID") == 1 and name in out
    assert "\033[" not in out  # no terminal redraws


# -- user errors -----------------------------------------------------------------------------
def run_showing(ip: Any, cell: str, capsys: pytest.CaptureFixture[str]) -> tuple[Any, str]:
    """Run a cell as the notebook does; returns its result and everything it showed."""
    result = ip.run_cell(cell)
    shown = capsys.readouterr()
    return result, shown.out + shown.err


def test_a_bad_flag_is_a_usage_error_without_traceback(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    before = container_ids()
    result, shown = run_showing(ip, "%%container --bogus busybox\necho hi\n", capsys)
    assert isinstance(result.error_in_exec, IPythonUsageError)
    assert "Traceback" not in shown and "--bogus" in shown
    assert container_ids() == before


def test_an_unknown_image_is_one_line_without_traceback(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    before = container_ids()
    result, shown = run_showing(ip, "%%container --rm no-such-image:1\necho hi\n", capsys)
    err = result.error_in_exec
    assert isinstance(err, pycont.ImageNotFound)
    assert hasattr(err, "_render_traceback_")
    assert "Traceback" not in shown
    assert shown.strip() == f"ImageNotFound: {err}"
    assert container_ids() == before


@pytest.mark.parametrize(
    "cell",
    [
        "%%container --name 'unclosed busybox\necho hi\n",
        "%pycont inspect -f '{{.State.Status}}\n",
    ],
)
def test_an_unclosed_quote_is_a_usage_error_without_traceback(
    ip: Any, capsys: pytest.CaptureFixture[str], cell: str
) -> None:
    result, shown = run_showing(ip, cell, capsys)
    err = result.error_in_exec
    assert isinstance(err, IPythonUsageError) or hasattr(err, "_render_traceback_"), repr(err)
    assert "Traceback" not in shown


def test_container_help_shows_the_flags_and_does_not_exit(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    result, shown = run_showing(ip, "%%container --help\necho hi\n", capsys)
    assert "usage: %%container" in shown and "--memory" in shown
    assert not isinstance(result.error_in_exec, SystemExit), "help raised SystemExit"
    assert "SystemExit" not in shown


# -- cleanup at exit -------------------------------------------------------------------------
def test_cleanup_removes_the_cells_containers_but_not_detached_ones(
    ip: Any, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    kept, background = f"{name}-fg", f"{name}-bg"
    ip.run_cell_magic("container", f"--name {kept} busybox", "true")
    ip.run_cell_magic("container", f"-d --name {background} busybox", "sleep 1000")
    capsys.readouterr()
    assert pycont.get(kept).status == "exited"

    magics._cleanup()

    with pytest.raises(pycont.ContainerNotFound):
        pycont.get(kept)
    assert pycont.get(background).status == "running"
