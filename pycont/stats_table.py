"""``pycont stats``: docker's columns, read from each container's cgroup files.

CPU % needs two readings: the CPU time the cgroup used between them over the wall time, so
100% is one full CPU (as docker shows it). Memory is the cgroup's own usage against its limit
(or against the host's memory when it has none, as docker does).
"""

from __future__ import annotations

import contextlib
import html
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pycont.errors import ContainerNotFound, InvalidState, PycontError, UsageError
from pycont.format import binary_size, decimal_size

HEADER = (
    "CONTAINER ID",
    "NAME",
    "CPU %",
    "MEM USAGE / LIMIT",
    "MEM %",
    "NET I/O",
    "BLOCK I/O",
    "PIDS",
)


@dataclass(frozen=True)
class StatsRow:
    """One container's line of ``docker stats``, in numbers."""

    id: str
    name: str
    cpu_percent: float
    mem_usage: int
    mem_limit: int
    net_rx: int
    net_tx: int
    block_read: int
    block_write: int
    pids: int

    @property
    def mem_percent(self) -> float:
        return 100.0 * self.mem_usage / self.mem_limit if self.mem_limit else 0.0

    def cells(self) -> tuple[str, ...]:
        return (
            self.id[:12],
            self.name,
            f"{self.cpu_percent:.2f}%",
            f"{binary_size(self.mem_usage)} / {binary_size(self.mem_limit)}",
            f"{self.mem_percent:.2f}%",
            f"{decimal_size(self.net_rx)} / {decimal_size(self.net_tx)}",
            f"{decimal_size(self.block_read)} / {decimal_size(self.block_write)}",
            str(self.pids),
        )


def host_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def sample(containers: Sequence[object], interval: float = 0.5) -> list[StatsRow]:
    """Two readings ``interval`` seconds apart for each container; skips ones that stop."""
    from pycont.runtime.container import Container

    first = {}
    for c in containers:
        assert isinstance(c, Container)
        with contextlib.suppress(PycontError, OSError):
            first[c.id] = (c, c.stats())
    time.sleep(interval)
    rows = []
    for c, before in first.values():
        try:
            now = c.stats()
            rx, tx = c.net_io()
        except (PycontError, OSError):
            continue
        rows.append(
            StatsRow(
                id=c.id,
                name=c.name,
                cpu_percent=now.cpu_percent(before) or 0.0,
                mem_usage=now.memory_current or 0,
                mem_limit=now.memory_limit or host_memory(),
                net_rx=rx,
                net_tx=tx,
                block_read=now.io_read_bytes or 0,
                block_write=now.io_write_bytes or 0,
                pids=now.pids_current or 0,
            )
        )
    return rows


class StatsTable(list[StatsRow]):
    """Rows of ``docker stats``: a text table in a terminal, an HTML one in a notebook."""

    def __str__(self) -> str:
        return table(self)

    def _repr_html_(self) -> str:
        return rows_html(self)


def stats(*containers: object, interval: float = 0.5) -> StatsTable:
    """``docker stats --no-stream`` for the given containers (default: every running one)."""
    from pycont.runtime.container import containers as running

    picked = list(containers) or [c for c in running() if c.config.cgroup]
    return StatsTable(sample(picked, interval))


def table(rows: Sequence[StatsRow]) -> str:
    cells = [HEADER, *(r.cells() for r in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(HEADER))]
    return "\n".join(
        "   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


def rows_html(rows: Sequence[StatsRow]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADER)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r.cells()) + "</tr>" for r in rows
    )
    return f"<table class='pycont-stats'><tr>{head}</tr>{body}</table>"


def _select(names: Sequence[str], all: bool) -> list[object]:
    from pycont.runtime.container import containers, get

    if names:
        picked = [get(n) for n in names]
        for c in picked:
            if c.config.cgroup is False:
                raise UsageError(f"container {c.name} has no cgroup: {c.config.cgroup_note}")
        return list(picked)
    return [c for c in containers(all=all) if c.status != "dead" and c.config.cgroup]


def stats_loop(names: Sequence[str], stream: bool = True, all: bool = False) -> int:
    """The CLI: one table (``--no-stream``), or a table redrawn every second until ^C."""
    try:
        while True:
            rows = sample(_select(names, all))
            if names and not rows:
                raise InvalidState(f"{', '.join(names)}: not running")
            text = table(rows)
            if not stream:
                print(text)
                return 0
            sys.stdout.write("\033[2J\033[H" + text + "\n")
            sys.stdout.flush()
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    except ContainerNotFound:
        raise
