"""The helper process that creates a container and watches it until it exits.

A single-threaded process (a fresh interpreter, ``python -I shim.py run DIR FD``, or a fork of
the fork server or of the CLI: see launcher), never a fork of a multi-threaded Jupyter kernel.
It clones the container's first process into new namespaces (:mod:`.pid1` runs there until
exec), puts it in its cgroup, writes its uid/gid maps, reports ``Started`` (or the ``Failed``
that stopped it) over a pipe (:mod:`.protocol`), forwards signals, and records each status
change through ``state.transition``, so a detached container is still accounted for after the
CLI or notebook that started it is gone.

Process tree::

    caller ──spawn──> shim (host namespaces) ──clone(CLONE_NEW*)──> PID 1 of the container
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if __name__ == "__main__":  # run as a script: make the package importable, nothing else
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    # and the third-party folders the launcher passes (launcher.ENV_SYSPATH): pyroute2
    sys.path += [p for p in os.environ.get("PYCONT_HELPER_SYSPATH", "").split(os.pathsep) if p]

from pycont import procfs
from pycont.errors import InvalidState, KernelError, PycontError
from pycont.fsutil import remove_tree
from pycont.kernel import LinuxKernel
from pycont.kernel._base import CLONE_NEWNET, Kernel
from pycont.namespaces import Namespace, NamespaceSet
from pycont.runtime import netsetup, pid1, protocol
from pycont.runtime import state as st

if TYPE_CHECKING:
    from pycont.cgroups import Cgroup

MAX_FD = pid1.MAX_FD
FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
)


class Reporter:
    """Typed messages to the caller over the status pipe (:mod:`.protocol`); silent once the
    caller has gone."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, msg: protocol.Message) -> None:
        if self.fd < 0:
            return
        try:
            os.write(self.fd, protocol.encode(msg))
        except OSError:
            self.fd = -1

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# Paths the narration writes as $CONTAINER, $IMAGE and $ID (the container's id, which also
# names its cgroup), so each line reads at a glance.
_SHORT: list[tuple[str, str]] = []


def _shortener(cfg: st.ContainerConfig, cdir: str) -> None:
    layers = ((layer, "$IMAGE") for layer in cfg.layers)
    _SHORT[:] = [(cdir, "$CONTAINER"), *layers, (cfg.id, "$ID")]


def shorten(line: str) -> str:
    for old, new in _SHORT:
        line = line.replace(old, new)
    return line


def _narrator(rep: Reporter) -> Callable[[str], None]:
    return lambda line: rep.send(protocol.Narration(shorten(line)))


def _kernel(narrate: bool, rep: Reporter) -> Kernel:
    real = LinuxKernel()
    if not narrate:
        return real
    from pycont.kernel.narrating import NarratingKernel

    return NarratingKernel(real, _narrator(rep))


def _write_maps(k: Kernel, pid: int, cfg: st.ContainerConfig) -> None:
    """The container's user namespace ids (user_namespaces(7)), written through the kernel
    seam: the narrating kernel shows each write."""
    # An unprivileged writer must deny setgroups before writing gid_map.
    writes = [("setgroups", "deny")] if cfg.rootless else []
    for name, rows in (("uid_map", cfg.uid_map), ("gid_map", cfg.gid_map)):
        writes.append((name, "".join(f"{a} {b} {c}\n" for a, b, c in rows)))
    for name, text in writes:
        k.write_file(f"/proc/{pid}/{name}", text)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _wait(pid: int) -> int:
    """Exit status as a shell reports it: the code, or 128 + the signal that killed it."""
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _record_end(cdir: str, **fields: object) -> None:
    """The container is exited; removed (rm -f while it ran) leaves nothing to record."""
    with contextlib.suppress(FileNotFoundError):
        st.transition(cdir, st.Status.EXITED, finished_at=time.time(), **fields)


def _open_cgroup(k: Kernel, cfg: st.ContainerConfig) -> Cgroup | None:
    """Create the container's cgroup with its limits, before its first process exists."""
    if not cfg.cgroup:
        return None
    from pycont import cgroups

    cg = cgroups.for_container(cfg.id, kernel=k)
    cg.create()
    try:
        cg.apply(cfg.limits)
    except BaseException:
        cg.destroy()
        raise
    return cg


