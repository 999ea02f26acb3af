"""``start``, ``state``, ``kill`` and ``delete``: the rest of runtime.md's operations.

The status is read from the kernel, not stored: created while the init waits on the fifo,
running once ``start`` has read it, stopped when the init's pid no longer names that process.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from typing import Any

from pycont import kernel as _kernel
from pycont.errors import InvalidState, KernelError, UsageError
from pycont.kernel import Kernel
from pycont.oci import bundle as bundle_mod
from pycont.oci import cgroup as cgroup_mod
from pycont.oci.hooks import run_hooks
from pycont.oci.state import State, StateDir
from pycont.procfs import running_start_time

__all__ = ["delete", "kill", "parse_signal", "pause", "resume", "start", "state"]


def state(root: str, cid: str) -> dict[str, Any]:
    sd = StateDir(root, cid)
    return sd.report(sd.load())


def start(root: str, cid: str) -> None:
    """Let the created init exec its command (runtime.md "Start")."""
    sd = StateDir(root, cid)
    st = sd.load()
    status = sd.status(st)
    if status != "created":
        raise InvalidState(f"cannot start container {cid}: it is {status}, not created")
    # fifo(7): a non-blocking open for reading succeeds at once; the init, blocked opening the
    # other end for writing, then writes its byte.
    fd = os.open(sd.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready and os.read(fd, 1):
                break
            if running_start_time(st.pid) != st.started_at:
                raise InvalidState(f"cannot start container {cid}: its init has exited")
    finally:
        os.close(fd)
    os.unlink(sd.fifo)
    run_hooks("poststart", bundle_mod.hooks_of(sd.config()).poststart, sd.report(st))


def pause(root: str, cid: str) -> None:
    """Freeze every process of the container (runc's ``pause``: the cgroup freezer)."""
    sd = StateDir(root, cid)
    st = sd.load()
    status = sd.status(st)
    cg = cgroup_mod.from_json(st.cgroup)
    if status != "running" or cg is None:
        raise InvalidState(f"cannot pause container {cid}: it is {status}")
    cg.freeze()


def resume(root: str, cid: str) -> None:
    sd = StateDir(root, cid)
    st = sd.load()
    status = sd.status(st)
    cg = cgroup_mod.from_json(st.cgroup)
    if status != "paused" or cg is None:
        raise InvalidState(f"cannot resume container {cid}: it is {status}, not paused")
    cg.thaw()


def parse_signal(text: str) -> int:
    """``TERM``, ``SIGTERM`` or ``15``, as runc accepts them."""
    if text.isdigit():
        return int(text)
    name = text.upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise UsageError(f"unknown signal {text!r}: a name like TERM or a number") from None


def kill(root: str, cid: str, sig: int = signal.SIGTERM, all_processes: bool = False) -> None:
    """Send ``sig`` to the init (runtime.md "Kill"); ``all_processes``: to its whole cgroup."""
    sd = StateDir(root, cid)
    st = sd.load()
    status = sd.status(st)
    if status not in ("created", "running", "paused"):
        raise InvalidState(f"cannot kill container {cid}: it is {status}")
    if all_processes:
        cg = cgroup_mod.from_json(st.cgroup)
        for pid in cg.pids() if cg is not None else [st.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        return
    try:
        os.kill(st.pid, sig)
    except ProcessLookupError as err:
        raise InvalidState(f"cannot kill container {cid}: it is stopped") from err


def delete(root: str, cid: str, force: bool = False, k: Kernel | None = None) -> None:
    """Remove what ``create`` made: the cgroup and the state directory (runtime.md "Delete")."""
    k = k if k is not None else _kernel.current()
    sd = StateDir(root, cid)
    try:
        st = sd.load()
    except Exception:
        if force and sd.exists():
            sd.remove()  # a create that died before writing its state
            return
        raise
    status = sd.status(st)
    if status != "stopped" and not force:
        raise InvalidState(f"cannot delete container {cid} that is not stopped: {status}")
    cg = cgroup_mod.from_json(st.cgroup, k)
    if status != "stopped":
        with contextlib.suppress(ProcessLookupError):
            os.kill(st.pid, signal.SIGKILL)
        if status == "paused" and cg is not None:
            cg.thaw()  # a frozen task takes its SIGKILL when it runs again
        _wait_gone(st)
    if cg is not None:
        if cg.exists():
            cg.kill_all()  # processes exec'd into it, or orphans left by the init's exit
        cg.destroy()
    hooks = bundle_mod.Hooks()
    with contextlib.suppress(OSError, ValueError, UsageError):
        hooks = bundle_mod.hooks_of(sd.config())
    doc = sd.report(st)
    sd.remove()
    run_hooks("poststop", hooks.poststop, doc)


def _wait_gone(st: State, timeout: float = 10.0) -> None:
    """Until the init has exited (a zombie counts: its parent, conmon, reaps it)."""
    deadline = time.monotonic() + timeout
    while running_start_time(st.pid) == st.started_at:
        if time.monotonic() > deadline:
            raise KernelError(f"wait for the init of {st.id} to exit", 110)
        time.sleep(0.01)
