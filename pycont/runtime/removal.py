"""Removing a container, and whatever a crash left of one: every kernel object is found again.

docker rm's order: kill the processes, take the folder out of the namespace (renamed aside, see
:mod:`.staging`: the name is free, listing no longer shows it), release the kernel objects,
delete the folder. Each object is found from the record *and* by a scan by id, so that a record
cut short by a SIGKILL hides nothing:

- cgroups: ``<controller>/pycont/<id>`` under every v1 controller (a shim killed while making
  them leaves cpu and cpuset without memory), or the one v2 folder; what runs inside is killed;
- helper processes: the recorded shim, and any ``pycont-run``/``pycont-exec`` holding a file of
  the folder open or naming it in its arguments;
- mounts: any under the folder in /proc/self/mountinfo (umount2(2) with MNT_DETACH);
- network: its leases, and veths named after the id (``pcv<id[:10]><n>``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import Protocol

from pycont import failpoints, paths, procfs
from pycont.errors import ContainerNotFound, InvalidState, PycontError
from pycont.runtime import mon, netsetup, staging
from pycont.runtime import state as st
from pycont.runtime.launcher import ShimHandle
from pycont.runtime.resources import LIVE

__all__ = ["reap", "release", "remove"]

# /proc/PID/comm of the helpers (pycont.runtime.shim.set_comm): the shim and exec's helper,
# a detached container's monitor and its finish step (pycont.runtime.mon).
HELPER_COMMS = ("pycont-run", "pycont-exec", "pycont-mon", "pycont-finish")


class Removable(Protocol):
    """What :func:`remove` needs of a container (pycont.runtime.Container has it)."""

    id: str
    dir: str

    @property
    def short_id(self) -> str: ...

    @property
    def shim(self) -> ShimHandle | None: ...

    def state(self) -> st.ContainerState: ...


def remove(c: Removable, force: bool) -> None:
    """``rm`` (``force``: ``rm -f``) of container ``c``: see the module's docstring."""
    reap()  # and what crashes left, as any command that meets it does
    with st.store_lock():
        if not (st.is_container_entry(c.id) and os.path.lexists(c.dir)):
            return  # removed already (by another rm, or by --rm as it exited)
        try:
            rec = c.state()  # dead when its record cannot be read: removable all the same
        except ContainerNotFound:
            return
        cfg = _config(c.dir)
        who = cfg.name if cfg is not None else c.short_id
        if not rec.status.can_remove(force):
            raise InvalidState(
                f"cannot remove container {who}: it is {rec.status}; "
                "stop it first or use force (rm -f)"
            )
        if rec.status is st.Status.DEAD and not force and _still_runs(c.id, c.dir):
            raise InvalidState(
                f"cannot remove container {who}: its record cannot be read ({rec.error}) "
                "but its processes run; use force (rm -f)"
            )
        if rec.status in LIVE:
            # Freeze, kill every process, thaw: a fork bomb cannot outrun it.
            kill_cgroup(c.id)
            with contextlib.suppress(ProcessLookupError):
                os.kill(rec.pid, signal.SIGKILL)
            # Wait for the shim: it records the exit, and the mounts go with the namespace.
            if c.shim is not None:
                with contextlib.suppress(TimeoutError):  # release() kills what is left
                    c.shim.wait(30)
            else:
                _wait_gone(rec.shim_pid, rec.shim_start, 30)
        else:
            # An exited container's shim may still be closing its cgroup: killing it now
            # would turn the exit code its caller waits for into 137.
            _wait_gone(rec.shim_pid, rec.shim_start, 30)
        # If its shim was killed, its PID 1 died with it (PR_SET_PDEATHSIG) but stays a
        # zombie until the host's init reaps it. Give that a moment.
        _wait_gone(rec.pid, rec.pid_start, 5, zombie=True)
        failpoints.hit("rm.killed")
        try:
            moved = staging.begin_remove(c.dir)
        except FileNotFoundError:
            return  # --rm removed it as it exited
        try:
            failpoints.hit("rm.renamed")
            release(c.id, moved, cfg, rec, steps=True)
        finally:
            # Even after an error: the name is free already, and what is left of the kernel
            # objects is found by id, without the folder (a live owner's leftover would
            # wait for this process to end before a listing took it).
            staging.finish(moved)


def _still_runs(cid: str, cdir: str) -> bool:
    """Whether a container's shim or processes live on, whatever its record says."""
    from pycont import cgroups
    from pycont.runtime import shimlock

    if shimlock.shim_alive(cdir):
        return True
    try:
        cg = cgroups.for_container(cid)
        return cg.exists() and bool(cg.pids())
    except (PycontError, OSError):
        return False


def _wait_gone(pid: int, start: int, timeout: float, zombie: bool = False) -> None:
    """Poll until the process (pid and start time) has ended; ``zombie``: until it is reaped
    too. Not our child, so no waitpid(2); gives up quietly after ``timeout`` s."""
    if not (pid and start):
        return
    deadline = time.monotonic() + timeout
    ended = procfs.gone if zombie else (lambda p, s: not procfs.alive(p, s))
    while not ended(pid, start) and time.monotonic() < deadline:
        time.sleep(0.02)


