"""The shim's exec mode (docker exec): run a command in a running container.

The shim joins each of the container's namespaces (setns(2)) and its cgroup, then forks: the
child, inside, takes the container's user and confinement and execs the command, with the same
start handshake as the container's init (:mod:`.handshake`).
"""

from __future__ import annotations

import json
import os
import signal

from pycont import procfs
from pycont.errors import KernelError, PycontError
from pycont.kernel import LinuxKernel
from pycont.namespaces import Namespace
from pycont.runtime import handshake, pid1, protocol
from pycont.runtime import state as st
from pycont.runtime.shimio import FORWARDED, Reporter, forward, injected, kernel_for, wait_code


def exec_in(cdir: str, status_fd: int, spec_json: str) -> int:
    """Run a command in a running container: join each of its namespaces, then fork."""
    os.set_inheritable(status_fd, False)
    rep = Reporter(status_fd)
    spec = json.loads(spec_json)
    cfg = st.load_config(cdir)
    rec = st.load_state(cdir)
    k = kernel_for(cfg.narrate, rep)
    pid = rec.pid
    if rec.status != st.Status.RUNNING or not procfs.alive(pid, rec.pid_start):
        rep.send(protocol.Failed("state", 125, f"container {cfg.name} is not running"))
        return 125
    if cfg.cgroup:
        from pycont import cgroups

        try:  # the command joins the container's cgroup: its limits and its accounting
            cgroups.for_container(cfg.id, kernel=k).add_pid(os.getpid())
        except (KernelError, OSError) as err:
            rep.send(protocol.Failed("cgroup", 125, f"join the container's cgroup: {err}"))
            return 125
    # Non-dumpable before joining anything (prctl(2) PR_SET_DUMPABLE): the child forked below
    # lives in the container's PID namespace until it execs, a host interpreter; a process
    # there must not be able to open its /proc/<pid>/exe or ptrace it (CVE-2019-5736's class).
    # execve(2) of the command makes it dumpable again, as any process.
    k.set_dumpable(False)
    try:  # the seccomp filter is built while the host's files are in reach
        confinement = pid1.Confinement.prepare(cfg.security, cfg.rootless)
    except PycontError as err:
        rep.send(protocol.Failed("setup", 125, str(err)))
        return 125
    # The host's /proc, for the handshake once we are in the container's mount namespace.
    proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    # Open every namespace before joining any: once in its mount namespace, the host's /proc
    # paths are gone. Join the user namespace first: it owns the others (setns(2)).
    fds: list[tuple[Namespace, int, str]] = []
    for ns in Namespace:
        path = f"/proc/{pid}/ns/{ns.procname}"
        if os.stat(path).st_ino != os.stat(f"/proc/self/ns/{ns.procname}").st_ino:
            fds.append((ns, os.open(path, os.O_RDONLY | os.O_CLOEXEC), path))
    try:
        for ns, fd, path in fds:
            k.setns(fd, ns.flag, path)
            os.close(fd)
    except KernelError as err:
        rep.send(protocol.Failed("setns", 125, str(err)))
        return 125
    fds_joined = {ns for ns, _fd, _path in fds}
    env = dict(e.split("=", 1) for e in cfg.env)
    env.update(dict(e.split("=", 1) for e in spec.get("env", [])))
    user = spec.get("user") or cfg.user  # docker exec -u, else the container's user
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    me_fd = os.pidfd_open(os.getpid())
    # setns(CLONE_NEWPID) moves only the children: fork so the command is inside.
    child = os.fork()
    if child == 0:
        os.close(err_r)
        pid1.name_self(pid1.PRE_EXEC_NAME)
        workdir = spec.get("workdir") or cfg.workdir
        try:
            # Dies with this shim, as the container's init does (pid1.hold_to_parent).
            pid1.hold_to_parent(LinuxKernel(), me_fd)
            # Only stdio and the error pipe cross into the container: no fd of the host.
            pid1.close_host_fds(err_w)
            # setns(2) into the mount namespace moved our root: this is the container's passwd.
            ident = pid1.identity(cfg, user, Namespace.USER in fds_joined)
            if ident is not None:
                env.setdefault("HOME", ident.home)
            pid1.enter_workdir(workdir)
            # The real kernel, not a narrating one: its status pipe is closed here.
            confinement.apply(LinuxKernel(), user=ident)
        except (OSError, PycontError) as err:
            why = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            msg = f"chdir {workdir}: {why}" if isinstance(err, OSError) else why
            os.write(err_w, protocol.encode(protocol.Failed("setup", 125, msg)))
            os._exit(125)
        pid1.exec_command(spec["args"], env, err_w, failpoint="exec.exec-next")
    os.close(me_fd)
    os.close(err_w)
    if why := injected("exec.forked"):
        os.kill(child, signal.SIGKILL)
        wait_code(child)
        rep.send(protocol.Failed("setup", 125, why))
        return 125
    failed = handshake.outcome(err_r, child, "the exec'd process", proc)
    if failed is not None:
        wait_code(child)
        rep.send(failed)
        return failed.code
    for sig in FORWARDED:
        signal.signal(sig, lambda signum, _frame: forward(child, signum))
    rep.send(protocol.Started(child))
    code = wait_code(child)
    rep.send(protocol.Exited(code))
    return code
