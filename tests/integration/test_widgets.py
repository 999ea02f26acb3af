"""The dashboard (pycont.widgets): plots that are real pictures, a live view that leaves a
static PNG behind, and sliders whose changes reach the kernel.

The display runs in a real InteractiveShell whose display publisher records what a notebook
would receive; the limits are read back from the container's cgroup files.
"""

from __future__ import annotations

import base64
import io
import os
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

import matplotlib.image as mpimg
import numpy as np
import pytest
from IPython.core.displaypub import CapturingDisplayPublisher

import pycont
from pycont.monitor import Sample, Sampler, Track
from pycont.widgets import Dashboard, _throttled_spans, render_png
from tests.helpers import requires, wait_for

MiB = 1 << 20
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
SPIN = "while :; do :; done"


def decode(png: bytes) -> np.ndarray[Any, Any]:
    assert png.startswith(PNG_MAGIC)
    return np.asarray(mpimg.imread(io.BytesIO(png)))


def a_picture(img: np.ndarray[Any, Any]) -> bool:
    """Two panels' worth of pixels, RGB or RGBA (today 720 x 368: figsize 9 x 4.6 at 80 dpi)."""
    height, width, channels = img.shape
    return height >= 200 and width >= 400 and channels in (3, 4)


def red_pixels(img: np.ndarray[Any, Any]) -> int:
    """Pixels of the OOM mark's red (antialiased: reddish, not only pure red)."""
    return int(((img[..., 0] > 0.8) & (img[..., 1] < 0.4) & (img[..., 2] < 0.4)).sum())


def made_up(oom_times: list[float]) -> Sampler:
    """A sampler with 5 s of history for one container "c", as if it had sampled it."""
    s = Sampler(interval=0.1)
    history = deque(
        Sample(
            t=i / 10,
            cpu_percent=40.0 + (i % 3) * 10,
            cpu_limit_percent=50.0,
            throttled_percent=80.0 if i % 4 else 0.0,
            memory=i * MiB % (32 * MiB),
            memory_peak=i * MiB,
            memory_limit=32 * MiB,
            pids=1,
            oom_kills=len(oom_times),
            io_read=0,
            io_write=0,
            throttled=bool(i % 4),
        )
        for i in range(50)
    )
    s.tracks["c"] = Track("c", history, oom_times=oom_times)
    return s


def cgroup_file(c: pycont.Container, controller: str, name: str) -> str:
    with open(os.path.join(c.cgroup().paths()[controller], name)) as f:
        return f.read().strip()


def dashboard_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("pycont-")]


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the notebook would receive: the shell's display publisher, recording."""
    from IPython.testing import globalipapp

    shell = globalipapp.get_ipython()
    pub = CapturingDisplayPublisher()
    monkeypatch.setattr(shell, "display_pub", pub)
    return pub.outputs  # type: ignore[no-any-return]


@pytest.fixture
def spinner(name: str) -> Iterator[pycont.Container]:
    c = pycont.run("busybox", ["sh", "-c", SPIN], detach=True, name=name, cpus="1", memory="64m")
    yield c
    c.remove(force=True)


# -- the picture -----------------------------------------------------------------------------
def test_render_png_of_a_history_is_a_real_picture() -> None:
    img = decode(render_png(made_up([3.0]), ["c"]))
    assert a_picture(img)
    assert len(np.unique(img.reshape(-1, img.shape[-1]), axis=0)) > 100  # lines, text, axes
    assert red_pixels(img) > 0  # the OOM kill is marked


def test_no_oom_no_red_mark() -> None:
    assert red_pixels(decode(render_png(made_up([]), ["c"]))) == 0


def test_render_png_of_nothing_is_still_a_picture() -> None:
    # a name the sampler does not know, or one without samples yet: empty axes, no error
    assert a_picture(decode(render_png(Sampler(), ["unknown"])))


@requires("root", "overlay")
def test_render_png_of_a_real_sampler(spinner: pycont.Container) -> None:
    with Sampler(interval=0.1) as s:
        s.watch(spinner)
        wait_for(lambda: len(s.history(spinner.name)) >= 5, timeout=30, what="5 samples")
        png = render_png(s, [spinner.name])
    assert a_picture(decode(png))


def test_each_throttled_interval_is_shaded() -> None:
    # A sample covers the interval that ends at its time; runs of them merge into one span.
    marks = [False, True, True, False, True, False, False, True]
    hist = [
        Sample(i / 10, 50.0, 50.0, 100.0 * m, 0, 0, None, 1, 0, 0, 0, throttled=m)
        for i, m in enumerate(marks)
    ]
    spans = [(round(a, 2), round(b, 2)) for a, b in _throttled_spans(hist, 0.1)]
    assert spans == [(0.0, 0.2), (0.3, 0.4), (0.6, 0.7)]


