"""What a comparison found: frozen results, each with its provenance, a text and an HTML table.

Sizes are int bytes, times float seconds. Every result says where it was measured (machine,
host kernel, guest kernel, accelerator and why, date) and whether it is a live measurement or
figures recorded earlier (``recorded=True``, with the command that produced them).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from pycont.format import binary_size


@dataclass(frozen=True)
class Machine:
    cpu_model: str
    cores: int
    ram: int  # bytes


@dataclass(frozen=True)
class Provenance:
    """Where and how figures were obtained."""

    accel: str  # "tcg" | "kvm"
    accel_reason: str
    guest_kernel: str
    host_kernel: str
    machine: Machine
    date: str  # ISO 8601, UTC
    image: str
    recorded: bool = False
    command: str = ""  # what produced recorded figures

    def line(self) -> str:
        m = self.machine
        head = "recorded" if self.recorded else "measured"
        out = (
            f"{head} {self.date} on {m.cpu_model} ({m.cores} cores, {binary_size(m.ram)}), "
            f"host kernel {self.host_kernel}, guest kernel {self.guest_kernel}, "
            f"accel {self.accel} ({self.accel_reason}), image {self.image}"
        )
        return out + (f"; by `{self.command}`" if self.command else "")


Row = tuple[str, str, str]  # what, container, VM


def _sec(s: float) -> str:
    return f"{s:.3f} s"


def _size(n: int) -> str:
    return binary_size(n)


class _Table:
    """Text and HTML rendering shared by the results: rows, ratios and the provenance."""

    title = ""
    provenance: Provenance

    def rows(self) -> list[Row]:
        raise NotImplementedError

    @property
    def ratios(self) -> dict[str, float]:
        raise NotImplementedError

    def notes(self) -> list[str]:
        return []

    def __str__(self) -> str:
        rows = [("", "container", "VM"), *self.rows()]
        w = [max(len(r[i]) for r in rows) for i in range(3)]
        out = [self.title]
        out += [f"  {a:<{w[0]}}  {b:>{w[1]}}  {c:>{w[2]}}".rstrip() for a, b, c in rows]
        out += [f"  {k}: {v:.2f}x" for k, v in self.ratios.items()]
        out += [f"  {n}" for n in self.notes()]
        out.append(f"  ({self.provenance.line()})")
        return "\n".join(out)

    def _repr_html_(self) -> str:
        e = html.escape
        body = "".join(
            f"<tr><td style='text-align:left'>{e(a)}</td><td>{e(b)}</td><td>{e(c)}</td></tr>"
            for a, b, c in self.rows()
        )
        ratios = "".join(
            f"<tr><td style='text-align:left' colspan=2>{e(k)}</td><td>{v:.2f}x</td></tr>"
            for k, v in self.ratios.items()
        )
        notes = "".join(f"<br>{e(n)}" for n in self.notes())
        return (
            f"<table><caption><b>{e(self.title)}</b></caption>"
            "<tr><th></th><th>container</th><th>VM</th></tr>"
            f"{body}{ratios}</table>"
            f"<small>{notes}{'<br>' if notes else ''}{e(self.provenance.line())}</small>"
        )


@dataclass(frozen=True)
class Phases:
    """Seconds from the request to each moment."""

    ready: float  # container: its command runs; VM: the guest's init said READY
    first_output: float  # the first bytes of the command's output reached the caller
    exit: float  # the command's exit was known to the caller


@dataclass(frozen=True)
class StartResult(_Table):
    command: tuple[str, ...]
    container: Phases
    vm: Phases
    provenance: Provenance
    title = "start: request to ready, first output, exit"

    def rows(self) -> list[Row]:
        c, v = self.container, self.vm
        return [
            ("ready", _sec(c.ready), _sec(v.ready)),
            ("first output", _sec(c.first_output), _sec(v.first_output)),
            ("exit", _sec(c.exit), _sec(v.exit)),
        ]

    @property
    def ratios(self) -> dict[str, float]:
        c, v = self.container, self.vm
        return {
            "ready vm/container": v.ready / c.ready,
            "first output vm/container": v.first_output / c.first_output,
            "exit vm/container": v.exit / c.exit,
        }

    def notes(self) -> list[str]:
        return [f"command: {' '.join(self.command)}"]


@dataclass(frozen=True)
class MemoryResult(_Table):
    """An idle ``sleep``: what it costs the host, and the guest kernel's own view."""

    container_charge: int  # the container cgroup's memory usage
    vm_rss: int  # qemu's RSS (smaps_rollup)
    vm_pss: int  # qemu's PSS: its shared pages divided among their users
    vm_peak: int  # qemu's VmHWM
    guest_ram: int  # -m
    guest_mem_total: int  # the guest's MemTotal
    guest_mem_available: int
    provenance: Provenance
    title = "memory of an idle sleep"

    @property
    def guest_used(self) -> int:
        """MemTotal - MemAvailable: what the guest's kernel counts as used inside."""
        return self.guest_mem_total - self.guest_mem_available

    @property
    def kernel_reserved(self) -> int:
        """-m minus MemTotal: what the guest kernel keeps for itself before counting."""
        return self.guest_ram - self.guest_mem_total

    def rows(self) -> list[Row]:
        return [
            ("host: cgroup charge / qemu PSS", _size(self.container_charge), _size(self.vm_pss)),
            ("host: qemu RSS (peak)", "", f"{_size(self.vm_rss)} ({_size(self.vm_peak)})"),
            ("guest RAM (-m)", "", _size(self.guest_ram)),
            ("guest MemTotal", "", _size(self.guest_mem_total)),
            ("guest kernel reserved (-m - MemTotal)", "", _size(self.kernel_reserved)),
            ("guest used (MemTotal - MemAvailable)", "", _size(self.guest_used)),
        ]

    @property
    def ratios(self) -> dict[str, float]:
        c = self.container_charge
        return {
            "vm pss/container charge": self.vm_pss / c,
            "vm rss/container charge": self.vm_rss / c,
            "guest used/container charge": self.guest_used / c,
        }


