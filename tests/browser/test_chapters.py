"""Every chapter, run in JupyterLab in headless Chromium: what a learner clicking "Run All" sees.

One test per committed chapter (``notebooks/NN-*.ipynb``, found by glob: a new chapter is
covered without a change here). Each gets its own JupyterLab over a copy of the notebook (the
committed file is never touched), the course's kernelspec (``python -m pycont.vm.labkernel
install``, local backend: root on this host) and its own PYCONT_ROOT. Through JupyterLab's own
menus it runs all cells and saves; then it checks:

- every code cell ran (an execution count), within the chapter's time and each cell's own;
  a stuck cell is named by its index and first line;
- no cell has an error or stderr output, in the page and in the notebook the browser saved
  (read back through the contents API);
- every cell that makes a ``Dashboard(`` shows a live image whose pixels change while the cell
  runs, and leaves a static PNG in its place (in the page and in the saved notebook).

A screenshot per chapter (``NN-name.png``, taken pass or fail, scrolled to the failing cell or
to the first dashboard) and the executed notebook go to ``tests/browser/artefacts/`` (git
ignores it; ``PYCONT_BROWSER_ARTEFACTS`` moves it) for CI to keep. Afterwards no process, mount
or container of the chapter may remain (the fixtures here and in conftest.py check that).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.browser.lab import (
    Browser,
    JupyterServer,
    alive,
    end_processes,
    install_course_kernel,
    mounts_under,
    pids_using,
    wait_until,
)
from tests.browser.test_jupyterlab import CPU_COLOUR, IMG_PIXELS_JS, Lab
from tests.helpers import requires

REPO = Path(__file__).resolve().parents[2]
CHAPTERS = sorted((REPO / "notebooks").glob("[0-9][0-9]-*.ipynb"))
ARTEFACTS = Path(os.environ.get("PYCONT_BROWSER_ARTEFACTS") or REPO / "tests/browser/artefacts")
CHAPTER_TIMEOUT = 600.0  # the slowest (03, 09) take about two minutes
CELL_TIMEOUT = 300.0  # one cell: a VM boot, a build; far above any chapter's slowest cell
DASHBOARD = re.compile(r"\bDashboard\(")

pytestmark = [
    pytest.mark.browser,
    requires("root"),  # the chapters run in root mode: cgroup limits, mounts, VMs
    pytest.mark.timeout(CHAPTER_TIMEOUT + 300),  # + server, browser, a first Chromium install
]

# One look at the whole notebook per poll: each cell's prompt, its error and stderr outputs,
# and the pixels of its live dashboard image or of its static PNG (IMG_PIXELS_JS as px()).
STATE_JS = (
    "function px() {\n"
    + IMG_PIXELS_JS
    + """}
