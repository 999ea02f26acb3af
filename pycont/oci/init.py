"""The container's init between clone(2) and execve(2), as the OCI lifecycle wants it.

``create`` clones this process into the new namespaces and places it in the cgroup; it then
builds the root (mounts, devices, pivot_root, masked and read-only paths), tells ``create`` it
is ready and blocks opening the state directory's fifo for writing: ``start`` opens the other
end, and only then do the privileges drop and the command run. ``create`` exits meanwhile, so
this process is orphaned and adopted by the caller's subreaper (conmon): no PR_SET_PDEATHSIG.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from pycont.errors import KernelError, PycontError
from pycont.kernel import (
    CLONE_NEWCGROUP,
    CLONE_NEWNS,
    CLONE_NEWUSER,
    MNT_DETACH,
    MS_BIND,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_SLAVE,
    Kernel,
)
from pycont.oci import console, mounts
from pycont.oci.bundle import Spec
from pycont.oci.cgroup import OciCgroup
from pycont.oci.hooks import run_hooks
from pycont.oci.process import (
    become_ns_root,
    check_command,
    enter_cwd,
    exec_process,
    set_limits,
)
from pycont.runtime import protocol
from pycont.security import paths

__all__ = ["InitPipes", "container_init", "HOOKS_REQUEST"]

# The init asks ``create`` to run the prestart/createRuntime hooks with this line.
HOOKS_REQUEST = b'{"type": "hooks"}\n'


@dataclass(frozen=True)
class InitPipes:
    go_r: int  # create -> init: b"1" = go on (cgroup and id maps are set; hooks have run)
    msg_w: int  # init -> create: protocol.Failed / protocol.Started / HOOKS_REQUEST
    ns_fds: dict[str, int]  # user / mount namespaces to join (opened by create)
    console: socket.socket | None


def container_init(
    k: Kernel,
    spec: Spec,
    fifo: str,
    cg: OciCgroup | None,
    p: InitPipes,
    state: Mapping[str, Any],
) -> NoReturn:
    """PID 1 of the container (or its first process in a joined PID namespace)."""
    try:
        # A host interpreter until execve(2), waiting for ``start`` in the container's PID
        # namespace (shared with others in a pod): nobody there may read its /proc/<pid>/exe or
        # ptrace it (prctl(2) PR_SET_DUMPABLE; the exec makes the command dumpable again).
        # After "go": create has written our uid/gid maps by then, and /proc/<pid>/uid_map of a
        # non-dumpable process belongs to root, which an unprivileged create could not open.
        _wait_go(p.go_r)
        k.set_dumpable(False)
        # proc(5): the host's /proc is still mounted here, and its "self" names us by our pid
        # there: the one the hooks' state must carry.
        state = {**state, "pid": int(os.readlink("/proc/self"))}
        fifo_fd = _prepare(k, spec, fifo, cg, p, state)
        os.write(p.msg_w, protocol.encode(protocol.Started(os.getpid())))
        os.close(p.msg_w)
        # fifo(7): open for writing blocks until ``start`` opens it for reading. O_PATH before
        # pivot_root, reopened through /proc/self/fd now that the host's path is out of reach.
        fd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
        os.write(fd, b"0")
        os.close(fd)
        os.close(fifo_fd)
    except BaseException as err:  # noqa: BLE001 - every failure goes back to create
        msg = str(err) if isinstance(err, PycontError | OSError) else repr(err)
        code = getattr(err, "exit_code", 1)
        try:
            os.write(p.msg_w, protocol.encode(protocol.Failed("setup", code, msg)))
        except OSError:  # create is gone (we failed after reporting ready): say it on stderr
            with contextlib.suppress(OSError):
                os.write(2, f"pycont-oci: {msg}\n".encode())
        os._exit(1)
    try:
        run_hooks("startContainer", spec.hooks.startContainer, state)
        # exec_command reports an execve failure on this descriptor: our stderr.
        err_w = os.dup(2)
        os.set_inheritable(err_w, False)
        exec_process(k, spec.process, spec.linux.seccomp, err_w)
    except BaseException as err:  # noqa: BLE001 - after start nobody waits: say it on stderr
        with contextlib.suppress(OSError):
            os.write(2, f"pycont-oci: {err}\n".encode())
        os._exit(1)


def _wait_go(go_r: int) -> None:
    if os.read(go_r, 1) != b"1":  # EOF: create failed and is cleaning up
        os._exit(1)


def _prepare(
    k: Kernel,
    spec: Spec,
    fifo: str,
    cg: OciCgroup | None,
    p: InitPipes,
    state: Mapping[str, Any],
) -> int:
    """Everything up to the wait for ``start``; returns the fifo's O_PATH descriptor."""
    lx = spec.linux
    if "user" in p.ns_fds:
        k.setns(p.ns_fds["user"], CLONE_NEWUSER, "user")
    if "mount" in p.ns_fds:
        k.setns(p.ns_fds["mount"], CLONE_NEWNS, "mount")
    for fd in p.ns_fds.values():
        os.close(fd)
    if lx.namespace("user") is not None:
        become_ns_root()  # create has written the maps by now
    if lx.new("cgroup"):
        # Now that create has moved us into the container's cgroup, make that the root we see.
        k.unshare(CLONE_NEWCGROUP)
    if spec.hostname and lx.new("uts"):
        k.sethostname(spec.hostname)
    if lx.new("network"):
        k.set_link_up("lo")  # a new network namespace: loopback only, and up (as runc)
    userns = lx.namespace("user") is not None
    root = spec.root
    # mount_namespaces(7): no mount of ours may propagate to the host; rslave keeps receiving
    # the host's unmounts (runc's default), rprivate when asked for private.
    private = lx.rootfs_propagation in ("private", "rprivate")
    k.mount("", "/", "", (MS_PRIVATE if private else MS_SLAVE) | MS_REC)
    # pivot_root(2): the new root must be a mount point.
    k.mount(root, root, "", MS_BIND | MS_REC)
    mounts.mount_all(k, root, spec.mounts, userns, cg, spec.bundle)
    if any(m.destination == "/dev" for m in spec.mounts):
        mounts.make_devices(k, root, lx.devices, userns)
    if spec.hooks.prestart or spec.hooks.createRuntime:
        os.write(p.msg_w, HOOKS_REQUEST)
        _wait_go(p.go_r)
    run_hooks("createContainer", spec.hooks.createContainer, state)
    fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
    os.chdir(root)
    k.pivot_root(".", ".")
    k.umount2(".", MNT_DETACH)
    os.chdir("/")
    if lx.rootfs_propagation and not private:
        k.mount("", "/", "", mounts.parse_options((lx.rootfs_propagation,)).propagation)
    for key, value in lx.sysctl.items():
        k.write_file("/proc/sys/" + key.replace(".", "/"), value)
    paths.mask(k, lx.masked_paths)
    paths.make_readonly(k, lx.readonly_paths)
    if spec.root_readonly:
        k.mount("", "/", "", MS_REMOUNT | MS_BIND | MS_RDONLY | _locked_flags("/"))
    if spec.process.terminal:
        if p.console is None:
            raise KernelError("terminal: no --console-socket given", errno.EINVAL)
        console.take_terminal(k, p.console, console=True)
    else:
        os.setsid()  # its own session: the caller's terminal signals do not reach it
    enter_cwd(spec.process)
    set_limits(k, spec.process)
    check_command(spec.process)
    return fifo_fd


def _locked_flags(path: str) -> int:
    from pycont.oci.mounts import _ST_FLAGS

    st = os.statvfs(path).f_flag
    return sum(ms for bit, ms in _ST_FLAGS.items() if st & bit and ms != MS_RDONLY)
