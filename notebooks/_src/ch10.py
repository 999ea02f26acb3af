"""10 — what keeps a container in (capabilities, seccomp, masked paths, the cgroup view), and
who runs it (Docker's layers, the OCI runtime spec, podman driving pycont's OCI runtime)."""

# ruff: noqa: E501  (markdown tables and links cannot be wrapped)

from skeleton import exercise

FILE = "10-security.ipynb"

# fmt: off
GOAL = r"""
# 10 · What keeps a container in, and who runs it

> *"Resumindo, containers são processos isolados que compartilham o kernel do sistema
> operacional."*
> — in short, containers are isolated processes that share the operating system's kernel.
>
> *"O que é Docker? Docker é uma plataforma de código aberto que facilita a criação, execução e
> gerenciamento de containers. Que linguagem de programação foi utilizada para desenvolver o
> Docker? Go."*
> — what is Docker? An open-source platform that makes it easy to create, run and manage
> containers. Which programming language was Docker written in? Go.

## Goal

A container shares the host's kernel, and, started by root as Docker starts it, its root user
**is** the host's root user. Namespaces (chapter 02) hide things from it and cgroups (chapter 03)
limit what it uses; this chapter is about what stops it from simply **undoing** them. You will:

- see that root in a container is uid 0 on the host, with no user namespace in between;
- read its **capabilities**, the 14 of root's 41 privileges Docker leaves it, and watch an
  action fail for lack of one;
- see the **seccomp** filter refuse a system call with `EPERM`, and count what it allows;
- find the **masked and read-only** kernel files: `/proc/keys` empty, `/proc/sys` read-only;
- try to **lift the container's own memory limit** from inside, and fail;
- try two **escapes** (a volume over `/proc`, `privileged=True`) and see what each one gives up;
- then answer the seed's first questions for real: what Docker is made of — the CLI, `dockerd`,
  `containerd`, the shim, `runc` — and where pycont sits, by letting **podman drive pycont's OCI
  runtime**.
"""
ALLOWS = r"""
Everything here runs as root, as Docker's daemon does: the point is what holds a container's
root user in. The next cell imports what the chapter uses, gives this run its own session
folder (its containers named `ch10-…`, a host folder, podman's private store), removes what an
interrupted run of the chapter left, and starts **`ch10-box`**, a
container limited to 64 MiB of memory and 64 processes, which section 5 tries to break out of.
"""
NEEDS = ("namespaces", "root", "cgroups")
LEFTOVERS = "also=forget_podman"
SETUP = r"""
import glob
import json
import os
import shutil
import subprocess
import sys

import pycont
from pycont.course import Chapter, wait_for
from pycont.namespaces import Namespace, ns_inode
from pycont.security import capabilities, seccomp
from pycont.security import paths as masked_paths

MIB = 1 << 20
SETS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


def sh(script, name="ch10-sh", **options):
    # Run a shell script in a new busybox container (removed at the end); its result.
    return pycont.run("busybox", ["sh", "-c", script], rm=True, name=name, **options)


def status(name="ch10-status", **options):
    # What the kernel holds about a container's process: its /proc/self/status, as a dict.
    out = sh("cat /proc/self/status", name=name, **options).output
    return {k: v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


def show_caps(st):
    # The five capability sets of a status dict, with how many capabilities each holds.
    for key in SETS:
        print(f"{key}: {st[key]}  ({len(capabilities.decode(int(st[key], 16)))} capabilities)")


# -- podman, driving pycont's OCI runtime (section 7) ----------------------------------------
# podman makes them regardless of its store: its blob cache, and their parents; deepest first
PODMAN_SYSTEM_DIRS = ("/var/lib/containers/cache", "/var/lib/containers", "/run/containers")
BUSYBOX = "docker.io/library/busybox:latest"
OPERATIONS = ("create", "start", "state", "kill", "delete", "exec", "features")


def oci_runtime():
    # pycont's OCI runtime CLI (the pycont-oci entry point next to this Python), or None.
    here = os.path.join(os.path.dirname(sys.executable), "pycont-oci")
    return here if os.access(here, os.X_OK) else shutil.which("pycont-oci")


def podman_missing():
    # Why podman cannot drive pycont here, or "" when it can.
    if shutil.which("podman") is None:
        return "podman is not installed (Debian package: podman)"
    if oci_runtime() is None:
        return "pycont-oci is not installed (`pip install -e .` makes the entry point)"
    return ""


def libpod_cgroups():
    # podman's cgroupfs manager makes libpod_parent folders in each hierarchy.
    found = set()
    for pattern in ("*/libpod_parent", "*/*/libpod_parent", "libpod_parent"):
        found.update(glob.glob(f"/sys/fs/cgroup/{pattern}"))
    return found


def podman(*args, runtime=None, check=True):
    # podman with a private store under PODMAN_DIR, as the test suite runs it (tests/peers.py).
    base = (f"--root={PODMAN_DIR}/root", f"--runroot={PODMAN_DIR}/run",
            f"--tmpdir={PODMAN_DIR}/tmp", "--cgroup-manager=cgroupfs", "--events-backend=file",
            # its own network configs, not /etc/containers/networks (root's, 0700)
            f"--network-config-dir={PODMAN_DIR}/networks")
    if runtime:
        base += (f"--runtime={runtime}",)
    r = subprocess.run(["podman", *base, *args], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "TMPDIR": PODMAN_DIR})
    if check and r.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def start_podman():
    # Make the private store, remembering what this chapter must undo later.
    os.makedirs(f"{PODMAN_DIR}/tmp", exist_ok=True)
    with open(f"{PODMAN_DIR}/before.json", "w") as f:
        json.dump({"dirs": [d for d in PODMAN_SYSTEM_DIRS if os.path.exists(d)],
                   "cgroups": sorted(libpod_cgroups())}, f)


def forget_podman():
    # Remove podman's containers, images, mounts and cgroups, and its store; no-op if none.
    if not os.path.exists(f"{PODMAN_DIR}/before.json"):
        shutil.rmtree(PODMAN_DIR, ignore_errors=True)
        return
    with open(f"{PODMAN_DIR}/before.json") as f:
        before = json.load(f)
    if shutil.which("podman"):
        podman("rm", "-af", check=False)
        podman("rmi", "-af", check=False)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(PODMAN_DIR + "/")), reverse=True):
        subprocess.run(["umount", "-l", point], check=False)
    subprocess.run(["rm", "-rf", "--one-file-system", PODMAN_DIR], check=False)
    for folder in sorted(libpod_cgroups() - set(before["cgroups"]), key=len, reverse=True):
        for sub, _, _ in sorted(os.walk(folder, topdown=False), key=lambda w: -len(w[0])):
            try:
                os.rmdir(sub)
            except OSError:
                pass
    for d in PODMAN_SYSTEM_DIRS:
        # podman makes them even for a private store. Take them back only if they were not
        # there and hold nothing but podman's blob cache: anyone else's podman may use them.
        if d not in before["dirs"] and only_podman_cache(d):
            shutil.rmtree(d, ignore_errors=True)


def only_podman_cache(folder):
    # Whether `folder` holds no file but podman's blob-info cache (blob-info-cache-v1.boltdb).
    return all(f.startswith("blob-info-cache") for _, _, files in os.walk(folder) for f in files)


def ancestry(pid):
    # A process and its parents up to PID 1, as (pid, command name): the host's process tree.
    chain = []
    while pid > 0:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        chain.append((pid, fields["Name"]))
        pid = int(fields["PPid"])
    return chain
"""
START = r"""
HOST_DIR = course.scratch("ch10-host")  # a host folder a container is given (section 1)
PODMAN_DIR = course.scratch("podman", short=True)  # podman's private store (runroot: 50 chars)
box = pycont.run("busybox", ["sleep", "1000"], name="ch10-box", detach=True,
                 memory="64m", pids_limit=64)
print(box.name, "is", box.status)
print("podman, to drive pycont's OCI runtime (section 7):", podman_missing() or "here")
"""
SECTIONS = [
    ("md", r"""
## 1. Root in a container is root on the host

Who is the container's process, and what does its user namespace map?
"""),
    ("code", r"""
%%container --rm --name ch10-root busybox
id
echo "uid_map (inside, outside, count):"
cat /proc/self/uid_map
"""),
    ("code", r"""
print("ch10-box's user namespace is the host's:",
      ns_inode(box.pid, Namespace.USER) == ns_inode("self", Namespace.USER))
with open(f"/proc/{box.pid}/status") as f:
    uid_line = next(line for line in f if line.startswith("Uid:"))
print("its process, seen from the host:", " ".join(uid_line.split()))
"""),
    ("md", r"""
Uid 0 everywhere, and the same user namespace as the host: its map `0 0 4294967295` is the
initial namespace's, every id to itself. Give it a host folder holding a file that only its owner,
uid 1000, may read:
"""),
    ("code", r"""
os.makedirs(HOST_DIR)
with open(f"{HOST_DIR}/secret.txt", "w") as f:
    f.write("uid 1000's private notes\n")
os.chown(f"{HOST_DIR}/secret.txt", 1000, 1000)
os.chmod(f"{HOST_DIR}/secret.txt", 0o600)
r = sh("ls -ln /host/secret.txt | cut -c1-10; cat /host/secret.txt", name="ch10-root",
       volumes=[f"{HOST_DIR}:/host"])
print(r.output.rstrip())
"""),
    ("md", r"""
**What happened.** This is Docker's default, and pycont's as root: **no user namespace**. The
container's root is uid 0 of the host, and the kernel checks its file permissions as it checks
the host root's: it read a file mode `0600` of another user because root holds `CAP_DAC_OVERRIDE`,
which skips those checks (`capabilities(7)`). A user namespace would change that only with a
**real** remap — container uid 0 as, say, host uid 100000 (Docker's `--userns-remap`, rootless
podman, chapter 02's uid 1000 experiment); a namespace that maps every id to itself protects
nothing.

So what stops this root user from remounting `/proc`, loading a kernel module or raising its own
limits? Four things, applied by the container's first process just before it `execve(2)`s your
command: its **capabilities**, a **seccomp** filter, **masked paths**, and a read-only view of
its **cgroup**. One section each.

---
## 2. Capabilities: root's power, in 41 pieces

`capabilities(7)`: since Linux 2.2, what root may do is split into capabilities — `CAP_CHOWN`,
`CAP_NET_ADMIN`, `CAP_SYS_ADMIN`… — and the kernel checks the one an operation needs, not the
uid. A process has five sets, shown as bit masks in `/proc/<pid>/status`: *effective* (checked
now), *permitted* (may be made effective), *inheritable* and *ambient* (what an `execve(2)`
passes on), and *bounding* (the ceiling: a capability dropped from it never comes back).
"""),
    ("code", r"""
st = status()
show_caps(st)
"""),
    ("code", r"""
eff = int(st["CapEff"], 16)
print("CapEff decoded:", ", ".join(capabilities.decode(eff)))
print("Docker's default 14:", set(capabilities.decode(eff)) == capabilities.DOCKER_DEFAULT)
host = capabilities.of_process("self")["CapEff"]
print("this notebook (host root) holds", len(capabilities.decode(host)), "| the kernel knows",
      capabilities.last_cap() + 1)
"""),
    ("md", r"""
`capsh --decode` (from libcap, Debian package `libcap2-bin`) decodes a mask the same way:
"""),
    ("code", r"""
if shutil.which("capsh"):
    print(subprocess.run(["capsh", f"--decode={st['CapEff']}"], capture_output=True,
                         text=True).stdout.strip())
else:
    print("capsh is not installed here (Debian package: libcap2-bin); "
          "capabilities.decode above is what it would print")
"""),
    ("md", r"""
Fourteen, and not among them: `CAP_SYS_ADMIN` (mount, and a great many other things),
`CAP_NET_ADMIN` (network configuration), `CAP_SYS_MODULE` (load kernel modules), `CAP_SYS_TIME`,
`CAP_SYS_PTRACE`, `CAP_SYS_BOOT`… Try an action that needs one of those:
"""),
    ("code", r"""
%%container --rm --name ch10-caps busybox
mount -t tmpfs none /tmp && echo "mounted" || echo "mount refused"
ip link set lo down && echo "lo is down" || echo "ip refused"
"""),
    ("md", r"""
`docker run --cap-add NET_ADMIN` gives one back; `--cap-drop ALL` takes them all. Together,
the container keeps exactly what it is given:
"""),
    ("code", r"""
st_net = status(cap_drop=["ALL"], cap_add=["NET_ADMIN"])
print("CapEff", st_net["CapEff"], "=", capabilities.decode(int(st_net["CapEff"], 16)))
r = sh("ip link set lo down && ip -o link show lo | cut -d' ' -f2,3", cap_drop=["ALL"],
       cap_add=["NET_ADMIN"])
print("with NET_ADMIN:", r.output.strip())
"""),
    ("md", r"""
And the other way, one capability less. `chown(2)` to another user needs `CAP_CHOWN`, one of the
14:
"""),
    ("code", r"""
for drop in ([], ["CHOWN"]):
    r = sh("touch /tmp/f && chown 1000 /tmp/f && ls -ln /tmp/f | cut -c1-20", cap_drop=drop)
    print(f"cap_drop={drop}:", r.output.strip(), f"(exit code {r.exit_code})")
"""),
    ("md", r"""
**What happened.** The container's first process started as root with every capability pycont
holds (all 41 on an ordinary host; when the notebook itself holds fewer, as printed above, the
machine it runs on is itself held in by a runtime, which can pass on only what it has), and
just before `execve(2)` it dropped every one not kept from the **bounding** set
(`prctl(PR_CAPBSET_DROP)`), cleared the ambient set, and `capset(2)` effective and permitted to
the 14, inheritable to none (as Docker does since 20.10.14: CVE-2022-24769). The `mount` and
`ip` calls reached the kernel, which checked `CAP_SYS_ADMIN` and `CAP_NET_ADMIN` and answered
`EPERM`. In the container's own network namespace, `NET_ADMIN` is harmless to the host: `lo` went
down inside only. Capabilities are **per operation**, which is why one can be granted without
the rest.

---
## 3. seccomp: a filter on system calls

Capabilities guard operations the kernel thinks privileged. Many system calls need none and are
still risky in a container: creating a user namespace, `keyctl(2)`, `userfaultfd(2)`,
`perf_event_open(2)`… `seccomp(2)` attaches a small BPF program to a process that the kernel runs
at **every** system call: allow it, or fail it with an errno, or kill.
"""),
    ("code", r"""
%%container --rm --name ch10-seccomp busybox
grep -E '^(Seccomp|Seccomp_filters|NoNewPrivs)' /proc/self/status
unshare -U true && echo "unshare: a new user namespace" || echo "[unshare exit code $?]"
"""),
    ("md", r"""
`Seccomp: 2` is *filter* mode (`proc(5)`: 0 none, 1 strict). Creating a user namespace needs no
capability at all (unprivileged users may, `user_namespaces(7)`), so the refusal came from the
filter. Check: the same container without the filter, `seccomp=unconfined`, and the same 14
capabilities:
"""),
    ("code", r"""
r = sh("grep -E '^(Seccomp|CapEff)' /proc/self/status; unshare -U true && echo 'unshare: ok'",
       security_opt=["seccomp=unconfined"])
print(r.output.rstrip())
"""),
    ("md", r"""
The filter is Docker's default profile: a list of the system calls a container may make; every
other one fails with `EPERM`. Some rules depend on the container's capabilities, and some on
a call's arguments (`clone(2)` is allowed, but not with a `CLONE_NEW*` namespace flag).
`pycont.security.seccomp` holds it in Docker's JSON format; resolve it for this machine and the 14:
"""),
    ("code", r"""
profile = seccomp.default_profile()
rules = seccomp.resolve(profile, capabilities.DOCKER_DEFAULT)
allowed = {n for rule in rules["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW"
           and not rule.get("args") for n in rule["names"]}
by_arg = {n for rule in rules["syscalls"] if rule.get("args") for n in rule["names"]}
print("every other call:", rules["defaultAction"], "errno", rules["defaultErrnoRet"], "(EPERM)")
print("allowed by name:", len(allowed), "system calls; allowed for some arguments only:",
      sorted(by_arg))
denied = [n for n in seccomp.DOCKER_DENIED_EXAMPLES if n not in allowed]
print(f"{len(denied)} examples refused:", " ".join(denied))
"""),
    ("code", r"""
more = seccomp.resolve(profile, capabilities.DOCKER_DEFAULT | {"CAP_SYS_ADMIN"})
more_allowed = {n for rule in more["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW"
                and not rule.get("args") for n in rule["names"]}
print("--cap-add SYS_ADMIN also opens the filter for:", " ".join(sorted(more_allowed - allowed)))
"""),
    ("md", r"""
**What happened.** Just before `execve(2)`, the container's first process loaded the profile,
compiled by libseccomp into BPF, with `prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER)`. A filter
stays for the life of the process and of every child: nothing inside the container can remove
it. `unshare(2)` with `CLONE_NEWUSER` matched no *allow* rule and got `EPERM`, while the
capabilities were the same in both runs. Docker's profile is capability-aware: adding
`CAP_SYS_ADMIN` also allows `mount`, `unshare`, `setns` and their friends, which is why adding
that one capability gives up so much. (A swap or reboot call is refused twice: by the filter,
and by the missing capability.)

---
## 4. Masked and read-only paths

`/proc` and `/sys` are windows on the **host's** kernel: one PID namespace does not make
`/proc/keys` (the kernel's keyrings), `/proc/kcore` (its memory), `/proc/timer_list` or
`/proc/sys` (every kernel setting) the container's own. Docker hides some (masked paths) and
freezes others (read-only paths); pycont uses the same lists:
"""),
    ("code", r"""
print("masked:   ", " ".join(masked_paths.MASKED))
print("read-only:", " ".join(masked_paths.READONLY))
"""),
    ("code", r"""
%%container --rm --name ch10-masked busybox
for f in /proc/keys /proc/timer_list /proc/interrupts; do echo "$f: $(wc -c < $f) bytes"; done
echo "/sys/firmware holds: [$(ls /sys/firmware)]"
"""),
    ("code", r"""
for path in ("/proc/keys", "/proc/timer_list", "/proc/interrupts"):
    with open(path) as f:
        print(f"the host's {path}:", "empty" if not f.read() else "not empty")
print("the host's /sys/firmware holds:", sorted(os.listdir("/sys/firmware")))
"""),
    ("md", r"""
`/proc/sys` can be read, not written. The container reads one kernel setting and writes **the
same value** back (so that nothing would change even if the write went through):
"""),
    ("code", r"""
with open("/proc/sys/vm/overcommit_ratio") as f:
    before = f.read()
r = sh("v=$(cat /proc/sys/vm/overcommit_ratio); echo \"read $v\"; "
       "echo \"$v\" > /proc/sys/vm/overcommit_ratio && echo written")
print(r.output.rstrip())
with open("/proc/sys/vm/overcommit_ratio") as f:
    print("the host's value is unchanged:", f.read() == before)
"""),
    ("md", r"""
How? The container's mount table shows it. Each masked file has `/dev/null` bind-mounted over it,
each masked folder an empty read-only `tmpfs`; each read-only path is bind-mounted onto itself
with `ro`:
"""),
    ("code", r"""
%%container --rm --name ch10-mounts busybox
echo "mount point, options, type, source:"
grep -E ' /proc/(keys|timer_list|sys|acpi) ' /proc/self/mountinfo |
    sed -E 's/^([^ ]+ ){4}([^ ]+) ([^ ]+).* - ([^ ]+) ([^ ]+).*/  \2  \3  \4  \5/'
"""),
    ("md", r"""
**What happened.** After mounting the container's `/proc` and `/sys`, and before `pivot_root(2)`,
pycont bound `/dev/null` over the masked files and an empty read-only tmpfs over the masked
folders, then bind-mounted each read-only path onto itself and remounted it with
`MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC` (`mount(2)`). Every path is opened inside the new root
without following a symbolic link, so an image cannot point them elsewhere; a path this kernel
does not have (`/proc/kcore` here) is skipped. Without
`CAP_SYS_ADMIN` (and with `mount`/`umount2` outside the seccomp profile), the container cannot
unmount or remount them. The whole root can be made read-only too: `docker run --read-only`
(exercise 3).

Without this, a container's root wrote `3` into `/proc/sys/vm/drop_caches` and emptied the
**host's** page cache: there is one kernel, and `/proc/sys` is its control panel.

---
## 5. A container cannot lift its own limits

`ch10-box` runs with `memory="64m"` and `pids_limit=64`. Inside, `/sys/fs/cgroup` shows its own
cgroup (through its cgroup namespace, chapter 02), read-only. The script finds the files on
either cgroup version — v1 has one folder per controller, v2 one for all — and then tries,
as root, every way out it can think of:
"""),
    ("code", r"""
LIFT = '''
if [ -f /sys/fs/cgroup/memory.max ]; then          # cgroup v2
    mem=/sys/fs/cgroup/memory.max; pids=/sys/fs/cgroup/pids.max; unlimited=max
else                                                # cgroup v1
    mem=/sys/fs/cgroup/memory/memory.limit_in_bytes; pids=/sys/fs/cgroup/pids/pids.max
    unlimited=-1
fi
echo "my cgroup: $(cut -d: -f3 /proc/self/cgroup | sort -u | tr '\n' ' ')"
echo "memory limit: $(cat $mem)"
echo "pids limit:   $(cat $pids)"
try() { "$@" 2>&1 && echo "  -> it worked!" || true; }
echo "1. write the limits:"
try sh -c "echo $unlimited > $mem"
try sh -c "echo max > $pids"
echo "2. remount the cgroup view read-write:"
try mount -o remount,rw /sys/fs/cgroup
echo "3. mount a cgroup filesystem of my own:"
mkdir -p /mnt/cg
try mount -t cgroup2 none /mnt/cg
try mount -t cgroup -o memory none /mnt/cg
echo "4. make a new cgroup:"
try mkdir "$(dirname $pids)/escape"
'''
r = box.exec(["sh", "-c", LIFT])
print(r.output.rstrip())
"""),
    ("md", r"""
From the host, the container's cgroup (`c.cgroup()`, chapter 03) still holds its limits:
"""),
    ("code", r"""
s = box.cgroup().stats()
print(f"memory limit: {s.memory_limit // MIB} MiB; pids limit: {s.pids_limit}")
print("the limits pycont set:", box.limits().memory // MIB, "MiB,", box.limits().pids_limit,
      "processes")
"""),
    ("md", r"""
**What happened.** Each attempt hit a different wall. The limit files are on a read-only mount:
`EROFS` for root too (`mount(2)`). Remounting it, or mounting a cgroup filesystem anew, needs
`CAP_SYS_ADMIN` and the `mount` system call: no capability, and the seccomp filter says `EPERM`
first. (On cgroup v1 the view is a small read-only tmpfs with one cgroup mount per hierarchy, as
Docker lays it out; on v2 a single `cgroup2` mount.) And the cgroup namespace makes the container's
own cgroup the root of what it sees: even a writable mount would show nothing above it. The
kernel enforces the limit, and nothing in the container can reach the knob.

---
## 6. Two escapes, tried

**A volume over `/proc`.** If a container's `/proc` were a host folder, every tool inside that
reads `/proc` would read the host's files instead, and the runtime would mask paths in the wrong
place. pycont, like runc, refuses any volume onto `/proc`, `/sys`, `/dev` or anything below them:
"""),
    ("code", r"""
for target in ("/proc", "/sys", "/dev", "/proc/sys"):
    try:
        pycont.run("busybox", ["true"], rm=True, name="ch10-escape", volumes=[f"/tmp:{target}"])
        print(f"/tmp:{target} was accepted!")
    except pycont.UsageError as err:
        print(f"refused: {err}")
"""),
    ("code", r"""
r = subprocess.run([sys.executable, "-m", "pycont", "run", "--rm", "-v", "/tmp:/proc",
                    "busybox", "true"], capture_output=True, text=True)
print(r.stderr.strip(), f"| exit code {r.returncode}")
"""),
    ("md", r"""
Exit code 125 is Docker's for "the runtime refused before the container ran".

**`privileged=True`** (`docker run --privileged`). It is not an escape attempt: it is the
switch that turns sections 2 to 5 off. Look at what is left:
"""),
    ("code", r"""
st_priv = status(privileged=True)
print("capabilities:", len(capabilities.decode(int(st_priv["CapEff"], 16))),
      "(all this notebook holds:", int(st_priv["CapEff"], 16) == host, end=") ")
print("| Seccomp:", st_priv["Seccomp"])
r = sh("grep -cE ' /proc/(keys|timer_list|kcore) ' /proc/self/mountinfo; "
       "grep ' /proc/sys ' /proc/self/mountinfo | wc -l", privileged=True)
masks, sys_ro = r.output.split()
print("masked /proc files:", masks, "| read-only /proc/sys mounts:", sys_ro)
r = sh("mkdir -p /mnt/t && mount -t tmpfs none /mnt/t && echo 'mount -t tmpfs works'",
       privileged=True)
print(r.output.strip())
"""),
    ("md", r"""
**What happened.** A privileged container holds every capability its runtime has (all 41 on an
ordinary host), has no seccomp filter and
no masked or read-only paths. It is still in its namespaces, but it may leave them: with
`CAP_SYS_ADMIN` and `mount` it can mount the host's disk (Docker's `--privileged` also gives it
every host device in `/dev`) and `chroot` into it; with `CAP_SYS_MODULE` it loads code into the
host's kernel; through a writable `/proc/sys` it sets the host's kernel parameters
(`core_pattern` names a program the **host** runs as root at the next crash); through
`/proc/sysrq-trigger` it can reboot the machine; and it may rewrite its own cgroup limits. Treat
`--privileged` as "root on the host, with a different current directory". Here we looked at it
and touched nothing.

---
## 7. Who runs it

> *"O que é Docker? Docker é uma plataforma de código aberto que facilita a criação, execução e
> gerenciamento de containers."* — *"Que linguagem de programação foi utilizada para
> desenvolver o Docker? Go."*

"Docker" is a stack of programs, each with one job, every one written in Go:

```
docker (the CLI)          parses `docker run …`, sends it as an HTTP request to /var/run/docker.sock
  └─► dockerd             the daemon: the API, images, networks, volumes, builds
       └─► containerd     (gRPC) images on disk, snapshots, containers' lifecycle
            └─► containerd-shim-runc-v2   one per container: holds its stdio, waits for its exit
                 └─► runc                 the OCI runtime (Go, and a little C for its first steps):
                                          namespaces, cgroups, mounts, capabilities, seccomp, from
                                          config.json; starts the process and exits
                      └─► your process
```

The bottom layer has a standard, the **OCI runtime specification**: a runtime is given a
**bundle**, a folder with a `config.json` (the process, its mounts, namespaces, capabilities,
seccomp profile, masked paths, cgroup limits) and a `rootfs/`, and answers five operations:

| operation | what it does |
|---|---|
| `create <id> --bundle DIR` | sets up everything; the process waits just before running the command |
| `start <id>` | runs the command |
| `state <id>` | JSON: `id`, `status` (`creating`, `created`, `running`, `stopped`), `pid`, `bundle` |
| `kill <id> <signal>` | signals the process |
| `delete <id>` | removes what `create` made |

Anything above can use any runtime that speaks it: Docker and containerd use runc (or crun,
youki, gVisor's runsc, Kata); **podman** has no daemon — `podman` (Go) → `conmon` (C, the shim) →
the OCI runtime. pycont is the whole stack in one Python package (API/CLI/magics → a shim → its
container's first process), and it has an OCI face too: **`pycont-oci`**, the same engine as
`pycont run`, behind the runtime-spec CLI. Here is where pycont's own containers sit on the host,
from `ch10-box`'s process up to PID 1:
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
chain = ancestry(box.pid)
print("  ←  ".join(f"{name} (pid {pid})" for pid, name in chain))
"""),
    ("code", r"""
print("the container's process:", chain[0][1], "| its parent:", chain[1][1],
      "| and above it:", chain[2][1])
print("above those, this notebook's kernel:", chain[3][0] == os.getpid())
"""),
    ("md", r"""
`pycont-mon` is what pycont keeps per detached container, the role of `containerd-shim` or
`conmon`. It began as pycont's shim (`pycont-run`, Python), which made the namespaces and the
cgroup and forked the container's first process; once that process ran, the shim `execve(2)`d
this small C program, which stays its parent and waits for its exit code. `pycont-forksrv` is
a small helper this notebook started once to fork shims from (a notebook kernel has threads,
and a threaded process must not `fork(2)`). There is no daemon: like podman, pycont is a
library and a command that start containers, and the monitor is what stays.
"""),
    ("md", r"""
Now let podman be the layers above, and pycont only the OCI runtime. podman gets a private store
in a folder of this run's own (`PODMAN_DIR`, under `/tmp`: podman wants a short path) and
pycont's busybox (`pycont save`, `podman load`); a small wrapper around
`pycont-oci` writes down each operation podman asks for. (If podman or `pycont-oci` is missing
here, the cells say so and skip.)
"""),
    ("code", r"""
why_not = podman_missing()
if why_not:
    print("skipped:", why_not)
else:
    start_podman()
    subprocess.run([sys.executable, "-m", "pycont", "save", "busybox", "-o",
                    f"{PODMAN_DIR}/busybox.tar"], check=True)
    podman("load", "-i", f"{PODMAN_DIR}/busybox.tar")
    LOG = f"{PODMAN_DIR}/oci-calls.log"
    WRAPPER = f"{PODMAN_DIR}/pycont-oci"
    with open(WRAPPER, "w") as f:
        f.write(f'#!/bin/sh\necho "$*" >> {LOG}\nexec {oci_runtime()} "$@"\n')
    os.chmod(WRAPPER, 0o755)
    print("podman", podman("version", "--format", "{{.Client.Version}}").stdout.strip(),
          "| image loaded:", BUSYBOX in podman("images", "--format", "{{.Repository}}:{{.Tag}}").stdout)
"""),
    ("code", r"""
RUN = ("run", "--rm", "--network=none", "--ulimit=nofile=1024:1024", "--ulimit=nproc=4096:4096")
if why_not:
    print("skipped:", why_not)
else:
    r = podman(*RUN, BUSYBOX, "echo", "hi", runtime=WRAPPER, check=False)
    print(r.stdout.strip() or r.stderr.strip(), f"| exit code {r.returncode}")
    with open(LOG) as f:
        calls = [line.split() for line in f]
    # The first word that names an operation (global options such as --log FILE come first).
    verbs = [next(w for w in call if w in OPERATIONS) for call in calls
             if any(w in OPERATIONS for w in call)]
    print("podman asked pycont-oci, in order:", " ".join(dict.fromkeys(verbs)))
"""),
    ("md", r"""
Policy lives above the runtime: podman, not the runtime, chooses the capabilities and the seccomp
profile and writes them into `config.json` (podman's default is 11 capabilities, Docker's 14).
The runtime applies whatever the bundle says, so runc and pycont-oci, given the same bundle, give
the same container:
"""),
    ("code", r"""
if why_not:
    print("skipped:", why_not)
else:
    for runtime in ("runc", WRAPPER):
        r = podman(*RUN, BUSYBOX, "grep", "-E", "^(CapEff|Seccomp):", "/proc/self/status",
                   runtime=runtime, check=False)
        label = "pycont-oci" if runtime == WRAPPER else runtime
        eff = next((int(w, 16) for w in r.stdout.split()[1:2]), 0)
        print(f"{label:<10}", " ".join(r.stdout.split()) or r.stderr.strip(),
              f"({len(capabilities.decode(eff))} capabilities)")
"""),
    ("md", r"""
A container podman keeps running, and where it sits in the host's process tree:
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
if why_not:
    print("skipped:", why_not)
else:
    podman("run", "-d", "--name", "ch10-pod", *RUN[2:], BUSYBOX, "sleep", "1000", runtime=WRAPPER)
    pid = int(podman("inspect", "--format", "{{.State.Pid}}", "ch10-pod").stdout)
    print("  ←  ".join(f"{name} (pid {p})" for p, name in ancestry(pid)))
"""),
    ("code", r"""
if why_not:
    print("skipped:", why_not)
else:
    names = [name for _, name in ancestry(pid)]
    print("its parent is conmon, podman's shim:", names[1] == "conmon")
    print("no pycont-oci process stays behind it:", not any("pycont" in n for n in names))
    r = podman("exec", "ch10-pod", "sh", "-c", "grep CapEff /proc/self/status", runtime=WRAPPER,
               check=False)
    print("podman exec:", " ".join(r.stdout.split()) or r.stderr.strip())
    podman("rm", "-f", "ch10-pod", runtime=WRAPPER)
    print("after rm -f, podman lists:", podman("ps", "-aq").stdout.split() or "nothing")
    with open(LOG) as f:
        seen = {w for line in f for w in line.split() if w in OPERATIONS}
    print("operations podman used, in all:", " ".join(op for op in OPERATIONS if op in seen))
"""),
    ("md", r"""
**What happened.** podman did what `docker`, `dockerd` and `containerd` do: it stored the image,
unpacked it into a root filesystem, wrote a bundle's `config.json`, and started `conmon`, which
asked the runtime to `create` the container; podman then called `start`, and `delete` at the end.
`pycont-oci` did what `runc` does, with the same code that runs `pycont run`: it set up the
namespaces, the cgroup, the mounts, the masked paths, the capabilities and the seccomp filter
from `config.json`, and left. The container's parent is `conmon`, the shim, as
`containerd-shim` is for Docker's: the runtime is a tool that is called, not a daemon that stays.
"""),
]
EXERCISES = [
    exercise(
        r"""
### Exercise 1 — one capability less

Set `answer1` to the `cap_drop` list that makes `chown 1000 /tmp/f` fail in a container while
dropping as little as possible: the container must keep the other 13 of Docker's capabilities.
""",
        r"""
answer1 = None  # a list of capability names, e.g. ["NET_RAW"]
""",
        r"""
def _ex1():
    r = sh("touch /tmp/f && chown 1000 /tmp/f", name="ch10-check", cap_drop=answer1)
    kept = capabilities.decode(int(status(name="ch10-check", cap_drop=answer1)["CapEff"], 16))
    return r.exit_code != 0 and len(kept) == 13


course.check("exercise 1", _ex1,
             "chown(2) needs one capability: section 2 dropped it; its name without CAP_ will do")
""",
        r"""
answer1 = ["CHOWN"]
""",
    ),
    exercise(
        r"""
### Exercise 2 — the host's keys

Which masked path would show a container the kernel's keyrings, the keys the host's processes
hold? Set `answer2` to its path, and check in a container that it reads empty.
""",
        r"""
answer2 = None  # a path, e.g. "/proc/..."
""",
        r"""
def _ex2():
    r = sh(f"wc -c < {answer2}", name="ch10-check")
    return answer2 == "/proc/keys" and r.output.strip() == "0"


course.check("exercise 2", _ex2,
             "one of masked_paths.MASKED; keyrings(7) names the /proc file that lists keys")
""",
        r"""
answer2 = "/proc/keys"
""",
    ),
    exercise(
        r"""
### Exercise 3 — a read-only root

Start a detached busybox container named **`ch10-ex3`** running `sleep 1000` whose **root
filesystem** is read-only, as `docker run --read-only` makes it: even its root cannot create a
file in `/etc`.
""",
        r"""
# exercise 3: your code here
""",
        r"""
def _ex3():
    c = pycont.get("ch10-ex3")
    r = c.exec(["sh", "-c", "touch /etc/x 2>&1; grep -E '^[^ ]+ [^ ]+ [^ ]+ [^ ]+ / ' "
                            "/proc/self/mountinfo | cut -d' ' -f6"])
    return c.status == "running" and "Read-only file system" in r.output and \
        r.output.split()[-1].startswith("ro")


course.check("exercise 3", _ex3,
             "pycont.run('busybox', ['sleep', '1000'], name='ch10-ex3', detach=True, ...) with the "
             "option named like docker's --read-only; remove a wrong try with "
             "pycont.get('ch10-ex3').remove(force=True)")
""",
        r"""
pycont.run("busybox", ["sleep", "1000"], name="ch10-ex3", detach=True, read_only=True)
""",
    ),
    exercise(
        r"""
### Exercise 4 — the filter, not the capabilities

Set `answer4` to the `security_opt` list with which `unshare -U true` succeeds in a container
that still holds exactly Docker's 14 capabilities.
""",
        r"""
answer4 = None  # a list of strings, docker's --security-opt values
""",
        r"""
def _ex4():
    r = sh("unshare -U true", name="ch10-check", security_opt=answer4)
    kept = capabilities.decode(int(status(name="ch10-check", security_opt=answer4)["CapEff"], 16))
    return r.exit_code == 0 and set(kept) == capabilities.DOCKER_DEFAULT


course.check("exercise 4", _ex4,
             "section 3 ran a container without Docker's seccomp profile: the same option here")
""",
        r"""
answer4 = ["seccomp=unconfined"]
""",
        note=r"""
The refusal came from the seccomp filter: unprivileged processes may create user namespaces
(`user_namespaces(7)`), and Docker's profile denies it unless the container holds `CAP_SYS_ADMIN`.
""",
    ),
]
QUESTIONNAIRE = r"""
1. A container started by root, as Docker starts it, runs as uid 0. Is that the host's uid 0?
   What would change that?
2. Name the five capability sets of a process. Which one is the ceiling that can never be raised
   again?
3. `mount -t tmpfs none /tmp` fails in a default container. Name the two layers that refuse it.
4. `unshare -U true` needs no capability, yet fails in a container. Why? What does
   `Seccomp: 2` in `/proc/self/status` mean?
5. Why is `/proc/sys` made read-only in a container, when the container has its own
   namespaces? Give one setting a container could change on the host otherwise.
6. Inside a container limited to 64 MiB, `cat /sys/fs/cgroup/memory.max` works but
   `echo max > /sys/fs/cgroup/memory.max` does not. What refuses the write, and what stops the
   container from remounting or mounting a new cgroup filesystem?
7. What does `--privileged` give a container, and why is it close to root on the host?
8. Name the programs between `docker run` and your process, and say which of them an OCI runtime
   replaces. What are the five operations of the OCI runtime specification?

<details><summary>Answers</summary>

1. Yes: without a user namespace (Docker's default), uid 0 inside is uid 0 on the host, and the
   kernel checks file permissions as for host root. A user namespace with a real remap (container
   0 → host 100000, `--userns-remap`, or rootless) would make it an unprivileged user outside.
2. Effective, permitted, inheritable, ambient, bounding (`capabilities(7)`). The bounding set:
   a capability dropped from it cannot be regained, even by executing a setuid or file-capability
   program.
3. The missing capability `CAP_SYS_ADMIN` (the kernel's check in `mount(2)`), and the seccomp
   filter, which does not allow the `mount` system call without that capability.
4. The seccomp filter (Docker's default profile) denies `unshare` with namespace flags to a
   container without `CAP_SYS_ADMIN`, answering `EPERM`. `Seccomp: 2` means the process runs
   under a seccomp filter (mode 2, "filter"; 0 is none, 1 strict).
5. There is one kernel: most of `/proc/sys` is global, not per namespace. Writable, a container
   could drop the host's page cache (`vm/drop_caches`), set `kernel/core_pattern` to make the host
   run a program as root, or change networking or memory settings of the whole machine.
6. The view at `/sys/fs/cgroup` is mounted read-only: the write fails with `EROFS` ("Read-only file
   system"). Remounting or mounting needs `CAP_SYS_ADMIN` and the `mount` system call: the
   capability is not held and the seccomp filter refuses the call. The cgroup namespace also makes
   the container's own cgroup the root of what it could see.
7. All capabilities, no seccomp filter, no masked or read-only paths (and in Docker every host
   device). With them it can mount the host's disks, load kernel modules, write `/proc/sys` and
   `/proc/sysrq-trigger`, and change its cgroup limits: the namespaces no longer hold it.
8. `docker` (CLI) → `dockerd` → `containerd` → `containerd-shim-runc-v2` → `runc` → your process;
   the OCI runtime replaces `runc` (crun, youki, pycont-oci…). `create`, `start`, `state`, `kill`,
   `delete`.
</details>
"""
READING = r"""
- [`capabilities(7)`](https://man7.org/linux/man-pages/man7/capabilities.7.html) — the list, the
  five sets, how `execve(2)` transforms them; [`capsh(1)`](https://man7.org/linux/man-pages/man1/capsh.1.html).
- [`seccomp(2)`](https://man7.org/linux/man-pages/man2/seccomp.2.html) and the kernel's
  [Seccomp BPF](https://docs.kernel.org/userspace-api/seccomp_filter.html); libseccomp's
  [`seccomp_rule_add(3)`](https://man7.org/linux/man-pages/man3/seccomp_rule_add.3.html).
- Docker: [Seccomp security profiles](https://docs.docker.com/engine/security/seccomp/),
  [Runtime privilege and Linux capabilities](https://docs.docker.com/engine/containers/run/#runtime-privilege-and-linux-capabilities),
  [Docker security](https://docs.docker.com/engine/security/),
  [Isolate containers with a user namespace](https://docs.docker.com/engine/security/userns-remap/).
- [`proc(5)`](https://man7.org/linux/man-pages/man5/proc.5.html) — `/proc/<pid>/status`,
  `/proc/keys`, `/proc/sys`; [`keyrings(7)`](https://man7.org/linux/man-pages/man7/keyrings.7.html).
- [`cgroup_namespaces(7)`](https://man7.org/linux/man-pages/man7/cgroup_namespaces.7.html).
- OCI: [runtime specification](https://github.com/opencontainers/runtime-spec/blob/main/spec.md)
  — [runtime.md](https://github.com/opencontainers/runtime-spec/blob/main/runtime.md) (state,
  lifecycle, operations), [config.md](https://github.com/opencontainers/runtime-spec/blob/main/config.md);
  [runc](https://github.com/opencontainers/runc), [containerd](https://containerd.io/),
  [podman](https://docs.podman.io/) and [conmon](https://github.com/containers/conmon).
- CVEs that shaped these defaults: CVE-2019-5736 (runc's `/proc/self/exe`), CVE-2022-24769
  (inheritable capabilities), CVE-2024-21626 (a working directory outside the root).
"""
# fmt: on
