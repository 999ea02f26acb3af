"""Opening and closing a chapter in JupyterLab leaves it as committed: ``git status`` stays clean.

When a notebook's kernel connects, JupyterLab writes the kernel's kernelspec and language_info
into the notebook's metadata; if they differ from the committed ones the notebook is marked
modified, autosave writes it, and closing it asks "Save your work". So the chapters must be
committed with what the course's kernel reports (``build.KERNELSPEC``, ``build.LANGUAGE_INFO``).

This opens every committed chapter as a learner would: JupyterLab with the course's kernelspec
(``python -m pycont.vm.labkernel install``) and only the course's own JupyterLab settings
(``scripts/jupyterlab-settings.json`` as ``overrides.d/pycont.json``, none of the harness's
news flags); autosave every second, so that a modified notebook reaches the disk at once. Per
chapter it waits for the kernel, watches for a few seconds, closes the tab, and checks: not
marked modified once loaded, no dialog on close, the file byte for byte the committed one and
never saved, no new file beside it. Over the whole session: no news pop-up.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.lab import (
    Browser,
    JupyterServer,
    Timeout,
    alive,
    install_course_kernel,
    wait_until,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
SETTINGS = REPO / "scripts" / "jupyterlab-settings.json"
WATCH = 3.0  # seconds a chapter stays open after its kernel is idle: three autosave rounds
# Records, from the moment the page loads, every tab marked modified (jp-mod-dirty), every dialog
# and every toast (the news question is one), even those that come and go. A notebook's model is
# "dirty" while its file loads: the test starts counting tabs marked modified at kernel idle.
OBSERVE_JS = """
window.__seen = {dirty: [], dialogs: [], toasts: []};
const note = (list, text) => { if (!list.includes(text)) list.push(text); };
const look = () => {
  for (const el of document.querySelectorAll('.lm-TabBar-tab.jp-mod-dirty'))
    note(window.__seen.dirty, el.textContent.trim());
  for (const el of document.querySelectorAll('.jp-Dialog'))
    note(window.__seen.dialogs, el.textContent.trim().slice(0, 200));
  for (const el of document.querySelectorAll('.Toastify__toast'))
    note(window.__seen.toasts, el.textContent.trim().slice(0, 200));
};
window.__look = look;
new MutationObserver(look).observe(document.documentElement,
  {subtree: true, childList: true, attributes: true, attributeFilter: ['class']});
look();
"""
FROM_NOW_JS = "window.__seen.dirty = []; window.__look();"
STATUS_JS = """
for (const el of document.querySelectorAll('#jp-main-statusbar *')) {
  const t = (el.textContent || '').trim();
  if (el.children.length === 0 && / \\| [A-Z][a-z]+$/.test(t)) return t;
}
return null;
"""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(root: Path) -> set[str]:
    """Every file under ``root`` but JupyterLab's checkpoints (git ignores .ipynb_checkpoints/)."""
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and ".ipynb_checkpoints" not in p.parts
    }


@pytest.fixture
def course_lab(
    chromium: str, browser_tmp: str, pycont_browser_root: str
) -> Iterator[tuple[JupyterServer, Path]]:
    """JupyterLab over a copy of notebooks/, as scripts/course.sh and Binder set it up."""
    root = Path(browser_tmp) / "notebooks"
    root.mkdir()
    for nb in sorted((REPO / "notebooks").glob("[0-9][0-9]-*.ipynb")):
        shutil.copy2(nb, root / nb.name)
    prefix = Path(browser_tmp) / "prefix"
    jupyter_path = install_course_kernel(prefix)
    app_settings = Path(browser_tmp) / "app-settings"
    (app_settings / "overrides.d").mkdir(parents=True)
    shutil.copyfile(SETTINGS, app_settings / "overrides.d" / "pycont.json")
    env = dict(
        os.environ,
        PYCONT_ROOT=pycont_browser_root,
        JUPYTER_PATH=jupyter_path,
        PYCONT_BACKEND="local",  # the kernel here, never the lab VM: same metadata, seconds
    )
    env.pop("JUPYTER_TOKEN", None)
    server = JupyterServer(browser_tmp, str(root), env)
    # The course's settings alone: not the harness's flags and user settings that silence news.
    server.cmd = [
        a
        for a in server.cmd
        if not a.startswith(("--LabApp.news_url", "--LabApp.check_for_updates_class"))
    ] + [f"--LabApp.app_settings_dir={app_settings}"]
    user_settings = Path(browser_tmp) / "jupyter" / "settings" / "@jupyterlab"
    (user_settings / "apputils-extension" / "notification.jupyterlab-settings").unlink()
    docmanager = user_settings / "docmanager-extension"
    docmanager.mkdir(parents=True)
    (docmanager / "plugin.jupyterlab-settings").write_text(
        json.dumps({"autosave": True, "autosaveInterval": 1})
    )
    try:
        server.start()
        yield server, root
    finally:
        problems = server.stop()
        assert server.proc is None or not alive(server.proc.pid), "jupyter lab still runs"
        assert not problems, "JupyterLab shutdown: " + "; ".join(problems)


