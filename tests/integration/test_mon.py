"""pycont-mon: a detached container's monitor is a small C program, and the container outlives it.

The shim execs pycont-mon once the container runs (same process, still the init's parent); it
records the exit code and execs the shim's finish step. Killed, it leaves the container running;
the next command adopts it (ptrace) and its exit code is still recorded: docker's live restore.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from pycont import procfs
from pycont.runtime import mon
from tests.helpers import cli, containers_dir, requires, wait_for

# cgroup_v2: the v2 VM (tests/vm/run_v2.py) runs these too: the finish step on the v2 driver.
pytestmark = [
    pytest.mark.cgroup_v2,
    requires("root", "overlay"),
    pytest.mark.skipif(mon.binary() is None, reason=f"no pycont-mon: {mon.status()}"),
]

LOOP = 'trap "exit 42" TERM; while true; do sleep 0.1; done'


def state_of(name: str) -> dict[str, object]:
    r = cli("inspect", name)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)[0]["State"]


def folder(name: str) -> str:
    r = cli("inspect", "-f", "{{.Id}}", name)
    assert r.returncode == 0, r.stderr
    return os.path.join(containers_dir(), r.stdout.strip())


def record(name: str) -> dict[str, object]:
    """The raw state.json (shim_pid and its start time are not in inspect)."""
    with open(os.path.join(folder(name), "state.json")) as f:
        return json.load(f)


def comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def status_field(pid: int, field: str) -> str:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return line.split()[1]
    return ""


def run_detached(name: str, script: str) -> tuple[int, int]:
    """The container's init and its monitor."""
    r = cli("run", "-d", "--name", name, "busybox", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    rec = record(name)
    return int(rec["pid"]), int(rec["shim_pid"])  # type: ignore[call-overload]


def test_a_detached_container_is_watched_by_pycont_mon(name: str) -> None:
    pid, shim = run_detached(name, LOOP)
    assert comm(shim) == "pycont-mon"
    assert int(status_field(pid, "PPid")) == shim  # execve kept the child
    with open(f"/proc/{shim}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    assert argv[:2] == [b"pycont-mon", b"hold"] and argv[2] == str(pid).encode()
    r = cli("stop", name)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: state_of(name)["Status"] == "exited", timeout=20, what="the end recorded")
    assert state_of(name)["ExitCode"] == 42
    assert not os.path.exists(os.path.join(folder(name), "exit"))  # the record has it now


def test_exit_code_and_auto_remove_through_the_finish_step(name: str) -> None:
    r = cli("run", "-d", "--name", name, "busybox", "sh", "-c", "sleep 0.3; exit 7")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: state_of(name)["Status"] == "exited", timeout=20, what="the end recorded")
    st = state_of(name)
    assert st["ExitCode"] == 7 and st["Error"] == ""
    r = cli("run", "-d", "--rm", "--name", name + "-rm", "busybox", "sh", "-c", "exit 3")
    assert r.returncode == 0, r.stderr
    wait_for(
        lambda: cli("inspect", name + "-rm").returncode != 0,
        timeout=20,
        what="the --rm container removed",
    )


def test_the_container_outlives_its_monitor_and_is_adopted(name: str) -> None:
    pid, shim = run_detached(name, LOOP)
    start, shim_start = procfs.start_time(pid), procfs.start_time(shim)
    os.kill(shim, signal.SIGKILL)
    wait_for(lambda: not procfs.alive(shim, shim_start), timeout=10, what="the monitor killed")
    assert procfs.alive(pid, start), "the container died with its monitor"
    # Any command that reads it adopts it: a new pycont-mon traces the init.
    assert state_of(name)["Status"] == "running"
    new = int(record(name)["shim_pid"])  # type: ignore[call-overload]
    assert new != shim and comm(new) == "pycont-mon"
    assert int(status_field(pid, "TracerPid")) == new
    r = cli("stop", name)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: state_of(name)["Status"] == "exited", timeout=20, what="the end recorded")
    assert state_of(name)["ExitCode"] == 42  # the code the container chose, not 137


def test_an_exit_code_pycont_mon_wrote_is_used_if_its_finish_step_died(name: str) -> None:
    pid, shim = run_detached(name, "sleep 300")
    cdir = folder(name)
    # As if pycont-mon had written the code and its finish step were killed before recording:
    # the monitor and the init both gone, the exit file left.
    start, shim_start = procfs.start_time(pid), procfs.start_time(shim)
    os.kill(shim, signal.SIGKILL)
    wait_for(lambda: not procfs.alive(shim, shim_start), timeout=10, what="the monitor killed")
    with open(os.path.join(cdir, "exit"), "w") as f:
        f.write("5\n")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not procfs.alive(pid, start), timeout=10, what="the container's init gone")
    st = state_of(name)
    assert st["Status"] == "exited" and st["ExitCode"] == 5


def test_pycont_mon_off_keeps_the_python_shim(name: str) -> None:
    r = cli("run", "-d", "--name", name, "busybox", "sleep", "300", env={mon.ENV: "off"})
    assert r.returncode == 0, r.stderr
    shim = int(record(name)["shim_pid"])  # type: ignore[call-overload]
    assert comm(shim) == "pycont-run"


def test_status_names_the_reason_without_a_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mon, "_found", None)
    monkeypatch.setenv(mon.ENV, "/nonexistent/pycont-mon")
    assert mon.binary() is None
    assert "is not an executable" in mon.status()
    monkeypatch.setattr(mon, "_found", None)
    monkeypatch.setenv(mon.ENV, "off")
    assert mon.status().startswith("a Python shim per container")
    monkeypatch.setattr(mon, "_found", None)


def test_adopt_refuses_a_reused_pid(tmp_path: object) -> None:
    """A start time that does not match: not the container's init, nothing traced."""
    p = subprocess.Popen(["sleep", "30"])
    try:
        assert mon.adopt(str(tmp_path), p.pid, procfs.start_time(p.pid) + 1) == 0
        assert status_field(p.pid, "TracerPid") == "0"
    finally:
        p.kill()
        p.wait()


def test_an_adopted_container_stops_and_continues(name: str) -> None:
    """Traced, its SIGSTOP is a group-stop the monitor keeps ("t" in proc(5): a tracing stop),
    and its SIGCONT resumes it."""
    pid, shim = run_detached(name, LOOP)
    shim_start = procfs.start_time(shim)
    os.kill(shim, signal.SIGKILL)
    wait_for(lambda: not procfs.alive(shim, shim_start), timeout=10, what="the monitor killed")
    assert state_of(name)["Status"] == "running"  # adopted
    assert cli("kill", "-s", "STOP", name).returncode == 0
    wait_for(lambda: status_field(pid, "State") in ("T", "t"), timeout=10, what="stopped")
    assert cli("kill", "-s", "CONT", name).returncode == 0
    wait_for(lambda: status_field(pid, "State") in ("S", "R"), timeout=10, what="running again")
    assert cli("stop", name).returncode == 0
    wait_for(lambda: state_of(name)["Status"] == "exited", timeout=20, what="the end recorded")
    assert state_of(name)["ExitCode"] == 42
