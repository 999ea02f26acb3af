"""What a process costs the host (pycont.vm.hostview), and a VM in the sampler and its picture.

ProcessReader is read against real child processes (a sleeper, a CPU burner, one that holds
memory, one with threads) and cross-checked with what the kernel reports elsewhere: VmRSS,
the children's rusage after they are reaped. The sampler's VM path runs on a VM-like object
whose "qemu" is such a child and whose guest view is made up: the guest's arithmetic
(CPU % from two readings, failures) is tested without booting anything.
"""

from __future__ import annotations

import io
import os
import resource
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import matplotlib.image as mpimg
import numpy as np
import pytest

from pycont.errors import InvalidState
from pycont.monitor import Sampler
from pycont.plots import COLOURS, render_png
from pycont.vm.agent import GuestStats
from pycont.vm.errors import VMError
from pycont.vm.hostview import HostMemory, ProcessReader, host_memory, smaps_rollup
from pycont.widgets import Dashboard, vm_label

MiB = 1 << 20
SLEEPER = "import sys, time; print('ready', flush=True); time.sleep(60)"
# Burns 0.3 s of its own CPU time (time.process_time: what the kernel charges it), then waits.
BURNER = (
    "import sys, time\n"
    "while time.process_time() < 0.3: pass\n"
    "print('ready', flush=True); time.sleep(60)"
)
# Holds 64 MiB written page by page (so resident), then frees them on a line from stdin.
HOLDER = (
    "import sys, time\n"
    "b = bytearray(64 << 20)\n"
    "for i in range(0, len(b), 4096): b[i] = 1\n"
    "print('ready', flush=True); sys.stdin.readline(); del b\n"
    "print('freed', flush=True); time.sleep(60)"
)
THREADS = (
    "import threading, time\n"
    "for _ in range(3): threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
    "print('ready', flush=True); time.sleep(60)"
)


