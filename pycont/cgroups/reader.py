"""Reading a cgroup's meters many times a second, cheaply: open each file once, pread(2) it again.

cgroupfs regenerates a file's text on every read from offset 0, so a sampler needs no open(2)
per reading: one pread(2) per file and tick. The drivers (:mod:`.v1`, :mod:`.v2`) say which
files and how to parse them; the sampler (pycont.monitor) only sees a :class:`Reading`.
"""

from __future__ import annotations

import abc
import contextlib
import os
from collections.abc import Mapping
from typing import NamedTuple

__all__ = ["Reader", "Reading"]


class Reading(NamedTuple):
    """One reading of a cgroup's meters, as the kernel counts them. Sizes in bytes, times in ns.

    ``memory_peak`` is the kernel's own high-water mark (v1 memory.max_usage_in_bytes, v2
    memory.peak), so an allocation between two readings still shows; where the kernel keeps
    none (v2 before Linux 5.19) it is the highest ``memory`` this reader saw. ``memory_limit``
    and ``cpu_limit`` (in CPUs: 0.5 for ``--cpus 0.5``) are None when there is no limit.
    (A NamedTuple, not a frozen dataclass: it is made for every container ten times a second,
    and a tuple is built four times faster.)"""

    cpu_usage_ns: int
    cpu_nr_periods: int
    cpu_nr_throttled: int
    cpu_throttled_ns: int
    memory: int
    memory_peak: int
    pids: int
    # Read only on a full read (they change rarely): the last full read's values otherwise.
    memory_limit: int | None = None
    cpu_limit: float | None = None
    oom_kills: int = 0
    io_read_bytes: int = 0
    io_write_bytes: int = 0


Slow = tuple[int | None, float | None, int, int, int]  # memory_limit ... io_write_bytes


class Reader(abc.ABC):
    """A cgroup's meter files, opened once; :meth:`read` preads them. Close it when done.

    A file that cannot be opened (a controller not mounted, an older kernel) reads as empty:
    its figures are 0. Once the cgroup is removed, :meth:`read` raises OSError (ENODEV)."""

    def __init__(self, files: Mapping[str, str]) -> None:
        """``files``: key -> path, for the keys the driver's :meth:`read` asks for."""
        self.fds: dict[str, int] = {}
        for key, path in files.items():
            with contextlib.suppress(OSError):
                self.fds[key] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self._slow: Slow | None = None
        self._peak = 0

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def opened(self) -> bool:
        """Whether any file could be opened (none: the cgroup is not there)."""
        return bool(self.fds)

    def read(self, full: bool = True) -> Reading:
        """The meters now. ``full=False`` skips the limits, OOM and I/O files (the sampler
        reads them once a second) and repeats their values from the last full read."""
        if full or self._slow is None:
            self._slow = self._read_slow()
        r = self._read(self._slow)
        if r.memory_peak < r.memory or r.memory_peak < self._peak:
            self._peak = max(self._peak, r.memory, r.memory_peak)  # no kernel peak file
            return r._replace(memory_peak=self._peak)
        self._peak = r.memory_peak
        return r

    @abc.abstractmethod
    def _read(self, slow: Slow) -> Reading:
        """The fast figures (pread every tick), with ``slow`` appended."""

    @abc.abstractmethod
    def _read_slow(self) -> Slow:
        """memory_limit, cpu_limit, oom_kills, io_read_bytes, io_write_bytes."""

    # ---- the files ------------------------------------------------------------------------------

    def raw(self, key: str) -> bytes:
        """The file's bytes now; b"" when it could not be opened."""
        fd = self.fds.get(key)
        return os.pread(fd, 4096, 0) if fd is not None else b""

    def text(self, key: str) -> str:
        return self.raw(key).decode("ascii")

    def number(self, key: str) -> int:
        """An integer file; 0 when absent, empty or "max"."""
        try:
            return int(self.raw(key))  # int() takes bytes and ignores the newline
        except ValueError:
            return 0

    def keyed(self, key: str) -> dict[bytes, bytes]:
        """A flat keyed file (``key value`` per line: cpu.stat, memory.events...), unparsed
        values: ``int(d.get(b"nr_periods", 0))``."""
        words = iter(self.raw(key).split())
        return dict(zip(words, words, strict=False))  # pairs: (key, value), (key, value)...
