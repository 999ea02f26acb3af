"""A container's life: detached, exec'd into, stopped, killed, removed; and the CLI over it.

The CLI tests start ``python -m pycont`` as a new process each time, as a user does: the
container must outlive the process that started it, and its state must be readable by the
next one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

import pycont
from pycont.namespaces import Namespace, nspid
from tests.helpers import (
    cli,
    container_ids,
    mountinfo_lines,
    pids_in_pid_namespace,
    process_gone,
    requires,
    take_back_cgroups,
    wait_for,
)

pytestmark = requires("root", "overlay")

READY_LOOP = "echo ready; while :; do sleep 0.1; done"


@pytest.fixture
def sleeper(name: str) -> Iterator[pycont.Container]:
    """A detached container whose PID 1 is `sleep 1000`."""
    c = pycont.run("busybox", ["sleep", "1000"], detach=True, name=name)
    yield c
    c.remove(force=True)


def detached(script: str, name: str) -> pycont.Container:
    return pycont.run("busybox", ["sh", "-c", script], detach=True, name=name)


def wait_ready(c: pycont.Container) -> None:
    """Until the script printed `ready`: its trap is set, a signal will not be lost."""
    wait_for(lambda: "ready\n" in list(c.logs()), timeout=15, what=f"{c.name} to be ready")


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, f"expected exactly one line, got {lines!r}"
    return lines[0]


def ps_rows(output: str) -> list[tuple[int, str]]:
    """busybox ps: `PID USER COMMAND` -> (pid, command)."""
    header, *rows = output.splitlines()
    assert header.split()[:1] == ["PID"], output
    return [(int(r.split()[0]), " ".join(r.split()[2:])) for r in rows]


# -- detached --------------------------------------------------------------------------------
def test_detached_exit_status_is_recorded(name: str) -> None:
    c = detached("sleep 1; exit 7", name)
    assert c.status == "running"
    again = pycont.get(name)  # a handle without the shim: reads the record
    assert again.wait(timeout=30) == 7
    assert again.status == "exited"
    assert again.exit_code == 7
    assert again.pid == 0
    assert again.inspect()["State"]["ExitCode"] == 7


def test_detached_outlives_the_cli_that_started_it(name: str) -> None:
    r = cli("run", "-d", "--name", name, "busybox", "sleep", "1000")
    assert r.returncode == 0, r.stderr
    cid = one_line(r.stdout)
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    c = pycont.get(name)
    assert c.id == cid
    assert c.status == "running"
    assert not process_gone(c.pid)
    assert not process_gone(c.state().shim_pid)  # its shim, not the CLI, watches it
    # a NEW process joins it: PID 1 in there is `sleep 1000`
    r = cli("exec", name, "ps")
    assert r.returncode == 0, r.stderr
    rows = ps_rows(r.stdout)
    assert (1, "sleep 1000") in rows, r.stdout
    assert r.stderr == ""


def test_detached_outlives_the_python_process_that_started_it(name: str) -> None:
    code = (
        "import pycont, sys;"
        f"c = pycont.run('busybox', ['sleep', '1000'], detach=True, name={name!r});"
        "print(c.pid)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert r.returncode == 0, r.stderr
    pid = int(r.stdout)
    c = pycont.get(name)
    assert c.status == "running" and c.pid == pid and not process_gone(pid)


# -- exec --------------------------------------------------------------------------------------
def test_exec_joins_every_namespace(sleeper: pycont.Container) -> None:
    names = [ns.procname for ns in Namespace]
    script = f"for n in {' '.join(names)}; do readlink /proc/self/ns/$n; done"
    r = sleeper.exec(["sh", "-c", script])
    assert r.exit_code == 0
    assert r.output.split() == [os.readlink(f"/proc/{sleeper.pid}/ns/{n}") for n in names]


def test_exec_runs_inside_the_pid_namespace(sleeper: pycont.Container) -> None:
    r = sleeper.exec(["sh", "-c", "echo $$; cat /proc/1/comm"])
    pid, comm = r.output.split()
    assert int(pid) > 1 and comm == "sleep"


def test_exec_env_workdir_and_exit_code(sleeper: pycont.Container) -> None:
    r = sleeper.exec(["sh", "-c", 'echo "$K"; pwd; exit 5'], env=["K=V"], workdir="/tmp")
    assert (r.exit_code, r.output) == (5, "V\n/tmp\n")
    with pytest.raises(pycont.CommandNotFound):
        sleeper.exec(["nosuchcommand"])
    assert sleeper.status == "running"


def test_exec_into_a_stopped_container(sleeper: pycont.Container) -> None:
    sleeper.kill()
    assert sleeper.wait(timeout=30) == 137
    with pytest.raises(pycont.InvalidState) as info:
        sleeper.exec(["ps"])
    assert "exited" in str(info.value)
    r = cli("exec", sleeper.name, "ps")
    assert r.returncode == 125
    assert r.stdout == ""
    assert "not running" in one_line(r.stderr)


# -- stop, kill --------------------------------------------------------------------------------
def test_stop_kills_after_the_timeout_when_sigterm_is_ignored(sleeper: pycont.Container) -> None:
    # sleep as PID 1 has no SIGTERM handler: the kernel drops the signal (pid_namespaces(7))
    start = time.monotonic()
    assert sleeper.stop(timeout=1) == 137
    took = time.monotonic() - start
    assert 1 <= took < 10, took
    assert sleeper.status == "exited"


def test_stop_ends_a_container_that_handles_sigterm(name: str) -> None:
    c = detached(f'trap "exit 0" TERM; {READY_LOOP}', name)
    wait_ready(c)
    start = time.monotonic()
    assert c.stop(timeout=20) == 0
    assert time.monotonic() - start < 10
    assert c.status == "exited"


def test_cli_stop(name: str) -> None:
    c = detached(f'trap "exit 0" TERM; {READY_LOOP}', name)
    wait_ready(c)
    r = cli("stop", "-t", "20", name)
    assert (r.returncode, r.stdout, r.stderr) == (0, f"{name}\n", "")
    assert c.status == "exited" and c.exit_code == 0


def test_kill_with_a_signal(name: str) -> None:
    c = detached(f'trap "exit 3" USR1; {READY_LOOP}', name)
    wait_ready(c)
    c.kill(signal.SIGUSR1)
    assert c.wait(timeout=30) == 3


def test_cli_kill_with_a_signal(name: str) -> None:
    c = detached(f'trap "exit 4" HUP; {READY_LOOP}', name)
    wait_ready(c)
    r = cli("kill", "-s", "HUP", name)
    assert (r.returncode, r.stderr) == (0, "")
    assert c.wait(timeout=30) == 4


def test_kill_defaults_to_sigkill(sleeper: pycont.Container) -> None:
    sleeper.kill()
    assert sleeper.wait(timeout=30) == 137
    with pytest.raises(pycont.InvalidState):
        sleeper.kill()


# -- remove ------------------------------------------------------------------------------------
def test_rm_refuses_a_running_container(sleeper: pycont.Container) -> None:
    pid = sleeper.pid
    with pytest.raises(pycont.InvalidState) as info:
        sleeper.remove()
    assert "running" in str(info.value)
    r = cli("rm", sleeper.name)
    assert r.returncode != 0
    assert "running" in one_line(r.stderr)
    assert sleeper.status == "running" and sleeper.pid == pid and not process_gone(pid)
    assert sleeper.exec(["true"]).exit_code == 0


def _assert_nothing_left(cid: str, pid_ns: int, shim: int) -> None:
    assert cid not in container_ids()
    wait_for(lambda: process_gone(shim), timeout=15, what="the shim to exit")
    assert pids_in_pid_namespace(pid_ns) == []
    assert mountinfo_lines(cid) == []
    assert take_back_cgroups(cid) == []
    with pytest.raises(pycont.ContainerNotFound):
        pycont.get(cid)


def test_rm_force_leaves_nothing(sleeper: pycont.Container) -> None:
    cid, pid = sleeper.id, sleeper.pid
    pid_ns = os.stat(f"/proc/{pid}/ns/pid").st_ino
    shim = sleeper.state().shim_pid
    assert mountinfo_lines(cid) == []  # its mounts live in its own mount namespace only
    # two more processes in it; exec's output to /dev/null: nothing to wait for
    sleeper.exec(["sh", "-c", "sleep 1000 & sleep 1000 &"], stdout=subprocess.DEVNULL)
    assert len(pids_in_pid_namespace(pid_ns)) == 3
    sleeper.remove(force=True)
    _assert_nothing_left(cid, pid_ns, shim)


def test_cli_rm_force_leaves_nothing(name: str) -> None:
    r = cli("run", "-d", "--name", name, "busybox", "sleep", "1000")
    assert r.returncode == 0, r.stderr
    c = pycont.get(name)
    cid, pid_ns, shim = c.id, os.stat(f"/proc/{c.pid}/ns/pid").st_ino, c.state().shim_pid
    r = cli("rm", "-f", name)
    assert (r.returncode, r.stdout, r.stderr) == (0, f"{name}\n", "")
    _assert_nothing_left(cid, pid_ns, shim)


def test_rm_of_an_exited_container(name: str) -> None:
    c = pycont.run("busybox", ["true"], name=name, timeout=30)
    assert c.status == "exited"
    c.remove()
    assert c.id not in container_ids()


def test_shim_killed_takes_an_attached_container_down(name: str) -> None:
    c = pycont.create("busybox", ["sleep", "1000"], name=name)
    try:
        c.start(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pid, shim = c.pid, c.state().shim_pid
        pid_ns = os.stat(f"/proc/{pid}/ns/pid").st_ino
        os.kill(shim, signal.SIGKILL)
        # PR_SET_PDEATHSIG: the container's init gets SIGKILL when its parent, the shim, dies
        wait_for(lambda: process_gone(pid), timeout=15, what="the container to die with its shim")
        wait_for(lambda: c.state().status == "exited", timeout=15, what="status exited")
        assert pycont.get(c.name).status == "exited" and c.exit_code == 137
        assert c.pid == 0
        # and rm still takes back everything, though the shim could not clean up
        cid = c.id
        c.remove()
        _assert_nothing_left(cid, pid_ns, shim)
    finally:
        with contextlib.suppress(pycont.ContainerNotFound):
            c.remove(force=True)


def test_monitor_killed_leaves_a_detached_container_running(sleeper: pycont.Container) -> None:
    """docker's live restore: the next reader adopts it, and rm takes back everything."""
    pid, shim = sleeper.pid, sleeper.state().shim_pid
    sleeper_pid_ns = os.stat(f"/proc/{pid}/ns/pid").st_ino
    os.kill(shim, signal.SIGKILL)
    wait_for(lambda: process_gone(shim), timeout=15, what="the monitor to die")
    assert not process_gone(pid)
    rec = sleeper.state()
    assert rec.status == "running" and rec.shim_pid not in (0, shim)
    cid, pid_ns = sleeper.id, sleeper_pid_ns
    sleeper.remove(force=True)
    _assert_nothing_left(cid, pid_ns, rec.shim_pid)


