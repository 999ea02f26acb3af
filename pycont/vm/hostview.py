"""What a VM costs the host: its qemu process, read through /proc like a cgroup's meter files.

A container's cost is its cgroup's counters. A VM's cost is one host process, qemu: its CPU
time (the vCPU threads included) and its resident memory, which holds the guest's RAM as the
guest touches it plus qemu's own overhead. :class:`ProcessReader` gives the sampler
(pycont.monitor) the same :class:`~pycont.cgroups.reader.Reading` a cgroup reader gives.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from pycont.cgroups.reader import Reader, Reading, Slow
from pycont.vm.errors import VMError

__all__ = ["HostMemory", "ProcessReader", "host_memory", "smaps_rollup"]

# proc(5): utime and stime are in clock ticks (sysconf(_SC_CLK_TCK)), statm in pages.
NS_PER_TICK = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class ProcessReader(Reader):
    """A process's meters, the files opened once and pread(2) on every :meth:`read`.

    The fds hold the process's /proc entry, not its number: once it has been reaped, a read
    fails with ESRCH even if the pid is reused, so a dead qemu can never be mistaken for a
    new process. A zombie reads as gone too (it has exited; its memory is freed).

    ``memory_limit`` is the guest's RAM (qemu's -m: the guest cannot use more; qemu's own
    overhead comes on top) and ``cpus`` the vCPU count (-smp: with TCG one host thread per
    vCPU, so at most that many CPUs' worth of guest work)."""

    def __init__(self, pid: int, memory_limit: int | None = None, cpus: float | None = None):
        self.pid = pid
        self.memory_limit = memory_limit
        self.cpus = float(cpus) if cpus is not None else None
        super().__init__(
            {key: f"/proc/{pid}/{key}" for key in ("stat", "statm", "status")},
        )

    def _read_slow(self) -> Slow:
        # Fixed at boot: a VM's RAM and vCPUs do not change while it runs. OOM and I/O: 0.
        return self.memory_limit, self.cpus, 0, 0, 0

    def _read(self, slow: Slow) -> Reading:
        # proc(5): after the last ')' (the command name may hold any byte), field 3 is the
        # state and fields 14, 15 utime and stime: of all threads, the exited ones included.
        fields = self.raw("stat").rsplit(b")", 1)[-1].split()
        if len(fields) < 13 or fields[0] in (b"Z", b"X"):
            raise ProcessLookupError(errno.ESRCH, f"process {self.pid} has exited")
        ticks = int(fields[11]) + int(fields[12])
        resident = int(self.raw("statm").split()[1]) * PAGE_SIZE
        status = _status_kib(self.raw("status"), (b"VmHWM", b"Threads"))
        return Reading(
            cpu_usage_ns=ticks * NS_PER_TICK,
            cpu_nr_periods=0,
            cpu_nr_throttled=0,
            cpu_throttled_ns=0,
            memory=resident,
            memory_peak=status.get(b"VmHWM", 0) * 1024,
            pids=status.get(b"Threads", 0),
            memory_limit=slow[0],
            cpu_limit=slow[1],
            oom_kills=slow[2],
            io_read_bytes=slow[3],
            io_write_bytes=slow[4],
        )

    def raw(self, key: str) -> bytes:
        """The file's bytes now (status is ~1.5 KiB; 8 KiB leaves room)."""
        fd = self.fds.get(key)
        return os.pread(fd, 8192, 0) if fd is not None else b""


def _status_kib(text: bytes, keys: tuple[bytes, ...]) -> dict[bytes, int]:
    """The first number of each wanted ``Key:\\t value [kB]`` line of /proc/PID/status."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(b":")
        if key in keys:
            out[key] = int(value.split()[0])
    return out


@dataclass(frozen=True)
class HostMemory:
    """A process's memory on the host, in bytes.

    ``rss`` counts every page it maps in RAM, shared ones in full; ``pss`` divides each shared
    page by the number of processes that map it (what it adds to the host's total); ``peak``
    is the kernel's high-water mark of its RSS (VmHWM)."""

    rss: int
    pss: int
    peak: int


def smaps_rollup(pid: int) -> tuple[int, int]:
    """(Rss, Pss) of a process in bytes, from /proc/PID/smaps_rollup (Linux 4.14, proc(5):
    the sums of /proc/PID/smaps over all its mappings, without listing each)."""
    kib = _read_kib(pid, "smaps_rollup", (b"Rss", b"Pss"))
    return kib[b"Rss"] * 1024, kib[b"Pss"] * 1024


def host_memory(pid: int) -> HostMemory:
    """What process ``pid`` (a VM's qemu) costs the host's RAM. VMError when it is gone."""
    rss, pss = smaps_rollup(pid)
    peak = _read_kib(pid, "status", (b"VmHWM",)).get(b"VmHWM", 0) * 1024
    return HostMemory(rss=rss, pss=pss, peak=max(peak, rss))


def _read_kib(pid: int, name: str, keys: tuple[bytes, ...]) -> dict[bytes, int]:
    path = f"/proc/{pid}/{name}"
    try:
        with open(path, "rb") as f:
            kib = _status_kib(f.read(), keys)
    except OSError as err:
        # ENOENT: no such process; ESRCH: it has exited (a zombie) or the fd outlived it.
        gone = err.errno in (errno.ENOENT, errno.ESRCH)
        why = f"process {pid} has exited" if gone else str(err.strerror)
        raise VMError(f"read {path}: {why}") from err
    if name == "smaps_rollup" and len(kib) < len(keys):
        # A kernel thread has no mm: the file is empty.
        raise VMError(f"read {path}: no Rss/Pss (process {pid} maps no memory)")
    return kib
