"""The start handshake tells an exec from a death (issue 13).

The container's init reports a failure before execve(2) over a close-on-exec pipe; the pipe's
EOF alone does not say the command runs, since a process killed before exec closes it too.
These tests kill the init (or the shim) at the named steps of a start (pycont.failpoints) and
check what a user sees: a nonzero exit with the reason, a ``ps -a`` that works and says what
happened, and an ``rm -f`` that leaves no process, cgroup or mount behind. Bad arguments are
refused in one line before anything is made.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys

import pytest

import pycont
from pycont import failpoints, images
from pycont.runtime import api
from pycont.runtime.spec import RunSpec
from tests.helpers import (
    REPO,
    cli,
    container_ids,
    mountinfo_lines,
    process_gone,
    requires,
    take_back_cgroups,
    wait_for,
)

pytestmark = requires("root", "overlay")

SLEEP = ("busybox", "sleep", "1000")


def processes_of(cid: str) -> list[int]:
    """Live processes (not zombies) in a cgroup named after the container."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cgroup") as f:
                if cid not in f.read():
                    continue
        except OSError:
            continue
        if not process_gone(int(entry)):
            found.append(int(entry))
    return found


def ps_status(name: str) -> str:
    """The STATUS column of ``pycont ps -a`` for ``name``; ps must succeed."""
    ps = cli("ps", "-a")
    assert ps.returncode == 0, ps.stderr
    rows = [line for line in ps.stdout.splitlines() if line.endswith(f" {name}")]
    assert len(rows) == 1, ps.stdout
    return rows[0]


def assert_removed_without_trace(name: str, cid: str) -> None:
    rm = cli("rm", "-f", name)
    assert (rm.returncode, rm.stdout) == (0, f"{name}\n"), rm.stderr
    assert cid not in container_ids()
    wait_for(lambda: not processes_of(cid), what=f"the processes of {name} to end")
    assert mountinfo_lines(cid) == []
    assert take_back_cgroups(cid) == []


# -- a dead init is not a started container ---------------------------------------------------
def test_a_command_not_found_fails_run_detached_with_127(name: str) -> None:
    r = cli("run", "-d", "--name", name, "busybox", "no-such-command")
    assert r.returncode == 127
    assert (r.stdout, r.stderr) == (
        "",
        'pycont: exec: "no-such-command": executable file not found in $PATH\n',
    )
    assert "Exited (127)" in ps_status(name)
    assert "no-such-command" in pycont.get(name).state().error


def test_a_workdir_that_cannot_be_made_fails_with_125_and_the_reason(name: str) -> None:
    r = cli("run", "-d", "--name", name, "-w", "/etc/passwd/sub", "busybox", "true")
    assert r.returncode == 125 and r.stdout == ""
    assert "/etc/passwd/sub" in r.stderr and len(r.stderr.splitlines()) == 1
    rec = pycont.get(name).state()
    assert (rec.status, rec.exit_code) == ("exited", 125) and "/etc/passwd/sub" in rec.error


def test_an_init_killed_right_before_exec_is_not_reported_started(name: str) -> None:
    # The init has checked everything and is SIGKILLed just before execve(2): it said nothing,
    # the pipe reads EOF, and still run -d must not print an id and exit 0.
    env = {failpoints.ENV: "start.exec-next=kill"}
    r = cli("run", "-d", "--name", name, *SLEEP, env=env)
    assert r.returncode == 125 and r.stdout == ""
    assert r.stderr == (
        "pycont: the container's init was killed by SIGKILL before it could exec its command\n"
    )
    c = pycont.get(name)
    rec = c.state()
    assert (rec.status, rec.exit_code) == ("exited", 125)
    assert "killed by SIGKILL before it could exec" in rec.error
    assert "Exited (125)" in ps_status(name)
    assert_removed_without_trace(name, c.id)