def test_render_png_of_a_track_ended_by_an_oom_kill() -> None:
    s = made_up([5.2])
    s.tracks["c"].peak = 32 * MiB  # the high-water mark recorded after the last sample
    img = decode(render_png(s, ["c"]))
    assert a_picture(img) and red_pixels(img) > 0


# -- the live dashboard ----------------------------------------------------------------------
@requires("root", "overlay")
def test_run_leaves_a_static_png_and_no_thread(
    spinner: pycont.Container,
    published: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    dash = Dashboard([spinner], interval=0.1, redraw=0.3)
    png = dash.run(2)

    first, *_, last = published
    assert WIDGET_VIEW in first["data"]  # the live widget
    assert last["update"] and last["transient"]["display_id"] == first["transient"]["display_id"]
    assert set(last["data"]) >= {"image/png"}  # replaced in place by the picture
    assert base64.b64decode(last["data"]["image/png"]) == png
    decode(png)
    assert dash._box is not None and dash._box.comm is None  # the widget is closed
    assert dashboard_threads() == []
    assert len(dash.sampler.history(spinner.name)) >= 5
    assert capsys.readouterr() == ("", "")  # nothing printed, from any thread


@requires("root", "overlay")
def test_update_changes_the_limits_the_kernel_enforces(spinner: pycont.Container) -> None:
    dash = Dashboard([spinner])
    dash._update(spinner, cpus=0.5)
    assert spinner.limits().nano_cpus == 500_000_000
    assert cgroup_file(spinner, "cpu", "cpu.cfs_quota_us") == "50000"
    dash._update(spinner, memory="48m")
    assert spinner.limits().memory == 48 * MiB
    assert int(cgroup_file(spinner, "memory", "memory.limit_in_bytes")) == 48 * MiB


def sliders(dash: Dashboard) -> tuple[Any, Any]:
    """The CPUs and memory sliders of the first container's row."""
    assert dash._box is not None
    row = dash._box.children[1]
    _label, cpus, memory = row.children
    return cpus, memory


@requires("root", "overlay")
def test_moving_the_cpu_slider_updates_the_container(
    spinner: pycont.Container, published: list[dict[str, Any]]
) -> None:
    dash = Dashboard([spinner], redraw=0.3).show()
    try:
        cpus, _ = sliders(dash)
        assert cpus.value == 1.0
        cpus.value = 0.7
        assert cgroup_file(spinner, "cpu", "cpu.cfs_quota_us") == "70000"
        assert dash._status.value == f"{spinner.name}: cpus=0.7"
    finally:
        dash.stop()
    assert dashboard_threads() == []


@requires("root", "overlay")
def test_a_refused_value_shows_on_the_status_line(
    spinner: pycont.Container, published: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    dash = Dashboard([spinner], redraw=0.3).show()
    try:
        dash._update(spinner, cpus=len(os.sched_getaffinity(0)) + 1)
        assert "range of CPUs" in dash._status.value
        assert cgroup_file(spinner, "cpu", "cpu.cfs_quota_us") == "100000"  # unchanged
    finally:
        dash.stop()
    assert capsys.readouterr() == ("", "")


@requires("root", "overlay")
def test_only_the_limits_a_container_has_get_a_slider(
    name: str, published: list[dict[str, Any]]
) -> None:
    import ipywidgets as w

    c = pycont.run("busybox", ["sh", "-c", SPIN], detach=True, name=name, cpus="0.5")
    try:
        dash = Dashboard([c], redraw=0.3).show()
        try:
            assert dash._box is not None
            _label, cpus, memory = dash._box.children[1].children
            assert isinstance(cpus, w.FloatSlider) and cpus.value == 0.5
            # No --memory: no slider pretending 512 MiB, but the words.
            assert isinstance(memory, w.Label) and memory.value == "memory: no limit"
        finally:
            dash.stop()
    finally:
        c.remove(force=True)


@requires("root", "overlay")
def test_every_memory_the_slider_offers_can_be_set(
    spinner: pycont.Container, published: list[dict[str, Any]]
) -> None:
    # The slider goes up to 1024 MiB. On cgroup v1 with swap accounting, a container started
    # with -m 64m has memory+swap 128m, and the kernel refuses a memory limit above it.
    dash = Dashboard([spinner], redraw=0.3).show()
    try:
        _, memory = sliders(dash)
        assert memory.value == 64
        memory.value = 256
        shown = int(cgroup_file(spinner, "memory", "memory.limit_in_bytes"))
        assert shown == 256 * MiB, f"slider at 256 MiB, kernel at {shown // MiB} MiB: " + str(
            dash._status.value
        )
    finally:
        dash.stop()
