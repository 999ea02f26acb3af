"""The mount table and the cgroup mounts, as the kernel lists them (proc(5): mountinfo).

Parsing only, no syscalls: the probe and the cgroup drivers share it, and it imports little, so
starting a container does not pay for the whole probe.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    """One question about the machine: yes or no, and why."""

    ok: bool
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Mount:
    """One line of /proc/<pid>/mountinfo (proc(5)); only the fields the probe needs."""

    root: str
    mount_point: str
    fstype: str
    super_options: tuple[str, ...]


def _unescape(field_: str) -> str:
    # proc(5): space, tab, newline and backslash are written as octal escapes (\040 ...).
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field_ = field_.replace(code, char)
    return field_


def parse_mountinfo(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lf, rf = left.split(), right.split()
        if len(lf) < 5 or len(rf) < 3:
            continue
        mounts.append(Mount(_unescape(lf[3]), _unescape(lf[4]), rf[0], tuple(rf[2].split(","))))
    return mounts


# cgroups(7): the v1 controllers. A v1 hierarchy may also be a named one (name=systemd) that
# carries no controller at all: those do not count.
V1_CONTROLLERS = frozenset(
    ("cpuset", "cpu", "cpuacct", "blkio", "memory", "devices", "freezer", "net_cls")
    + ("perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc", "debug")
)


@dataclass(frozen=True)
class CgroupLayout:
    """Where cgroup hierarchies are mounted and which controllers each one carries."""

    mode: str
    controllers: dict[str, str]  # controller -> "v1" / "v2"
    v1: dict[str, Mount]  # controller -> its v1 mount
    v2: Mount | None
    reason: str


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def cgroup_layout(mountinfo_text: str, read: Callable[[str], str] = _read_text) -> CgroupLayout:
    """Classify the cgroup mounts: v1 only, v2 only, or a hybrid of both (cgroups(7))."""
    v1: dict[str, Mount] = {}
    v2: Mount | None = None
    for m in parse_mountinfo(mountinfo_text):
        if m.fstype == "cgroup":
            for c in m.super_options:
                if c in V1_CONTROLLERS:
                    v1.setdefault(c, m)
        elif m.fstype == "cgroup2" and v2 is None:
            v2 = m
    v2_controllers: list[str] = []
    if v2 is not None:
        with contextlib.suppress(OSError):
            v2_controllers = read(f"{v2.mount_point}/cgroup.controllers").split()
    controllers = {c: "v2" for c in v2_controllers}
    controllers.update({c: "v1" for c in v1})  # a controller is bound to one hierarchy only

    parts = []
    if v1:
        names = ",".join(sorted(v1))
        parents = {os.path.dirname(m.mount_point) for m in v1.values()}
        if len(parents) == 1:
            parts.append(f"v1 controllers {names} under {parents.pop()}/<name>")
        else:
            where = ", ".join(f"{c} at {m.mount_point}" for c, m in sorted(v1.items()))
            parts.append(f"v1 controllers {where}")
    if v2 is not None:
        has = ",".join(v2_controllers) or "no controllers"
        parts.append(f"cgroup2 at {v2.mount_point} with {has}")
    mode = {(True, True): "hybrid", (True, False): "v1", (False, True): "v2"}.get(
        (bool(v1), v2 is not None), "none"
    )
    reason = f"{mode}: " + "; ".join(parts) if parts else "none: no cgroup filesystem is mounted"
    return CgroupLayout(mode, controllers, v1, v2, reason)


def own_cgroup_dir(layout: CgroupLayout, proc_cgroup_text: str, controller: str) -> str | None:
    """The directory of this process's cgroup in the hierarchy that carries ``controller``.

    /proc/self/cgroup (cgroups(7)) has ``id:controllers:path``; v2 is the ``0::path`` line. The
    path is relative to the hierarchy's root, the mount may show a subtree (mountinfo's root).
    """
    mount = layout.v1.get(controller) if layout.controllers.get(controller) == "v1" else layout.v2
    if mount is None:
        return None
    for line in proc_cgroup_text.splitlines():
        hid, _, rest = line.partition(":")
        names, _, path = rest.partition(":")
        if (mount.fstype == "cgroup2" and hid == "0") or controller in names.split(","):
            rel = path[len(mount.root) :] if path.startswith(mount.root) else ""
            return os.path.normpath(f"{mount.mount_point}/{rel.lstrip('/')}")
    return mount.mount_point