def test_a_command_that_exits_at_once_is_still_a_start(name: str) -> None:
    # The other side of the handshake: an init that exec'd and ended before the shim looked
    # is a container that ran, with its own exit code.
    r = cli("run", "-d", "--name", name, "busybox", "sh", "-c", "exit 3")
    assert r.returncode == 0, r.stderr
    assert cli("wait", name).stdout == "3\n"
    assert pycont.get(name).state().error == ""


def test_the_api_skips_a_fork_server_started_without_the_failpoints(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fork server started earlier (here: by this run) carries no failpoints; with the
    # variable set, the shim must be one that reads it.
    pycont.run("busybox", ["true"], rm=True, via="forkserver", timeout=30)
    monkeypatch.setenv(failpoints.ENV, "start.exec-next=kill")
    with pytest.raises(pycont.StartError, match="killed by SIGKILL before it could exec"):
        pycont.run("busybox", ["sleep", "1000"], name=name, detach=True, via="forkserver")
    assert pycont.get(name).state().exit_code == 125


# -- the shim killed at each step of a start ---------------------------------------------------
@pytest.mark.parametrize(
    ("step", "status"),
    [
        ("start.cgroup-made", "Created"),
        ("start.forked", "Created"),
        ("start.go-sent", "Created"),
        ("start.running-recorded", "Exited (137)"),
    ],
)
def test_a_shim_killed_during_start_leaves_a_consistent_container(
    name: str, step: str, status: str
) -> None:
    r = cli("run", "-d", "--name", name, *SLEEP, env={failpoints.ENV: f"{step}=kill"})
    assert r.returncode == 125 and r.stdout == ""
    assert r.stderr == "pycont: the pycont shim ended (exit 137) before the container started\n"
    c = pycont.get(name)
    # The init dies with its shim (PR_SET_PDEATHSIG, or its check of the shim right after):
    # nothing runs that the record does not know of.
    wait_for(lambda: not processes_of(c.id), what=f"the init of {name} to die with its shim")
    assert status in ps_status(name)
    assert_removed_without_trace(name, c.id)


def test_a_container_left_created_by_a_dead_shim_starts_again(name: str) -> None:
    r = cli("run", "-d", "--name", name, *SLEEP, env={failpoints.ENV: "start.go-sent=kill"})
    assert r.returncode == 125
    c = pycont.get(name)
    wait_for(lambda: not processes_of(c.id), what="the init to die with its shim")
    assert cli("start", name).returncode == 0
    assert c.status == "running"


# -- exec ----------------------------------------------------------------------------------------
@pytest.fixture
def sleeper(name: str) -> pycont.Container:
    r = cli("run", "-d", "--name", name, *SLEEP)
    assert r.returncode == 0, r.stderr
    return pycont.get(name)


def test_an_exec_killed_right_before_exec_fails_with_the_reason(sleeper: pycont.Container) -> None:
    env = {failpoints.ENV: "exec.exec-next=kill"}
    r = cli("exec", sleeper.name, "sleep", "999", env=env)
    assert r.returncode == 125
    assert r.stderr == (
        "pycont: the exec'd process was killed by SIGKILL before it could exec its command\n"
    )
    assert sleeper.status == "running"
    assert cli("exec", sleeper.name, "true").returncode == 0


def test_an_exec_whose_shim_is_killed_leaves_no_process(sleeper: pycont.Container) -> None:
    r = cli("exec", sleeper.name, "sleep", "999", env={failpoints.ENV: "exec.forked=kill"})
    assert r.returncode == 125 and "shim ended (exit 137)" in r.stderr
    # The forked process dies with its shim (PR_SET_PDEATHSIG): only the init is left.
    wait_for(lambda: processes_of(sleeper.id) == [sleeper.pid], what="the exec'd process to die")
    assert sleeper.status == "running"


def test_a_nul_byte_in_an_exec_argument_is_one_line(sleeper: pycont.Container) -> None:
    with pytest.raises(pycont.StartError, match="null byte"):
        sleeper.exec(["echo", "a\0b"])
    assert sleeper.status == "running"


# -- an attached run whose shim is SIGKILLed ------------------------------------------------------
def test_an_attached_run_exits_137_when_its_shim_is_killed(name: str) -> None:
    env = {**os.environ, "PYTHONPATH": REPO}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pycont", "run", "--name", name, *SLEEP],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        c = wait_for(lambda: _running(name), what=f"{name} to run")
        os.kill(c.state().shim_pid, signal.SIGKILL)
        assert proc.wait(60) == 137  # 128 + SIGKILL, as docker; not 247 (-9 as a byte)
    finally:
        proc.kill()
        proc.wait()
    assert pycont.get(name).state().exit_code == 137


def _running(name: str) -> pycont.Container | None:
    try:
        c = pycont.get(name)
        return c if c.status == "running" else None
    except pycont.ContainerNotFound:
        return None


# -- arguments refused before anything is made ----------------------------------------------------
@pytest.mark.parametrize(
    ("command", "options", "message"),
    [
        (["echo", "a\0b"], {}, "invalid command entry 'a\\x00b': a NUL byte"),
        (["true"], {"env": ["A=b\0c"]}, "invalid env entry 'A=b\\x00c': a NUL byte"),
        (["true"], {"workdir": "/a\0b"}, "invalid workdir='/a\\x00b': a NUL byte"),
        (["true"], {"user": "ro\0t"}, "invalid user='ro\\x00t': a NUL byte"),
        (["true"], {"labels": {"k": "v\0"}}, "invalid label k='v\\x00': a NUL byte"),
        (["true"], {"name": 123}, "invalid name=123: expected a string, not int"),
        (["true"], {"env": "A=1"}, "invalid env='A=1': expected a list of strings, not str"),
        (["true"], {"rm": "yes"}, "invalid rm='yes': expected True or False"),
        ("echo hi", {}, "invalid command='echo hi': expected a list of strings, not str"),
    ],
)
def test_a_bad_argument_is_one_line_and_makes_nothing(
    command: object, options: dict[str, object], message: str
) -> None:
    before = container_ids()
    with pytest.raises(pycont.UsageError) as err:
        pycont.run("busybox", command, **options)  # type: ignore[arg-type]
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    assert container_ids() == before


def test_an_image_env_with_a_nul_byte_is_refused_at_create() -> None:
    img = images.resolve("busybox")
    bad = dataclasses.replace(img, env=("PATH=/bin", "A=b\0c"))
    before = container_ids()
    with pytest.raises(pycont.UsageError, match=r"image busybox:latest: invalid Env 'A=b\\x00c'"):
        api.create_from_spec(RunSpec.from_options("busybox", ["true"]), image=bad)
    odd = dataclasses.replace(img, env=("PATH=/bin", 7))  # type: ignore[arg-type]
    with pytest.raises(pycont.UsageError, match="invalid Env 7"):
        api.create_from_spec(RunSpec.from_options("busybox", ["true"]), image=odd)
    assert container_ids() == before


# -- a created container whose shim died while its process lives -------------------------------
def test_a_created_container_with_a_live_process_and_no_shim_is_reaped(name: str) -> None:
    # What a shim killed between the init's exec of a set-user-ID program (which clears
    # PR_SET_PDEATHSIG) and the record of the start leaves: "created", and a process in its
    # cgroup that nobody watches. Made here by hand: a process of ours put in its cgroup.
    from pycont import cgroups

    c = pycont.create(*SLEEP[:1], list(SLEEP[1:]), name=name)
    cg = cgroups.for_container(c.id)
    cg.create()
    orphan = subprocess.Popen(["sleep", "1000"])
    try:
        cg.add_pid(orphan.pid)
        assert "Exited (137)" in ps_status(name)  # ps reconciled it: killed, recorded
        assert orphan.wait(30) == -signal.SIGKILL
    finally:
        orphan.kill()
        orphan.wait()
    assert "shim died" in c.state().error
    assert_removed_without_trace(name, c.id)
