"""The container's cgroup at the path its ``config.json`` names (linux.cgroupsPath).

pycont's own containers live in ``pycont/<name>``; an OCI caller chooses the path (podman with
cgroupfs: ``/libpod_parent/libpod-<id>``; with systemd: ``machine.slice:libpod:<id>``). These
drivers are pycont's v1 and v2 ones, placed at that path: the folders ``create`` makes on the way
are recorded, and ``delete`` removes those and nothing else (runtime.md: delete removes what
create made).
"""

from __future__ import annotations

import errno
import os
import re
from typing import Any

from pycont.cgroups import V1Cgroup, V2Cgroup, current_layout, detect
from pycont.cgroups.base import Cgroup, read_file
from pycont.errors import KernelError, Unsupported, UsageError
from pycont.kernel import Kernel
from pycont.kernel.mounts import Mount, cgroup_layout, parse_mountinfo

__all__ = ["OciCgroup", "for_spec", "from_json", "relative_path"]

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def relative_path(cgroups_path: str, cid: str, systemd: bool) -> str:
    """The cgroup's path below each hierarchy's root, e.g. ``libpod_parent/libpod-ID``.

    Empty: ``pycont-oci/<id>``. systemd's ``slice:prefix:name`` (--systemd-cgroup) becomes
    ``slice/prefix-name.scope`` as systemd would lay it out (no unit is registered with it)."""
    if not cgroups_path:
        return f"pycont-oci/{cid}"
    if systemd and ":" in cgroups_path:
        parts = cgroups_path.split(":")
        if len(parts) != 3:
            raise UsageError(f"invalid cgroupsPath {cgroups_path!r}: expected slice:prefix:name")
        sl, prefix, name = parts
        rel = f"{sl or 'system.slice'}/{prefix}-{name}.scope"
    else:
        # runc reads a relative path below its own cgroup; here both are below the root.
        rel = cgroups_path
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise UsageError(f"invalid cgroupsPath {cgroups_path!r}")
    return "/".join(parts)


def _name(rel: str) -> str:
    """The driver's display name: the last folder, e.g. libpod-<id>."""
    return _SAFE.sub("_", rel.rsplit("/", 1)[-1])[:200] or "c"


class OciCgroup(Cgroup):
    """What the OCI runtime adds to a driver: the path, and the folders it created on the way."""

    rel: str
    created: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "path": self.rel, "created": list(self.created)}

    def _levels(self) -> list[str]:
        parts = self.rel.split("/")
        return ["/".join(parts[: i + 1]) for i in range(len(parts))]


class _V1At(V1Cgroup, OciCgroup):
    def __init__(self, rel: str, created: list[str], kernel: Kernel | None) -> None:
        mounts = _all_hierarchies()
        super().__init__(_name(rel), mounts=mounts, kernel=kernel)
        self.mounts = mounts
        self.rel, self.created = rel, created
        self.dirs = {c: os.path.join(m, rel) for c, m in self.mounts.items()}

    def create(self) -> None:
        if not self.dirs:
            raise Unsupported("create cgroup: no v1 controller is mounted", errno.ENODEV, None)
        for level in self._levels():
            made = False
            for mount in dict.fromkeys(self.mounts.values()):
                path = os.path.join(mount, level)
                if not os.path.isdir(path):
                    self._mkdir(path)
                    made = True
            if made and level not in self.created:
                self.created.append(level)
            if "cpuset" in self.mounts:
                self._cpuset_from_parent(level)

    def _cpuset_from_parent(self, level: str) -> None:
        # cgroup-v1/cpusets.rst: a new cpuset has empty cpus and mems, and no task can join it
        # until both are set: copy them from the parent, at every level made.
        mount = self.mounts["cpuset"]
        here = os.path.join(mount, level)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if not read_file(os.path.join(here, name)).strip():
                value = read_file(os.path.join(os.path.dirname(here), name)).strip()
                self._write(os.path.join(here, name), value)

    def destroy(self) -> None:
        for level in sorted(self.created, key=len, reverse=True):
            for mount in dict.fromkeys(self.mounts.values()):
                path = os.path.join(mount, level)
                if level == self.rel:
                    self._rmdir(path)
                else:
                    _rmdir_if_empty(self, path)


