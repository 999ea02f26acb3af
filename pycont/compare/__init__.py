"""Container vs VM: the same image, the same command, measured the same way on both.

A container is a host process in namespaces, charged to a cgroup; a VM is a qemu process in
which a second kernel boots. What that costs, side by side::

    from pycont import compare
    ok, why = compare.available()             # qemu and a kernel here? which accelerator?
    r = compare.run_all("busybox")            # start, memory, CPU, density, sizes (~1 min)
    print(r); r.ratios                        # tables, and VM/container ratios
    compare.recorded()                        # the figures of a real run, where no VM boots

Each result is a frozen dataclass (bytes as int, seconds as float) that carries its provenance:
the accelerator and why (under TCG every guest instruction is translated: CPU work is ~20x
slower than under KVM), the guest and host kernels, the machine, the date, and ``recorded``.
"""

from __future__ import annotations

import time

from pycont.compare._density import measure_density
from pycont.compare._measure import (
    measure_cpu,
    measure_memory,
    measure_sizes,
    measure_start,
    sizes_of,
)
from pycont.compare._record import record, recorded, recorded_path
from pycont.compare._results import (
    Comparison,
    CpuResult,
    CpuTask,
    DensityResult,
    DensitySide,
    Machine,
    MemoryResult,
    Phases,
    Provenance,
    SizesResult,
    StartResult,
)

__all__ = [
    "Comparison",
    "CpuResult",
    "CpuTask",
    "DensityResult",
    "DensitySide",
    "Machine",
    "MemoryResult",
    "Phases",
    "Provenance",
    "SizesResult",
    "StartResult",
    "available",
    "measure_cpu",
    "measure_density",
    "measure_memory",
    "measure_sizes",
    "measure_start",
    "record",
    "recorded",
    "recorded_path",
    "run_all",
    "sizes_of",
]


def available() -> tuple[bool, str]:
    """Whether a VM can boot here to compare with (qemu, a kernel, the accelerator), and why."""
    from pycont.vm.guest import in_guest
    from pycont.vm.launch import available as vm_available

    if in_guest():
        return False, "inside the VM harness's guest: a nested TCG boot takes minutes"
    return vm_available()


def run_all(
    image: str = "busybox",
    *,
    budget: str | int = "1g",
    max_containers: int = 50,
    max_vms: int = 6,
    time_limit: float = 60.0,
    memory: str | int = "128m",
    cpu_rounds: int = 3,
    cpu_sizes: dict[str, int] | None = None,
    prefix: str = "cmp",
) -> Comparison:
    """Every measurement, one after the other (about a minute under TCG on 2 cores).
    Names of what it starts begin with ``prefix``; all of it is removed before it returns."""
    from pycont.compare._density import check_bounds
    from pycont.compare._measure import sizes_of, start_and_vm
    from pycont.vm.machine import parse_memory

    check_bounds(budget, max_containers, max_vms, time_limit)
    parse_memory(memory)
    t0 = time.monotonic()
    start, start_vm = start_and_vm(image, ("echo", "hi"), prefix, warmup=True)
    mem = measure_memory(image, memory=memory, prefix=prefix)
    cpu = measure_cpu(image, sizes=cpu_sizes, rounds=cpu_rounds, prefix=prefix)
    density = measure_density(
        image,
        budget=budget,
        max_containers=max_containers,
        max_vms=max_vms,
        time_limit=time_limit,
        memory=memory,
        prefix=prefix,
    )
    sizes = sizes_of(image, start_vm)  # the record of the VM start ran: no extra boot
    return Comparison(
        start=start,
        memory=mem,
        cpu=cpu,
        density=density,
        sizes=sizes,
        provenance=start.provenance,
        seconds=time.monotonic() - t0,
    )
