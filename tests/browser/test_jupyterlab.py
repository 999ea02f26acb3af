"""The live dashboard, seen in a real browser: JupyterLab in headless Chromium.

A notebook starts a busybox busy loop limited to half a CPU and shows
``pycont.widgets.Dashboard([c]).show()``. In the browser, through JupyterLab's own menu and
keyboard, the test runs it and checks what a learner would see: the plot is an image that is
drawn (pixels of the container's colour) and redrawn (its pixels change), the sliders are there
and the CPU slider reads the limit. Then it runs the notebook's stop cell and checks that the
live widget was replaced by a static PNG. Every process, container and file it made is gone
afterwards (the fixtures in conftest.py check that).

Set ``PYCONT_BROWSER_SCREENSHOT=/some/file.png`` to keep a copy of the screenshot.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from typing import Any

import pytest

from tests.browser.lab import Browser, JupyterServer, pids_with_cmdline, wait_until
from tests.helpers import requires

pytestmark = [
    pytest.mark.browser,
    requires("root"),  # cgroup limits (--cpus) need root here
    pytest.mark.timeout(900),  # room for a first apt-get install of Chromium; a run is < 1 min
]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CPU_COLOUR = (0x1F, 0x77, 0xB4)  # pycont.widgets.COLOURS[0]: the first container's lines
NOTEBOOK = "dashboard.ipynb"

# What a pixel-level look at an <img> gives: its size, a hash of its pixels, how many pixels are
# not white, and how many have the first container's colour (its CPU and memory lines).
IMG_PIXELS_JS = """
const img = arguments[0];
if (!img || !img.complete || !img.naturalWidth) return null;
const c = document.createElement('canvas');
c.width = img.naturalWidth; c.height = img.naturalHeight;
const ctx = c.getContext('2d');
ctx.drawImage(img, 0, 0);
const d = ctx.getImageData(0, 0, c.width, c.height).data;
const [r0, g0, b0] = arguments[1];
let h = 2166136261, ink = 0, line = 0;
for (let i = 0; i < d.length; i += 4) {
  const r = d[i], g = d[i + 1], b = d[i + 2];
  h = Math.imul(h ^ r ^ (g << 8) ^ (b << 16), 16777619) >>> 0;
  if (r < 250 || g < 250 || b < 250) ink++;
  if (Math.abs(r - r0) < 40 && Math.abs(g - g0) < 40 && Math.abs(b - b0) < 40) line++;
}
return {src: img.src.slice(0, 64), width: c.width, height: c.height, hash: h, ink: ink,
        line: line, shown: img.getBoundingClientRect().width};