class _V2At(V2Cgroup, OciCgroup):
    def __init__(self, rel: str, created: list[str], kernel: Kernel | None) -> None:
        super().__init__(_name(rel), kernel=kernel)
        self.rel, self.created = rel, created
        self.dir = os.path.join(self.root, rel)
        self.parent = os.path.dirname(self.dir)

    def create(self) -> None:
        parent = self.root
        for level in self._levels():
            # cgroup-v2.rst: controllers reach a child only through its parent's subtree_control.
            self._enable(parent)
            path = os.path.join(self.root, level)
            if not os.path.isdir(path):
                self._mkdir(path)
                self.created.append(level)
            parent = path

    def destroy(self) -> None:
        for level in sorted(self.created, key=len, reverse=True):
            path = os.path.join(self.root, level)
            if level == self.rel:
                self._rmdir(path)
            else:
                _rmdir_if_empty(self, path)


def _hierarchies() -> dict[str, Mount]:
    """Every cgroup hierarchy of this machine by the name /proc/<pid>/cgroup gives it: each
    v1 controller, named v1 hierarchies (``name=systemd``), and ``""`` for cgroup2."""
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        mountinfo = f.read()
    layout = cgroup_layout(mountinfo)
    out: dict[str, Mount] = dict(layout.v1)
    for m in parse_mountinfo(mountinfo):
        named = [o for o in m.super_options if o.startswith("name=")]
        if m.fstype == "cgroup" and named:
            out.setdefault(named[0], m)
    if layout.v2 is not None:
        out[""] = layout.v2
    return out


def _all_hierarchies() -> dict[str, str]:
    """Where a v1 container gets a folder: every hierarchy, not only those pycont limits with
    (devices, name=systemd, a hybrid's cgroup2 too), as runc places it, so /proc/<pid>/cgroup
    shows the container's path on every line."""
    return {name or "unified": m.mount_point for name, m in _hierarchies().items()}


def _rmdir_if_empty(cg: Cgroup, path: str) -> None:
    """A folder made on the way: another container may use it by now, then it stays."""
    try:
        cg.kernel.rmdir(path)
    except KernelError as err:
        if err.errno not in (errno.EBUSY, errno.ENOTEMPTY):
            raise


def for_spec(
    cgroups_path: str, cid: str, systemd: bool = False, kernel: Kernel | None = None
) -> OciCgroup:
    """The (not yet created) cgroup of a container, v1 or v2 as this machine runs."""
    return _make(detect(current_layout()), relative_path(cgroups_path, cid, systemd), [], kernel)


def from_json(doc: dict[str, Any], kernel: Kernel | None = None) -> OciCgroup | None:
    """The cgroup ``create`` made, from the state file (None: it made none)."""
    if not doc:
        return None
    return _make(str(doc["version"]), str(doc["path"]), list(doc.get("created", [])), kernel)


def _make(version: str, rel: str, created: list[str], kernel: Kernel | None) -> OciCgroup:
    if version == "v1":
        return _V1At(rel, created, kernel)
    if version == "v2":
        return _V2At(rel, created, kernel)
    raise Unsupported("use cgroups: no cgroup filesystem is mounted", errno.ENODEV, None)


def join_like(pid: int, kernel: Kernel) -> None:
    """Move this process into every cgroup ``pid`` is in, in every hierarchy (exec: the new
    process is charged to the container's cgroups, v1 and v2 alike)."""
    with open(f"/proc/{pid}/cgroup", encoding="ascii") as f:
        lines = f.read().splitlines()
    hierarchies = _hierarchies()
    for line in lines:
        hid, _, rest = line.partition(":")
        names, _, path = rest.partition(":")
        keys = [""] if hid == "0" else names.split(",")
        mount = next((hierarchies[k] for k in keys if k in hierarchies), None)
        if mount is None or not path.startswith(mount.root):
            continue
        target = os.path.join(mount.mount_point, path[len(mount.root) :].lstrip("/"))
        try:
            kernel.write_file(os.path.join(target, "cgroup.procs"), str(os.getpid()))
        except KernelError as err:
            if err.errno != errno.ENOENT:
                raise
