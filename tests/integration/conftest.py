"""Integration tests run real containers: each test leaves none behind.

Whatever containers a test made (through the API or the CLI) are removed after it with
``remove(force=True)``, and the removal is checked: no folder in the store, no process left
in their PID namespaces, no mount and no cgroup naming them.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cgroup_helpers import procs  # noqa: F401 - the fixture, for the cgroup tests
from tests.helpers import (
    container_ids,
    containers_dir,
    mountinfo_lines,
    pids_in_pid_namespace,
    take_back_cgroups,
    wait_for,
)
from tests.integration.cli_servers import servers  # noqa: F401 - the command server's tests


@pytest.fixture(scope="module")
def needs_vm() -> None:
    """Skip, with the reason, where no VM can boot (no qemu, no kernel, or already a guest)."""
    from pycont.vm.errors import VMError
    from pycont.vm.guest import in_guest
    from pycont.vm.launch import boot_kernel, find_qemu

    if in_guest():
        pytest.skip("inside the VM harness's guest: a nested TCG boot takes minutes")
    try:
        find_qemu()
        boot_kernel()
    except VMError as err:
        pytest.skip(f"no VM on this machine: {err}")


def vm_ids() -> set[str]:
    from pycont.vm.machine import vms_dir

    try:
        return {e for e in os.listdir(vms_dir()) if e != "names"}
    except FileNotFoundError:
        return set()


@pytest.fixture(autouse=True)
def cleanup_vms(pycont_root: str) -> Iterator[None]:
    """VMs a test booted are removed after it, and their qemu must be gone."""
    before = vm_ids()
    yield
    new = vm_ids() - before
    if not new:
        return
    from pycont.vm.errors import VMError
    from pycont.vm.machine import VM, vms_dir

    for vid in sorted(new):
        with contextlib.suppress(VMError):
            VM(os.path.join(vms_dir(), vid)).remove(force=True)
    assert not vm_ids() - before, f"VM folders left: {sorted(vm_ids() - before)}"
    for vid in new:
        wait_for(
            lambda vid=vid: not any(vid in line for line in _qemu_cmdlines()),
            timeout=30,
            what=f"the qemu of VM {vid[:12]} to end",
        )


def _qemu_cmdlines() -> list[str]:
    out = []
    for e in os.listdir("/proc"):
        if e.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{e}/cmdline", "rb") as f:
                out.append(f.read().decode(errors="replace"))
    return [c for c in out if "process=pycont-vm" in c]


@pytest.fixture(autouse=True)
def cleanup_containers(pycont_root: str) -> Iterator[None]:
    before = container_ids()
    yield
    new = container_ids() - before
    if not new:
        return
    import pycont

    namespaces: dict[str, int] = {}
    for cid in sorted(new):
        c = pycont.Container(cid)
        with contextlib.suppress(pycont.ContainerNotFound):
            pid = c.pid
            if pid:
                with contextlib.suppress(OSError):
                    namespaces[cid] = os.stat(f"/proc/{pid}/ns/pid").st_ino
        with contextlib.suppress(pycont.ContainerNotFound):
            c.remove(force=True)
    wait_for(
        lambda: not (container_ids() - before),
        timeout=30,
        what=f"removal of {sorted(container_ids() - before)} from {containers_dir()}",
    )
    for cid, inode in namespaces.items():
        wait_for(
            lambda inode=inode: not pids_in_pid_namespace(inode),
            timeout=30,
            what=f"the processes of container {cid[:12]} to end",
        )
    for cid in new:
        assert mountinfo_lines(cid) == [], f"mounts of container {cid[:12]} left on the host"
        assert take_back_cgroups(cid) == [], f"cgroups of container {cid[:12]} left"


@pytest.fixture
def name() -> str:
    """A container name no other test uses."""
    return f"t-{uuid.uuid4().hex[:10]}"


# The extension's tests (%%container, %%vm, %%dockerfile) share it.
@pytest.fixture(scope="module")
def ip() -> Iterator[Any]:
    """The test InteractiveShell (one per process) with the extension loaded."""
    from IPython.testing import globalipapp

    shell = globalipapp.get_ipython()  # the module attribute: it rebinds itself once started
    shell.run_line_magic("load_ext", "pycont")
    yield shell
    shell.run_line_magic("unload_ext", "pycont")
