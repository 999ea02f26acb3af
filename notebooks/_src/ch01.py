"""01 — a container is a process on the host."""

# ruff: noqa: E501  (markdown tables and links cannot be wrapped)

from skeleton import exercise

FILE = "01-containers-are-processes.ipynb"

# fmt: off
GOAL = r"""
# 01 · A container is a process on the host

> *"Cada processo dentro de um container é um processo do sistema operacional host e dentro do
> container eu posso ter N processos rodando de maneira isolada."*
> — every process in a container is a process of the host operating system, and inside the
> container I can have N processes running in isolation.

## Goal

At the end of this chapter you will have:

- started a container in the background and **found its process on the host**, with its command
  line and its parent, the pycont *shim*;
- seen that this process has **two PIDs**: one for the host, and `1` inside the container;
- compared `ps` **inside** the container with the **host's** view of it, with several processes;
- seen that **when the main process ends, the container ends** — and that PID 1 cannot even be
  killed from inside;
- seen that **data not kept in a volume is lost** with the container;
- read the exact **system calls** pycont makes to start a container.
"""
ALLOWS = r"""
This chapter needs namespaces: pycont must run as root, or rootless with user namespaces
(see the [index](00-index.ipynb#What-this-machine-allows)). The next cell imports what the chapter
uses (`cmdline` and `ppid` read a process's `/proc/<pid>/cmdline` and `/proc/<pid>/stat`), removes
the containers an interrupted run of this chapter left behind (their names start with `ch01-`),
and says whether this machine allows the experiments.
"""
NEEDS = ("namespaces",)
SETUP = r"""
import os
import signal
import time

import pycont
from pycont.course import Chapter
from pycont.namespaces import nspid
from pycont.procfs import cmdline, ppid  # /proc/<pid>/cmdline, and field 4 of /proc/<pid>/stat
"""
SECTIONS = [
    ("md", r"""
## 1. Start a container, find its process

`detach=True` is `docker run -d`: the call returns as soon as the container runs. The command,
`sleep 1000`, becomes the container's main process.
"""),
    ("code", r"""
c = pycont.run("busybox", ["sleep", "1000"], name="ch01-sleeper", hostname="sleeper",
               detach=True)
print(c.name, "is", c.status)
print("its main process, as the host numbers it: pid", c.pid)
"""),
    ("md", r"""
`c.pid` is a host PID. Look the process up in the **host's** `/proc`, as any tool would:
"""),
    ("code", r"""
pid = c.pid
print("a folder in the host's /proc:", str(pid) in os.listdir("/proc"))
print("/proc/PID/cmdline :", cmdline(pid))
print("/proc/PID/exe     :", os.readlink(f"/proc/{pid}/exe"))
with open(f"/proc/{pid}/comm") as f:
    print("/proc/PID/comm    :", f.read().strip())
"""),
    ("md", r"""
And with the host's own `ps` (the numbers change on every run):
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
!ps -o pid,ppid,user,args -p {pid}
"""),
    ("md", r"""
**What happened.** The "container" is a plain host process running busybox's `sleep`. The host
kernel schedules it, `ps` lists it, `/proc/<pid>/` describes it (`proc(5)`) like any other
process. Its executable, `/bin/busybox`, comes from the image: the path is the one the
container sees, because the process has its own root directory (chapter 04). Nothing here is a
virtual machine: there is no second kernel.
"""),
    ("md", r"""
## 2. Its parent: the shim

Who started it? Walk up the parent chain, from the container's process to this notebook.
"""),
    ("code", r"""
shim = c.state().shim_pid  # the helper pycont recorded as this container's shim
p = c.pid
while True:
    if p == c.pid:
        who = f"the container's main process: {cmdline(p)}"
    elif p == shim:
        who = "the pycont shim: it clone()d the container and waits for it"
    elif p == os.getpid():
        who = "this notebook's kernel"
    elif "/pycont/runtime/" in cmdline(p):  # a helper process of pycont
        who = "pycont's fork server: it forks one shim per container"
    else:
        who = cmdline(p)[:60]
    print(f"pid {p}  {who}")
    if p in (1, os.getpid()):
        break
    p = ppid(p)
print("the container's parent is its shim:", ppid(c.pid) == shim)
"""),
    ("md", r"""
**What happened.** pycont never makes a container out of a fork of this notebook's kernel (a
multi-threaded process is not safe to fork). It starts a small single-threaded helper once, the
fork server, which forks one **shim** per container. The shim calls `clone(2)` with the
`CLONE_NEW*` flags: the child is born in new namespaces and `exec`s your command. The shim stays as its parent
to `wait(2)` for it and record its exit code — the job `containerd-shim` does for docker and
`conmon` for podman. (A container started detached, like this one, keeps less: once its
command runs, the shim `execve(2)`s `pycont-mon`, a small C program. Same process, so still the
parent; a few hundred KiB instead of a whole Python. Kill it and the container runs on: the
next pycont command adopts it.) In docker's picture:

```
host OS
└── container engine (here: pycont's fork server, started by this notebook)
    └── shim
        └── container's main process   ← PID 1 inside
            ├── process 2              ← more processes of the same container
            └── process N
```
"""),
    ("md", r"""
## 3. One process, two PIDs

The kernel gives a process one PID in **each** PID namespace it belongs to, from its own up to
the host's. `/proc/<pid>/status` lists them all on its `NSpid` line (`proc(5)`).
"""),
    ("code", r"""
numbers = nspid(c.pid)
print("host pid", numbers[0], "→ pid", numbers[-1], "inside the container")
with open(f"/proc/{c.pid}/status") as f:
    print("the host reads   :", next(line for line in f if line.startswith("NSpid")).strip())
print("the container reads:", c.exec(["grep", "NSpid", "/proc/1/status"]).output.strip())
"""),
    ("md", r"""
**What happened.** `pid_namespaces(7)`: PID namespaces nest. The container's process was created
in a new, child PID namespace, where it is the first process, PID 1; the host, in the parent
namespace, numbers it like any other process. A process sees the PIDs of its own namespace and of
the namespaces below it, never above: the container's `/proc` (mounted from inside its
namespace) shows one number, the host's shows both.
"""),
    ("md", r"""
## 4. `ps` inside and outside

`c.exec` is `docker exec`: it runs a second command in the running container's namespaces.
"""),
    ("code", r"""
print(c.exec(["ps", "-o", "pid,ppid,args"]).output)
"""),
    ("code", r"""
# c.processes() scans the host's /proc for the processes in the container's PID namespace
for proc in c.processes():
    print(f"host pid {proc['pid']} = pid {proc['nspid']} inside: {proc['cmd']}")
host_count = sum(name.isdigit() for name in os.listdir("/proc"))
print("the host has more processes than the container:", host_count > len(c.processes()))
"""),
    ("md", r"""
**What happened.** Inside, `ps` reads the container's own `/proc`, a `proc` filesystem mounted in
the container's PID namespace: it lists only the container's processes, with their inner PIDs.
`ps` itself is there too (PID 3: the `grep` above was PID 2) and its parent is shown as `0`:
it was started by pycont's exec helper, which lives **outside** the namespace, so it has no
number inside. From the host, `c.processes()` (the CLI's `pycont top`) scans the host's `/proc`
and keeps the processes whose `/proc/<pid>/ns/pid` is the container's: the same processes, with
host PIDs.
"""),
    ("md", r"""
## 5. N processes in one container

Start a second long-running process in the same container, in the background (`docker exec -d`),
and look again from both sides.
"""),
    ("code", r"""
bg = c.exec(["sleep", "500"], wait=False)
for proc in c.processes():
    print(f"host pid {proc['pid']} = pid {proc['nspid']} inside: {proc['cmd']}")
print("the second process's host parent is pycont's exec helper:",
      ppid(c.processes()[-1]["pid"]) == bg.pid)
"""),
    ("code", r"""
print(c.exec(["ps", "-o", "pid,ppid,args"]).output)
"""),
    ("md", r"""
**What happened.** Both `sleep`s are host processes, both in the container's namespaces: a
container is a *group* of processes that share namespaces (and, chapter 03, a cgroup), not one
process. `exec` joined the container's namespaces with `setns(2)` and forked, so the new process
got the next free PID inside (4).
"""),
    ("md", r"""
## 6. The main process ends → the container ends

> *"Se o processo principal do container for finalizado, o container é finalizado."*
> — if the container's main process ends, the container ends.

First, try to kill PID 1 **from inside** the container, with the signal that cannot be caught:
"""),
    ("code", r"""
r = c.exec(["kill", "-KILL", "1"])
print("kill -KILL 1, from inside: exit code", r.exit_code)
time.sleep(0.2)
print("container status:", c.status)
"""),
    ("md", r"""
Nothing happened, and `kill` even reports success: exit code 0. `pid_namespaces(7)`: *"Only
signals for which the "init" process has established a signal handler can be sent to the "init"
process by other members of the PID namespace"* — **even SIGKILL**. `sleep` installs no handler,
so the kernel discards the signal instead of delivering it; that is not an error, so `kill(2)`
returns 0 and busybox's `kill` exits with 0. Only from an ancestor namespace are SIGKILL and
SIGSTOP forced. So send the same signal to the same process, from the host:
"""),
    ("code", r"""
os.kill(c.pid, signal.SIGKILL)
print("exit code:", c.wait(timeout=10))
print("container status:", c.status)
print("the exec'd sleep 500 ended too, exit code:", bg.wait(timeout=10))
"""),
    ("md", r"""
**What happened.** The shim saw its child die (`wait(2)`) and recorded the container as *exited*
with code **137 = 128 + 9**: killed by signal 9, SIGKILL, the shell's convention that docker
follows. And the second `sleep`, which nobody killed, died too: `pid_namespaces(7)`, *"If the
"init" process of a PID namespace terminates, the kernel terminates all of the processes in the
namespace via a SIGKILL signal."* The container is its main process.

When the main process ends by itself, its exit code becomes the container's:
"""),
    ("code", r"""
e = pycont.run("busybox", ["sh", "-c", "sleep 1; exit 3"], name="ch01-exit3", detach=True)
print("status:", e.status)
print("wait() →", e.wait(timeout=10))
print("status:", e.status, "| exit code:", e.exit_code)
"""),
    ("code", r"""
state = e.inspect()["State"]  # docker inspect's fields; CLI: pycont inspect ch01-exit3
print({key: state[key] for key in ("Status", "Running", "ExitCode")})
"""),
    ("code", r"""
for name in ("ch01-sleeper", "ch01-exit3"):
    pycont.get(name).remove()
print("removed: ch01-sleeper, ch01-exit3")
"""),
    ("md", r"""
## 7. Data not in a volume is lost

> *"…perdendo o estado ou dados que não foram persistidos em um volume de container."*
> — losing the state or data that was not persisted in a container volume.

A container writes into its own **read/write layer**, on top of the image's read-only layers.
Write a file in one container, then look for it from a second container of the same image.
"""),
    ("code", r"""
w = pycont.run("busybox", ["sh", "-c", "echo precious > /root/data.txt && cat /root/data.txt"],
               name="ch01-writer")
print("the writer printed:", w.output.strip(), "| exit code", w.exit_code)
upper = w.inspect()["GraphDriver"]["Data"]["UpperDir"]
print("on the host, in the writer's read/write layer:", os.listdir(os.path.join(upper, "root")))
"""),
    ("code", r"""
r = pycont.run("busybox", ["cat", "/root/data.txt"], rm=True, name="ch01-reader")
print("a new container of the same image:", r.output.strip(), "| exit code", r.exit_code)
"""),
    ("code", r"""
w.remove()
print("after removing the writer, its read/write layer exists:", os.path.exists(upper))
"""),
    ("md", r"""
**What happened.** The file lived only in the writer's read/write layer (the overlay's
`upperdir`, a folder on the host). Every container of an image starts from the same read-only
layers with an **empty** read/write layer of its own, so the reader could not see it; and removing
the writer deleted its layer, and the file with it. The image never changed. To keep data beyond
a container's life, put it in a **volume** — chapter 07. How the layers are stacked is chapter 04.
"""),
    ("md", r"""
## 8. Behind the scenes: the system calls of one run

`--narrate` makes pycont print each cgroup, namespace and mount system call it makes to start the
container, strace-style, with its result (`= 0` is success). `$ID`, `$CONTAINER` and `$IMAGE`
stand for the container's id, its folder and the image's layer on the host.
"""),
    ("code-ignore-output", r"""
%%container --rm --narrate --name ch01-narrate --hostname narrated busybox
echo "hello from $(hostname), PID $$"
"""),
    ("md", r"""
The same narration, captured in Python, with the host PID that `clone` returns, which changes on
every run, replaced by `<host pid>`. The steps on the cgroup folder all containers share
(`/sys/fs/cgroup/<controller>/pycont`, made and set up by whichever container needs it first)
are left out: they appear in one run and not in the next.
"""),
    ("code", r"""
import re

lines = []
pycont.run("busybox", ["true"], rm=True, name="ch01-narrate", hostname="narrated",
           network="none", narrate=lines.append)  # chapter 08 narrates the network's plumbing
clone = next(line for line in lines if re.match(r"clone3?\(.*= \d+$", line))
host_pid = clone.rsplit("= ", 1)[1]  # clone(...) returns the child's host pid
shared = re.compile(r'/pycont("|/cpuset\.)')  # the parent folder all containers share
for line in lines:
    if not shared.search(line):
        print(re.sub(rf"\b{host_pid}\b", "<host pid>", line))
"""),
    ("md", r"""
**How to read it**, in order (the man page of each call tells the rest):

1. `mkdir("/sys/fs/cgroup/…/pycont/<id>")` — `cgroups(7)`: the container's cgroup, one folder
   per controller on this cgroup v1 machine (a single folder on v2), and the `cpuset.cpus` and
   `cpuset.mems` writes a new v1 cpuset folder needs before it can hold a process (chapter 03).
   Limits, had `run` been given any (`memory="64m"`), would be written here too.
2. `clone(CLONE_NEWNS|CLONE_NEWUTS|…)` — `clone(2)`: the shim creates the container's first
   process directly in five new namespaces (chapter 02); run by root, as here, not in a user
   namespace: like Docker, pycont then gives none. It returns the child's host PID. On cgroup
   v2, pycont calls `clone3(2)` with `CLONE_INTO_CGROUP` instead: the child is born in its
   cgroup, and step 3 is not needed.
3. `write(…/cgroup.procs, "<host pid>")` — the child joins its cgroup (in every hierarchy) before
   it runs anything of its own: all it will ever start is counted and limited there. Moving a
   process takes a kernel lock that first waits for every CPU to pass a quiescent point (an RCU
   grace period): a few milliseconds, the longest wait of this whole start. (Rootless,
   `write(/proc/<pid>/uid_map …)` would follow: `user_namespaces(7)`, who the child's root is on
   the host.)
4. `prctl(PR_SET_DUMPABLE, 0)` and `prctl(PR_SET_PDEATHSIG, SIGKILL)` — `prctl(2)`: until its
   `execve`, the child is a copy of the host's Python, so nothing in the container may read its
   `/proc/<pid>/exe` or trace it; and if the shim dies, the container dies with it.
5. `unshare(CLONE_NEWCGROUP)`, `sethostname`, bringing `lo` up — the cgroup namespace, the
   container's host name, its loopback device.
6. `mount(... MS_REC|MS_PRIVATE)` then `mount("pycont-overlay", … "overlay" …)` —
   `mount_namespaces(7)`: stop mounts from propagating to the host, then stack the image's layer
   under the container's read/write layer (chapter 04). The bind remount with `MS_NODEV` makes
   every device node in that root unusable: one shipped in an image, or made with `mknod` inside,
   cannot be opened (docker gets the same from the devices cgroup).
7. `proc`, `/dev` (a `nodev` tmpfs with a few devices bind-mounted from the host: those
   work), `devpts`, `shm`, `mqueue`, a
   read-only `sysfs` — the special filesystems a Linux program expects; then, at
   `/sys/fs/cgroup`, the container's own cgroup, read-only (chapter 03).
8. `pivot_root(".", ".")` then `umount2(".", MNT_DETACH)` — `pivot_root(2)`: the overlay becomes
   `/`, and the host's root is detached: the container can no longer reach the host's files.
9. The `mount` calls on `/proc/self/fd/N` — the **masked paths** (an empty read-only tmpfs or
   `/dev/null` over `/proc/keys`, `/sys/firmware`…) and the **read-only** ones (`/proc/sys`,
   `/proc/irq`…), Docker's lists. Each target is opened first inside the new root, without
   following a symlink out of it, and mounted on through its file descriptor; the path in `<…>`
   is what that descriptor is, as `strace -y` shows it.
10. `seccomp(SECCOMP_SET_MODE_FILTER)`, then `prctl(PR_CAPBSET_DROP, …)` and `capset` — a filter
   on the system calls the command may make, and the capabilities cut to Docker's 14. These last
   steps are what keep the container's root from undoing the rest: chapter 10.
11. `execve` — the container's process becomes your command. It keeps its PID: it *is* PID 1.
"""),
]
EXERCISES_INTRO = r"""
The next cell starts a container for the exercises.
"""
EXERCISES_SETUP = r"""
ex = pycont.run("busybox", ["sleep", "1000"], name="ch01-exercise", hostname="exercise",
                detach=True)
print(ex.name, "is", ex.status)
"""
EXERCISES = [
    exercise(
        r"""
### Exercise 1 — find the host PID

What is the host PID of `ch01-exercise`'s main process? Find it **without** `ex.pid`: scan the
host's `/proc` for a `sleep 1000` whose `NSpid` line ends in `1` (there may be other `sleep 1000`s
on the machine).
""",
        r"""
answer1 = None  # the host PID of ch01-exercise's PID 1, an int
""",
        r"""
course.check("exercise 1", lambda: answer1 == ex.pid,
             "for each numeric folder of /proc, compare cmdline(pid) with 'sleep 1000' and nspid(pid)[-1] "
             "with 1; if several match, keep the one whose parent is ex's shim (section 2)")
""",
        r"""
def is_it(p):
    try:
        return (cmdline(p) == "sleep 1000" and nspid(int(p))[-1] == 1
                # other containers may run a sleep 1000 as PID 1: keep the one of ex's shim
                and ppid(int(p)) == ex.state().shim_pid)
    except OSError:  # the process ended while we looked
        return False

answer1 = next(int(p) for p in os.listdir("/proc") if p.isdigit() and is_it(p))
""",
    ),
    exercise(
        r"""
### Exercise 2 — three processes

Make `ch01-exercise` hold **three** processes (its main `sleep 1000` and two more), so that
`ex.processes()` lists three. Use `ex.exec(..., wait=False)`.
""",
        r"""
# your code here
""",
        r"""
course.check("exercise 2", lambda: len(ex.processes()) == 3,
             "count them with len(ex.processes()); ex.exec(['sleep', '300'], wait=False) starts one "
             "more in the background")
""",
        r"""
ex.exec(["sleep", "300"], wait=False)
ex.exec(["sleep", "301"], wait=False)
""",
    ),
    exercise(
        r"""
### Exercise 3 — SIGTERM from the host

`docker stop` first sends SIGTERM, and only after 10 seconds SIGKILL. Send **SIGTERM** from the
host to `ch01-exercise`'s main process (`os.kill(ex.pid, signal.SIGTERM)`). Is the container still
running afterwards? Set `answer3` to `True` or `False` from what you observe.
""",
        r"""
answer3 = None  # True if ch01-exercise still runs after SIGTERM, else False
""",
        r"""
course.check("exercise 3", lambda: answer3 is True and ex.status == "running",
             "send the signal, then look at ex.status; pid_namespaces(7) says which signals an init "
             "process receives from an ancestor namespace")
""",
        r"""
os.kill(ex.pid, signal.SIGTERM)
time.sleep(0.2)
answer3 = ex.status == "running"   # True
""",
        note=r"""
`sleep` installs no handler for SIGTERM, and as PID 1 of its namespace it only receives, even from
the host, the signals it handles — except SIGKILL and SIGSTOP (`pid_namespaces(7)`). That is why
`docker stop` of such a container waits its full timeout before SIGKILL, and why images use an
init (`docker run --init`, tini) or a main process that handles SIGTERM.
""",
    ),
    exercise(
        r"""
### Exercise 4 — an exit code of your choice

Write a command for a busybox container that **ends by itself** with exit code **42**.
""",
        r"""
command4 = None  # a list, e.g. ["sh", "-c", "..."]
""",
        r"""
def _run4():
    if command4 is None:
        return False
    return pycont.run("busybox", command4, rm=True, name="ch01-ex4", timeout=30).exit_code == 42


course.check("exercise 4", _run4,
             "the container's exit code is its main process's, and a shell can end with any "
             "code you choose")
""",
        r"""
command4 = ["sh", "-c", "exit 42"]
""",
    ),
]
QUESTIONNAIRE = r"""
1. As the host kernel sees it, what is a running container?
2. Why does the container's main process have two PIDs, and where can you read both?
3. Which process is the parent of the container's main process on the host, and why is it needed?
4. Why does `kill -KILL 1` inside the container do nothing, while `kill -KILL <host pid>` on the
   host ends the container?
5. What happens to the other processes of a container when its main process exits?
6. What does exit code 137 mean? And 143?
7. Where does a file written inside a container live on the host, and when is it lost?

<details><summary>Answers</summary>

1. One or more ordinary host processes, sharing a set of namespaces (and a cgroup, and a root
   filesystem). No second kernel: the host's scheduler runs them, its `ps` lists them.
2. PID namespaces nest; a process has a PID in its own namespace (1, the first process there) and
   in every ancestor namespace. The `NSpid` line of `/proc/<pid>/status` lists them, outermost
   first (`proc(5)`).
3. The runtime's shim (pycont's shim, `containerd-shim`, `conmon`): it created the process with
   `clone(2)` and `wait(2)`s for it, to record its exit code and clean up, so the container is
   accounted for even after the tool that started it is gone.
4. The init of a PID namespace receives only the signals it has a handler for when they are sent
   from inside the namespace, even SIGKILL; SIGKILL and SIGSTOP are forced only from an ancestor
   namespace such as the host's (`pid_namespaces(7)`).
5. The kernel kills them all with SIGKILL: the namespace ends with its init.
6. 128 + 9: killed by SIGKILL. 143 = 128 + 15: killed by SIGTERM.
7. In the container's read/write layer, the overlay's `upperdir`, a folder under pycont's
   state directory. It is lost when the container is removed; another container of the same
   image never sees it. Volumes (chapter 07) keep data beyond a container's life.
</details>
"""
READING = r"""
- [`proc(5)`](https://man7.org/linux/man-pages/man5/proc.5.html) — `/proc/<pid>/cmdline`, `stat`,
  `status` (`NSpid`), `exe`; the kernel's version:
  [The /proc filesystem](https://docs.kernel.org/filesystems/proc.html).
- [`pid_namespaces(7)`](https://man7.org/linux/man-pages/man7/pid_namespaces.7.html) — nesting,
  PID 1, signals to init, what happens when init ends.
- [`namespaces(7)`](https://man7.org/linux/man-pages/man7/namespaces.7.html) — the overview.
- [`clone(2)`](https://man7.org/linux/man-pages/man2/clone.2.html),
  [`setns(2)`](https://man7.org/linux/man-pages/man2/setns.2.html),
  [`wait(2)`](https://man7.org/linux/man-pages/man2/wait.2.html),
  [`kill(2)`](https://man7.org/linux/man-pages/man2/kill.2.html).
- Docker: [Run multiple processes in a container](https://docs.docker.com/engine/containers/multi-service_container/)
  and [`docker run --init`](https://docs.docker.com/reference/cli/docker/container/run/#init).
- Michael Kerrisk, [Namespaces in operation, part 3: PID namespaces](https://lwn.net/Articles/531419/) (LWN).
"""
# fmt: on
