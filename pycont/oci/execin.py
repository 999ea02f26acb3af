"""``exec``: one more process in a running container (conmon runs ``podman exec`` through it).

The helper that enters is the runtime's own Python process: it makes itself non-dumpable
first (prctl(2) PR_SET_DUMPABLE 0: its /proc/<pid> is then root-owned and its ``exe`` cannot be
opened from inside, CVE-2019-5736), joins the container's cgroups and namespaces, and forks:
only the child, the process that execs, is ever inside the container's PID namespace.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from typing import Any

from pycont import kernel as _kernel
from pycont.errors import InvalidState, KernelError, PycontError, StartError, UsageError
from pycont.fsutil import write_atomic
from pycont.kernel import Kernel
from pycont.oci import console
from pycont.oci.bundle import Process, parse_process
from pycont.oci.cgroup import join_like
from pycont.oci.create import NAMESPACE_FLAGS
from pycont.oci.process import (
    become_ns_root,
    check_command,
    enter_cwd,
    exec_process,
    prepare_seccomp,
    set_limits,
)
from pycont.oci.state import StateDir
from pycont.runtime import protocol

__all__ = ["exec_in"]

# /proc/<pid>/ns names, in the order they are joined: user first (it grants the rights to
# join the rest), mnt last but one, by the child (it moves our root).
_NS: tuple[tuple[str, str], ...] = (
    ("user", "user"),
    ("ipc", "ipc"),
    ("uts", "uts"),
    ("net", "network"),
    ("pid", "pid"),
    ("cgroup", "cgroup"),
    ("time", "time"),
    ("mnt", "mount"),
)
_BY_CHILD = ("user", "mount")


def load_process(path: str | None, args: list[str], config: dict[str, Any]) -> Process:
    """``--process FILE`` (a config.md process object) or the command line with the
    container's own process settings (env, cwd, user, capabilities)."""
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                return parse_process(json.load(f))
        except (OSError, ValueError) as err:
            raise UsageError(f"cannot read --process {path}: {err}") from err
    if not args:
        raise UsageError("exec: a command, or --process FILE, is required")
    doc = dict(config.get("process") or {})
    doc["args"], doc["terminal"] = args, False
    return parse_process(doc)


def exec_in(
    root: str,
    cid: str,
    proc: Process,
    pid_file: str | None = None,
    detach: bool = False,
    console_socket: str | None = None,
    k: Kernel | None = None,
) -> int:
    """Run ``proc`` in container ``cid``; returns its exit status (0 with ``detach``)."""
    k = k if k is not None else _kernel.current()
    sd = StateDir(root, cid)
    st = sd.load()
    status = sd.status(st)
    if status not in ("created", "running"):
        raise InvalidState(f"cannot exec in container {cid}: it is {status}")
    if proc.terminal and not console_socket:
        raise UsageError("exec --tty: --console-socket is required")
    config = sd.config()
    seccomp = (config.get("linux") or {}).get("seccomp")
    prepare_seccomp(proc, seccomp)
    k.set_dumpable(False)  # before anything of the container can see us
    sock = console.connect(console_socket) if proc.terminal and console_socket else None
    fds = _open_namespaces(st.pid)
    try:
        join_like(st.pid, k)
        for kind, fd in fds.items():
            if kind not in _BY_CHILD:
                k.setns(fd, NAMESPACE_FLAGS[kind], kind)
        err_r, err_w = os.pipe()
        child = os.fork()
        if child == 0:
            try:
                os.close(err_r)
                _child(k, proc, fds, sock, seccomp, err_w)
            finally:
                os._exit(1)
    finally:
        for fd in fds.values():
            os.close(fd)
    os.close(err_w)
    if sock is not None:
        sock.close()
    with os.fdopen(err_r, "rb") as reader:
        report = reader.read()
    if report:
        msg = protocol.decode(report.splitlines()[0])
        with contextlib.suppress(ChildProcessError):
            os.waitpid(child, 0)
        if isinstance(msg, protocol.Failed):
            raise StartError(msg.error, msg.code)
    if pid_file:
        write_atomic(os.path.abspath(pid_file), str(child))
    if detach:
        return 0
    _, wstatus = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(wstatus)
    return code if code >= 0 else 128 - code  # killed by signal N: 128 + N, as a shell says


def _open_namespaces(pid: int) -> dict[str, int]:
    """The container's namespaces that differ from ours, opened before any is joined (after
    setns of the mount namespace, /proc/<pid> is the container's proc, not the host's)."""
    fds: dict[str, int] = {}
    try:
        for proc_name, kind in _NS:
            theirs = f"/proc/{pid}/ns/{proc_name}"
            try:
                if os.stat(theirs).st_ino == os.stat(f"/proc/self/ns/{proc_name}").st_ino:
                    continue
                fds[kind] = os.open(theirs, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                if proc_name in ("time", "cgroup"):
                    continue  # older kernels have no such namespace
                raise
    except OSError as err:
        for fd in fds.values():
            os.close(fd)
        raise KernelError("open the namespaces of", err.errno or errno.ESRCH, f"pid {pid}") from err
    return fds


def _child(
    k: Kernel,
    proc: Process,
    fds: dict[str, int],
    sock: Any,
    seccomp: dict[str, Any] | None,
    err_w: int,
) -> None:
    try:
        for kind in _BY_CHILD:
            if kind in fds:
                k.setns(
                    fds[kind], NAMESPACE_FLAGS[kind], kind
                )  # mount: our root and cwd become its
        if "user" in fds:
            become_ns_root()
        if sock is not None:
            console.take_terminal(k, sock, console=False)
        enter_cwd(proc)
        set_limits(k, proc)
        check_command(proc)
        exec_process(k, proc, seccomp, err_w)
    except BaseException as err:  # noqa: BLE001 - reported to the parent, which exits 1
        code = getattr(err, "exit_code", 1)
        msg = str(err) if isinstance(err, OSError | PycontError) else repr(err)
        with contextlib.suppress(OSError):
            os.write(err_w, protocol.encode(protocol.Failed("exec", code, msg)))
        os._exit(code if isinstance(code, int) else 1)
