"""The container's root filesystem: a private mount table, a root that is not the host's.

Runs inside the container's new mount namespace, before exec. The image root is stacked under
a per-container read/write layer with OverlayFS, ``pivot_root(2)`` makes that the new ``/``
and the host's root is detached, so the container can neither see nor reach it. Every mount
made here lives in the container's mount namespace and vanishes with it.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass

from pycont.errors import KernelError, StartError
from pycont.kernel import (
    MNT_DETACH,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    Kernel,
)
from pycont.overlay import CopyStack, Stack
from pycont.volumes import Mount

# The device nodes every container gets (the OCI runtime spec's default set). They are bind
# mounted from the host: mknod(2) is refused inside a user namespace.
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
    "ptmx": "pts/ptmx",
    "core": "/proc/kcore",
}


@dataclass(frozen=True)
class RootSpec:
    """What the root is made of: read-only lower dirs (top first), the container's own dir."""

    lowers: tuple[str, ...]
    container_dir: str
    userns: bool = False
    private_net: bool = True
    private_pid: bool = True
    private_ipc: bool = True
    driver: str = "overlay"  # or "vfs": copy the layers (docker's vfs driver)
    # Volumes and bind mounts, their host folders resolved (Mount.resolved()).
    mounts: tuple[Mount, ...] = ()
    # --privileged: /sys and the cgroup view writable, as docker (masking is pid1's job).
    privileged: bool = False
    # A cgroup namespace of its own: mount its cgroup tree at /sys/fs/cgroup.
    cgroup_view: bool = False
    # Files of the container's folder bound over the image's (host path, path inside):
    # /etc/hosts, /etc/hostname, /etc/resolv.conf, as docker binds them.
    etc_files: tuple[tuple[str, str], ...] = ()

    @property
    def upper(self) -> str:
        return os.path.join(self.container_dir, "upper")

    @property
    def work(self) -> str:
        return os.path.join(self.container_dir, "work")

    @property
    def merged(self) -> str:
        return os.path.join(self.container_dir, "merged")

    def stack(self) -> Stack:
        """The overlay this root mounts; in a user namespace with ``userxattr`` (overlayfs
        there cannot use trusted.* xattrs and keeps its metadata in user.overlay.*)."""
        return Stack(self.lowers, self.upper, self.work, self.merged, userxattr=self.userns)


def prepare_dirs(spec: RootSpec) -> None:
    """Create the upper, work and merged dirs (on the host side, before the container starts)."""
    for d in (spec.upper, spec.work, spec.merged):
        os.makedirs(d, mode=0o755, exist_ok=True)


def _touch(path: str) -> None:
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644)
    os.close(fd)


