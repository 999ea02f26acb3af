"""02 — namespaces, one experiment each."""

# ruff: noqa: E501  (markdown tables and links cannot be wrapped)

from skeleton import exercise

FILE = "02-namespaces.ipynb"

# fmt: off
GOAL = r"""
# 02 · Namespaces: what a process can see

> *"Namespace é um recurso do kernel do Linux que permite isolar processos, redes, sistemas de
> arquivos, entre outros recursos do sistema operacional."*
> — a namespace is a Linux kernel feature that isolates processes, networks, file systems and
> other operating-system resources.

## Goal

A container is a host process (chapter 01) that sees **its own copy** of some global resources.
In this chapter you run one experiment per namespace — PID, NET, IPC, MNT, UTS, USER, CGROUP —
and for each you will:

- compare the container's namespace with the host's, as the kernel shows it in `/proc/<pid>/ns/`;
- see what the container sees, and what it does not;
- share that namespace with the host (`--<ns> host`, as in docker) and see the difference.

At the end you can say, for each namespace, what it isolates and how to check whether two
processes share it.
"""
ALLOWS = r"""
The next cell imports what the chapter uses, removes what an interrupted run of this chapter
left behind (containers named `ch02-…`, a message queue), checks that namespaces are available,
and starts **`ch02-box`**: a container with pycont's default namespaces, which the experiments
look into. Every namespace is private, except, as root, the user namespace: like Docker, pycont
gives a container run by root no user namespace of its own (section USER says why).
"""
NEEDS = ("namespaces",)
SETUP = r"""
import os
import shutil
import socket
import subprocess
import tempfile

import pycont
from pycont import kernel
from pycont.course import Chapter
from pycont.namespaces import Namespace, ns_inode, ns_link

HOSTNAME = socket.gethostname()  # to check later that no experiment renamed the host
QUEUES = []  # the System V message queues the IPC experiment makes on the host


def queue_ids(table):
    # The msqid column of /proc/sysvipc/msg (after its header line).
    return {int(line.split()[1]) for line in table.splitlines()[1:]}


def remove_queues():
    # The IPC experiment's queues, if it stopped half way (ipcrm(1)).
    with open("/proc/sysvipc/msg") as f:
        left = queue_ids(f.read())
    for qid in QUEUES:
        if qid in left:
            subprocess.run(["ipcrm", "-q", str(qid)], check=True)


def sleeper(name, **share):
    # A detached container to look into; share=dict(pid="host", ...) shares namespaces.
    return pycont.run("busybox", ["sleep", "1000"], name=name, detach=True, **share)


def show(ns, pid, label):
    # The namespace of a container's process next to this notebook's (the host's).
    inside, host = ns_link(pid, ns), ns_link("self", ns)
    print(f"{label:<14} {inside}")
    print(f"{'the host':<14} {host}")
    print("→", "same" if inside == host else "different")
"""
LEFTOVERS = "also=remove_queues"
START = r"""
box = sleeper("ch02-box", hostname="box")
print(box.name, "is", box.status)
"""
SECTIONS = [
    ("md", r"""
### How to tell whether two processes share a namespace

`namespaces(7)`: each process has a folder `/proc/<pid>/ns/` with one symbolic link per namespace
type. The link's text names the type and an inode number: **two processes are in the same
namespace exactly when their links show the same inode**. This notebook's kernel runs in the
host's namespaces, so `/proc/self/ns/` stands for the host.
"""),
    ("code", r"""
for ns in Namespace:
    print(f"/proc/self/ns/{ns.procname:<7} -> {ns_link('self', ns)}")
"""),
    ("md", r"""
(The inode numbers change from machine to machine, so the checked outputs show `<INODE>`; look at
the live ones when you run the cell.)

---
## PID — process IDs

> *"PID: Isola processos — `ps aux`"*

A PID namespace gives its processes their own numbering: the first one is PID 1, and they see
only each other.
"""),
    ("code", r"""
show(Namespace.PID, box.pid, "ch02-box")
"""),
    ("code", r"""
%%container --rm --name ch02-pid --hostname pidbox busybox
echo "my PID: $$"
ps -o pid,ppid,comm
echo "(that is every process I can see)"
"""),
    ("md", r"""
Now share the host's PID namespace (`docker run --pid host`):
"""),
    ("code", r"""
shared = sleeper("ch02-pidhost", pid="host", userns="host")
show(Namespace.PID, shared.pid, "ch02-pidhost")
shared.remove(force=True)

script = 'echo $$; tr "\\0" " " < /proc/1/cmdline; echo; ls /proc | grep -c "^[0-9]"'
r = pycont.run("busybox", ["sh", "-c", script], rm=True, name="ch02-pidhost",
               pid="host", userns="host")
my_pid, init_cmd, count = r.output.splitlines()
with open("/proc/1/cmdline", "rb") as f:
    host_init = f.read().replace(b"\0", b" ").decode()
print("my PID is 1:", my_pid == "1")
print("PID 1 is the host's init:", init_cmd == host_init)
print("it sees more than 10 processes:", int(count) > 10)
"""),
    ("md", r"""
**What happened.** `pid_namespaces(7)`: the shell was the first process of a new PID namespace,
so `$$` is 1, and the `proc` filesystem mounted inside the container lists that namespace only —
`ps` reads `/proc`, so it shows two processes. With `pid="host"` the container's processes are
numbered by the host, and its `/proc` lists every process on the machine, the host's init as
PID 1.

Why `userns="host"` too? As root it changes nothing: a container then has no user namespace of
its own anyway (Docker's default, section USER). The rule matters when it has one — with
`userns="private"`, or rootless: `/proc` must be mounted for the PID namespace it shows, and
`user_namespaces(7)` allows that only to a process with `CAP_SYS_ADMIN` in the user namespace
that *owns* that PID namespace; a container's own user namespace does not own the host's. pycont
then binds the host's `/proc` instead of mounting a fresh one. Docker refuses `--pid host` when
user-namespace remapping is on, unless `--userns host`.

---
## NET — network devices, addresses, routes, ports

> *"NET: Isola interfaces de rede — `ip a`"*
"""),
    ("code", r"""
show(Namespace.NET, box.pid, "ch02-box")
"""),
    ("code", r"""
%%container --rm --name ch02-net --hostname netbox --network none busybox
ip addr
ping -c 1 -q 127.0.0.1 > /dev/null && echo "ping 127.0.0.1: ok"
ping -c 1 -W 1 1.1.1.1 2>&1 | tail -n 1
"""),
    ("code", r"""
shared = sleeper("ch02-nethost", network="host")
show(Namespace.NET, shared.pid, "ch02-nethost")
for _ in range(3):  # devices may come and go on a busy host while we look: retry
    before = sorted(os.listdir("/sys/class/net"))
    links = shared.exec(["ip", "-o", "link"]).output
    inside = sorted(line.split(": ")[1].split("@")[0] for line in links.splitlines())
    if inside == before == sorted(os.listdir("/sys/class/net")):
        break
shared.remove(force=True)
print("with network='host', devices inside:", "only lo" if inside == ["lo"] else "more than lo")
print("the same devices as the host's /sys/class/net:", inside == before)
"""),
    ("md", r"""
**What happened.** `network_namespaces(7)`: a network namespace has its own devices, addresses,
routing table, firewall rules and port numbers. A new one holds a single device, the loopback
`lo` (pycont brings it up, as docker's `--network none` does): `127.0.0.1` answers, but there is
no route anywhere else. Docker's default network, and pycont's without `--network none`,
connects the container with a *veth* pair, one end inside and one on a host bridge (`docker0`,
`pycont0`); that is plumbing added after the namespace exists, the subject of chapter 08. With `network="host"` the container uses the host's devices, addresses and ports
directly: a server in it listening on port 80 listens on the host's port 80.

---
## IPC — System V IPC objects and POSIX message queues

> *"IPC: Isola mecanismos de comunicação entre processos"*

Create a System V message queue on the host with `ipcmk` (util-linux). `ipcs` lists such objects
by reading `/proc/sysvipc/` (`proc(5)`); this busybox has no `ipcs`, so the container reads the
file directly.
"""),
    ("code", r"""
out = subprocess.run(["ipcmk", "-Q"], capture_output=True, text=True, check=True).stdout
qid = int(out.rsplit(":", 1)[1])  # "Message queue id: N"
QUEUES.append(qid)  # for the clean-up, should this chapter stop half way

with open("/proc/sysvipc/msg") as f:
    print("the host sees the new queue:", qid in queue_ids(f.read()))
show(Namespace.IPC, box.pid, "ch02-box")
"""),
    ("code", r"""
%%container --rm --name ch02-ipc busybox
echo "the message queues I can see:"
cat /proc/sysvipc/msg
"""),
    ("code", r"""
shared = sleeper("ch02-ipchost", ipc="host")
show(Namespace.IPC, shared.pid, "ch02-ipchost")
table = shared.exec(["cat", "/proc/sysvipc/msg"]).output
shared.remove(force=True)
print("with ipc='host', the container sees the host's queue:", qid in queue_ids(table))

subprocess.run(["ipcrm", "-q", str(qid)], check=True)
with open("/proc/sysvipc/msg") as f:
    print("queue removed from the host:", qid not in queue_ids(f.read()))
"""),
    ("md", r"""
**What happened.** `ipc_namespaces(7)`: System V IPC objects (message queues, semaphore sets,
shared memory segments) are named by numeric keys and ids that are global to a namespace; in a new
IPC namespace the table starts empty, so a container cannot read, or collide with, the host's
queues. POSIX message queues (`mq_overview(7)`, the `mqueue` filesystem on `/dev/mqueue`) are
per IPC namespace too. POSIX shared memory, `/dev/shm`, is just a tmpfs: the mount namespace
decides who shares it (docker's `--ipc host` also shares the host's `/dev/shm`; pycont gives every
container its own).

---
## MNT — the mount table

> *"MNT: Isola sistemas de arquivos"*

A mount namespace has its own list of mounts. `/proc/self/mountinfo` (`proc(5)`) is the mount
table of the namespace of the process that reads it.
"""),
    ("code", r"""
show(Namespace.MNT, box.pid, "ch02-box")
"""),
    ("code", r"""
%%container --rm --name ch02-mnt --hostname mntbox busybox
echo "my mount table (mount point, filesystem type):"
sed -E 's/^([^ ]+ ){4}([^ ]+) .* - ([^ ]+) .*/  \2  \3/' /proc/self/mountinfo
"""),
    ("md", r"""
Mount a tmpfs **inside** a container, then look for it on both sides. `mount(2)` needs the
capability `CAP_SYS_ADMIN`, which a container's root does not hold by default, in pycont as in
Docker (`capabilities(7)`, chapter 10): `ch02-box` is refused. `ch02-mntlab` gets it back with
`cap_add=["SYS_ADMIN"]` (`docker run --cap-add SYS_ADMIN`):
"""),
    ("code", r"""
MOUNT = ("mkdir -p /tmp/scratch && mount -t tmpfs ch02-scratch /tmp/scratch"
         " && grep -c ch02-scratch /proc/self/mountinfo")
r = box.exec(["sh", "-c", MOUNT])
print("in ch02-box (default capabilities):", r.output.strip(), "| exit code", r.exit_code)

lab = sleeper("ch02-mntlab", cap_add=["SYS_ADMIN"])
r = lab.exec(["sh", "-c", MOUNT])
print("in ch02-mntlab: mounted, lines naming it in its mount table:", r.output.strip())
with open("/proc/self/mountinfo") as f:
    print("in the host's mount table:", "ch02-scratch" in f.read())
with open(f"/proc/{lab.pid}/mountinfo") as f:
    print("in /proc/<ch02-mntlab pid>/mountinfo, read from the host:", "ch02-scratch" in f.read())
lab.remove(force=True)
"""),
    ("md", r"""
**What happened.** `mount_namespaces(7)`: the container got a copy of the host's mount table
when it was created; pycont then made every mount *private* (`MS_REC|MS_PRIVATE`, see the
narration in chapter 01) so that nothing mounted on either side propagates to the other, stacked
the image with an overlay, mounted `proc`, `/dev`, `sysfs`, and `pivot_root(2)`ed into it,
detaching the host's root. What is left is the table above: the root, the special filesystems,
at `/sys/fs/cgroup` the container's own cgroup (read-only, chapter 03), then Docker's **masked**
paths (`/proc/keys`, `/sys/firmware`… covered with `/dev/null` or an empty tmpfs) and
**read-only** ones (`/proc/sys`, `/proc/irq`…), which keep the container's root away from the
host's kernel settings (chapter 10). (`/dev/null`, `/proc/keys` and their neighbours say
`devtmpfs`: each is a bind mount of the host's device file, and a bind mount shows the
filesystem it comes from, the host's `/dev`.) The tmpfs mounted inside exists
only in the container's namespace; the host can still *look* at it, through that process's
`/proc/<pid>/mountinfo`. There is no `--mount host` flag, in docker or pycont: a container needs
its own mount namespace for its root filesystem. To share parts of the host's tree, containers
use bind mounts (volumes, chapter 07).

---
## UTS — host name and domain name

> *"UTS: Isola identificadores de host e domínio"*
"""),
    ("code", r"""
show(Namespace.UTS, box.pid, "ch02-box")
"""),
    ("code", r"""
%%container --rm --name ch02-uts --hostname ch02-uts busybox
echo "host name at start: $(hostname)"
hostname renamed-inside || echo "(refused)"
echo "host name now:      $(hostname)"
"""),
    ("md", r"""
Refused: `sethostname(2)` needs `CAP_SYS_ADMIN`, which the container's root lacks, as in the MNT
experiment. Give it back (`--cap-add SYS_ADMIN`) and rename the container's **own** UTS
namespace:
"""),
    ("code", r"""
%%container --rm --name ch02-uts --hostname ch02-uts --cap-add SYS_ADMIN busybox
hostname renamed-inside
echo "host name now: $(hostname)"
"""),
    ("code", r"""
print("the host's name is unchanged:", socket.gethostname() == HOSTNAME)
r = pycont.run("busybox", ["hostname"], rm=True, name="ch02-utshost", uts="host")
print("with uts='host', the container's hostname is the host's:", r.output.strip() == HOSTNAME)
"""),
    ("md", r"""
Sharing the host's UTS namespace, can a default container's root **rename the host**? It is
safe to try: it will be refused. The guard below makes sure of it first, reading the container's
effective capabilities (`CapEff` in `/proc/<pid>/status`, a bit mask, `proc(5)`): it tries only
if bit 21, `CAP_SYS_ADMIN` (`<linux/capability.h>`), is off.
"""),
    ("code", r"""
CAP_SYS_ADMIN = 21  # capabilities(7); its bit in the CapEff mask


def cap_eff(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("CapEff:")).split()[1], 16)


shared = sleeper("ch02-utshost", uts="host")
if not cap_eff(shared.pid) & (1 << CAP_SYS_ADMIN):
    r = shared.exec(["hostname", "renamed-by-container"])
    print(r.output.strip(), "| exit code", r.exit_code)
else:
    print("skipped: this container holds CAP_SYS_ADMIN, it could rename the host")
shared.remove(force=True)
print("the host's name is unchanged:", socket.gethostname() == HOSTNAME)
"""),
    ("md", r"""
**What happened.** `uts_namespaces(7)`: the host name and NIS domain name (what `uname(2)`
returns) are per UTS namespace, so `sethostname(2)` inside changed only the container's. pycont
sets it to `--hostname`, or to the container's short id, as docker does (it sets it before it
drops the capabilities). With `uts="host"` the container reads the host's name; it could not
change it, although it runs as root, because `sethostname(2)` needs `CAP_SYS_ADMIN`
(`capabilities(7)`), one of the capabilities pycont, like Docker, takes from a container's root:
what keeps a container in is chapter 10's subject. That is also why `--cap-add SYS_ADMIN` and
`--uts host` must never meet: that container could rename the host. In a container with a user
namespace of its own (rootless, below), `CAP_SYS_ADMIN` would not be enough either: it must be
held **in the user namespace that owns the UTS namespace** (`user_namespaces(7)`), the host's
initial one. Which brings us to the user namespace.

---
## USER — user and group IDs, and capabilities

> *"USER: Isola usuários"*
"""),
    ("code", r"""
show(Namespace.USER, box.pid, "ch02-box")
"""),
    ("code", r"""
%%container --rm --name ch02-user busybox
id
echo "uid_map (inside, outside, count):"
cat /proc/self/uid_map
"""),
    ("code", r"""
with open("/proc/self/uid_map") as f:
    print("the host's uid_map:", " ".join(f.read().split()))
"""),
    ("md", r"""
**What happened.** `user_namespaces(7)`: a user namespace maps user and group IDs inside it to IDs
outside it; `/proc/<pid>/uid_map` lists the ranges as *first ID inside, first ID outside,
count*. The container's map is the host's own, `0 0 4294967295` (every ID to itself), because,
run as root, the container **has no user namespace of its own**: the inodes above are the same.
That is Docker's default too. Its root is uid 0 of the host, and the kernel checks its file
permissions as the host root's. What holds it in is what the MNT and UTS experiments ran into:
its **capabilities** (14 kept, `CAP_SYS_ADMIN` not among them), a **seccomp** filter on its
system calls and **masked paths** in `/proc` and `/sys` — chapter 10 shows each one.

### `userns="private"` as root: a new namespace that maps every ID to itself

A user namespace can be asked for (`userns="private"`). As root, pycont then writes the
**identity map** `0 0 4294967295`: the namespace is new, but every ID inside is the same ID
outside. Does that protect the host's files? The next cell gives such a container a host folder
holding a file only root may read (mode `0600`), and has it create a file of its own:
"""),
    ("code", r"""
def identity_mapped():
    # A userns="private" container given a root-only host file; what it reads and makes.
    lab = tempfile.mkdtemp(prefix="pycont-ch02-")
    try:
        with open(os.path.join(lab, "secret.txt"), "w") as f:
            f.write("the host root's secret\n")
        os.chmod(os.path.join(lab, "secret.txt"), 0o600)  # owner root; nobody else may read it
        script = ("readlink /proc/self/ns/user; cat /proc/self/uid_map; cat /lab/secret.txt; "
                  "touch /root/made-inside")
        c = pycont.run("busybox", ["sh", "-c", script], name="ch02-userns", userns="private",
                       volumes=[f"{lab}:/lab"])
        link, uid_map, secret = c.output.splitlines()
        print("a user namespace of its own:", link != ns_link("self", Namespace.USER))
        print("uid_map inside:", " ".join(uid_map.split()))
        print("it read the root-only host file:", secret)
        upper = c.inspect()["GraphDriver"]["Data"]["UpperDir"]
        print("the file it made belongs, on the host, to uid",
              os.stat(f"{upper}/root/made-inside").st_uid)
        c.remove()
    finally:
        shutil.rmtree(lab)


if os.geteuid() == 0:
    identity_mapped()
else:
    print("skipped: rootless, every container has a user namespace with the map of the next cell")
"""),
    ("md", r"""
**What happened.** `user_namespaces(7)`, `capabilities(7)`: a capability held in a user namespace
lets its holder bypass file permission checks (`CAP_DAC_OVERRIDE`) on every file whose owner and
group are **mapped** in that namespace. With the identity map every ID is mapped, so the
container's root reads and owns the host's files exactly as host root does: this namespace
isolates nothing for file permissions. (It is in pycont to show that; Docker does not offer it.)
Protection needs a map where root inside is **somebody else** outside: Docker's
`--userns-remap` maps the container's IDs onto a subordinate range of `/etc/subuid` (root inside
is uid 100000 outside, say), and a rootless runtime maps root onto the user who runs it.

### Rootless: root inside, an ordinary user outside

Without root, the kernel lets a user create a user namespace and map **one** ID: its own. The map
is then `0 1000 1`: root (0) inside is uid 1000 outside. The next cell runs pycont **as uid
1000** (with `setpriv(1)`), starts a container that creates a file, and looks at the file's owner
from the host.
"""),
    ("code", r"""
import pathlib
import textwrap

ROOTLESS = textwrap.dedent('''
    import os, pycont
    c = pycont.run("busybox", ["sh", "-c", "id; cat /proc/self/uid_map; touch /root/made-inside"],
                   name="ch02-rootless", hostname="rootless")
    who, uid_map = c.output.splitlines()
    print("inside        :", who)
    print("uid_map inside:", " ".join(uid_map.split()))
    upper = c.inspect()["GraphDriver"]["Data"]["UpperDir"]
    st = os.stat(os.path.join(upper, "root", "made-inside"))
    print("the file's owner on the host: uid", st.st_uid)
    c.remove()
''')


def readable_copy(pkg):
    # uid 1000 may not read this notebook's interpreter and its packages (root's), so it runs a
    # copy: pycont and the one module a container's start needs (pyseccomp) side by side, as a
    # pip install would put them, where pycont's helpers (python -I -S) find them.
    import pyseccomp

    shutil.copytree(pathlib.Path(pycont.__file__).parent, os.path.join(pkg, "pycont"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(pyseccomp.__file__, pkg)


def run_as_uid_1000():
    # pycont as uid 1000, with its own store in a temporary folder; None if impossible here.
    if shutil.which("setpriv") is None:
        return None, "setpriv(1) is not installed"
    lab = tempfile.mkdtemp(prefix="pycont-ch02-")
    os.chmod(lab, 0o755)
    store, pkg = os.path.join(lab, "store"), os.path.join(lab, "pkg")
    os.mkdir(store)
    os.chown(store, 1000, 1000)
    env = {"PATH": "/usr/bin:/bin", "HOME": store, "PYCONT_ROOT": store, "PYTHONPATH": pkg}
    why = "no Python interpreter that uid 1000 may run"
    try:
        readable_copy(pkg)
        for python in (os.path.realpath(shutil.which("python3") or "/usr/bin/python3"),
                       "/usr/bin/python3"):
            r = subprocess.run(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups",
                                python, "-c", ROOTLESS], capture_output=True, text=True, env=env)
            if r.returncode == 0:
                return r.stdout, ""
            why = (r.stderr.strip().splitlines() or ["?"])[-1]
    finally:
        shutil.rmtree(lab, ignore_errors=True)
    return None, why


if os.geteuid() == 0:
    out, why = run_as_uid_1000()
    print(out.rstrip() if out else f"skipped: {why}")
else:
    print("skipped: run this notebook as root to try uid 1000")
"""),
    ("md", r"""
**What happened.** As uid 1000, pycont wrote `deny` to `/proc/<pid>/setgroups` and the one-line
maps `0 1000 1` (`user_namespaces(7)` requires both from an unprivileged writer). Inside, `id`
says root; on the host, the file it created belongs to uid 1000. This is how rootless podman and
rootless docker work, and why a breakout from such a container lands as an ordinary user.
(Rootless runtimes usually map more IDs with `newuidmap(1)` and `/etc/subuid`.) Of the three
maps of this section, this one is the only one that protects the host: a breakout from the
default container, or from the identity-mapped one, lands as the host's root.

---
## CGROUP — the root of the cgroup tree it sees

`/proc/<pid>/cgroup` (`cgroups(7)`) names the cgroup a process belongs to, one line per hierarchy
(cgroup v1) or a single `0::` line (v2), as a path from the root of the tree. Chapter 03 is about
what cgroups limit; here we only look at the *names*.
"""),
    ("code", r"""
show(Namespace.CGROUP, box.pid, "ch02-box")
"""),
    ("code", r"""
%%container --rm --name ch02-cg busybox
echo "the cgroup paths I see:"
cut -d: -f3 /proc/self/cgroup | sort -u
"""),
    ("code", r"""
def paths(text):
    return {line.split(":", 2)[2] for line in text.splitlines()}


for name, share in (("ch02-cg", {}), ("ch02-cghost", {"cgroupns": "host"})):
    c = sleeper(name, **share)
    inside = paths(c.exec(["cat", "/proc/1/cgroup"]).output)
    with open(f"/proc/{c.pid}/cgroup") as f:
        outside = paths(f.read())
    c.remove(force=True)
    print(f"{name}: inside, only '/': {inside == {'/'}};",
          f"inside and the host's view of the same process agree: {inside == outside}")
"""),
    ("md", r"""
**What happened.** `cgroup_namespaces(7)`: a cgroup namespace virtualises the view of
`/proc/<pid>/cgroup` and of cgroup mounts: the cgroup the process was in when the namespace was
created becomes the root, `/`. The container cannot learn where it sits in the host's tree (which
often encodes the host's layout), and software that manages cgroups inside it sees a tree of its
own. The host, reading the same process's `/proc/<pid>/cgroup`, sees the real path. That is why a
runtime creates the cgroup namespace only after it has moved the process into the container's
cgroup (chapter 03).
With `cgroupns="host"` both views agree.

---
## Summary: the seven namespaces

The table is built from `pycont.namespaces.Namespace`; the *ch02-box* column is measured now,
comparing `/proc/<pid>/ns/*` inodes.
"""),
    ("code", r"""
from IPython.display import Markdown

FLAG = {value: name for name, value in vars(kernel).items() if name.startswith("CLONE_NEW")}
SHARE = {"user": '`userns="host"` (as root: the default)', "mnt": "never", "uts": '`uts="host"`',
         "ipc": '`ipc="host"`', "net": '`network="host"`', "pid": '`pid="host"`',
         "cgroup": '`cgroupns="host"`'}
rows = ["| namespace | /proc/PID/ns/ | clone flag | isolates | ch02-box vs host | to share |",
        "|---|---|---|---|---|---|"]
for ns in Namespace:
    verdict = "same" if ns_inode(box.pid, ns) == ns_inode("self", ns) else "different"
    rows.append(f"| {ns.name} | `{ns.procname}` | `{FLAG[ns.flag]}` | {ns.isolates} | {verdict} "
                f"| {SHARE[ns.procname]} |")
Markdown("\n".join(rows))
"""),
    ("md", r"""
And a container that shares **everything it can** with the host:
"""),
    ("code", r"""
c = sleeper("ch02-shared", pid="host", network="host", ipc="host", uts="host", userns="host",
            cgroupns="host")
for ns in Namespace:
    same = ns_inode(c.pid, ns) == ns_inode("self", ns)
    print(f"{ns.procname:<7} {'same' if same else 'different'}")
c.remove(force=True)
"""),
    ("md", r"""
Only the mount namespace is left: such a "container" is little more than a process with another
root directory. Isolation is the sum of the namespaces you do not share.

(Linux has an eighth namespace, **time** (`time_namespaces(7)`, Linux 5.6), which offsets the
monotonic and boot-time clocks, for checkpoint/restore; container runtimes leave it shared by
default, and so does pycont. `lsns` below lists it.)

The system tools agree; `lsns(8)` lists the namespaces of a process (numbers vary):
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
!lsns -p {box.pid}
"""),
]
EXERCISES = [
    exercise(
        r"""
### Exercise 1 — a namespace's number

What is the inode number of `ch02-box`'s **network** namespace? (An `int`; find it without
`ns_inode`.)
""",
        r"""
answer1 = None  # an int
""",
        r"""
course.check("exercise 1", lambda: answer1 == ns_inode(box.pid, Namespace.NET),
             "os.readlink(f'/proc/{box.pid}/ns/net') shows it in brackets; os.stat(...).st_ino too")
""",
        r"""
answer1 = os.stat(f"/proc/{box.pid}/ns/net").st_ino
# or: int(os.readlink(f"/proc/{box.pid}/ns/net").split("[")[1].rstrip("]"))
""",
    ),
    exercise(
        r"""
### Exercise 2 — share exactly two

Start a detached container named **`ch02-ex2`** (busybox, `sleep 1000`) that shares the UTS and
IPC namespaces with the host, and no other besides those a default container shares (as root,
the user namespace: compare the *ch02-box* column of the summary table).
""",
        r"""
# your code here
""",
        r"""
def _shared_by_ex2():
    try:
        c = pycont.get("ch02-ex2")
    except pycont.ContainerNotFound:
        return None
    return {ns.procname for ns in Namespace if ns_inode(c.pid, ns) == ns_inode("self", ns)}


DEFAULT_SHARED = {ns.procname for ns in Namespace if ns_inode(box.pid, ns) == ns_inode("self", ns)}
course.check("exercise 2", lambda: _shared_by_ex2() == DEFAULT_SHARED | {"uts", "ipc"},
             "pycont.run('busybox', ['sleep', '1000'], name='ch02-ex2', detach=True, ...) with the "
             "two options of the summary table; remove a wrong try with pycont.get('ch02-ex2')"
             ".remove(force=True)")
""",
        r"""
pycont.run("busybox", ["sleep", "1000"], name="ch02-ex2", detach=True, uts="host", ipc="host")
""",
    ),
    exercise(
        r"""
### Exercise 3 — the rootless map

User 1000 starts a rootless container. What does `/proc/self/uid_map` say inside it? Write the
three numbers separated by single spaces.
""",
        r"""
answer3 = None  # a string like "0 0 4294967295"
""",
        r"""
course.check("exercise 3", lambda: " ".join(str(answer3).split()) == "0 1000 1",
             "inside ID first, then the ID outside, then how many: who is root inside, and who is it "
             "on the host?")
""",
        r"""
answer3 = "0 1000 1"
""",
        note=r"""
One ID, root (0) inside, mapped to uid 1000 outside.
""",
    ),
    exercise(
        r"""
### Exercise 4 — the one you cannot share

Which of the seven namespaces does a container never share with the host, in pycont as in
docker? Give its name as in `/proc/<pid>/ns/`.
""",
        r"""
answer4 = None  # e.g. "net"
""",
        r"""
course.check("exercise 4", lambda: answer4 == "mnt",
             "look at the 'to share' column of the summary table, and at the ch02-shared experiment")
""",
        r"""
answer4 = "mnt"
""",
        note=r"""
The container's root filesystem is a mount (the overlay) made the root with
`pivot_root(2)`, which has to happen in a mount namespace of its own.
""",
    ),
]
CLEANUP = r"""
print("the host's name is unchanged:", socket.gethostname() == HOSTNAME)
"""
QUESTIONNAIRE = r"""
1. How can you tell, from the host, whether two processes are in the same network namespace?
2. Why does `echo $$` print 1 in a container, and why does `ps` there show so few processes?
3. What does a brand-new network namespace contain? What must be added for the container to
   reach the Internet?
4. A tmpfs mounted inside a container does not appear in the host's mount table. Which two things
   make sure of that?
5. With `uts="host"`, the container's root could not rename the host. Why not? What must never
   be combined with `uts="host"`?
6. What does the uid map `0 1000 1` mean, and who owns, on the host, a file that this
   container's root creates?
7. What does a process inside a cgroup namespace see in `/proc/self/cgroup`, and why is that
   useful?
8. When does `pid="host"` need `userns="host"`, and why does it change nothing as root?
9. Run as root, a pycont or Docker container has no user namespace of its own. Who is its root on
   the host, and what holds it in instead?
10. `userns="private"` as root gives the container a new user namespace with the map
    `0 0 4294967295`. Why does that protect none of the host's files, and what map would?

<details><summary>Answers</summary>

1. Compare `readlink /proc/<pid1>/ns/net` with `readlink /proc/<pid2>/ns/net` (or their inode
   numbers, `stat -L`): the same inode means the same namespace (`namespaces(7)`).
2. The shell is the first process of a new PID namespace, so it is PID 1; `ps` reads `/proc`, and
   the container's `/proc` is mounted for its own PID namespace, which holds only its processes
   (`pid_namespaces(7)`).
3. Only a loopback device, `lo` (down, until someone brings it up); no other device, no route. A
   runtime adds a veth pair with one end in the namespace, an address, a default route, and on
   the host a bridge plus NAT (`network_namespaces(7)`, `veth(4)`).
4. The container has its own mount namespace, and pycont made all mounts private
   (`MS_REC|MS_PRIVATE`) so that no mount event propagates between the namespaces
   (`mount_namespaces(7)`).
5. `sethostname(2)` needs `CAP_SYS_ADMIN` (`capabilities(7)`), and a container's root does not
   hold it: pycont, like Docker, keeps 14 capabilities, `CAP_SYS_ADMIN` not among them (chapter
   10). Never give `--cap-add SYS_ADMIN` (or `--privileged`) to a container with `--uts host`: it
   could rename the host. (With a user namespace of its own, rootless, the capability would also
   have to be held in the user namespace that owns the host's UTS namespace, the initial one,
   `user_namespaces(7)`.)
6. One ID is mapped: uid 0 inside is uid 1000 outside. Files created by the container's root are
   owned by uid 1000 on the host.
7. Its own cgroup appears as `/`: the host's cgroup layout is hidden, and tools inside manage a
   tree rooted at the container (`cgroup_namespaces(7)`).
8. When the container has a user namespace of its own (`userns="private"`, or rootless): it must
   mount a `/proc` for the PID namespace it shares, and mounting proc requires `CAP_SYS_ADMIN` in
   the user namespace that owns that PID namespace — the host's, not the container's own
   (`user_namespaces(7)`; pycont then binds the host's `/proc` instead, Docker refuses). As root
   a container has no user namespace of its own anyway: `userns="host"` is the default.
9. The host's root, uid 0 (its `uid_map` is the host's own). It is held in by its capabilities
   (Docker's 14, no `CAP_SYS_ADMIN`: no mount, no `sethostname`), a seccomp filter on its system
   calls, and masked or read-only paths in `/proc` and `/sys` (chapter 10).
10. Every ID inside is the same ID outside, so every file's owner is mapped, and the container's
    root bypasses file permission checks on all of them, as host root does (`user_namespaces(7)`,
    `capabilities(7)`). A map that makes root inside an unprivileged ID outside protects: the
    rootless `0 1000 1`, or Docker's `--userns-remap` onto a subordinate range of `/etc/subuid`.
</details>
"""
READING = r"""
- [`namespaces(7)`](https://man7.org/linux/man-pages/man7/namespaces.7.html) — the overview, the
  `/proc/<pid>/ns/` links, `clone(2)`/`unshare(2)`/`setns(2)`.
- One page per namespace:
  [`pid_namespaces(7)`](https://man7.org/linux/man-pages/man7/pid_namespaces.7.html),
  [`network_namespaces(7)`](https://man7.org/linux/man-pages/man7/network_namespaces.7.html),
  [`ipc_namespaces(7)`](https://man7.org/linux/man-pages/man7/ipc_namespaces.7.html),
  [`mount_namespaces(7)`](https://man7.org/linux/man-pages/man7/mount_namespaces.7.html),
  [`uts_namespaces(7)`](https://man7.org/linux/man-pages/man7/uts_namespaces.7.html),
  [`user_namespaces(7)`](https://man7.org/linux/man-pages/man7/user_namespaces.7.html),
  [`cgroup_namespaces(7)`](https://man7.org/linux/man-pages/man7/cgroup_namespaces.7.html).
- [`capabilities(7)`](https://man7.org/linux/man-pages/man7/capabilities.7.html) — `CAP_SYS_ADMIN`
  and the others; chapter 10 shows which ones a container keeps.
- [`proc(5)`](https://man7.org/linux/man-pages/man5/proc.5.html) — `/proc/<pid>/mountinfo`,
  `uid_map`, `cgroup`, `/proc/sysvipc/`.
- Tools to cross-check: [`lsns(8)`](https://man7.org/linux/man-pages/man8/lsns.8.html),
  [`nsenter(1)`](https://man7.org/linux/man-pages/man1/nsenter.1.html),
  [`unshare(1)`](https://man7.org/linux/man-pages/man1/unshare.1.html).
- Kernel documentation: [Namespaces](https://docs.kernel.org/admin-guide/namespaces/index.html),
  [Shared subtrees](https://docs.kernel.org/filesystems/sharedsubtree.html).
- Michael Kerrisk, [Namespaces in operation](https://lwn.net/Articles/531114/) (LWN series).
"""
# fmt: on