"""

# The kernel's status as the notebook shows it in the status bar: "Python 3 (ipykernel) | Idle".
KERNEL_STATUS_JS = """
for (const el of document.querySelectorAll('#jp-main-statusbar *')) {
  const t = (el.textContent || '').trim();
  if (el.children.length === 0 && / \\| [A-Z][a-z]+$/.test(t)) return t;
}
return null;
"""


def _code(source: str, cell_id: str) -> dict[str, Any]:
    return {
        "cell_type": "code",
        "id": cell_id,
        "metadata": {},
        "execution_count": None,
        "outputs": [],
        "source": source,
    }


def write_notebook(path: str, name: str, marker: str, vm_name: str | None = None) -> None:
    """Three cells: a title, the dashboard over a detached busy loop (and, with ``vm_name``, a
    VM booted from the same image), and the stop cell."""
    boot = [
        "import pycont.vm",
        f"v = pycont.vm.boot('busybox', ['sleep', '300'], name={vm_name!r}, memory='128m')",
    ]
    start = "\n".join(
        [
            "%load_ext pycont",
            f"%pycont run -d --name {name} --cpus 0.5 -m 64m busybox "
            f"sh -c 'while :; do :; done' {marker}",
            "import pycont, pycont.widgets",
            f"c = pycont.get({name!r})",
            *(boot if vm_name else []),
            f"dash = pycont.widgets.Dashboard([c{', v' if vm_name else ''}]).show()",
        ]
    )
    stop = "\n".join(
        [
            "png = dash.stop()",
            *(["v.remove(force=True)"] if vm_name else []),
            "c.remove(force=True)",
            'print(f"stopped: a static PNG of {len(png)} bytes; container removed")',
        ]
    )
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {
                "name": "python3",
                "display_name": "Python 3 (ipykernel)",
                "language": "python",
            },
            "language_info": {"name": "python"},
        },
        "cells": [
            {
                "cell_type": "markdown",
                "id": "title",
                "metadata": {},
                "source": "# A container's CPU against its limit, live",
            },
            _code(start, "start"),
            _code(stop, "stop"),
        ],
    }
    with open(path, "w") as f:
        json.dump(nb, f, indent=1)


class Lab:
    """The few things the test does in JupyterLab's page, each with an explicit wait."""

    def __init__(self, browser: Browser, server: JupyterServer) -> None:
        from selenium.webdriver.common.by import By

        self.by = By
        self.b = browser
        self.d = browser.driver
        self.server = server

    def css(self, selector: str, root: Any = None) -> list[Any]:
        return (root or self.d).find_elements(self.by.CSS_SELECTOR, selector)

    def open(self, path: str) -> None:
        self.d.get(self.server.lab_url(path))
        wait_until(
            lambda: len(self.code_cells()) == 2,
            timeout=60,
            what=f"JupyterLab to show the two code cells of {path}",
        )
        self.wait_kernel_idle(60, "the notebook's kernel to start")

    def code_cells(self) -> list[Any]:
        return self.css(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-CodeCell")

    def kernel_status(self) -> str | None:
        status = self.d.execute_script(KERNEL_STATUS_JS)
        return str(status) if status else None

    def wait_kernel_idle(self, timeout: float, what: str) -> None:
        def idle() -> bool:
            status = self.kernel_status() or ""
            return status.endswith("| Idle") and not status.startswith("No Kernel")

        wait_until(idle, timeout, f"{what} (status bar: {self.kernel_status()!r})")

    def select(self, cell: Any) -> None:
        """Click a cell's prompt: it becomes the active cell, in command mode."""
        self.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", cell)
        self.css(".jp-InputPrompt", cell)[0].click()
        wait_until(
            lambda: "jp-mod-active" in (cell.get_attribute("class") or ""),
            timeout=10,
            what="the cell to become active",
        )

    def menu(self, top: str, item: str) -> None:
        """Click ``top`` in the menu bar, then ``item`` in the menu that opens."""

        def top_item() -> Any:
            for el in self.css("#jp-menu-panel .lm-MenuBar-item"):
                if el.text.strip() == top:
                    return el
            return None

        wait_until(top_item, 10, f"the {top!r} menu").click()

        def menu_item() -> Any:
            for el in self.css(".lm-Menu .lm-Menu-item"):
                labels = self.css(".lm-Menu-itemLabel", el)
                if labels and labels[0].text.strip() == item and el.is_displayed():
                    return el
            return None

        wait_until(menu_item, 10, f"{item!r} in the {top!r} menu").click()
        wait_until(
            lambda: not [m for m in self.css(".lm-Menu") if m.is_displayed()],
            timeout=10,
            what="the menu to close",
        )

    def run_selected_cell_in_place(self) -> None:
        """Ctrl+Enter: JupyterLab's "run selected cell and do not advance"."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.keys import Keys

        ActionChains(self.d).key_down(Keys.CONTROL).send_keys(Keys.ENTER).key_up(
            Keys.CONTROL
        ).perform()

    def wait_executed(self, cell: Any, timeout: float, what: str) -> int:
        """Wait until the cell's prompt shows an execution count ([3]:, not [*]: or [ ]:)."""

        def count() -> int | None:
            m = re.fullmatch(r"\[(\d+)\]:", self.css(".jp-InputPrompt", cell)[0].text.strip())
            return int(m.group(1)) if m else None

        try:
            return wait_until(count, timeout, what)
        except AssertionError as err:
            raise AssertionError(f"{err}\ncell output:\n{self.output_text(cell)}") from None

    def output_text(self, cell: Any) -> str:
        return "\n".join(el.text for el in self.css(".jp-OutputArea-output", cell))

    def errors(self, cell: Any) -> list[str]:
        """Error outputs (tracebacks) in the cell."""
        return [
            el.text
            for el in self.css(
                '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"],'
                " .jp-OutputArea-output .jp-RenderedText[data-mime-type="
                '"application/vnd.jupyter.error"]',
                cell,
            )
        ]

    def pixels(self, img: Any, colour: tuple[int, int, int] = CPU_COLOUR) -> dict[str, Any] | None:
        result = self.d.execute_script(IMG_PIXELS_JS, img, list(colour))
        return dict(result) if result else None


def test_dashboard_renders_updates_and_leaves_a_static_png(
    jupyter: JupyterServer, browser: Browser, pycont_browser_root: str, browser_tmp: str
) -> None:
    t0 = time.monotonic()
    name = f"browser-{uuid.uuid4().hex[:8]}"
    marker = f"pycont-browser-loop-{uuid.uuid4().hex[:8]}"  # the busy loop's $0, to find it
    write_notebook(os.path.join(jupyter.root_dir, NOTEBOOK), name, marker)

    lab = Lab(browser, jupyter)
    lab.open(NOTEBOOK)
    start_cell, stop_cell = lab.code_cells()

    # "Run All Cells" would run the stop cell straight after the dashboard appears: run
    # everything above the stop cell instead (Run menu), and the stop cell later on its own.
    lab.select(stop_cell)
    lab.menu("Run", "Run All Above Selected Cell")
    lab.wait_executed(start_cell, 60, "the dashboard cell to finish")
    assert not lab.errors(start_cell), lab.output_text(start_cell)
    assert lab.css(".jp-InputPrompt", stop_cell)[0].text.strip() == "[ ]:", (
        "the stop cell ran too early"
    )

    # The live widget: an image drawn and redrawn, the sliders below it.
    img = wait_until(
        lambda: lab.css(".jp-OutputArea-output .widget-image", start_cell),
        timeout=30,
        what="the dashboard's image widget",
    )[0]
    assert img.tag_name == "img"
    first = wait_until(lambda: lab.pixels(img), 15, "the dashboard image to load")
    assert first["src"].startswith("blob:"), first["src"]  # an ipywidgets Image, not a PNG output
    assert first["ink"] > 10_000, f"the plot looks blank: {first}"
    seen = [first]

    def redrawn() -> bool:
        now = lab.pixels(img)
        if now and now["hash"] != seen[-1]["hash"]:
            seen.append(now)
        return len(seen) >= 3  # two redraws with different pixels

    wait_until(redrawn, 20, "the live plot to be redrawn twice with new data", interval=0.2)
    assert seen[-1]["src"] != first["src"], "the <img> src never changed"
    assert seen[-1]["line"] > 200, f"no line of the container's colour in the plot: {seen[-1]}"

    sliders = lab.css(".jp-OutputArea-output .widget-slider", start_cell)
    assert len(sliders) >= 2, f"expected the CPU and memory sliders, found {len(sliders)}"
    readouts = [el.text.strip() for el in lab.css(".widget-readout", start_cell)]
    assert "0.5" in readouts, f"the CPU slider does not read the --cpus 0.5 limit: {readouts}"

    browser.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", img)
    shot = os.path.join(browser_tmp, "dashboard.png")
    assert browser.driver.save_screenshot(shot), "Chromium took no screenshot"
    with open(shot, "rb") as f:
        head = f.read(8)
    assert head == PNG_MAGIC and os.path.getsize(shot) > 10_000, (
        f"not a PNG screenshot: {head!r}, {os.path.getsize(shot)} bytes"
    )
    keep = os.environ.get("PYCONT_BROWSER_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)

    # The stop cell: the widget gives way to a static PNG, the container goes.
    lab.select(stop_cell)
    lab.run_selected_cell_in_place()
    lab.wait_executed(stop_cell, 30, "the stop cell to finish")
    assert not lab.errors(stop_cell), lab.output_text(stop_cell)
    assert "container removed" in lab.output_text(stop_cell)

    def static_png() -> Any:
        if lab.css(".widget-image, .widget-slider", start_cell):
            return None
        imgs = lab.css('.jp-OutputArea-output img[src^="data:image/png"]', start_cell)
        return imgs and lab.pixels(imgs[0])

    final = wait_until(static_png, 15, "the live widget to be replaced by a static PNG")
    assert final["ink"] > 10_000 and final["line"] > 200, f"the static PNG looks empty: {final}"
    lab.wait_kernel_idle(15, "the kernel to be idle after the stop cell")
    if keep:
        stem, ext = os.path.splitext(keep)
        browser.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", start_cell)
        browser.driver.save_screenshot(f"{stem}-stopped{ext or '.png'}")

    containers = os.path.join(pycont_browser_root, "containers")
    assert not (os.path.isdir(containers) and os.listdir(containers)), os.listdir(containers)
    wait_until(lambda: not pids_with_cmdline(marker), 15, "the busy loop to end")

    notable = [e for e in browser.take_console() if e.get("level") in ("SEVERE", "WARNING")]
    print(
        f"\nbrowser test: {len(seen)} distinct live frames; live image "
        f"{first['width']}x{first['height']} shown {seen[-1]['shown']:.0f} px wide, static PNG "
        f"{final['width']}x{final['height']} shown {final['shown']:.0f} px wide; "
        f"{len(notable)} console warning(s)/error(s); "
        f"{time.monotonic() - t0:.1f} s in the test body"
    )
    for entry in notable:
        print(f"  console {entry.get('level')}: {entry.get('message', '')[:300]}")
