"""09 — containers vs virtual machines: the same image booted as a container and as a microVM,
measured side by side (kernel, start time, memory, CPU, density, size)."""

# ruff: noqa: E501  (markdown tables and links cannot be wrapped)

from skeleton import exercise


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
VM_OK, VM_WHY = pycont.vm.available()


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
kernels = {"host": os.uname().release, "container": c.output.split()[0]}
"""),
    ("code-ignore-output", r"""
if VM_OK:
    v = pycont.vm.run("busybox", ["sh", "-c", "uname -r; cat /proc/version"], rm=True,
                      name="ch09-uname")
    print("VM       :", v.logs())
    print("accelerator:", v.accel, "-", v.accel_reason)
    kernels["vm"] = v.logs().split()[0]
else:
    print("skipped: no VM here:", VM_WHY)
    kernels["vm"] = compare.recorded().start.provenance.guest_kernel + " (recorded)"
"""),
    ("code", r"""
print("the container's kernel is the host's:", kernels["container"] == kernels["host"])
print("the VM's kernel is another one:", kernels["vm"] != kernels["host"])
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
    ("code-ignore-output", r"""
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
    ("code", r"""
print("both said hi:", c.output.strip() == "hi" and (not VM_OK or v.logs().strip() == "hi"))
print("the container was faster:", not VM_OK or container_s < vm_s)
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
    ("code-ignore-output", r"""
LOAD = ["sh", "-c", "while :; do :; done"]  # the same busy loop in both
c = pycont.run("busybox", LOAD, name="ch09-load-c", detach=True, cpus=1, memory="128m")
v = pycont.vm.boot("busybox", LOAD, name="ch09-load-vm", cpus=1, memory="128m") if VM_OK else None
dash = Dashboard([c, v] if v else [c])
picture = dash.run(10)
"""),
    ("code-ignore-output", r"""
def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else float("nan")


def summary(name):
    h = dash.sampler.history(name)[-50:]  # the last 5 seconds (10 samples a second)
    return mean(s.cpu_percent for s in h), mean(s.memory for s in h), h


cpu_c, mem_c, _ = summary(c.name)
print(f"container: CPU {cpu_c:5.0f} %   memory {mib(mem_c)} (its cgroup's charge)")
if v:
    cpu_v, mem_v, hv = summary(v.name)
    print(f"VM       : CPU {cpu_v:5.0f} %   memory {mib(mem_v)} (qemu's RSS on the host)")
    print(f"   guest : CPU {mean(s.guest_cpu_percent for s in hv):5.0f} %   "
          f"memory {mib(mean(s.guest_memory for s in hv))} (the guest kernel's own view)")
"""),
    ("code", r"""
print("both use CPU:", cpu_c > 20 and (not v or cpu_v > 20))
print("the VM holds far more of the host's memory:", not v or mem_v > 20 * mem_c)
"""),
    ("md", r"""
**What happened.** Both CPU lines are high: each is one busy loop that wants a whole CPU (on a
machine with two cores and other work, they share what there is). On the host the two look
alike — a process, using a CPU. The memory lines do not: the container's
charge is a few hundred KiB, the pages of one `sh` process and its page tables; the VM's is
hundreds of MiB from the first second, before its loop has allocated a single byte.

The guest's dotted lines are the other half of the story. The guest kernel, asked through
pycont's agent, says its one CPU is nearly always busy — even while the host gives qemu only part
of a CPU: it counts its own time, and cannot see the moments its virtual CPU was not running at
all (with KVM, a paravirtual clock reports those as *steal* time). It also says it *uses* a few
tens of MiB of the 128 MiB it was given. It sees only its own machine: it has no idea that
qemu, around it, costs the host much more.

---
## 4. Where a VM's memory goes

Three views of the same moment: the container's cgroup, the qemu process seen by the host
(`/proc/PID/smaps_rollup`: RSS counts every page it maps, PSS divides shared pages among their
users), and the guest kernel's own `/proc/meminfo`.
"""),
    ("code-ignore-output", r"""
charge = c.stats().memory_current
print(f"container  cgroup charge          {mib(charge):>11}")
if v:
    host = v.host_memory()
    guest = v.guest_stats()
    print(f"VM (host)  qemu RSS               {mib(host.rss):>11}")
    print(f"           qemu PSS               {mib(host.pss):>11}")
    print(f"VM (guest) RAM given (-m)         {mib(v.memory):>11}")
    print(f"           MemTotal               {mib(guest.mem_total):>11}"
          f"   ({mib(v.memory - guest.mem_total)} kept by the guest kernel before counting)")
    print(f"           used (Total-Available) {mib(guest.mem_used):>11}")
    print(f"the VM costs the host {host.pss / charge:.0f}x the container's charge")
"""),
    ("code", r"""
if v:
    print("qemu's share of the host is more than the guest says it uses:", host.pss > guest.mem_used)
    print("the guest kernel keeps some RAM for itself:", guest.mem_total < v.memory)
"""),
    ("md", r"""
**What happened.** The container's charge is the memory its processes touched: everything else
they use — the kernel, its page cache of the image's files shared with every other container of
the image — is the host's, already there. The VM's cost is a second machine's:

- **the guest's RAM**: qemu backs the guest's 128 MiB with its own anonymous memory; every page
  the guest has touched (its kernel's code and data, the unpacked initramfs, its page cache) is
  resident on the host. The guest kernel keeps part of it before it even counts (`-m` minus
  `MemTotal`: its own code, `memmap` — one `struct page` per 4 KiB — and reservations);
- **qemu itself**: its code and libraries, the device models, and under TCG its translation
  cache (the host code it generated from the guest's instructions);
- what the guest **frees** is not given back: a page freed inside the guest is free *for the
  guest*, still resident on the host (a balloon device or free-page reporting can return it;
  this microVM has neither).

A container is lighter because there is nothing in it but the process: the seed's *"compartilham
o kernel"* is also where the memory goes.

---
## 5. What each one starts from
"""),
    ("code-ignore-output", r"""
sizes = compare.sizes_of("busybox", v) if v else compare.recorded().sizes
sizes
"""),
    ("code", r"""
print("the VM boots from more than the image:", sizes.kernel_bytes + sizes.initrd_bytes > sizes.image_bytes)
"""),
    ("md", r"""
The container starts from the image's layers, mounted with overlay (chapter 04): nothing is
copied. The VM starts from the same layers flattened into an archive the guest kernel unpacks
into its RAM, plus a kernel of its own and a few files pycont adds (a static busybox, two virtio
modules, its init and agent). A VM for a real service would have a disk image instead of an
initramfs, with a whole distribution inside: this is the *"sistema operacional completo"* of
the seed.

The two are done; remove them.
"""),
    ("code", r"""
c.remove(force=True)
if v:
    v.remove(force=True)
print("removed:", [x.name for x in pycont.containers(all=True) if x.name.startswith("ch09-load")]
      + [x.name for x in pycont.vm.vms() if x.name.startswith("ch09-load")] == [])
"""),
    ("md", r"""
---
## 6. The same CPU work, three ways

`compare.measure_cpu` times two pieces of busybox work from inside, with the guest's or host's
own clock: a shell loop (pure computation) and 64-byte writes to `/dev/shm` (a system call each).
First on the host, then in a container, then in a VM. It takes about half a minute here.
"""),
    ("code-ignore-output", r"""
cpu = compare.measure_cpu("busybox", rounds=5, prefix="ch09") if VM_OK else compare.recorded().cpu
cpu
"""),
    ("code", r"""
loop = {t.name: t for t in cpu.tasks}["loop"]
print("the container runs the loop at the host's speed (within 30 %):",
      loop.container < 1.3 * loop.host)
print("the VM is slower:", loop.vm > loop.container)
"""),
    ("md", r"""
**What happened.** The container runs at the host's speed: its code *is* host code, run by the
host's CPU, scheduled by the host's kernel. Its namespaces and cgroup cost nothing per
instruction, and a system call goes straight to the one kernel (seccomp, chapter 10, adds a few
nanoseconds of filter per call).

The VM is **an order of magnitude** slower here, and this is where the accelerator matters (the
label under the table says which one ran). This machine gives qemu no usable hardware
virtualization, so qemu runs its **TCG** (Tiny Code Generator): it reads each block of guest
instructions, translates it into host instructions and runs that — an emulator, and every
guest system call is emulated too. With **KVM**, the guest's instructions run directly on the
CPU in a hardware mode made for it (Intel VT-x, AMD-V); the loop would run within a few per cent
of the host's speed, and the cost of a VM would be in its *exits* — I/O, interrupts, page faults
of the second level of page tables — not in plain computation. So *"VMs são mais lentas"* holds
in every case for start time and I/O, but for pure computation only in a few per cent with KVM;
the 10x you see is emulation.

---
## 7. How many fit in 1 GiB?

*"Mais fáceis de escalar"*: start idle units (`sleep`) one after the other, summing what each
costs the host (a container: its cgroup's charge; a VM: qemu's PSS), until 1 GiB is spent — or a
bound is reached (50 containers, 5 VMs, 40 seconds each): this is a course, not a stress test.
"""),
    ("code-ignore-output", r"""
if VM_OK:
    density = compare.measure_density("busybox", budget="1g", max_containers=50, max_vms=5,
                                      time_limit=40, prefix="ch09")
else:
    density = compare.recorded().density
density
"""),
    ("code", r"""
print("a container costs less than a VM:", density.container.per_unit < density.vm.per_unit)
print("more containers than VMs fit:", density.container.estimate > density.vm.estimate)
"""),
    ("md", r"""
**What happened.** The containers stopped at the count bound, far below the budget: the estimate
(budget / cost of one) says how many thousand *would* fit by memory alone. The VMs used most of
the budget with a handful, each paying for its kernel and its RAM; they also took seconds each
to boot.

Two honest caveats. First, memory is not the only limit: thousands of containers need PIDs,
file descriptors, CPU; and a VMM built for density does better than this qemu under TCG —
Firecracker's specification promises at most **5 MiB** of overhead per microVM (1 vCPU,
128 MiB), and **5 microVMs per host core per second**, on KVM. Second, the gap does not close:
each VM still holds a kernel and the RAM it has touched, where a container holds only its
processes. That is why AWS Lambda and Fargate run containers *inside* microVMs — the VM for the
isolation between customers, the container for the packaging.

---
## 8. The seed's claims, measured

Every number below was measured in this notebook (or, where no VM could boot, recorded on a real
run and labelled so).
"""),
    ("code-ignore-output", r"""
from IPython.display import Markdown

rows = [("Containers share the host's kernel; a VM has its own",
         f"container `{kernels['container']}` = host `{kernels['host']}`; VM `{kernels['vm']}`")]
if VM_OK:
    rows += [("Containers start faster", f"`echo hi`: {container_s * 1000:.0f} ms vs {vm_s:.1f} s "
                                         f"({vm_s / container_s:.0f}x)"),
             ("Containers are lighter", f"{mib(charge)} vs {mib(host.pss)} "
                                        f"({host.pss / charge:.0f}x)")]
rows += [("Containers are faster (CPU)", f"loop {loop.container:.2f} s vs {loop.vm:.2f} s "
                                         f"({loop.vm / loop.container:.0f}x, {cpu.provenance.accel})"),
         ("Containers are easier to scale", f"in 1 GiB: {density.container.estimate} containers "
                                            f"vs {density.vm.estimate} VMs (estimates)")]
Markdown("| claim | measured here (container vs VM) |\n|---|---|\n"
         + "\n".join(f"| {a} | {b} |" for a, b in rows)
         + f"\n\n<small>{cpu.provenance.line()}</small>")
"""),
    ("md", r"""
The table is the seed's paragraph with units. Two rows depend on the machine more than on the
idea: *faster (CPU)* shrinks to a few per cent with KVM, and *easier to scale* narrows with a VMM
built for it (Firecracker: ≤5 MiB per microVM). The other two do not: a container has no kernel
to boot and no RAM of its own to hold, so it starts in milliseconds and weighs what its
processes weigh, on any machine.
"""),
]
EXERCISES = [
    exercise(
        r"""
### Exercise 1 — the guest's kernel

Run a VM of busybox named `ch09-ex1`, with `rm=True`, whose command prints the guest kernel's
release (`uname -r`), and put that release, a str without spaces or newlines, in `answer1`.
""",
        r"""
answer1 = None  # a str: the VM's kernel release
""",
        r"""
def _ex1():
    return isinstance(answer1, str) and answer1 == kernels["vm"] != os.uname().release


course.check("exercise 1", _ex1 if VM_OK else True,
             "pycont.vm.run('busybox', ['uname', '-r'], rm=True, name=...) returns the VM; "
             "its .logs() hold the output: strip it")
""",
        r"""
answer1 = pycont.vm.run("busybox", ["uname", "-r"], rm=True, name="ch09-ex1").logs().strip()
""",
    ),
    exercise(
        r"""
### Exercise 2 — RAM is hardware

Boot a busybox VM named **`ch09-ex2`** with **256 MiB** of RAM, running `sleep 1000`, and leave it
running. Then put in `answer2` the number of bytes the **guest kernel** reports as its
`MemTotal`, read through pycont's agent. Is it 256 MiB? Why not?
""",
        r"""
# exercise 2: your code here
answer2 = None  # an int: bytes
""",
        r"""
def _ex2():
    v2 = pycont.vm.get("ch09-ex2")
    total = v2.guest_stats().mem_total
    return (v2.status == "running" and v2.memory == 256 * MIB and answer2 == total
            and 128 * MIB < total < 256 * MIB)


course.check("exercise 2", _ex2 if VM_OK else True,
             "pycont.vm.boot('busybox', ['sleep', '1000'], name='ch09-ex2', memory='256m'), then "
             "the VM's .guest_stats() has a mem_total")
""",
        r"""
v2 = pycont.vm.boot("busybox", ["sleep", "1000"], name="ch09-ex2", memory="256m")
answer2 = v2.guest_stats().mem_total
""",
        note=r"""
`MemTotal` is smaller than `-m`: the guest kernel keeps its own code and data, and the
`struct page` array describing every page of RAM, before it counts. The host, meanwhile, pays
for every page the guest touched.
""",
    ),
    exercise(
        r"""
### Exercise 3 — how many times heavier?

From the density measurement `density` (section 7), put in `answer3` how many times more memory
one idle VM costs the host than one idle container (a float: the VM's cost per unit divided by
the container's).
""",
        r"""
answer3 = None  # a float
""",
        r"""
course.check("exercise 3",
             lambda: abs(answer3 - density.vm.per_unit / density.container.per_unit)
             <= 0.02 * density.vm.per_unit / density.container.per_unit,
             "density.vm and density.container each have a per_unit in bytes; or density.ratios")
""",
        r"""
answer3 = density.ratios["per unit vm/container"]
""",
    ),
]
QUESTIONNAIRE = r"""
1. A container and a VM run the same busybox binary from the same image. Which kernel runs the
   container's `uname(2)`, and which the VM's?
2. On the host, how do the VM's processes appear in `ps`? And the container's?
3. Why does a VM take seconds to start here, and how long would it take with KVM and a VMM built
   for it?
4. Where do the hundreds of MiB a VM costs the host go, when its guest says it uses only tens?
5. Why is a shell loop an order of magnitude slower in the VM here, and what changes with KVM?
6. *"Containers are more secure than VMs"* or the other way round? What does each one isolate
   with?
7. Why do AWS Lambda and Fargate run containers inside microVMs?

<details><summary>Answers</summary>

1. The container's: the host's own kernel (one kernel on the machine; the container is a process
   in namespaces). The VM's: the guest kernel qemu booted, Debian's 6.1 here.
2. The VM: one process, qemu (`pycont-vm`), with a thread per vCPU; the guest's processes exist
   only inside the guest kernel. The container: its processes are host processes, with host PIDs,
   visible in `ps` (chapter 01).
3. A whole machine starts: qemu builds the virtual hardware, the guest kernel initializes its
   memory, CPUs and devices and unpacks the initramfs, then init runs. Under TCG every guest
   instruction is translated, so that costs seconds. With KVM a stock kernel boots in well under a
   second, and Firecracker reaches the guest's user space in about 125 ms.
4. To the guest's RAM that it has touched (its kernel, the unpacked image, caches), which qemu
   backs with host memory and does not get back when the guest frees it; to qemu itself and, under
   TCG, its translation cache.
5. TCG translates the guest's instructions into host instructions (an emulator). With KVM the
   guest's instructions run directly on the CPU in its virtualization mode: plain computation runs
   at nearly the host's speed; the cost moves to exits (I/O, interrupts).
6. A container is isolated by the host kernel's namespaces, cgroups, capabilities and seccomp: it
   shares that kernel, so a kernel bug can reach the host (chapter 10). A VM is isolated by the
   hardware's virtualization and a much smaller interface (the virtual devices): a guest kernel
   bug stays in the guest. A VM is the stronger boundary; a container the lighter one.
7. For both: the microVM isolates one customer from another with the hardware boundary, and
   costs little enough (≤5 MiB, ~125 ms with Firecracker) to have one per function or task; the
   container inside packages the code, as everywhere else.
</details>
"""
READING = r"""
- Firecracker, [SPECIFICATION.md](https://github.com/firecracker-microvm/firecracker/blob/main/SPECIFICATION.md)
  — VMM start within 8 CPU ms, memory overhead ≤5 MiB for 1 vCPU and 128 MiB; its
  [design](https://github.com/firecracker-microvm/firecracker/blob/main/docs/design.md) — 5
  microVMs per host core per second; [firecracker-microvm.github.io](https://firecracker-microvm.github.io/)
  — "125 ms to user space".
- Agache et al., [*Firecracker: Lightweight Virtualization for Serverless Applications*](https://www.usenix.org/conference/nsdi20/presentation/agache),
  NSDI 2020 — why Lambda runs containers in microVMs.
- QEMU: [the microvm machine](https://www.qemu.org/docs/master/system/i386/microvm.html),
  [TCG](https://www.qemu.org/docs/master/devel/index-tcg.html) (how guest code is translated),
  [KVM](https://www.linux-kvm.org/page/Main_Page).
- Linux: [`ramfs-rootfs-initramfs`](https://docs.kernel.org/filesystems/ramfs-rootfs-initramfs.html)
  — the initramfs a VM's root is unpacked from; [`proc(5)`](https://man7.org/linux/man-pages/man5/proc.5.html)
  — `/proc/meminfo`, `/proc/PID/smaps_rollup`.
- Popek and Goldberg, [*Formal Requirements for Virtualizable Third Generation Architectures*](https://dl.acm.org/doi/10.1145/361011.361073),
  1974 — what hardware virtualization needs.
"""
# fmt: on