@dataclass(frozen=True)
class CpuTask:
    name: str  # "loop" | "syscalls"
    script: str  # the busybox sh line that was timed
    size: int  # N: loop iterations or dd blocks
    host: float  # seconds, the fastest of the rounds
    container: float
    vm: float


@dataclass(frozen=True)
class CpuResult(_Table):
    tasks: tuple[CpuTask, ...]
    rounds: int  # host and container: the fastest of this many runs; the VM ran once
    resolution: float  # seconds: the clock read inside (/proc/uptime)
    provenance: Provenance
    title = "CPU: the same work in the same static busybox"

    def rows(self) -> list[Row]:
        return [
            (f"{t.name} (N={t.size}) [host {_sec(t.host)}]", _sec(t.container), _sec(t.vm))
            for t in self.tasks
        ]

    @property
    def ratios(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for t in self.tasks:
            out[f"{t.name} vm/container"] = t.vm / t.container
            out[f"{t.name} container/host"] = t.container / t.host
        return out

    def notes(self) -> list[str]:
        return [
            f"timed inside from /proc/uptime (resolution {self.resolution:g} s); host and "
            f"container: fastest of {self.rounds}, VM: one run"
        ] + [f"{t.name}: {t.script}" for t in self.tasks]


@dataclass(frozen=True)
class DensitySide:
    kind: str  # "container" | "vm"
    metric: str  # what was summed: "cgroup charge" | "qemu PSS"
    fitted: int  # how many fit within the budget
    started: int  # how many were started (the last one may have crossed the budget)
    total: int  # bytes: the summed cost of the ones that fitted
    per_unit: int  # bytes: total / fitted
    stopped_by: str  # "budget" | "count bound (N)" | "time bound (T s)"
    seconds: float
    estimate: int  # budget // per_unit: an extrapolation (every unit costing the same)


@dataclass(frozen=True)
class DensityResult(_Table):
    budget: int
    container: DensitySide
    vm: DensitySide
    provenance: Provenance
    title = "density: idle units that fit in a memory budget"

    def rows(self) -> list[Row]:
        c, v = self.container, self.vm
        return [
            ("cost summed", c.metric, v.metric),
            ("fitted (started)", f"{c.fitted} ({c.started})", f"{v.fitted} ({v.started})"),
            ("per unit", _size(c.per_unit), _size(v.per_unit)),
            ("stopped by", c.stopped_by, v.stopped_by),
            ("estimate: budget / per unit", str(c.estimate), str(v.estimate)),
            ("seconds", f"{c.seconds:.1f}", f"{v.seconds:.1f}"),
        ]

    @property
    def ratios(self) -> dict[str, float]:
        c, v = self.container, self.vm
        out = {}
        if c.per_unit and v.per_unit:
            out["per unit vm/container"] = v.per_unit / c.per_unit
        if v.estimate:
            out["estimate containers/VMs"] = c.estimate / v.estimate
        return out

    def notes(self) -> list[str]:
        return [f"budget {_size(self.budget)}; the estimate is an extrapolation, not a count"]


@dataclass(frozen=True)
class SizesResult(_Table):
    image_bytes: int  # the image's layers (what `pycont images` shows)
    kernel_bytes: int  # the guest's vmlinux
    initrd_bytes: int  # image root + pycont's boot files + the command
    provenance: Provenance
    title = "sizes: what each one starts from"

    def rows(self) -> list[Row]:
        return [
            ("image layers", _size(self.image_bytes), _size(self.image_bytes)),
            ("kernel", "(the host's)", _size(self.kernel_bytes)),
            ("initrd", "", _size(self.initrd_bytes)),
        ]

    @property
    def ratios(self) -> dict[str, float]:
        return {
            "vm artefacts/image": (self.kernel_bytes + self.initrd_bytes) / self.image_bytes,
            "initrd/image": self.initrd_bytes / self.image_bytes,
        }


@dataclass(frozen=True)
class Comparison:
    """Everything ``run_all`` measured, in one place."""

    start: StartResult
    memory: MemoryResult
    cpu: CpuResult
    density: DensityResult
    sizes: SizesResult
    provenance: Provenance
    seconds: float = 0.0  # how long the whole comparison took
    parts: tuple[str, ...] = field(default=("start", "memory", "cpu", "density", "sizes"))

    def results(self) -> list[_Table]:
        return [getattr(self, p) for p in self.parts]

    @property
    def ratios(self) -> dict[str, float]:
        return {f"{p}: {k}": v for p in self.parts for k, v in getattr(self, p).ratios.items()}

    def __str__(self) -> str:
        return "\n\n".join(str(r) for r in self.results())

    def _repr_html_(self) -> str:
        return "".join(r._repr_html_() for r in self.results())
