"""Density: how many idle containers, how many idle VMs fit in a memory budget.

Units are started one by one; after each, the cost of every unit started so far is read again
(a VM's PSS falls as the next qemu shares its pages) and summed. The first unit that takes the
sum past the budget does not fit. A count bound and a time bound stop the loop earlier. Every
unit started is removed at the end, also on an error or Ctrl-C.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pycont
from pycont.cgroups.units import parse_bytes
from pycont.compare._measure import (
    IDLE,
    container_charge,
    provenance,
    qemu_memory,
    run_container,
    unique,
)
from pycont.compare._results import DensityResult, DensitySide, Provenance
from pycont.errors import PycontError, UsageError

T = TypeVar("T")


@dataclass
class Fill(Generic[T]):
    """The outcome of :func:`fill`: the units are the caller's to remove."""

    units: list[T]
    fitted: int = 0
    started: int = 0
    total: int = 0
    stopped_by: str = ""
    seconds: float = 0.0


def fill(
    fill_: Fill[T],
    start: Callable[[int], T],
    cost: Callable[[T], int],
    *,
    budget: int,
    max_count: int,
    time_limit: float,
    clock: Callable[[], float] = time.monotonic,
) -> Fill[T]:
    """Start units into ``fill_.units`` until their summed cost passes ``budget``, or a bound
    is reached. Pure logic: ``start`` and ``cost`` do the real work."""
    t0 = clock()
    while True:
        if len(fill_.units) >= max_count:
            fill_.stopped_by = f"count bound ({max_count})"
            break
        if clock() - t0 >= time_limit:
            fill_.stopped_by = f"time bound ({time_limit:g} s)"
            break
        fill_.units.append(start(len(fill_.units)))
        total = sum(cost(u) for u in fill_.units)
        if total > budget:
            fill_.stopped_by = "budget"
            break
        fill_.fitted, fill_.total = len(fill_.units), total
    fill_.started = len(fill_.units)
    fill_.seconds = clock() - t0
    return fill_


def side(kind: str, metric: str, f: Fill[Any], budget: int) -> DensitySide:
    per_unit = f.total // f.fitted if f.fitted else 0
    return DensitySide(
        kind=kind,
        metric=metric,
        fitted=f.fitted,
        started=f.started,
        total=f.total,
        per_unit=per_unit,
        stopped_by=f.stopped_by,
        seconds=f.seconds,
        estimate=budget // per_unit if per_unit else 0,
    )


def _remove_all(units: list[Any], remove: Callable[[Any], None]) -> None:
    """Remove every unit; the first error is raised once all were tried."""
    first: BaseException | None = None
    for u in reversed(units):
        try:
            remove(u)
        except PycontError as err:
            first = first or err
    units.clear()
    if first is not None:
        raise first


def check_bounds(budget: str | int, max_containers: int, max_vms: int, time_limit: float) -> int:
    value = budget if isinstance(budget, int) else parse_bytes("budget", str(budget))
    if value <= 0:
        raise UsageError(f"invalid density budget {budget!r}: a size above 0, e.g. 1g or 300m")
    for what, n in (("max_containers", max_containers), ("max_vms", max_vms)):
        if not isinstance(n, int) or n < 1:
            raise UsageError(f"invalid density {what} {n!r}: a whole number from 1")
    if not time_limit > 0:
        raise UsageError(f"invalid density time_limit {time_limit!r}: seconds above 0")
    return value


def measure_density(
    image: str = "busybox",
    *,
    budget: str | int = "1g",
    max_containers: int = 50,
    max_vms: int = 6,
    time_limit: float = 60.0,
    memory: str | int = "128m",
    prefix: str = "cmp",
) -> DensityResult:
    """Idle ``sleep`` containers (cost: cgroup charge), then idle VMs (cost: qemu PSS), each
    alone, until the budget (default 1 GiB) or a bound (count, ``time_limit`` s per kind)."""
    import pycont.vm as vm
    from pycont.vm.machine import parse_memory

    limit = check_bounds(budget, max_containers, max_vms, time_limit)
    parse_memory(memory)  # refused before a container starts
    tag = unique(prefix, "d")

    cf: Fill[pycont.Container] = Fill(units=[])
    try:
        fill(
            cf,
            lambda i: run_container(image, list(IDLE), f"{tag}-c{i}", detach=True),
            container_charge,
            budget=limit,
            max_count=max_containers,
            time_limit=time_limit,
        )
    finally:
        _remove_all(cf.units, lambda c: c.remove(force=True))

    vf: Fill[vm.VM] = Fill(units=[])
    prov: Provenance | None = None
    try:
        fill(
            vf,
            lambda i: vm.boot(image, list(IDLE), name=f"{tag}-v{i}", memory=memory),
            lambda v: qemu_memory(v)[1],
            budget=limit,
            max_count=max_vms,
            time_limit=time_limit,
        )
        prov = provenance(vf.units[0], image)
    finally:
        _remove_all(vf.units, lambda v: v.remove(force=True))
    if prov is None:  # fill() starts at least one unit or raises
        raise PycontError("compare density: no VM was started")
    return DensityResult(
        budget=limit,
        container=side("container", "cgroup charge", cf, limit),
        vm=side("vm", "qemu PSS", vf, limit),
        provenance=prov,
    )
