"""``create``: a container made and waiting for ``start`` (runtime.md, lifecycle steps 1-5).

The steps, each undone in reverse if a later one fails (runtime.md: "an error ... MUST leave
the state of the environment as if the operation were never attempted"): the state directory,
the cgroup with its limits, the fifo, then the init cloned into its namespaces, moved into the
cgroup, given its id maps, and let go. The init reports back once its root is ready (or what
failed); then the state is written, the pid file too, and ``create`` exits.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import os
import shutil
import signal
from typing import Any

from pycont import kernel as _kernel
from pycont.errors import KernelError, StartError, UsageError
from pycont.fsutil import write_atomic
from pycont.kernel import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    Kernel,
)
from pycont.oci import bundle as bundle_mod
from pycont.oci import cgroup as cgroup_mod
from pycont.oci import console, devices, mounts
from pycont.oci.bundle import IdMapping, Spec
from pycont.oci.hooks import run_hooks
from pycont.oci.init import HOOKS_REQUEST, InitPipes, container_init
from pycont.oci.process import prepare_seccomp
from pycont.oci.state import OCI_VERSION, State, StateDir
from pycont.procfs import running_start_time
from pycont.runtime import protocol

__all__ = ["NAMESPACE_FLAGS", "create"]

CLONE_NEWTIME = 0x00000080  # <linux/sched.h>, Linux >= 5.6
# namespace type -> the flag clone(2)/setns(2) takes. cgroup is unshared by the init itself,
# once it is in its cgroup (cgroup_namespaces(7): the namespace root is the cgroup at unshare).
NAMESPACE_FLAGS = {
    "pid": CLONE_NEWPID,
    "network": CLONE_NEWNET,
    "mount": CLONE_NEWNS,
    "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS,
    "user": CLONE_NEWUSER,
    "cgroup": CLONE_NEWCGROUP,
    "time": CLONE_NEWTIME,
}
# Joined by the init itself (they change what paths mean, or who we are); the others are
# joined here, before clone, so the init is born in them (setns(2): a PID namespace joined
# applies to children only).
_JOINED_BY_INIT = ("user", "mount")


def create(
    root: str,
    cid: str,
    bundle: str,
    pid_file: str | None = None,
    console_socket: str | None = None,
    systemd_cgroup: bool = False,
    k: Kernel | None = None,
) -> int:
    """Create container ``cid`` from ``bundle``; returns the init's pid."""
    k = k if k is not None else _kernel.current()
    bundle = os.path.abspath(bundle)
    spec = bundle_mod.load(bundle)
    if spec.linux.namespace("mount") is None:
        raise UsageError("invalid config.json: a mount namespace is required (pivot_root)")
    for m in spec.mounts:
        mounts.check_target(m)  # refused before anything is made
    if spec.process.terminal and not console_socket:
        raise UsageError("process.terminal is true: --console-socket is required")
    sd = StateDir(root, cid)
    sd.make()
    undo: list[Any] = [sd.remove]
    try:
        shutil.copyfile(os.path.join(bundle, "config.json"), sd.config_path)
        cg = cgroup_mod.for_spec(spec.linux.cgroups_path, cid, systemd_cgroup, k)
        undo.append(cg.destroy)
        cg.create()
        cg.apply(spec.linux.limits)
        devices.apply_rules(cg, spec.linux.device_rules)
        os.mkfifo(sd.fifo, 0o600)
        # The init reopens it as the container's root (a mapped uid in a user namespace).
        os.chown(sd.fifo, _host_id(spec.linux.uid_mappings), _host_id(spec.linux.gid_mappings))
        prepare_seccomp(spec.process, spec.linux.seccomp)
        pid = _start_init(k, spec, sd, cg, console_socket, bundle, undo)
        state = State(
            id=cid,
            pid=pid,
            bundle=bundle,
            started_at=running_start_time(pid),
            created=datetime.datetime.now(datetime.UTC).isoformat(),
            annotations=dict(spec.annotations),
            cgroup=cg.to_json(),
        )
        sd.save(state)
        if pid_file:
            write_atomic(os.path.abspath(pid_file), str(pid))
    except BaseException:
        for step in reversed(undo):
            with contextlib.suppress(Exception):
                step()
        raise
    return pid


