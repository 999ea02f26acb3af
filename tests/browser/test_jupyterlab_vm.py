"""A dashboard holding a container and a VM, seen in JupyterLab in headless Chromium.

The notebook of test_jupyterlab, with a VM booted from the same image beside the busy loop:
``Dashboard([c, v]).show()``. The test checks that the live plot is drawn and redrawn with the
VM's lines (the second colour), that the VM has a label instead of sliders, and that the stop
cell leaves a static PNG that still shows the VM. Skipped, with the reason, without a VM.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from pycont.plots import COLOURS
from tests.browser.lab import Browser, JupyterServer, wait_until
from tests.browser.test_jupyterlab import NOTEBOOK, Lab, write_notebook
from tests.helpers import requires

pytestmark = [pytest.mark.browser, pytest.mark.vm, requires("root"), pytest.mark.timeout(900)]

# COLOURS[1]: the second name in the dashboard, the VM.
VM_COLOUR = (int(COLOURS[1][1:3], 16), int(COLOURS[1][3:5], 16), int(COLOURS[1][5:7], 16))


@pytest.fixture
def vm_root(pycont_browser_root: str) -> Iterator[str]:
    """Skips without qemu or kernel; afterwards, a VM a failed test left is removed (its qemu
    would outlive the notebook's kernel: it runs daemonized)."""
    from pycont.vm.errors import VMError
    from pycont.vm.launch import boot_kernel, find_qemu

    try:
        find_qemu()
        boot_kernel()
    except VMError as err:
        pytest.skip(f"no VM on this machine: {err}")
    yield pycont_browser_root
    subprocess.run(
        [sys.executable, "-c", "import pycont.vm as m; [v.remove(force=True) for v in m.vms()]"],
        env=dict(os.environ, PYCONT_ROOT=pycont_browser_root),
        capture_output=True,
        timeout=60,
    )


def test_dashboard_with_a_vm_updates_and_leaves_a_static_png(
    jupyter: JupyterServer, browser: Browser, vm_root: str
) -> None:
    name = f"browser-{uuid.uuid4().hex[:8]}"
    vm_name = f"hd-{name}"
    marker = f"pycont-browser-loop-{uuid.uuid4().hex[:8]}"
    write_notebook(os.path.join(jupyter.root_dir, NOTEBOOK), name, marker, vm_name=vm_name)

    lab = Lab(browser, jupyter)
    lab.open(NOTEBOOK)
    start_cell, stop_cell = lab.code_cells()
    lab.select(stop_cell)
    lab.menu("Run", "Run All Above Selected Cell")
    # The first boot in a fresh store also builds the guest's root from the image.
    lab.wait_executed(start_cell, 300, "the cell that boots the VM and shows the dashboard")
    assert not lab.errors(start_cell), lab.output_text(start_cell)

    img = wait_until(
        lambda: lab.css(".jp-OutputArea-output .widget-image", start_cell),
        timeout=30,
        what="the dashboard's image widget",
    )[0]
    seen: list[dict[str, Any]] = []

    def redrawn() -> bool:
        now = lab.pixels(img, VM_COLOUR)
        if now and (not seen or now["hash"] != seen[-1]["hash"]):
            seen.append(now)
        return len(seen) >= 3

    wait_until(redrawn, 30, "the live plot to be redrawn twice with new data", interval=0.2)
    assert seen[-1]["line"] > 200, f"no line of the VM's colour in the live plot: {seen[-1]}"
    labels = [el.text for el in lab.css(".widget-label", start_cell)]
    wanted = f"{vm_name}: VM, -m 128m, 1 vCPU (fixed at boot)"
    assert wanted in labels, f"no label for the VM among {labels}"

    lab.select(stop_cell)
    lab.run_selected_cell_in_place()
    lab.wait_executed(stop_cell, 60, "the stop cell to finish")
    assert not lab.errors(stop_cell), lab.output_text(stop_cell)

    def static_png() -> Any:
        if lab.css(".widget-image, .widget-slider", start_cell):
            return None
        imgs = lab.css('.jp-OutputArea-output img[src^="data:image/png"]', start_cell)
        return imgs and lab.pixels(imgs[0], VM_COLOUR)

    final = wait_until(static_png, 15, "the live widget to be replaced by a static PNG")
    assert final["line"] > 200, f"the static PNG shows no VM: {final}"
    lab.wait_kernel_idle(15, "the kernel to be idle after the stop cell")
    vms = os.path.join(vm_root, "vms")
    assert not [e for e in os.listdir(vms) if e != "names"], "the stop cell left the VM"
