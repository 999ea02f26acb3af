"""A sampler: containers' CPU, memory, pids and I/O, read from their cgroup files many times a
second into a bounded history, for live plots.

The kernel keeps each cgroup's counters in small text files; reading them costs a syscall, not
a process. The sampler opens each file once and re-reads it with pread(2) at offset 0 (cgroupfs
regenerates the text on every read), so watching 20 containers at 10 Hz stays far below 1% of a
CPU. It runs in one daemon thread, never prints, and imports no widget code: widgets.py
draws from it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pycont.runtime.container import Container

_UNLIMITED = 1 << 60  # v1 writes "no limit" as a page-rounded LONG_MAX


@dataclass(frozen=True)
class Sample:
    """One reading of one container. CPU figures are percentages of one CPU."""

    t: float  # seconds since the sampler started
    cpu_percent: float
    cpu_limit_percent: float | None  # the --cpus quota as a percentage; None: no limit
    throttled_percent: float  # share of CPU periods in which the quota stopped it
    memory: int
    memory_peak: int
    memory_limit: int | None
    pids: int
    oom_kills: int
    io_read: int
    io_write: int


@dataclass
class Track:
    """What the sampler keeps for one container."""

    name: str
    history: deque[Sample]
    oom_times: list[float] = field(default_factory=list)
    container: Container | None = None
    ended: bool = False
    error: str = ""


class _Files:
    """The cgroup files of one container, opened once, re-read with pread."""

    def __init__(self, version: str, dirs: dict[str, str]) -> None:
        self.version = version
        if version == "v2":
            d = dirs["unified"]
            names = {
                "cpu": f"{d}/cpu.stat",
                "cpu_max": f"{d}/cpu.max",
                "mem": f"{d}/memory.current",
                "peak": f"{d}/memory.peak",
                "mem_max": f"{d}/memory.max",
                "events": f"{d}/memory.events",
                "pids": f"{d}/pids.current",
                "io": f"{d}/io.stat",
            }
        else:
            names = {
                "usage": f"{dirs.get('cpuacct', '')}/cpuacct.usage",
                "cpu": f"{dirs.get('cpu', '')}/cpu.stat",
                "quota": f"{dirs.get('cpu', '')}/cpu.cfs_quota_us",
                "period": f"{dirs.get('cpu', '')}/cpu.cfs_period_us",
                "mem": f"{dirs.get('memory', '')}/memory.usage_in_bytes",
                "peak": f"{dirs.get('memory', '')}/memory.max_usage_in_bytes",
                "mem_max": f"{dirs.get('memory', '')}/memory.limit_in_bytes",
                "events": f"{dirs.get('memory', '')}/memory.oom_control",
                "pids": f"{dirs.get('pids', '')}/pids.current",
                "io": f"{dirs.get('blkio', '')}/blkio.throttle.io_service_bytes",
            }
        self.fds: dict[str, int] = {}
        for key, path in names.items():
            with contextlib.suppress(OSError):
                self.fds[key] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()

    def text(self, key: str) -> str:
        fd = self.fds.get(key)
        return os.pread(fd, 4096, 0).decode() if fd is not None else ""

    def number(self, key: str) -> int:
        t = self.text(key)
        return int(t) if t.strip().lstrip("-").isdigit() else 0

    def keyed(self, key: str) -> dict[str, int]:
        out = {}
        for line in self.text(key).splitlines():
            k, _, v = line.partition(" ")
            if v.strip().isdigit():
                out[k] = int(v)
        return out

    def read(self, slow: bool) -> dict[str, float | int | None]:
        """CPU time, memory and pids every tick; the rest only when ``slow`` (1 Hz): that
        keeps a tick at three pread(2) calls per container on v1."""
        out: dict[str, float | int | None] = {
            "mem": self.number("mem"),
            "pids": self.number("pids"),
        }
        if self.version == "v2":
            cpu = self.keyed("cpu")  # v2 has no usage-only file: cpu.stat holds usage_usec
            out["usage_ns"] = cpu.get("usage_usec", 0) * 1000
        else:
            out["usage_ns"] = self.number("usage")
        if slow:
            cpu = cpu if self.version == "v2" else self.keyed("cpu")
            out["periods"] = cpu.get("nr_periods", 0)
            out["throttled"] = cpu.get("nr_throttled", 0)
            out["peak"] = self.number("peak")
            out["oom"] = self.keyed("events").get("oom_kill", 0)
            out.update(self._limits_and_io())
        return out

    def _limits_and_io(self) -> dict[str, float | int | None]:
        out: dict[str, float | int | None] = {}
        if self.version == "v2":
            quota, _, period = self.text("cpu_max").partition(" ")
            out["cpu_limit"] = (
                100.0 * int(quota) / int(period) if quota.isdigit() and period.strip() else None
            )
            mx = self.text("mem_max").strip()
            out["mem_limit"] = int(mx) if mx.isdigit() else None
            rd = wr = 0
            for line in self.text("io").splitlines():
                for kv in line.split()[1:]:
                    k, _, v = kv.partition("=")
                    rd += int(v) if k == "rbytes" else 0
                    wr += int(v) if k == "wbytes" else 0
        else:
            q, p = self.number("quota"), self.number("period")
            out["cpu_limit"] = 100.0 * q / p if q > 0 and p else None
            limit = self.number("mem_max")
            out["mem_limit"] = limit if 0 < limit < _UNLIMITED else None
            rd = wr = 0
            for line in self.text("io").splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[1] in ("Read", "Write"):
                    rd += int(parts[2]) if parts[1] == "Read" else 0
                    wr += int(parts[2]) if parts[1] == "Write" else 0
        out["io_read"], out["io_write"] = rd, wr
        return out


class Sampler:
    """Samples watched containers every ``interval`` seconds in a background thread.

    >>> s = Sampler(interval=0.1); s.watch(c); s.start(); ...; s.stop()
    >>> s.history(c.name)[-1].memory
    """

    def __init__(self, interval: float = 0.1, keep: int = 600) -> None:
        self.interval = interval
        self.keep = keep
        self.tracks: dict[str, Track] = {}
        self._files: dict[str, _Files] = {}
        self._prev: dict[str, tuple[float, dict[str, float | int | None]]] = {}
        self._slow: dict[str, dict[str, float | int | None]] = {}  # the latest 1 Hz figures
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
        from pycont import cgroups
        from pycont.errors import InvalidState

        status = container.status
        if status not in ("running", "paused"):
            raise InvalidState(f"container {container.name} is {status}: nothing to watch")
        cg = container.cgroup()
        version = "v2" if isinstance(cg, cgroups.V2Cgroup) else "v1"
        dirs = cg.paths()
        with self._lock:
            self.tracks[container.name] = Track(
                container.name, deque(maxlen=self.keep), container=container
            )
            self._files[container.name] = _Files(version, dirs)

    def unwatch(self, name: str) -> None:
        with self._lock:
            files = self._files.pop(name, None)
            self.tracks.pop(name, None)
        if files:
            files.close()

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
            for files in self._files.values():
                files.close()
            self._files.clear()

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
        slow = self.ticks % max(1, round(1 / self.interval)) == 0
        now = time.monotonic()
        with self._lock:
            items = list(self._files.items())
        for name, files in items:
            track = self.tracks.get(name)
            if track is None or track.ended:
                continue
            try:
                if not files.fds:
                    raise FileNotFoundError(f"no cgroup files of {name} could be opened")
                raw = files.read(slow or name not in self._slow)
            except OSError as err:  # the cgroup is gone: the container ended
                track.ended = True
                track.error = str(err)
                self._ended(track, now)
                continue
            self._append(name, track, now, raw)
        self.ticks += 1

    def _append(
        self, name: str, track: Track, now: float, raw: dict[str, float | int | None]
    ) -> None:
        prev = self._prev.get(name)
        self._prev[name] = (now, raw)
        slow = self._slow.setdefault(name, {})
        if "periods" in raw:  # a slow reading: update the 1 Hz figures
            before_slow = dict(slow)
            slow.update(raw)
            periods = int(raw["periods"] or 0) - int(before_slow.get("periods") or 0)
            throttled = int(raw["throttled"] or 0) - int(before_slow.get("throttled") or 0)
            slow["throttled_percent"] = (
                100.0 * throttled / periods if periods > 0 and before_slow else 0.0
            )
            if before_slow and int(raw["oom"] or 0) > int(before_slow.get("oom") or 0):
                track.oom_times.append(now - self._t0)
        if prev is None:
            return
        t_prev, before = prev
        dt = max(now - t_prev, 1e-6)
        cpu = 100.0 * (int(raw["usage_ns"] or 0) - int(before["usage_ns"] or 0)) / (dt * 1e9)
        sample = Sample(
            t=now - self._t0,
            cpu_percent=max(cpu, 0.0),
            cpu_limit_percent=_opt_float(slow.get("cpu_limit")),
            throttled_percent=float(slow.get("throttled_percent") or 0.0),
            memory=int(raw["mem"] or 0),
            memory_peak=max(int(slow.get("peak") or 0), int(raw["mem"] or 0)),
            memory_limit=_opt_int(slow.get("mem_limit")),
            pids=int(raw["pids"] or 0),
            oom_kills=int(slow.get("oom") or 0),
            io_read=int(slow.get("io_read") or 0),
            io_write=int(slow.get("io_write") or 0),
        )
        with self._lock:
            track.history.append(sample)

    def _ended(self, track: Track, now: float) -> None:
        """An OOM kill of PID 1 ends the container before a 1 Hz reading may see the counter:
        the shim recorded it, so mark it at the end."""
        from pycont.errors import PycontError

        with contextlib.suppress(PycontError, OSError):
            c = track.container
            if c is not None and c.state().oom_killed and not track.oom_times:
                track.oom_times.append(now - self._t0)

    def overhead_percent(self) -> float:
        """The sampler's own CPU use, as a percentage of one CPU, since it started."""
        wall = time.monotonic() - self._t0
        return 100.0 * self.cpu_seconds / wall if wall > 0 else 0.0


def _opt_float(v: float | int | None) -> float | None:
    return None if v is None else float(v)


def _opt_int(v: float | int | None) -> int | None:
    return None if v is None else int(v)


def watch(containers: Iterable[Container], interval: float = 0.1) -> Sampler:
    """A started sampler watching ``containers``."""
    s = Sampler(interval)
    for c in containers:
        s.watch(c)
    return s.start()
