"""Virtual machines beside containers: the same image booted under its own kernel with qemu.

The course's VM, from an image in the store (:mod:`pycont.vm.launch`, :mod:`pycont.vm.machine`)::

    import pycont.vm
    ok, why = pycont.vm.available()              # qemu, a kernel, and the accelerator
    v = pycont.vm.boot("busybox", ["sleep", "60"], memory="128m", cpus=1)
    v.exec(["uname", "-r"]).stdout, v.guest_stats(), v.host_memory()
    v.remove(force=True)
    pycont.vm.run("busybox", ["uname", "-r"], rm=True, on_output=print)

The pieces under it, each usable alone (the cgroup v2 test harness boots with them)::

    from pycont.vm import ensure_kernel, build_initramfs, boot_kernel

    kernel = ensure_kernel()                      # Debian's linux-image-*-amd64, cached
    initrd = build_initramfs(out, init_script, modules=kernel.modules(["9p", "overlay"]))
    result = boot_kernel(kernel.vmlinux, initrd, "cgroup_no_v1=all")

``guest.run_in_guest()`` shares the host's filesystem read-only into a guest with a pure cgroup
v2 hierarchy and runs one command there as root.

The machine decides the accelerator: KVM only when a probe boot under it succeeds (a nested
paravirtual KVM such as kvm_pvm cannot boot a stock kernel and is skipped without a probe),
TCG otherwise. Every VM and every result says which one it used and why.
"""

from __future__ import annotations

import importlib
from typing import Any

from pycont.vm.errors import VMError
from pycont.vm.initramfs import build_initramfs
from pycont.vm.kernel import KernelFiles, ensure_kernel
from pycont.vm.qemu import VMResult
from pycont.vm.qemu import boot as boot_kernel

__all__ = [
    "VM",
    "ExecResult",
    "GuestStats",
    "KernelFiles",
    "VMError",
    "VMResult",
    "available",
    "boot",
    "boot_kernel",
    "build_initramfs",
    "ensure_kernel",
    "get",
    "run",
    "vms",
]

_LAZY = {
    "VM": "pycont.vm.machine",
    "vms": "pycont.vm.machine",
    "get": "pycont.vm.machine",
    "boot": "pycont.vm.launch",
    "run": "pycont.vm.launch",
    "available": "pycont.vm.launch",
    "GuestStats": "pycont.vm.agent",
    "ExecResult": "pycont.vm.agent",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pycont.vm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