def setup_root(k: Kernel, spec: RootSpec) -> None:
    """Build the container's root and pivot into it. Call in the new mount namespace."""
    # mount_namespaces(7): without private propagation our mounts would leak to the host's
    # namespace (systemd makes / shared).
    k.mount("", "/", "", MS_REC | MS_PRIVATE)
    merged = spec.merged
    if spec.driver == "vfs":
        _copy_root(k, spec, "asked for (PYCONT_STORAGE_DRIVER=vfs)")
    else:
        try:
            spec.stack().mount(k)
        except KernelError as err:
            # Where overlay cannot mount (no overlay in this kernel, or refused to this user),
            # copy the layers instead: slower and heavier, but real, and labelled as such.
            if err.errno not in (errno.EPERM, errno.ENODEV, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            _copy_root(k, spec, str(err))
    if not spec.privileged:
        # Device nodes: the container may use only those the runtime gives it. Docker enforces
        # that with the devices cgroup (v1 devices.allow, v2 a BPF program); a nodev root is
        # the same rule without either: mount(2) MS_NODEV, "do not allow access to devices
        # (special files) on this filesystem", so a node from a layer or made with mknod(2)
        # (CAP_MKNOD is in docker's default set) exists but open(2) fails with EACCES.
        # The runtime's own nodes are bind mounts of the host's, whose flags they keep.
        _remount_adding(k, merged, MS_NODEV)
    for name in ("proc", "dev", "sys"):
        _runtime_dir(merged, name)
    mountinfo = _host_mountinfo() if spec.cgroup_view else ""
    _mount_proc(k, merged, spec)
    _mount_dev(k, merged, spec)
    _mount_sys(k, merged, spec)
    if spec.cgroup_view:
        from pycont.cgroups.view import mount_view

        mount_view(
            k, os.path.join(merged, "sys/fs/cgroup"), mountinfo, readonly=not spec.privileged
        )
    for src, target in spec.etc_files:
        if not any(m.target == target for m in spec.mounts):  # a -v of the user's wins
            _mount_volume(k, merged, src, target, False)
    for m in spec.mounts:
        # volumes nodev too (but for --privileged): a node made in one is no way around it
        _mount_volume(k, merged, m.host_path(), m.target, m.readonly, nodev=not spec.privileged)
    # pivot_root(2): "new_root and put_old may be the same directory"; the old root then sits
    # on top of the new one and can be detached at once, without a directory for it.
    os.chdir(merged)
    k.pivot_root(".", ".")
    k.umount2(".", MNT_DETACH)
    os.chdir("/")


def _copy_root(k: Kernel, spec: RootSpec, why: str) -> None:
    """docker's vfs driver: the layers copied into ``merged``, made a mount point (pivot_root(2)
    needs one) by binding it onto itself. Records the driver and why in the container's dir."""
    stack = CopyStack(spec.lowers, spec.merged, spec.userns)
    stack.mount()
    k.mount(spec.merged, spec.merged, "", MS_BIND | MS_REC)
    with open(os.path.join(spec.container_dir, "driver"), "w") as f:
        f.write(f"vfs: {why}\n")


def _remount_adding(k: Kernel, path: str, flags: int) -> None:
    """Bind-remount the mount at ``path`` with ``flags`` added to its own. MS_REMOUNT|MS_BIND
    replaces every per-mount flag (mount(2)), and in a user namespace dropping one its owner
    locked (ro, nosuid, nodev, noexec) is EPERM: the current ones come from statvfs(3), whose
    ST_RDONLY, ST_NOSUID, ST_NODEV and ST_NOEXEC are the MS_* bits. Atime flags are kept by
    the kernel when none is given."""
    current = os.statvfs(path).f_flag & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    k.mount("", path, "", MS_REMOUNT | MS_BIND | current | flags)


def open_inside(root: str, target: str, want_dir: bool) -> int:
    """An O_PATH descriptor of ``target`` inside ``root``, creating what is missing. Walks one
    component at a time with O_NOFOLLOW (openat(2)), so a symlink in the image can never send
    a volume mount outside the container's root: such a target is refused."""
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    parts = [p for p in target.split("/") if p not in ("", ".")]
    try:
        for i, name in enumerate(parts):
            if name == "..":
                raise KernelError("open volume target", errno.EINVAL, target, "'..' not allowed")
            last = i == len(parts) - 1
            try:
                nfd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except FileNotFoundError:
                if last and not want_dir:
                    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
                    os.close(os.open(name, flags, 0o644, dir_fd=fd))
                else:
                    os.mkdir(name, 0o755, dir_fd=fd)
                nfd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nfd
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                raise KernelError(
                    "open volume target", errno.ELOOP, target, f"{name} is a symlink in the image"
                )
        return fd
    except BaseException:
        os.close(fd)
        raise


def _mount_volume(
    k: Kernel, merged: str, src: str, target: str, readonly: bool, nodev: bool = False
) -> None:
    fd = open_inside(merged, target, want_dir=os.path.isdir(src))
    try:
        # proc(5): /proc/self/fd/N is the directory itself, whatever its path.
        k.mount(src, f"/proc/self/fd/{fd}", "", MS_BIND | MS_REC)
    finally:
        os.close(fd)
    if readonly or nodev:
        # No symlink on the way (checked above): the path names the new mount.
        path = os.path.join(merged, target.lstrip("/"))
        _remount_adding(k, path, (MS_RDONLY if readonly else 0) | (MS_NODEV if nodev else 0))


def _runtime_dir(merged: str, name: str) -> None:
    """``/proc``, ``/dev`` or ``/sys`` of the image as a real folder, made if missing. A symlink
    there would carry the runtime's mount to wherever it points (a mount follows symlinks),
    and the container would run without the real one: refused, as runc refuses it."""
    path = os.path.join(merged, name)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        os.mkdir(path, 0o555 if name != "dev" else 0o755)
        return
    if stat.S_ISLNK(st.st_mode):
        raise StartError(
            f"the image's /{name} is a symlink (to {os.readlink(path)}): refusing to mount "
            f"the container's /{name} through it; /{name} must be a folder or absent"
        )
    if not stat.S_ISDIR(st.st_mode):
        raise StartError(f"the image's /{name} is not a folder: it must be a folder or absent")


def _host_mountinfo() -> str:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return f.read()


def _mount_proc(k: Kernel, merged: str, spec: RootSpec) -> None:
    target = os.path.join(merged, "proc")
    try:
        # proc(5): a fresh proc shows the PID namespace of the mounting process.
        k.mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except KernelError as err:
        # Mounting proc needs CAP_SYS_ADMIN in the user namespace that owns the PID namespace:
        # with the host's PID namespace and a new user namespace we have not. Bind the host's.
        if err.errno != errno.EPERM or spec.private_pid:
            raise
        k.mount("/proc", target, "", MS_BIND | MS_REC)


def _mount_dev(k: Kernel, merged: str, spec: RootSpec) -> None:
    dev = os.path.join(merged, "dev")
    # nodev: a node made in /dev by mknod(2) cannot be opened; the bind mounts below keep the
    # host's /dev flags (a bind mount is a new mount of its source), so /dev/null works.
    nodev = 0 if spec.privileged else MS_NODEV
    k.mount("tmpfs", dev, "tmpfs", MS_NOSUID | nodev, "mode=755,size=65536k")
    for name in DEVICES:
        target = os.path.join(dev, name)
        _touch(target)
        k.mount(f"/dev/{name}", target, "", MS_BIND)
    for name, dest in DEV_LINKS.items():
        os.symlink(dest, os.path.join(dev, name))
    pts = os.path.join(dev, "pts")
    os.mkdir(pts, 0o755)
    # devpts(5) "newinstance": a private pty set, not the host's.
    k.mount("devpts", pts, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620")
    shm = os.path.join(dev, "shm")
    os.mkdir(shm, 0o1777)
    if spec.private_ipc:
        k.mount("shm", shm, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k")
    else:
        # docker's --ipc host shares POSIX shared memory too: it lives in the host's /dev/shm.
        k.mount("/dev/shm", shm, "", MS_BIND)
    mqueue = os.path.join(dev, "mqueue")
    os.mkdir(mqueue, 0o755)
    try:
        # mq_overview(7): a fresh mqueue shows the IPC namespace's own queues.
        k.mount("mqueue", mqueue, "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except KernelError as err:
        if err.errno not in (errno.EPERM, errno.ENODEV):
            raise


def _mount_sys(k: Kernel, merged: str, spec: RootSpec) -> None:
    target = os.path.join(merged, "sys")
    # docker: /sys read-only, but for --privileged.
    ro = (0 if spec.privileged else MS_RDONLY) | MS_NOSUID | MS_NODEV | MS_NOEXEC
    try:
        # sysfs shows the network devices of the mounting process's network namespace; the
        # kernel allows it only to a process that owns that namespace (sysfs(5)).
        k.mount("sysfs", target, "sysfs", ro)
    except KernelError as err:
        if err.errno != errno.EPERM:
            raise
        # Sharing the host's network from a new user namespace: bind the host's /sys instead.
        k.mount("/sys", target, "", MS_BIND | MS_REC)
        if not spec.privileged:
            k.mount("", target, "", MS_REMOUNT | MS_BIND | MS_RDONLY | MS_REC)
