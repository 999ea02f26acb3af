"""The container's own cgroup, shown inside it at /sys/fs/cgroup, read-only.

A process in a cgroup namespace sees the cgroup it was in when the namespace was made as the
root of the tree (cgroup_namespaces(7)): mounting the cgroup filesystem from inside shows the
container's own cgroup and nothing above it, so ``cat /sys/fs/cgroup/memory.max`` reads the
container's limit. Mounted read-only (and without the capability to remount), no write can lift
that limit: the kernel refuses it with EROFS.

v2: one ``cgroup2`` mount. v1: a tmpfs at /sys/fs/cgroup with one ``cgroup`` mount per hierarchy
the container was put in (``memory``, ``cpu,cpuacct``, ``pids``...), as docker lays them out.
"""

from __future__ import annotations

import os

from pycont.cgroups.v1 import CONTROLLERS
from pycont.kernel import MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REMOUNT, Kernel
from pycont.kernel.mounts import parse_mountinfo

_FLAGS = MS_NOSUID | MS_NODEV | MS_NOEXEC


def mount_view(k: Kernel, target: str, mountinfo: str, *, readonly: bool = True) -> list[str]:
    """Mount the cgroup tree the caller's cgroup namespace shows at ``target`` (a folder that
    exists). ``mountinfo``: the host's mount table, read before the root changed. Returns the
    hierarchies mounted, as their folder names (``["memory", "cpu,cpuacct", ...]``)."""
    ro = MS_RDONLY if readonly else 0
    mounts = parse_mountinfo(mountinfo)
    v1 = [m for m in mounts if m.fstype == "cgroup" and _used(m.super_options)]
    if not v1:
        v2 = next((m for m in mounts if m.fstype == "cgroup2"), None)
        if v2 is None:
            return []
        k.mount("cgroup2", target, "cgroup2", _FLAGS | ro)
        return ["cgroup2"]
    k.mount("tmpfs", target, "tmpfs", _FLAGS, "mode=755,size=64k")
    done: list[str] = []
    for m in v1:
        controllers = [o for o in m.super_options if o in CONTROLLERS or o.startswith("name=")]
        name = os.path.basename(m.mount_point)
        if name in done:
            continue
        path = os.path.join(target, name)
        os.mkdir(path, 0o755)
        # The same set of controllers names the same hierarchy: this mounts the host's
        # hierarchy again, rooted at the container's cgroup by its cgroup namespace.
        k.mount("cgroup", path, "cgroup", _FLAGS | ro, ",".join(controllers))
        done.append(name)
        for c in controllers:  # cpu -> cpu,cpuacct, as on the host
            if c != name and "," in name and not os.path.lexists(os.path.join(target, c)):
                os.symlink(name, os.path.join(target, c))
    if readonly:
        k.mount("", target, "", MS_REMOUNT | _FLAGS | MS_RDONLY, "mode=755,size=64k")
    return done


def _used(options: tuple[str, ...]) -> bool:
    """A v1 hierarchy that carries a controller pycont puts its containers in."""
    return any(o in CONTROLLERS for o in options)
