"""One measurement at a time: start, memory, CPU and sizes of a container and a VM of one image.

Each function starts what it measures and removes it again in a ``finally``, so an error or a
Ctrl-C leaves no container, VM or temp file behind. Containers and VMs are never run at the
same time: one does not slow the other down.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import re
import secrets
import subprocess
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pycont
from pycont.compare._results import (
    CpuResult,
    CpuTask,
    Machine,
    MemoryResult,
    Phases,
    Provenance,
    SizesResult,
    StartResult,
)
from pycont.errors import ContainerNotFound, PycontError, StartError, UsageError
from pycont.vm.errors import VMError

if TYPE_CHECKING:
    from pycont.vm.machine import VM

IDLE = ("sleep", "3600")
SETTLE = 1.0  # s between ready and a memory reading, the same for both
UPTIME_RESOLUTION = 0.01  # proc(5): /proc/uptime has two decimals
MARK = "PYCONT-T"
# The clock read inside, identical on the host, in the container and in the guest: /proc/uptime
# (busybox's date has no %N here; every /proc shows uptime since its own kernel booted).
TIMED = "read t0 _ </proc/uptime; {work}; read t1 _ </proc/uptime; echo " + MARK + " $t0 $t1"
WORK = {
    # pure interpretation in busybox ash: arithmetic and a builtin test, no syscall per turn
    "loop": "i=0; while [ $i -lt {n} ]; do i=$((i+1)); done",
    # one read(2) and one write(2) of 64 bytes per block, into tmpfs (/dev/shm everywhere)
    "syscalls": "dd if=/dev/zero of={file} bs=64 count={n} 2>/dev/null; rm -f {file}",
}
HOST_TARGET = {"loop": 0.25, "syscalls": 0.3}  # seconds on the host (TCG: ~20x for the loop)


def unique(prefix: str, what: str) -> str:
    """A container or VM name: the caller's prefix, a random token, what it is for."""
    return f"{prefix}-{secrets.token_hex(3)}-{what}"


def machine() -> Machine:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return Machine(cpu_model=model or platform.machine(), cores=os.cpu_count() or 1, ram=ram)


def provenance(v: VM, image: str) -> Provenance:
    return Provenance(
        accel=v.accel,
        accel_reason=v.accel_reason,
        guest_kernel=v.kernel_version,
        host_kernel=platform.release(),
        machine=machine(),
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        image=image,
    )


def run_container(image: str, cmd: list[str], name: str, **options: Any) -> pycont.Container:
    """pycont.run, but a container that failed to start is removed too (run() keeps it as
    exited with its code, as docker does; here nothing may stay behind)."""
    try:
        return pycont.run(image, cmd, name=name, **options)
    except StartError:
        with contextlib.suppress(ContainerNotFound):
            pycont.get(name).remove(force=True)
        raise


@contextlib.contextmanager
def idle_container(image: str, name: str) -> Iterator[pycont.Container]:
    c = run_container(image, list(IDLE), name, detach=True)
    try:
        yield c
    finally:
        c.remove(force=True)


@contextlib.contextmanager
def idle_vm(image: str, name: str, memory: str | int = "128m") -> Iterator[VM]:
    import pycont.vm as vm

    v = vm.boot(image, list(IDLE), name=name, memory=memory)
    try:
        yield v
    finally:
        v.remove(force=True)


def container_charge(c: pycont.Container) -> int:
    """The container cgroup's memory usage (v1 memory.usage_in_bytes, v2 memory.current)."""
    with c.cgroup().reader() as r:
        return int(r.read().memory)


def qemu_memory(v: VM) -> tuple[int, int, int]:
    """qemu's RSS, PSS and peak RSS in bytes: v.host_memory() (pycont.vm.hostview), else read
    here from proc(5): /proc/PID/smaps_rollup (Rss, Pss) and /proc/PID/status (VmHWM)."""
    try:
        hm = v.host_memory()
        return int(hm.rss), int(hm.pss), int(hm.peak)
    except ModuleNotFoundError as err:
        if err.name != "pycont.vm.hostview":
            raise
    pid = v.pid
    if pid is None:
        raise VMError(f"VM {v.name} is not running: no qemu to read")
    kib: dict[str, int] = {}
    for path in (f"/proc/{pid}/smaps_rollup", f"/proc/{pid}/status"):
        try:
            with open(path) as f:
                for line in f:
                    key, _, rest = line.partition(":")
                    if rest.strip().endswith("kB"):
                        kib[key] = int(rest.split()[0])
        except OSError as err:
            raise VMError(f"read {path} of VM {v.name}'s qemu: {err.strerror}") from err
    return kib["Rss"] * 1024, kib["Pss"] * 1024, kib.get("VmHWM", kib["Rss"]) * 1024


