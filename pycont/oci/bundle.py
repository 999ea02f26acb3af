"""An OCI bundle: a root filesystem and the ``config.json`` that says how to run it.

``config.json`` (runtime-spec config.md, config-linux.md) is read once into frozen dataclasses,
checked as it is read: a field of the wrong type is refused with one line naming it, before
anything is created. The rest of :mod:`pycont.oci` works on these types, never on raw JSON.
"""

from __future__ import annotations

import json
import os
import re
import resource
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pycont.cgroups import Limits
from pycont.cgroups.units import NANO
from pycont.errors import UsageError

__all__ = [
    "Hook",
    "Hooks",
    "IdMapping",
    "Linux",
    "Mount",
    "NamespaceSpec",
    "Process",
    "Spec",
    "hooks_of",
    "load",
    "parse",
    "parse_process",
]

# runc's rule for container ids: no '/', nothing that could escape the state directory.
_ID = re.compile(r"[A-Za-z0-9_+\-.]{1,1024}", re.ASCII)
NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")
HOOK_NAMES = (
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
)


def check_id(cid: str) -> str:
    if not _ID.fullmatch(cid) or cid in (".", ".."):
        raise UsageError(f"invalid container id {json.dumps(cid)}: letters, digits, '_+-.' only")
    return cid


