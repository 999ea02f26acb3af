"""Containers under limits, through the runtime's own API: the same tests on either cgroup
version. Marked cgroup_v2 too, so CI also runs them in the v2 VM (tests/vm/run_v2.py) while
this machine (v1 hybrid) runs them with the v1 driver."""

from __future__ import annotations

import subprocess

import pytest

import pycont
from tests.helpers import wait_for

pytestmark = [pytest.mark.cgroup_v2]
SPIN = "while :; do :; done"


@pytest.fixture
def made() -> list[pycont.Container]:
    out: list[pycont.Container] = []
    yield out
    for c in out:
        c.remove(force=True)


def _root_only() -> None:
    import os

    if os.geteuid() != 0:
        pytest.skip("needs root: cgroup limits")


def test_memory_limit_oom_kills_pid_1_with_137() -> None:
    _root_only()
    c = pycont.run("busybox", ["sh", "-c", "x=a; while :; do x=$x$x; done"], memory="32m")
    try:
        assert c.exit_code == 137
        assert c.state().oom_killed
        assert c.inspect()["HostConfig"]["Memory"] == 32 << 20
    finally:
        c.remove()


def test_cpu_quota_and_update_show_in_the_cgroup(made: list[pycont.Container]) -> None:
    _root_only()
    c = pycont.run("busybox", ["sh", "-c", SPIN], cpus=0.5, detach=True)
    made.append(c)
    files = c.cgroup().files()
    assert files, "the driver names its files"
    before = c.stats()
    wait_for(
        lambda: (c.stats().cpu_usage_ns or 0) > (before.cpu_usage_ns or 0) + 10**8,
        timeout=30,
        what="the loop to use CPU time",
    )
    c.update(cpus=1, memory="64m")
    assert c.limits().nano_cpus == 10**9
    assert c.stats().memory_limit == 64 << 20


def test_pids_limit_holds_a_fork_bomb_and_rm_f_clears_it(made: list[pycont.Container]) -> None:
    _root_only()
    bomb = 'f() { trap "exec sleep 1000" EXIT; while :; do f & done; }; f'
    c = pycont.run("busybox", ["sh", "-c", bomb], pids_limit=16, detach=True)
    made.append(c)
    wait_for(lambda: (c.stats().pids_current or 0) >= 10, timeout=60, what="the bomb to grow")
    assert (c.stats().pids_current or 0) <= 16
    assert subprocess.run(["true"]).returncode == 0  # the host still forks
    cg = c.cgroup()
    c.remove(force=True)
    made.clear()
    assert not cg.exists()


def test_pause_freezes_every_process(made: list[pycont.Container]) -> None:
    _root_only()
    c = pycont.run("busybox", ["sh", "-c", SPIN], detach=True)
    made.append(c)
    c.pause()
    assert c.cgroup().frozen() and c.status == "paused"
    c.unpause()
    assert not c.cgroup().frozen() and c.status == "running"


def test_the_init_is_in_its_cgroup_before_it_runs_anything() -> None:
    """v2: born there, clone3(CLONE_INTO_CGROUP), with no cgroup.procs write (a migration,
    which waits out an RCU grace period); v1: clone(2), then a write per controller."""
    _root_only()
    from pycont import cgroups

    lines: list[str] = []
    c = pycont.run("busybox", ["cat", "/proc/self/cgroup"], network="none", narrate=lines.append)
    try:
        assert c.exit_code == 0
        calls = [line.split("(", 1)[0] for line in lines]
        procs = [line for line in lines if "cgroup.procs" in line]
        refused = [line for line in lines if line.startswith("clone3(") and " = -1 " in line]
        v2 = cgroups.detect() == "v2"
        if v2 and not refused:
            assert "clone3" in calls and "clone" not in calls, lines
            assert not procs, procs
        else:  # v1, or clone3 refused (a kernel before 5.7, a seccomp filter): the classic way
            assert "clone" in calls, lines
            assert procs
        if v2:
            assert c.output.split() == ["0::/"]  # its cgroup namespace's root: its own cgroup
    finally:
        c.remove()
