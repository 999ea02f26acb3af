"""``pycont start`` and ``pycont restart``: an exited container runs again, as docker's do.

A container that exits keeps its read/write layer: started again, its command runs on the
files its last run left. Each run here appends a line to a file in that layer and prints how
many lines it holds, so the log (or the file) shows how often the container ran. And an
OOM-killed container is named as such by ``pycont run``.
"""

from __future__ import annotations

import pycont
from tests.helpers import cli, requires

pytestmark = requires("root", "overlay")

COUNT = "echo ran >> /count; wc -l < /count"
HOG = "x=a; while :; do x=$x$x; done"


def ok(*args: str) -> str:
    proc = cli(*args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_start_runs_an_exited_container_again_on_the_same_layer(name: str) -> None:
    ok("run", "-d", "--name", name, "busybox", "sh", "-c", COUNT)
    assert ok("wait", name) == "0\n"
    assert ok("start", name) == f"{name}\n"  # docker start prints the name
    assert ok("wait", name) == "0\n"
    assert ok("logs", name) == "1\n2\n"  # the second run found the first run's line
    assert pycont.get(name).status == "exited"


def test_start_of_a_created_container_runs_it(name: str) -> None:
    c = pycont.create("busybox", ["sh", "-c", "echo made > /made"], name=name)
    assert ok("start", name) == f"{name}\n"
    assert c.wait(30) == 0
    assert ("A", "/made") in c.diff()  # written into its read/write layer


def test_start_attached_streams_the_output_and_returns_the_code(name: str) -> None:
    first = cli("run", "--name", name, "busybox", "sh", "-c", f"{COUNT}; exit 3")
    assert (first.returncode, first.stdout) == (3, "1\n")
    again = cli("start", "-a", name)
    assert (again.returncode, again.stdout) == (3, "2\n")


def test_start_of_a_running_container_does_nothing(name: str) -> None:
    ok("run", "-d", "--name", name, "busybox", "sleep", "1000")
    pid = pycont.get(name).pid
    assert ok("start", name) == f"{name}\n"
    assert pycont.get(name).pid == pid


def test_start_of_an_unknown_container_fails_and_goes_on(name: str) -> None:
    ok("run", "-d", "--name", name, "busybox", "sh", "-c", COUNT)
    assert ok("wait", name) == "0\n"
    proc = cli("start", "no-such-container", name)
    assert proc.returncode == 1
    assert proc.stdout == f"{name}\n"
    assert "no-such-container" in proc.stderr


def test_restart_stops_and_starts_a_running_container(name: str) -> None:
    ok("run", "-d", "--name", name, "busybox", "sh", "-c", f"{COUNT}; exec sleep 1000")
    first = pycont.get(name).pid
    assert ok("restart", "-t", "1", name) == f"{name}\n"
    c = pycont.get(name)
    assert c.status == "running"
    assert c.pid != first
    assert ok("exec", name, "wc", "-l", "/count").split() == ["2", "/count"]


def test_restart_of_a_container_run_attached_keeps_off_the_terminal(name: str) -> None:
    assert ok("run", "--name", name, "busybox", "sh", "-c", COUNT) == "1\n"
    # Its second run's "2" must not reach restart's output: restart returned long before.
    assert ok("restart", name) == f"{name}\n"
    assert ok("wait", name) == "0\n"
    assert ok("start", "-a", name) == "3\n"


def test_run_names_an_oom_kill(name: str) -> None:
    proc = cli("run", "--name", name, "-m", "32m", "busybox", "sh", "-c", HOG)
    assert proc.returncode == 137
    assert proc.stderr == (
        f"pycont: container {name} exited with code 137: "
        "killed by the kernel's OOM killer (memory limit 32MiB)\n"
    )
    assert ok("inspect", "-f", "{{.State.OOMKilled}}", name) == "true\n"


def test_run_names_an_oom_kill_also_with_rm() -> None:
    # The shim removes the container as it ends: the OOM kill must come with the exit code.
    proc = cli("run", "--rm", "-m", "32m", "busybox", "sh", "-c", HOG)
    assert proc.returncode == 137
    assert "killed by the kernel's OOM killer (memory limit 32MiB)" in proc.stderr


def test_run_says_nothing_more_for_a_plain_kill(name: str) -> None:
    # Not PID 1 itself: the kernel ignores a SIGKILL that init gets from its own namespace.
    proc = cli("run", "--name", name, "busybox", "sh", "-c", "sh -c 'kill -9 $$'; exit $?")
    assert proc.returncode == 137
    assert proc.stderr == "Killed\n"  # the container's own shell says it; pycont adds nothing
