"""A sampler: containers' CPU, memory, pids and I/O, read from their cgroup files many times a
second into a bounded history, for live plots; VMs beside them, read from their qemu process.

The kernel keeps each cgroup's counters in small text files; reading them costs a syscall, not
a process. The cgroup driver's reader (pycont.cgroups.Reader) opens each file once and re-reads
it with pread(2) at offset 0 (cgroupfs regenerates the text on every read), so watching 20
containers at 10 Hz stays far below 1% of a CPU. The sampler runs in one daemon thread, never
prints, and imports no widget code: widgets.py draws from it.

A VM (pycont.vm.VM) is watched two ways. Every tick reads its qemu process on the host
(pycont.vm.hostview: CPU time, RSS), which is what the VM costs the host. Once a second a second
thread asks the guest's agent for the guest kernel's own view (/proc/meminfo, /proc/stat): a
round trip through qemu that may take tens of ms or fail, so it never holds up a tick.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from pycont.cgroups.reader import Reader, Reading
    from pycont.runtime.container import Container


GUEST_INTERVAL = 1.0  # seconds between two readings of a guest's own view
GUEST_TIMEOUT = 2.0  # an agent that does not answer by then: no guest figure this time


class VMLike(Protocol):
    """What the sampler needs of a VM (pycont.vm.VM); told from a container by ``guest_stats``."""

    @property
    def name(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def pid(self) -> int | None: ...
    @property
    def memory(self) -> int: ...  # guest RAM in bytes (-m)
    @property
    def cpus(self) -> int: ...  # vCPUs (-smp)
    def guest_stats(self, timeout: float = ...) -> Any: ...  # pycont.vm.agent.GuestStats


@dataclass(frozen=True)
class Sample:
    """One reading of one container or VM. CPU figures are percentages of one CPU.

    For a VM the figures are its qemu process on the host (memory: RSS, memory_peak: VmHWM,
    memory_limit: the guest's RAM, cpu_limit_percent: vCPUs x 100, pids: qemu's threads).
    ``guest_memory`` (MemTotal - MemAvailable) and ``guest_cpu_percent`` are the guest kernel's
    own view, in the first sample after each reading of it (about once a second), else None."""

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
    guest_memory: int | None = None
    guest_cpu_percent: float | None = None


@dataclass
class Track:
    """What the sampler keeps for one container or VM."""

    name: str
    history: deque[Sample]
    oom_times: list[float] = field(default_factory=list)
    container: Container | None = None
    ended: bool = False
    error: str = ""
    # The kernel's memory high-water mark, last known: where an OOM kill ends the container,
    # the one the runtime recorded at the end (the cgroup, and its files, are gone by then).
    peak: int = 0
    kind: str = "container"  # or "vm"
    vm: VMLike | None = None
    # The guest's view read since the last sample (guest_memory, guest_cpu_percent).
    guest_new: tuple[int, float | None] | None = None


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
        self._guest_thread: threading.Thread | None = None
        self._guest_prev: dict[str, tuple[float, float]] = {}  # name -> (uptime, cpu_busy)
        self._t0 = time.monotonic()
        self.ticks = 0
        self.cpu_seconds = 0.0  # CPU time the sampler thread used: its own overhead
        self.errors: list[str] = []

    # -- what to watch -------------------------------------------------------------------
    def watch(self, container: Container | VMLike) -> None:
        """Watch a container, or a VM (anything with ``guest_stats``: see :class:`VMLike`)."""
        from pycont.errors import InvalidState

        if hasattr(container, "guest_stats"):
            self._watch_vm(cast("VMLike", container))
            return
        container = cast("Container", container)
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

    def _watch_vm(self, vm: VMLike) -> None:
        from pycont.errors import InvalidState
        from pycont.vm.hostview import ProcessReader

        status, pid = vm.status, vm.pid
        if status != "running" or pid is None:
            raise InvalidState(f"VM {vm.name} is {status}: nothing to watch")
        # A VM cannot use more RAM than -m gave its guest, nor more CPUs than its vCPUs.
        reader = ProcessReader(pid, memory_limit=vm.memory, cpus=vm.cpus)
        with self._lock:
            self.tracks[vm.name] = Track(vm.name, deque(maxlen=self.keep), kind="vm", vm=vm)
            self._readers[vm.name] = reader
        if self._thread is not None and self._thread.is_alive():
            self._start_guest_thread()

    def unwatch(self, name: str) -> None:
        with self._lock:
            reader = self._readers.pop(name, None)
            self.tracks.pop(name, None)
        self._guest_prev.pop(name, None)
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
        if any(t.kind == "vm" for t in self.tracks.values()):
            self._start_guest_thread()
        return self

    def _start_guest_thread(self) -> None:
        if self._guest_thread is None or not self._guest_thread.is_alive():
            self._guest_thread = threading.Thread(
                target=self._guest_loop, name="pycont-sampler-guest", daemon=True
            )
            self._guest_thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in (self._thread, self._guest_thread):
            if thread is not None:
                thread.join(5)
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

    def _guest_loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.sample_guests()
            self._stop.wait(max(0.0, GUEST_INTERVAL - (time.monotonic() - started)))

    def sample_guests(self) -> None:
        """Ask each watched VM's guest for its own view (the guest thread does, once a second).

        A VM whose agent cannot answer only gets no guest figure this time (noted in
        :attr:`errors`, never printed): the host's view of it goes on."""
        with self._lock:
            vms = [(n, t.vm) for n, t in self.tracks.items() if t.vm is not None and not t.ended]
        for name, vm in vms:
            if self._stop.is_set():
                return
            try:
                gs = vm.guest_stats(timeout=GUEST_TIMEOUT)
            except Exception as err:  # noqa: BLE001 - VMError, a VM that just ended, a timeout
                self._note(f"guest stats of {name}: {err}")
                continue
            # CPU %: busy time over all vCPUs per second, both by the guest's own clocks
            # (/proc/stat and /proc/uptime come from one read in the guest), so the agent's
            # round trip does not skew it.
            cpu = None
            before = self._guest_prev.get(name)
            if before is not None and gs.uptime > before[0]:
                cpu = max(0.0, 100.0 * (gs.cpu_busy - before[1]) / (gs.uptime - before[0]))
            self._guest_prev[name] = (gs.uptime, gs.cpu_busy)
            with self._lock:
                track = self.tracks.get(name)
                if track is not None:
                    track.guest_new = (int(gs.mem_used), cpu)

    def _note(self, msg: str) -> None:
        if len(self.errors) < 100:
            self.errors.append(msg)

    def sample_once(self) -> None:
        """One tick: read every watched container and VM (also callable without the thread)."""
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
        guest = None
        if track.vm is not None:
            with self._lock:
                guest, track.guest_new = track.guest_new, None
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
            guest_memory=guest[0] if guest else None,
            guest_cpu_percent=guest[1] if guest else None,
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


def watch(containers: Iterable[Container | VMLike], interval: float = 0.1) -> Sampler:
    """A started sampler watching ``containers`` (and VMs)."""
    s = Sampler(interval)
    for c in containers:
        s.watch(c)
    return s.start()