def _open(browser: Browser, server: JupyterServer, name: str) -> str:
    """Open ``name``; wait for its kernel to be idle; the kernel's name in the status bar."""
    d = browser.driver
    d.get(server.lab_url(name))
    d.execute_script(OBSERVE_JS)

    def idle() -> str | None:
        status = d.execute_script(STATUS_JS) or ""
        return status if status.endswith("| Idle") and not status.startswith("No Kernel") else None

    try:
        status = str(wait_until(idle, 90, f"{name}: its kernel to be idle"))
    except Timeout as err:
        raise AssertionError(f"{err} (status bar: {d.execute_script(STATUS_JS)!r})") from None
    d.execute_script(FROM_NOW_JS)
    return status.removesuffix(" | Idle")


def _close(browser: Browser, name: str) -> None:
    """Click the tab's close icon; wait for the tab to go, or for a dialog (which fails)."""
    d = browser.driver

    def tab() -> Any:
        for el in d.find_elements("css selector", "#jp-main-dock-panel .lm-TabBar-tab"):
            if el.text.strip() == name:
                return el
        return None

    wait_until(tab, 10, f"{name}'s tab").find_element(
        "css selector", ".lm-TabBar-tabCloseIcon"
    ).click()
    wait_until(
        lambda: tab() is None or d.find_elements("css selector", ".jp-Dialog"),
        10,
        f"{name}'s tab to close",
    )
    # A "save your work?" dialog (the failure the test reports): discard, so that the next page
    # load is not held up by the browser's own "leave site?" question.
    for button in d.find_elements("css selector", ".jp-Dialog .jp-mod-warn"):
        button.click()


def test_opening_and_closing_each_chapter_leaves_it_unchanged(
    course_lab: tuple[JupyterServer, Path], browser: Browser
) -> None:
    server, root = course_lab
    names = sorted(p.name for p in root.glob("*.ipynb"))
    assert names, "no chapter to open"
    committed = {n: _sha(REPO / "notebooks" / n) for n in names}
    mtimes = {n: (root / n).stat().st_mtime_ns for n in names}
    files_before = _files(root)
    problems: list[str] = []
    toasts: list[str] = []
    for name in names:
        kernel = _open(browser, server, name)
        if kernel != "Python 3 (pycont)":
            problems.append(f"{name}: opened with {kernel!r}, not the course's kernel")
        time.sleep(WATCH)  # what is checked is that nothing happens: a window, not an event
        _close(browser, name)
        seen = browser.driver.execute_script("return window.__seen")
        toasts += seen["toasts"]
        if seen["dirty"]:
            problems.append(f"{name}: marked modified ({seen['dirty']})")
        if seen["dialogs"]:
            problems.append(f"{name}: a dialog came up: {seen['dialogs']}")
        if _sha(root / name) != committed[name]:
            problems.append(f"{name}: the file changed on disk (autosave wrote it)")
        elif (root / name).stat().st_mtime_ns != mtimes[name]:
            problems.append(f"{name}: saved (the same bytes): it was modified for a while")
        for running in server.api("GET", "/api/kernels"):
            server.api("DELETE", f"/api/kernels/{running['id']}", timeout=30)
    new = _files(root) - files_before
    if new:
        problems.append(f"new files beside the notebooks: {sorted(new)}")
    if toasts:
        problems.append(f"pop-ups: {sorted(set(toasts))}")
    # The server hands the course's overrides out as the setting's defaults.
    plugin = "@jupyterlab/apputils-extension:notification"
    props = server.api("GET", f"/lab/api/settings/{plugin}")["schema"]["properties"]
    defaults = {key: props[key].get("default") for key in ("fetchNews", "checkForUpdates")}
    assert defaults == {"fetchNews": "false", "checkForUpdates": False}, defaults
    assert not problems, "\n".join(problems)
