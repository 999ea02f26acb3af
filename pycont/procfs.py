"""Reading processes out of /proc (proc(5)), in one place.

``/proc/<pid>/stat`` is one line whose second field, the command name in parentheses, may hold
spaces and parentheses itself: every field after it is found by splitting after the last ')'.
"""

from __future__ import annotations

import contextlib
import os


def stat_fields(pid: int) -> list[str]:
    """Fields 3.. of /proc/<pid>/stat (state, ppid, ...): index 0 is field 3 of proc(5)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def state(pid: int) -> str:
    """The one-letter state (R, S, D, Z, X...), or "" when there is no such process."""
    try:
        return stat_fields(pid)[0]
    except (OSError, IndexError):
        return ""


def ppid(pid: int) -> int:
    """Field 4 of /proc/<pid>/stat: the parent's pid."""
    return int(stat_fields(pid)[1])


def start_time(pid: int) -> int:
    """Field 22 of /proc/<pid>/stat, in clock ticks since boot: with the pid, it names one
    process for good (pids are reused). 0 when there is no such process."""
    try:
        return int(stat_fields(pid)[19])
    except (OSError, IndexError, ValueError):
        return 0


def running_start_time(pid: int) -> int:
    """:func:`start_time`, but 0 for a zombie too: it has exited, it only waits to be reaped."""
    try:
        fields = stat_fields(pid)
    except OSError:
        return 0
    if fields[0] in ("Z", "X"):
        return 0
    return int(fields[19])


def alive(pid: int, start: int) -> bool:
    """The process that had this pid and start time still runs (a zombie does not count)."""
    return pid > 0 and running_start_time(pid) == start


def wait_gone(pid: int, timeout: float | None) -> bool:
    """Wait up to ``timeout`` s for process ``pid``, which need not be our child, to end: a
    pidfd is readable once it has (pidfd_open(2)). True if it ended (or was gone already)."""
    from pycont.fsutil import wait_readable

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return wait_readable(fd, timeout)
    finally:
        os.close(fd)


def gone(pid: int, start: int) -> bool:
    """No process has this pid and start time any more, not even a zombie."""
    return start_time(pid) != start


def cmdline(pid: int) -> str:
    """The arguments, joined by spaces (each is NUL-terminated in /proc/<pid>/cmdline)."""
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")


def pids() -> list[int]:
    """Every process the caller's PID namespace shows."""
    return [int(e) for e in os.listdir("/proc") if e.isdigit()]


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets process ``pid`` holds open (its fds read ``socket:[N]``)."""
    found = set()
    with contextlib.suppress(FileNotFoundError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    found.add(int(link[8:-1]))
    return found


def tcp_listeners() -> dict[int, set[int]]:
    """Listening TCP sockets of this network namespace: port -> their inodes (IPv4 and IPv6).

    proc(5), /proc/net/tcp: ``local_address`` is ADDR:PORT in hex, ``st`` 0A is LISTEN, and
    the tenth field is the socket's inode, which ties it to the process holding it."""
    found: dict[int, set[int]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == "0A":
                    port = int(fields[1].rsplit(":", 1)[1], 16)
                    found.setdefault(port, set()).add(int(fields[9]))
    return found


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process ``pid`` listens on."""
    mine = socket_inodes(pid)
    return {port for port, inodes in tcp_listeners().items() if inodes & mine}
