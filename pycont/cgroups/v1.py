"""cgroup v1: one tree per controller, so a container has one folder in each of them.

``/sys/fs/cgroup/memory/pycont/<name>``, ``/sys/fs/cgroup/cpu/pycont/<name>``... (docker's cgroupfs
driver uses ``/docker/<id>`` the same way). A process joins by writing its pid to ``cgroup.procs``
in every one of them. See Documentation/admin-guide/cgroup-v1/ in the kernel sources.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Mapping

from pycont.cgroups import units
from pycont.cgroups.base import (
    PARENT,
    Cgroup,
    Limits,
    Stats,
    read_file,
    read_keyed,
)
from pycont.cgroups.reader import Reader, Reading, Slow
from pycont.errors import KernelError, Unsupported, UsageError
from pycont.kernel import Kernel
from pycont.kernel import mounts as probe

__all__ = ["CONTROLLERS", "V1Cgroup", "V1Reader", "mounts_from_system", "mounts_under"]

# The controllers a container's limits and stats need. devices, net_cls... are not used.
CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "freezer")
# v1 shows "no limit" as the largest page-aligned counter (PAGE_COUNTER_MAX pages), e.g.
# 9223372036854771712: anything this large means unlimited.
_UNLIMITED = 1 << 62


def mounts_from_system() -> dict[str, str]:
    """Controller -> mount point of its v1 hierarchy, from /proc/self/mountinfo.

    A hybrid layout also has a cgroup2 mount (here: /sys/fs/cgroup/unified, with hugetlb only):
    it carries none of our controllers, so it is ignored."""
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        layout = probe.cgroup_layout(f.read())
    return {c: m.mount_point for c, m in layout.v1.items() if c in CONTROLLERS}


def mounts_under(root: str) -> dict[str, str]:
    """Controller -> folder for a tree laid out like /sys/fs/cgroup (``cpu,cpuacct`` too)."""
    out: dict[str, str] = {}
    with contextlib.suppress(FileNotFoundError):
        for entry in sorted(os.listdir(root)):
            for ctrl in entry.split(","):
                if ctrl in CONTROLLERS and os.path.isdir(os.path.join(root, entry)):
                    out.setdefault(ctrl, os.path.join(root, entry))
    return out


class V1Cgroup(Cgroup):
    """A container's folders in the v1 hierarchies: ``<mount>/pycont/<name>`` per controller."""

    version = "v1"
    FILES = {
        "memory": "memory.limit_in_bytes",
        "memory_swap": "memory.memsw.limit_in_bytes (memory + swap)",
        "memory_reservation": "memory.soft_limit_in_bytes",
        "nano_cpus": "cpu.cfs_quota_us / cpu.cfs_period_us",
        "cpu_shares": "cpu.shares",
        "cpuset_cpus": "cpuset.cpus (and cpuset.mems)",
        "pids_limit": "pids.max",
        "device_read_bps": "blkio.throttle.read_bps_device",
        "device_write_bps": "blkio.throttle.write_bps_device",
        "blkio_weight": "blkio.weight (or blkio.bfq.weight)",
        "procs": "cgroup.procs (in every controller's folder)",
        "freeze": "freezer.state",
        "kill": "none: freeze, SIGKILL every pid, thaw",
        "cpu_usage_ns": "cpuacct.usage",
        "cpu_nr_periods": "cpu.stat nr_periods",
        "cpu_nr_throttled": "cpu.stat nr_throttled",
        "cpu_throttled_ns": "cpu.stat throttled_time",
        "memory_current": "memory.usage_in_bytes",
        "memory_peak": "memory.max_usage_in_bytes",
        "memory_limit_hits": "memory.failcnt + memory.memsw.failcnt",
        "swap_current": "memory.memsw.usage_in_bytes - memory.usage_in_bytes",
        "oom_events": "none in v1",
        "oom_kills": "memory.oom_control oom_kill",
        "pids_current": "pids.current",
        "io_read_bytes": "blkio.throttle.io_service_bytes Read",
        "io_write_bytes": "blkio.throttle.io_service_bytes Write",
    }

    def __init__(
        self,
        name: str,
        root: str | None = None,
        mounts: Mapping[str, str] | None = None,
        kernel: Kernel | None = None,
    ) -> None:
        """``root``: a folder laid out like /sys/fs/cgroup (tests use a fake one in tmp);
        ``mounts``: controller -> hierarchy mount point; neither: what this machine mounts.
        ``kernel``: the seam for mkdir/write/rmdir (see :class:`Cgroup`)."""
        super().__init__(name, kernel)
        if mounts is None:
            mounts = mounts_under(root) if root is not None else mounts_from_system()
        self.mounts = {c: m for c, m in mounts.items() if c in CONTROLLERS}
        self.dirs = {c: os.path.join(m, PARENT, name) for c, m in self.mounts.items()}

    @property
    def path(self) -> str:
        return self.dirs.get("memory") or next(iter(self.dirs.values()), "")

    def paths(self) -> dict[str, str]:
        return dict(self.dirs)

    def exists(self) -> bool:
        # Any controller's folder, not the memory one only: create() makes them one by one,
        # and a process killed in between leaves e.g. cpu and cpuset without memory.
        return any(os.path.isdir(d) for d in self._unique())

    def _unique(self) -> list[str]:
        """One folder per hierarchy: cpu and cpuacct may be mounted together."""
        return list(dict.fromkeys(self.dirs.values()))

    def _file(self, ctrl: str, name: str, what: str) -> str:
        if ctrl not in self.dirs:
            raise Unsupported(f"set {what}: no v1 {ctrl} controller is mounted", errno.ENODEV, None)
        return os.path.join(self.dirs[ctrl], name)

    # ---- lifecycle ----------------------------------------------------------------------------

    def create(self) -> None:
        if not self.dirs:
            raise Unsupported("create cgroup: no v1 controller is mounted", errno.ENODEV, None)
        for attempt in range(3):
            try:
                for ctrl, mount in self.mounts.items():
                    self._mkdir(os.path.join(mount, PARENT))
                    self._mkdir(self.dirs[ctrl])
                break
            except KernelError as err:
                # Another container's destroy() removed the shared pycont folder in between.
                if err.errno != errno.ENOENT or attempt == 2:
                    raise
        if "cpuset" in self.dirs:
            self._init_cpuset()

    def _init_cpuset(self) -> None:
        # cgroup-v1/cpusets.rst: a new cpuset starts with empty cpus and mems, and a task cannot
        # join it ("No space left on device") until both are set. Copy them down from the parent
        # (what cgroup.clone_children would do), at each level of pycont/<name>.
        mount = self.mounts["cpuset"]
        parent = os.path.join(mount, PARENT)
        for src, dst in ((mount, parent), (parent, self.dirs["cpuset"])):
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not read_file(os.path.join(dst, name)).strip():
                    self._write(os.path.join(dst, name), read_file(os.path.join(src, name)).strip())

    def destroy(self) -> None:
        for d in self._unique():
            self._rmdir(d)
        for mount in dict.fromkeys(self.mounts.values()):
            self._rmdir_parent(os.path.join(mount, PARENT))

    def add_pid(self, pid: int) -> None:
        for d in self._unique():
            self._write(os.path.join(d, "cgroup.procs"), str(pid))

    def pids(self) -> list[int]:
        found: set[int] = set()
        for d in self._unique():
            try:
                found.update(int(p) for p in read_file(os.path.join(d, "cgroup.procs")).split())
            except KernelError as err:
                if err.errno != errno.ENOENT:
                    raise
        return sorted(found)

    # ---- limits -------------------------------------------------------------------------------

    def apply(self, limits: Limits) -> None:
        self._check(limits)  # refuse before writing anything, so no limit is half applied
        if limits.memory is not None or limits.memory_swap is not None:
            self._set_memory(limits.memory, limits.memory_swap)
        if limits.memory_reservation is not None:
            path = self._file("memory", "memory.soft_limit_in_bytes", "--memory-reservation")
            self._write(path, str(limits.memory_reservation))
        if limits.nano_cpus is not None:
            # sched-bwc.rst: at most cfs_quota_us of CPU time per cfs_period_us; -1 = no limit.
            self._write(self._file("cpu", "cpu.cfs_period_us", "--cpus"), str(units.CPU_PERIOD_US))
            quota = units.cpus_to_quota(limits.nano_cpus)
            self._write(self._file("cpu", "cpu.cfs_quota_us", "--cpus"), str(quota))
        if limits.cpu_shares is not None:
            path = self._file("cpu", "cpu.shares", "--cpu-shares")
            self._write(path, str(units.clamp_shares(limits.cpu_shares)))
        if limits.cpuset_cpus is not None:
            self._write(self._file("cpuset", "cpuset.cpus", "--cpuset-cpus"), limits.cpuset_cpus)
        if limits.pids_limit is not None:
            value = "max" if limits.pids_limit < 0 else str(limits.pids_limit)
            self._write(self._file("pids", "pids.max", "--pids-limit"), value)
        for name, rates in (
            ("read_bps_device", limits.device_read_bps),
            ("write_bps_device", limits.device_write_bps),
        ):
            for rate in rates:  # "MAJ:MIN BYTES", one device per write; 0 removes its rule
                path = self._file("blkio", f"blkio.throttle.{name}", f"--device-{name[:-7]}")
                self._write(path, f"{rate.device} {rate.rate}")
        if limits.blkio_weight is not None:
            self._write(self._weight_file(), str(limits.blkio_weight))

    def _check(self, limits: Limits) -> None:
        needs = {
            "memory": (limits.memory, limits.memory_swap, limits.memory_reservation),
            "cpu": (limits.nano_cpus, limits.cpu_shares),
            "cpuset": (limits.cpuset_cpus,),
            "pids": (limits.pids_limit,),
            "blkio": (limits.device_read_bps or None, limits.device_write_bps or None),
        }
        for ctrl, values in needs.items():
            if any(v is not None for v in values):
                self._file(ctrl, "", f"a {ctrl} limit")
        if limits.memory_swap is not None and limits.memory_swap > 0:
            memsw = self._file("memory", "memory.memsw.limit_in_bytes", "--memory-swap")
            if not os.path.exists(memsw):
                raise Unsupported(
                    f'set --memory-swap "{limits.memory_swap}" through',
                    errno.ENOENT,
                    memsw,
                    "this kernel does not account swap (boot with swapaccount=1, or "
                    "CONFIG_MEMCG_SWAP); leave --memory-swap unset or -1",
                )
        if limits.blkio_weight is not None:
            self._weight_file()

    def _weight_file(self) -> str:
        # blkio.weight belonged to the CFQ scheduler (removed in Linux 5.0); BFQ has its own
        # blkio.bfq.weight. It only acts on devices whose queue/scheduler is bfq.
        for name in ("blkio.weight", "blkio.bfq.weight"):
            path = self._file("blkio", name, "--blkio-weight")
            if os.path.exists(path):
                return path
        raise Unsupported(
            "set --blkio-weight: no blkio.weight nor blkio.bfq.weight in",
            errno.ENOENT,
            self.dirs["blkio"],
            "proportional I/O weights need the BFQ scheduler (CFQ is gone since Linux 5.0)",
        )

    def _set_memory(self, memory: int | None, swap: int | None) -> None:
        limit = self._file("memory", "memory.limit_in_bytes", "--memory")
        memsw = os.path.join(os.path.dirname(limit), "memory.memsw.limit_in_bytes")
        has_memsw = os.path.exists(memsw)
        if swap == 0:  # docker's default: as much swap as memory, so memsw = twice memory
            swap = 2 * memory if memory is not None and has_memsw else None
        if swap == -1 and not has_memsw:
            swap = None  # unlimited swap is what a kernel without swap accounting does anyway
        if swap is not None and memory is None:
            current = _limit(read_file(limit))
            if swap > 0 and current is not None and swap < current:
                raise UsageError(
                    f'invalid --memory-swap "{swap}": below the current --memory {current} '
                    "(memory plus swap can't be less than memory); update --memory with it"
                )
        if memory is not None and swap is None and has_memsw:
            cur_swap = _limit(read_file(memsw))
            if cur_swap is not None and memory > cur_swap:
                raise UsageError(
                    f'invalid --memory "{memory}": Memory limit should be smaller than already '
                    f"set memoryswap limit ({cur_swap}), update the memoryswap at the same time"
                )
        if memory is not None and swap is not None:
            # The kernel keeps memory <= memsw at every step: raise memsw first when growing.
            current = _limit(read_file(limit))
            if swap == -1 or (current is not None and current < swap):
                self._write(memsw, str(swap))
                self._write(limit, str(memory))
            else:
                self._write(limit, str(memory))
                self._write(memsw, str(swap))
        elif memory is not None:
            self._write(limit, str(memory))
        elif swap is not None:
            self._write(memsw, str(swap))

    # ---- state --------------------------------------------------------------------------------

    def freeze(self, timeout: float = 5.0) -> None:
        # cgroup-v1/freezer-subsystem.rst: FREEZING until every task is frozen, then FROZEN.
        state = self._file("freezer", "freezer.state", "freeze")
        self._write(state, "FROZEN")
        deadline = time.monotonic() + timeout
        while read_file(state).strip() != "FROZEN":
            if time.monotonic() > deadline:
                raise KernelError("wait for FROZEN in", errno.ETIMEDOUT, state)
            time.sleep(0.005)

    def thaw(self) -> None:
        self._write(self._file("freezer", "freezer.state", "thaw"), "THAWED")

    def frozen(self) -> bool:
        path = self._file("freezer", "freezer.state", "freeze")
        return read_file(path).strip() == "FROZEN"

    def oom_killed(self) -> bool:
        # memory.oom_control: "oom_kill N" counts OOM kills in this cgroup (Linux >= 4.13).
        path = self._file("memory", "memory.oom_control", "read OOM kills")
        return read_keyed(path).get("oom_kill", 0) > 0

    def memory_peak(self) -> int | None:
        return self._optional("memory", "memory.max_usage_in_bytes")

    def stats(self) -> Stats:
        mem = self._optional("memory", "memory.usage_in_bytes")
        memsw = self._optional("memory", "memory.memsw.usage_in_bytes")
        cpu = self._keyed("cpu", "cpu.stat")
        oom = self._keyed("memory", "memory.oom_control")
        limit = self._optional("memory", "memory.limit_in_bytes")
        pids_max = self._text("pids", "pids.max")
        io_text = self._text("blkio", "blkio.throttle.io_service_bytes")
        io = _service_bytes(io_text) if io_text is not None else {}
        throttled = cpu.get("throttled_time")
        # A charge fails at memsw first when it is the tighter limit, and then only
        # memory.memsw.failcnt counts it: the two counters count different events, so add them.
        failcnt = self._optional("memory", "memory.failcnt")
        return Stats(
            timestamp=time.time(),
            cpu_usage_ns=self._optional("cpuacct", "cpuacct.usage"),
            cpu_nr_periods=cpu.get("nr_periods"),
            cpu_nr_throttled=cpu.get("nr_throttled"),
            cpu_throttled_ns=throttled,  # v1 counts in nanoseconds already
            memory_current=mem,
            memory_peak=self._optional("memory", "memory.max_usage_in_bytes"),
            memory_limit=None if limit is None or limit >= _UNLIMITED else limit,
            swap_current=max(memsw - mem, 0) if memsw is not None and mem is not None else None,
            oom_events=None,
            oom_kills=oom.get("oom_kill"),
            pids_current=self._optional("pids", "pids.current"),
            pids_limit=None if pids_max in (None, "max") else int(pids_max or 0),
            io_read_bytes=io.get("Read", 0) if io_text is not None else None,
            io_write_bytes=io.get("Write", 0) if io_text is not None else None,
            memory_limit_hits=_sum(failcnt, self._optional("memory", "memory.memsw.failcnt")),
            version=self.version,
        )

    def reader(self) -> V1Reader:
        return V1Reader(self.dirs)

    def _text(self, ctrl: str, name: str) -> str | None:
        """A stat file's text, or None when the controller or the file is not there."""
        if ctrl not in self.dirs:
            return None
        try:
            return read_file(os.path.join(self.dirs[ctrl], name)).strip()
        except KernelError as err:
            if err.errno in (errno.ENOENT, errno.EOPNOTSUPP):
                return None
            raise

    def _optional(self, ctrl: str, name: str) -> int | None:
        text = self._text(ctrl, name)
        return int(text) if text else None

    def _keyed(self, ctrl: str, name: str) -> dict[str, int]:
        if self._text(ctrl, name) is None:
            return {}
        return read_keyed(os.path.join(self.dirs[ctrl], name))


