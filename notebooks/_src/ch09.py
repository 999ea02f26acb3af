"""09 — containers vs virtual machines: the same image booted as a container and as a microVM,
measured side by side (kernel, start time, memory, CPU, density, size)."""

# ruff: noqa: E501  (markdown tables and links cannot be wrapped)


FILE = "09-containers-vs-vms.ipynb"

# fmt: off
GOAL = r"""
# 09 · Containers vs virtual machines

> *"Diferença entre Containers e VMs — Containers: compartilham o kernel do sistema operacional;
> são mais leves e rápidos; são mais fáceis de escalar. VMs: possuem um sistema operacional
> completo; são mais pesadas e lentas; são mais difíceis de escalar."*
> — containers share the operating system's kernel, are lighter and faster, easier to scale;
> VMs carry a complete operating system, are heavier and slower, harder to scale.

## Goal

Every course draws the two diagrams. Here you **measure** them, on this machine, with the same
image: busybox from pycont's store runs once as a container (a process of this kernel, in
namespaces, chapter 01) and once as a **microVM** (qemu emulating a small machine in which a
second Linux kernel boots and unpacks the very same image layers into its RAM). You will:

- see the two kernels: `uname -r` and `/proc/version` in each;
- time both from the request to the first line of output and to the exit;
- watch both live, running the same load, on one dashboard;
- weigh their memory: the container's cgroup charge, the VM's cost to the host, and what the
  guest kernel thinks it has — and see why the VM's is mostly a kernel;
- time a fixed piece of CPU work on the host, in the container and in the VM, and learn why the
  VM is so much slower **here** (no hardware virtualization: qemu translates every instruction);
- count how many of each fit in 1 GiB;
- close with the seed's four claims, each with the number you measured.
"""
ALLOWS = r"""
The container half needs what chapter 01 needed. The VM half needs `qemu-system-x86_64` and a
Debian kernel package (pycont downloads it once with `apt-get download` into
`/var/cache/pycont/vm`). On this machine qemu runs with **TCG**, its software CPU: the
hypervisor here (`/dev/kvm` of a nested, paravirtual kind) cannot boot a stock kernel, so every
VM figure below says `tcg`. Where no VM can boot at all, the chapter shows figures recorded on a
real run, with the machine and date they came from, and says so.
"""
NEEDS = ("namespaces", "root", "cgroups", "vm")
SETUP = r"""
import os
import time

import pycont
import pycont.vm
from pycont import compare
from pycont.course import Chapter
from pycont.widgets import Dashboard

MIB = 1 << 20
VM_OK, VM_WHY = pycont.vm.launch.available()


def mib(n):
    return f"{n / MIB:.1f} MiB"
"""
SECTIONS = [
    ("md", r"""
## 1. Two kernels

A container asks **this** kernel for everything: `uname(2)` answers with the host's release. A VM
has a kernel of its own, booted by qemu from a file: it answers with that one's.
"""),
    ("code", r"""
c = pycont.run("busybox", ["sh", "-c", "uname -r; cat /proc/version"], rm=True,
               name="ch09-uname")
print("container:", c.output)
print("host     :", os.uname().release)
"""),
    ("code", r"""
if VM_OK:
    v = pycont.vm.run("busybox", ["sh", "-c", "uname -r; cat /proc/version"], rm=True,
                      name="ch09-uname")
    print("VM       :", v.logs())
    print("accelerator:", v.accel, "-", v.accel_reason)
else:
    print("skipped: no VM here:", VM_WHY)
"""),
    ("md", r"""
**What happened.** The container printed the host's own kernel, build string and all: there is
only one kernel on this machine, and the container is a process of it (chapter 01). The VM
printed **another** kernel — Debian's 6.1 package, which pycont booted from
`/var/cache/pycont/vm` — because inside qemu a whole second operating system runs: its own
memory manager, scheduler, `/proc`, drivers. Both ran the same `busybox` binary, from the same
image layers in the store: the VM's root is those layers, flattened into an initramfs that the
guest kernel unpacked into its RAM.

The VM's command is not a host process at all: the host sees one process, qemu, shown as
`pycont-vm`. The guest's processes are inside it, under the guest kernel's PIDs.

---
## 2. Start time

How long from the request to the first line of output, and to the end, for `echo hi`? The VM's
record holds the moments of its boot: qemu started, the guest's init ran (`UP`: the kernel has
booted), the command started (`READY`), its first output, its exit.
"""),
    ("code", r"""
t0 = time.monotonic()
c = pycont.run("busybox", ["echo", "hi"], rm=True, name="ch09-start")
container_s = time.monotonic() - t0
print(f"container: {c.output.strip()!r} and exit in {container_s * 1000:.0f} ms")
if VM_OK:
    t0 = time.monotonic()
    v = pycont.vm.run("busybox", ["echo", "hi"], rm=True, name="ch09-start")
    vm_s = time.monotonic() - t0
    print(f"VM       : {v.logs().strip()!r} and exit in {vm_s * 1000:.0f} ms ({v.accel})")
    for mark, at in sorted(v.marks.items(), key=lambda kv: kv[1]):
        print(f"  {mark:<7} {at * 1000:7.0f} ms")
    print(f"the VM took {vm_s / container_s:.0f}x as long")
"""),
    ("md", r"""
**What happened.** The container's start is a few system calls — `clone(2)` with namespace
flags, a cgroup, an overlay mount, `pivot_root(2)`, `execve(2)` — and almost all of its time is
Python's. The VM's is a machine's: qemu creates the virtual hardware, the guest kernel
decompresses nothing (pycont gives it the uncompressed `vmlinux`) but still initializes its
memory, its CPU, its timers, probes its devices and unpacks the initramfs, all before `/init`
(`UP`); then pycont's init mounts `/proc`, loads two virtio modules and starts the agent
(`READY`). Under TCG every guest instruction is translated by qemu, so the kernel's boot costs
seconds here. With KVM (hardware virtualization) the same boot takes a fraction of a second, and a
VMM built for it boots to user space in about 125 ms (Firecracker, see the reading).

---
## 3. Both live, the same load

A container and a VM, each running the same shell loop for a while, on one dashboard. The
VM's line is its qemu process on the host — what it costs this machine; the dotted line of the
same colour is the guest kernel's own view, read through pycont's guest agent once a second.
"""),
]
# fmt: on