# -- start ----------------------------------------------------------------------------------
def _start_container(image: str, cmd: list[str], name: str) -> Phases:
    t0 = time.perf_counter()
    c = run_container(image, cmd, name, wait=False)
    try:
        ready = time.perf_counter() - t0
        assert c.stdout is not None  # run() pipes stdout by default
        first = c.stdout.readline()
        first_at = time.perf_counter() - t0
        rest = c.stdout.read()
        c.stdout.close()
        code = c.wait()
        exit_at = time.perf_counter() - t0
    finally:
        c.remove(force=True)
    if code != 0 or not first:
        raise PycontError(f"compare start: container {cmd} exited {code}, output {first + rest!r}")
    return Phases(ready=ready, first_output=first_at, exit=exit_at)


def _start_vm(image: str, cmd: list[str], name: str) -> tuple[Phases, VM]:
    import pycont.vm as vm

    seen: list[float] = []

    def on_output(_text: str) -> None:
        if not seen:
            seen.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    v = vm.run(image, cmd, name=name, on_output=on_output, rm=True)
    exit_at = time.perf_counter() - t0
    if v.exit_code != 0 or not seen:
        raise VMError(f"compare start: VM {cmd} exited {v.exit_code} ({v.exit_reason})")
    # READY is counted by boot() from its own start, microseconds after run()'s request
    return Phases(ready=v.marks["READY"], first_output=seen[0], exit=exit_at), v


def start_and_vm(
    image: str, command: Sequence[str], prefix: str, warmup: bool
) -> tuple[StartResult, VM]:
    """measure_start, and the VM record it ran (removed: its config is kept for sizes)."""
    cmd = list(command)
    if not cmd:
        raise UsageError("compare start: give a command, e.g. ['echo', 'hi']")
    if warmup:
        # once per process or image, not per start: the container API's fork server, the
        # VM's guest root and boot files (cached in the store)
        _start_container(image, cmd, unique(prefix, "warm"))
        _start_vm(image, cmd, unique(prefix, "warm"))
    container = _start_container(image, cmd, unique(prefix, "start"))
    phases, v = _start_vm(image, cmd, unique(prefix, "start"))
    res = StartResult(
        command=tuple(cmd), container=container, vm=phases, provenance=provenance(v, image)
    )
    return res, v


def measure_start(
    image: str = "busybox",
    command: Sequence[str] = ("echo", "hi"),
    *,
    warmup: bool = True,
    prefix: str = "cmp",
) -> StartResult:
    """Request to ready, first output and exit of a one-shot command, container then VM.
    ``warmup``: one untimed start of each first (what is paid once, not per start)."""
    return start_and_vm(image, command, prefix, warmup)[0]


# -- memory -----------------------------------------------------------------------------------
def measure_memory(
    image: str = "busybox", *, memory: str | int = "128m", prefix: str = "cmp"
) -> MemoryResult:
    """An idle sleep: the container's cgroup charge; qemu's RSS/PSS and the guest's meminfo."""
    from pycont.vm.machine import parse_memory

    parse_memory(memory)  # refused before a container starts
    with idle_container(image, unique(prefix, "mem")) as c:
        time.sleep(SETTLE)
        charge = container_charge(c)
    with idle_vm(image, unique(prefix, "mem"), memory) as v:
        time.sleep(SETTLE)
        gs = v.guest_stats()
        rss, pss, peak = qemu_memory(v)
        prov = provenance(v, image)
        ram = v.memory
    return MemoryResult(
        container_charge=charge,
        vm_rss=rss,
        vm_pss=pss,
        vm_peak=peak,
        guest_ram=ram,
        guest_mem_total=gs.mem_total,
        guest_mem_available=gs.mem_available,
        provenance=prov,
    )


# -- CPU --------------------------------------------------------------------------------------
def script(task: str, n: int, file: str) -> str:
    """The busybox sh line that does ``task`` of size ``n`` between two clock reads."""
    return TIMED.format(work=WORK[task].format(n=n, file=file))


