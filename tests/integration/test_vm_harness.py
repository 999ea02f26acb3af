"""The VM harness boots for real: Debian's kernel under qemu, a pure cgroup v2 hierarchy inside.

This is the harness ``tests/vm/run_v2.py`` runs the cgroup v2 tests in. Each boot takes a few
seconds under TCG. Skipped with the reason when qemu-system-x86_64 is missing and cannot be
installed (not root, or no apt), or when no kernel can be had.
"""

from __future__ import annotations

import os
import tempfile

import pytest

from pycont.vm import VMError, ensure_kernel
from pycont.vm.guest import DEFAULT_LEAF, TEMP_PREFIX, in_guest, run_in_guest
from pycont.vm.kernel import KernelFiles
from pycont.vm.qemu import ensure_qemu

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module")
def kernel() -> KernelFiles:
    if in_guest():
        pytest.skip("already inside the VM harness's guest: a nested TCG boot takes minutes")
    try:
        ensure_qemu(install=os.geteuid() == 0)
    except VMError as err:
        pytest.skip(f"qemu-system-x86_64 missing and cannot be installed: {err}")
    try:
        return ensure_kernel()
    except VMError as err:
        pytest.skip(f"no Debian kernel for the VM: {err}")


def _vm_temps() -> set[str]:
    return {n for n in os.listdir(tempfile.gettempdir()) if n.startswith(TEMP_PREFIX)}


def _gone(pid: int | None) -> bool:
    assert pid is not None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"qemu" not in f.read()
    except FileNotFoundError:
        return True


def test_the_guest_sees_a_pure_cgroup2_hierarchy(kernel: KernelFiles) -> None:
    temps = _vm_temps()
    res = run_in_guest(
        "cat /sys/fs/cgroup/cgroup.controllers; stat -f -c %T /sys/fs/cgroup; "
        "cat /proc/self/cgroup; echo ok; exit 7",
        kernel=kernel,
        timeout=300,
    )
    lines = res.console_text.splitlines()
    assert res.exit_code == 7, res.tail()
    assert "cgroup2fs" in lines, res.tail()
    assert "ok" in lines
    controllers = next(ln for ln in lines if "memory" in ln.split()).split()
    assert {"memory", "cpu", "pids", "io"} <= set(controllers), controllers
    assert f"0::{DEFAULT_LEAF}" in lines  # the command runs in a leaf, as under systemd
    assert res.boot_seconds is not None and res.boot_seconds < res.total_seconds
    assert res.marks["UP"] <= res.marks["READY"] <= res.marks["EXIT"]
    assert res.qemu_returncode == 0 and not res.timed_out
    assert _gone(res.qemu_pid)
    assert _vm_temps() == temps


def test_a_vm_past_its_timeout_is_killed(kernel: KernelFiles) -> None:
    temps = _vm_temps()
    res = run_in_guest("sleep 600", kernel=kernel, timeout=2)
    assert res.timed_out
    assert res.exit_code is None
    assert res.total_seconds < 30
    assert _gone(res.qemu_pid)
    assert _vm_temps() == temps
