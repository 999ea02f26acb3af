"""What a container's cgroup can do, whatever the cgroup version: one interface, two drivers.

A cgroup is a folder in a special filesystem; its files are the knobs (``memory.max``) and the
meters (``memory.current``), and writing a pid to ``cgroup.procs`` puts that process under them.
v1 has one tree per controller, v2 one tree for all: :mod:`.v1` and :mod:`.v2` hide that here.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import json
import os
import re
import signal
import time
from dataclasses import dataclass, field
from typing import ClassVar

from pycont import kernel as _kernel
from pycont.cgroups.limits import Limits
from pycont.cgroups.reader import Reader
from pycont.errors import KernelError, UsageError
from pycont.kernel import Kernel

__all__ = ["PARENT", "Cgroup", "Limits", "Stats"]

# Every cgroup pycont makes lives under a folder of this name, so leaks are easy to find.
PARENT = "pycont"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}", re.ASCII)


@dataclass(frozen=True)
class Stats:
    """One reading of a cgroup's meters; ``None`` = this kernel or driver does not show it.

    Times in nanoseconds, sizes in bytes; ``memory_limit``/``pids_limit`` None = unlimited."""

    timestamp: float
    cpu_usage_ns: int | None = None
    cpu_nr_periods: int | None = None
    cpu_nr_throttled: int | None = None
    cpu_throttled_ns: int | None = None
    memory_current: int | None = None
    memory_peak: int | None = None
    memory_limit: int | None = None
    swap_current: int | None = None
    oom_events: int | None = None
    oom_kills: int | None = None
    pids_current: int | None = None
    pids_limit: int | None = None
    io_read_bytes: int | None = None
    io_write_bytes: int | None = None
    memory_limit_hits: int | None = None  # times usage hit the limit (v1 failcnt, v2 max)
    version: str = field(default="", compare=False)

    def cpu_percent(self, previous: Stats) -> float | None:
        """CPU use between two readings, in % of one CPU (docker stats shows 50% for 0.5)."""
        if self.cpu_usage_ns is None or previous.cpu_usage_ns is None:
            return None
        elapsed = self.timestamp - previous.timestamp
        if elapsed <= 0:
            return None
        return 100.0 * (self.cpu_usage_ns - previous.cpu_usage_ns) / (elapsed * 1e9)


# ---- reading the files: reads change nothing, so they are plain file reads -------------------


def read_file(path: str) -> str:
    try:
        with open(path, encoding="ascii") as f:
            return f.read()
    except OSError as err:
        raise KernelError("read", err.errno or errno.EIO, path) from err


def read_int(path: str) -> int | None:
    """An integer file; "max" (v2's unlimited) is None."""
    text = read_file(path).strip()
    return None if text == "max" else int(text)


def read_keyed(path: str) -> dict[str, int]:
    """Flat keyed files (cgroups v2 doc, "Format"): ``key value`` per line (cpu.stat...)."""
    out = {}
    for line in read_file(path).splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            out[key] = int(value)
    return out


class Cgroup(abc.ABC):
    """One container's cgroup. Create it, apply limits, add processes, read stats, destroy it."""

    version: ClassVar[str]
    FILES: ClassVar[dict[str, str]]

    def __init__(self, name: str, kernel: Kernel | None = None) -> None:
        """``kernel``: the seam every mkdir, write and rmdir of cgroupfs goes through (a
        recording or narrating one shows them); default: the one in use, the real one."""
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise UsageError(
                f"invalid cgroup name {json.dumps(str(name))}: expected letters, digits, "
                "'_', '.' or '-' (a container's name or id)"
            )
        self.name = name
        self.kernel: Kernel = kernel if kernel is not None else _kernel.current()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} at {self.path}>"

    # ---- changing cgroupfs: always through the kernel seam ------------------------------------

    def _write(self, path: str, value: str) -> None:
        """One write(2) per value: cgroupfs acts on each write, and reports errors on it."""
        self.kernel.write_file(path, value)

    def _mkdir(self, path: str) -> None:
        """mkdir(2) a cgroup: the kernel fills the new folder with its control files."""
        self.kernel.mkdir(path, 0o755)

    def _rmdir(self, path: str, wait: float = 2.0) -> None:
        """rmdir(2) a cgroup; retry EBUSY for ``wait`` s (killed tasks take a moment to exit)."""
        deadline = time.monotonic() + wait
        while True:
            try:
                self.kernel.rmdir(path)
                return
            except KernelError as err:
                if err.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise
            time.sleep(0.02)

    def _rmdir_parent(self, path: str) -> None:
        """Remove the shared ``pycont`` folder once the last container's cgroup is gone."""
        try:
            self.kernel.rmdir(path)
        except KernelError as err:
            # Another container still has its cgroup in there (EBUSY; ENOTEMPTY on a plain fs).
            if err.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                raise

    @property
    @abc.abstractmethod
    def path(self) -> str:
        """The main folder (v2: the only one; v1: the memory controller's)."""

    @abc.abstractmethod
    def create(self) -> None:
        """Make the folder(s); idempotent. Call before the container's first process starts."""

    @abc.abstractmethod
    def apply(self, limits: Limits) -> None:
        """Write the limits given; fields that are None stay as they are (``docker update``)."""

    @abc.abstractmethod
    def add_pid(self, pid: int) -> None:
        """Move a process (all its threads) in; its future children are born inside."""

    @abc.abstractmethod
    def pids(self) -> list[int]:
        """The processes inside now (cgroup.procs), sorted."""

    @abc.abstractmethod
    def stats(self) -> Stats: ...

    @abc.abstractmethod
    def reader(self) -> Reader:
        """The meter files opened once, for reading many times a second (a sampler)."""

    @abc.abstractmethod
    def freeze(self, timeout: float = 5.0) -> None:
        """Stop every process inside (they cannot fork, run or exit) until thaw()."""

    @abc.abstractmethod
    def thaw(self) -> None: ...

    @abc.abstractmethod
    def frozen(self) -> bool: ...

    @abc.abstractmethod
    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer has killed a process of this cgroup."""

    def memory_peak(self) -> int | None:
        """The kernel's memory high-water mark, alone: what a container's end records (one
        file, where :meth:`stats` reads a dozen)."""
        return self.stats().memory_peak

    @abc.abstractmethod
    def destroy(self) -> None:
        """Remove the folder(s); idempotent. The cgroup must hold no process: see kill_all()."""

    @abc.abstractmethod
    def paths(self) -> dict[str, str]:
        """Folder by controller (v1) or ``{"unified": folder}`` (v2), for display."""

    def files(self) -> dict[str, str]:
        """The kernel file behind each limit and stat, e.g. memory -> memory.max (course use)."""
        return dict(self.FILES)

    def exists(self) -> bool:
        """Whether any of its folders is there (v1: in any controller), even half made."""
        return os.path.isdir(self.path)

    def kill_all(self, timeout: float = 10.0) -> None:
        """SIGKILL every process inside and wait until none is left.

        A fork bomb forks faster than one can kill pid by pid, so: freeze (no process can
        fork any more), SIGKILL every pid, thaw (the signals are delivered), repeat."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            if not pids:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise KernelError(
                    "kill every process in",
                    errno.ETIMEDOUT,
                    self.path,
                    f"{len(pids)} still running after {timeout:g} s, e.g. {pids[:5]}",
                )
            # Without a freezer (or if freezing timed out) the kill still runs: pids.max bounds
            # a fork bomb, so repeated rounds catch up with it.
            with contextlib.suppress(KernelError):
                self.freeze(timeout=min(1.0, left))
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(KernelError):
                self.thaw()  # SIGKILL is delivered when the task runs again
            time.sleep(0.01)
