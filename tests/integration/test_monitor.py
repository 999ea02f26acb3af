"""The sampler (pycont.monitor): what it reads is what the kernel's cgroup files say.

Real containers with ``--cpus``/``--memory`` limits, watched at 10 Hz; every figure is checked
against the limit that was set or against the cgroup file read directly. CPU shares on a
shared 2-CPU machine vary with the other load: bands are wide and a window is retried before
failing. How cheap the sampler is is a benchmark (bench/monitor_overhead.py), not a test.
"""

from __future__ import annotations

import math
import os
import statistics
import threading
from collections.abc import Iterator

import pytest

import pycont
from pycont.monitor import Sample, Sampler
from tests.helpers import requires, wait_for

pytestmark = requires("root", "overlay")

MiB = 1 << 20
SPIN = "while :; do :; done"
# A shell that holds ~20 MB in a variable; the loop keeps the shell itself alive (busybox sh
# execs the last command of -c, which would free it).
HOLD_20MB = "x=$(head -c 20000000 /dev/zero | tr '\\0' a); echo ready; while sleep 1000; do :; done"
# Waits for /go (so the sampler is watching before it starts), then doubles a string until
# the memory limit stops it.
HOG_ON_GO = "while [ ! -e /go ]; do sleep 0.1; done; x=a; while :; do x=$x$x; done"
WINDOW = 20  # samples: 2 s at 10 Hz
ATTEMPTS = 3


def sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "pycont-sampler"]


@pytest.fixture
def sampler() -> Iterator[Sampler]:
    s = Sampler(interval=0.1)
    try:
        yield s
    finally:
        s.stop()
        assert sampler_threads() == [], "stop() left the sampler thread running"


def detached(name: str, script: str, **options: object) -> pycont.Container:
    return pycont.run("busybox", ["sh", "-c", script], detach=True, name=name, **options)


def samples(s: Sampler, name: str, n: int) -> list[Sample]:
    """Wait for ``n`` more samples of ``name``; returns the latest ``n``."""
    start = len(s.history(name))
    wait_for(
        lambda: len(s.history(name)) >= start + n or s.tracks[name].ended,
        timeout=30,
        what=f"{n} samples of {name}",
    )
    return s.history(name)[-n:]


def cgroup_file(c: pycont.Container, controller: str, name: str) -> str:
    with open(os.path.join(c.cgroup().paths()[controller], name)) as f:
        return f.read().strip()


# -- CPU -------------------------------------------------------------------------------------
def test_cpu_of_a_half_cpu_container(name: str, sampler: Sampler) -> None:
    c = detached(name, SPIN, cpus="0.5")
    sampler.watch(c)
    sampler.start()
    medians = []
    for _ in range(ATTEMPTS):
        window = samples(sampler, name, WINDOW)
        medians.append(statistics.median(s.cpu_percent for s in window))
        if 30 <= medians[-1] <= 70:
            break
    assert 30 <= medians[-1] <= 70, f"median CPU % per {WINDOW}-sample window: {medians}"
    assert window[-1].cpu_limit_percent == 50
    # A loop that would use a whole CPU runs out of its quota in the 100 ms periods it gets a
    # CPU for (on a loaded machine not all of them): the intervals the sampler marks throttled
    # are those in which cpu.stat nr_throttled rose.
    marked = [s.throttled for s in window]
    assert any(marked), marked
    assert all(s.throttled_percent > 0 for s in window if s.throttled)
    assert not sampler.tracks[name].ended


def test_cpu_limit_is_none_without_cpus(name: str, sampler: Sampler) -> None:
    c = detached(name, "sleep 1000")
    sampler.watch(c)
    sampler.start()
    (last,) = samples(sampler, name, 1)
    assert last.cpu_limit_percent is None
    assert last.memory_limit is None  # no -m: the kernel's "no limit"


