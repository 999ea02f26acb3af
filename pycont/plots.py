"""The dashboard's picture: the sampler's history (pycont.monitor) drawn with matplotlib as a PNG.

Two panels on shared axes, one colour per container or VM. CPU % with the ``--cpus`` limit as a
dashed line and every sampling interval in which the kernel throttled it shaded; memory with its
``--memory`` limit, the kernel's own high-water mark (dotted) and a red mark at that peak where
the OOM killer struck. A VM is drawn as what it costs the host (its qemu process: CPU time and
RSS) against what it was given at boot (vCPUs, -m), with the guest kernel's own view of the same
VM as a dotted line of the same colour: the gap between the two is the price of a second kernel.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from pycont.monitor import Sample, Sampler, Track

MIB = 1 << 20
CPU_CAPTION = (
    "CPU %: a 0.5 s mean of 0.1 s windows. The --cpus quota holds per 100 ms period; a window "
    "that does not line up with the periods can read a little above the limit."
)
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
NAN = float("nan")


def render_png(sampler: Sampler, names: Sequence[str], window: float = 30.0) -> bytes:
    """The two panels (CPU, memory) of the given containers and VMs as PNG bytes."""
    # A bare Figure renders with Agg on its own: no pyplot, and the learner's backend stays.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.6), dpi=80)
    cpu_ax, mem_ax = fig.subplots(2, 1, sharex=True)
    t_end = 0.0
    capped = False
    for i, name in enumerate(names):
        colour = COLOURS[i % len(COLOURS)]
        try:
            hist = sampler.history(name)
            track = sampler.tracks[name]
        except KeyError:
            continue
        if not hist:
            continue
        t_end = max(t_end, hist[-1].t)
        if track.kind == "vm":
            _draw_vm(cpu_ax, mem_ax, name, hist, colour)
            continue
        capped = capped or any(s.cpu_limit_percent is not None for s in hist)
        _draw_cpu(cpu_ax, name, hist, colour, sampler.interval)
        _draw_memory(mem_ax, name, track, hist, colour)
    cpu_ax.set_ylabel("CPU % (100 = 1 CPU)")
    cpu_ax.set_ylim(bottom=0)
    mem_ax.set_ylabel("memory (MiB)")
    mem_ax.set_ylim(bottom=0)
    mem_ax.set_xlabel("seconds")
    if t_end > window:
        cpu_ax.set_xlim(t_end - window, t_end)
    for ax in (cpu_ax, mem_ax):
        ax.grid(alpha=0.3)
        handles, _ = ax.get_legend_handles_labels()
        if handles:
            ax.legend(loc="best", fontsize=8, framealpha=0.7)
    if capped:
        # The quota is enforced per 100 ms CFS period; a reading covers a sampling window that
        # does not line up with the periods, so it can hold a little more than one quota.
        fig.text(0.01, 0.005, CPU_CAPTION, fontsize=7.5, color="#555555", va="bottom")
    fig.tight_layout(rect=(0, 0.04 if capped else 0, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _draw_cpu(ax: Any, name: str, hist: list[Sample], colour: str, interval: float) -> None:
    t = [s.t for s in hist]
    # One sample per 100 ms is one CFS period: single readings swing around the quota.
    # A 0.5 s moving mean shows what the limit does.
    ax.plot(t, _moving_mean([s.cpu_percent for s in hist], 5), color=colour, label=name)
    limits = [s.cpu_limit_percent for s in hist]
    if any(v is not None for v in limits):
        ax.step(
            t,
            [v if v is not None else NAN for v in limits],
            color=colour,
            linestyle="--",
            linewidth=1,
            where="post",
            label=f"{name} --cpus limit",
        )
    # Every sampling interval in which the kernel throttled it (cpu.stat nr_throttled rose).
    for start, end in _throttled_spans(hist, interval):
        ax.axvspan(start, end, color=colour, alpha=0.12, linewidth=0)
    if any(s.throttled for s in hist):
        ax.fill_between([], [], color=colour, alpha=0.12, label=f"{name} throttled")


def _draw_memory(ax: Any, name: str, track: Track, hist: list[Sample], colour: str) -> None:
    t = [s.t for s in hist]
    ax.plot(t, [s.memory / MIB for s in hist], color=colour, label=name)
    # The kernel's high-water mark (memory.max_usage_in_bytes / memory.peak) sees what
    # happens between two samples, the last allocation before an OOM kill too.
    peaks = [s.memory_peak / MIB for s in hist]
    peak_end = max(track.peak, hist[-1].memory_peak) / MIB
    ax.step(
        [*t, t[-1]] if peak_end > peaks[-1] else t,
        [*peaks, peak_end] if peak_end > peaks[-1] else peaks,
        color=colour,
        linestyle=":",
        linewidth=1,
        where="post",
        label=f"{name} peak (kernel's high-water mark)",
    )
    mem_limits = [s.memory_limit / MIB if s.memory_limit else NAN for s in hist]
    if any(v == v for v in mem_limits):  # not all NaN
        ax.step(
            t,
            mem_limits,
            color=colour,
            linestyle="--",
            linewidth=1,
            where="post",
            label=f"{name} --memory limit",
        )
    for t_oom in track.oom_times:
        # At the peak: what the container had when the kernel killed it.
        before = [s.memory_peak for s in hist if s.t <= t_oom]
        at = max(before[-1] if before else 0, track.peak if t_oom >= t[-1] else 0) / MIB
        ax.axvline(t_oom, color="red", linewidth=1.5)
        ax.plot([t_oom], [at], marker="X", color="red", markersize=9)
        ax.annotate(
            f"OOM kill at {at:.1f} MiB",
            (t_oom, at),
            xytext=(-4, -12),
            textcoords="offset points",
            ha="right",
            color="red",
            fontsize=9,
        )


def _draw_vm(cpu_ax: Any, mem_ax: Any, name: str, hist: list[Sample], colour: str) -> None:
    """A VM: its qemu process on the host (solid), against the vCPUs and the guest RAM it was
    booted with (dashed), and the guest kernel's own view (dotted, with a dot per reading)."""
    t = [s.t for s in hist]
    host = f"{name} (VM: qemu on the host)"
    guest = f"{name} (guest's own view)"
    cpu_ax.plot(t, _moving_mean([s.cpu_percent for s in hist], 5), color=colour, label=host)
    # With TCG each vCPU is one host thread: qemu's vCPU work cannot exceed vCPUs x 100 %
    # (its I/O threads come on top).
    cpu_ax.step(
        t,
        [s.cpu_limit_percent if s.cpu_limit_percent is not None else NAN for s in hist],
        color=colour,
        linestyle="--",
        linewidth=1,
        where="post",
        label=f"{name} vCPUs (fixed at boot)",
    )
    mem_ax.plot(t, [s.memory / MIB for s in hist], color=colour, label=host)
    mem_ax.step(
        t,
        [s.memory_limit / MIB if s.memory_limit else NAN for s in hist],
        color=colour,
        linestyle="--",
        linewidth=1,
        where="post",
        label=f"{name} guest RAM (-m, fixed at boot)",
    )
    style = {"color": colour, "linestyle": ":", "linewidth": 1.8, "marker": ".", "markersize": 4}
    g_cpu = [(s.t, s.guest_cpu_percent) for s in hist if s.guest_cpu_percent is not None]
    if g_cpu:
        cpu_ax.plot([p[0] for p in g_cpu], [p[1] for p in g_cpu], label=guest, **style)
    g_mem = [(s.t, s.guest_memory / MIB) for s in hist if s.guest_memory is not None]
    if g_mem:
        mem_ax.plot([p[0] for p in g_mem], [p[1] for p in g_mem], label=guest, **style)


def _throttled_spans(hist: Sequence[Sample], interval: float) -> list[tuple[float, float]]:
    """(start, end) of each run of sampling intervals in which the container was throttled;
    a sample covers the interval that ends at its time."""
    spans: list[tuple[float, float]] = []
    prev_t = hist[0].t - interval if hist else 0.0
    for s in hist:
        if s.throttled:
            if spans and spans[-1][1] == prev_t:
                spans[-1] = (spans[-1][0], s.t)
            else:
                spans.append((prev_t, s.t))
        prev_t = s.t
    return spans


def _moving_mean(values: list[float], n: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= n:
            total -= values[i - n]
        out.append(total / min(i + 1, n))
    return out