def _final_readings(cg: Cgroup | None) -> tuple[bool, int | None]:
    """Whether the OOM killer struck, and the memory high-water mark: read while the cgroup's
    files still exist."""
    if cg is None:
        return False, None
    oom, peak = False, None
    with contextlib.suppress(KernelError, OSError):
        oom = cg.oom_killed()
    with contextlib.suppress(KernelError, OSError):
        peak = cg.stats().memory_peak
    return oom, peak


def _close_cgroup(cg: Cgroup | None) -> None:
    """Remove the cgroup, and anything left in it."""
    if cg is None:
        return
    with contextlib.suppress(KernelError, OSError):
        if cg.pids():  # only with --pid host can processes outlive PID 1
            cg.kill_all()
    with contextlib.suppress(KernelError, OSError):
        cg.destroy()


def _own_root(cdir: str) -> None:
    """PYCONT_ROOT of the container's store, ``<root>/containers/<id>``: a shim forked by the
    fork server inherits the environment the server started with, which may name another
    store than the caller's now (the networks' leases live in the container's own)."""
    os.environ["PYCONT_ROOT"] = os.path.dirname(os.path.dirname(os.path.abspath(cdir)))


def run(cdir: str, status_fd: int) -> int:
    os.set_inheritable(status_fd, False)
    _own_root(cdir)
    rep = Reporter(status_fd)
    cfg = st.load_config(cdir)
    _shortener(cfg, cdir)
    k = _kernel(cfg.narrate, rep)
    nsset = NamespaceSet.from_modes(cfg.namespaces)
    pid = 0
    plumbing: netsetup.Plumbing | None = None
    cg: Cgroup | None = None

    def abort(msg: str, code: int = 125, kind: str = "setup") -> int:
        """Undo everything made so far, record or remove the container, tell the caller."""
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait(pid)
        netsetup.stop(cdir, plumbing)
        _close_cgroup(cg)
        rep.send(protocol.Failed(kind, code, msg))
        if cfg.auto_remove:
            remove_tree(cdir)
            netsetup.release(cfg.id, cfg.network)
        else:
            _record_end(cdir, exit_code=code, error=msg)
        return code

    try:
        cg = _open_cgroup(k, cfg)
    except (KernelError, OSError, ValueError) as err:
        return abort(f"cgroup: {err}")
    if cfg.network.mode == "container":
        # --network container:NAME: clone(2) without CLONE_NEWNET from inside that container's
        # network namespace (setns(2)); the shim itself opens no socket afterwards.
        try:
            target = netsetup.join_target(cfg.network)
            fd = os.open(f"/proc/{target}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                k.setns(fd, CLONE_NEWNET, f"/proc/{target}/ns/net")
            finally:
                os.close(fd)
        except (PycontError, OSError) as err:
            return abort(str(err))
    go_r, go_w = os.pipe()
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = k.clone(nsset.clone_flags())
    except KernelError as err:
        return abort(str(err), kind="clone")
    if pid == 0:
        os.close(go_w)
        os.close(err_r)
        say = _narrator(rep) if cfg.narrate else None
        pid1.container_init(k, cfg, cdir, nsset, go_r, err_w, say)
    os.close(go_r)
    os.close(err_w)
    try:
        # Into the cgroup before it runs anything: memory it touches is charged there, and
        # its cgroup namespace (unshared next) is rooted there (cgroup_namespaces(7)).
        if cg is not None:
            cg.add_pid(pid)
        if Namespace.USER in nsset.private():
            _write_maps(k, pid, cfg)
        # Its network before it runs anything: eth0 is up when the command starts.
        plumbing = netsetup.start(k, cdir, cfg.id, cfg.network, pid)
        os.write(go_w, b"1")
    except Exception as err:  # noqa: BLE001 - whatever broke, undo the cgroup and the rest
        # (a library missing from the helper's path once left cgroups behind here)
        os.close(go_w)
        # The process may have died first, and said why (the go pipe then breaks): that
        # reason is the one to report.
        report = _read_all(err_r)
        if report:
            failed = protocol.decode(report)
            assert isinstance(failed, protocol.Failed)
            return abort(failed.error, failed.code, failed.kind)
        if isinstance(err, PycontError):
            return abort(str(err))
        if isinstance(err, OSError):
            return abort(f"set up process {pid}: {err}")
        return abort(f"set up process {pid}: {err!r}")
    os.close(go_w)
    report = _read_all(err_r)  # EOF at a successful exec: err_w is close-on-exec
    if report:
        _wait(pid)
        pid = 0
        failed = protocol.decode(report)
        assert isinstance(failed, protocol.Failed)
        return abort(failed.error, failed.code, failed.kind)
    me = os.getpid()
    try:
        st.transition(
            cdir,
            st.Status.RUNNING,
            pid=pid,
            pid_start=procfs.start_time(pid),
            shim_pid=me,
            shim_start=procfs.start_time(me),
            started_at=time.time(),
        )
    except (InvalidState, FileNotFoundError) as err:
        # Another start won the race (the record says running), or rm -f removed it: this
        # process must not run unrecorded. The record, and the cgroup, are the winner's.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait(pid)
        netsetup.stop(cdir, plumbing)
        if isinstance(err, FileNotFoundError):
            _close_cgroup(cg)
            # rm -f gave its leases back while we started: the bridge made again since
            # (attach.join) goes now, if no other container holds it.
            netsetup.release(cfg.id, cfg.network)
        msg = str(err) if isinstance(err, InvalidState) else f"container {cfg.name} was removed"
        rep.send(protocol.Failed("state", 125, msg))
        return 125
    for sig in FORWARDED:
        signal.signal(sig, lambda signum, _frame: _forward(pid, signum))
    rep.send(protocol.Started(pid))
    code = _wait(pid)
    # Record the end before the cgroup goes: whoever sees its files vanish (the sampler, at
    # ENODEV) then finds the exit, the OOM kill and the peak already in the record.
    oom, peak = _final_readings(cg)
    netsetup.stop(cdir, plumbing)
    _record_end(cdir, exit_code=code, oom_killed=oom, memory_peak=peak)
    _close_cgroup(cg)
    if cfg.auto_remove:
        remove_tree(cdir)
        netsetup.release(cfg.id, cfg.network)
    rep.send(protocol.Exited(code, oom))
    return code


def _forward(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def exec_in(cdir: str, status_fd: int, spec_json: str) -> int:
    """Run a command in a running container: join each of its namespaces, then fork."""
    os.set_inheritable(status_fd, False)
    rep = Reporter(status_fd)
    spec = json.loads(spec_json)
    cfg = st.load_config(cdir)
    rec = st.load_state(cdir)
    k = _kernel(cfg.narrate, rep)
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
    # setns(CLONE_NEWPID) moves only the children: fork so the command is inside.
    child = os.fork()
    if child == 0:
        os.close(err_r)
        workdir = spec.get("workdir") or cfg.workdir
        try:
            # Only stdio and the error pipe cross into the container: no fd of the host.
            os.closerange(3, err_w)
            os.closerange(err_w + 1, MAX_FD)
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
        pid1.exec_command(spec["args"], env, err_w)
    os.close(err_w)
    report = _read_all(err_r)
    if report:
        _wait(child)
        failed = protocol.decode(report)
        assert isinstance(failed, protocol.Failed)
        rep.send(failed)
        return failed.code
    for sig in FORWARDED:
        signal.signal(sig, lambda signum, _frame: _forward(child, signum))
    rep.send(protocol.Started(child))
    code = _wait(child)
    rep.send(protocol.Exited(code))
    return code


def set_comm(name: str) -> None:
    """Name this process in ps -o comm / top (proc(5): /proc/self/comm, 15 bytes)."""
    with contextlib.suppress(OSError), open("/proc/self/comm", "w") as f:
        f.write(name)


def dispatch(mode: str, args: list[str], status_fd: int) -> int:
    set_comm(f"pycont-{mode}")
    if mode == "run":
        return run(args[0], status_fd)
    if mode == "exec":
        return exec_in(args[0], status_fd, args[1])
    raise ValueError(f"pycont shim: unknown mode {mode!r}")


def main(argv: list[str]) -> int:
    """``shim.py MODE DIR STATUS_FD [ARGS...]``, as launcher.launch spawns it."""
    return dispatch(argv[0], [argv[1], *argv[3:]], int(argv[2]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
