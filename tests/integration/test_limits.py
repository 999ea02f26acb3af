"""Resource limits through the CLI, checked on the kernel's own files.

``-m`` (memory), ``--cpus`` (CFS quota), ``--pids-limit``, ``update``, ``pause``/``unpause``:
each claim is read back from the container's cgroup folders (their paths come from
``inspect``'s ``Pycont.Cgroup``), as ``docker stats``/``docker inspect`` would be
cross-checked against ``/sys/fs/cgroup``. CPU shares on a shared 2-CPU machine vary with the
other load, so CPU figures are checked in wide bands and measured up to three times.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable

import pytest

from tests.helpers import (
    cgroup_dirs,
    cli,
    container_ids,
    pids_in_pid_namespace,
    process_gone,
    requires,
    wait_for,
)

pytestmark = requires("root", "overlay")

# The shell doubles a string until the memory limit stops it: the OOM killer ends it.
HOG = "x=a; while :; do x=$x$x; done"
SPIN = "while :; do :; done"
# Every process forks in a loop until a fork fails. busybox sh exits on a failed fork (so the
# classic `f | f &` burns out in a moment); the EXIT trap turns each one into a sleeping
# process instead, so the bomb holds every pid it can get for as long as it is looked at.
FORK_BOMB = 'f() { trap "exec sleep 1000" EXIT; while :; do f & done; }; f'
MiB = 1 << 20
ATTEMPTS = 3  # CPU measurements on a shared machine: retry before failing


def inspect(name: str, fmt: str) -> str:
    proc = cli("inspect", "-f", fmt, name)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def cgroup_of(name: str) -> dict[str, str]:
    """Folder by controller, as inspect shows it (v1: one per controller)."""
    return json.loads(inspect(name, "{{json .Pycont.Cgroup}}"))


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def run_detached(name: str, *args: str) -> str:
    proc = cli("run", "-d", "--name", name, *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def stats_cpu(name: str) -> float:
    """The CPU % column of ``pycont stats --no-stream NAME``."""
    proc = cli("stats", "--no-stream", name)
    assert proc.returncode == 0, proc.stderr
    header, *rows = proc.stdout.splitlines()
    assert header.split()[:4] == ["CONTAINER", "ID", "NAME", "CPU"], proc.stdout
    (row,) = [r for r in rows if r.split()[1:2] == [name]]
    m = re.search(r"\s(\d+(?:\.\d+)?)%\s", row)
    assert m, row
    return float(m.group(1))


def measure(name: str, cpuacct: str, window: float = 2.0) -> tuple[float, float]:
    """(stats' CPU %, the kernel's): ``stats`` runs inside a ``window`` over which the
    cgroup's own counter (cpuacct.usage, ns of CPU time) is read before and after."""
    usage = os.path.join(cpuacct, "cpuacct.usage")
    t0, u0 = time.monotonic(), int(read(usage))
    shown = stats_cpu(name)
    rest = window - (time.monotonic() - t0)
    if rest > 0:
        time.sleep(rest)  # the measurement window, not a wait for an event
    t1, u1 = time.monotonic(), int(read(usage))
    return shown, 100.0 * (u1 - u0) / ((t1 - t0) * 1e9)


def measure_until(
    name: str, cpuacct: str, ok: Callable[[float, float], bool]
) -> list[tuple[float, float]]:
    """Measure up to ATTEMPTS times until ``ok(stats, kernel)``; returns every reading."""
    readings = []
    for _ in range(ATTEMPTS):
        readings.append(measure(name, cpuacct))
        if ok(*readings[-1]):
            break
    return readings


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    return lines[0]


# -- memory ----------------------------------------------------------------------------------
@pytest.mark.cgroup_v2  # also in the v2 VM: the same docker semantics on both drivers
def test_oom_kill_with_rm_exits_137_and_leaves_nothing() -> None:
    before = container_ids()
    proc = cli("run", "--rm", "-m", "32m", "busybox", "sh", "-c", HOG)
    assert proc.returncode == 137, proc.stderr
    assert container_ids() == before


@pytest.mark.cgroup_v2
def test_oom_kill_is_recorded(name: str) -> None:
    proc = cli("run", "--name", name, "-m", "32m", "busybox", "sh", "-c", HOG)
    assert proc.returncode == 137, proc.stderr
    assert inspect(name, "{{.State.OOMKilled}} {{.State.ExitCode}}") == "true 137"
    assert inspect(name, "{{.State.Status}}") == "exited"


@pytest.mark.cgroup_v2
def test_oom_kill_of_a_child_is_oom_killed_with_the_containers_own_code(name: str) -> None:
    # docker: OOMKilled is true when any process of the container was OOM-killed; the exit
    # code is PID 1's, which survived.
    script = f"({HOG}); echo survived; exit 3"
    proc = cli("run", "--name", name, "-m", "32m", "busybox", "sh", "-c", script)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == "survived\n"
    assert inspect(name, "{{.State.OOMKilled}} {{.State.ExitCode}}") == "true 3"


def test_update_memory_is_what_the_kernel_enforces(name: str) -> None:
    run_detached(name, "-m", "64m", "busybox", "sleep", "1000")
    limit = os.path.join(cgroup_of(name)["memory"], "memory.limit_in_bytes")
    assert int(read(limit)) == 64 * MiB
    for new, expected in (("96m", 96 * MiB), ("48m", 48 * MiB)):
        proc = cli("update", "-m", new, name)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == f"{name}\n"
        assert int(read(limit)) == expected
        assert int(inspect(name, "{{.HostConfig.Memory}}")) == expected


