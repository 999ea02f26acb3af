"""07 — the container's lifecycle, volumes and bind mounts, commit."""

# ruff: noqa: E501  (markdown tables and links cannot be wrapped)

from skeleton import exercise

FILE = "07-lifecycle-and-volumes.ipynb"

# fmt: off
GOAL = r"""
# 07 · Lifecycle and volumes

> *"O conteiner é uma instância de uma imagem."* — a container is an instance of an image.
>
> *"Se o processo principal do container for finalizado, o container é finalizado, perdendo o
> estado ou dados que não foram persistidos em um volume de container."*
> — if the container's main process ends, the container ends, losing the state or data that was
> not persisted in a container volume.

## Goal

At the end of this chapter you will have:

- walked a container through its whole **lifecycle** — created, running, paused, exited,
  removed — and seen the state machine that refuses illegal steps;
- seen **where data is lost**: not when the container exits, but when it is removed, and at once
  with `--rm` when the main process ends;
- kept data in a **named volume** and in a **bind mount** of a host folder, and seen `:ro` refuse
  writes;
- **committed** a running container as a new image version, `myapp:2.0` (the seed's
  `docker commit myapp myapp:2.0`), and seen that volumes are not part of it;
- **killed** a command halfway and seen the next one find a consistent store.
"""
ALLOWS = r"""
The containers need namespaces (root, or rootless with user namespaces); `pause` needs a cgroup
(as root, or with a delegated cgroup). The next cell gives this run its own pycont root, a
session folder that holds its containers, volumes, images and host folder (so the fixed names
below never meet another run's), and removes what an interrupted run of this chapter left.
"""
NEEDS = ("namespaces",)
SETUP = r"""
import contextlib
import os
import signal
import subprocess
import sys

import pycont
from pycont import failpoints, paths, volumes
from pycont.course import Chapter, upper_dir, wait_for
from pycont.images import Store
from pycont.runtime import state
from pycont.runtime.state import Status, check_transition


def exists(name):
    return any(c.name == name for c in pycont.containers(all=True))
"""
START = r"""
store = Store()  # this run's own store, in its session folder
HOST_DIR = course.scratch("ch07-host")  # a host folder for the bind mounts of section 4
print("a cgroup for each container (pause needs its freezer):", course.allowed("cgroups"))
"""
SECTIONS = [
    ("md", r"""
## 1. The life of a container

`create` is `docker create`: it checks everything and prepares the container's folder (its
config and an empty read/write layer), but starts nothing. Then `start`, `pause`, `unpause`,
`stop`, `rm`: each is also a `pycont` command.
"""),
    ("code", r"""
c = pycont.create("busybox", ["sleep", "1000"], name="ch07-life", detach=True)
print("create  ->", c.status)
c.start()
print("start   ->", c.status, "| its main process runs on the host:", c.pid > 0)
if course.allowed("cgroups"):
    c.pause()
    print("pause   ->", c.status)
    try:
        c.exec(["true"])
    except pycont.InvalidState as err:
        print("          exec refused:", err)
    c.unpause()
    print("unpause ->", c.status)
else:  # rootless without a delegated cgroup: the container has no cgroup, so no freezer
    print("pause   -> skipped: no cgroup for the freezer here (the setup cell says why)")
code = c.stop(timeout=1)
print("stop    ->", c.status, "| exit code", code)
try:
    c.pause()
except pycont.InvalidState as err:
    print("          pause refused:", err)
c.start()
print("start   ->", c.status, "| the same container again:", c.name)
c.stop(timeout=1)
c.remove()
try:
    pycont.get("ch07-life")
except pycont.ContainerNotFound as err:
    print("rm      -> removed:", err)
print("          the object c remembers its last status:", c.status)
"""),
    ("md", r"""
The rules live in one place, `pycont.runtime.state`: a `Status` enum and the transitions it
allows. Every status change in pycont goes through one function, `state.transition()`: it takes
the container's lock, asks `check_transition` whether the table allows the change (if not, it
raises with the current status), and writes the new record atomically. The table:
"""),
    ("code", r"""
for old in Status:
    allowed = []
    for new in Status:
        with contextlib.suppress(pycont.InvalidState):
            check_transition(old, new, "demo")
            allowed.append(new.value)
    print(f"{old.value:<8} -> {', '.join(allowed) or '(nothing: only rm)':<18}"
          f" start: {old.can_start()!s:<5} exec: {old.can_exec()!s:<5}"
          f" kill: {old.can_kill()!s:<5} rm: {old.can_remove(force=False)}")
"""),
    ("md", r"""
And a change the table does not allow, asked of a real container's record (`c.dir` is its folder
under pycont's root), is refused before anything is written:
"""),
    ("code", r"""
c = pycont.create("busybox", ["true"], name="ch07-life")
try:
    state.transition(c.dir, Status.PAUSED)
except pycont.InvalidState as err:
    print("refused:", err)
print("its status is still", c.status)
c.remove()
"""),
    ("md", r"""
**What happened.** `pause` froze every process of the container with the cgroup **freezer**
(chapter 03): they still exist but get no CPU, so `exec` is refused until `unpause`. `stop` sent
SIGTERM, waited one second, then SIGKILL: `sleep`, as PID 1, ignores SIGTERM (chapter 01), hence
exit code 137. An exited container cannot be paused (nothing runs), and the refusal names its
status. It still exists — its config, its log, its read/write layer — until `rm`; after that, it
is gone: `pycont.get` no longer finds it. The Python object `c` still says *exited*: like a
`subprocess.Popen` whose process has ended, it keeps the last record it read (which is how
`run(..., rm=True)` can tell you the exit code of a container that no longer exists). And it can be started again, as `docker start` does: the same container, on the same
read/write layer, with the same command. In the table that is `exited -> created`: `start` first
clears the record of the last run (exit code, OOM kill) under the lock, then the new process
makes it *running*, so no record ever says "running" with the previous run's exit code.

```
create ──► created ──start──► running ◄──unpause── paused
            ▲  │                 │  └───pause────►  │
      start │  │              exits / stop / kill    │ kill
            │  └───────────────► exited ◄───────────┘
            └──────────────────────┘ │ rm
                                     ▼
                                  removed
```

---
## 2. Exited is not removed; removed is gone

Write a file in a container's read/write layer, and let the container exit:
"""),
    ("code", r"""
w = pycont.run("busybox", ["sh", "-c", "echo important > /root/data.txt"], name="ch07-writer")
upper = upper_dir(w)
print("status:", w.status, "| exit code:", w.exit_code)
print("after the exit, the file is in its read/write layer:",
      os.path.exists(os.path.join(upper, "root/data.txt")))
"""),
    ("code", r"""
%pycont diff ch07-writer
"""),
    ("code", r"""
w.remove()
print("after rm, the read/write layer exists:", os.path.exists(upper))
r = pycont.run("busybox", ["cat", "/root/data.txt"], rm=True, name="ch07-reader")
print("a new container:", r.output.strip(), "| exit code", r.exit_code)
"""),
    ("md", r"""
**What happened.** The container's changes live in its upper directory (chapter 04) for as long
as the container exists, exited or not (`docker diff`, `docker cp` and `docker commit` work on an
exited container). `rm` deletes that directory. A new container of the same image starts from
the image's layers and an empty upper directory of its own: the file was never part of the image.

---
## 3. A named volume keeps data beyond the container

A **volume** is a folder outside the overlay, bind-mounted into the container. `-v NAME:/path`
(`volumes=["NAME:/path"]`) uses a **named** volume, created on first use under pycont's root. Write
into one, remove the container, and read from a new one:
"""),
    ("code", r"""
r = pycont.run("busybox", ["sh", "-c", "echo 'kept in a volume' > /data/notes.txt"],
               rm=True, name="ch07-vol", volumes=["ch07-data:/data"])
print("the writer: exit code", r.exit_code, "(and it was removed: rm=True)")
r = pycont.run("busybox", ["cat", "/data/notes.txt"],
               rm=True, name="ch07-vol", volumes=["ch07-data:/data"])
print("a new container reads:", r.output.strip())
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
%pycont volume ls
"""),
    ("code", r"""
info = volumes.inspect("ch07-data")  # CLI: pycont volume inspect ch07-data
print("Mountpoint:", info["Mountpoint"])
print("on the host it holds:", os.listdir(info["Mountpoint"]))
with open(os.path.join(info["Mountpoint"], "notes.txt")) as f:
    print("notes.txt:", f.read().strip())
"""),
    ("md", r"""
How does it get into the container? `narrate` prints the mounts pycont makes (chapter 01);
keep those that mount the volume:
"""),
    ("code", r"""
lines = []
pycont.run("busybox", ["true"], rm=True, name="ch07-vol", volumes=["ch07-data:/data"],
           narrate=lines.append)
print("\n".join(line for line in lines if "volumes" in line))
"""),
    ("md", r"""
`/proc/self/fd/N` is the folder `/data` inside the new root (`<…>` shows it, as `strace -y`
does), opened without following symlinks, so an image cannot send the mount elsewhere with a
symlink. While a container uses a volume, the
volume cannot be removed:
"""),
    ("code", r"""
holder = pycont.create("busybox", ["true"], name="ch07-vol", volumes=["ch07-data:/data"])
print("Mounts:", holder.inspect()["Mounts"])
try:
    volumes.remove("ch07-data")
except pycont.InvalidState as err:
    print("volume rm refused:", err)
holder.remove()
"""),
    ("md", r"""
**What happened.** A named volume is a plain folder, `<root>/volumes/<name>/_data` (docker's
layout), bind-mounted (`mount(2)` with `MS_BIND`) over `/data` in the container's root. Writes to
`/data` go straight to that folder, not to the overlay's upper directory, so they outlive every
container. The volume goes only when you remove it (`pycont volume rm`), and not while a
container refers to it.

---
## 4. Bind mounts, and `:ro`

`-v /host/path:/path` bind-mounts **any host folder**: the container and the host see the same
files, live. Give a container a host folder, `HOST_DIR` (this run's own, in its session
folder; IPython replaces `{HOST_DIR}` in a magic's line with its value):
"""),
    ("code", r"""
os.makedirs(HOST_DIR)
with open(f"{HOST_DIR}/hello.txt", "w") as f:
    f.write("written by the host\n")
"""),
    ("code", r"""
%%container --rm --name ch07-bind -v {HOST_DIR}:/host busybox
cat /host/hello.txt
echo "written by the container" > /host/reply.txt
"""),
    ("code", r"""
with open(f"{HOST_DIR}/reply.txt") as f:
    print("the host reads reply.txt:", f.read().strip())
print("its owner on the host: uid", os.stat(f"{HOST_DIR}/reply.txt").st_uid)
"""),
    ("md", r"""
Now the same folder with `:ro`:
"""),
    ("code", r"""
%%container --rm --name ch07-bind -v {HOST_DIR}:/host:ro busybox
cat /host/hello.txt
echo "again" > /host/reply.txt
"""),
    ("md", r"""
**What happened.** A bind mount makes a host folder appear at another place (here, inside the
container's root): the same inodes, no copy. `:ro` adds a second step, a *remount* of that bind
mount with `MS_RDONLY` (`mount(2)`): reads work, writes fail with `EROFS`, *Read-only file system*,
even for the container's root, which cannot remount it read-write either: that needs
`CAP_SYS_ADMIN`, which a container lacks (chapter 10). Bind mounts are how you give a container
its configuration or your source code; they are also a hole in the isolation (a container with
the host's `/` mounted read-write *is* the host), so mount the least you can, read-only where you
can. The owner, uid 0,
is the container's root: run by root, a container has no user namespace, so its root is the
host's (chapter 02); rootless, the file would belong to the user who runs pycont.

---
## 5. The main process ends: the container ends

> *"Se o processo principal do container for finalizado, o container é finalizado, perdendo o
> estado ou dados que não foram persistidos em um volume de container."*

A "service" with `--rm` (`rm=True`) writes its state twice: into its read/write layer and into a
volume. Then its main process dies:
"""),
    ("code", r"""
svc = pycont.run("busybox", ["sh", "-c", "echo 'state in the layer' > /tmp/state.txt; "
                                          "echo 'state in the volume' > /data/state.txt; "
                                          "sleep 1000"],
                 name="ch07-main", detach=True, rm=True, volumes=["ch07-data:/data"])
svc_upper = upper_dir(svc)
print("written in the layer:", wait_for(lambda: os.path.exists(f"{svc_upper}/tmp/state.txt")))
os.kill(svc.pid, signal.SIGKILL)  # the main process dies (a crash, an OOM kill, a bug...)
print("the container's exit code:", svc.wait(timeout=10))
"""),
    ("code", r"""
wait_for(lambda: not exists("ch07-main"))  # --rm: the shim removes it as it exits
print("the container exists:", exists("ch07-main"))
print("its read/write layer exists:", os.path.exists(svc_upper))
with open(os.path.join(volumes.inspect("ch07-data")["Mountpoint"], "state.txt")) as f:
    print("the volume still has:", f.read().strip())
"""),
    ("md", r"""
**What happened.** The container *is* its main process (chapter 01): when it died, the kernel
killed the rest of the PID namespace and the container exited. With `--rm`, pycont (like docker)
then removed it at once, and its read/write layer with it: the state written to `/tmp` is gone
for good. What was written to the volume is still there, ready for the next container. That is
the seed's warning, and the rule for real services: databases, uploads, anything that must
survive a crash or an upgrade goes into a volume.

---
## 6. `commit`: a new image version from a container

> *"Ou gerar imagem v2.0 a partir do conteiner em execução: `docker commit myapp myapp:2.0`"*

Run an application container, `ch07-myapp`, with a volume for its data. Change it while it runs:
a new version file in its read/write layer, a log line in its volume.
"""),
    ("code", r"""
app = pycont.run("busybox", ["sh", "-c", "mkdir -p /app && echo 'myapp 1.0' > /app/version "
                                          "&& sleep 1000"],
                 name="ch07-myapp", detach=True, volumes=["ch07-data:/data"])
app_upper = upper_dir(app)
wait_for(lambda: os.path.exists(f"{app_upper}/app/version"))
r = app.exec(["sh", "-c", "echo 'myapp 2.0' > /app/version && echo 'a log line' > /data/log.txt"])
print("changed, exit code", r.exit_code)
"""),
    ("code", r"""
%pycont diff ch07-myapp
"""),
    ("md", r"""
The container's changes: `/app` and its file, and `/data` — only the empty folder pycont made as
the volume's mount point; `log.txt` went to the volume, not to the read/write layer. Commit them
as `myapp:2.0`, with a default command, as `docker commit -m … -c 'CMD …' myapp myapp:2.0` would.
The command prints the new image id, which changes on every run:
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
%pycont commit -m "version 2.0" -c 'CMD ["cat", "/app/version"]' ch07-myapp myapp:2.0
"""),
    ("code", r"""
print("ch07-myapp is still", app.status)
r = pycont.run("myapp:2.0", rm=True, name="ch07-run")
print("a container of myapp:2.0 runs its CMD:", r.output.strip())
r = pycont.run("myapp:2.0", ["ls", "-A", "/data"], rm=True, name="ch07-run")
print("its /data is empty:", r.output.strip() == "", "| the volume has:",
      os.listdir(volumes.inspect("ch07-data")["Mountpoint"]))
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
%pycont history myapp:2.0
"""),
    ("code", r"""
img = store.get("myapp:2.0")
print("layers: busybox's +", len(img.diff_ids) - 1, "new")
print("the first is busybox's:", img.diff_ids[0] == store.get("busybox").diff_ids[0])
newest = store.history("myapp:2.0")[0]
print("the newest step:", repr(newest.created_by), "| comment:", repr(newest.comment))
"""),
    ("md", r"""
**What happened.** `commit` paused the container (a consistent snapshot: nothing writes while
the layer is read), turned its upper directory into a tar layer, and wrote a new config on top of
busybox's with the new `CMD`: an image with one more layer. Its `history` records the container's
command — not the `exec` that made the change, which nothing recorded. The container carried on
running. The volume was **not** included: it is not part
of the overlay, only a mount on top of it (the empty `/data` folder in the image is the mount
point pycont made). Images are for code and configuration; data belongs in volumes.

`commit` is handy to explore, but the image it makes is opaque: nobody can tell *how* it was
made, or make it again. A **Dockerfile** writes the steps down (chapter 06).
"""),
    ("md", r"""
---
## 7. Killed halfway: nothing lost

Commands get killed: by the OOM killer, by a `kill -9`, by a laptop whose battery runs out. The
rule a runtime must keep (docker's and pycont's): **whatever step a command dies at, the next
command finds a consistent store** — no container that breaks `ps`, no name that stays taken, no
cgroup or mount that nobody will remove. Two tools make it so:

- every record is written to a temporary file, then **renamed** over the old one: `rename(2)`
  is atomic, a reader sees the old file or the new one, never half of one;
- a container is built in `containers/.creating/<id>` and renamed to `containers/<id>` only once
  it is complete; `rm` first renames it to `containers/.removing/<id>` (the name is free from
  that moment), then deletes. Each folder set aside names its owner (a pid): a folder whose owner
  is dead was left by a crash, and the next command that meets it finishes the job.

To *show* it, pycont's commands mark their steps as **failpoints**, as containerd does: with
`PYCONT_FAILPOINTS=STEP=kill` in its environment, a command SIGKILLs itself when it reaches that
step. Kill a `run` right after the container's config is written:
"""),
    ("code", r"""
print(len(failpoints.STEPS), "named steps; those of create:")
for step, what in failpoints.STEPS.items():
    if step.startswith("create."):
        print(f"  {step:24} {what}")


def pycont_cli(*args, crash_at=None):
    # The CLI in a new process, as a user types it; PYCONT_ROOT (this run's store) is inherited.
    env = dict(os.environ, PYCONT_FAILPOINTS=f"{crash_at}=kill") if crash_at else None
    return subprocess.run([sys.executable, "-m", "pycont", *args], env=env,
                          capture_output=True, text=True)


r = pycont_cli("run", "-d", "--name", "ch07-crash", "busybox", "sleep", "1000",
               crash_at="create.config-written")
print("\nexit status:", r.returncode, "(a negative status: killed by signal", -r.returncode, "= SIGKILL)")
aside = os.path.join(paths.containers_dir(), ".creating")
print("folders left aside in .creating:", len(os.listdir(aside)))
"""),
    ("code", r"""
r = pycont_cli("ps", "-a")
print("ps -a exit status:", r.returncode, "| ch07-crash listed:", "ch07-crash" in r.stdout)
print("folders left aside now:", len(os.listdir(aside)) if os.path.isdir(aside) else 0)
c = pycont.run("busybox", ["sleep", "1000"], name="ch07-crash", detach=True)
print("the name is free again:", c.name, c.status)
c.remove(force=True)
"""),
    ("md", r"""
**What happened.** The killed `run` never renamed its folder into place, so no listing ever saw a
half-made container. The next command (`ps`) found the folder aside with a dead owner and
removed it, with whatever it held (network leases, cgroups). The name was never taken.

The kernel is the other half of the truth. Kill a `pause` right after it froze the container's
cgroup, before it wrote "paused" in the record:
"""),
    ("code", r"""
if course.allowed("cgroups"):
    c = pycont.run("busybox", ["sleep", "1000"], name="ch07-frozen", detach=True)
    r = pycont_cli("pause", "ch07-frozen", crash_at="pause.frozen")
    print("pause exit status:", r.returncode)
    print("the status, read against the freezer:", c.status)
    print("stop on a paused container:", c.stop(timeout=1), "(it is thawed for the SIGKILL)")
    c.remove()
else:
    print("skipped: no cgroup for the freezer here (the setup cell says why)")
"""),
    ("md", r"""
pycont takes the freezer's word over its record: the cgroup is frozen, so the container *is*
paused, whatever the record said. `stop` thaws a paused container after sending its signals, as
docker does, so they are delivered. Every named step is killed three times by the test suite
(`tests/integration/test_failpoint_sweep.py`), which then checks that `ps -a` works, that
`rm -f` and `system prune` leave no folder, cgroup, mount or process, and that the command
works again.
"""),
]
EXERCISES = [
    exercise(
        r"""
### Exercise 1 — survive the removal

Run a busybox container named `ch07-ex1`, with `rm=True`, that writes the word `survives` into
`/data/answer.txt` in such a way that a later container can read it. Use a named volume called
`ch07-ex`.
""",
        r"""
# exercise 1: your code here
""",
        r"""
def _ex1():
    if "ch07-ex" not in volumes.names() or exists("ch07-ex1"):
        return False
    r = pycont.run("busybox", ["cat", "/data/answer.txt"], rm=True, name="ch07-check",
                   volumes=["ch07-ex:/data"])
    return r.output.strip() == "survives"


course.check("exercise 1", _ex1,
             "pycont.run('busybox', ['sh', '-c', 'echo survives > /data/answer.txt'], ...) with "
             "rm=True, a name, and volumes=[...] naming the volume and the path")
""",
        r"""
pycont.run("busybox", ["sh", "-c", "echo survives > /data/answer.txt"], rm=True,
           name="ch07-ex1", volumes=["ch07-ex:/data"])
""",
    ),
    exercise(
        r"""
### Exercise 2 — read-only configuration

Write the `volumes=` entry that shows the host folder `HOST_DIR` (section 4) at `/config` in
the container, **read-only**.
""",
        r"""
answer2 = None  # a str, docker's -v syntax
""",
        r"""
def _ex2():
    if not isinstance(answer2, str):
        return False
    script = "cat /config/hello.txt && ! touch /config/new.txt 2>/dev/null"
    r = pycont.run("busybox", ["sh", "-c", script], rm=True, name="ch07-check",
                   volumes=[answer2])
    return r.exit_code == 0 and r.output.strip() == "written by the host"


course.check("exercise 2", _ex2, "HOST_PATH:CONTAINER_PATH, then a third part that makes it read-only")
""",
        r"""
answer2 = f"{HOST_DIR}:/config:ro"
""",
    ),
    exercise(
        r"""
### Exercise 3 — paused

Create a busybox container named `ch07-ex3` running `sleep 1000` in the background, and bring it
to the **paused** status.
""",
        r"""
# exercise 3: your code here
""",
        r"""
course.check("exercise 3", lambda: exists("ch07-ex3") and pycont.get("ch07-ex3").status == "paused",
             "pycont.run(..., name='ch07-ex3', detach=True), then the method named like the status")
""",
        r"""
pycont.run("busybox", ["sleep", "1000"], name="ch07-ex3", detach=True).pause()
""",
    ),
    exercise(
        r"""
### Exercise 4 — your own version

Make an image **`myapp:ch07-ex`** whose default command prints `hello from ex`, by committing a
container (name it `ch07-ex4`). It must have busybox's layer plus exactly one new layer.
""",
        r"""
# exercise 4: your code here
""",
        r"""
def _ex4():
    if not any(i.reference == "myapp:ch07-ex" for i in store.images()):
        return False
    r = pycont.run("myapp:ch07-ex", rm=True, name="ch07-check")
    layers = store.get("myapp:ch07-ex").diff_ids
    return (r.output.strip() == "hello from ex" and len(layers) == 2
            and layers[0] == store.get("busybox").diff_ids[0])


course.check("exercise 4", _ex4,
             "a container of busybox that writes a script or a file, then .commit('myapp:ch07-ex', "
             "changes=['CMD [...]']); the CMD may be [\"cat\", \"/some/file\"]")
""",
        r"""
c = pycont.run("busybox", ["sh", "-c", "echo 'hello from ex' > /hello.txt"], name="ch07-ex4")
c.commit("myapp:ch07-ex", changes=['CMD ["cat", "/hello.txt"]'])
c.remove()
""",
    ),
]
QUESTIONNAIRE = r"""
1. Name the statuses of a container, and the command that leads to each.
2. A container exited an hour ago. Are the files it wrote still somewhere? Until when?
3. Why did `stop` take a whole second, and end with exit code 137, for `sleep 1000`?
4. What is the difference between a named volume and a bind mount? Where is each on the host?
5. What does `:ro` do, in terms of `mount(2)`?
6. A container started with `--rm` crashes. What is lost, and what is kept?
7. You `commit` a container that wrote files both in `/app` and in its volume `/data`. What does
   the new image contain?
8. Why prefer a Dockerfile to `commit` for images you ship?
9. Why does pycont build a new container in `.creating/<id>` and rename it, rather than write
   `containers/<id>` directly?
10. A `pause` is killed after it froze the cgroup, before it wrote the record. What does `ps`
    show, and why?

<details><summary>Answers</summary>

1. *created* (`create`), *running* (`start`, or `run` = create + start), *paused* (`pause`;
   `unpause` goes back to running), *exited* (the main process ended, or `stop`/`kill`; `start`
   runs it again), and *removed* (`rm`) — gone, no status at all.
2. Yes: in its read/write layer (its upper directory, on the host), until the container is
   removed. `diff` and `commit` still work on it.
3. `stop` sends SIGTERM first; `sleep` as PID 1 has no handler, so the kernel does not deliver it.
   After the timeout `stop` sends SIGKILL: 128 + 9 = 137.
4. A named volume is a folder that pycont (or docker) manages, `<root>/volumes/<name>/_data`, made
   on first use; a bind mount is any host path you name. Both are bind mounts into the container's
   root, outside its overlay.
5. After the bind mount, a remount of it with `MS_REMOUNT|MS_BIND|MS_RDONLY`: that mount becomes
   read-only, whatever the file permissions.
6. The container and its read/write layer are removed at once: everything written outside volumes
   is lost. What was written into volumes (and bind mounts) is kept.
7. `/app` as a new layer on top of the image's layers (with the empty mount point `/data`); not the
   volume's files.
8. A Dockerfile records every step: the image can be rebuilt, reviewed and updated (a new base
   image) — a committed image only says *sh -c …* for whatever happened in the container.
9. `rename(2)` of a folder is atomic: a listing sees the whole container or nothing. Written in
   place, a container killed halfway would be listed without its config or state, and its
   name would stay taken until someone deleted the folder by hand.
10. *Paused*: the cgroup's freezer is the truth, and reading the status puts the record right.
    `unpause`, `stop` and `rm -f` work on it as on any paused container.
</details>
"""
READING = r"""
- Docker: [Volumes](https://docs.docker.com/engine/storage/volumes/),
  [Bind mounts](https://docs.docker.com/engine/storage/bind-mounts/),
  [`docker commit`](https://docs.docker.com/reference/cli/docker/container/commit/),
  [`docker container rm`](https://docs.docker.com/reference/cli/docker/container/rm/) and
  `docker run --rm`.
- [`mount(2)`](https://man7.org/linux/man-pages/man2/mount.2.html) — `MS_BIND`, `MS_REMOUNT`,
  `MS_RDONLY`; [`mount(8)`](https://man7.org/linux/man-pages/man8/mount.8.html) — bind mounts.
- [`mount_namespaces(7)`](https://man7.org/linux/man-pages/man7/mount_namespaces.7.html) — why
  the container's mounts do not show on the host.
- Kernel: [the cgroup freezer](https://docs.kernel.org/admin-guide/cgroup-v1/freezer-subsystem.html)
  (v1) and `cgroup.freeze` in [Control Group v2](https://docs.kernel.org/admin-guide/cgroup-v2.html).
- [`rename(2)`](https://man7.org/linux/man-pages/man2/rename.2.html) — the atomic replace
  every crash-safe write is built on; containerd's
  [failpoints](https://github.com/containerd/containerd/tree/main/pkg/failpoint), the idea
  behind `PYCONT_FAILPOINTS`.
- OCI runtime spec, [Lifecycle](https://github.com/opencontainers/runtime-spec/blob/main/runtime.md#lifecycle)
  — creating, created, running, stopped.
"""
# fmt: on
