"""``%%vm`` in a real InteractiveShell: the cell runs as a shell script in a new VM.

The cell's output comes into the notebook, a non-zero exit code shows as ``[exit code N]``,
Ctrl-C kills the VM, and the VMs of cells that were neither detached nor ``--rm`` go when the
kernel exits. Bad input reads as one line, never as a traceback, and boots nothing.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import pytest
from IPython.core.error import UsageError as IPythonUsageError

import pycont.magics as magics
import pycont.vm as vm
from pycont.errors import ImageNotFound
from pycont.magics import VMRunner
from pycont.vm.errors import VMError
from pycont.vm.machine import vms_dir
from tests.helpers import wait_for
from tests.integration.conftest import _qemu_cmdlines, vm_ids
from tests.integration.test_extension import Recorder

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("needs_vm")]


@pytest.fixture(autouse=True)
def own_started(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """A fresh list of the VMs cells started, so that _cleanup() sees only this test's."""
    started: list[Any] = []
    monkeypatch.setattr(magics, "_started_vms", started)
    monkeypatch.setattr(magics, "_started", [])
    return started


def our_qemus() -> list[str]:
    return [c for c in _qemu_cmdlines() if vms_dir() in c]


def test_a_cell_runs_in_a_vm_and_its_output_and_exit_code_show(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from pycont.vm.launch import boot_kernel

    before = vm_ids()
    ip.run_cell_magic("vm", "--rm busybox", "echo hello from the cell; uname -r; exit 3")
    out = capsys.readouterr().out
    assert out == f"hello from the cell\n{boot_kernel().version}\n[exit code 3]\n"
    assert vm_ids() == before and our_qemus() == []


def test_cleanup_removes_the_cells_vms_but_not_detached_ones(
    ip: Any, capsys: pytest.CaptureFixture[str], name: str, own_started: list[Any]
) -> None:
    kept, background = f"{name}-fg", f"{name}-bg"
    ip.run_cell_magic("vm", f"--name {kept} busybox", "echo kept")
    ip.run_cell_magic("vm", f"-d --name {background} busybox", "sleep 1000")
    out = capsys.readouterr().out
    assert out.startswith(f"kept\n{background} (")
    assert out.endswith(") started in the background\n")
    assert vm.get(kept).status == "exited" and vm.get(kept).logs() == "kept\n"
    assert [v.name for v in own_started] == [kept]

    magics._cleanup()

    with pytest.raises(VMError, match="no such VM"):
        vm.get(kept)
    assert vm.get(background).status == "running"  # removed by the fixture, not by the kernel


def test_ctrl_c_kills_the_cells_vm_and_removes_it(name: str) -> None:
    # The interrupt reaches the main thread as a terminal's ^C reaches a notebook kernel:
    # SIGINT, which Python turns into KeyboardInterrupt.
    before = vm_ids()
    out = Recorder()

    def interrupt() -> None:
        wait_for(lambda: "started\n" in out.text, timeout=120, what="the cell's first line")
        os.kill(os.getpid(), signal.SIGINT)

    t = threading.Thread(target=interrupt, daemon=True)
    t.start()
    code = VMRunner(out=out).run(f"--name {name} busybox", "echo started; exec sleep 300")
    t.join(10)
    assert code == 130
    assert out.text == "started\ninterrupted: VM killed\n"
    assert vm_ids() == before and our_qemus() == []


def run_showing(ip: Any, cell: str, capsys: pytest.CaptureFixture[str]) -> tuple[Any, str]:
    result = ip.run_cell(cell)
    shown = capsys.readouterr()
    return result, shown.out + shown.err


@pytest.mark.parametrize(
    "line", ["--bogus busybox", "--cpus 0.5 busybox", "-m 1m busybox", "--name 'unclosed busybox"]
)
def test_bad_options_are_a_usage_error_without_traceback(
    ip: Any, capsys: pytest.CaptureFixture[str], line: str
) -> None:
    before = vm_ids()
    result, shown = run_showing(ip, f"%%vm {line}\necho hi\n", capsys)
    assert isinstance(result.error_in_exec, IPythonUsageError)
    assert "Traceback" not in shown and "%%vm: " in shown
    assert vm_ids() == before


def test_an_unknown_image_is_one_line_without_traceback(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    before = vm_ids()
    result, shown = run_showing(ip, "%%vm --rm no-such-image:1\necho hi\n", capsys)
    err = result.error_in_exec
    assert isinstance(err, ImageNotFound)
    assert "Traceback" not in shown and shown.strip() == f"ImageNotFound: {err}"
    assert vm_ids() == before and our_qemus() == []