class _Doc:
    """A JSON object read with types checked; ``where`` names it in errors (process.user)."""

    def __init__(self, doc: Any, where: str) -> None:
        if not isinstance(doc, dict):
            raise UsageError(f"invalid config.json: {where} must be an object")
        self.doc, self.where = doc, where

    def _get(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        value = self.doc.get(key)
        if value is None:
            return default
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise UsageError(f"invalid config.json: {self.where}.{key} must be {name}")
        return value

    def text(self, key: str, default: str = "") -> str:
        return str(self._get(key, str, default))

    def num(self, key: str, default: int | None = None) -> int | None:
        value = self._get(key, int, default)
        return None if value is None else int(value)

    def flag(self, key: str) -> bool:
        return bool(self._get(key, bool, False))

    def texts(self, key: str) -> tuple[str, ...]:
        items = self._get(key, list, [])
        if not all(isinstance(i, str) for i in items):
            raise UsageError(f"invalid config.json: {self.where}.{key} must be a list of strings")
        return tuple(items)

    def obj(self, key: str) -> _Doc:
        return _Doc(self._get(key, dict, {}), f"{self.where}.{key}")

    def objs(self, key: str) -> list[_Doc]:
        return [_Doc(d, f"{self.where}.{key}[{i}]") for i, d in enumerate(self._get(key, list, []))]

    def has(self, key: str) -> bool:
        return self.doc.get(key) is not None


@dataclass(frozen=True)
class Rlimit:
    resource: int  # resource.RLIMIT_*
    name: str
    soft: int
    hard: int


@dataclass(frozen=True)
class Process:
    """config.md "process": what runs, as whom, with which privileges."""

    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = ()
    umask: int | None = None
    terminal: bool = False
    # capability set name (bounding, effective, ...) -> names, as given
    capabilities: Mapping[str, frozenset[str]] = field(default_factory=dict)
    rlimits: tuple[Rlimit, ...] = ()
    no_new_privileges: bool = False
    oom_score_adj: int | None = None

    def keep_caps(self) -> frozenset[str]:
        """The set a container process keeps (bounding = permitted = effective here)."""
        caps = self.capabilities
        return caps.get("bounding", frozenset()) | caps.get("permitted", frozenset())

    def environ(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.env:
            key, sep, value = item.partition("=")
            if sep:
                out[key] = value
        return out


@dataclass(frozen=True)
class Mount:
    destination: str
    type: str = ""
    source: str = ""
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class NamespaceSpec:
    type: str  # one of NAMESPACE_TYPES
    path: str = ""  # join this one (setns(2)) instead of making a new one


@dataclass(frozen=True)
class IdMapping:
    container_id: int
    host_id: int
    size: int


@dataclass(frozen=True)
class Device:
    path: str
    type: str  # c, b, u, p
    major: int = 0
    minor: int = 0
    file_mode: int | None = None
    uid: int | None = None
    gid: int | None = None


@dataclass(frozen=True)
class DeviceRule:
    """linux.resources.devices: allow or deny a device class (cgroup-v1/devices.rst)."""

    allow: bool
    type: str  # a, c, b
    major: int | None = None  # None = any
    minor: int | None = None
    access: str = "rwm"


@dataclass(frozen=True)
class Hook:
    path: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    timeout: int | None = None


@dataclass(frozen=True)
class Hooks:
    prestart: tuple[Hook, ...] = ()
    createRuntime: tuple[Hook, ...] = ()  # noqa: N815 - the spec's names
    createContainer: tuple[Hook, ...] = ()  # noqa: N815
    startContainer: tuple[Hook, ...] = ()  # noqa: N815
    poststart: tuple[Hook, ...] = ()
    poststop: tuple[Hook, ...] = ()


@dataclass(frozen=True)
class Linux:
    namespaces: tuple[NamespaceSpec, ...] = ()
    uid_mappings: tuple[IdMapping, ...] = ()
    gid_mappings: tuple[IdMapping, ...] = ()
    limits: Limits = field(default_factory=Limits)
    device_rules: tuple[DeviceRule, ...] = ()
    cgroups_path: str = ""
    seccomp: Mapping[str, Any] | None = None
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    devices: tuple[Device, ...] = ()
    sysctl: Mapping[str, str] = field(default_factory=dict)
    rootfs_propagation: str = ""

    def namespace(self, kind: str) -> NamespaceSpec | None:
        return next((n for n in self.namespaces if n.type == kind), None)

    def new(self, kind: str) -> bool:
        """A new namespace of this type is made (listed, without a path)."""
        ns = self.namespace(kind)
        return ns is not None and not ns.path


@dataclass(frozen=True)
class Spec:
    """config.json, typed. ``root`` is absolute (resolved against the bundle)."""

    oci_version: str
    process: Process
    root: str
    bundle: str = "/"
    root_readonly: bool = False
    hostname: str = ""
    mounts: tuple[Mount, ...] = ()
    hooks: Hooks = field(default_factory=Hooks)
    annotations: Mapping[str, str] = field(default_factory=dict)
    linux: Linux = field(default_factory=Linux)


def load(bundle: str) -> Spec:
    """Read ``bundle/config.json``; UsageError (one line) if it is missing or not valid."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError as err:
        raise UsageError(f"bundle {bundle}: no config.json in it") from err
    except (OSError, ValueError) as err:
        raise UsageError(f"bundle {bundle}: cannot read config.json: {err}") from err
    return parse(doc, bundle)


def parse(doc: Any, bundle: str) -> Spec:
    top = _Doc(doc, "config")
    version = top.text("ociVersion")
    if not version.startswith("1."):
        raise UsageError(f"invalid config.json: ociVersion {json.dumps(version)} is not 1.x")
    if not top.has("process"):
        raise UsageError("invalid config.json: no process (create needs one)")
    root = top.obj("root")
    root_path = root.text("path")
    if not root_path:
        raise UsageError("invalid config.json: root.path is required")
    root_path = os.path.normpath(os.path.join(os.path.abspath(bundle), root_path))
    if not os.path.isdir(root_path):
        raise UsageError(f"invalid config.json: root.path {root_path} is not a directory")
    annotations = top.obj("annotations").doc
    return Spec(
        oci_version=version,
        process=_process(top.obj("process")),
        root=root_path,
        bundle=os.path.abspath(bundle),
        root_readonly=root.flag("readonly"),
        hostname=top.text("hostname"),
        mounts=tuple(_mount(m) for m in top.objs("mounts")),
        hooks=_hooks(top.obj("hooks")),
        annotations={str(k): str(v) for k, v in annotations.items()},
        linux=_linux(top.obj("linux")),
    )


def hooks_of(doc: Any) -> Hooks:
    """Only the hooks of a config (delete's poststop: the root may be gone by then)."""
    return _hooks(_Doc(doc, "config").obj("hooks"))


def parse_process(doc: Any) -> Process:
    """A ``process`` object alone (``exec --process FILE``)."""
    return _process(_Doc(doc, "process"))


def _process(p: _Doc) -> Process:
    args = p.texts("args")
    if not args:
        raise UsageError("invalid config.json: process.args must name a program")
    cwd = p.text("cwd", "/")
    if not cwd.startswith("/"):
        raise UsageError(f"invalid config.json: process.cwd {json.dumps(cwd)} is not absolute")
    user = p.obj("user")
    caps = p.obj("capabilities")
    sets = ("bounding", "effective", "inheritable", "permitted", "ambient")
    return Process(
        args=args,
        env=p.texts("env"),
        cwd=cwd,
        uid=user.num("uid", 0) or 0,
        gid=user.num("gid", 0) or 0,
        additional_gids=tuple(_ints(user, "additionalGids")),
        umask=user.num("umask"),
        terminal=p.flag("terminal"),
        capabilities={s: frozenset(caps.texts(s)) for s in sets if caps.has(s)},
        rlimits=tuple(_rlimit(r) for r in p.objs("rlimits")),
        no_new_privileges=p.flag("noNewPrivileges"),
        oom_score_adj=p.num("oomScoreAdj"),
    )


def _ints(d: _Doc, key: str) -> list[int]:
    items = d._get(key, list, [])
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        raise UsageError(f"invalid config.json: {d.where}.{key} must be a list of integers")
    return list(items)


def _rlimit(r: _Doc) -> Rlimit:
    name = r.text("type")
    res = getattr(resource, name, None) if name.startswith("RLIMIT_") else None
    if not isinstance(res, int):
        raise UsageError(f"invalid config.json: {r.where}.type {json.dumps(name)} is no rlimit")
    return Rlimit(res, name, r.num("soft", 0) or 0, r.num("hard", 0) or 0)


def _mount(m: _Doc) -> Mount:
    dest = m.text("destination")
    if not dest.startswith("/"):
        raise UsageError(f"invalid config.json: {m.where}.destination must be absolute")
    return Mount(dest, m.text("type"), m.text("source"), m.texts("options"))


def _hooks(h: _Doc) -> Hooks:
    def one(d: _Doc) -> Hook:
        path = d.text("path")
        if not path.startswith("/"):
            raise UsageError(f"invalid config.json: {d.where}.path must be absolute")
        return Hook(path, d.texts("args"), d.texts("env"), d.num("timeout"))

    return Hooks(**{name: tuple(one(d) for d in h.objs(name)) for name in HOOK_NAMES})


def _linux(x: _Doc) -> Linux:
    namespaces = []
    for n in x.objs("namespaces"):
        kind = n.text("type")
        if kind not in NAMESPACE_TYPES:
            raise UsageError(
                f"invalid config.json: {n.where}.type {json.dumps(kind)}: "
                f"accepted are {', '.join(NAMESPACE_TYPES)}"
            )
        namespaces.append(NamespaceSpec(kind, n.text("path")))
    if len({n.type for n in namespaces}) != len(namespaces):
        raise UsageError("invalid config.json: linux.namespaces lists a type twice")
    sysctl = x.obj("sysctl").doc
    seccomp = x.doc.get("seccomp")
    if seccomp is not None and not isinstance(seccomp, dict):
        raise UsageError("invalid config.json: linux.seccomp must be an object")
    return Linux(
        namespaces=tuple(namespaces),
        uid_mappings=tuple(_idmap(m) for m in x.objs("uidMappings")),
        gid_mappings=tuple(_idmap(m) for m in x.objs("gidMappings")),
        limits=_limits(x.obj("resources")),
        device_rules=tuple(_device_rule(d) for d in x.obj("resources").objs("devices")),
        cgroups_path=x.text("cgroupsPath"),
        seccomp=seccomp,
        masked_paths=x.texts("maskedPaths"),
        readonly_paths=x.texts("readonlyPaths"),
        devices=tuple(_device(d) for d in x.objs("devices")),
        sysctl={str(k): str(v) for k, v in sysctl.items()},
        rootfs_propagation=x.text("rootfsPropagation"),
    )


def _idmap(m: _Doc) -> IdMapping:
    return IdMapping(m.num("containerID", 0) or 0, m.num("hostID", 0) or 0, m.num("size", 0) or 0)


def _device(d: _Doc) -> Device:
    kind = d.text("type")
    if kind not in ("c", "b", "u", "p"):
        raise UsageError(f"invalid config.json: {d.where}.type must be c, b, u or p")
    return Device(
        d.text("path"),
        kind,
        d.num("major", 0) or 0,
        d.num("minor", 0) or 0,
        d.num("fileMode"),
        d.num("uid"),
        d.num("gid"),
    )


def _device_rule(d: _Doc) -> DeviceRule:
    kind = d.text("type", "a")
    if kind not in ("a", "c", "b"):
        raise UsageError(f"invalid config.json: {d.where}.type must be a, c or b")
    access = d.text("access", "rwm")
    if not access or set(access) - set("rwm"):
        raise UsageError(f"invalid config.json: {d.where}.access must be letters of rwm")
    return DeviceRule(d.flag("allow"), kind, d.num("major"), d.num("minor"), access)


def _limits(r: _Doc) -> Limits:
    """linux.resources as pycont's Limits (memory, swap, cpu quota/shares/cpus, pids, blkio)."""
    mem, cpu, pids = r.obj("memory"), r.obj("cpu"), r.obj("pids")
    quota, period = cpu.num("quota"), cpu.num("period") or 100_000
    nano_cpus = None
    if quota is not None:
        # Limits keeps CPU time as docker's --cpus (nano CPUs): quota/period of one CPU.
        nano_cpus = 0 if quota <= 0 else quota * NANO // period
    limit, pids_limit = mem.num("limit"), pids.num("limit")
    if pids_limit is not None and pids_limit <= 0:
        pids_limit = -1  # runc: 0 or -1 = no limit
    return Limits(
        memory=limit if limit is not None and limit > 0 else None,
        memory_swap=mem.num("swap"),
        memory_reservation=mem.num("reservation") or None,
        nano_cpus=nano_cpus,
        cpu_shares=cpu.num("shares") or None,
        cpuset_cpus=cpu.text("cpus") or None,
        pids_limit=pids_limit,
        blkio_weight=r.obj("blockIO").num("weight") or None,
    )
