"""The probe on the real machine, cross-checked against what the system itself shows.

Nothing here hard-codes the machine: cgroup mode is checked against ``stat -f``, seccomp and
no_new_privs against /proc/self/status, user namespaces against util-linux ``unshare``.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import pycont
from pycont.kernel.probe import Probe, probe

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture(scope="module")
def found() -> Probe:
    return probe(refresh=True)


def fs_type(path: str) -> str:
    return subprocess.run(
        ["stat", "-f", "-c", "%T", path], capture_output=True, text=True, check=False
    ).stdout.strip()


def leftovers() -> tuple[list[str], list[str], list[str]]:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        mounts = [line for line in f if "pycont-probe" in line]
    cgroups = glob.glob("/sys/fs/cgroup/**/pycont-probe-*", recursive=True)
    temps = glob.glob(os.path.join(tempfile.gettempdir(), "pycont-probe-*"))
    return mounts, cgroups, temps


def test_probe_is_fast_and_cached() -> None:
    start = time.perf_counter()
    first = probe(refresh=True)
    took = time.perf_counter() - start
    assert took < 1.0, f"probe took {took:.3f} s"
    assert probe() is first
    assert probe(refresh=True) is not first


def test_leaves_nothing_behind(found: Probe) -> None:
    assert leftovers() == ([], [], [])


def test_cgroup_mode_matches_the_filesystem(found: Probe) -> None:
    top = fs_type("/sys/fs/cgroup")
    unified = os.path.isdir("/sys/fs/cgroup/unified") and fs_type("/sys/fs/cgroup/unified")
    if top == "cgroup2fs":
        expected = "v2"
    elif top == "tmpfs" and unified == "cgroup2fs":
        expected = "hybrid"
    elif top == "tmpfs":
        expected = "v1"
    else:
        expected = "none"
    assert found.cgroup_mode == expected
    assert found.cgroup.reason.startswith(f"{expected}:")


def test_controllers_match_the_kernel(found: Probe) -> None:
    # /proc/cgroups (cgroups(7)): hierarchy 0 means the controller is on v2 (or unmounted).
    with open("/proc/cgroups", encoding="utf-8") as f:
        rows = [line.split() for line in f if not line.startswith("#")]
    for name, hierarchy, _, enabled in rows:
        if name in found.cgroup_controllers:
            expected = "v2" if hierarchy == "0" else "v1"
            assert found.cgroup_controllers[name] == expected, name
            assert enabled == "1"
    for name, version in found.cgroup_controllers.items():
        if version == "v1":
            assert f"{name}" in found.cgroup.reason


def test_seccomp_and_no_new_privs_match_status(found: Probe) -> None:
    with open("/proc/self/status", encoding="utf-8") as f:
        status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    if "Seccomp" in status:
        assert found.seccomp.ok
        assert f"mode {status['Seccomp']} " in found.seccomp.reason
    assert found.no_new_privs.ok
    assert found.no_new_privs.reason.endswith(f"NoNewPrivs {status.get('NoNewPrivs', 'unknown')}")


def test_kernel_release(found: Probe) -> None:
    assert found.kernel == os.uname().release


def test_user_namespaces_agree_with_unshare(found: Probe) -> None:
    tool = shutil.which("unshare")
    if tool is None:
        pytest.skip("needs util-linux unshare")
    done = subprocess.run([tool, "--user", "true"], capture_output=True, check=False)
    assert found.user_namespaces.ok == (done.returncode == 0), found.user_namespaces.reason


def test_kvm_matches_the_device(found: Probe) -> None:
    if not os.path.exists("/dev/kvm"):
        assert not found.kvm.ok
        return
    if os.access("/dev/kvm", os.R_OK | os.W_OK):
        assert found.kvm.ok, found.kvm.reason
        assert "KVM_GET_API_VERSION = 12" in found.kvm.reason
        assert ("kvm_pvm" in found.kvm.reason) == os.path.isdir("/sys/module/kvm_pvm")


def test_mode_is_consistent(found: Probe) -> None:
    if found.root.ok:
        assert found.mode == "root"
    elif found.user_namespaces.ok:
        assert found.mode == "rootless"
    assert found.mode_summary.startswith(found.mode + ":")


@needs_root
def test_as_root(found: Probe) -> None:
    assert found.root.ok, found.root.reason
    assert found.user_namespaces.ok, found.user_namespaces.reason
    assert "unprivileged user" in found.user_namespaces.reason
    assert found.overlay.ok, found.overlay.reason
    assert found.cgroup_writable.ok, found.cgroup_writable.reason
    assert found.mode == "root"


@needs_root
def test_as_an_unprivileged_user() -> None:
    # The same probe in a fresh interpreter running as nobody: what a rootless learner sees.
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]);"
        "from pycont.kernel.probe import probe; print(json.dumps(probe().as_dict()))"
    )
    parent = str(Path(pycont.__file__).resolve().parents[1])
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    done = subprocess.run(
        [python, "-I", "-c", code, parent],
        capture_output=True,
        text=True,
        check=False,
        user=65534,
        group=65534,
        extra_groups=[],
        cwd="/",
    )
    if done.returncode != 0:
        pytest.skip(f"cannot run python as uid 65534: {done.stderr.strip()[-200:]}")
    d = json.loads(done.stdout)
    assert not d["root"]["ok"]
    assert not d["overlay"]["ok"]
    assert d["mode"] in ("rootless", "unprivileged")
    assert d["mode"] == ("rootless" if d["user_namespaces"]["ok"] else "unprivileged")
    assert leftovers() == ([], [], [])
