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
import os
import signal
import sys
import time
from typing import TYPE_CHECKING

if __name__ == "__main__":  # run as a script: make the package importable, nothing else
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    # and the third-party folders the launcher passes (launcher.ENV_SYSPATH): pyroute2
    sys.path += [p for p in os.environ.get("PYCONT_HELPER_SYSPATH", "").split(os.pathsep) if p]

from pycont import failpoints, procfs
from pycont.errors import InvalidState, KernelError, PycontError
from pycont.kernel._base import CLONE_NEWNET, Kernel
from pycont.namespaces import Namespace, NamespaceSet
from pycont.runtime import handshake, mon, netsetup, pid1, protocol, shimlock, staging
from pycont.runtime import state as st
from pycont.runtime.shimio import (
    FORWARDED,
    Reporter,
    forward,
    injected,
    kernel_for,
    narrator,
    set_short_names,
    wait_code,
)

if TYPE_CHECKING:
    from pycont.cgroups import Cgroup

MAX_FD = pid1.MAX_FD


def _write_maps(k: Kernel, pid: int, cfg: st.ContainerConfig) -> None:
    """The container's user namespace ids (user_namespaces(7)), written through the kernel
    seam: the narrating kernel shows each write."""
    # An unprivileged writer must deny setgroups before writing gid_map.
    writes = [("setgroups", "deny")] if cfg.rootless else []
    for name, rows in (("uid_map", cfg.uid_map), ("gid_map", cfg.gid_map)):
        writes.append((name, "".join(f"{a} {b} {c}\n" for a, b, c in rows)))
    for name, text in writes:
        k.write_file(f"/proc/{pid}/{name}", text)


def _oom_note(cg: Cgroup | None) -> str:
    with contextlib.suppress(KernelError, OSError):
        if cg is not None and cg.oom_killed():
            return " (out of memory: the cgroup's OOM killer struck)"
    return ""


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


