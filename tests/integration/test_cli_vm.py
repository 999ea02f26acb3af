"""``pycont vm ...`` for real: the CLI in its own process, booting Debian's kernel under qemu.

Each test checks what a user sees (stdout, one line on stderr, the exit code) and what is left on
the machine: no qemu of this store's VMs, no VM folder, no name. A boot takes a few seconds
under TCG, so the tests share few of them. Skipped, with the reason, where no VM can boot.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from pycont.vm.machine import vms_dir
from tests.helpers import REPO, cli
from tests.integration.conftest import _qemu_cmdlines, vm_ids

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("needs_vm")]


def our_qemus() -> list[str]:
    """The qemu processes of this store's VMs (other stores may boot VMs meanwhile)."""
    return [c for c in _qemu_cmdlines() if vms_dir() in c]


def names() -> set[str]:
    d = os.path.join(vms_dir(), "names")
    return set(os.listdir(d)) if os.path.isdir(d) else set()


def nothing_left(before_ids: set[str], before_names: set[str]) -> None:
    assert vm_ids() == before_ids
    assert names() == before_names
    assert our_qemus() == []


def test_run_prints_the_guest_kernel_and_exits_with_the_commands_code() -> None:
    from pycont.vm.launch import boot_kernel

    before = vm_ids(), names()
    p = cli("vm", "run", "--rm", "busybox", "uname", "-r", timeout=120)
    assert (p.returncode, p.stderr) == (0, "")
    # the guest's own kernel: the Debian package pycont boots, whatever the host runs
    assert p.stdout == f"{boot_kernel().version}\n"
    nothing_left(*before)

    p = cli("vm", "run", "--rm", "busybox", "sh", "-c", "echo before; exit 3", timeout=120)
    assert (p.returncode, p.stdout, p.stderr) == (3, "before\n", "")
    nothing_left(*before)


def test_detached_vm_through_ls_exec_logs_inspect_stop_and_rm(name: str) -> None:
    before = vm_ids(), names()
    p = cli(
        "vm", "run", "-d", "--name", name, "-m", "160m", "-e", "GREETING=hi",
        "busybox", "sh", "-c", "echo booted; exec sleep 300",
        timeout=120,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    vid = p.stdout.strip()
    assert len(vid) == 64 and vid in vm_ids()
    try:
        ls = cli("vm", "ls").stdout.splitlines()
        assert ls[0].split() == [
            "VM", "ID", "NAME", "IMAGE", "COMMAND", "CREATED", "STATUS", "ACCEL", "MEMORY", "CPUS",
        ]  # fmt: skip
        row = next(line for line in ls if line.startswith(vid[:12]))
        assert f" {name} " in row and " Up " in row and " 160MiB " in row
        assert cli("vm", "ls", "-q").stdout.split() == [vid[:12]]

        p = cli("vm", "exec", name, "sh", "-c", "echo $GREETING; echo oops >&2; exit 4")
        assert (p.returncode, p.stdout, p.stderr) == (4, "hi\n", "oops\n")
        p = cli("vm", "exec", "-w", "/etc", name, "pwd")
        assert (p.returncode, p.stdout) == (0, "/etc\n")
        assert cli("vm", "logs", name).stdout == "booted\n"

        p = cli("vm", "inspect", name)
        (d,) = json.loads(p.stdout)
        assert (d["Id"], d["Name"], d["State"]["Status"]) == (vid, name, "running")
        assert d["Config"]["Memory"] == 160 << 20 and d["Machine"]["Accel"] in ("tcg", "kvm")
        with open(f"/proc/{d['State']['Pid']}/cmdline") as f:
            assert "process=pycont-vm" in f.read()  # the pid is the VM's qemu

        p = cli("vm", "rm", name)  # running: refused without -f, as docker
        assert p.returncode == 1 and p.stdout == ""
        assert p.stderr.startswith("Error response from daemon: ") and "running" in p.stderr

        p = cli("vm", "stop", "-t", "10", name, timeout=60)
        assert (p.returncode, p.stdout) == (0, f"{name}\n")
        row = next(line for line in cli("vm", "ls", "-a").stdout.splitlines() if name in line)
        assert " Exited (143) " in row  # sleep ended by SIGTERM: 128 + 15
        p = cli("vm", "exec", name, "true")
        assert p.returncode == 125 and "not running" in p.stderr
        assert cli("vm", "kill", name).returncode == 1

        p = cli("vm", "rm", name)
        assert (p.returncode, p.stdout) == (0, f"{name}\n")
    finally:
        cli("vm", "rm", "-f", name)
    nothing_left(*before)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["no-such-image:1", "true"], 125, "no-such-image"),
        (["-m", "1m", "busybox", "true"], 125, "at least 128m"),
        (["--cpus", "0", "busybox", "true"], 125, "whole number of vCPUs"),
        # docker's code for a command that is not in the image: 127
        (["busybox", "no-such-command"], 127, "no-such-command"),
    ],
)
def test_bad_input_is_one_line_and_leaves_nothing(
    args: list[str], code: int, message: str, name: str
) -> None:
    before = vm_ids(), names()
    p = cli("vm", "run", "--name", name, *args, timeout=120)
    assert (p.returncode, p.stdout) == (code, "")
    assert p.stderr.count("\n") == 1 and message in p.stderr, p.stderr
    nothing_left(*before)


def test_a_guest_past_its_timeout_is_one_line_and_exit_125() -> None:
    before = vm_ids(), names()
    p = cli("vm", "run", "--rm", "--timeout", "1", "busybox", "sleep", "300", timeout=120)
    assert (p.returncode, p.stdout) == (125, "")
    assert p.stderr.count("\n") == 1 and "without an exit code: timeout" in p.stderr
    nothing_left(*before)


def test_ctrl_c_kills_the_vm_and_exits_130(name: str) -> None:
    before = vm_ids(), names()
    env = {**os.environ, "PYTHONPATH": REPO}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pycont", "vm", "run", "--rm", "--name", name, "busybox",
         "sh", "-c", "echo started; exec sleep 300"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "started\n"  # the guest's command runs
        assert len(our_qemus()) == 1
        proc.send_signal(signal.SIGINT)  # what a terminal's ^C sends
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, out, err) == (130, "", "")
    nothing_left(*before)