const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
const cells = panel ? [...panel.querySelectorAll('.jp-Notebook .jp-Cell')] : [];
return {
  dialogs: [...document.querySelectorAll('.jp-Dialog')].map(d => d.textContent.trim()),
  status: (() => {
    for (const el of document.querySelectorAll('#jp-main-statusbar *')) {
      const t = (el.textContent || '').trim();
      if (el.children.length === 0 && / \\| [A-Z][a-z]+$/.test(t)) return t;
    }
    return null;
  })(),
  cells: cells.map(cell => {
    if (!cell.classList.contains('jp-CodeCell')) return null;
    const text = sel => [...cell.querySelectorAll(sel)].map(e => e.textContent);
    const live = cell.querySelector('.jp-OutputArea-output img.widget-image');
    const still = cell.querySelector('.jp-OutputArea-output img[src^="data:image/png"]');
    const prompt = cell.querySelector('.jp-InputPrompt');
    return {
      prompt: prompt ? prompt.textContent.trim() : '',
      errors: text('[data-mime-type="application/vnd.jupyter.error"]'),
      stderr: text('[data-mime-type="application/vnd.jupyter.stderr"]'),
      live: live ? px(live, arguments[0]) : null,
      still: still && !live ? px(still, arguments[0]) : null,
    };
  }),
};
"""
)


def first_line(cell: dict[str, Any]) -> str:
    source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    return next((ln for ln in source.splitlines() if ln.strip()), "")[:100]


@dataclass
class Watch:
    """What the poll loop saw of one chapter while it ran."""

    cells: list[dict[str, Any]]  # the notebook's cells, as committed
    started: dict[int, float] = field(default_factory=dict)  # cell index -> first seen running
    frames: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # distinct live images
    focus: int | None = None  # the cell the screenshot should show

    def name(self, i: int) -> str:
        return f"cell {i} ({first_line(self.cells[i])!r})"


@pytest.fixture
def chapter_lab(
    chromium: str, browser_tmp: str, pycont_browser_root: str
) -> Iterator[JupyterServer]:
    """JupyterLab with the course's kernelspec over an empty folder. Afterwards no container,
    VM, mount or process of the test's folder (a shim, a qemu) may remain: what remains is
    taken back, and named in the failure."""
    root = Path(browser_tmp) / "notebooks"
    root.mkdir()
    env = dict(os.environ, PYCONT_ROOT=pycont_browser_root, PYCONT_BACKEND="local")
    env.pop("JUPYTER_TOKEN", None)
    env["JUPYTER_PATH"] = install_course_kernel(Path(browser_tmp) / "prefix")
    server = JupyterServer(browser_tmp, str(root), env)
    # Each cell's start and end in its metadata, as nbclient's record_timing: the slow cells.
    tracker = Path(browser_tmp) / "jupyter" / "settings" / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"recordTiming": True}))
    try:
        server.start()
        yield server
    finally:
        problems = server.stop()
        assert server.proc is None or not alive(server.proc.pid), "jupyter lab still runs"
        problems += take_back(pycont_browser_root)
        if pids_using(browser_tmp):
            try:
                wait_until(lambda: not pids_using(browser_tmp), 15, "the chapter's processes")
            except AssertionError:
                problems += [f"killed: {d}" for d in end_processes(pids_using(browser_tmp))]
        mounts = mounts_under(browser_tmp)
        if mounts:
            problems.append(f"mounts left: {mounts}")
            for m in reversed(mounts):
                subprocess.run(["umount", "-l", m], capture_output=True, timeout=30)
        assert not problems, "after the chapter: " + "; ".join(problems)


def take_back(root: str) -> list[str]:
    """Remove the containers and VMs a chapter left in ``root`` or in one of its sessions
    (``root/sessions/chNN-*``, each a PYCONT_ROOT of its own); name them."""
    left = []
    for where in sorted({p.parent.parent for p in Path(root).glob("**/containers/*")}):
        env = dict(os.environ, PYCONT_ROOT=str(where))
        for c in sorted((where / "containers").iterdir()):
            left.append(f"container {c.relative_to(root)}")
            cmd = [sys.executable, "-m", "pycont", "rm", "-f", c.name]
            subprocess.run(cmd, env=env, capture_output=True, timeout=60)
    for where in sorted({p.parent.parent for p in Path(root).glob("**/vms/*")}):
        left += [f"VM {v.relative_to(root)}" for v in sorted((where / "vms").iterdir())]
        remove = "import pycont.vm as m; [v.remove(force=True) for v in m.vms()]"
        env = dict(os.environ, PYCONT_ROOT=str(where))
        subprocess.run([sys.executable, "-c", remove], env=env, capture_output=True, timeout=60)
    return [f"{what} left (removed now)" for what in left]


def notebook_cells(lab: Lab) -> list[Any]:
    return lab.css(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")


def kernel_for(nb: dict[str, Any]) -> dict[str, Any]:
    """The kernelspec the chapter names (the course's, installed by the fixture)."""
    return dict(nb["metadata"].get("kernelspec") or {})


def run_all(lab: Lab, watch: Watch, chapter: str) -> None:
    """Run > Run All Cells, then poll the page until every code cell has run and the kernel
    is idle; fail at the first error output, dialog, stuck cell or the chapter's timeout."""
    code = [i for i, c in enumerate(watch.cells) if c["cell_type"] == "code"]
    dashboards = {i for i in code if DASHBOARD.search("".join(watch.cells[i]["source"]))}
    lab.select(lab.code_cells()[0])
    lab.menu("Run", "Run All Cells")
    t0 = time.monotonic()
    running: int | None = None
    while True:
        state = lab.d.execute_script(STATE_JS, list(CPU_COLOUR))
        cells = state["cells"]
        assert len(cells) == len(watch.cells), (
            f"the page shows {len(cells)} cells, the notebook has {len(watch.cells)}"
        )
        assert not state["dialogs"], f"a dialog came up: {state['dialogs']}"
        now = time.monotonic()
        for i in code:
            seen = cells[i]
            if seen["errors"] or seen["stderr"]:
                watch.focus = i
                text = "\n".join(seen["errors"] + seen["stderr"])[-3000:]
                raise AssertionError(f"{chapter}: {watch.name(i)} has error output:\n{text}")
            if seen["live"] and i in dashboards:
                frames = watch.frames.setdefault(i, [])
                if not frames or frames[-1]["hash"] != seen["live"]["hash"]:
                    frames.append(seen["live"])
        # JupyterLab marks a queued cell [*] as well: the first one is the one that runs.
        busy = [i for i in code if cells[i]["prompt"] == "[*]:"]
        if busy and busy[0] != running:
            running = busy[0]
            watch.started.setdefault(running, now)
            lab.d.execute_script(
                "arguments[0].scrollIntoView({block: 'center'})", notebook_cells(lab)[running]
            )
        if busy:
            watch.focus = busy[0]
            if now - watch.started[busy[0]] > CELL_TIMEOUT:
                raise AssertionError(
                    f"{chapter}: {watch.name(busy[0])} still runs after {CELL_TIMEOUT:g} s"
                )
        not_run = [i for i in code if not re.fullmatch(r"\[\d+\]:", cells[i]["prompt"])]
        if not not_run and (state["status"] or "").endswith("| Idle"):
            return
        if now - t0 > CHAPTER_TIMEOUT:
            where = watch.name(busy[0]) + " runs" if busy else f"{len(not_run)} cells not run"
            raise AssertionError(
                f"{chapter}: not done after {CHAPTER_TIMEOUT:g} s: {where}; "
                f"status bar: {state['status']!r}"
            )
        time.sleep(0.2)


def check_dashboards(lab: Lab, watch: Watch, saved: dict[str, Any]) -> list[str]:
    """Each Dashboard( cell: redrawn live, then a static PNG in the page and in the file."""
    problems = []
    state = lab.d.execute_script(STATE_JS, list(CPU_COLOUR))
    for i, cell in enumerate(watch.cells):
        if cell["cell_type"] != "code" or not DASHBOARD.search("".join(cell["source"])):
            continue
        frames = watch.frames.get(i, [])
        if len(frames) < 3:
            problems.append(
                f"{watch.name(i)}: {len(frames)} distinct live frame(s), not a "
                "live image redrawn twice"
            )
        elif max(f["ink"] for f in frames) < 10_000:
            problems.append(f"{watch.name(i)}: the live plot looks blank: {frames[-1]}")
        seen = state["cells"][i]
        if seen["live"] or not seen["still"]:
            problems.append(f"{watch.name(i)}: no static PNG in place of the live widget")
        elif seen["still"]["ink"] < 10_000 or seen["still"]["line"] < 200:
            problems.append(f"{watch.name(i)}: the static PNG looks empty: {seen['still']}")
        kinds = [k for o in saved["cells"][i]["outputs"] for k in o.get("data", {})]
        if "image/png" not in kinds or "application/vnd.jupyter.widget-view+json" in kinds:
            problems.append(f"{watch.name(i)}: the saved outputs hold {kinds}, not a PNG alone")
        if watch.focus is None:
            watch.focus = i
    return problems


def check_saved(watch: Watch, saved: dict[str, Any]) -> list[str]:
    """The notebook as the browser saved it: every code cell ran, none has an error or stderr."""
    problems = []
    for i, cell in enumerate(saved["cells"]):
        if cell["cell_type"] != "code":
            continue
        if cell.get("execution_count") is None:
            problems.append(f"{watch.name(i)}: no execution count in the saved notebook")
        for out in cell.get("outputs", []):
            if out["output_type"] == "error":
                tb = "\n".join(out.get("traceback", []))[-2000:]
                problems.append(f"{watch.name(i)}: {out['ename']}: {out['evalue']}\n{tb}")
            elif out["output_type"] == "stream" and out.get("name") == "stderr":
                text = "".join(out["text"])[-2000:]
                problems.append(f"{watch.name(i)}: stderr:\n{text}")
        if problems and watch.focus is None:
            watch.focus = i
    return problems


def slowest(watch: Watch, saved: dict[str, Any], n: int = 3) -> str:
    """The ``n`` slowest cells, from the timing JupyterLab records (``recordTiming``)."""
    took = []
    for i, cell in enumerate(saved["cells"]):
        meta = cell.get("metadata", {}).get("execution", {})
        try:
            a = datetime.fromisoformat(meta["iopub.execute_input"].replace("Z", "+00:00"))
            b = datetime.fromisoformat(meta["shell.execute_reply"].replace("Z", "+00:00"))
        except (KeyError, ValueError):
            continue
        took.append(((b - a).total_seconds(), i))
    return ", ".join(f"{watch.name(i)} {t:.0f} s" for t, i in sorted(took)[::-1][:n])


def screenshot(lab: Lab, watch: Watch, path: Path) -> None:
    """The viewport, centred on the cell to look at: the failing or stuck one, else the first
    dashboard, else the last code cell (the chapter's clean-up)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    code = [i for i, c in enumerate(watch.cells) if c["cell_type"] == "code"]
    focus = watch.focus if watch.focus is not None else code[-1] if code else -1
    cells = notebook_cells(lab)
    if len(cells) == len(watch.cells):
        target = cells[focus]
        lab.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", target)
        time.sleep(0.3)  # the scroll settles; content-visibility paints what came into view
    lab.d.save_screenshot(str(path))


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_runs_in_jupyterlab(
    chapter: Path, chapter_lab: JupyterServer, browser: Browser
) -> None:
    server = chapter_lab
    nb = json.loads(chapter.read_text())
    nb["metadata"]["kernelspec"] = kernel_for(nb)
    (Path(server.root_dir) / chapter.name).write_text(json.dumps(nb, indent=1) + "\n")
    watch = Watch(nb["cells"])
    lab = Lab(browser, server)
    t0 = time.monotonic()
    try:
        lab.d.get(server.lab_url(chapter.name))
        code = sum(c["cell_type"] == "code" for c in nb["cells"])
        wait_until(lambda: len(lab.code_cells()) == code, 60, f"the {code} code cells")
        lab.wait_kernel_idle(90, "the chapter's kernel to start")
        status = lab.kernel_status() or ""
        want = nb["metadata"]["kernelspec"].get("display_name", "")
        assert status.startswith(want), f"kernel {status!r}, the chapter names {want!r}"

        # The file browser closed (a click on its current tab): the notebook gets the width.
        for tab in lab.css(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")[:1]:
            tab.click()
        opened = time.monotonic() - t0
        run_all(lab, watch, chapter.stem)
        watch.focus = None  # now: the first problem found below, or the first dashboard
        ran = time.monotonic() - t0 - opened
        lab.menu("File", "Save Notebook")
        wait_until(
            lambda: not lab.css(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty"),
            30,
            "the notebook to be saved",
        )
        saved = server.api("GET", f"/api/contents/{chapter.name}?content=1", timeout=30)
        saved = saved["content"]
        (ARTEFACTS / chapter.name).parent.mkdir(parents=True, exist_ok=True)
        (ARTEFACTS / chapter.name).write_text(json.dumps(saved, indent=1) + "\n")
        problems = check_saved(watch, saved) + check_dashboards(lab, watch, saved)
        assert not problems, f"{chapter.stem}:\n" + "\n".join(problems)
        print(
            f"\n{chapter.stem}: opened in {opened:.0f} s, ran in {ran:.0f} s, "
            f"{sum(len(f) for f in watch.frames.values())} distinct live dashboard frames in "
            f"{len(watch.frames)} cell(s); slowest: {slowest(watch, saved)}"
        )
    finally:
        try:
            screenshot(lab, watch, ARTEFACTS / f"{chapter.stem}.png")
        except Exception as err:  # the screenshot must not hide the test's own failure
            print(f"no screenshot of {chapter.stem}: {err!r}")
