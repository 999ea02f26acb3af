"""The v1 driver on the real kernel: limits read back from cgroupfs, and enforced on real processes.

Needs root and v1 controllers (the hybrid CI machines). Each test makes its own
``<controller>/pycont/pytest-<pid>-<hex>`` cgroups; the fixtures kill whatever runs in them and
remove them, also when the test fails. Processes start held at ``read`` on stdin, are moved into
the cgroup, and only then go on: nothing they allocate or fork happens outside the limits.
"""

from __future__ import annotations

import errno
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from pycont import cgroups
from pycont.cgroups import Limits, V1Cgroup
from pycont.errors import KernelError, UsageError
from tests.cgroup_helpers import (
    HOG,
    SPIN,
    Procs,
    a_block_device,
    cpu_ticks,
    held,
    owned,
    release,
)
from tests.helpers import requires, wait_for

pytestmark = [
    requires("root"),
    pytest.mark.skipif(
        os.geteuid() == 0 and cgroups.detect() != "v1",
        reason="needs cgroup v1 controllers (this machine is cgroup v2: see test_cgroups_v2.py)",
    ),
]


@pytest.fixture
def cg(procs: Procs) -> Iterator[V1Cgroup]:
    group = cgroups.for_container(f"pytest-{os.getpid()}-{secrets.token_hex(4)}")
    assert isinstance(group, V1Cgroup)
    yield from owned(group, procs)


def cgroup_lines(pid: int) -> dict[str, str]:
    """/proc/<pid>/cgroup as controller -> path (cgroups(7): ``id:controllers:path``)."""
    out = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for ctrl in ctrls.split(","):
                out[ctrl] = path
    return out


def assert_inside(pid: int, cg: V1Cgroup) -> None:
    lines = cgroup_lines(pid)
    for ctrl in cg.paths():
        assert lines.get(ctrl) == f"/pycont/{cg.name}", (ctrl, lines)


def read(cg: V1Cgroup, ctrl: str, name: str) -> str:
    with open(os.path.join(cg.paths()[ctrl], name)) as f:
        return f.read().strip()


MiB = 1 << 20


# ---- tests --------------------------------------------------------------------------------------


def test_this_machine_is_v1_and_cgroups_are_available() -> None:
    answer = cgroups.available()
    assert answer.ok, answer
    assert answer.reason.startswith("cgroup v1: ")


def test_create_makes_a_pycont_folder_per_controller(cg: V1Cgroup) -> None:
    assert {"memory", "cpu", "cpuacct", "pids", "freezer"} <= set(cg.paths())
    for ctrl, path in cg.paths().items():
        assert os.path.isdir(path), ctrl
        assert path.endswith(f"/pycont/{cg.name}")
    # cpuset: copied from the parent, or no task could join (ENOSPC).
    if "cpuset" in cg.paths():
        assert read(cg, "cpuset", "cpuset.cpus") and read(cg, "cpuset", "cpuset.mems")


def test_limits_read_back_from_the_kernel(cg: V1Cgroup) -> None:
    device, majmin = a_block_device()
    limits = Limits.from_options(
        memory="64m",
        memory_reservation="32m",
        cpus="0.5",
        cpu_shares="512",
        cpuset_cpus="0",
        pids_limit="64",
        device_read_bps=f"{device}:1mb",
        device_write_bps=f"{device}:2mb",
    )
    cg.apply(limits)
    assert read(cg, "memory", "memory.limit_in_bytes") == str(64 * MiB)
    assert read(cg, "memory", "memory.soft_limit_in_bytes") == str(32 * MiB)
    if os.path.exists(os.path.join(cg.paths()["memory"], "memory.memsw.limit_in_bytes")):
        # docker's default --memory-swap: as much swap as memory, memsw = twice memory.
        assert read(cg, "memory", "memory.memsw.limit_in_bytes") == str(128 * MiB)
    assert read(cg, "cpu", "cpu.cfs_period_us") == "100000"
    assert read(cg, "cpu", "cpu.cfs_quota_us") == "50000"
    assert read(cg, "cpu", "cpu.shares") == "512"
    assert read(cg, "cpuset", "cpuset.cpus") == "0"
    assert read(cg, "pids", "pids.max") == "64"
    assert f"{majmin} {MiB}" in read(cg, "blkio", "blkio.throttle.read_bps_device")
    assert f"{majmin} {2 * MiB}" in read(cg, "blkio", "blkio.throttle.write_bps_device")
    stats = cg.stats()
    assert (stats.memory_limit, stats.pids_limit) == (64 * MiB, 64)


