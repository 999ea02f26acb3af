"""The start handshake: did the container's process exec its command, or die before it could?

Until execve(2) the process reports any failure to the shim as a protocol.Failed over a
close-on-exec pipe (:mod:`.pid1`). The pipe's EOF without a report means it exec'd, *or* that it
died without a word: killed (SIGKILL, the OOM killer) before exec. The shim tells them apart
here, from the kernel's view of its still unreaped child, and only then reports ``Started``.
"""

from __future__ import annotations

import contextlib
import os
import signal

from pycont.errors import PycontError
from pycont.runtime import pid1, protocol

# include/linux/sched.h: set as soon as do_exit() begins, before the process's files close.
PF_EXITING = 0x00000004


def read_report(err_r: int) -> protocol.Failed | None:
    """Read the error pipe to EOF (closing it): the Failed the process sent, if any."""
    chunks = []
    while chunk := os.read(err_r, 65536):
        chunks.append(chunk)
    os.close(err_r)
    if not chunks:
        return None
    failed = protocol.decode(b"".join(chunks))
    if not isinstance(failed, protocol.Failed):
        raise PycontError(f"pycont shim protocol: expected a failure report, got {failed!r}")
    return failed


def _read(name: str, proc: int | None) -> str:
    """``/proc/<name>``, or ``<name>`` relative to ``proc``, an fd of the host's /proc."""
    fd = os.open(name if proc is not None else f"/proc/{name}", os.O_RDONLY, dir_fd=proc)
    with open(fd) as f:
        return f.read()


def died_before_exec(pid: int, proc: int | None = None) -> str:
    """After EOF on the error pipe with no report: why ``pid`` (our child) died before exec,
    or "" if it exec'd.

    execve(2) closes the pipe only past its point of no return; any other close is do_exit().
    So a child neither exiting (PF_EXITING, /proc/<pid>/stat field 9) nor a zombie has exec'd.
    One that is exiting is waited for without being reaped (waitid(2) WNOWAIT), so its name
    stays readable: execve sets it to the command's (proc(5): comm), and a child still called
    pid1.PRE_EXEC_NAME never ran its command. ``proc``: an fd of the host's /proc, for a caller
    that has joined a container's mount namespace (its /proc has other pids)."""
    try:
        # proc(5): fields after the name in parentheses; [0] is field 3 (state), [6] field 9
        fields = _read(f"{pid}/stat", proc).rsplit(")", 1)[1].split()
        if fields[0] not in ("Z", "X") and not int(fields[6]) & PF_EXITING:
            return ""
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        if info is None or _read(f"{pid}/comm", proc).rstrip("\n") != pid1.PRE_EXEC_NAME:
            return ""
    except (OSError, IndexError, ValueError):
        return ""  # no view of it (not our child any more): the exit code will tell
    if info.si_code == os.CLD_EXITED:
        return f"exited with code {info.si_status}"
    with contextlib.suppress(ValueError):
        return f"was killed by {signal.Signals(info.si_status).name}"
    return f"was killed by signal {info.si_status}"


def outcome(err_r: int, pid: int, what: str, proc: int | None = None) -> protocol.Failed | None:
    """The end of the handshake: None when ``pid`` exec'd its command; else why not, as a
    Failed (docker's 127/126 for a command not found or not executable, 125 otherwise).
    ``what``: the process, for the message ("the container's init"); ``proc`` as for
    :func:`died_before_exec`."""
    failed = read_report(err_r)
    if failed is not None:
        return failed
    how = died_before_exec(pid, proc)
    if not how:
        return None
    return protocol.Failed("died", 125, f"{what} {how} before it could exec its command")
