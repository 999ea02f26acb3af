"""cgroup v2: one tree for every controller, so a container has exactly one folder.

``/sys/fs/cgroup/pycont/<name>``. A parent hands controllers down to its children through
``cgroup.subtree_control``, and (the "no internal processes" rule) a cgroup that enables
controllers for its children may hold no process itself (Documentation/admin-guide/cgroup-v2.rst).
"""

from __future__ import annotations

import errno
import os
import time

from pycont.cgroups import units
from pycont.cgroups.base import (
    PARENT,
    Cgroup,
    Limits,
    Stats,
    read_file,
    read_int,
    read_keyed,
)
from pycont.cgroups.reader import Reader, Reading, Slow
from pycont.errors import KernelError, Unsupported, UsageError
from pycont.kernel import Kernel
from pycont.kernel import mounts as probe

__all__ = ["CONTROLLERS", "V2Cgroup", "V2Reader", "mount_from_system"]

# Enabled for pycont's subtree when the parent offers them (cgroup.controllers).
CONTROLLERS = ("cpu", "cpuset", "io", "memory", "pids")


def mount_from_system() -> str | None:
    """Where the cgroup2 filesystem is mounted (/sys/fs/cgroup on a v2 system), if anywhere."""
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        layout = probe.cgroup_layout(f.read())
    return layout.v2.mount_point if layout.v2 is not None else None