def _start_init(
    k: Kernel,
    spec: Spec,
    sd: StateDir,
    cg: cgroup_mod.OciCgroup,
    console_socket: str | None,
    bundle: str,
    undo: list[Any],
) -> int:
    lx = spec.linux
    sock = console.connect(console_socket) if spec.process.terminal and console_socket else None
    ns_fds: dict[str, int] = {}
    try:
        for ns in lx.namespaces:
            if ns.path:
                try:
                    ns_fds[ns.type] = os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError as err:
                    raise KernelError(
                        f"open {ns.type} namespace", err.errno or errno.EIO, ns.path
                    ) from err
        paths = {ns.type: ns.path for ns in lx.namespaces}
        for kind, fd in ns_fds.items():
            if kind not in _JOINED_BY_INIT:
                k.setns(fd, NAMESPACE_FLAGS[kind], paths[kind])
        if lx.new("time"):
            # clone(2) takes no CLONE_NEWTIME (its low byte is the exit signal): unshare(2)
            # it here, where it applies to the children made from now on.
            k.unshare(CLONE_NEWTIME)
        flags = 0
        for ns in lx.namespaces:
            if not ns.path and ns.type not in ("cgroup", "time"):
                flags |= NAMESPACE_FLAGS[ns.type]
        go_r, go_w = os.pipe()
        msg_r, msg_w = os.pipe()
        base_state = {
            "ociVersion": OCI_VERSION,
            "id": sd.id,
            "status": "creating",
            "bundle": bundle,
            "annotations": dict(spec.annotations),
        }
        pid = k.clone(flags)
        if pid == 0:  # the init: never returns
            try:
                os.close(go_w)
                os.close(msg_r)
                pipes = InitPipes(
                    go_r, msg_w, {t: f for t, f in ns_fds.items() if t in _JOINED_BY_INIT}, sock
                )
                container_init(k, spec, sd.fifo, cg, pipes, base_state)
            finally:
                os._exit(1)
    except BaseException:
        if sock is not None:
            sock.close()
        raise
    finally:
        for fd in ns_fds.values():
            os.close(fd)
    undo.append(lambda: _kill(pid))
    os.close(go_r)
    os.close(msg_w)
    if sock is not None:
        sock.close()  # the init has its own copy
    with os.fdopen(msg_r, "rb") as reader:
        try:
            cg.add_pid(pid)
            if lx.new("user"):
                _write_map(k, pid, "uid_map", lx.uid_mappings)
                _write_map(k, pid, "gid_map", lx.gid_mappings)
            os.write(go_w, b"1")
            _wait_ready(reader, go_w, spec, {**base_state, "pid": pid})
        finally:
            os.close(go_w)
    return pid


def _wait_ready(reader: Any, go_w: int, spec: Spec, state: dict[str, Any]) -> None:
    for line in reader:
        if line == HOOKS_REQUEST:
            # runtime.md: prestart and createRuntime hooks run in the runtime's namespaces,
            # after the container's namespaces exist, before pivot_root.
            run_hooks("prestart", spec.hooks.prestart, state)
            run_hooks("createRuntime", spec.hooks.createRuntime, state)
            os.write(go_w, b"1")
            continue
        msg = protocol.decode(line)
        if isinstance(msg, protocol.Started):
            return
        if isinstance(msg, protocol.Failed):
            raise StartError(msg.error, 1)
    raise StartError("the container's init exited before it was ready", 1)


def _host_id(maps: tuple[IdMapping, ...]) -> int:
    """The host id of the container's id 0 (0 without a user namespace)."""
    return next((m.host_id for m in maps if m.container_id == 0 and m.size > 0), 0)


def _write_map(k: Kernel, pid: int, name: str, maps: tuple[IdMapping, ...]) -> None:
    if not maps:
        raise UsageError(f"invalid config.json: a user namespace needs linux.{name[:3]}Mappings")
    text = "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps)
    k.write_file(f"/proc/{pid}/{name}", text)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
