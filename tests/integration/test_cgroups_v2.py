"""The v2 driver on the real kernel: limits read back from cgroupfs, and enforced on real processes.

Most tests need what learners and Binder have: root and a cgroup v2 hierarchy at /sys/fs/cgroup
(the CI runs them in a qemu VM). The ``core`` tests need only some cgroup2 mount: on the v1
hybrid CI machines that is /sys/fs/cgroup/unified, which has no controllers but does have
cgroup.procs, cgroup.freeze, cgroup.kill and cpu.stat, so those parts of the driver run for real
on every machine. Every test removes its cgroups and processes, also when it fails.
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
from pycont.cgroups import Limits, V2Cgroup, base
from pycont.errors import KernelError, Unsupported
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

LAYOUT = cgroups.current_layout()
V2_HERE = (
    LAYOUT.v2 is not None
    and LAYOUT.v2.mount_point == "/sys/fs/cgroup"
    and cgroups.detect(LAYOUT) == "v2"
)
v2_at_sys_fs_cgroup = pytest.mark.skipif(
    not V2_HERE,
    reason="cgroup v2 not mounted at /sys/fs/cgroup (this machine is v1/hybrid); runs in the v2 VM",
)
any_cgroup2 = pytest.mark.skipif(LAYOUT.v2 is None, reason="no cgroup2 filesystem is mounted")
pytestmark = [pytest.mark.cgroup_v2, requires("root")]

MiB = 1 << 20


def _group(procs: Procs, root: str | None) -> Iterator[V2Cgroup]:
    group = V2Cgroup(f"pytest-{os.getpid()}-{secrets.token_hex(4)}", root=root)
    yield from owned(group, procs)


@pytest.fixture
def cg(procs: Procs) -> Iterator[V2Cgroup]:
    """A cgroup under /sys/fs/cgroup/pycont, with the controllers enabled."""
    yield from _group(procs, None)


@pytest.fixture
def core(procs: Procs) -> Iterator[V2Cgroup]:
    """A cgroup on whatever cgroup2 mount there is (the hybrid's: no controllers)."""
    assert LAYOUT.v2 is not None
    yield from _group(procs, LAYOUT.v2.mount_point)


def read(cg: V2Cgroup, name: str) -> str:
    with open(os.path.join(cg.path, name)) as f:
        return f.read().strip()


def keyed(cg: V2Cgroup, name: str) -> dict[str, int]:
    return base.read_keyed(os.path.join(cg.path, name))


def has(cg: V2Cgroup, name: str) -> bool:
    return os.path.exists(os.path.join(cg.path, name))


def own_cgroup(pid: int) -> str:
    """The ``0::path`` line of /proc/<pid>/cgroup (cgroups(7)): the process's v2 cgroup."""
    with open(f"/proc/{pid}/cgroup") as f:
        return next(line.split(":", 2)[2].strip() for line in f if line.startswith("0::"))


# ---- core: any cgroup2 mount, also the hybrid's unified one -------------------------------------


@any_cgroup2
def test_core_join_freeze_kill_and_destroy(core: V2Cgroup, procs: Procs) -> None:
    spin = held(procs, sys.executable, "-c", SPIN)
    core.add_pid(spin.pid)
    assert own_cgroup(spin.pid) == f"/pycont/{core.name}"
    assert core.pids() == [spin.pid]
    release(spin)
    wait_for(lambda: cpu_ticks(spin.pid) > 5, timeout=10, what="the loop to run")
    assert (core.stats().cpu_usage_ns or 0) > 0  # cpu.stat usage_usec is there without cpu
    core.freeze()
    assert core.frozen() and keyed(core, "cgroup.events")["frozen"] == 1
    ticks = cpu_ticks(spin.pid)
    time.sleep(0.5)
    assert cpu_ticks(spin.pid) == ticks
    core.thaw()
    wait_for(lambda: cpu_ticks(spin.pid) > ticks + 5, timeout=10, what="the loop to resume")
    core.kill_all(timeout=10)
    assert spin.wait(timeout=10) == -signal.SIGKILL
    assert core.pids() == []
    core.destroy()
    assert not core.exists()


@any_cgroup2
def test_core_a_limit_without_its_controller_is_refused(core: V2Cgroup) -> None:
    if has(core, "memory.max"):
        pytest.skip("the memory controller is enabled here")
    with pytest.raises(Unsupported) as exc:
        core.apply(Limits(memory=64 * MiB))
    assert "memory controller is not enabled" in str(exc.value)


# ---- the full driver on a v2 system --------------------------------------------------------------


@v2_at_sys_fs_cgroup
def test_this_machine_is_v2_and_cgroups_are_available() -> None:
    answer = cgroups.available()
    assert answer.ok, answer
    assert answer.reason.startswith("cgroup v2: each container gets /sys/fs/cgroup/pycont/<name>")


@v2_at_sys_fs_cgroup
def test_create_hands_controllers_down(cg: V2Cgroup) -> None:
    offered = set(base.read_file("/sys/fs/cgroup/cgroup.controllers").split())
    wanted = offered & {"cpu", "memory", "pids", "io", "cpuset"}
    assert wanted >= {"cpu", "memory", "pids"}
    parent = set(base.read_file("/sys/fs/cgroup/pycont/cgroup.subtree_control").split())
    assert wanted <= parent
    assert wanted <= set(read(cg, "cgroup.controllers").split())
    assert cg.path == f"/sys/fs/cgroup/pycont/{cg.name}"


@v2_at_sys_fs_cgroup
def test_limits_read_back_from_the_kernel(cg: V2Cgroup) -> None:
    cg.apply(
        Limits.from_options(
            memory="64m", memory_reservation="32m", cpus="0.5", cpu_shares="512", pids_limit="64"
        )
    )
    assert read(cg, "memory.max") == str(64 * MiB)
    if has(cg, "memory.swap.max"):
        assert read(cg, "memory.swap.max") == str(64 * MiB)  # docker's default: swap = memory
    assert read(cg, "memory.low") == str(32 * MiB)
    assert read(cg, "cpu.max") == "50000 100000"
    assert read(cg, "cpu.weight") == "20"
    assert read(cg, "pids.max") == "64"
    if has(cg, "cpuset.cpus"):
        cg.apply(Limits.from_options(cpuset_cpus="0"))
        assert read(cg, "cpuset.cpus") == "0"
    stats = cg.stats()
    assert (stats.memory_limit, stats.pids_limit) == (64 * MiB, 64)


@v2_at_sys_fs_cgroup
def test_io_limits(cg: V2Cgroup) -> None:
    if not has(cg, "io.max"):
        pytest.skip("the io controller is not offered in /sys/fs/cgroup/cgroup.controllers")
    device, majmin = a_block_device()
    cg.apply(
        Limits.from_options(
            device_read_bps=f"{device}:1mb", device_write_bps=f"{device}:2mb", blkio_weight="300"
        )
        if has(cg, "io.bfq.weight") or has(cg, "io.weight")
        else Limits.from_options(device_read_bps=f"{device}:1mb", device_write_bps=f"{device}:2mb")
    )
    assert f"{majmin} rbps={MiB} wbps={2 * MiB}" in read(cg, "io.max")
    if has(cg, "io.bfq.weight"):
        assert read(cg, "io.bfq.weight").split()[-1] == "300"
    elif has(cg, "io.weight"):
        assert read(cg, "io.weight").split()[-1] == "2930"


@v2_at_sys_fs_cgroup
def test_update_changes_only_the_given_fields(cg: V2Cgroup) -> None:
    cg.apply(Limits.from_options(memory="64m", cpus="0.5"))
    cg.apply(Limits.from_options(pids_limit="10", update=True))
    assert (read(cg, "memory.max"), read(cg, "cpu.max")) == (str(64 * MiB), "50000 100000")
    assert read(cg, "pids.max") == "10"
    cg.apply(Limits.from_options(memory="128m", update=True))
    assert read(cg, "memory.max") == str(128 * MiB)
    assert read(cg, "cpu.max") == "50000 100000"


@v2_at_sys_fs_cgroup
def test_a_process_moved_in_shows_in_proc_cgroup(cg: V2Cgroup, procs: Procs) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    procs.append(sleeper)
    cg.add_pid(sleeper.pid)
    assert own_cgroup(sleeper.pid) == f"/pycont/{cg.name}"
    assert cg.pids() == [sleeper.pid]
    assert cg.stats().pids_current == 1


@v2_at_sys_fs_cgroup
def test_memory_limit_oom_kills_a_hog(cg: V2Cgroup, procs: Procs) -> None:
    cg.apply(Limits.from_options(memory="32m", memory_swap="32m"))  # no swap to escape to
    hog = held(procs, sys.executable, "-c", HOG)
    cg.add_pid(hog.pid)
    assert own_cgroup(hog.pid) == f"/pycont/{cg.name}"
    assert not cg.oom_killed()
    release(hog)
    assert hog.wait(timeout=60) == -signal.SIGKILL
    assert cg.oom_killed()
    assert keyed(cg, "memory.events")["oom_kill"] >= 1
    stats = cg.stats()
    assert stats.oom_kills is not None and stats.oom_kills >= 1
    assert stats.oom_events is not None and stats.oom_events >= 1
    assert stats.memory_peak is not None and 16 * MiB < stats.memory_peak <= 32 * MiB
    # The sampler's reader sees the same high-water mark (memory.peak) and kill count.
    with cg.reader() as r:
        reading = r.read()
    assert reading.memory_peak == stats.memory_peak
    assert reading.oom_kills == stats.oom_kills
    assert reading.memory_limit == 32 * MiB


@v2_at_sys_fs_cgroup
def test_the_reader_agrees_with_the_files_and_fails_once_the_cgroup_is_gone(
    cg: V2Cgroup, procs: Procs
) -> None:
    cg.apply(Limits.from_options(memory="64m", cpus="0.5", pids_limit="16"))
    sleeper = held(procs, "sleep", "60")
    cg.add_pid(sleeper.pid)
    release(sleeper)
    r = cg.reader()
    try:
        reading = r.read()
        assert (reading.memory_limit, reading.cpu_limit, reading.pids) == (64 * MiB, 0.5, 1)
        assert reading.cpu_usage_ns <= keyed(cg, "cpu.stat")["usage_usec"] * 1000
        assert reading.memory_peak >= reading.memory
        cg.kill_all(timeout=10)
        sleeper.wait(timeout=10)
        cg.destroy()
        with pytest.raises(OSError):  # ENODEV: the open files died with the cgroup
            r.read()
    finally:
        r.close()


@v2_at_sys_fs_cgroup
def test_a_process_killed_by_us_is_not_an_oom_kill(cg: V2Cgroup, procs: Procs) -> None:
    cg.apply(Limits.from_options(memory="32m"))
    sleeper = held(procs, "sleep", "60")
    cg.add_pid(sleeper.pid)
    release(sleeper)
    cg.kill_all(timeout=10)
    assert sleeper.wait(timeout=10) == -signal.SIGKILL
    assert not cg.oom_killed()


@v2_at_sys_fs_cgroup
def test_lowering_memory_max_below_usage_oom_kills(cg: V2Cgroup, procs: Procs) -> None:
    # The contrast with v1 (where the write fails with EBUSY): v2 reclaims what it can, then
    # calls the OOM killer (cgroup-v2.rst, memory.max).
    holder = held(
        procs, sys.executable, "-c", "import time; x = b'a' * (24 << 20); time.sleep(120)"
    )
    cg.apply(Limits.from_options(memory="64m", memory_swap="64m"))
    cg.add_pid(holder.pid)
    release(holder)
    wait_for(lambda: (cg.stats().memory_current or 0) >= 24 * MiB, timeout=15, what="24 MiB")
    cg.apply(Limits(memory=8 * MiB))
    assert holder.wait(timeout=30) == -signal.SIGKILL
    assert cg.oom_killed()


@v2_at_sys_fs_cgroup
def test_cpu_quota_of_half_a_cpu(cg: V2Cgroup, procs: Procs) -> None:
    cg.apply(Limits.from_options(cpus="0.5"))
    spin = held(procs, sys.executable, "-c", SPIN)
    cg.add_pid(spin.pid)
    release(spin)
    time.sleep(0.3)
    before = cg.stats()
    time.sleep(2.0)
    after = cg.stats()
    share = after.cpu_percent(before)
    assert share is not None
    assert 30 <= share <= 60, f"{share:.1f}% of a CPU"
    assert (after.cpu_nr_throttled or 0) > (before.cpu_nr_throttled or 0)


@v2_at_sys_fs_cgroup
def test_pids_limit_contains_a_fork_bomb_and_cgroup_kill_clears_it(
    cg: V2Cgroup, procs: Procs
) -> None:
    cg.apply(Limits.from_options(pids_limit="32"))
    assert read(cg, "pids.max") == "32"
    bomb = subprocess.Popen(
        ["sh", "-c", "read _; f() { f | f & }; f"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    procs.append(bomb)
    cg.add_pid(bomb.pid)
    assert own_cgroup(bomb.pid) == f"/pycont/{cg.name}"  # never let a bomb go outside it
    release(bomb)
    wait_for(lambda: (cg.stats().pids_current or 0) >= 24, timeout=10, what="the bomb to grow")
    counts = []
    for _ in range(50):
        counts.append(cg.stats().pids_current or 0)
        time.sleep(0.01)
    assert max(counts) <= 32
    assert keyed(cg, "pids.events")["max"] > 0  # forks refused
    assert subprocess.run(["true"], check=False).returncode == 0  # the host can still fork
    start = time.monotonic()
    cg.kill_all(timeout=15)
    assert cg.pids() == []
    assert time.monotonic() - start < 15
    bomb.wait(timeout=10)


@v2_at_sys_fs_cgroup
def test_freeze_stops_every_process_and_thaw_resumes(cg: V2Cgroup, procs: Procs) -> None:
    spin = held(procs, sys.executable, "-c", SPIN)
    cg.add_pid(spin.pid)
    release(spin)
    wait_for(lambda: cpu_ticks(spin.pid) > 5, timeout=10, what="the loop to run")
    cg.freeze()
    assert cg.frozen() and read(cg, "cgroup.freeze") == "1"
    ticks = cpu_ticks(spin.pid)
    time.sleep(0.5)
    assert cpu_ticks(spin.pid) == ticks
    cg.thaw()
    assert not cg.frozen()
    wait_for(lambda: cpu_ticks(spin.pid) > ticks + 5, timeout=10, what="the loop to resume")


@v2_at_sys_fs_cgroup
def test_no_internal_processes(cg: V2Cgroup, procs: Procs) -> None:
    # cgroup-v2.rst: a cgroup with processes may not hand domain controllers (memory, io) to
    # children; threaded ones such as pids are exempt.
    sleeper = subprocess.Popen(["sleep", "60"])
    procs.append(sleeper)
    cg.add_pid(sleeper.pid)
    with pytest.raises(KernelError) as exc:
        cg.kernel.write_file(os.path.join(cg.path, "cgroup.subtree_control"), "+memory")
    assert exc.value.errno == errno.EBUSY


@v2_at_sys_fs_cgroup
def test_destroy_refuses_while_a_process_is_inside_then_leaves_nothing(
    cg: V2Cgroup, procs: Procs
) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    procs.append(sleeper)
    cg.add_pid(sleeper.pid)
    with pytest.raises(KernelError) as exc:
        cg.destroy()
    assert exc.value.errno == errno.EBUSY
    assert str(exc.value).startswith(f"rmdir {cg.path}: ")
    cg.kill_all(timeout=10)
    sleeper.wait(timeout=10)
    cg.destroy()
    assert not cg.exists()
    cg.destroy()  # idempotent