# -- start again, restart (docker start of an exited container) ---------------------------------
def test_start_again_runs_on_the_same_read_write_layer(name: str) -> None:
    # The first run writes a file and exits 3; started again it finds the file (its read/write
    # layer is kept with the container, as docker's) and its new exit code is recorded.
    script = "if [ -e /mark ]; then echo again; exit 4; fi; echo first > /mark; exit 3"
    c = pycont.run("busybox", ["sh", "-c", script], name=name, timeout=30)
    try:
        assert (c.exit_code, c.output) == (3, "")
        first = c.state()
        c.start(stdout=subprocess.PIPE)
        assert c.stdout is not None
        out = c.stdout.read().decode()
        assert c.wait(30) == 4
        assert out == "again\n"
        rec = c.state()
        assert rec.status == "exited" and rec.exit_code == 4 and not rec.oom_killed
        assert rec.started_at > first.started_at and rec.error == ""
        assert rec.created == first.created  # the same container, not a new one
    finally:
        c.remove(force=True)


def test_start_again_resets_the_last_runs_record(name: str) -> None:
    c = pycont.create("busybox", ["sleep", "1000"], name=name, detach=True)
    try:
        c.start()
        c.kill()
        assert c.wait(30) == 137
        c.start()
        rec = c.state()
        assert rec.status == "running" and rec.exit_code is None and rec.finished_at == 0.0
        assert c.pid > 0
    finally:
        c.remove(force=True)