def test_blkio_weight(cg: V1Cgroup) -> None:
    names = [
        n for n in ("blkio.weight", "blkio.bfq.weight") if n in os.listdir(cg.paths()["blkio"])
    ]
    if not names:
        with pytest.raises(KernelError, match="BFQ"):
            cg.apply(Limits(blkio_weight=300))
        return
    cg.apply(Limits.from_options(blkio_weight="300"))
    assert read(cg, "blkio", names[0]).split()[-1] == "300"


def test_update_changes_only_the_given_fields(cg: V1Cgroup) -> None:
    cg.apply(Limits.from_options(memory="64m", cpus="0.5"))
    cg.apply(Limits.from_options(pids_limit="10", update=True))
    assert read(cg, "memory", "memory.limit_in_bytes") == str(64 * MiB)
    assert read(cg, "cpu", "cpu.cfs_quota_us") == "50000"
    assert read(cg, "pids", "pids.max") == "10"
    cg.apply(Limits.from_options(memory="100m", update=True))
    assert read(cg, "memory", "memory.limit_in_bytes") == str(100 * MiB)
    assert read(cg, "cpu", "cpu.cfs_quota_us") == "50000"
    if os.path.exists(os.path.join(cg.paths()["memory"], "memory.memsw.limit_in_bytes")):
        with pytest.raises(UsageError, match="update the memoryswap at the same time"):
            cg.apply(Limits.from_options(memory="256m", update=True))  # memsw is 128m
        cg.apply(Limits.from_options(memory="256m", memory_swap="512m", update=True))
        assert read(cg, "memory", "memory.limit_in_bytes") == str(256 * MiB)


def test_a_process_moved_in_shows_in_proc_cgroup(cg: V1Cgroup, procs: Procs) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    procs.append(sleeper)
    cg.add_pid(sleeper.pid)
    assert_inside(sleeper.pid, cg)
    assert cg.pids() == [sleeper.pid]
    assert cg.stats().pids_current == 1


def test_memory_limit_oom_kills_a_hog(cg: V1Cgroup, procs: Procs) -> None:
    # docker's default swap (memsw = 64m). With --memory-swap equal to --memory the kill is the
    # same, but this kernel (6.18) then counts the failed charges nowhere: memory.failcnt and
    # memory.memsw.failcnt both stay 0.
    cg.apply(Limits.from_options(memory="32m"))
    hog = held(procs, sys.executable, "-c", HOG)
    cg.add_pid(hog.pid)
    assert_inside(hog.pid, cg)
    assert not cg.oom_killed()
    release(hog)
    assert hog.wait(timeout=60) == -signal.SIGKILL
    assert cg.oom_killed()
    stats = cg.stats()
    assert stats.oom_kills is not None and stats.oom_kills >= 1
    assert stats.memory_peak is not None and 16 * MiB < stats.memory_peak <= 32 * MiB
    assert stats.memory_limit_hits  # memory.failcnt: the limit was hit
    # The sampler's reader sees the same high-water mark and kill count.
    with cg.reader() as r:
        reading = r.read()
    assert reading.memory_peak == stats.memory_peak
    assert reading.oom_kills == stats.oom_kills
    assert reading.memory_limit == 32 * MiB


def test_a_process_killed_by_us_is_not_an_oom_kill(cg: V1Cgroup, procs: Procs) -> None:
    cg.apply(Limits.from_options(memory="32m"))
    sleeper = held(procs, "sleep", "60")
    cg.add_pid(sleeper.pid)
    release(sleeper)
    cg.kill_all(timeout=10)
    assert sleeper.wait(timeout=10) == -signal.SIGKILL
    assert not cg.oom_killed()


def test_cpu_quota_of_half_a_cpu(cg: V1Cgroup, procs: Procs) -> None:
    cg.apply(Limits.from_options(cpus="0.5"))
    spin = held(procs, sys.executable, "-c", SPIN)
    cg.add_pid(spin.pid)
    release(spin)
    time.sleep(0.3)  # past the interpreter's start-up
    before = cg.stats()
    time.sleep(2.0)
    after = cg.stats()
    share = after.cpu_percent(before)
    assert share is not None
    # Alone, the loop takes a whole CPU; the quota holds it to half of one. The band is wide
    # below (other work on a 2-CPU machine) and tight above (the quota is a ceiling).
    assert 30 <= share <= 60, f"{share:.1f}% of a CPU"
    assert (after.cpu_nr_throttled or 0) > (before.cpu_nr_throttled or 0)
    assert (after.cpu_throttled_ns or 0) > (before.cpu_throttled_ns or 0)