class Child:
    """A python child that prints "ready" once set up; killed and reaped by the fixture."""

    def __init__(self, script: str) -> None:
        self.p = subprocess.Popen(
            [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.pid = self.p.pid
        self.expect("ready")

    def expect(self, line: str) -> None:
        assert self.p.stdout is not None
        assert self.p.stdout.readline().strip() == line

    def kill(self) -> None:
        """SIGKILL, left a zombie (not reaped). os.kill: Popen.kill() would poll, and reap it."""
        os.kill(self.pid, signal.SIGKILL)
        os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)  # it has exited, still unreaped

    def reap(self) -> resource.struct_rusage:
        os.kill(self.pid, signal.SIGKILL)  # a zombie ignores it
        _, _, usage = os.wait4(self.pid, 0)
        self.p.returncode = -9
        for f in (self.p.stdin, self.p.stdout):
            if f is not None:
                f.close()
        return usage


@pytest.fixture
def spawn() -> Iterator[Any]:
    children: list[Child] = []

    def start(script: str = SLEEPER) -> Child:
        children.append(Child(script))
        return children[-1]

    yield start
    for c in children:
        if c.p.returncode is None:
            c.reap()


def status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- ProcessReader ----------------------------------------------------------------------------
def test_a_sleeper_reads_as_its_proc_files_say(spawn: Any) -> None:
    child = spawn()
    with ProcessReader(child.pid, memory_limit=128 * MiB, cpus=2) as r:
        assert r.opened()
        reading = r.read()
        rss = status_kib(child.pid, "VmRSS") * 1024
    assert reading.memory == rss  # statm's resident pages are VmRSS (proc(5))
    assert reading.memory_peak >= reading.memory > 1 * MiB
    assert reading.pids == 1
    assert (reading.memory_limit, reading.cpu_limit) == (128 * MiB, 2.0)
    assert (reading.oom_kills, reading.io_read_bytes, reading.cpu_nr_periods) == (0, 0, 0)


def test_cpu_time_is_what_the_kernel_charged_the_process(spawn: Any) -> None:
    child = spawn(BURNER)
    with ProcessReader(child.pid) as r:
        burnt = r.read().cpu_usage_ns
    usage = child.reap()
    charged = (usage.ru_utime + usage.ru_stime) * 1e9
    tick = 1e9 / os.sysconf("SC_CLK_TCK")
    assert burnt >= 0.3e9 - tick  # it burnt 0.3 s before it said ready
    assert burnt <= charged + tick  # no more than the kernel charged it in all


def test_threads_are_counted_as_pids(spawn: Any) -> None:
    child = spawn(THREADS)
    with ProcessReader(child.pid) as r:
        assert r.read().pids == 4 == len(os.listdir(f"/proc/{child.pid}/task"))


def test_freed_memory_leaves_the_peak(spawn: Any) -> None:
    child = spawn(HOLDER)
    with ProcessReader(child.pid) as r:
        held = r.read()
        assert held.memory >= 64 * MiB
        assert child.p.stdin is not None
        child.p.stdin.write("free\n")
        child.p.stdin.flush()
        child.expect("freed")
        after = r.read(full=False)
    assert after.memory < held.memory - 32 * MiB  # the 64 MiB went back to the kernel
    assert after.memory_peak >= held.memory  # VmHWM keeps the high-water mark


def test_files_are_opened_once(spawn: Any) -> None:
    child = spawn()
    before = open_fds()
    r = ProcessReader(child.pid)
    assert open_fds() == before + 3  # stat, statm, status
    for _ in range(20):
        r.read(full=False)
    assert open_fds() == before + 3
    r.close()
    assert open_fds() == before


def test_an_exited_process_reads_as_gone(spawn: Any) -> None:
    child = spawn()
    with ProcessReader(child.pid) as r:
        r.read()
        child.kill()
        with pytest.raises(OSError, match="has exited"):  # a zombie: exited, not yet reaped
            r.read()
        child.reap()
        with pytest.raises(OSError):  # reaped: the fds' /proc entry is gone (ESRCH)
            r.read()


def test_no_such_process_opens_nothing(spawn: Any) -> None:
    child = spawn()
    child.reap()
    with ProcessReader(child.pid) as r:
        assert not r.opened()


def test_host_memory_of_a_process(spawn: Any) -> None:
    child = spawn(HOLDER)
    hm = host_memory(child.pid)
    assert isinstance(hm, HostMemory)
    assert hm.rss >= 64 * MiB
    assert 0 < hm.pss <= hm.rss <= hm.peak
    rss, pss = smaps_rollup(child.pid)
    assert abs(rss - hm.rss) < 8 * MiB and pss > 0


def test_host_memory_of_a_gone_process_is_one_line(spawn: Any) -> None:
    child = spawn()
    child.kill()
    with pytest.raises(VMError, match=f"/proc/{child.pid}/smaps_rollup: process") as zombie:
        host_memory(child.pid)
    child.reap()
    with pytest.raises(VMError, match=f"smaps_rollup: process {child.pid} has exited") as reaped:
        host_memory(child.pid)
    assert "\n" not in str(zombie.value) + str(reaped.value)


# -- a VM in the sampler ----------------------------------------------------------------------
@dataclass
class FakeVM:
    """A VM as the sampler sees it: a real host process as its qemu, a made-up guest."""

    name: str
    pid: int | None
    memory: int = 128 * MiB
    cpus: int = 1
    status: str = "running"
    answers: list[GuestStats | Exception] = field(default_factory=list)

    def guest_stats(self, timeout: float = 5.0) -> GuestStats:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def guest(uptime: float, busy: float, used_mib: int) -> GuestStats:
    total = 120 * MiB
    return GuestStats(uptime, total, total - used_mib * MiB, 0, 0, busy, uptime, 1)


def tick(s: Sampler, guests: bool = False) -> None:
    if guests:
        s.sample_guests()
    s.sample_once()


def test_a_vm_is_sampled_as_its_qemu_with_the_guests_view(spawn: Any) -> None:
    child = spawn()
    v = FakeVM("hd-v", child.pid, answers=[guest(10.0, 4.0, 30), guest(12.0, 5.5, 33)])
    s = Sampler(interval=0.1)
    s.watch(v)
    assert s.tracks["hd-v"].kind == "vm"
    tick(s)  # the first reading: a base for the deltas, no sample yet
    tick(s, guests=True)  # guest memory; no CPU % yet (one reading)
    tick(s)
    tick(s, guests=True)  # (5.5 - 4.0) s busy in (12 - 10) s: 75 % of one CPU
    first, plain, second = s.history("hd-v")
    assert (first.guest_memory, first.guest_cpu_percent) == (30 * MiB, None)
    assert (plain.guest_memory, plain.guest_cpu_percent) == (None, None)
    assert (second.guest_memory, second.guest_cpu_percent) == (33 * MiB, 75.0)
    assert second.memory == status_kib(child.pid, "VmRSS") * 1024
    assert (second.memory_limit, second.cpu_limit_percent) == (128 * MiB, 100.0)
    s.stop()


def test_an_agent_that_fails_only_leaves_the_guest_series_empty(
    spawn: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    child = spawn()
    v = FakeVM("hd-v", child.pid, answers=[VMError("agent: connection refused")] * 3)
    s = Sampler(interval=0.1)
    s.watch(v)
    for _ in range(3):
        tick(s, guests=True)
    assert [x.guest_memory for x in s.history("hd-v")] == [None, None]
    assert all(x.memory > 0 for x in s.history("hd-v"))
    assert s.errors == ["guest stats of hd-v: agent: connection refused"] * 3
    s.stop()
    assert capsys.readouterr() == ("", "")


def test_the_guest_is_read_off_the_tick_thread_and_stopped_with_it(spawn: Any) -> None:
    child = spawn()
    asked = threading.Event()

    class Slow(FakeVM):
        def guest_stats(self, timeout: float = 5.0) -> GuestStats:
            asked.set()
            threading.Event().wait(min(timeout, 0.5))  # an agent round trip under TCG
            raise VMError("agent: timed out")

    s = Sampler(interval=0.1)
    s.watch(Slow("hd-v", child.pid))
    s.start()
    assert asked.wait(10)
    n = s.ticks
    while s.ticks < n + 3:  # ticks go on while the guest call hangs
        threading.Event().wait(0.05)
    s.stop()
    assert [t.name for t in threading.enumerate() if t.name.startswith("pycont-")] == []


def test_a_vm_that_is_not_running_cannot_be_watched(spawn: Any) -> None:
    with pytest.raises(InvalidState, match="VM hd-v is exited: nothing to watch"):
        Sampler().watch(FakeVM("hd-v", None, status="exited"))


def test_a_vm_whose_qemu_ended_ends_its_track(spawn: Any) -> None:
    child = spawn()
    s = Sampler()
    s.watch(FakeVM("hd-v", child.pid))
    tick(s)
    child.reap()
    tick(s)
    assert s.tracks["hd-v"].ended
    s.stop()


# -- a VM in the picture ----------------------------------------------------------------------
def colour_pixels(png: bytes, colour: str) -> int:
    img = np.asarray(mpimg.imread(io.BytesIO(png)))[..., :3]
    rgb = np.array([int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(img - rgb).max(axis=-1) < 0.1).sum())


def test_a_vm_is_drawn_beside_a_container(spawn: Any) -> None:
    child = spawn()
    v = FakeVM("hd-v", child.pid, answers=[guest(10.0 + i, 4.0 + i / 2, 30) for i in range(9)])
    s = Sampler(interval=0.1)
    s.watch(v)
    for i in range(10):
        tick(s, guests=i % 2 == 1)
    png = render_png(s, ["none-such", "hd-v"])  # an unknown name is skipped
    assert png.startswith(b"\x89PNG")
    assert colour_pixels(png, COLOURS[1]) > 200  # the VM's lines, in its colour
    # The guest's own view is drawn too: without it, fewer pixels of the VM's colour.
    track = s.tracks["hd-v"]
    bare = deque(replace(x, guest_memory=None, guest_cpu_percent=None) for x in track.history)
    assert any(x.guest_memory for x in track.history)
    no_guest = Sampler(interval=0.1)
    no_guest.tracks["hd-v"] = replace(track, history=bare)
    assert colour_pixels(render_png(no_guest, ["none-such", "hd-v"]), COLOURS[1]) < colour_pixels(
        png, COLOURS[1]
    )
    s.stop()


def test_a_vm_gets_a_label_not_sliders(spawn: Any) -> None:
    child = spawn()
    v = FakeVM("hd-v", child.pid, memory=256 * MiB, cpus=2)
    assert vm_label(v) == "hd-v: VM, -m 256m, 2 vCPUs (fixed at boot)"
    assert vm_label(FakeVM("x", None)) == "x: VM, -m 128m, 1 vCPU (fixed at boot)"
    dash = Dashboard([v])
    (row,) = dash._sliders()
    assert [type(w).__name__ for w in row.children] == ["Label"]
    assert row.children[0].value == vm_label(v)
    dash.sampler.stop()