def elapsed(output: str) -> float:
    """Seconds between the two /proc/uptime reads that ``script`` prints."""
    m = re.search(MARK + r" (\d+\.\d+) (\d+\.\d+)", output)
    if not m:
        raise PycontError(f"compare cpu: no timing line in the output: {output[-200:]!r}")
    return round(float(m.group(2)) - float(m.group(1)), 2)


def _host_run(busybox: str, line: str) -> str:
    res = subprocess.run(
        [busybox, "sh", "-c", line], capture_output=True, text=True, env={}, check=False
    )
    if res.returncode != 0:
        raise PycontError(f"compare cpu: {busybox} sh -c failed ({res.returncode}): {res.stderr}")
    return res.stdout


def calibrate(busybox: str, task: str, target: float, file: str) -> int:
    """N for which ``task`` takes about ``target`` s on the host: a short run timed from
    outside (the fastest of three, minus an empty run), scaled, 2 significant digits."""

    def fastest(n: int) -> float:
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            _host_run(busybox, WORK[task].format(n=n, file=file))
            best = min(best, time.perf_counter() - t)
        return best

    n0 = 20000
    per = max(fastest(n0) - fastest(0), 1e-4) / n0
    n = int(target / per)
    return max(1000, int(float(f"{n:.2g}")))


def measure_cpu(
    image: str = "busybox",
    *,
    sizes: dict[str, int] | None = None,
    rounds: int = 3,
    prefix: str = "cmp",
) -> CpuResult:
    """The same busybox work on the host, in a container and in a VM, timed from inside.
    ``sizes``: N per task ("loop", "syscalls"); default from a host calibration."""
    from pycont.vm.initramfs import find_busybox

    if rounds < 1:
        raise UsageError(f"invalid rounds {rounds}: at least 1")
    unknown = set(sizes or {}) - set(WORK)
    if unknown:
        raise UsageError(f"invalid CPU task {sorted(unknown)}: accepted {sorted(WORK)}")
    busybox = find_busybox()
    file = f"/dev/shm/{unique(prefix, 'dd')}"  # the same path on the host, in /dev/shm of each
    times: dict[str, dict[str, list[float]]] = {t: {"host": [], "container": []} for t in WORK}
    try:
        n = {t: (sizes or {}).get(t) or calibrate(busybox, t, HOST_TARGET[t], file) for t in WORK}
        with idle_container(image, unique(prefix, "cpu")) as c:
            # host and container in turn, round after round: drift hits both alike
            for t in WORK:
                for _ in range(rounds):
                    times[t]["host"].append(elapsed(_host_run(busybox, script(t, n[t], file))))
                    r = c.exec(["sh", "-c", script(t, n[t], file)])
                    if not isinstance(r, pycont.ExecResult) or r.exit_code != 0:
                        raise PycontError(f"compare cpu: {t} in the container failed: {r}")
                    times[t]["container"].append(elapsed(r.output))
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(file)
    with idle_vm(image, unique(prefix, "cpu")) as v:
        for t in WORK:
            g = v.exec(script(t, n[t], file), timeout=300)
            if g.exit_code != 0:
                raise VMError(f"compare cpu: {t} in the VM exited {g.exit_code}: {g.stderr}")
            times[t]["vm"] = [elapsed(g.stdout)]
        prov = provenance(v, image)
    tasks = tuple(
        CpuTask(
            name=t,
            script=script(t, n[t], "/dev/shm/FILE"),
            size=n[t],
            # the fastest run: a busy neighbour only ever adds time, never removes it
            host=min(times[t]["host"]),
            container=min(times[t]["container"]),
            vm=times[t]["vm"][0],
        )
        for t in WORK
    )
    return CpuResult(tasks=tasks, rounds=rounds, resolution=UPTIME_RESOLUTION, provenance=prov)


# -- sizes ------------------------------------------------------------------------------------
def sizes_of(image: str, v: VM) -> SizesResult:
    """Sizes from a VM of ``image`` (running, ended or removed: its config says them)."""
    from pycont import images

    art = v.artefacts()
    return SizesResult(
        image_bytes=images.Store().lookup(images.resolve(image).name).size,
        kernel_bytes=art["kernel"],
        initrd_bytes=art["initrd"],
        provenance=provenance(v, image),
    )


def measure_sizes(image: str = "busybox", *, prefix: str = "cmp") -> SizesResult:
    """The image's layer bytes against the VM's kernel and initrd (a VM of ``true`` is run)."""
    import pycont.vm as vm

    return sizes_of(image, vm.run(image, ["true"], name=unique(prefix, "size"), rm=True))
