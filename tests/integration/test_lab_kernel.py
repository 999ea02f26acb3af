"""The course's kernel in the lab VM: a real Jupyter kernel, real containers, real limits.

One boot (PYCONT_BACKEND=vm forces the lab VM on this root host) serves the whole module: the
kernel answers from the guest's kernel with a pure cgroup v2 hierarchy, a container there is
PID 1 of its namespace and is OOM-killed at its limit, an interrupt (a message) stops a running
cell, and shutting the kernel down powers the VM off and leaves no process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import requires

pytestmark = [requires("root"), pytest.mark.usefixtures("needs_vm")]

SPEC_ARGV = [sys.executable, "-m", "pycont.vm.labkernel", "-f", "{connection_file}"]


def _manager(env: dict[str, str]) -> Any:
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import KernelManager

    km = KernelManager()
    km._kernel_spec = KernelSpec(  # the spec `labkernel install` writes, without installing it
        argv=SPEC_ARGV, display_name="t", language="python", interrupt_mode="message"
    )
    km.start_kernel(env={**os.environ, **env}, cwd=os.getcwd())
    return km


class Kernel:
    def __init__(self, km: Any) -> None:
        self.km = km
        self.kc = km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=300)

    def run(self, code: str, timeout: float = 300) -> tuple[str, dict[str, Any]]:
        """(stdout, reply content) of one cell."""
        out: list[str] = []

        def hook(msg: dict[str, Any]) -> None:
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])

        reply = self.kc.execute_interactive(code, output_hook=hook, timeout=timeout)
        return "".join(out), reply["content"]


@pytest.fixture(scope="module")
def lab() -> Iterator[Kernel]:
    km = _manager({"PYCONT_BACKEND": "vm"})
    kernel = Kernel(km)
    try:
        yield kernel
    finally:
        kernel.kc.stop_channels()
        if km.is_alive():
            km.shutdown_kernel(now=True)


def test_the_kernel_runs_in_the_guest(lab: Kernel) -> None:
    from pycont.vm.kernel import cached_kernels, default_cache_dir

    out, reply = lab.run(
        "import os, json, pycont\n"
        "print(json.dumps({'release': os.uname().release,"
        " 'fs': open('/proc/self/mountinfo').read().count(' cgroup2 '),"
        " 'v1': open('/proc/self/mountinfo').read().count(' cgroup '),"
        " 'summary': pycont.probe().mode_summary, 'root': os.environ['PYCONT_ROOT']}))"
    )
    assert reply["status"] == "ok", reply
    got = json.loads(out)
    assert got["release"] == cached_kernels(default_cache_dir())[0].version
    assert got["fs"] >= 1 and got["v1"] == 0  # a pure cgroup v2 machine, unlike this host
    assert got["summary"].startswith("root: ")
    assert "in pycont's lab VM" in got["summary"] and "PYCONT_BACKEND=vm" in got["summary"]
    assert got["root"] == "/tmp/pycont-lab"


def test_containers_in_the_lab_are_isolated_and_limited(lab: Kernel) -> None:
    out, reply = lab.run(
        "r = pycont.run('busybox', ['sh', '-c', 'echo $$; cat /proc/self/cgroup'], memory='32m')\n"
        "print(r.output.split()[0])\n"
        "big = pycont.run('busybox', ['sh', '-c', 'x=a; while :; do x=$x$x; done'], memory='32m')\n"
        "print(big.exit_code, big.inspect()['State']['OOMKilled'])"
    )
    assert reply["status"] == "ok", reply
    pid, verdict = out.strip().splitlines()
    assert pid == "1"  # PID 1 of its own namespace
    assert verdict == "137 True"  # the kernel's OOM killer, at the container's limit


def test_an_interrupt_reaches_the_guest(lab: Kernel) -> None:
    msg_id = lab.kc.execute("import time; time.sleep(120)")
    time.sleep(3)
    t0 = time.monotonic()
    lab.km.interrupt_kernel()
    reply = lab.kc.get_shell_msg(timeout=60)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert time.monotonic() - t0 < 60
    out, again = lab.run("print('still here')")
    assert out.strip() == "still here" and again["status"] == "ok"


def test_shutdown_powers_the_vm_off(lab: Kernel) -> None:
    launcher = lab.km.provisioner.process
    children = subprocess.run(
        ["pgrep", "-P", str(launcher.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert children, "the launcher runs qemu as its child"
    lab.km.shutdown_kernel(now=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{c}") for c in children):
        time.sleep(0.5)
    assert not any(os.path.exists(f"/proc/{c}") for c in children)
    assert launcher.poll() == 0


def test_without_a_vm_the_kernel_runs_here_and_says_why(tmp_path) -> None:
    km = _manager({"PYCONT_BACKEND": "vm", "PYCONT_VM_CACHE": str(tmp_path / "no-kernels")})
    kernel = Kernel(km)
    try:
        out, reply = kernel.run("import os, pycont; print(os.environ.get('PYCONT_LAB_FAILED'))")
        assert reply["status"] == "ok"
        assert out.strip() == f"no kernel in {tmp_path / 'no-kernels'}"
        out, _ = kernel.run("print(pycont.probe().mode_summary)")
        assert "pycont's lab VM could not start here (no kernel in" in out
    finally:
        kernel.kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_a_bad_backend_is_one_line() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "pycont.vm.labkernel", "why"],
        env={**os.environ, "PYCONT_BACKEND": "docker"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 2
    assert r.stderr == "pycont: PYCONT_BACKEND='docker': accepted values are local and vm\n"