def _clone(k: Kernel, flags: int, cg: Cgroup | None) -> tuple[int, bool]:
    """clone(2) the container's init; on cgroup v2 straight into its cgroup (clone3
    CLONE_INTO_CGROUP, Linux >= 5.7). Returns its pid (0 in the child), and whether it was born
    in the cgroup; if not, the caller writes it to cgroup.procs."""
    if cg is not None and cg.version == "v2":
        try:
            fd = os.open(cg.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                return k.clone(flags, cgroup_fd=fd), True
            except KernelError:
                # An older kernel, or a seccomp filter that refuses clone3 (docker's answers
                # ENOSYS, so that libc falls back): the classic way below. A real refusal
                # (namespaces) comes again from clone(2), and is reported then.
                pass
            finally:
                os.close(fd)
    return k.clone(flags), False


def _final_readings(cg: Cgroup | None) -> tuple[bool, int | None]:
    """Whether the OOM killer struck, and the memory high-water mark: read while the cgroup's
    files still exist."""
    if cg is None:
        return False, None
    oom, peak = False, None
    with contextlib.suppress(KernelError, OSError):
        oom = cg.oom_killed()
    with contextlib.suppress(KernelError, OSError):
        peak = cg.memory_peak()
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


def _auto_remove(cdir: str, cfg: st.ContainerConfig) -> None:
    """--rm: renamed out of the namespace first, as rm does (:mod:`.staging`), so a shim
    killed halfway leaves a folder aside that the next command finishes. No store lock: a
    concurrent ``rm`` holding it waits for this shim; whoever renames first removes."""
    try:
        moved = staging.begin_remove(cdir)
    except FileNotFoundError:
        return  # an rm took it
    netsetup.release(cfg.id, cfg.network)
    staging.finish(moved)


def _own_root(cdir: str) -> None:
    """PYCONT_ROOT of the container's store, ``<root>/containers/<id>``: a shim forked by the
    fork server inherits the environment the server started with, which may name another
    store than the caller's now (the networks' leases live in the container's own)."""
    os.environ["PYCONT_ROOT"] = os.path.dirname(os.path.dirname(os.path.abspath(cdir)))


def run(cdir: str, status_fd: int) -> int:
    os.set_inheritable(status_fd, False)
    _own_root(cdir)
    lock_fd = shimlock.hold(cdir)  # held until this process ends: a start under way
    rep = Reporter(status_fd)
    cfg = st.load_config(cdir)
    mon.clear_exit(cdir)  # a previous run's
    # A detached container is watched by pycont-mon once it runs, and outlives it. Not one this
    # process must serve to the end (a port proxy, slirp4netns), nor one without a cgroup (its
    # orphans could not be found again): those keep the Python shim and die with it.
    light = cfg.detach and cfg.cgroup and not cfg.network.ports
    mon_path = mon.binary() if light and cfg.network.mode != "slirp4netns" else None
    set_short_names(cfg, cdir)
    k = kernel_for(cfg.narrate, rep)
    nsset = NamespaceSet.from_modes(cfg.namespaces)
    pid = 0
    plumbing: netsetup.Plumbing | None = None
    cg: Cgroup | None = None

    def abort(msg: str, code: int = 125, kind: str = "setup") -> int:
        """Undo everything made so far, record or remove the container, tell the caller."""
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_code(pid)
        netsetup.stop(cdir, plumbing)
        _close_cgroup(cg)
        rep.send(protocol.Failed(kind, code, msg))
        if cfg.auto_remove:
            _auto_remove(cdir, cfg)
        else:
            _record_end(cdir, exit_code=code, error=msg)
        return code

    try:
        cg = _open_cgroup(k, cfg)
    except (KernelError, OSError, ValueError) as err:
        return abort(f"cgroup: {err}")
    if why := injected("start.cgroup-made"):
        return abort(why)
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
    me_fd = os.pidfd_open(os.getpid())  # the init's way to see whether we still live
    try:
        pid, joined = _clone(k, nsset.clone_flags(), cg)
    except KernelError as err:
        os.close(me_fd)
        return abort(str(err), kind="clone")
    if pid == 0:
        os.close(go_w)
        os.close(err_r)
        say = narrator(rep) if cfg.narrate else None
        pid1.container_init(
            k, cfg, cdir, nsset, go_r, err_w, say, me_fd, outlive_shim=mon_path is not None
        )
    os.close(me_fd)
    os.close(go_r)
    os.close(err_w)
    try:
        failpoints.hit("start.forked")
        # Into the cgroup before it runs anything: memory it touches is charged there, and
        # its cgroup namespace (unshared next) is rooted there (cgroup_namespaces(7)).
        if cg is not None and not joined:
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
        failed = handshake.read_report(err_r)
        if failed is not None:
            return abort(failed.error, failed.code, failed.kind)
        if isinstance(err, PycontError):
            return abort(str(err))
        if isinstance(err, OSError):
            return abort(f"set up process {pid}: {err}")
        return abort(f"set up process {pid}: {err!r}")
    os.close(go_w)
    if why := injected("start.go-sent"):
        return abort(why)
    # A report, or EOF: at exec (err_w is close-on-exec) or at a death before it.
    failed = handshake.outcome(err_r, pid, "the container's init")
    if failed is not None:
        error = failed.error + (_oom_note(cg) if failed.kind == "died" else "")
        wait_code(pid)
        pid = 0
        return abort(error, failed.code, failed.kind)
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
        wait_code(pid)
        netsetup.stop(cdir, plumbing)
        if isinstance(err, FileNotFoundError):
            _close_cgroup(cg)
            # rm -f gave its leases back while we started; attach.join may have leased again
            # since: give those back too.
            netsetup.release(cfg.id, cfg.network)
        msg = str(err) if isinstance(err, InvalidState) else f"container {cfg.name} was removed"
        rep.send(protocol.Failed("state", 125, msg))
        return 125
    if why := injected("start.running-recorded"):
        return abort(why)
    for sig in FORWARDED:
        signal.signal(sig, lambda signum, _frame: forward(pid, signum))
    rep.send(protocol.Started(pid))
    if mon_path:
        mon.hand_over(mon_path, pid, cdir, rep.fd, lock_fd)  # returns only if exec failed
    code = wait_code(pid)
    # Record the end before the cgroup goes: whoever sees its files vanish (the sampler, at
    # ENODEV) then finds the exit, the OOM kill and the peak already in the record.
    oom, peak = _final_readings(cg)
    netsetup.stop(cdir, plumbing)
    _record_end(cdir, exit_code=code, oom_killed=oom, memory_peak=peak)
    _close_cgroup(cg)
    if cfg.auto_remove:
        _auto_remove(cdir, cfg)
    rep.send(protocol.Exited(code, oom))
    return code


def finish(cdir: str, status_fd: int, code: int) -> int:
    """pycont-mon's last step once the init it watched exited with ``code``: what :func:`run`
    does after its wait, in a fresh interpreter."""
    _own_root(cdir)
    rep = Reporter(status_fd)
    try:
        cfg = st.load_config(cdir)
    except (FileNotFoundError, NotADirectoryError):  # removed meanwhile (rm -f)
        rep.send(protocol.Exited(code, False))
        return code
    cg = None
    if cfg.cgroup:
        from pycont import cgroups

        cg = cgroups.for_container(cfg.id)
    oom, peak = _final_readings(cg)
    netsetup.stop(cdir, None)
    _record_end(cdir, exit_code=code, oom_killed=oom, memory_peak=peak)
    mon.clear_exit(cdir)
    _close_cgroup(cg)
    if cfg.auto_remove:
        _auto_remove(cdir, cfg)
    rep.send(protocol.Exited(code, oom))
    return code


set_comm = pid1.name_self


def dispatch(mode: str, args: list[str], status_fd: int) -> int:
    set_comm(f"pycont-{mode}")
    if mode == "run":
        return run(args[0], status_fd)
    if mode == "exec":
        from pycont.runtime.execshim import exec_in

        return exec_in(args[0], status_fd, args[1])
    if mode == "finish":
        return finish(args[0], status_fd, int(args[1]))
    raise ValueError(f"pycont shim: unknown mode {mode!r}")


def main(argv: list[str]) -> int:
    """``shim.py MODE DIR STATUS_FD [ARGS...]``, as launcher.launch spawns it."""
    return dispatch(argv[0], [argv[1], *argv[3:]], int(argv[2]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