class V1Reader(Reader):
    """A v1 cgroup's meters: a file per figure, spread over the controllers' trees."""

    def __init__(self, dirs: Mapping[str, str]) -> None:
        files = {
            "usage": ("cpuacct", "cpuacct.usage"),
            "cpu": ("cpu", "cpu.stat"),
            "memory": ("memory", "memory.usage_in_bytes"),
            "peak": ("memory", "memory.max_usage_in_bytes"),
            "pids": ("pids", "pids.current"),
            "quota": ("cpu", "cpu.cfs_quota_us"),
            "period": ("cpu", "cpu.cfs_period_us"),
            "limit": ("memory", "memory.limit_in_bytes"),
            "oom": ("memory", "memory.oom_control"),
            "io": ("blkio", "blkio.throttle.io_service_bytes"),
        }
        super().__init__(
            {k: os.path.join(dirs[c], name) for k, (c, name) in files.items() if c in dirs}
        )

    def _read(self, slow: Slow) -> Reading:
        # Five pread(2) calls a tick: v1 keeps usage, throttling, memory and pids apart.
        cpu = self.keyed("cpu")
        return Reading(
            self.number("usage"),
            int(cpu.get(b"nr_periods", 0)),
            int(cpu.get(b"nr_throttled", 0)),
            int(cpu.get(b"throttled_time", 0)),  # v1 counts in ns already
            self.number("memory"),
            self.number("peak"),
            self.number("pids"),
            *slow,
        )

    def _read_slow(self) -> Slow:
        quota, period = self.number("quota"), self.number("period")
        limit = self.text("limit")
        io = _service_bytes(self.text("io"))
        return (
            _limit(limit) if limit.strip() else None,
            quota / period if quota > 0 and period > 0 else None,  # sched-bwc.rst: -1 = none
            # memory.oom_control "oom_kill N" (Linux >= 4.13): OOM kills in this cgroup
            int(self.keyed("oom").get(b"oom_kill", 0)),
            io.get("Read", 0),
            io.get("Write", 0),
        )


def _limit(text: str) -> int | None:
    """A v1 limit file's value; None for "no limit" (-1 written, a huge number read back)."""
    value = int(text.strip())
    return None if value >= _UNLIMITED or value < 0 else value


def _sum(a: int | None, b: int | None) -> int | None:
    return None if a is None else a + (b or 0)


def _service_bytes(text: str) -> dict[str, int]:
    """blkio.throttle.io_service_bytes: ``MAJ:MIN Read N`` lines per device; summed by kind."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and ":" in parts[0] and parts[2].isdigit():
            out[parts[1]] = out.get(parts[1], 0) + int(parts[2])
    return out
