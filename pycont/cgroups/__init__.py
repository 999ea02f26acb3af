"""cgroups: how the kernel limits and meters a group of processes (CPU, memory, pids, I/O).

Namespaces decide what a container *sees*; cgroups decide how much it may *use*. This package
gives one interface (:class:`Cgroup`) over the two kernel versions: v1 (one tree per controller,
still on many CI machines) and v2 (one unified tree: current distributions, Binder).

    >>> from pycont import cgroups
    >>> cg = cgroups.for_container("web")        # v1 or v2, whichever this machine runs
    >>> cg.create(); cg.apply(cgroups.Limits.from_options(memory="64m", cpus="0.5"))
    >>> cg.add_pid(pid); ...; cg.kill_all(); cg.destroy()
    >>> with cg.reader() as r: r.read().memory_peak     # a sampler's cheap, typed reading

Every mkdir, write and rmdir goes through the kernel seam (``for_container(name,
kernel=...)``), so a recording kernel sees them in tests and a narrating one prints them.

Where no cgroup can be made (not root and nothing delegated, Binder), :func:`available` says so
with the reason, and callers run without limits and tell the user: never a pretend limit.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import threading
import time

from pycont.cgroups.base import PARENT, Cgroup, Limits, Stats
from pycont.cgroups.reader import Reader, Reading
from pycont.cgroups.units import DeviceRate
from pycont.cgroups.v1 import V1Cgroup
from pycont.cgroups.v2 import V2Cgroup
from pycont.errors import KernelError, Unsupported
from pycont.kernel import Kernel
from pycont.kernel.mounts import Answer, CgroupLayout, cgroup_layout

__all__ = [
    "PARENT",
    "Answer",
    "Cgroup",
    "DeviceRate",
    "Limits",
    "Reader",
    "Reading",
    "Stats",
    "V1Cgroup",
    "V2Cgroup",
    "available",
    "current_layout",
    "detect",
    "for_container",
]

# Without these a container's basic limits (--memory, --cpus, --pids-limit) cannot be set.
_ESSENTIAL = ("memory", "cpu", "pids")


# (pid, a descriptor of /proc/self/mountinfo opened before the read, the layout read): read
# again only when the mount table changed. proc(5): a mount or unmount since the file was
# opened (or last polled) makes poll(2) report POLLPRI on it. Per pid: a forked child must not
# consume its parent's notification through the shared file description.
_layout_cache: tuple[int, int, CgroupLayout] | None = None
_layout_lock = threading.Lock()  # the notebook's sampler thread reads it too


def _changed(fd: int) -> bool:
    p = select.poll()
    p.register(fd, select.POLLPRI)
    return any(ev & (select.POLLPRI | select.POLLERR) for _, ev in p.poll(0))


def current_layout() -> CgroupLayout:
    """This machine's cgroup mounts, classified by the probe (v1, hybrid, v2 or none). Kept
    between calls until the mount table changes: it is read on every container start."""
    global _layout_cache
    with _layout_lock:
        cached = _layout_cache
        if cached is not None and cached[0] == os.getpid() and not _changed(cached[1]):
            return cached[2]
        fd = os.open("/proc/self/mountinfo", os.O_RDONLY | os.O_CLOEXEC)
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            layout = cgroup_layout(f.read())
        if cached is not None and cached[0] == os.getpid():
            os.close(cached[1])  # (a forked child leaves its parent's descriptor alone)
        _layout_cache = (os.getpid(), fd, layout)
        return layout


def detect(layout: CgroupLayout | None = None) -> str:
    """Which driver this machine needs: "v1", "v2" or "none".

    A hybrid layout counts as v1 when the controllers are on the v1 side: the cgroup2 mount at
    /sys/fs/cgroup/unified then carries only hugetlb (or nothing) and is of no use for limits."""
    lay = layout if layout is not None else current_layout()
    if lay.mode == "none":
        return "none"
    memory = lay.controllers.get("memory")
    if memory in ("v1", "v2"):
        return memory
    if lay.v1:
        return "v1"
    return "v2" if lay.v2 is not None else "none"


def for_container(
    name: str, layout: CgroupLayout | None = None, *, kernel: Kernel | None = None
) -> Cgroup:
    """The cgroup of container ``name`` (not created yet), with the right driver.

    Every mkdir, write and rmdir it makes goes through ``kernel`` (default: the one in use),
    so a narrating kernel shows them among the other syscalls of a ``run``."""
    lay = layout if layout is not None else current_layout()
    version = detect(lay)
    if version == "v1":
        mounts = {c: m.mount_point for c, m in lay.v1.items()}
        return V1Cgroup(name, mounts=mounts, kernel=kernel)
    if version == "v2" and lay.v2 is not None:
        return V2Cgroup(name, root=lay.v2.mount_point, kernel=kernel)
    raise Unsupported("use cgroups: no cgroup filesystem is mounted", errno.ENODEV, None)


def available(layout: CgroupLayout | None = None) -> Answer:
    """Can pycont limit containers here? Tries to create (and remove) a cgroup to find out.

    ``ok`` False means: run without limits, and say so with ``reason``."""
    lay = layout if layout is not None else current_layout()
    version = detect(lay)
    without = "containers run WITHOUT resource limits"
    if version == "none":
        return Answer(False, f"no cgroup filesystem is mounted: {without}", lay.reason)
    cg = for_container(f"pycont-check-{os.getpid()}-{time.monotonic_ns() % 100000}", lay)
    try:
        cg.create()
        missing = _missing_controllers(cg)
    except KernelError as err:
        who = "" if os.geteuid() == 0 else f" (uid {os.geteuid()}: not root, nothing delegated)"
        return Answer(False, f"cannot create a cgroup: {err}{who}: {without}", lay.reason)
    finally:
        with contextlib.suppress(KernelError):
            cg.destroy()
    where = f"{cg.parent}/<name>" if isinstance(cg, V2Cgroup) else f"<controller>/{PARENT}/<name>"
    reason = f"cgroup {version}: each container gets {where}"
    if lay.mode == "hybrid" and version == "v1" and lay.v2 is not None:
        reason += f" (hybrid: the cgroup2 mount at {lay.v2.mount_point} is not used)"
    if missing:
        reason += f"; missing {', '.join(missing)}: those limits are refused"
    return Answer(not any(c in _ESSENTIAL for c in missing), reason, lay.reason)


def _missing_controllers(cg: Cgroup) -> list[str]:
    if isinstance(cg, V1Cgroup):
        return [c for c in ("memory", "cpu", "cpuacct", "pids", "freezer") if c not in cg.dirs]
    text = ""
    with contextlib.suppress(OSError), open(os.path.join(cg.path, "cgroup.controllers")) as f:
        text = f.read()
    return [c for c in ("memory", "cpu", "pids", "io") if c not in text.split()]