def test_the_reader_agrees_with_the_files_and_fails_once_the_cgroup_is_gone(
    cg: V1Cgroup, procs: Procs
) -> None:
    cg.apply(Limits.from_options(memory="64m", cpus="0.5", pids_limit="16"))
    sleeper = held(procs, "sleep", "60")
    cg.add_pid(sleeper.pid)
    release(sleeper)
    r = cg.reader()
    try:
        reading = r.read()
        assert (reading.memory_limit, reading.cpu_limit, reading.pids) == (64 * MiB, 0.5, 1)
        assert reading.cpu_usage_ns <= int(read(cg, "cpuacct", "cpuacct.usage"))
        assert reading.memory_peak >= reading.memory
        cg.kill_all(timeout=10)
        sleeper.wait(timeout=10)
        cg.destroy()
        with pytest.raises(OSError):  # ENODEV: the open files died with the cgroup
            r.read()
    finally:
        r.close()


def test_pids_limit_contains_a_fork_bomb_and_kill_all_clears_it(cg: V1Cgroup, procs: Procs) -> None:
    cg.apply(Limits.from_options(pids_limit="32"))
    assert read(cg, "pids", "pids.max") == "32"
    bomb = subprocess.Popen(
        ["sh", "-c", "read _; f() { f | f & }; f"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    procs.append(bomb)
    cg.add_pid(bomb.pid)
    assert_inside(bomb.pid, cg)  # never let a fork bomb go outside its cgroup
    release(bomb)
    wait_for(lambda: (cg.stats().pids_current or 0) >= 24, timeout=10, what="the bomb to grow")
    counts = []
    for _ in range(50):
        counts.append(cg.stats().pids_current or 0)
        time.sleep(0.01)
    assert max(counts) <= 32
    assert int(read(cg, "pids", "pids.events").split()[-1]) > 0  # "max N": forks refused
    assert subprocess.run(["true"], check=False).returncode == 0  # the host can still fork
    start = time.monotonic()
    cg.kill_all(timeout=15)
    assert cg.pids() == []
    assert time.monotonic() - start < 15
    bomb.wait(timeout=10)


def test_freeze_stops_every_process_and_thaw_resumes(cg: V1Cgroup, procs: Procs) -> None:
    spin = held(procs, sys.executable, "-c", SPIN)
    cg.add_pid(spin.pid)
    release(spin)
    wait_for(lambda: cpu_ticks(spin.pid) > 5, timeout=10, what="the loop to run")
    cg.freeze()
    assert cg.frozen() and read(cg, "freezer", "freezer.state") == "FROZEN"
    ticks = cpu_ticks(spin.pid)
    time.sleep(0.5)
    assert cpu_ticks(spin.pid) == ticks  # not one tick of CPU while frozen
    cg.thaw()
    assert not cg.frozen() and read(cg, "freezer", "freezer.state") == "THAWED"
    wait_for(lambda: cpu_ticks(spin.pid) > ticks + 5, timeout=10, what="the loop to resume")


def test_shrinking_memory_below_usage_is_ebusy(cg: V1Cgroup, procs: Procs) -> None:
    # v1 tries to reclaim down to the new limit; anonymous memory with no swap cannot be
    # reclaimed, so the write fails (v2 would OOM-kill instead).
    holder = held(
        procs, sys.executable, "-c", "import time; x = b'a' * (24 << 20); time.sleep(120)"
    )
    cg.add_pid(holder.pid)
    release(holder)
    wait_for(lambda: (cg.stats().memory_current or 0) >= 24 * MiB, timeout=15, what="24 MiB")
    with pytest.raises(KernelError) as exc:
        cg.apply(Limits(memory=8 * MiB))
    assert exc.value.errno == errno.EBUSY
    path = os.path.join(cg.paths()["memory"], "memory.limit_in_bytes")
    assert str(exc.value) == f'write "8388608" to {path}: Device or resource busy [EBUSY]'
    assert holder.poll() is None  # nothing was killed


def test_destroy_refuses_while_a_process_is_inside_then_leaves_nothing(
    cg: V1Cgroup, procs: Procs
) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    procs.append(sleeper)
    cg.add_pid(sleeper.pid)
    with pytest.raises(KernelError) as exc:
        cg.destroy()
    assert exc.value.errno == errno.EBUSY
    assert str(exc.value).startswith("rmdir /sys/fs/cgroup/")
    cg.kill_all(timeout=10)
    sleeper.wait(timeout=10)
    cg.destroy()
    assert not any(os.path.exists(p) for p in cg.paths().values())
    cg.destroy()  # idempotent
