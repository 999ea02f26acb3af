"""Live plots of containers (and VMs) against their limits, with sliders that change the limits.

A :class:`Dashboard` draws the sampler's history (pycont.monitor) with matplotlib into an image
widget, a few times a second, from its own thread: CPU % with the ``--cpus`` limit as a dashed
line and every sampling interval in which the kernel throttled it shaded; memory with its
``--memory`` limit, the kernel's own high-water mark (dotted) and a red mark at that peak where
the OOM killer struck. A slider per limit the container has calls ``Container.update`` (docker
update) while it runs. When it stops, the widget is replaced in place by a static PNG, so the
notebook reads on GitHub and passes nbval. Nothing here ever prints from a background thread.

A VM (pycont.vm.VM) shares the axes: its qemu process on the host, its guest's own view dotted,
against the RAM and vCPUs it was booted with. These are fixed at boot: no slider, a label.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from pycont.monitor import Sampler, VMLike
from pycont.plots import (  # noqa: F401 - _moving_mean, _throttled_spans: importable here too
    COLOURS,
    CPU_CAPTION,
    MIB,
    _moving_mean,
    _throttled_spans,
    render_png,
)

if TYPE_CHECKING:
    from pycont.runtime.container import Container

# The drawing lives in pycont.plots; these names stay importable from here.
__all__ = ["COLOURS", "CPU_CAPTION", "Dashboard", "render_png", "vm_label"]


class Dashboard:
    """Live CPU and memory of ``containers`` (and VMs) against their limits.

    >>> dash = Dashboard([c]).show()   # live; sliders change the limits
    >>> Dashboard([c, v]).show()       # a container and a VM on the same axes
    >>> dash.stop()                    # the widget becomes a static picture
    >>> Dashboard([c]).run(10)         # both, blocking for 10 seconds
    """

    def __init__(
        self,
        containers: Sequence[Container | VMLike],
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
        for obj in self.containers:
            if hasattr(obj, "guest_stats"):
                rows.append(w.HBox([w.Label(vm_label(cast("VMLike", obj)))]))
                continue
            c = cast("Container", obj)
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


def vm_label(vm: VMLike) -> str:
    """ "web: VM, -m 128m, 1 vCPU (fixed at boot)": qemu's -m and -smp cannot change while the
    guest runs (a VM's RAM and CPUs are its hardware), so a VM gets this instead of sliders."""
    mem = vm.memory
    size = f"{mem // (1 << 30)}g" if mem % (1 << 30) == 0 else f"{mem // MIB}m"
    cpus = f"{vm.cpus} vCPU" + ("s" if vm.cpus != 1 else "")
    return f"{vm.name}: VM, -m {size}, {cpus} (fixed at boot)"
