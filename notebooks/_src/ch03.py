"""03 — cgroups: limits you can watch."""

# ruff: noqa: E501  (markdown tables and links cannot be wrapped)

from skeleton import exercise

FILE = "03-cgroups.ipynb"

# fmt: off
GOAL = r"""
# 03 · cgroups: how much a process can use

> *"Cgroup: Isola recursos de hardware dos containers — CPU (`cat /proc/cpuinfo`), Memória
> (`cat /proc/meminfo`), Disco, Rede."*
> — a cgroup isolates the hardware resources of containers: CPU, memory, disk, network.

## Goal

*Limits you can watch.* Namespaces (chapter 02) decide what a container **sees**. Control groups
— cgroups, started at Google in 2006 and merged in Linux 2.6.24 — decide how much it may **use**,
and count what it used. In this chapter you set each kind of limit on a real container, and watch
the kernel enforce it:

- a busy loop **capped at half a CPU**, plotted live, then raised to a full CPU while it runs;
- two containers **sharing one CPU by weight**, 2 : 1;
- a container that goes **over its memory limit** and is killed by the OOM killer;
- a **fork bomb** held at 64 processes, while the host carries on;
- **disk reads throttled** to 2 MiB/s;
- why `cat /proc/cpuinfo` and `cat /proc/meminfo` inside a container still show the **host's**
  CPUs and memory;
- the cgroup **v1 and v2 file names** side by side, and `docker pause` done with the freezer;
- and why the **network** is not on the list.

Every number comes from the kernel's own files under `/sys/fs/cgroup`: you will read them too.
"""
ALLOWS = r"""
cgroup limits need root (or a cgroup delegated to you). The next cell removes what an
interrupted run of this chapter left behind, defines a few helpers that read the container's
cgroup files, and asks pycont whether it can create cgroups here.
"""
NEEDS = ("namespaces", "cgroups")
SETUP = r"""
import math
import os
import re
import subprocess
import time

import matplotlib.figure  # loaded now, so that the first plot starts at once

import pycont
from pycont import cgroups
from pycont.cgroups.units import shares_to_weight
from pycont.course import Chapter
from pycont.widgets import Dashboard

MIB = 1 << 20
BUSY = ["sh", "-c", "while :; do :; done"]  # a shell loop that burns all the CPU it gets


def kernel_files(c, key):
    # The cgroup files behind `key` (a key of Cgroup.files(): "memory", "nano_cpus",
    # "cpu_usage_ns"...) for container c, as {name: path}. pycont's driver knows which files
    # this machine's cgroup version has; v1 has a folder per controller, v2 one for all.
    cg = c.cgroup()
    names = re.findall(r"\b[a-z]+\.[a-z_.]+\b", cg.files()[key])
    found = {}
    for name in names:
        for folder in dict.fromkeys(cg.paths().values()):
            if os.path.exists(os.path.join(folder, name)):
                found.setdefault(name, os.path.join(folder, name))
    return found


def show(c, key):
    # Print the cgroup file(s) behind `key` with what they hold now; return the first's text.
    texts = []
    for name, path in kernel_files(c, key).items():
        with open(path) as f:
            texts.append(f.read().strip())
        print(f"{name:<18} = {texts[-1].replace(chr(10), chr(10) + ' ' * 21)}")
    return texts[0] if texts else None


def read(c, name):
    # A cgroup file whose name is the same in v1 and v2 (pids.current, pids.events...).
    for folder in dict.fromkeys(c.cgroup().paths().values()):
        if os.path.exists(os.path.join(folder, name)):
            with open(os.path.join(folder, name)) as f:
                return f.read().strip()
    raise FileNotFoundError(f"{name}: not in the cgroup of {c.name}")


def reading(c):
    # One reading of the container's cgroup meters and limits (pycont.cgroups' reader).
    with c.cgroup().reader() as r:
        return r.read()


def cpu_seconds(c):
    # CPU time used so far by all the container's processes: the kernel's counter.
    return reading(c).cpu_usage_ns / 1e9


def cpu_percent(containers, seconds):
    # CPU % of each container over the next `seconds` (100 = one full CPU, as docker stats).
    before, t0 = [cpu_seconds(c) for c in containers], time.monotonic()
    time.sleep(seconds)
    after, dt = [cpu_seconds(c) for c in containers], time.monotonic() - t0
    return [100 * (a - b) / dt for a, b in zip(after, before)]


def cpus_allowed(c):
    # The CFS bandwidth limit as a number of CPUs (quota / period), read back from the
    # kernel; None: no limit.
    return reading(c).cpu_limit
"""
SECTIONS = [
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
# (this describes the machine it runs on)
probe = pycont.probe()
print("cgroup mode:", probe.cgroup_mode)
print("cgroup     :", probe.cgroup.reason)
print("pycont uses:", cgroups.detect(), "—", cgroups.available().reason)
"""),
    ("md", r"""
A cgroup is a **folder** in a special filesystem (`cgroups(7)`): its files are the knobs
(`memory.max`: the limit) and the meters (`memory.current`: the usage), and writing a PID into its
`cgroup.procs` puts that process — and all its future children — under them.

There are two versions of that filesystem:

- **v1** (2008): one tree per *controller* (`memory`, `cpu`, `pids`, `blkio`, `freezer`…), each
  mounted at `/sys/fs/cgroup/<controller>`; a container has a folder in each tree.
- **v2** (Linux 4.5, the default of current distributions, and of Binder): one *unified* tree at
  `/sys/fs/cgroup`; a container has exactly one folder, with every controller's files in it.
- **hybrid**: v1 trees for the controllers, plus a v2 mount at `/sys/fs/cgroup/unified` that holds
  none of them (systemd's transition layout).

pycont, like docker's `cgroupfs` driver, gives each container `pycont/<container id>` in each
tree. The cells below work on both versions; where the file names differ they show this machine's,
and section 7 puts the two side by side.

---
## 1. CPU: a busy loop capped at half a CPU

`--cpus 0.5` (docker's flag; `cpus=0.5` here) lets the container use at most half of one CPU's
time, however many processes it runs.
"""),
    ("code", r"""
hog = pycont.run("busybox", BUSY, cpus=0.5, detach=True, name="ch03-hog")
print(hog.name, "is", hog.status, "with limits", hog.limits().describe())
print("its cgroup folders:")
for controller, folder in hog.cgroup().paths().items():
    print(f"  {controller:<8} {folder}")
"""),
    ("md", r"""
Watch it for 8 seconds. `Dashboard` samples the container's cgroup files ten times a second and
plots CPU % and memory against the limits (dashed). While it runs you can move the sliders: they
call `hog.update(...)`, which is `docker update`. At the end the live plot is replaced by a still
picture.
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
picture = Dashboard([hog]).run(8)
"""),
    ("md", r"""
The blue line (a moving mean over half a second) runs along the dashed limit, 50 %: the loop
would use 100 % of a CPU, but the kernel stops it half of the time (the shaded area marks the
periods in which it was throttled). A busy machine can push the line below the limit: other work
took the CPU there, the loop never used up its quota, and nothing is shaded. It can also
poke a little **above** it, and so can `docker stats` and `pycont.stats` (its twin, below: it
may say 53 %): the kernel enforces the quota per 100 ms *period* (see *The knob* below), while a
reading divides the CPU time used between two instants by the time between them. A window that
does not start and end on period boundaries can hold the bursts of one period more than its
length pays for — 50 ms of running at the start of each period, 5 of them in a window of 0.45 s
is 56 %. Over many periods the average converges on the cap; the kernel never grants more than
the quota *within* a period.
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
pycont.stats(hog)
"""),
    ("md", r"""
### Cross-check with the kernel's own counter

Both read the same counter: the total CPU time the cgroup's processes have used, in
`cpuacct.usage` (v1, nanoseconds) or the `usage_usec` line of `cpu.stat` (v2). Read it at the
start and at the end of four 1-second windows. Other work on this machine can only take CPU time
away from the loop, and a window of ten periods is long enough for the misalignment above to
matter little (at most one burst: 55 %), so the highest reading is the one to compare with the
cap:
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
counter = hog.cgroup().files()["cpu_usage_ns"]  # cpuacct.usage (v1), cpu.stat usage_usec (v2)
readings = [cpu_percent([hog], 1)[0] for _ in range(4)]
pct = max(readings)
print(f"{counter}, % of one CPU in each second:", ", ".join(f"{r:.1f}" for r in readings))
"""),
    ("code", r"""
print("≈50%:", 40 <= pct <= 60)
print("the kernel throttled it (cpu.stat nr_throttled > 0):", reading(hog).cpu_nr_throttled > 0)
"""),
    ("md", r"""
### The knob: a quota per period

`--cpus` is enforced by the scheduler's **CFS bandwidth control** (kernel docs: *sched-bwc*): in
every *period* (100 ms, docker's choice) the cgroup may run for at most *quota* microseconds of
CPU time, summed over all its processes and CPUs; when the quota is spent, its processes wait for
the next period. `--cpus 0.5` is a quota of 50 000 µs per 100 000 µs.
"""),
    ("code", r"""
show(hog, "nano_cpus")  # v1: cpu.cfs_quota_us and cpu.cfs_period_us; v2: cpu.max
print("quota / period =", cpus_allowed(hog), "CPU")
"""),
    ("md", r"""
### Raise the limit while it runs

`hog.update(cpus=1)` rewrites the quota: the next period already uses it, no restart. (In a
terminal: `docker update --cpus 1 ch03-hog`; here also `%pycont update --cpus 1 ch03-hog`.) The
next cell plots 3 seconds at half a CPU, updates, and plots 4 more seconds:
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
dash = Dashboard([hog]).show()
time.sleep(3)
hog.update(cpus=1)
time.sleep(4)
picture = dash.stop()
"""),
    ("code-ignore-output", r"""
%pycont stats ch03-hog
"""),
    ("code", r"""
pct_after = max(cpu_percent([hog], 1)[0] for _ in range(3))  # the best of three seconds
print("quota / period =", cpus_allowed(hog), "CPU")
print("now above the old 50% cap:", pct_after > 60)
hog.remove(force=True)
"""),
    ("md", r"""
**What happened.** The container's processes are ordinary host processes (chapter 01), and the
scheduler accounts their CPU time to their cgroup. With a quota set, the cgroup gets a budget of
runtime per period; a busy loop spends it in the first half of each 100 ms and is then *throttled*
(`nr_throttled` in `cpu.stat`) until the period ends. The limit is a ceiling: on an idle machine
the loop gets exactly it; on a busy one it may get less. Raising the quota takes effect at once.

---
## 2. Two containers sharing one CPU by weight

`--cpu-shares` (v1 `cpu.shares`, v2 `cpu.weight`) is not a cap: it is a **relative weight** that
matters only when processes compete for a CPU. Two busy loops on a 2-CPU machine would each get a
CPU of their own, so both containers are pinned to CPU 0 with `cpuset_cpus="0"` (the `cpuset`
controller): now they must share it. One gets 1024 shares (docker's default), the other 512.
"""),
    ("code", r"""
big = pycont.run("busybox", BUSY, cpuset_cpus="0", cpu_shares=1024, detach=True, name="ch03-big")
small = pycont.run("busybox", BUSY, cpuset_cpus="0", cpu_shares=512, detach=True,
                   name="ch03-small")
for c in (big, small):
    print(c.name)
    show(c, "cpuset_cpus")
    show(c, "cpu_shares")  # v1: cpu.shares; v2: cpu.weight
print()
print("cgroup v2 has cpu.weight (1..10000, default 100) instead of cpu.shares (2..262144).")
print("pycont (and runc until 2025): weight = 1 + (shares - 2) * 9999 // 262142, a straight line;")
print("runc and crun since 2025: a curve through (2, 1), (1024, 100) and (262144, 10000).")


def weight_2025(shares):
    # opencontainers/cgroups ConvertCPUSharesToCgroupV2Value since 2025: 10 ** (a parabola
    # in log2(shares)), through the minimum, the default and the maximum of both ranges.
    if shares <= 2 or shares >= 262144:
        return 1 if shares <= 2 else 10000
    x = math.log2(shares)
    return math.ceil(10 ** ((x * x + 125 * x) / 612 - 7 / 34))


for shares in (2, 512, 1024, 2048, 262144):
    print(f"  shares {shares:>6} -> weight {shares_to_weight(shares):>5} (line) "
          f"{weight_2025(shares):>5} (curve)")
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
before = [cpu_seconds(c) for c in (big, small)]
t0 = time.monotonic()
picture = Dashboard([big, small], controls=False).run(5)
dt = time.monotonic() - t0
share_big, share_small = [100 * (cpu_seconds(c) - b) / dt for c, b in zip((big, small), before)]
ratio = share_big / share_small
print(f"ch03-big {share_big:.0f}%   ch03-small {share_small:.0f}%   ratio {ratio:.1f}")
"""),
    ("code", r"""
print("close to 2:", 1.4 <= ratio <= 2.8)
print("together they used about one CPU, not two:", share_big + share_small < 115)
big.remove(force=True)
small.remove(force=True)
"""),
    ("md", r"""
**What happened.** Both loops were runnable on CPU 0 all the time; the scheduler (CFS/EEVDF)
divides a CPU between competing groups in proportion to their weights, so 1024 : 512 gave about
two thirds and one third. (Their sum is under 100 %: other processes of this machine — this
notebook drawing the plot, for one — run on CPU 0 too.) Had `ch03-small` been alone, it would have had the whole
CPU: shares only decide who yields under contention. Mind the conversion on v2: with the straight
line pycont uses, `--cpu-shares 1024` (meant as "the default") becomes weight 39 — less than half
the weight 100 of every other cgroup on the machine. That surprised Kubernetes users moving to v2,
and in 2025 runc and crun switched to the curve, which keeps 1024 → 100.

---
## 3. Memory: over the limit, the OOM killer

A shell that doubles a string forever, in a container limited to 32 MiB (`-m 32m`):
"""),
    ("code", r"""
oom = pycont.run("busybox", ["sh", "-c", "x=a; while :; do x=$x$x; done"], memory="32m",
                 name="ch03-oom")
print("exit code:", oom.exit_code)
print("state().oom_killed:", oom.state().oom_killed)
print('inspect()["State"]["OOMKilled"]:', oom.inspect()["State"]["OOMKilled"])
oom.remove()
"""),
    ("md", r"""
Exit code 137 is 128 + 9: the process was killed by `SIGKILL`. When the memory a cgroup is
charged for reaches its limit, the kernel first tries to reclaim (drop page cache, swap out);
when nothing more can be freed, the cgroup's **OOM killer** picks its largest process and kills
it. It counts the kills in the cgroup: `memory.oom_control` (v1) or `memory.events` (v2). That
folder disappears with the container, so to read the counter we need a container that survives:
here the main shell runs the doubling loop as a child, and carries on when the child is killed.
"""),
    ("code", r"""
script = "sh -c 'x=a; while :; do x=$x$x; done'; echo child exited with $?; sleep 1000"
child = pycont.run("busybox", ["sh", "-c", script], memory="32m", detach=True,
                   name="ch03-oomchild")
deadline = time.monotonic() + 10
while "child exited" not in "".join(child.logs()) and time.monotonic() < deadline:
    time.sleep(0.1)
print("log:", " | ".join(line.strip() for line in child.logs()))
print("the container still runs:", child.status == "running")
show(child, "oom_kills")  # v1: memory.oom_control; v2: memory.events
peak = child.cgroup().files()["memory_peak"].split()[0]  # the kernel's high-water mark
print(f"{peak} reached the limit:", reading(child).memory_peak >= 0.95 * 32 * MIB)
"""),
    ("md", r"""
### Watch it happen

A container that grows by about a mebibyte every quarter of a second, plotted until it hits its
32 MiB limit (the red line marks the OOM kill). The line has saw teeth: `y=$y$x` builds a new,
longer copy of the string before the shell frees the old one — so the kill comes when the string
itself is only about half the limit.

The sampler reads the usage ten times a second, and the allocation that crosses the limit
happens between two readings: the last sample may be well under 32 MiB. So the plot also draws
the kernel's own **high-water mark** (`memory.max_usage_in_bytes` on v1, `memory.peak` on v2),
which the kernel raises on every charge: at the kill it reaches the limit line, whatever the
sampler saw.
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
grow_script = ("x=$(head -c 1048576 /dev/zero | tr '\\0' a); y=; "
               "while :; do y=$y$x; sleep 0.25; done")
grow = pycont.run("busybox", ["sh", "-c", grow_script], memory="32m", detach=True,
                  name="ch03-grow")
picture = Dashboard([grow]).run(8)
"""),
    ("code", r"""
print("exit code:", grow.wait(10), "| OOMKilled:", grow.inspect()["State"]["OOMKilled"])
grow.remove()
"""),
    ("md", r"""
### `--memory-swap`

docker's `--memory-swap` is memory **plus** swap, not swap alone:

| `-m 32m` and `--memory-swap` | swap the container may use |
|---|---|
| not given | as much as memory: 32 MiB (so 64 MiB in all) |
| `32m` (equal to `-m`) | none |
| `-1` | unlimited |
| `100m` | 100 − 32 = 68 MiB |

v1 stores the total (`memory.memsw.limit_in_bytes`), v2 the swap alone (`memory.swap.max`);
pycont converts. Both exist only where the kernel accounts swap, and the limit matters only if the
machine has swap space at all (`cat /proc/swaps`).
"""),
    ("code", r"""
for name, swap in (("ch03-swap-default", None), ("ch03-swap-none", "32m"),
                   ("ch03-swap-unlimited", "-1")):
    c = pycont.run("busybox", ["sleep", "1000"], memory="32m", memory_swap=swap, detach=True,
                   name=name)
    files = kernel_files(c, "memory_swap")  # v1: memory.memsw.limit_in_bytes; v2: memory.swap.max
    if not files:
        print("this kernel does not account swap:", c.cgroup().files()["memory_swap"], "is missing")
    for file, path in files.items():
        with open(path) as f:
            value = f.read().strip()
        shown = "max" if value == "max" or int(value) >= 1 << 62 else f"{int(value) // MIB} MiB"
        print(f"--memory-swap {swap or 'unset':<6} -> {file} = {shown}")
    c.remove(force=True)
"""),
    ("md", r"""
On v1 the file holds memory **plus** swap, like docker's flag (64 MiB = 32 of memory + 32 of
swap; the largest number it can hold means unlimited, shown here as `max`); on v2 it holds the
swap alone (32 MiB, 0, `max`).

**What happened.** The memory controller charges every page a cgroup's processes touch —
anonymous memory, page cache, kernel memory for them — to the cgroup (kernel docs:
*cgroup-v1/memory*, *cgroup-v2* "Memory"). The limit is hard: past it, reclaim, then the OOM
killer, inside the cgroup only; the rest of the machine is not touched. pycont, like docker,
records the kill (`OOMKilled`) by reading the counter before it removes the cgroup.

---
## 4. A fork bomb held by `pids`

`b(){ b|b& }; b` is the classic fork bomb `:(){ :|:& };:` with a readable name: a function that
starts two copies of itself in the background, forever. Without a limit it fills the host's
process table and nothing can start any more, not even the `ps` to find it. With
`--pids-limit 64`, the `pids` controller refuses every `fork(2)` past 64 tasks in the cgroup:
"""),
    ("code", r"""
# `exec sleep`: the main shell must not need a fork of its own once the bomb has taken them all.
bomb = pycont.run("busybox", ["sh", "-c", "b(){ b|b& }; b; exec sleep 1000"],
                  pids_limit=64, detach=True, name="ch03-bomb")


def refused(c):
    # pids.events "max N": how many forks the limit has refused so far.
    return int(dict(line.split() for line in read(c, "pids.events").splitlines())["max"])


deadline = time.monotonic() + 5
while refused(bomb) == 0 and time.monotonic() < deadline:
    time.sleep(0.05)  # until the bomb reaches the limit
counts = []
for _ in range(5):
    counts.append(int(read(bomb, "pids.current")))
    time.sleep(0.2)
print("pids.max =", read(bomb, "pids.max"))
print("forks refused (pids.events max) > 0:", refused(bomb) > 0)
print("pids.current stayed at the limit (60 to 64):", 60 <= min(counts) <= max(counts) <= 64)
print("the container still runs:", bomb.status == "running")
print("the host still forks:", subprocess.run(["true"]).returncode == 0)
"""),
    ("code", r"""
t0 = time.monotonic()
bomb.remove(force=True)
elapsed = time.monotonic() - t0
print(f"removed in {elapsed * 1000:.0f} ms")
print("cleared in under 5 s:", elapsed < 5)
"""),
    ("md", r"""
**What happened.** `pids.max` counts tasks — processes *and* threads — in the cgroup and its
children (kernel docs: *pids*); a `fork(2)` or `clone(2)` beyond it fails with `EAGAIN` ("can't
fork: Resource temporarily unavailable"), and `pids.events` counts the refusals. The bomb stalls
at the limit — a copy whose fork fails gives up and exits, which frees a slot for another copy, so
the count hovers at or just under 64 — while the host forks freely. Removing it cannot be done PID by PID — new processes would
appear as fast as old ones die — so pycont **freezes** the cgroup (no process can run, hence none
can fork), sends `SIGKILL` to every PID, and thaws it; on v2 a single write to `cgroup.kill` does
all of that. Docker sets no pids limit by default; `%%container` cells here get 1024.

---
## 5. Disk: reads throttled to 2 MiB/s

`--device-read-bps /dev/vda:2mb` limits how fast the container may read from one **block device**
(v1 `blkio.throttle.read_bps_device`, v2 `io.max rbps=`). A limit names a device, so first find
the one behind the container's files: its read/write layer is a folder on the host, and
`stat(2)` gives the device number of the filesystem holding it; `/sys/dev/block/MAJ:MIN` names
it. (Throttling works on whole disks, so a partition is replaced by its disk.)
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
# (the device depends on the machine)
def block_device(path):
    # The whole-disk block device holding `path`, e.g. /dev/vda; None if there is none
    # (tmpfs, or an overlay filesystem: their device numbers are not block devices).
    st = os.stat(path)
    sysdir = f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    if not os.path.exists(sysdir):
        return None
    if os.path.exists(f"{sysdir}/partition"):
        sysdir = os.path.dirname(os.path.realpath(sysdir))  # .../vda/vda1 -> .../vda
    with open(f"{sysdir}/uevent") as f:
        uevent = dict(line.split("=", 1) for line in f.read().splitlines())
    return "/dev/" + uevent["DEVNAME"]


disk = pycont.run("busybox", ["sleep", "1000"], detach=True, name="ch03-disk")
upper = disk.inspect()["GraphDriver"]["Data"]["UpperDir"]
device = block_device(upper)
print("the read/write layer is", upper)
print("on the block device", device)
"""),
    ("md", r"""
The experiment: write an 8 MiB file inside the container, evict that file from the page cache
(so the next read must come from the disk, not from memory), and time `dd` reading it back —
without a limit, then with `device_read_bps` set to 2 MiB/s by `update`. Only that file is
evicted: `posix_fadvise(2)` with `POSIX_FADV_DONTNEED`, on the file in the container's
read/write layer, drops its clean pages and nothing else. (`echo 3 > /proc/sys/vm/drop_caches`
would do it too, by dropping the whole machine's cache: every other program on it, another
learner's included, would then read from the disk again. Not ours to change.)
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
def evict(path):
    # Drop this file's pages from the page cache: fsync(2) first (DONTNEED drops only clean
    # pages), then posix_fadvise(2). The container reads the same pages: overlay passes reads
    # on to the file in the upper directory.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def timed_read():
    evict(f"{upper}/data")
    t0 = time.monotonic()
    r = disk.exec(["dd", "if=/data", "of=/dev/null", "bs=1M"])
    return 8 / (time.monotonic() - t0), r.exit_code  # MiB/s


rates = None
if device is None:
    print("skipped: no block device holds the container's files here")
else:
    disk.exec(["sh", "-c", "dd if=/dev/urandom of=/data bs=1M count=8 2>/dev/null && sync"])
    free_rate, code1 = timed_read()
    disk.update(device_read_bps=[f"{device}:2mb"])
    limited_rate, code2 = timed_read()
    rates = (free_rate, limited_rate)
    print(f"without a limit: {free_rate:7.1f} MiB/s")
    print(f"limited to 2mb:  {limited_rate:7.1f} MiB/s")
    show(disk, "device_read_bps")  # v1: blkio.throttle.read_bps_device; v2: io.max
"""),
    ("code", r"""
if rates is None:
    print("skipped")
else:
    print("both reads succeeded:", code1 == code2 == 0)
    print("throttled rate ≈ 2 MiB/s (1 to 3):", 1.0 <= rates[1] <= 3.0)
    print("the limit made it slower:", rates[1] < rates[0] / 2)
disk.remove(force=True)
"""),
    ("md", r"""
**What happened.** The throttle sits in the block layer: every I/O request (a *bio*) carries the
cgroup of the task that issued it, and a cgroup over its byte budget has its requests held back.
Reading a file issues the reads from the reading process, so plain buffered reads are throttled —
but only those that reach the disk: data already in the page cache is served from memory, which is
why the file was evicted first (and why a second `dd` without evicting it would be fast).

Writes are where the versions differ. A buffered `write(2)` only dirties the page cache; the disk
write happens later, from the kernel's writeback threads. cgroup v1 cannot tell which cgroup those
pages belong to, so `blkio.throttle.write_bps_device` only slows direct or synchronous writes
(`dd oflag=direct`). cgroup v2 tracks page ownership (*cgroup writeback*), so `io.max wbps=` also
throttles buffered writes.

---
## 6. Why `/proc/cpuinfo` and `/proc/meminfo` show the host's

The seed notes list `cat /proc/cpuinfo` and `cat /proc/meminfo` under cgroups. Run them in a
container limited to half a CPU and 64 MiB:
"""),
    ("code-ignore-output", r"""
%%container --rm --name ch03-procfs --cpus 0.5 -m 64m busybox
echo "processors in /proc/cpuinfo: $(grep -c ^processor /proc/cpuinfo)"
grep -E '^(MemTotal|MemAvailable)' /proc/meminfo
free -m | head -2
"""),
    ("code", r"""
box = pycont.run("busybox", ["sleep", "1000"], cpus=0.5, memory="64m", detach=True,
                 name="ch03-procfs")
cpuinfo = box.exec(["cat", "/proc/cpuinfo"]).output
meminfo = box.exec(["cat", "/proc/meminfo"]).output
with open("/proc/meminfo") as f:
    host_total = f.readline()  # MemTotal comes first
print("/proc/cpuinfo inside lists all the host's CPUs:",
      cpuinfo.count("processor\t:") == os.cpu_count())
print("MemTotal inside is the host's:", meminfo.splitlines()[0] == host_total.strip())
print("yet the cgroup allows", cpus_allowed(box), "CPU and",
      reading(box).memory_limit // MIB, "MiB")
print("/sys/fs/cgroup inside the container:", box.exec(["ls", "/sys/fs/cgroup"]).output.split())
limit = ("/sys/fs/cgroup/memory.max" if cgroups.detect() == "v2"
         else "/sys/fs/cgroup/memory/memory.limit_in_bytes")
print("its memory limit, read inside:", box.exec(["cat", limit]).output.strip())
r = box.exec(["sh", "-c", f"echo -1 > {limit}"])  # v1's "no limit"; v2 would say "max"
print("raising it from inside:", r.output.strip().split(": ")[-1], "| exit code", r.exit_code)
box.remove(force=True)

r = pycont.run("busybox", ["nproc"], cpuset_cpus="0", rm=True, name="ch03-nproc")
print("nproc with --cpuset-cpus 0:", r.output.strip())
"""),
    ("md", r"""
**What happened.** cgroups **limit and count**; they do not *hide*. `/proc/cpuinfo` and
`/proc/meminfo` are generated by the kernel from the machine's hardware and global memory
counters, and procfs is not cgroup-aware: every container reads the host's numbers. (`nproc` asks
`sched_getaffinity(2)`, so it does see `--cpuset-cpus`, but not `--cpus`.) A program that sizes
itself from these files — a thread pool per CPU, a cache of half the "total" memory — will
overcommit and then be throttled or OOM-killed. Well-behaved runtimes read the cgroup files
instead (the JVM's container support, Go's `GOMAXPROCS` since 1.25). For them, pycont, as
docker, mounts the container's own cgroup at `/sys/fs/cgroup`, through its cgroup namespace
(chapter 02): the folder lists its controllers, and the limit reads 64 MiB. Read-only: a
container that could write there could lift its own limits (chapter 10). **LXCFS** goes further:
a FUSE filesystem that bind-mounts over `/proc/cpuinfo`, `/proc/meminfo`, `/proc/uptime`… files
computed from the container's cgroup, so that even `free` and `top` inside tell the truth.

---
## 7. The v1 and v2 file names side by side

The knobs and meters are the same ideas under different names. The table is built from pycont's
two drivers (`Cgroup.files()`; the class attribute `FILES` holds the same):
"""),
    ("code", r"""
from IPython.display import Markdown

ROWS = [("--memory", "memory"), ("peak memory", "memory_peak"), ("memory now", "memory_current"),
        ("OOM kills", "oom_kills"), ("--memory-swap", "memory_swap"), ("--cpus", "nano_cpus"),
        ("--cpu-shares", "cpu_shares"), ("CPU time used", "cpu_usage_ns"),
        ("--cpuset-cpus", "cpuset_cpus"), ("--pids-limit", "pids_limit"),
        ("--device-read-bps", "device_read_bps"), ("--device-write-bps", "device_write_bps"),
        ("pause (freezer)", "freeze"), ("kill them all", "kill"), ("member processes", "procs")]
lines = ["| docker | cgroup v1 | cgroup v2 |", "|---|---|---|"]
for label, key in ROWS:
    lines.append(f"| {label} | `{cgroups.V1Cgroup.FILES[key]}` | `{cgroups.V2Cgroup.FILES[key]}` |")
Markdown("\n".join(lines))
"""),
    ("md", r"""
### Pause and unpause: the freezer

`docker pause` does not send a signal: it asks the **freezer** to stop every process of the
cgroup in the kernel (`freezer.state` = `FROZEN` in v1, `cgroup.freeze` = 1 in v2). A container
that prints a counter and the time (`/proc/uptime`) every 0.2 s, paused for 1.5 s:
"""),
    ("code", r"""
ticker = "i=0; while :; do i=$((i+1)); echo $i $(cut -d' ' -f1 /proc/uptime); sleep 0.2; done"
counter = pycont.run("busybox", ["sh", "-c", ticker], detach=True, name="ch03-counter")
time.sleep(1)
counter.pause()
print("status:", counter.status)
show(counter, "freeze")  # v1: freezer.state; v2: cgroup.freeze
time.sleep(1.5)
counter.unpause()
print("status:", counter.status)
show(counter, "freeze")
time.sleep(1)
lines = [line.split() for line in counter.logs()]
counter.remove(force=True)
numbers = [int(n) for n, _ in lines]
times = [float(t) for _, t in lines]
gaps = [b - a for a, b in zip(times, times[1:])]
print(f"largest gap between two lines: {max(gaps):.1f} s (the others: about 0.2 s)")
print("the pause shows as one gap of more than 1 s:", sum(g > 1 for g in gaps) == 1)
print("no number was skipped:", numbers == list(range(1, len(numbers) + 1)))
"""),
    ("md", r"""
**What happened.** While frozen, the processes were not runnable at all — not stopped by
`SIGSTOP`, which a process (or its parent, through `wait(2)`) could notice, and which a shell
would report as a stopped job. They simply did not get the CPU; `sleep` ended late, and the loop
went on where it was. The freezer is also how a fork bomb is removed (section 4), and how
`docker checkpoint` (CRIU) gets a still picture of a container.

---
## 8. And the network?

The seed notes list *Rede* (network) with the cgroup resources, but **no cgroup controller limits
network bandwidth**. v1 has two network controllers, and neither limits anything:
"""),
    ("code", r"""
with open("/proc/cgroups") as f:
    known = [line.split()[0] for line in f if not line.startswith("#")]
print("network controllers this kernel knows:", [c for c in known if c.startswith("net_")])
"""),
    ("md", r"""
`net_cls` only **tags** the packets of a cgroup with a class id, for the traffic-control (`tc`)
and firewall rules to match; `net_prio` sets their priority per network device. v2 has no network
controller at all: an eBPF program attached to the cgroup, or an `iptables -m cgroup` rule,
classifies the traffic instead. Bandwidth itself is shaped by **`tc`** (queueing disciplines such
as `tbf` or `htb`) on the container's network device — in docker's case the host end of its veth
pair: shaping traffic is `tc`'s job, not the cgroups'.
"""),
]
EXERCISES = [
    exercise(
        r"""
### Exercise 1 — a quarter of a CPU

Start a detached busy loop (`BUSY`) named **`ch03-ex1`**, limited to a quarter of a CPU, and
measure its CPU %: put the number in `answer1`.
""",
        r"""
answer1 = None  # the CPU % you measured (100 = one CPU)
""",
        r"""
def _ex1_ok():
    if "ch03-ex1" not in course.containers():
        return False
    c = pycont.get("ch03-ex1")
    return c.status == "running" and cpus_allowed(c) == 0.25 and 15 <= float(answer1) <= 30


course.check("exercise 1", _ex1_ok,
             "pycont.run('busybox', BUSY, cpus=..., detach=True, name='ch03-ex1'), then "
             "cpu_percent([c], 2) or pycont.stats(c); remove a wrong try with "
             "pycont.get('ch03-ex1').remove(force=True)")
""",
        r"""
ex1 = pycont.run("busybox", BUSY, cpus=0.25, detach=True, name="ch03-ex1")
(answer1,) = cpu_percent([ex1], 2)
""",
        note=r"""
`cpus_allowed(ex1)` then says 0.25: a quota of 25 000 µs per 100 000 µs period.
""",
    ),
    exercise(
        r"""
### Exercise 2 — the memory limit file

The next cell starts **`ch03-ex2`** with `-m 48m`. Find the file, on the host, that holds its
memory limit: put its full path in `answer2`. (Without the helpers `kernel_files` and `show`:
use `ex2.cgroup()`.)
""",
        r"""
answer2 = None  # a path like "/sys/fs/cgroup/..."
""",
        r"""
def _ex2_ok():
    (expected,) = kernel_files(ex2, "memory").values()
    return os.path.realpath(str(answer2)) == os.path.realpath(expected)


course.check("exercise 2", _ex2_ok,
             "ex2.cgroup().paths() gives the folder(s); ex2.cgroup().files()['memory'] "
             "names the file")
""",
        r"""
cg = ex2.cgroup()
answer2 = os.path.join(cg.path, cg.files()["memory"])
# v1: /sys/fs/cgroup/memory/pycont/<id>/memory.limit_in_bytes
# v2: /sys/fs/cgroup/pycont/<id>/memory.max
""",
        note=r"""
It holds 50331648: 48 × 1024 × 1024 bytes.
""",
        setup=r"""
ex2 = pycont.run("busybox", ["sleep", "1000"], memory="48m", detach=True, name="ch03-ex2")
""",
    ),
    exercise(
        r"""
### Exercise 3 — too few processes

`seq 1 100 | xargs -P 100 -n1 sleep 1` starts up to 100 `sleep`s at once. Choose a `pids_limit`
with which it **fails**, but with which the container can still run a small pipeline
(`seq 1 3 | xargs -n1 echo`). Put it in `answer3`; the check runs both.
""",
        r"""
answer3 = None  # an int for pids_limit
""",
        r"""
_ex3_runs = {}


def _ex3_ok():
    _ex3_runs.clear()
    if not isinstance(answer3, int) or isinstance(answer3, bool):
        return False
    for what, script in (("xargs", "seq 1 100 | xargs -P 100 -n1 sleep 1"),
                         ("small", "seq 1 3 | xargs -n1 echo")):
        r = pycont.run("busybox", ["sh", "-c", script], pids_limit=answer3, rm=True,
                       name="ch03-ex3")
        _ex3_runs[what] = r.exit_code
    return _ex3_runs["xargs"] != 0 and _ex3_runs["small"] == 0


course.check("exercise 3", _ex3_ok,
             "the shell, seq, xargs and each sleep are one task each; the small pipeline "
             "needs the shell, seq, xargs and one echo at a time")
if len(_ex3_runs) == 2:
    print(f"(with pids_limit={answer3}: the 100 sleeps exit with {_ex3_runs['xargs']}, "
          f"the small pipeline with {_ex3_runs['small']})")
""",
        r"""
answer3 = 10
""",
        note=r"""
Anything from 4 to about 100, e.g. `answer3 = 10`: the shell, `seq` and `xargs` take 3 tasks, and
`xargs` fails ("Resource temporarily unavailable", exit code 126) when it cannot start the next
`sleep`. With 3 the small pipeline fails too (no room for `echo`); from about 103 all 100 `sleep`s
fit.
""",
    ),
    exercise(
        r"""
### Exercise 4 — counting OOM kills on cgroup v2

On a cgroup v2 machine, which file of a container's cgroup counts its OOM kills (the
`oom_kill` line)? Give the file name.
""",
        r"""
answer4 = None  # e.g. "memory.current"
""",
        r"""
course.check("exercise 4", lambda: answer4 == "memory.events",
             "look at the 'OOM kills' row of the table in section 7")
""",
        r"""
answer4 = "memory.events"
""",
        note=r"""
Its `oom_kill` line (and `oom`, `max`, `high`, `low` — how often each
threshold was met). On v1 the same count is the `oom_kill` line of `memory.oom_control`.
""",
    ),
]
QUESTIONNAIRE = r"""
1. What is the difference between what namespaces do and what cgroups do?
2. `--cpus 0.5`: which files does it write on cgroup v1 and on v2, and what do their numbers
   mean?
3. A container with `--cpus 0.5` runs alone on an idle 8-CPU machine. How much CPU does it get?
   And one with `--cpu-shares 512` and no `--cpus`?
4. A container exits with code 137. What does that mean, and how do you tell whether it was the
   OOM killer?
5. Why did the fork bomb not take the host down, and how can a runtime kill it reliably?
6. Why were the caches dropped before timing the throttled read? Why would buffered *writes*
   escape `blkio.throttle.write_bps_device` on cgroup v1?
7. Why does `free` inside a container limited to 64 MiB show gigabytes, and what can fix that?
8. How is `docker pause` different from sending `SIGSTOP` to the container's processes?

<details><summary>Answers</summary>

1. Namespaces limit what a process can *see* (its own PIDs, network, mounts…); cgroups limit and
   count what a group of processes can *use* (CPU time, memory, tasks, I/O) (`cgroups(7)`).
2. v1: `cpu.cfs_quota_us` = 50000 and `cpu.cfs_period_us` = 100000; v2: `cpu.max` =
   `50000 100000`. At most 50 000 µs of CPU time in every 100 000 µs period, summed over all
   the cgroup's processes (kernel docs: *sched-bwc*).
3. Half of one CPU: the quota is a ceiling even when the machine is idle. Shares are only a weight
   under contention: alone, the `--cpu-shares 512` container may use all 8 CPUs.
4. 137 = 128 + 9: killed by `SIGKILL`. `docker inspect` `State.OOMKilled` (here
   `state().oom_killed`) says whether the OOM killer did it, read from the `oom_kill` counter of
   `memory.oom_control` (v1) or `memory.events` (v2).
5. `pids.max` made every `fork(2)` past 64 tasks in the cgroup fail with `EAGAIN`, so the host's
   PIDs were never exhausted. To kill it: freeze the cgroup so nothing can fork, `SIGKILL` every
   PID, thaw (or, on v2, write 1 to `cgroup.kill`).
6. Reads served from the page cache never reach the block device, so they are not throttled.
   Buffered writes reach the disk later, from the kernel's writeback threads; v1 cannot charge
   those to the container's cgroup (v2's cgroup writeback can).
7. `/proc/meminfo` is not cgroup-aware: it shows the machine's memory. Read the cgroup's
   `memory.max` / `memory.limit_in_bytes` instead (a container sees its own cgroup, read-only,
   at `/sys/fs/cgroup`), or mount LXCFS over `/proc/meminfo`.
8. The freezer stops the processes inside the kernel, all at once, invisibly to them and their
   parents, and nothing can fork meanwhile; `SIGSTOP` is a signal, delivered process by process
   (new children escape it), visible to parents through `wait(2)` and to `ps` as state `T`.
</details>
"""
READING = r"""
- [`cgroups(7)`](https://man7.org/linux/man-pages/man7/cgroups.7.html) — v1 and v2, the
  filesystem, `/proc/<pid>/cgroup`, `/proc/cgroups`.
- Kernel documentation:
  [Control Group v2](https://docs.kernel.org/admin-guide/cgroup-v2.html)
  (`Documentation/admin-guide/cgroup-v2.rst`: every v2 file of this chapter),
  [cgroup v1 memory](https://docs.kernel.org/admin-guide/cgroup-v1/memory.html) (`memory.rst`),
  [CFS bandwidth control](https://docs.kernel.org/scheduler/sched-bwc.html) (quota and period),
  [v1 block I/O](https://docs.kernel.org/admin-guide/cgroup-v1/blkio-controller.html),
  [v1 pids](https://docs.kernel.org/admin-guide/cgroup-v1/pids.html),
  [v1 freezer](https://docs.kernel.org/admin-guide/cgroup-v1/freezer-subsystem.html),
  [v1 net_cls](https://docs.kernel.org/admin-guide/cgroup-v1/net_cls.html).
- Docker: [Resource constraints](https://docs.docker.com/engine/containers/resource_constraints/)
  (`docker run --memory`, `--memory-swap`, `--cpus`, `--cpu-shares`…),
  [`docker update`](https://docs.docker.com/reference/cli/docker/container/update/),
  [`docker stats`](https://docs.docker.com/reference/cli/docker/container/stats/).
- [LXCFS](https://github.com/lxc/lxcfs) — cgroup-aware `/proc/meminfo`, `/proc/cpuinfo`…
- [`tc(8)`](https://man7.org/linux/man-pages/man8/tc.8.html),
  [`tc-tbf(8)`](https://man7.org/linux/man-pages/man8/tc-tbf.8.html) — shaping network bandwidth.
"""
# fmt: on
