"""Every change a cgroup driver makes to cgroupfs goes through the kernel seam.

A recording kernel (pycont.kernel.RecordingKernel) takes the mkdir, write and rmdir calls
instead of the kernel: the test reads the exact sequence of ``create`` + ``apply`` + ``add_pid``
on a fake v1 and v2 tree, the same sequence ``pycont run --narrate`` prints. Reads still come
from the fake tree's files (reading changes nothing).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pycont import cgroups
from pycont.cgroups import Limits, V1Cgroup, V2Cgroup
from pycont.errors import KernelError
from pycont.kernel import Call, NarratingKernel, RecordingKernel
from pycont.kernel.mounts import cgroup_layout
from tests.unit.test_cgroups_fake import NAME, fake_v1, fake_v2, mountinfo

MiB = 1 << 20
LIMITS = Limits.from_options(memory="64m", cpus="0.5", pids_limit=100)


def relative(calls: list[Call], root: Path) -> list[tuple[object, ...]]:
    return [(c.name, os.path.relpath(str(c.args[0]), root), *c.args[1:]) for c in calls]


def test_v1_create_apply_add_pid(tmp_path: Path) -> None:
    fake_v1(tmp_path, omit=("blkio", "freezer"))
    # pycont/ is set up already (another container made it): only the new folder needs cpuset.
    (tmp_path / "cpuset/pycont/cpuset.cpus").write_text("0-3\n")
    (tmp_path / "cpuset/pycont/cpuset.mems").write_text("0\n")
    k = RecordingKernel()
    cg = V1Cgroup(NAME, root=str(tmp_path), kernel=k)
    cg.create()
    cg.apply(LIMITS)
    cg.add_pid(4242)
    assert relative(k.calls, tmp_path) == [
        ("mkdir", "cpu/pycont", 0o755),
        ("mkdir", "cpu/pycont/web", 0o755),
        ("mkdir", "cpuacct/pycont", 0o755),
        ("mkdir", "cpuacct/pycont/web", 0o755),
        ("mkdir", "cpuset/pycont", 0o755),
        ("mkdir", "cpuset/pycont/web", 0o755),
        ("mkdir", "memory/pycont", 0o755),
        ("mkdir", "memory/pycont/web", 0o755),
        ("mkdir", "pids/pycont", 0o755),
        ("mkdir", "pids/pycont/web", 0o755),
        # cgroup-v1/cpusets.rst: a new cpuset has no CPUs until given its parent's.
        ("write", "cpuset/pycont/web/cpuset.cpus", "0-3"),
        ("write", "cpuset/pycont/web/cpuset.mems", "0"),
        # both come down from "no limit": memory first, as the kernel keeps memory <= memsw
        ("write", "memory/pycont/web/memory.limit_in_bytes", str(64 * MiB)),
        ("write", "memory/pycont/web/memory.memsw.limit_in_bytes", str(128 * MiB)),
        ("write", "cpu/pycont/web/cpu.cfs_period_us", "100000"),
        ("write", "cpu/pycont/web/cpu.cfs_quota_us", "50000"),
        ("write", "pids/pycont/web/pids.max", "100"),
        *[
            ("write", f"{ctrl}/pycont/web/cgroup.procs", "4242")
            for ctrl in ("cpu", "cpuacct", "cpuset", "memory", "pids")
        ],
    ]


def test_v2_create_apply_add_pid(tmp_path: Path) -> None:
    fake_v2(tmp_path, offered="cpu memory pids")
    k = RecordingKernel()
    cg = V2Cgroup(NAME, root=str(tmp_path), kernel=k)
    cg.create()
    cg.apply(LIMITS)
    cg.add_pid(4242)
    assert relative(k.calls, tmp_path) == [
        ("mkdir", "pycont", 0o755),
        # hand the controllers down: the root to pycont/, pycont/ to the containers
        ("write", "cgroup.subtree_control", "+cpu"),
        ("write", "cgroup.subtree_control", "+memory"),
        ("write", "cgroup.subtree_control", "+pids"),
        ("write", "pycont/cgroup.subtree_control", "+cpu"),
        ("write", "pycont/cgroup.subtree_control", "+cpuset"),
        ("write", "pycont/cgroup.subtree_control", "+io"),
        ("write", "pycont/cgroup.subtree_control", "+memory"),
        ("write", "pycont/cgroup.subtree_control", "+pids"),
        ("mkdir", "pycont/web", 0o755),
        ("write", "pycont/web/memory.max", str(64 * MiB)),
        ("write", "pycont/web/memory.swap.max", str(64 * MiB)),  # v2 limits swap alone
        ("write", "pycont/web/cpu.max", "50000 100000"),
        ("write", "pycont/web/pids.max", "100"),
        ("write", "pycont/web/cgroup.procs", "4242"),
    ]


def test_destroy_is_rmdir_of_the_folder_then_the_shared_parent(tmp_path: Path) -> None:
    k = RecordingKernel()
    V2Cgroup(NAME, root=str(tmp_path), kernel=k).destroy()
    assert relative(k.calls, tmp_path) == [("rmdir", "pycont/web"), ("rmdir", "pycont")]


def test_a_parent_still_in_use_is_left_and_a_refused_write_raises(tmp_path: Path) -> None:
    # EBUSY on pycont/: another container's cgroup is still in there. Not an error.
    k = RecordingKernel(fail={"rmdir": errno.EBUSY})
    cg = V2Cgroup(NAME, root=str(tmp_path), kernel=k)
    with pytest.raises(KernelError) as exc:
        cg._rmdir(cg.dir, wait=0)  # the container's own folder busy past the wait: an error
    assert exc.value.errno == errno.EBUSY
    cg._rmdir_parent(cg.parent)
    k = RecordingKernel(fail={"write": errno.EINVAL})
    with pytest.raises(KernelError):
        V2Cgroup(NAME, root=str(fake_v2(tmp_path)), kernel=k).add_pid(1)


def test_for_container_passes_the_kernel_on(tmp_path: Path) -> None:
    k = RecordingKernel()
    fake_v2(tmp_path)
    layout = cgroup_layout(mountinfo(tmp_path, v2=str(tmp_path)))
    assert cgroups.for_container(NAME, layout, kernel=k).kernel is k
    v1_layout = cgroup_layout(mountinfo(tmp_path, ("memory", "cpu")))
    assert cgroups.for_container(NAME, v1_layout, kernel=k).kernel is k


def test_narration_shows_the_cgroup_steps(tmp_path: Path) -> None:
    # What `pycont run --narrate` prints for the cgroup part of a run.
    lines: list[str] = []
    k = NarratingKernel(RecordingKernel(), lines.append)
    cg = V2Cgroup(NAME, root=str(fake_v2(tmp_path, offered="memory")), kernel=k)
    cg.create()
    cg.apply(Limits(memory=64 * MiB))
    cg.add_pid(4242)
    web = f"{tmp_path}/pycont/web"
    assert lines == [
        f'mkdir("{tmp_path}/pycont", 0o755) = 0',
        f'write("{tmp_path}/cgroup.subtree_control", "+memory") = 0',
        *[
            f'write("{tmp_path}/pycont/cgroup.subtree_control", "+{c}") = 0'
            for c in ("cpu", "cpuset", "io", "memory", "pids")
        ],
        f'mkdir("{web}", 0o755) = 0',
        f'write("{web}/memory.max", "{64 * MiB}") = 0',
        f'write("{web}/cgroup.procs", "4242") = 0',
    ]