def test_start_of_a_running_container_is_refused(sleeper: pycont.Container) -> None:
    with pytest.raises(pycont.InvalidState) as info:
        sleeper.start()
    assert f"container {sleeper.name} is running" in str(info.value)


def test_a_second_shim_for_a_running_container_gives_up(sleeper: pycont.Container) -> None:
    # Two starts racing: the second shim finds the record already running; it kills what it
    # cloned and says so, and leaves the first run and its record alone.
    from pycont.runtime import launcher

    before = sleeper.state()
    shim = launcher.launch("run", [sleeper.dir], stdin=subprocess.DEVNULL, via="spawn")
    with pytest.raises(pycont.StartError, match="is running: cannot become running"):
        shim.handshake()
    assert sleeper.state() == before
    assert not process_gone(before.pid)


def test_restart_stops_then_starts(sleeper: pycont.Container) -> None:
    before, shim = sleeper.pid, sleeper.state().shim_pid
    sleeper.restart(timeout=0.5)  # sleep, as PID 1, ignores SIGTERM: killed after 0.5 s
    assert sleeper.status == "running"
    assert sleeper.pid not in (0, before)
    assert sleeper.state().shim_pid != shim
    assert process_gone(before)


def test_the_shim_handle_is_public(name: str) -> None:
    c = pycont.create("busybox", ["sh", "-c", "exit 5"], name=name)
    try:
        assert c.shim is None  # started by nobody yet
        c.start(via="spawn")
        assert c.shim is not None and c.shim.pid == c.state().shim_pid
        assert c.shim.wait(30) == 5
    finally:
        c.remove(force=True)