class V2Cgroup(Cgroup):
    """A container's folder in the unified hierarchy: ``<root>/pycont/<name>``."""

    version = "v2"
    FILES = {
        "memory": "memory.max",
        "memory_swap": "memory.swap.max (swap only: docker's value minus memory)",
        "memory_reservation": "memory.low",
        "nano_cpus": "cpu.max (quota period)",
        "cpu_shares": "cpu.weight (from shares: 1 + (shares - 2) * 9999 / 262142)",
        "cpuset_cpus": "cpuset.cpus",
        "pids_limit": "pids.max",
        "device_read_bps": "io.max rbps=",
        "device_write_bps": "io.max wbps=",
        "blkio_weight": "io.bfq.weight (or io.weight)",
        "procs": "cgroup.procs",
        "freeze": "cgroup.freeze (state in cgroup.events frozen)",
        "kill": "cgroup.kill",
        "cpu_usage_ns": "cpu.stat usage_usec",
        "cpu_nr_periods": "cpu.stat nr_periods",
        "cpu_nr_throttled": "cpu.stat nr_throttled",
        "cpu_throttled_ns": "cpu.stat throttled_usec",
        "memory_current": "memory.current",
        "memory_peak": "memory.peak (Linux >= 5.19; else the highest memory.current seen)",
        "memory_limit_hits": "memory.events max",
        "swap_current": "memory.swap.current",
        "oom_events": "memory.events oom",
        "oom_kills": "memory.events oom_kill",
        "pids_current": "pids.current",
        "io_read_bytes": "io.stat rbytes",
        "io_write_bytes": "io.stat wbytes",
    }

    def __init__(self, name: str, root: str | None = None, kernel: Kernel | None = None) -> None:
        """``root``: the cgroup2 mount (tests use a fake tree in tmp); default: this machine's.
        ``kernel``: the seam for mkdir/write/rmdir (see :class:`Cgroup`)."""
        super().__init__(name, kernel)
        self.root = root if root is not None else (mount_from_system() or "/sys/fs/cgroup")
        self.parent = os.path.join(self.root, PARENT)
        self.dir = os.path.join(self.parent, name)
        self._peak = 0  # memory.peak where the kernel has none: the highest reading seen

    @property
    def path(self) -> str:
        return self.dir

    def paths(self) -> dict[str, str]:
        return {"unified": self.dir}

    def _f(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def _need(self, name: str, what: str) -> str:
        path = self._f(name)
        if not os.path.exists(path):
            ctrl = name.split(".")[0]  # memory.max comes with the memory controller...
            raise Unsupported(
                f"set {what}: no {name} in",
                errno.ENOENT,
                self.dir,
                f"the {ctrl} controller is not enabled here: see cgroup.subtree_control of "
                f"{self.parent}, and cgroup.controllers of {self.root}",
            )
        return path

    # ---- lifecycle ----------------------------------------------------------------------------

    def create(self) -> None:
        for attempt in range(3):
            try:
                self._mkdir(self.parent)
                self._enable(self.root)
                self._enable(self.parent)  # pycont/ holds no process, only the containers
                self._mkdir(self.dir)
                return
            except KernelError as err:
                # Another container's destroy() removed the shared pycont folder in between.
                if err.errno != errno.ENOENT or attempt == 2:
                    raise

    def _enable(self, path: str) -> None:
        """Hand our controllers down to the children of ``path`` (those it has to give)."""
        offered = read_file(os.path.join(path, "cgroup.controllers")).split()
        enabled = read_file(os.path.join(path, "cgroup.subtree_control")).split()
        control = os.path.join(path, "cgroup.subtree_control")
        for ctrl in CONTROLLERS:
            if ctrl in offered and ctrl not in enabled:
                try:
                    self._write(control, f"+{ctrl}")
                except KernelError as err:
                    if err.errno != errno.EBUSY:
                        raise
                    raise KernelError(
                        f'write "+{ctrl}" to',
                        err.errno,
                        control,
                        f"no internal processes rule: {path} holds processes itself, so it "
                        "cannot hand controllers to child cgroups (cgroups(7))",
                    ) from err

    def destroy(self) -> None:
        self._rmdir(self.dir)
        self._rmdir_parent(self.parent)

    def add_pid(self, pid: int) -> None:
        self._write(self._f("cgroup.procs"), str(pid))

    def pids(self) -> list[int]:
        try:
            return sorted(int(p) for p in read_file(self._f("cgroup.procs")).split())
        except KernelError as err:
            if err.errno == errno.ENOENT:
                return []
            raise

    # ---- limits -------------------------------------------------------------------------------

    def apply(self, limits: Limits) -> None:
        self._check(limits)  # refuse before writing anything, so no limit is half applied
        if limits.memory is not None or limits.memory_swap is not None:
            self._set_memory(limits.memory, limits.memory_swap)
        if limits.memory_reservation is not None:
            path = self._need("memory.low", "--memory-reservation")
            self._write(path, str(limits.memory_reservation))
        if limits.nano_cpus is not None:
            quota = units.cpus_to_quota(limits.nano_cpus)
            value = f"{quota if quota > 0 else 'max'} {units.CPU_PERIOD_US}"
            self._write(self._need("cpu.max", "--cpus"), value)
        if limits.cpu_shares is not None:
            weight = units.shares_to_weight(limits.cpu_shares)
            self._write(self._need("cpu.weight", "--cpu-shares"), str(weight))
        if limits.cpuset_cpus is not None:
            self._write(self._need("cpuset.cpus", "--cpuset-cpus"), limits.cpuset_cpus)
        if limits.pids_limit is not None:
            value = "max" if limits.pids_limit < 0 else str(limits.pids_limit)
            self._write(self._need("pids.max", "--pids-limit"), value)
        for line in _io_max_lines(limits):
            self._write(self._need("io.max", "--device-read-bps/--device-write-bps"), line)
        if limits.blkio_weight is not None:
            path, value = self._weight(limits.blkio_weight)
            self._write(path, value)

    def _check(self, limits: Limits) -> None:
        if limits.memory is not None:
            self._need("memory.max", "--memory")
        swap = limits.memory_swap
        if swap is not None and swap > 0 and not os.path.exists(self._f("memory.swap.max")):
            raise Unsupported(
                f'set --memory-swap "{limits.memory_swap}": no memory.swap.max in',
                errno.ENOENT,
                self.dir,
                "this kernel does not account swap (CONFIG_MEMCG_SWAP, swapaccount=1); "
                "leave --memory-swap unset or -1",
            )
        names = {
            "memory.low": limits.memory_reservation,
            "cpu.max": limits.nano_cpus,
            "cpu.weight": limits.cpu_shares,
            "cpuset.cpus": limits.cpuset_cpus,
            "pids.max": limits.pids_limit,
            "io.max": (limits.device_read_bps or limits.device_write_bps) or None,
        }
        for name, value in names.items():
            if value is not None:
                self._need(name, f"a limit in {name}")
        if limits.blkio_weight is not None:
            self._weight(limits.blkio_weight)

    def _weight(self, weight: int) -> tuple[str, str]:
        # runc: BFQ's io.bfq.weight takes docker's 10..1000 as is; io.weight (1..10000, the
        # iocost controller) takes it converted.
        if os.path.exists(self._f("io.bfq.weight")):
            return self._f("io.bfq.weight"), str(weight)
        path = self._need("io.weight", "--blkio-weight")
        return path, f"default {units.blkio_weight_to_io_weight(weight)}"

    def _set_memory(self, memory: int | None, swap: int | None) -> None:
        swap_max = self._f("memory.swap.max")
        if memory is not None:
            self._write(self._need("memory.max", "--memory"), str(memory))
        if swap is None or (swap == 0 and memory is None) or not os.path.exists(swap_max):
            return  # no swap accounting: 0 (default) and -1 (unlimited) need no file
        if swap == -1:
            self._write(swap_max, "max")
            return
        # docker's --memory-swap is memory plus swap; v2 limits swap alone.
        mem = memory if memory is not None else read_int(self._f("memory.max"))
        if mem is None:
            raise UsageError(
                f'invalid --memory-swap "{swap}": set --memory too (memory plus swap needs a '
                "memory limit)"
            )
        total = 2 * mem if swap == 0 else swap
        if total < mem:
            raise UsageError(
                f'invalid --memory-swap "{swap}": below --memory {mem} (it is memory plus swap)'
            )
        self._write(swap_max, str(total - mem))

    # ---- state --------------------------------------------------------------------------------

    def freeze(self, timeout: float = 5.0) -> None:
        # cgroup.freeze (Linux >= 5.2): "1" asks, cgroup.events "frozen 1" says it is done.
        self._write(self._need("cgroup.freeze", "freeze"), "1")
        deadline = time.monotonic() + timeout
        while not self.frozen():
            if time.monotonic() > deadline:
                raise KernelError("wait for frozen 1 in", errno.ETIMEDOUT, self._f("cgroup.events"))
            time.sleep(0.005)

    def thaw(self) -> None:
        self._write(self._need("cgroup.freeze", "thaw"), "0")

    def frozen(self) -> bool:
        return read_keyed(self._f("cgroup.events")).get("frozen") == 1

    def kill_all(self, timeout: float = 10.0) -> None:
        """cgroup.kill (Linux >= 5.14) SIGKILLs the whole cgroup at once, forks in flight too."""
        kill = self._f("cgroup.kill")
        if not os.path.exists(kill):
            super().kill_all(timeout)
            return
        deadline = time.monotonic() + timeout
        while self.pids():
            if time.monotonic() > deadline:
                raise KernelError(
                    "kill every process in", errno.ETIMEDOUT, self.dir, f"after {timeout:g} s"
                )
            self._write(kill, "1")
            time.sleep(0.01)

    def oom_killed(self) -> bool:
        return read_keyed(self._need("memory.events", "read OOM kills")).get("oom_kill", 0) > 0

    def memory_peak(self) -> int | None:
        peak = self._int("memory.peak")  # Linux >= 5.19; before, stats() keeps a running max
        return peak if peak is not None else self.stats().memory_peak

    def stats(self) -> Stats:
        cpu = self._keyed("cpu.stat")
        events = self._keyed("memory.events")
        current = self._int("memory.current")
        peak = self._int("memory.peak")
        if current is not None:
            self._peak = max(self._peak, current)
        if peak is None and current is not None:
            peak = self._peak
        io_text = self._text("io.stat")
        io = _io_stat(io_text or "")
        usage, throttled = cpu.get("usage_usec"), cpu.get("throttled_usec")
        return Stats(
            timestamp=time.time(),
            cpu_usage_ns=usage * 1000 if usage is not None else None,
            cpu_nr_periods=cpu.get("nr_periods"),
            cpu_nr_throttled=cpu.get("nr_throttled"),
            cpu_throttled_ns=throttled * 1000 if throttled is not None else None,
            memory_current=current,
            memory_peak=peak,
            memory_limit=self._int("memory.max"),
            swap_current=self._int("memory.swap.current"),
            oom_events=events.get("oom"),
            oom_kills=events.get("oom_kill"),
            pids_current=self._int("pids.current"),
            pids_limit=self._int("pids.max"),
            io_read_bytes=io.get("rbytes", 0) if io_text is not None else None,
            io_write_bytes=io.get("wbytes", 0) if io_text is not None else None,
            memory_limit_hits=events.get("max"),
            version=self.version,
        )

    def reader(self) -> V2Reader:
        return V2Reader(self.dir)

    def _text(self, name: str) -> str | None:
        try:
            return read_file(self._f(name))
        except KernelError as err:
            if err.errno in (errno.ENOENT, errno.EOPNOTSUPP):
                return None
            raise

    def _int(self, name: str) -> int | None:
        text = self._text(name)
        return None if text is None or text.strip() in ("", "max") else int(text)

    def _keyed(self, name: str) -> dict[str, int]:
        return read_keyed(self._f(name)) if self._text(name) is not None else {}


class V2Reader(Reader):
    """A v2 cgroup's meters: one folder, and cpu.stat carries usage and throttling together."""

    def __init__(self, folder: str) -> None:
        names = {
            "cpu": "cpu.stat",
            "memory": "memory.current",
            "peak": "memory.peak",  # Linux >= 5.19; the Reader keeps the highest seen otherwise
            "pids": "pids.current",
            "cpu_max": "cpu.max",
            "limit": "memory.max",
            "events": "memory.events",
            "io": "io.stat",
        }
        super().__init__({k: os.path.join(folder, name) for k, name in names.items()})

    def _read(self, slow: Slow) -> Reading:
        # Four pread(2) calls a tick.
        cpu = self.keyed("cpu")
        return Reading(
            int(cpu.get(b"usage_usec", 0)) * 1000,
            int(cpu.get(b"nr_periods", 0)),
            int(cpu.get(b"nr_throttled", 0)),
            int(cpu.get(b"throttled_usec", 0)) * 1000,
            self.number("memory"),
            self.number("peak"),
            self.number("pids"),
            *slow,
        )

    def _read_slow(self) -> Slow:
        # cpu.max is "QUOTA PERIOD" in us, QUOTA "max" = no limit; memory.max "max" = none.
        quota, _, period = self.text("cpu_max").strip().partition(" ")
        limit = self.text("limit").strip()
        io = _io_stat(self.text("io"))
        return (
            int(limit) if limit.isdigit() else None,
            int(quota) / int(period) if quota.isdigit() and period.isdigit() else None,
            int(self.keyed("events").get(b"oom_kill", 0)),
            io.get("rbytes", 0),
            io.get("wbytes", 0),
        )


def _io_max_lines(limits: Limits) -> list[str]:
    """``MAJ:MIN rbps=N wbps=N`` per device (io.max); 0 is written "max": no limit."""
    per_device: dict[str, list[str]] = {}
    for key, rates in (("rbps", limits.device_read_bps), ("wbps", limits.device_write_bps)):
        for r in rates:
            per_device.setdefault(r.device, []).append(f"{key}={r.rate or 'max'}")
    return [f"{dev} {' '.join(parts)}" for dev, parts in per_device.items()]


def _io_stat(text: str) -> dict[str, int]:
    """io.stat: ``MAJ:MIN rbytes=N wbytes=N rios=N ...`` per device; summed over devices."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        for item in line.split()[1:]:
            key, _, value = item.partition("=")
            if value.isdigit():
                out[key] = out.get(key, 0) + int(value)
    return out
