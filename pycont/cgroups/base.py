"""What a container's cgroup can do, whatever the cgroup version: one interface, two drivers.

A cgroup is a folder in a special filesystem; its files are the knobs (``memory.max``) and the
meters (``memory.current``), and writing a pid to ``cgroup.procs`` puts that process under them.
v1 has one tree per controller, v2 one tree for all: :mod:`.v1` and :mod:`.v2` hide that here.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import errno
import json
import os
import re
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pycont.cgroups import units
from pycont.cgroups.units import DeviceRate
from pycont.errors import KernelError, UsageError

__all__ = ["PARENT", "Cgroup", "Limits", "Stats"]

# Every cgroup pycont makes lives under a folder of this name, so leaks are easy to find.
PARENT = "pycont"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}", re.ASCII)
Option = str | int | float | None


def _text(flag: str, value: Option) -> str | None:
    """The Python API passes ``cpus=0.5`` or ``memory=67108864``: read them as docker's strings."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise UsageError(f"invalid {flag} {value!r}: expected a string like docker's flag value")
    return value if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class Limits:
    """Resource limits as the kernel wants them; ``None`` (or ``()``) = not given: leave as is.

    ``memory_swap`` is docker's memory *plus* swap: -1 = unlimited swap, 0 = docker's default
    (as much swap as memory, where the kernel accounts swap). ``nano_cpus`` 0 = no CPU limit;
    ``pids_limit`` -1 = unlimited."""

    memory: int | None = None
    memory_swap: int | None = None
    memory_reservation: int | None = None
    nano_cpus: int | None = None
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None
    pids_limit: int | None = None
    device_read_bps: tuple[DeviceRate, ...] = ()
    device_write_bps: tuple[DeviceRate, ...] = ()
    blkio_weight: int | None = None

    @classmethod
    def from_options(
        cls,
        *,
        memory: Option = None,
        memory_swap: Option = None,
        memory_reservation: Option = None,
        cpus: Option = None,
        cpu_shares: Option = None,
        cpuset_cpus: Option = None,
        pids_limit: Option = None,
        device_read_bps: str | Sequence[str] | None = None,
        device_write_bps: str | Sequence[str] | None = None,
        blkio_weight: Option = None,
        update: bool = False,
        ncpu: int | None = None,
    ) -> Limits:
        """docker's flags (``memory="64m", cpus="0.5"``) to Limits, with docker's checks.

        ``update=True`` is ``docker update``: only what is given changes, and no defaults."""
        mem_t = _text("--memory", memory)
        swap_t = _text("--memory-swap", memory_swap)
        res_t = _text("--memory-reservation", memory_reservation)
        mem = units.parse_memory("--memory", mem_t) if mem_t is not None else None
        swap = units.parse_memory_swap(swap_t) if swap_t is not None else None
        res = units.parse_memory("--memory-reservation", res_t) if res_t is not None else None
        mem, res = mem or None, res or None  # 0 is docker's "not set"
        if not update:
            if swap is not None and swap > 0 and mem is None:
                raise UsageError(
                    f'invalid --memory-swap "{swap_t}": set --memory too '
                    "(You should always set the Memory limit when using Memoryswap limit)"
                )
            if swap is None and mem is not None:
                swap = 0  # docker: "as much swap as memory", resolved by the driver
        if swap == 0 and mem is None:
            swap = None  # --memory-swap 0 is docker's "unset"; without --memory nothing to do
        if swap is not None and swap > 0 and mem is not None and swap < mem:
            raise UsageError(
                f'invalid --memory-swap "{swap_t}": must be at least --memory "{mem_t}" '
                "(it is memory plus swap), or -1 for unlimited swap"
            )
        if res is not None and mem is not None and res > mem:
            raise UsageError(
                f'invalid --memory-reservation "{res_t}": must be at most --memory "{mem_t}" '
                "(a soft limit below the hard one)"
            )
        cpus_t, shares_t = _text("--cpus", cpus), _text("--cpu-shares", cpu_shares)
        cpuset_t, pids_t = _text("--cpuset-cpus", cpuset_cpus), _text("--pids-limit", pids_limit)
        weight_t = _text("--blkio-weight", blkio_weight)
        return cls(
            memory=mem,
            memory_swap=swap,
            memory_reservation=res,
            nano_cpus=units.parse_cpus(cpus_t, ncpu) if cpus_t is not None else None,
            cpu_shares=(units.parse_cpu_shares(shares_t) or None) if shares_t is not None else None,
            cpuset_cpus=units.parse_cpuset(cpuset_t, ncpu) if cpuset_t is not None else None,
            pids_limit=units.parse_pids_limit(pids_t) if pids_t is not None else None,
            device_read_bps=_rates("--device-read-bps", device_read_bps),
            device_write_bps=_rates("--device-write-bps", device_write_bps),
            blkio_weight=(units.parse_blkio_weight(weight_t) or None)
            if weight_t is not None
            else None,
        )

    def merged(self, newer: Limits) -> Limits:
        """These limits after ``docker update`` with ``newer``: what it gives wins."""
        changes = {
            f.name: getattr(newer, f.name)
            for f in dataclasses.fields(self)
            if getattr(newer, f.name) not in (None, ())
        }
        return dataclasses.replace(self, **changes)

    def is_empty(self) -> bool:
        return all(getattr(self, f.name) in (None, ()) for f in dataclasses.fields(self))

    def as_options(self) -> dict[str, Any]:
        """Back to docker's flag values (JSON-able): ``Limits.from_options(**l.as_options())``."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value in (None, ()):
                continue
            if f.name == "nano_cpus":
                out["cpus"] = units.format_cpus(value)
            elif f.name.startswith("device_"):
                out[f.name] = [f"{d.path}:{d.rate}" for d in value]
            else:
                out[f.name] = str(value)
        return out

    def describe(self) -> list[str]:
        """One short line per limit given, for people: ``memory 64MiB``, ``cpus 0.5``."""
        lines = []
        if self.memory is not None:
            lines.append(f"memory {units.format_bytes(self.memory)}")
        if self.memory_swap:
            swap = "unlimited" if self.memory_swap < 0 else units.format_bytes(self.memory_swap)
            lines.append(f"memory+swap {swap}")
        if self.memory_reservation is not None:
            lines.append(f"memory reservation {units.format_bytes(self.memory_reservation)}")
        if self.nano_cpus is not None:
            lines.append(f"cpus {units.format_cpus(self.nano_cpus) if self.nano_cpus else 'any'}")
        if self.cpu_shares is not None:
            lines.append(f"cpu shares {self.cpu_shares}")
        if self.cpuset_cpus is not None:
            lines.append(f"cpuset {self.cpuset_cpus}")
        if self.pids_limit is not None:
            lines.append(f"pids {'unlimited' if self.pids_limit < 0 else self.pids_limit}")
        for kind, rates in (("read", self.device_read_bps), ("write", self.device_write_bps)):
            lines += [f"{kind} {d.path} {units.format_bytes(d.rate)}/s" for d in rates]
        if self.blkio_weight is not None:
            lines.append(f"blkio weight {self.blkio_weight}")
        return lines


def _rates(flag: str, given: str | Sequence[str] | None) -> tuple[DeviceRate, ...]:
    items = [given] if isinstance(given, str) else list(given or ())
    return tuple(units.parse_device_rate(flag, item) for item in items)


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


# ---- the files: every read and write of cgroupfs goes through these -------------------------


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


def write_file(path: str, value: str) -> None:
    """One write(2) per value: cgroupfs acts on each write, and reports errors on it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as err:
        raise KernelError(f"write {json.dumps(value)} to", err.errno or errno.EIO, path) from err
    try:
        os.write(fd, value.encode("ascii"))
    except OSError as err:
        raise KernelError(f"write {json.dumps(value)} to", err.errno or errno.EIO, path) from err
    finally:
        os.close(fd)