# -- CPU -------------------------------------------------------------------------------------
def test_cpus_half_shows_in_stats_and_in_the_kernels_counter(name: str) -> None:
    run_detached(name, "--cpus", "0.5", "busybox", "sh", "-c", SPIN)
    dirs = cgroup_of(name)
    assert read(os.path.join(dirs["cpu"], "cpu.cfs_quota_us")) == "50000"
    assert read(os.path.join(dirs["cpu"], "cpu.cfs_period_us")) == "100000"

    def in_band(shown: float, kernel: float) -> bool:
        return 30 <= shown <= 70 and 30 <= kernel <= 70

    readings = measure_until(name, dirs["cpuacct"], in_band)
    assert in_band(*readings[-1]), f"(stats %, kernel %) per attempt: {readings}"


def test_update_cpus_lifts_the_quota(name: str) -> None:
    run_detached(name, "--cpus", "0.5", "busybox", "sh", "-c", SPIN)
    dirs = cgroup_of(name)
    proc = cli("update", "--cpus", "1", name)
    assert proc.returncode == 0, proc.stderr
    assert read(os.path.join(dirs["cpu"], "cpu.cfs_quota_us")) == "100000"
    assert inspect(name, "{{.HostConfig.NanoCpus}}") == "1000000000"
    readings = measure_until(name, dirs["cpuacct"], lambda shown, _kernel: shown > 70)
    assert readings[-1][0] > 70, f"(stats %, kernel %) per attempt: {readings}"


# -- the freezer -----------------------------------------------------------------------------
def ps_status(name: str) -> str:
    proc = cli("ps")
    assert proc.returncode == 0, proc.stderr
    (row,) = [r for r in proc.stdout.splitlines()[1:] if r.split()[-1] == name]
    return row


def test_pause_freezes_and_unpause_thaws(name: str) -> None:
    run_detached(name, "busybox", "sh", "-c", SPIN)
    state = os.path.join(cgroup_of(name)["freezer"], "freezer.state")
    assert read(state) == "THAWED"

    proc = cli("pause", name)
    assert (proc.returncode, proc.stdout) == (0, f"{name}\n"), proc.stderr
    assert read(state) == "FROZEN"
    assert "(Paused)" in ps_status(name)
    assert inspect(name, "{{.State.Status}} {{.State.Paused}}") == "paused true"

    proc = cli("unpause", name)
    assert (proc.returncode, proc.stdout) == (0, f"{name}\n"), proc.stderr
    assert read(state) == "THAWED"
    assert "(Paused)" not in ps_status(name)
    assert inspect(name, "{{.State.Status}} {{.State.Paused}}") == "running false"


# -- pids ------------------------------------------------------------------------------------
def test_fork_bomb_is_held_at_the_pids_limit_and_rm_f_clears_it(name: str) -> None:
    cid = run_detached(name, "--pids-limit", "64", "busybox", "sh", "-c", FORK_BOMB)
    dirs = cgroup_of(name)
    pids = dirs["pids"]
    assert read(os.path.join(pids, "pids.max")) == "64"
    pid_ns = os.stat(f"/proc/{inspect(name, '{{.State.Pid}}')}/ns/pid").st_ino

    wait_for(
        lambda: int(read(os.path.join(pids, "pids.current"))) >= 48,
        timeout=15,
        what="the fork bomb to grow",
    )
    counts = [int(read(os.path.join(pids, "pids.current"))) for _ in range(200)]
    assert max(counts) <= 64
    # and they are live processes of the container, not zombies the count forgot
    assert 48 <= len([p for p in pids_in_pid_namespace(pid_ns) if not process_gone(p)]) <= 64
    assert int(read(os.path.join(pids, "pids.events")).split()[-1]) > 0  # "max N": refused
    assert subprocess.run(["true"], check=False).returncode == 0  # the host can still fork

    proc = cli("rm", "-f", name)
    assert proc.returncode == 0, proc.stderr
    wait_for(lambda: not pids_in_pid_namespace(pid_ns), timeout=10, what="the bomb to end")
    assert cid not in container_ids()
    assert cgroup_dirs(cid) == []
    assert [d for d in dirs.values() if os.path.exists(d)] == []


# -- bad values ------------------------------------------------------------------------------
def _too_many_cpus() -> str:
    return str(max(9, len(os.sched_getaffinity(0)) + 1))


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("-m", "1e99"),
        ("-m", "4m"),  # below docker's 6 MiB minimum
        ("-m", "\uff16\uff14m"),  # fullwidth digits: int() would take them, docker does not
        ("--cpus", _too_many_cpus()),
        ("--cpus", "0.1234567891"),  # more than nano-CPU precision
        ("--pids-limit", "abc"),
    ],
)
def test_a_bad_limit_is_one_line_exit_125_and_creates_nothing(flag: str, value: str) -> None:
    before = container_ids()
    proc = cli("run", "--rm", flag, value, "busybox", "true")
    assert proc.returncode == 125
    line = one_error_line(proc)
    assert line.startswith("pycont: invalid "), line
    assert json.dumps(value, ensure_ascii=False) in line  # the value as typed
    assert proc.stdout == ""
    assert container_ids() == before
