"""A VM in the sampler and the dashboard, beside a container: both watched for real.

A busybox container capped at half a CPU and 64 MiB, and a VM booted from the same image (qemu,
TCG here) that counts in a shell loop. The VM's samples are its qemu process on the host,
cross-checked with /proc/<qemu>/status; its guest's own view comes from the agent and must fit
in the RAM the VM was booted with. Skipped, with the reason, where there is no qemu or kernel.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import matplotlib.image as mpimg
import numpy as np
import pytest
from IPython.core.displaypub import CapturingDisplayPublisher

import pycont
import pycont.vm as vm
from pycont.monitor import Sampler
from pycont.plots import COLOURS
from pycont.widgets import Dashboard, vm_label
from tests.helpers import requires, wait_for

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("needs_vm"), requires("root", "overlay")]

MiB = 1 << 20
SPIN = "while :; do :; done"
COUNT = "i=0; while [ $i -lt 2000000 ]; do i=$((i+1)); done; sleep 30"


@pytest.fixture
def pair(name: str) -> Iterator[tuple[pycont.Container, Any]]:
    """A capped container and a counting VM, both removed afterwards whatever happens."""
    c = pycont.run("busybox", ["sh", "-c", SPIN], detach=True, name=name, cpus="0.5", memory="64m")
    v = None
    try:
        v = vm.boot("busybox", ["sh", "-c", COUNT], name=f"hd-{name}", memory="128m", cpus=1)
        yield c, v
    finally:
        if v is not None:
            v.remove(force=True)
        c.remove(force=True)


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the notebook would receive: the shell's display publisher, recording."""
    from IPython.testing import globalipapp

    shell = globalipapp.get_ipython()
    pub = CapturingDisplayPublisher()
    monkeypatch.setattr(shell, "display_pub", pub)
    outputs: list[dict[str, Any]] = pub.outputs
    return outputs


def qemu_status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def test_a_vm_is_sampled_beside_a_container(pair: tuple[pycont.Container, Any]) -> None:
    c, v = pair
    s = Sampler(interval=0.1)
    try:
        s.watch(c)
        s.watch(v)
        s.start()
        wait_for(
            lambda: sum(x.guest_cpu_percent is not None for x in s.history(v.name)) >= 2,
            timeout=60,
            what="two guest CPU readings of the VM",
        )
        threads = qemu_status_kib(v.pid, "Threads")
    finally:
        s.stop()
    assert s.tracks[v.name].kind == "vm" and s.tracks[c.name].kind == "container"

    host = s.history(v.name)
    assert max(x.memory for x in host) > 20 * MiB  # the guest kernel and its RAM, in qemu's RSS
    assert max(x.memory_peak for x in host) <= qemu_status_kib(v.pid, "VmHWM") * 1024
    assert any(x.cpu_percent > 0 for x in host)  # TCG: every guest instruction is host CPU
    assert {(x.memory_limit, x.cpu_limit_percent) for x in host} == {(v.memory, 100.0 * v.cpus)}
    assert host[-1].pids == threads  # qemu's threads (vCPU, I/O): /proc/<qemu>/status
    guest = [x.guest_memory for x in host if x.guest_memory is not None]
    assert guest and all(0 < g <= v.memory for g in guest)  # the guest lives within its -m
    assert any(x.guest_cpu_percent for x in host if x.guest_cpu_percent is not None)  # counting

    box = s.history(c.name)
    assert box and all(x.guest_memory is None and x.guest_cpu_percent is None for x in box)
    assert {(x.memory_limit, x.cpu_limit_percent) for x in box} == {(64 * MiB, 50.0)}
    assert 0 < max(x.memory for x in box) <= 64 * MiB
    assert s.errors == []


def test_the_dashboard_of_a_container_and_a_vm(
    pair: tuple[pycont.Container, Any],
    published: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    c, v = pair
    dash = Dashboard([c, v], interval=0.1, redraw=0.3)
    png = dash.run(3)

    img = np.asarray(mpimg.imread(io.BytesIO(png)))[..., :3]
    vm_rgb = np.array([int(COLOURS[1][i : i + 2], 16) / 255 for i in (1, 3, 5)])
    assert int((np.abs(img - vm_rgb).max(axis=-1) < 0.1).sum()) > 200  # the VM's lines
    assert len(dash.sampler.history(v.name)) >= 5 and len(dash.sampler.history(c.name)) >= 5
    first, *_, last = published
    assert last["update"] and set(last["data"]) >= {"image/png"}  # the static picture
    # The live widget held a row for the VM: a label, no slider (-m and vCPUs are its hardware).
    assert dash._box is not None
    labels = [w.value for row in dash._box.children[1:] for w in getattr(row, "children", ())]
    assert vm_label(v) in labels, labels
    assert vm_label(v) == f"{v.name}: VM, -m 128m, 1 vCPU (fixed at boot)"
    assert capsys.readouterr() == ("", "")
    assert v.status == "running"  # the dashboard watched it, it did not stop it