def test_an_unknown_launch_is_a_usage_error(sleeper: pycont.Container) -> None:
    with pytest.raises(pycont.UsageError, match="'teleport'"):
        sleeper.exec(["true"], via="teleport")


# -- logs, ps, inspect ---------------------------------------------------------------------------
def test_logs_of_a_detached_container(name: str) -> None:
    c = detached("echo one; echo two >&2; echo three", name)
    assert c.wait(timeout=30) == 0
    assert list(c.logs()) == ["one\n", "two\n", "three\n"]
    r = cli("logs", name)
    assert (r.returncode, r.stdout, r.stderr) == (0, "one\ntwo\nthree\n", "")


def test_logs_of_an_attached_container_is_a_usage_error(name: str) -> None:
    pycont.run("busybox", ["true"], name=name, timeout=30)
    r = cli("logs", name)
    assert r.returncode == 125
    one_line(r.stderr)


def test_ps_shows_running_and_exited(sleeper: pycont.Container, name: str) -> None:
    gone = f"{name}-exited"
    pycont.run("busybox", ["sh", "-c", "exit 4"], name=gone, timeout=30)
    r = cli("ps", "-a")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["CONTAINER", "ID", "IMAGE"]
    mine = {ln.split()[-1]: ln for ln in lines[1:]}
    assert "Exited (4)" in mine[gone]
    assert re.search(r"\bUp\b", mine[sleeper.name])
    assert mine[sleeper.name].startswith(sleeper.id[:12])
    running = [ln.split()[-1] for ln in cli("ps").stdout.splitlines()[1:]]
    assert sleeper.name in running and gone not in running
    assert sleeper.id[:12] in cli("ps", "-q").stdout.split()


def test_inspect(sleeper: pycont.Container) -> None:
    info = sleeper.inspect()
    assert info["State"]["Pid"] == sleeper.pid
    assert info["State"]["Status"] == "running" and info["State"]["Running"] is True
    assert nspid(info["State"]["Pid"])[-1] == 1
    assert info["Name"] == f"/{sleeper.name}" and info["Id"] == sleeper.id
    r = cli("inspect", "-f", "{{.State.Status}}", sleeper.name)
    assert (r.returncode, r.stdout, r.stderr) == (0, "running\n", "")
    r = cli("inspect", "-f", "{{.State.Pid}}", sleeper.name)
    assert r.stdout == f"{sleeper.pid}\n"
    r = cli("inspect", sleeper.name)
    assert json.loads(r.stdout)[0]["Id"] == sleeper.id


# -- the CLI's run and its exit codes ------------------------------------------------------------
def test_cli_run_rm_prints_pid_1_and_the_hostname() -> None:
    before = container_ids()
    r = cli("run", "--rm", "busybox", "sh", "-c", "echo $$; hostname")
    assert r.returncode == 0, r.stderr
    pid, host = r.stdout.splitlines()
    assert pid == "1"
    assert re.fullmatch(r"[0-9a-f]{12}", host)
    assert r.stderr == ""
    assert container_ids() == before


def test_cli_run_with_hostname() -> None:
    r = cli("run", "--rm", "--hostname", "web1", "busybox", "hostname")
    assert (r.returncode, r.stdout) == (0, "web1\n")


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["run", "--rm", "nosuchimage", "true"], 125),
        (["run", "--bogus", "busybox", "true"], 125),
        (["run", "--name", "!", "busybox", "true"], 125),
        (["run", "--pid", "sideways", "busybox", "true"], 125),
        (["run", "--rm", "busybox", "nosuchcommand"], 127),
        (["run", "--rm", "busybox", "/etc"], 126),
        (["exec", "nosuchcontainer", "ps"], 125),
    ],
)
def test_cli_exit_codes(args: list[str], code: int) -> None:
    before = container_ids()
    r = cli(*args)
    assert r.returncode == code, r.stderr
    assert r.stdout == ""
    assert one_line(r.stderr).startswith("pycont: ")
    assert container_ids() == before


def test_cli_duplicate_name(sleeper: pycont.Container) -> None:
    pid, before = sleeper.pid, container_ids()
    r = cli("run", "--name", sleeper.name, "busybox", "true")
    assert r.returncode == 125
    assert r.stdout == ""
    assert sleeper.name in one_line(r.stderr)
    assert container_ids() == before
    assert sleeper.status == "running" and sleeper.pid == pid


def test_cli_passes_the_containers_exit_code() -> None:
    r = cli("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 5")
    assert (r.returncode, r.stdout, r.stderr) == (5, "out\n", "err\n")
