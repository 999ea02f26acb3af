"""config.json's mounts, made inside the container's root before pivot_root(2).

Each mount's options (config.md "Mounts", mount(8)) split into mount(2) flags, propagation
flags and the filesystem's own data string. Every target is resolved inside the root one
component at a time without following symlinks (rootfs.open_inside), so an image cannot point a
mount at the host. Then the devices the runtime spec requires, and its /dev symlinks.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass

from pycont.cgroups import V1Cgroup, V2Cgroup
from pycont.errors import KernelError, UsageError
from pycont.kernel import (
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_SLAVE,
    Kernel,
)
from pycont.oci.bundle import Device, Mount
from pycont.oci.cgroup import OciCgroup
from pycont.rootfs import open_inside

__all__ = [
    "DEFAULT_DEVICES",
    "MountOptions",
    "check_target",
    "make_devices",
    "mount_all",
    "parse_options",
]

MS_SYNCHRONOUS = 16
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_UNBINDABLE = 1 << 17
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

# option -> (flags to set, flags to clear); mount(8) "FILESYSTEM-INDEPENDENT MOUNT OPTIONS".
_FLAGS: dict[str, tuple[int, int]] = {
    "ro": (MS_RDONLY, 0),
    "rw": (0, MS_RDONLY),
    "nosuid": (MS_NOSUID, 0),
    "suid": (0, MS_NOSUID),
    "nodev": (MS_NODEV, 0),
    "dev": (0, MS_NODEV),
    "noexec": (MS_NOEXEC, 0),
    "exec": (0, MS_NOEXEC),
    "sync": (MS_SYNCHRONOUS, 0),
    "async": (0, MS_SYNCHRONOUS),
    "dirsync": (MS_DIRSYNC, 0),
    "mand": (MS_MANDLOCK, 0),
    "nomand": (0, MS_MANDLOCK),
    "noatime": (MS_NOATIME, 0),
    "atime": (0, MS_NOATIME),
    "nodiratime": (MS_NODIRATIME, 0),
    "diratime": (0, MS_NODIRATIME),
    "relatime": (MS_RELATIME, 0),
    "norelatime": (0, MS_RELATIME),
    "strictatime": (MS_STRICTATIME, 0),
    "nostrictatime": (0, MS_STRICTATIME),
    "remount": (MS_REMOUNT, 0),
    "bind": (MS_BIND, 0),
    "rbind": (MS_BIND | MS_REC, 0),
}
_PROPAGATION = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}
# Options some runtimes know and this one accepts without acting on them.
_IGNORED = frozenset({"tmpcopyup", "notmpcopyup", "copy-symlink", "Z", "z", "U", "idmap"})
# statvfs(3) f_flag bits -> mount flags: kept on a bind remount (the kernel refuses to clear a
# locked flag, and a bind mount inherits nosuid/nodev/noexec of its source).
_ST_FLAGS = {
    os.ST_RDONLY: MS_RDONLY,
    os.ST_NOSUID: MS_NOSUID,
    os.ST_NODEV: MS_NODEV,
    os.ST_NOEXEC: MS_NOEXEC,
}

# runtime-spec config-linux.md "Default Devices": (name, major, minor).
DEFAULT_DEVICES = (
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
)
DEV_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
}


@dataclass(frozen=True)
class MountOptions:
    flags: int
    propagation: int
    data: str

    @property
    def bind(self) -> bool:
        return bool(self.flags & MS_BIND)


def parse_options(options: tuple[str, ...]) -> MountOptions:
    flags = propagation = 0
    data = []
    for opt in options:
        if opt in _FLAGS:
            on, off = _FLAGS[opt]
            flags = (flags | on) & ~off
        elif opt in _PROPAGATION:
            propagation |= _PROPAGATION[opt]
        elif opt in _IGNORED:
            continue
        else:
            data.append(opt)
    return MountOptions(flags, propagation, ",".join(data))


def mount_all(
    k: Kernel,
    root: str,
    mounts: tuple[Mount, ...],
    userns: bool,
    cg: OciCgroup | None,
    bundle: str = "/",
) -> None:
    """Make every mount of config.json under ``root``, in their order. ``cg``: the container's
    cgroup, shown at a mount of type cgroup; ``bundle``: what relative bind sources are of."""
    for m in mounts:
        check_target(m)
        if m.source and not m.source.startswith("/") and _is_bind(m):
            m = Mount(m.destination, m.type, os.path.join(bundle, m.source), m.options)
        try:
            _mount_one(k, root, m, userns, cg)
        except KernelError as err:
            what = f"mount {m.type or 'bind'} {m.source or 'none'} on {m.destination}"
            if not err.op.startswith("mount"):
                what += f": {err.op}" + (f" {err.filename}" if err.filename else "")
            raise KernelError(what, err.errno or errno.EIO, None, err.detail) from err


def _is_bind(m: Mount) -> bool:
    return m.type == "bind" or parse_options(m.options).bind


# What runc lets a bind mount cover under /proc (lxcfs-style views): anything else there
# would let a volume replace the kernel's view of the container (issue 12).
_PROC_FILES = frozenset(
    f"/proc/{n}"
    for n in ("cpuinfo", "diskstats", "meminfo", "stat", "swaps", "uptime", "loadavg")
    + ("slabinfo", "net/dev", "sys/kernel/ns_last_pid")
)


def check_target(m: Mount) -> None:
    dest = os.path.normpath(m.destination)
    if dest == "/proc" and m.type == "proc":
        return
    if (dest == "/proc" or dest.startswith("/proc/")) and dest not in _PROC_FILES:
        raise UsageError(
            f"invalid config.json: mount of type {m.type or 'bind'} on {m.destination}: "
            "only proc may be mounted on /proc, and binds on a few files below it"
        )


def _mount_one(k: Kernel, root: str, m: Mount, userns: bool, cg: OciCgroup | None) -> None:
    opts = parse_options(m.options)
    kind = "bind" if opts.bind else m.type
    if kind == "bind" or m.type == "bind":
        _bind(k, root, m, opts)
    elif kind == "cgroup":
        _cgroup(k, root, m, opts, cg)
    else:
        _fresh(k, root, m, opts, userns)
    if opts.propagation:
        fd = open_inside(root, m.destination, want_dir=True)
        try:
            k.mount("", f"/proc/self/fd/{fd}", "", opts.propagation)
        finally:
            os.close(fd)


def _fresh(k: Kernel, root: str, m: Mount, opts: MountOptions, userns: bool) -> None:
    """A new filesystem instance (proc, tmpfs, sysfs, devpts, mqueue, ...)."""
    fd = open_inside(root, m.destination, want_dir=True)
    try:
        k.mount(m.source or m.type, f"/proc/self/fd/{fd}", m.type, opts.flags, opts.data)
    except KernelError as err:
        # sysfs(5) may only be mounted by the owner of the network namespace: with the host's
        # network and a new user namespace, bind the host's /sys (read-only) instead.
        if m.type != "sysfs" or err.errno != errno.EPERM or not userns:
            raise
        k.mount("/sys", f"/proc/self/fd/{fd}", "", MS_BIND | MS_REC)
        _remount(k, root, m.destination, "/sys", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    finally:
        os.close(fd)


def _bind(k: Kernel, root: str, m: Mount, opts: MountOptions) -> None:
    if not m.source:
        raise UsageError(f"invalid config.json: bind mount on {m.destination} has no source")
    try:
        is_dir = stat.S_ISDIR(os.stat(m.source).st_mode)
    except OSError as err:
        raise KernelError("stat bind source", err.errno or errno.EIO, m.source) from err
    fd = open_inside(root, m.destination, want_dir=is_dir)
    try:
        k.mount(m.source, f"/proc/self/fd/{fd}", "", MS_BIND | (opts.flags & MS_REC))
    finally:
        os.close(fd)
    extra = opts.flags & ~(MS_BIND | MS_REC | MS_REMOUNT)
    if extra:
        _remount(k, root, m.destination, m.source, extra)


def _remount(k: Kernel, root: str, dest: str, source: str, flags: int) -> None:
    """mount(2) MS_REMOUNT|MS_BIND: set flags on the bind mount at ``dest`` (a bind mount
    takes its source's flags first; remount is the only way to change them)."""
    try:
        st_flags = os.statvfs(source).f_flag
    except OSError:
        st_flags = 0
    for st_bit, ms_bit in _ST_FLAGS.items():
        if st_flags & st_bit and ms_bit != MS_RDONLY:
            flags |= ms_bit
    # Looked up again from the root, the path now crosses into the new mount.
    fd = open_inside(root, dest, want_dir=True)
    try:
        k.mount("", f"/proc/self/fd/{fd}", "", MS_REMOUNT | MS_BIND | flags)
    finally:
        os.close(fd)


def _cgroup(k: Kernel, root: str, m: Mount, opts: MountOptions, cg: OciCgroup | None) -> None:
    """The container's own cgroup folders at ``dest``, bound read-only: what it may read of its
    limits, never write (v2: its one folder; v1: a tmpfs with one folder per hierarchy, named
    as on the host, and cpu/cpuacct links where controllers share one)."""
    ro = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
    if isinstance(cg, V2Cgroup):
        _bind(k, root, Mount(m.destination, "bind", cg.dir, ()), MountOptions(MS_BIND, 0, ""))
        _remount(k, root, m.destination, cg.dir, ro)
        return
    fd = open_inside(root, m.destination, want_dir=True)
    try:
        k.mount("cgroup", f"/proc/self/fd/{fd}", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    finally:
        os.close(fd)
    if isinstance(cg, V1Cgroup):
        folders = {cg.mounts[c]: d for c, d in cg.dirs.items()}
        for point, folder in sorted(folders.items()):
            base = os.path.basename(point)
            sub = f"{m.destination.rstrip('/')}/{base}"
            _bind(k, root, Mount(sub, "bind", folder, ()), MountOptions(MS_BIND, 0, ""))
            _remount(k, root, sub, folder, ro)
            if "," in base:
                link_dir = open_inside(root, m.destination, want_dir=True)
                try:
                    for alias in base.split(","):
                        _symlink(base, alias, link_dir)
                finally:
                    os.close(link_dir)
    fd = open_inside(root, m.destination, want_dir=True)
    try:
        k.mount("", f"/proc/self/fd/{fd}", "", MS_REMOUNT | ro)
    finally:
        os.close(fd)


def make_devices(k: Kernel, root: str, devices: tuple[Device, ...], userns: bool) -> None:
    """config-linux.md: the listed devices plus the default ones, and the /dev symlinks.

    mknod(2) inside a user namespace is refused: there each device is bound from the host's."""
    want = [Device(f"/dev/{n}", "c", ma, mi, 0o666, 0, 0) for n, ma, mi in DEFAULT_DEVICES]
    listed = {d.path for d in devices}
    for dev in [d for d in want if d.path not in listed] + list(devices):
        _device(k, root, dev, userns)
    dev_fd = open_inside(root, "/dev", want_dir=True)
    try:
        for name, dest in DEV_LINKS.items():
            _symlink(dest, name, dev_fd)
        # devpts(5): with newinstance, /dev/ptmx must lead to this instance's pts/ptmx.
        _symlink("pts/ptmx", "ptmx", dev_fd)
    finally:
        os.close(dev_fd)


def _symlink(dest: str, name: str, dir_fd: int) -> None:
    with contextlib.suppress(FileExistsError):
        os.symlink(dest, name, dir_fd=dir_fd)


def _device(k: Kernel, root: str, dev: Device, userns: bool) -> None:
    if not dev.path.startswith("/dev/"):
        raise UsageError(f"invalid config.json: device {dev.path} is not under /dev")
    parent, name = os.path.split(dev.path)
    dir_fd = open_inside(root, parent, want_dir=True)
    try:
        if userns:
            fd = open_inside(root, dev.path, want_dir=False)
            try:
                k.mount(dev.path, f"/proc/self/fd/{fd}", "", MS_BIND)
            finally:
                os.close(fd)
            return
        kinds = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
        mode = kinds[dev.type] | (dev.file_mode if dev.file_mode is not None else 0o666)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=dir_fd)
        try:
            os.mknod(name, mode, os.makedev(dev.major, dev.minor), dir_fd=dir_fd)
        except OSError as err:
            raise KernelError("mknod", err.errno or errno.EIO, dev.path) from err
        # mknod(2) applies the umask: set the mode asked for, then the owner.
        os.chmod(name, mode & 0o7777, dir_fd=dir_fd)
        os.chown(name, dev.uid or 0, dev.gid or 0, dir_fd=dir_fd, follow_symlinks=False)
    finally:
        os.close(dir_fd)