def make_dir(path: str) -> None:
    """mkdir(2); an existing folder is fine (create() is idempotent)."""
    try:
        os.mkdir(path)
    except FileExistsError:
        pass
    except OSError as err:
        raise KernelError("mkdir", err.errno or errno.EIO, path) from err


def remove_dir(path: str, wait: float = 2.0) -> None:
    """rmdir(2) a cgroup; retry EBUSY for ``wait`` s (killed tasks take a moment to exit)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as err:
            if err.errno != errno.EBUSY or time.monotonic() > deadline:
                raise KernelError("rmdir", err.errno or errno.EIO, path) from err
        time.sleep(0.02)


def remove_parent(path: str) -> None:
    """Remove the shared ``pycont`` folder once the last container's cgroup is gone."""
    try:
        os.rmdir(path)
    except OSError as err:
        # Another container still has its cgroup in there (EBUSY; ENOTEMPTY on a plain fs).
        if err.errno not in (errno.ENOENT, errno.EBUSY, errno.ENOTEMPTY):
            raise KernelError("rmdir", err.errno or errno.EIO, path) from err


class Cgroup(abc.ABC):
    """One container's cgroup. Create it, apply limits, add processes, read stats, destroy it."""

    version: ClassVar[str]
    FILES: ClassVar[dict[str, str]]

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise UsageError(
                f"invalid cgroup name {json.dumps(str(name))}: expected letters, digits, "
                "'_', '.' or '-' (a container's name or id)"
            )
        self.name = name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} at {self.path}>"

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
    def freeze(self, timeout: float = 5.0) -> None:
        """Stop every process inside (they cannot fork, run or exit) until thaw()."""

    @abc.abstractmethod
    def thaw(self) -> None: ...

    @abc.abstractmethod
    def frozen(self) -> bool: ...

    @abc.abstractmethod
    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer has killed a process of this cgroup."""

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
