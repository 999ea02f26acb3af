"""Whether a container's shim still lives, told by a lock it holds for its whole life.

A created container has no shim on record (its pid is written with "running"), so a start under
way cannot be told from one whose shim was killed half-way by a pid. A lock can: the shim holds
``<container>/shim.lock`` (flock(2)) from its first step, and the kernel lets go of it when the
shim dies, SIGKILL included. A created container whose lock is free and whose cgroup still has
processes is an orphan: its init exec'd a set-user-ID program, which clears PR_SET_PDEATHSIG
(prctl(2)), and the shim died before it recorded the start. :func:`reap` kills those.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time

from pycont.errors import InvalidState, KernelError, PycontError

NAME = "shim.lock"


def hold(cdir: str) -> int:
    """Take the lock (shared: never waits for anyone) and return its descriptor, kept open
    until the shim exits. Close-on-exec; the container's init closes it before exec too."""
    fd = os.open(os.path.join(cdir, NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def shim_alive(cdir: str) -> bool:
    """Whether a shim (or its init, until exec) holds the lock."""
    try:
        fd = os.open(os.path.join(cdir, NAME), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False  # never started
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the lock if we got it
    return False


def reap(cdir: str) -> bool:
    """Kill the processes of a created container whose shim is gone (through its cgroup:
    a fork bomb cannot outrun it) and record it exited; True if it had any."""
    from pycont import cgroups
    from pycont.runtime import state as st

    if shim_alive(cdir):
        return False
    try:
        cfg = st.load_config(cdir)
        if not cfg.cgroup:
            return False
        cg = cgroups.for_container(cfg.id)
        if not cg.exists() or not cg.pids():
            return False
        cg.kill_all()
    except (KernelError, OSError, ValueError):
        return False
    with contextlib.suppress(InvalidState, FileNotFoundError):
        st.transition(
            cdir,
            st.Status.EXITED,
            exit_code=137,
            finished_at=time.time(),
            error="the pycont shim died before it recorded the start; its processes were killed",
        )
    return True


def undo_start(cdir: str) -> None:
    """The shim died before it told its caller the container started: a detached init outlives
    its monitor (:mod:`.mon`), but a start its caller was told failed must not run on. Killed
    through its cgroup; the next reader records it exited (state.reconcile). Still created on
    record: the shim died after its "go", and the init may have cleared PR_SET_PDEATHSIG
    (pid1.container_init) before it: killed too, and the container stays created."""
    from pycont import cgroups
    from pycont.runtime import state as st

    try:
        rec = st.load_state(cdir)  # not reconcile: that would adopt it
        if rec.status not in (st.Status.CREATED, st.Status.RUNNING, st.Status.PAUSED):
            return
        cfg = st.load_config(cdir)
        if cfg.cgroup:
            cg = cgroups.for_container(cfg.id)
            if cg.exists():
                cg.kill_all()
        elif rec.pid and rec.status is not st.Status.CREATED:
            os.kill(rec.pid, signal.SIGKILL)
    except (KernelError, OSError, ValueError, PycontError):
        return
