"""Live plots of containers against their limits, with sliders that change the limits.

A :class:`Dashboard` draws the sampler's history (pycont.monitor) with matplotlib into an image
widget, a few times a second, from its own thread: CPU % with the ``--cpus`` limit as a dashed
line and every sampling interval in which the kernel throttled it shaded; memory with its
``--memory`` limit, the kernel's own high-water mark (dotted) and a red mark at that peak where
the OOM killer struck. A slider per limit the container has calls ``Container.update`` (docker
update) while it runs. When it stops, the widget is replaced in place by a static PNG, so the
notebook reads on GitHub and passes nbval. Nothing here ever prints from a background thread.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pycont.monitor import Sample, Sampler

if TYPE_CHECKING:
    from pycont.runtime.container import Container

MIB = 1 << 20
CPU_CAPTION = (
    "CPU %: a 0.5 s mean of 0.1 s windows. The --cpus quota holds per 100 ms period; a window "
    "that does not line up with the periods can read a little above the limit."
)
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def render_png(sampler: Sampler, names: Sequence[str], window: float = 30.0) -> bytes:
    """The two panels (CPU, memory) of the given containers as PNG bytes."""
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
        t = [s.t for s in hist]
        t_end = max(t_end, t[-1])
        capped = capped or any(s.cpu_limit_percent is not None for s in hist)
        # One sample per 100 ms is one CFS period: single readings swing around the quota.
        # A 0.5 s moving mean shows what the limit does.
        cpu = _moving_mean([s.cpu_percent for s in hist], 5)
        cpu_ax.plot(t, cpu, color=colour, label=name)
        limits = [s.cpu_limit_percent for s in hist]
        if any(v is not None for v in limits):
            cpu_ax.step(
                t,
                [v if v is not None else float("nan") for v in limits],
                color=colour,
                linestyle="--",
                linewidth=1,
                where="post",
                label=f"{name} --cpus limit",
            )
        # Every sampling interval in which the kernel throttled it (cpu.stat nr_throttled rose).
        for start, end in _throttled_spans(hist, sampler.interval):
            cpu_ax.axvspan(start, end, color=colour, alpha=0.12, linewidth=0)
        if any(s.throttled for s in hist):
            cpu_ax.fill_between([], [], color=colour, alpha=0.12, label=f"{name} throttled")
        mem_ax.plot(t, [s.memory / MIB for s in hist], color=colour, label=name)
        # The kernel's high-water mark (memory.max_usage_in_bytes / memory.peak) sees what
        # happens between two samples, the last allocation before an OOM kill too.
        peaks = [s.memory_peak / MIB for s in hist]
        peak_end = max(track.peak, hist[-1].memory_peak) / MIB
        mem_ax.step(
            [*t, t[-1]] if peak_end > peaks[-1] else t,
            [*peaks, peak_end] if peak_end > peaks[-1] else peaks,
            color=colour,
            linestyle=":",
            linewidth=1,
            where="post",
            label=f"{name} peak (kernel's high-water mark)",
        )
        mem_limits = [s.memory_limit / MIB if s.memory_limit else float("nan") for s in hist]
        if any(v == v for v in mem_limits):  # not all NaN
            mem_ax.step(
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
            mem_ax.axvline(t_oom, color="red", linewidth=1.5)
            mem_ax.plot([t_oom], [at], marker="X", color="red", markersize=9)
            mem_ax.annotate(
                f"OOM kill at {at:.1f} MiB",
                (t_oom, at),
                xytext=(-4, -12),
                textcoords="offset points",
                ha="right",
                color="red",
                fontsize=9,
            )
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


class Dashboard:
    """Live CPU and memory of ``containers`` against their limits.

    >>> dash = Dashboard([c]).show()   # live; sliders change the limits
    >>> dash.stop()                    # the widget becomes a static picture
    >>> Dashboard([c]).run(10)         # both, blocking for 10 seconds
    """

    def __init__(
        self,
        containers: Sequence[Container],
        *,
        interval: float = 0.1,
        redraw: float = 0.5,
        window: float = 30.0,
        controls: bool = True,
    ) -> None:
        self.containers = list(containers)
        self.sampler = Sampler(interval)
        for c in self.containers:
            self.sampler.watch(c)
        self.redraw = redraw
        self.window = window
        self.controls = controls
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handle: Any = None
        self._image: Any = None
        self._status: Any = None
        self._box: Any = None
        self.last_png = b""

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.containers]

    def png(self) -> bytes:
        self.last_png = render_png(self.sampler, self.names, self.window)
        return self.last_png

    def _sliders(self) -> list[Any]:
        """A row per container: a slider for each limit it has, "no limit" for each it has
        not (a slider would pretend a value; ``update`` can still set one)."""
        import ipywidgets as w

        ncpu = os.cpu_count() or 1
        rows = []
        for c in self.containers:
            lim = c.limits()
            row: list[Any] = [w.Label(c.name, layout=w.Layout(width="10em"))]
            if lim.nano_cpus:
                cpus = w.FloatSlider(
                    value=lim.nano_cpus / 1e9,
                    min=0.1,
                    max=float(max(ncpu, lim.nano_cpus / 1e9)),
                    step=0.1,
                    description="CPUs",
                    continuous_update=False,
                    readout_format=".1f",
                )
                cpus.observe(
                    lambda ch, c=c: self._update(c, cpus=round(ch["new"], 2)), names="value"
                )
                row.append(cpus)
            else:
                row.append(w.Label("CPUs: no limit", layout=w.Layout(width="16em")))
            if lim.memory:
                mem = w.IntSlider(
                    value=lim.memory // MIB,
                    min=8,
                    max=max(1024, lim.memory // MIB),
                    step=8,
                    description="memory MiB",
                    continuous_update=False,
                )
                mem.observe(lambda ch, c=c: self._set_memory(c, ch["new"]), names="value")
                row.append(mem)
            else:
                row.append(w.Label("memory: no limit", layout=w.Layout(width="16em")))
            rows.append(w.HBox(row))
        return rows

    def _set_memory(self, c: Container, mib: int) -> None:
        # docker update -m alone is refused above the memory+swap limit (v1 with swap
        # accounting): move memory+swap along, at docker's default of twice the memory.
        from pycont.errors import PycontError

        try:
            c.update(memory=f"{mib}m", memory_swap=f"{2 * mib}m")
            if self._status is not None:
                self._status.value = f"{c.name}: memory={mib}m (memory+swap {2 * mib}m)"
        except PycontError:
            self._update(c, memory=f"{mib}m")

    def _update(self, c: Container, **limit: Any) -> None:
        # Runs in the kernel's thread (a comm message from the browser), never the sampler's.
        from pycont.errors import PycontError

        try:
            c.update(**limit)
            msg = f"{c.name}: {', '.join(f'{k}={v}' for k, v in limit.items())}"
        except PycontError as err:
            msg = f"{c.name}: {err}"
        if self._status is not None:
            self._status.value = msg

    def show(self) -> Dashboard:
        """Display the live dashboard and start sampling and drawing."""
        import ipywidgets as w
        from IPython.display import display

        # Shown at its own size: the static PNG left at stop() then looks the same.
        # The caption on reading the CPU line is drawn under the plot itself (not a tooltip:
        # the static PNG left at stop() keeps it).
        self._image = w.Image(format="png", value=self.png(), layout=w.Layout(width="720px"))
        self._status = w.Label("")
        parts = [self._image]
        if self.controls:
            parts += [*self._sliders(), self._status]
        self._box = w.VBox(parts)
        self._handle = display(self._box, display_id=True)
        self.sampler.start()
        self._thread = threading.Thread(
            target=self._draw_loop, name="pycont-dashboard", daemon=True
        )
        self._thread.start()
        return self

    def _draw_loop(self) -> None:
        while not self._stop.wait(self.redraw):
            with contextlib.suppress(Exception):  # a closed widget must not print a traceback
                self._image.value = self.png()

    def stop(self) -> bytes:
        """Stop sampling; replace the widget by a static PNG of the last state. Returns it."""
        from IPython.display import Image

        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sampler.stop()
        png = self.png()
        if self._handle is not None:
            self._handle.update(Image(png))
        if self._box is not None:
            self._box.close()
        return png

    def run(self, seconds: float) -> bytes:
        """Show live for ``seconds`` (the cell waits), then leave the static picture."""
        self.show()
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            png = self.stop()
        return png