# -- memory ----------------------------------------------------------------------------------
def test_memory_and_limit_of_a_64m_container(name: str, sampler: Sampler) -> None:
    c = detached(name, HOLD_20MB, memory="64m")
    wait_for(lambda: "ready\n" in list(c.logs()), timeout=30, what=f"{name} to fill its memory")
    sampler.watch(c)
    sampler.start()
    last = samples(sampler, name, 3)[-1]
    kernel = int(cgroup_file(c, "memory", "memory.usage_in_bytes"))
    assert last.memory_limit == 64 * MiB
    assert 20_000_000 <= last.memory <= 64 * MiB
    # the same counter read a moment apart: a sleeping shell does not change it much
    assert abs(last.memory - kernel) <= 4 * MiB, (last.memory, kernel)
    assert last.memory_peak >= last.memory
    assert last.pids == int(cgroup_file(c, "pids", "pids.current")) == 2  # sh and sleep
    assert last.oom_kills == 0


def test_an_oom_kill_ends_the_track_with_one_oom_time(name: str, sampler: Sampler) -> None:
    c = detached(name, HOG_ON_GO, memory="32m")
    sampler.watch(c)
    sampler.start()
    samples(sampler, name, 2)
    c.exec(["touch", "/go"])
    track = sampler.tracks[name]
    wait_for(lambda: track.ended, timeout=30, what="the track to end")
    wait_for(lambda: track.oom_times, timeout=10, what="the OOM kill to be noted")
    assert len(track.oom_times) == 1
    assert track.error  # why it ended: the cgroup went away
    assert c.wait(timeout=30) == 137
    assert c.state().oom_killed
    history = sampler.history(name)
    assert history and track.oom_times[0] >= history[0].t


GROW_1MB = "x=$(head -c 1048576 /dev/zero | tr '\\0' a); y=; while :; do y=$y$x; sleep 0.25; done"


def test_the_peak_is_the_kernels_high_water_mark(name: str, sampler: Sampler) -> None:
    # y=$y$x builds a new, longer copy before the old one is freed: the usage read at 10 Hz
    # mostly stays near half the limit, while the kernel's high-water mark climbs to it. A
    # sample may still land on the last allocation before the kill, so the peak is never
    # below a sample, not always above every one.
    c = detached(name, GROW_1MB, memory="32m")
    sampler.watch(c)
    sampler.start()
    track = sampler.tracks[name]
    wait_for(lambda: track.ended, timeout=60, what=f"{name} to be OOM-killed")
    history = sampler.history(name)
    assert c.wait(timeout=30) == 137
    assert track.oom_times
    assert 24 * MiB <= track.peak <= 32 * MiB, (track.peak, [s.memory_peak for s in history])
    assert track.peak >= max(s.memory for s in history)
    assert all(s.memory_peak >= s.memory for s in history)


# -- the thread ------------------------------------------------------------------------------
def test_overhead_is_a_finite_number(name: str, sampler: Sampler) -> None:
    c = detached(name, "sleep 1000")
    sampler.watch(c)
    sampler.start()
    samples(sampler, name, 10)
    overhead = sampler.overhead_percent()
    assert math.isfinite(overhead) and overhead >= 0
    assert sampler.ticks >= 10


def test_the_sampler_never_prints_and_stop_joins_it(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    c = detached(name, "sleep 1000")

    def broken(_s: Sampler) -> None:
        raise RuntimeError("a listener that fails")

    s = Sampler(interval=0.1)
    s.watch(c)
    s.on_sample(broken)
    s.start()
    assert len(sampler_threads()) == 1
    samples(s, name, 5)
    c.remove(force=True)  # the cgroup goes: the track ends, without a word
    wait_for(lambda: s.tracks[name].ended, timeout=30, what="the track to end")
    s.stop()
    assert sampler_threads() == []
    assert capsys.readouterr() == ("", "")
    assert any("a listener that fails" in e for e in s.errors)  # noted, not printed


def test_watching_a_container_that_is_not_running_ends_at_once(name: str, sampler: Sampler) -> None:
    # Its cgroup is gone: a track of zeros that never ends would draw a container at 0 % CPU
    # and 0 bytes forever. Either watch() refuses it or the track ends on the first tick.
    c = pycont.run("busybox", ["true"], name=name)
    assert c.status == "exited"
    try:
        sampler.watch(c)
    except pycont.PycontError:
        return
    sampler.start()
    wait_for(lambda: sampler.ticks >= 3, timeout=10, what="three ticks")
    track = sampler.tracks[name]
    history = sampler.history(name)
    assert track.ended, f"a track of {len(history)} samples that never ends: {history[-1:]}"
