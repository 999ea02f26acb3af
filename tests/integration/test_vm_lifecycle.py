"""A VM from an image, for real: Debian's kernel under qemu (TCG here), the image's files as its
root, the guest agent serving exec and stats; every ending (exit code, stop, kill, panic,
timeout) recorded; bad input refused before anything is made.

Each boot takes a few seconds under TCG. Skipped, with the reason, where there is no qemu or no
kernel (the VM tests of the CLI and the comparison skip the same way).
"""

from __future__ import annotations

import os
import signal

import pytest

import pycont.vm as vm
from pycont.errors import CommandNotFound, ImageNotFound, InvalidState, NameConflict, UsageError
from pycont.vm.errors import VMError
from pycont.vm.machine import vms_dir
from tests.helpers import wait_for
from tests.integration.conftest import _qemu_cmdlines, vm_ids

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("needs_vm")]


def _nothing_left(before: set[str]) -> None:
    assert vm_ids() == before
    names = os.path.join(vms_dir(), "names")
    assert not os.path.isdir(names) or not [
        n for n in os.listdir(names) if os.readlink(os.path.join(names, n)) not in before
    ]


def test_run_prints_the_guest_kernel_and_keeps_the_exit_code() -> None:
    chunks: list[str] = []
    v = vm.run(
        "busybox",
        ["sh", "-c", "uname -r; echo to-stderr >&2; printf no-newline; exit 3"],
        on_output=chunks.append,
        rm=True,
    )
    out = "".join(chunks)
    assert out.splitlines()[0] == v.kernel_version == vm.ensure_kernel(offline=True).version
    assert "to-stderr" in out and out.endswith("no-newline")
    assert v.exit_code == 3 and v.exit_reason == ""
    assert v.accel in ("tcg", "kvm") and v.accel_reason
    m = v.marks
    assert m["qemu"] < m["UP"] < m["READY"] <= m["OUTPUT"] <= m["EXIT"]
    assert v.id not in vm_ids()  # rm=True: its folder is gone


def test_a_detached_vm_serves_exec_and_stats_then_stops(name: str) -> None:
    v = vm.boot("busybox", ["sleep", "300"], name=name, memory="160m", env={"GREETING": "hi"})
    try:
        with open(f"/proc/{v.pid}/cmdline") as f:
            assert v.status == "running" and "process=pycont-vm" in f.read()
        assert vm.get(name).id == v.id == vm.get(v.id[:10]).id
        assert [x.id for x in vm.vms(all=False) if x.id == v.id] == [v.id]
        r = v.exec("echo $GREETING; hostname; echo oops >&2; exit 4")
        assert (r.exit_code, r.stdout, r.stderr) == (4, f"hi\n{name}\n", "oops\n")
        r = v.exec(["cat", "/proc/version"])
        assert r.exit_code == 0 and v.kernel_version in r.stdout
        assert v.exec(["pwd"], workdir="/etc").stdout == "/etc\n"
        assert v.exec(["nosuch-command"]).exit_code == 127
        with pytest.raises(VMError, match="no exit within"):
            v.exec("sleep 100", timeout=1)
        assert "sleep 100" not in v.exec("ps").stdout  # killed in the guest
        s = v.guest_stats()
        assert 64 << 20 < s.mem_total <= 160 << 20  # the kernel keeps some of -m for itself
        assert 0 < s.mem_available < s.mem_total and s.ncpu == 1 and s.uptime > 0
        with pytest.raises(NameConflict, match=name):
            vm.boot("busybox", ["true"], name=name)
        with pytest.raises(InvalidState, match="running"):
            v.remove()
        v.stop(timeout=10)
        assert (v.status, v.exit_code, v.exit_reason) == ("exited", 143, "stopped")
        with pytest.raises(InvalidState, match="exited"):
            v.exec(["true"])
    finally:
        v.remove(force=True)


def test_a_kernel_panic_is_recorded_as_a_crash() -> None:
    v = vm.run("busybox", ["sh", "-c", "echo c > /proc/sysrq-trigger; sleep 30"], timeout=120)
    try:
        assert v.exit_code is None
        assert v.exit_reason == "kernel panic"
        assert "sysrq" in v.state()["panic"].lower() or "panic" in v.state()["panic"].lower()
    finally:
        v.remove()


def test_a_hung_guest_is_killed_by_the_timeout_and_a_killed_qemu_is_noticed() -> None:
    v = vm.run("busybox", ["sleep", "1000"], timeout=1)
    try:
        assert (v.status, v.exit_code, v.exit_reason) == ("exited", None, "timeout")
    finally:
        v.remove()
    v = vm.boot("busybox", ["sleep", "1000"])
    try:
        os.kill(v.pid or 0, signal.SIGKILL)  # as the OOM killer or a user would
        wait_for(lambda: v.status == "exited", timeout=30, what="qemu's end to be seen")
        assert v.exit_code is None and "without an exit code" in v.exit_reason
    finally:
        v.remove()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"image": "no-such-image:1"}, ImageNotFound, "no-such-image"),
        ({"memory": "1m"}, UsageError, "at least 128m"),
        ({"cpus": 0}, UsageError, "whole number of vCPUs"),
        ({"cpus": "0.5"}, UsageError, "whole number of vCPUs"),
        ({"command": ["no-such-command"]}, CommandNotFound, "no-such-command"),
        ({"name": "bad/name"}, UsageError, "invalid VM name"),
    ],
)
def test_bad_input_is_refused_before_anything_is_made(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    before = vm_ids()
    args = {"image": "busybox", "command": ["true"], **kwargs}
    with pytest.raises(error, match=message):
        vm.boot(args.pop("image"), args.pop("command"), **args)  # type: ignore[arg-type]
    _nothing_left(before)


def test_no_qemu_and_a_boot_that_never_gets_ready_leave_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = vm_ids()
    monkeypatch.setenv("PYCONT_VM_QEMU", "/nonexistent/qemu-system-x86_64")
    with pytest.raises(VMError, match="not found: a VM needs qemu"):
        vm.boot("busybox", ["true"])
    _nothing_left(before)
    monkeypatch.delenv("PYCONT_VM_QEMU")
    with pytest.raises(VMError, match="not ready within"):
        vm.boot("busybox", ["true"], boot_timeout=0.3)
    _nothing_left(before)
    wait_for(
        lambda: not [c for c in _qemu_cmdlines() if vms_dir() in c],
        timeout=30,
        what="the killed qemu to end",
    )