def reap(block: bool = False) -> list[str]:
    """Finish the folders half made or half removed whose owner is dead (release their kernel
    objects, delete them); returns their ids. ``block``: wait for the store lock (prune);
    otherwise (a listing) do nothing while a creation or removal holds it."""
    if not staging.leftovers():
        return []
    done = []
    with contextlib.ExitStack() as stack:
        if block:
            stack.enter_context(st.store_lock())
        elif not stack.enter_context(st.try_store_lock()):
            return []
        for left in staging.leftovers():  # again, now that no creation or removal runs
            if left.in_progress():
                continue
            try:
                release(left.cid, left.path, _config(left.path), _state(left.path))
                staging.finish(left.path)
            except (OSError, PycontError):
                if block:
                    raise
                continue  # a listing goes on; prune will retry and say why
            done.append(left.cid)
        staging.drop_empty_asides()
    return done


def release(
    cid: str,
    folder: str,
    cfg: st.ContainerConfig | None,
    rec: st.ContainerState | None = None,
    *,
    steps: bool = False,
) -> None:
    """Release every kernel object of container ``cid``, whose folder is now ``folder``.
    ``cfg``/``rec``: its record where it could be read. ``steps``: mark rm's failpoints."""
    kill_helpers(cid, folder, rec)
    kill_cgroup(cid, destroy=True)
    if steps:
        failpoints.hit("rm.cgroups-removed")
    unmount(cid)
    if steps:
        failpoints.hit("rm.mounts-removed")
    with contextlib.suppress(PycontError, OSError):
        netsetup.release(cid, cfg.network if cfg is not None else None)
    if cfg is None:
        delete_veths(cid)


def kill_cgroup(cid: str, destroy: bool = False) -> None:
    """SIGKILL whatever runs in the container's cgroup, in every controller's folder;
    ``destroy`` then removes the folders (v1: all of them, not the memory one only)."""
    from pycont import cgroups

    with contextlib.suppress(PycontError, OSError):
        cg = cgroups.for_container(cid)
        if not cg.exists():
            return
        cg.kill_all()
        if destroy:
            cg.destroy()


def kill_helpers(cid: str, folder: str, rec: st.ContainerState | None) -> None:
    """SIGKILL the recorded shim if it still runs, and any pycont helper working on ``cid``."""
    if rec is not None and rec.shim_start and procfs.alive(rec.shim_pid, rec.shim_start):
        with contextlib.suppress(ProcessLookupError):
            os.kill(rec.shim_pid, signal.SIGKILL)
    me = os.getpid()
    for pid in procfs.pids():
        if pid != me and _works_on(pid, cid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _works_on(pid: int, cid: str) -> bool:
    """A pycont helper (by its comm) that names the container's folder in its arguments (a
    spawned shim) or holds one of its files open (a forked shim's log, its lock)."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            comm = f.read().strip()
        args = procfs.cmdline(pid)
        # (the finish step pycont-mon execs is named after the interpreter until it runs)
        if comm not in HELPER_COMMS and f"{mon.SHIM} finish " not in args:
            return False
        if _names(args, cid):
            return True
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if _names(os.readlink(f"/proc/{pid}/fd/{fd}"), cid):
                    return True
    except OSError:
        return False
    return False


def _names(text: str, cid: str) -> bool:
    """Whether ``text`` (arguments, a path) names the container's folder or a path in it,
    wherever the folder is now: in place, or aside in ``.creating``/``.removing``."""
    base = paths.containers_dir()
    for where in ((), (staging.CREATING,), (staging.REMOVING,)):
        folder = os.path.join(base, *where, cid)
        at = text.find(folder)
        while at >= 0:
            after = text[at + len(folder) : at + len(folder) + 1]
            if after in ("", "/", " ", "\0"):
                return True
            at = text.find(folder, at + 1)
    return False


def unmount(cid: str) -> None:
    """Detach every mount under the container's folder (deepest first) that this mount
    namespace still shows: the container's own die with its namespace, these would not."""
    from pycont.kernel import MNT_DETACH, current

    points = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 4:
                point = _unescape(fields[4])
                if _names(point, cid):
                    points.append(point)
    for point in sorted(points, key=len, reverse=True):
        with contextlib.suppress(PycontError, OSError):
            current().umount2(point, MNT_DETACH)


def _unescape(field: str) -> str:
    """proc_pid_mountinfo(5) escapes space, tab, newline and backslash as octal (\\040)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def delete_veths(cid: str) -> None:
    """The host ends of the container's veths, found by name when its config is lost."""
    from pycont.net.attach import veth_name

    prefix = veth_name(cid, 0)[:-1]
    try:
        devices = [d for d in os.listdir("/sys/class/net") if d.startswith(prefix)]
    except OSError:
        return
    if not devices:
        return
    from pycont.net import netlink

    with contextlib.suppress(PycontError, OSError), netlink.host() as ipr:
        for dev in devices:
            netlink.delete_link(ipr, dev)


def _config(folder: str) -> st.ContainerConfig | None:
    try:
        return st.load_config(folder)
    except st.UNREADABLE:
        return None


def _state(folder: str) -> st.ContainerState | None:
    try:
        return st.load_state(folder)
    except st.UNREADABLE:
        return None
