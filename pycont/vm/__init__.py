"""Boot a small virtual machine with qemu: Debian's kernel, a busybox initramfs, one command.

The pieces, each usable alone::

    from pycont.vm import ensure_kernel, build_initramfs, boot

    kernel = ensure_kernel()                      # Debian's linux-image-*-amd64, cached
    initrd = build_initramfs(out, init_script, modules=kernel.modules(["9p", "overlay"]))
    result = boot(kernel.vmlinux, initrd, "cgroup_no_v1=all")
    result.exit_code, result.console_text, result.boot_seconds

``guest.run_in_guest()`` puts them together: it shares the host's filesystem read-only into
the guest, gives it a writable root (overlay of the host + tmpfs) with a pure cgroup v2
hierarchy at /sys/fs/cgroup, and runs one command there as root.

The machine decides the accelerator: KVM only when a probe boot under it succeeds (a nested
paravirtual KVM such as kvm_pvm cannot boot a stock kernel and is skipped without a probe),
TCG otherwise. Every result says which one it used and why.
"""

from __future__ import annotations

from pycont.vm.errors import VMError
from pycont.vm.initramfs import build_initramfs
from pycont.vm.kernel import KernelFiles, ensure_kernel
from pycont.vm.qemu import VMResult, boot

__all__ = ["KernelFiles", "VMError", "VMResult", "boot", "build_initramfs", "ensure_kernel"]
