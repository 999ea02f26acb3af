"""How the shim clones a container's init: on cgroup v2 straight into its cgroup (clone3
CLONE_INTO_CGROUP), else, or when the kernel refuses clone3, clone(2) and a cgroup.procs write
later (tests/integration/test_runtime_cgroups.py runs both on real kernels)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from pycont.cgroups import V1Cgroup, V2Cgroup
from pycont.kernel._base import CLONE_NEWNS, CLONE_NEWPID
from pycont.kernel.narrating import NarratingKernel
from pycont.kernel.recording import RecordingKernel
from pycont.runtime import shim

FLAGS = CLONE_NEWNS | CLONE_NEWPID


def v2(tmp_path: Path) -> V2Cgroup:
    cg = V2Cgroup("web", root=str(tmp_path))
    os.makedirs(cg.path)
    return cg


def test_v2_is_cloned_into_its_cgroup(tmp_path: Path) -> None:
    k = RecordingKernel()
    assert shim._clone(k, FLAGS, v2(tmp_path)) == (k.next_pid, True)
    (call,) = k.calls
    assert call.name == "clone3" and call.args[0] == FLAGS
    assert isinstance(call.args[1], int)  # a descriptor of the cgroup's folder


def test_a_refused_clone3_falls_back_to_clone(tmp_path: Path) -> None:
    # docker's seccomp profile answers clone3 with ENOSYS; kernels before 5.7 lack the flag
    for err in (errno.ENOSYS, errno.EINVAL, errno.E2BIG, errno.EPERM):
        k = RecordingKernel(fail={"clone3": err})
        assert shim._clone(k, FLAGS, v2(tmp_path / str(err))) == (k.next_pid, False)
        assert k.names() == ["clone3", "clone"]


def test_v1_and_no_cgroup_use_clone(tmp_path: Path) -> None:
    for cg in (V1Cgroup("web", root=str(tmp_path)), None):
        k = RecordingKernel()
        assert shim._clone(k, FLAGS, cg) == (k.next_pid, False)
        assert k.names() == ["clone"]


def test_a_v2_cgroup_folder_that_cannot_be_opened_uses_clone(tmp_path: Path) -> None:
    k = RecordingKernel()
    assert shim._clone(k, FLAGS, V2Cgroup("gone", root=str(tmp_path))) == (k.next_pid, False)
    assert k.names() == ["clone"]


def test_the_narration_names_clone3_and_its_cgroup_and_a_refusal(tmp_path: Path) -> None:
    lines: list[str] = []
    cg = v2(tmp_path)
    shim._clone(NarratingKernel(RecordingKernel(), lines.append), FLAGS, cg)
    assert lines == [
        "clone3({flags=CLONE_NEWNS|CLONE_NEWPID|CLONE_INTO_CGROUP, exit_signal=SIGCHLD, "
        f'cgroup=open("{cg.path}")}}) = 4242'
    ]
    lines.clear()
    refused = NarratingKernel(RecordingKernel(fail={"clone3": errno.ENOSYS}), lines.append)
    shim._clone(refused, FLAGS, cg)
    assert lines[0].startswith("clone3(") and lines[0].endswith(
        " = -1 " + os.strerror(errno.ENOSYS)
    )
    assert lines[1] == "clone(CLONE_NEWNS|CLONE_NEWPID|SIGCHLD) = 4242"
