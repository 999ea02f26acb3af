"""Browser tests: JupyterLab in headless Chromium, looking at what a learner sees.

Fixtures, each taking back everything it made:

- ``chromium``: Debian's chromium and chromium-driver, apt-installed when missing (the test is
  skipped, with apt's error as the reason, when that fails); Selenium from PyPI drives them.
- ``browser_tmp``: one temporary folder for everything below (notebooks, PYCONT_ROOT, Jupyter's
  config/runtime/settings, the Chromium profile, logs); removed at the end.
- ``pycont_browser_root``: a private PYCONT_ROOT inside it; at the end its ``containers`` folder
  must be empty and no process may still carry it in its environment.
- ``jupyter``: a JupyterLab server whose environment carries that PYCONT_ROOT (so its kernels
  do); kernels and server shut down through the API at the end, every process of it gone.
- ``browser``: headless Chromium; at the end chromedriver and every Chromium process gone.

Run them alone with ``pytest tests/browser -m browser``; leave them out with ``-m "not browser"``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

from tests.browser.lab import (
    Browser,
    JupyterServer,
    Timeout,
    alive,
    end_processes,
    ensure_chromium,
    pids_with_env,
    rmtree,
    wait_until,
)
from tests.helpers import register_root


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: opens JupyterLab in headless Chromium (Debian's chromium)"
    )


@pytest.fixture(scope="session")
def chromium() -> str:
    pytest.importorskip("selenium", reason="needs selenium (pip install selenium)")
    pytest.importorskip("jupyterlab", reason="needs jupyterlab in this environment")
    pytest.importorskip("ipywidgets", reason="needs ipywidgets in this environment")
    why = ensure_chromium()
    if why:
        pytest.skip(why)
    return "/usr/bin/chromium"


@pytest.fixture
def browser_tmp() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="pycont-browser-")
    try:
        yield path
    finally:
        rmtree(path)
        assert not os.path.exists(path), f"{path} could not be removed"


@pytest.fixture
def pycont_browser_root(browser_tmp: str) -> Iterator[str]:
    root = register_root(os.path.join(browser_tmp, "pycont-root"))
    os.makedirs(root)
    yield root
    containers = os.path.join(root, "containers")
    left = sorted(os.listdir(containers)) if os.path.isdir(containers) else []
    for cid in left:  # a failed test's container: take it back, then report it
        subprocess.run(
            [sys.executable, "-m", "pycont", "rm", "-f", cid],
            env=dict(os.environ, PYCONT_ROOT=root),
            capture_output=True,
            timeout=60,
        )
    leftover: list[str] = []
    if pids_with_env("PYCONT_ROOT", root):
        try:
            wait_until(
                lambda: not pids_with_env("PYCONT_ROOT", root),
                timeout=15,
                what="the processes of the private PYCONT_ROOT to end",
            )
        except Timeout:
            leftover = end_processes(pids_with_env("PYCONT_ROOT", root))
    assert not left, f"containers left in {containers}: {left}"
    assert not leftover, f"processes left with PYCONT_ROOT={root}: {leftover}"


@pytest.fixture
def jupyter(chromium: str, browser_tmp: str, pycont_browser_root: str) -> Iterator[JupyterServer]:
    notebooks = os.path.join(browser_tmp, "notebooks")
    os.makedirs(notebooks)
    env = dict(os.environ, PYCONT_ROOT=pycont_browser_root)
    env.pop("JUPYTER_TOKEN", None)
    server = JupyterServer(browser_tmp, notebooks, env)
    try:
        server.start()
        yield server
    finally:
        problems = server.stop()
        assert server.proc is None or not alive(server.proc.pid), "jupyter lab still runs"
        assert not problems, "JupyterLab shutdown: " + "; ".join(problems)


@pytest.fixture
def browser(chromium: str, browser_tmp: str) -> Iterator[Browser]:
    b = Browser(
        os.path.join(browser_tmp, "chromium-profile"),
        os.path.join(browser_tmp, "chromedriver.log"),
    )
    try:
        yield b
    finally:
        killed = b.close()
        assert not killed, f"chromium processes had to be killed: {killed}"
