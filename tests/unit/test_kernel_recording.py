"""The container's root built against a recording kernel: the exact syscall sequence, no root.

rootfs.setup_root() runs in the container's mount namespace in real life; here every mount
is recorded instead of made, while the directories it prepares are real (in a tmp dir).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pycont import kernel
from pycont.errors import KernelError
from pycont.kernel import (
    CLONE_NEWCGROUP,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    MNT_DETACH,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    Call,
    NarratingKernel,
    RecordingKernel,
    describe_flags,
)
from pycont.rootfs import DEVICES, RootSpec, prepare_dirs, setup_root


@pytest.fixture
def spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RootSpec:
    # setup_root() changes the working directory (pivot_root(".", ".")): give it back after.
    monkeypatch.chdir(tmp_path)
    lowers = (str(tmp_path / "layers" / "top"), str(tmp_path / "layers" / "base"))
    for d in lowers:
        os.makedirs(d)
    s = RootSpec(lowers=lowers, container_dir=str(tmp_path / "ctr"))
    prepare_dirs(s)
    return s


def mounts(k: RecordingKernel) -> list[Call]:
    return [c for c in k.calls if c.name == "mount"]


def mount_at(k: RecordingKernel, target: str) -> Call:
    found = [c for c in mounts(k) if c.args[1] == target]
    assert len(found) == 1, f"expected one mount on {target}, got {found}"
    return found[0]


class CwdRecordingKernel(RecordingKernel):
    """Also notes the working directory at pivot_root: "." there means the cwd."""

    cwd_at_pivot: str = ""

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self.cwd_at_pivot = os.getcwd()
        super().pivot_root(new_root, put_old)


def test_first_makes_every_mount_private(spec: RootSpec) -> None:
    k = RecordingKernel()
    setup_root(k, spec)
    # mount_namespaces(7): without this, mounts would propagate back to the host.
    assert k.calls[0] == Call("mount", ("", "/", "", MS_REC | MS_PRIVATE, ""))


@pytest.mark.parametrize("userns", [False, True])
def test_overlay_stacks_the_layers_under_the_containers_own_dir(
    spec: RootSpec, userns: bool
) -> None:
    s = RootSpec(spec.lowers, spec.container_dir, userns=userns)
    k = RecordingKernel()
    setup_root(k, s)
    call = k.calls[1]
    assert call.name == "mount"
    source, target, fstype, flags, data = call.args
    assert (target, fstype, flags) == (s.merged, "overlay", 0)
    assert "pycont" in str(source)  # the leak check finds our mounts by name
    options = str(data).split(",")
    assert options[:3] == [
        f"lowerdir={s.lowers[0]}:{s.lowers[1]}",
        f"upperdir={s.container_dir}/upper",
        f"workdir={s.container_dir}/work",
    ]
    assert ("userxattr" in options) is userns


def test_proc_is_a_fresh_proc(spec: RootSpec) -> None:
    k = RecordingKernel()
    setup_root(k, spec)
    call = mount_at(k, os.path.join(spec.merged, "proc"))
    assert call.args[0] == "proc"
    assert call.args[2] == "proc"
    assert call.args[3] & (MS_NOSUID | MS_NODEV | MS_NOEXEC) == MS_NOSUID | MS_NODEV | MS_NOEXEC


def test_dev_is_a_tmpfs_with_the_host_devices_bound_in(spec: RootSpec) -> None:
    k = RecordingKernel()
    setup_root(k, spec)
    dev = os.path.join(spec.merged, "dev")
    call = mount_at(k, dev)
    assert call.args[2] == "tmpfs"
    for name in ("null", "zero", "urandom", "random", "full", "tty"):
        assert name in DEVICES
        bind = mount_at(k, os.path.join(dev, name))
        assert bind.args[0] == f"/dev/{name}"
        assert bind.args[3] & MS_BIND
        # a bind mount needs an existing file to mount on
        assert os.path.isfile(os.path.join(dev, name))
    # the tmpfs comes before the binds that sit on it
    order = [c.args[1] for c in mounts(k)]
    assert order.index(dev) < order.index(os.path.join(dev, "null"))
    assert os.readlink(os.path.join(dev, "ptmx")) == "pts/ptmx"
    assert os.readlink(os.path.join(dev, "fd")) == "/proc/self/fd"


def test_devpts_is_a_new_instance(spec: RootSpec) -> None:
    k = RecordingKernel()
    setup_root(k, spec)
    call = mount_at(k, os.path.join(spec.merged, "dev", "pts"))
    assert call.args[2] == "devpts"
    assert "newinstance" in str(call.args[4]).split(",")
    shm = mount_at(k, os.path.join(spec.merged, "dev", "shm"))
    assert shm.args[2] == "tmpfs"


def test_sysfs_is_read_only(spec: RootSpec) -> None:
    k = RecordingKernel()
    setup_root(k, spec)
    call = mount_at(k, os.path.join(spec.merged, "sys"))
    assert call.args[2] == "sysfs"
    assert call.args[3] & MS_RDONLY


def test_ends_by_pivoting_into_the_new_root_and_detaching_the_old(spec: RootSpec) -> None:
    k = CwdRecordingKernel()
    setup_root(k, spec)
    assert k.calls[-2:] == [
        Call("pivot_root", (".", ".")),
        Call("umount2", (".", MNT_DETACH)),
    ]
    # pivot_root(".", ".") means the working directory: it must be the merged root then
    assert k.cwd_at_pivot == spec.merged
    # every mount was made before the pivot, on a path inside the new root
    for call in mounts(k)[1:]:
        assert str(call.args[1]).startswith(spec.merged)


def test_the_whole_sequence_in_order(spec: RootSpec) -> None:
    k = RecordingKernel()
    setup_root(k, spec)
    targets = [os.path.relpath(str(c.args[1]), spec.merged) for c in mounts(k)[1:]]
    names = k.names()
    assert names[0] == "mount" and names[-2:] == ["pivot_root", "umount2"]
    assert set(names) == {"mount", "pivot_root", "umount2"}
    assert targets[0] == "."  # the overlay, then what goes on top of it
    assert targets.index("proc") < targets.index("dev") < targets.index("dev/pts")
    assert targets.index("dev/pts") < targets.index("sys")


@pytest.mark.parametrize("privileged", [False, True])
def test_root_and_dev_are_nodev_but_privileged(spec: RootSpec, privileged: bool) -> None:
    # docker's devices cgroup, as a mount flag: nodes from layers or mknod(2) cannot be opened
    s = RootSpec(spec.lowers, spec.container_dir, privileged=privileged)
    k = RecordingKernel()
    setup_root(k, s)
    flags = {c: int(str(c.args[3])) for c in mounts(k)}  # Call.args is a tuple of objects
    remounts = [c for c in mounts(k) if c.args[1] == s.merged and flags[c] & MS_REMOUNT]
    dev = mount_at(k, os.path.join(s.merged, "dev"))
    if privileged:
        assert remounts == [] and not flags[dev] & MS_NODEV
        return
    (remount,) = remounts
    want = MS_REMOUNT | MS_BIND | MS_NODEV
    assert flags[remount] & want == want
    assert flags[dev] & MS_NODEV
    # it comes right after the overlay, before anything is mounted on top of the root
    assert [c.args[1] for c in mounts(k)[1:3]] == [s.merged, s.merged]


class SysfsRefused(RecordingKernel):
    """sysfs(5): refused with EPERM to a user namespace that does not own the netns."""

    def mount(
        self, source: str, target: str, fstype: str = "", flags: int = 0, data: str = ""
    ) -> None:
        if fstype in ("sysfs", "mqueue"):
            self.calls.append(Call("mount", (source, target, fstype, flags, data)))
            raise KernelError("mount", errno.EPERM, target)
        super().mount(source, target, fstype, flags, data)


def test_refused_sysfs_falls_back_to_a_read_only_bind_of_the_hosts(spec: RootSpec) -> None:
    k = SysfsRefused()
    setup_root(k, spec)
    sys_dir = os.path.join(spec.merged, "sys")
    on_sys = [c.args for c in mounts(k) if c.args[1] == sys_dir]
    assert on_sys[0][2] == "sysfs"
    assert on_sys[1][:2] == ("/sys", sys_dir) and on_sys[1][3] & MS_BIND
    remount = on_sys[2][3]
    assert remount & MS_REMOUNT and remount & MS_RDONLY and remount & MS_BIND
    assert k.names()[-2:] == ["pivot_root", "umount2"]


def test_failing_pivot_root_raises_kernel_error_naming_it(spec: RootSpec) -> None:
    k = RecordingKernel(fail={"pivot_root": errno.EPERM})
    with pytest.raises(KernelError) as info:
        setup_root(k, spec)
    err = info.value
    assert isinstance(err, OSError)
    assert err.errno == errno.EPERM
    assert err.filename == "."
    assert str(err) == "pivot_root .: Operation not permitted [EPERM]"
    assert "\n" not in str(err)
    assert k.names()[-1] == "pivot_root"  # nothing after the failure


def test_failing_mount_names_its_target(spec: RootSpec) -> None:
    k = RecordingKernel(fail={"mount": errno.EPERM})
    with pytest.raises(KernelError) as info:
        setup_root(k, spec)
    err = info.value
    assert err.errno == errno.EPERM
    assert "mount" in str(err) and "[EPERM]" in str(err)
    # the first mount makes "/" private: the error names that target, as LinuxKernel does
    assert err.filename == "/", str(err)
    assert len(k.calls) == 1


def test_narrating_kernel_tells_each_call_strace_style(spec: RootSpec) -> None:
    lines: list[str] = []
    inner = RecordingKernel()
    setup_root(NarratingKernel(inner, lines.append), spec)
    assert len(lines) == len(inner.calls)
    assert lines[0] == 'mount("none", "/", NULL, MS_REC|MS_PRIVATE, NULL) = 0'
    assert lines[1] == (
        f'mount("pycont-overlay", "{spec.merged}", "overlay", 0, '
        f'"lowerdir={spec.lowers[0]}:{spec.lowers[1]},upperdir={spec.upper},'
        f'workdir={spec.work}") = 0'
    )
    assert f'mount("sysfs", "{spec.merged}/sys", "sysfs", ' in lines[-3]
    assert "MS_RDONLY" in lines[-3]
    assert lines[-2:] == ['pivot_root(".", ".") = 0', 'umount2(".", MNT_DETACH) = 0']


def test_narrating_kernel_tells_a_failure_and_raises(spec: RootSpec) -> None:
    lines: list[str] = []
    k = NarratingKernel(RecordingKernel(fail={"pivot_root": errno.EPERM}), lines.append)
    with pytest.raises(KernelError):
        setup_root(k, spec)
    assert lines[-1] == 'pivot_root(".", ".") = -1 Operation not permitted'


def test_narrating_kernel_other_calls() -> None:
    lines: list[str] = []
    k = NarratingKernel(RecordingKernel(), lines.append)
    assert k.clone(CLONE_NEWNS | CLONE_NEWPID) == 4242
    k.setns(7, CLONE_NEWPID, "/proc/42/ns/pid")
    k.unshare(CLONE_NEWCGROUP)
    k.sethostname("web")
    k.set_pdeathsig(9)
    assert lines == [
        "clone(CLONE_NEWNS|CLONE_NEWPID|SIGCHLD) = 4242",
        'setns(open("/proc/42/ns/pid"), CLONE_NEWPID) = 0',
        "unshare(CLONE_NEWCGROUP) = 0",
        'sethostname("web") = 0',
        "prctl(PR_SET_PDEATHSIG, SIGKILL) = 0",
    ]


def test_narrating_clone_speaks_only_in_the_parent() -> None:
    lines: list[str] = []
    k = NarratingKernel(RecordingKernel(next_pid=0), lines.append)
    assert k.clone(CLONE_NEWPID) == 0
    assert lines == []


def test_describe_flags() -> None:
    assert describe_flags(CLONE_NEWNS | CLONE_NEWPID) == "CLONE_NEWNS|CLONE_NEWPID"
    assert describe_flags(CLONE_NEWUSER) == "CLONE_NEWUSER"
    assert describe_flags(0) == "0"
    assert describe_flags(CLONE_NEWPID | 0x1) == "CLONE_NEWPID|0x1"
    assert describe_flags(MS_REC | MS_PRIVATE, "mount") == "MS_REC|MS_PRIVATE"
    assert describe_flags(MS_BIND | MS_RDONLY | MS_REMOUNT, "mount") == (
        "MS_RDONLY|MS_REMOUNT|MS_BIND"
    )
    assert describe_flags(0, "mount") == "0"


def test_recording_kernel_refuses_a_too_long_hostname() -> None:
    k = RecordingKernel()
    with pytest.raises(KernelError) as info:
        k.sethostname("x" * 65)
    assert info.value.errno == errno.EINVAL
    k.sethostname("x" * 64)
    assert k.calls == [Call("sethostname", ("x" * 64,))]


def test_use_swaps_the_kernel_for_a_block() -> None:
    real = kernel.current()
    fake = RecordingKernel()
    with kernel.use(fake) as k:
        assert k is fake and kernel.current() is fake
    assert kernel.current() is real
    with pytest.raises(RuntimeError), kernel.use(fake):
        raise RuntimeError("boom")
    assert kernel.current() is real
