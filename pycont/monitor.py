"""A sampler: containers' CPU, memory, pids and I/O, read from their cgroup files many times a
second into a bounded history, for live plots.

The kernel keeps each cgroup's counters in small text files; reading them costs a syscall, not
a process. The cgroup driver's reader (pycont.cgroups.Reader) opens each file once and re-reads
it with pread(2) at offset 0 (cgroupfs regenerates the text on every read), so watching 20
containers at 10 Hz stays far below 1% of a CPU. The sampler runs in one daemon thread, never
prints, and imports no widget code: widgets.py draws from it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pycont.cgroups.reader import Reader, Reading
    from pycont.runtime.container import Container


@dataclass(frozen=True)
class Sample:
    """One reading of one container. CPU figures are percentages of one CPU."""

    t: float  # seconds since the sampler started
    cpu_percent: float
    cpu_limit_percent: float | None  # the --cpus quota as a percentage; None: no limit
    throttled_percent: float  # share of this interval's CPU periods in which the quota stopped it
    memory: int
    memory_peak: int  # the kernel's high-water mark: also an allocation between two samples
    memory_limit: int | None
    pids: int
    oom_kills: int
    io_read: int
    io_write: int
    throttled: bool = False  # the quota stopped it at least once in this interval


@dataclass
class Track:
    """What the sampler keeps for one container."""

    name: str
    history: deque[Sample]
    oom_times: list[float] = field(default_factory=list)
    container: Container | None = None
    ended: bool = False
    error: str = ""
    # The kernel's memory high-water mark, last known: where an OOM kill ends the container,
    # the one the runtime recorded at the end (the cgroup, and its files, are gone by then).
    peak: int = 0


class Sampler:
    """Samples watched containers every ``interval`` seconds in a background thread.

    >>> s = Sampler(interval=0.1); s.watch(c); s.start(); ...; s.stop()
    >>> s.history(c.name)[-1].memory
    """

    def __init__(self, interval: float = 0.1, keep: int = 600) -> None:
        self.interval = interval
        self.keep = keep
        self.tracks: dict[str, Track] = {}
        self._readers: dict[str, Reader] = {}
        self._prev: dict[str, tuple[float, Reading]] = {}
        self._listeners: list[Callable[[Sampler], None]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = time.monotonic()
        self.ticks = 0
        self.cpu_seconds = 0.0  # CPU time the sampler thread used: its own overhead
        self.errors: list[str] = []

    # -- what to watch -------------------------------------------------------------------
    def watch(self, container: Container) -> None:
        from pycont.errors import InvalidState

        status = container.status
        if status not in ("running", "paused"):
            raise InvalidState(f"container {container.name} is {status}: nothing to watch")
        # The cgroup driver knows the files of its version (pycont.cgroups.v1/v2).
        reader = container.cgroup().reader()
        with self._lock:
            self.tracks[container.name] = Track(
                container.name, deque(maxlen=self.keep), container=container
            )
            self._readers[container.name] = reader

    def unwatch(self, name: str) -> None:
        with self._lock:
            reader = self._readers.pop(name, None)
            self.tracks.pop(name, None)
        if reader:
            reader.close()

    def history(self, name: str) -> list[Sample]:
        with self._lock:
            return list(self.tracks[name].history)

    def latest(self, name: str) -> Sample | None:
        with self._lock:
            h = self.tracks[name].history
            return h[-1] if h else None

    def on_sample(self, listener: Callable[[Sampler], None]) -> None:
        """Call ``listener(sampler)`` after every tick, from the sampler's thread."""
        self._listeners.append(listener)

    # -- the thread ----------------------------------------------------------------------
    def start(self) -> Sampler:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="pycont-sampler", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            for reader in self._readers.values():
                reader.close()
            self._readers.clear()

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            t_cpu = time.thread_time()
            self.sample_once()
            for listener in list(self._listeners):
                try:
                    listener(self)
                except Exception as err:  # noqa: BLE001 - a listener must not kill the sampler
                    self._note(f"listener {listener!r}: {err!r}")
            self.cpu_seconds += time.thread_time() - t_cpu
            next_tick += self.interval
            delay = next_tick - time.monotonic()
            if delay < 0:  # fell behind (a busy host): skip ahead, do not burst
                next_tick = time.monotonic()
                delay = 0
            self._stop.wait(delay)

    def _note(self, msg: str) -> None:
        if len(self.errors) < 100:
            self.errors.append(msg)

    def sample_once(self) -> None:
        """One tick: read every watched container (also callable without the thread)."""
        # CPU, throttling, memory, its peak and pids every tick; limits, OOM and I/O once a
        # second: they change rarely, and that keeps a tick at 4 (v2) or 5 (v1) pread(2)s.
        slow = self.ticks % max(1, round(1 / self.interval)) == 0
        now = time.monotonic()
        with self._lock:
            items = list(self._readers.items())
        for name, reader in items:
            track = self.tracks.get(name)
            if track is None or track.ended:
                continue
            try:
                if not reader.opened():
                    raise FileNotFoundError(f"no cgroup files of {name} could be opened")
                reading = reader.read(full=slow)
            except OSError as err:  # the cgroup is gone: the container ended
                track.ended = True
                track.error = str(err)
                self._ended(track, now)
                continue
            self._append(name, track, now, reading)
        self.ticks += 1

    def _append(self, name: str, track: Track, now: float, r: Reading) -> None:
        prev = self._prev.get(name)
        self._prev[name] = (now, r)
        track.peak = max(track.peak, r.memory_peak)
        if prev is None:
            return
        t_prev, before = prev
        if r.oom_kills > before.oom_kills:
            track.oom_times.append(now - self._t0)
        dt = max(now - t_prev, 1e-6)
        cpu = 100.0 * (r.cpu_usage_ns - before.cpu_usage_ns) / (dt * 1e9)
        # sched-bwc.rst: nr_throttled counts the periods in which the quota ran out. Any rise
        # since the last sample means the kernel held the container back in this interval.
        periods = r.cpu_nr_periods - before.cpu_nr_periods
        throttled = r.cpu_nr_throttled - before.cpu_nr_throttled
        sample = Sample(
            t=now - self._t0,
            cpu_percent=max(cpu, 0.0),
            cpu_limit_percent=100.0 * r.cpu_limit if r.cpu_limit is not None else None,
            throttled_percent=100.0 * min(throttled, periods) / periods if periods > 0 else 0.0,
            memory=r.memory,
            memory_peak=r.memory_peak,
            memory_limit=r.memory_limit,
            pids=r.pids,
            oom_kills=r.oom_kills,
            io_read=r.io_read_bytes,
            io_write=r.io_write_bytes,
            throttled=throttled > 0,
        )
        with self._lock:
            track.history.append(sample)

    def _ended(self, track: Track, now: float) -> None:
        """An OOM kill of PID 1 ends the container before a 1 Hz reading may see the counter,
        and takes the cgroup's files with it: the runtime recorded the kill (and, where it
        does, the memory high-water mark), so take them from its record."""
        from pycont.errors import PycontError

        with contextlib.suppress(PycontError, OSError):
            c = track.container
            state = c.state() if c is not None else None
            if state is not None and state.oom_killed and not track.oom_times:
                track.oom_times.append(now - self._t0)
            recorded = getattr(state, "memory_peak", None)
            if isinstance(recorded, int):
                track.peak = max(track.peak, recorded)

    def overhead_percent(self) -> float:
        """The sampler's own CPU use, as a percentage of one CPU, since it started."""
        wall = time.monotonic() - self._t0
        return 100.0 * self.cpu_seconds / wall if wall > 0 else 0.0


def watch(containers: Iterable[Container], interval: float = 0.1) -> Sampler:
    """A started sampler watching ``containers``."""
    s = Sampler(interval)
    for c in containers:
        s.watch(c)
    return s.start()
