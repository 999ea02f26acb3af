"""00 — welcome and index."""

# ruff: noqa: E501  (markdown tables and links cannot be wrapped)

FILE = "00-index.ipynb"

# fmt: off
GOAL = r"""
# Containers, by hand

A hands-on course on how Linux containers really work. You will not just read that "a container is
an isolated process": you will start one, find its process on the host, compare its namespaces
with the host's, limit its memory, stack its filesystem layers, build an image, and put it next to
a virtual machine. Every claim is an experiment you run and see.

The engine is **pycont**, a small but real container runtime written in Python. It makes the same
system calls as docker's runtime (`clone`, `unshare`, `setns`, `mount`, `pivot_root`, …), and it
can tell you each one as it makes it. You drive it from these notebooks with a Python API
(`pycont.run(...)`), a docker-like CLI (`%pycont run ...`) and a cell magic (`%%container`).

**Goal of this page:** know what the course covers and how a chapter works, find out what this
machine lets you do, and run your first container.
"""
ALLOWS = r"""
A container runtime can only do what the kernel and your privileges allow. `pycont.probe()`
asks: it reads `/proc` and `/sys` and tries the real system calls in a throw-away child process.
The table describes the machine this notebook last ran on; run the cell to see yours.
"""
NEEDS = ("namespaces",)
SETUP = r"""
import pycont
from pycont.course import Chapter
"""
START = r"""
probe = pycont.probe()  # the whole report: one line per check
probe
"""
SECTIONS = [
    ("md", r"""
pycont works in one of three modes:

- **root** — everything in this course: all namespaces, cgroup limits, overlay mounts. The
  committed outputs of these notebooks come from a run as root.
- **rootless** — you are an ordinary user but the kernel lets you create a *user namespace*
  (`user_namespaces(7)`): inside it you are root over your own namespaces, so containers still get
  every namespace and an overlay root (with the `userxattr` option); cgroup limits need a cgroup
  delegated to you.
- **unprivileged** — no root and no user namespaces, or no cgroup you may write: this is
  [Binder](https://mybinder.org). The course's kernel, *Python 3 (pycont)*, which every chapter
  names, then boots **pycont's lab VM**: Debian's kernel under qemu, which sees this machine's
  files (read-only: what you write lives in the VM's memory) and in which the kernel is root
  with cgroup v2. Every experiment then happens for real, in that kernel; the line above says
  so ("in pycont's lab VM … because …"). It starts in about 20 s and runs Python several times
  slower than the host (the CPU is emulated). In a terminal, `pycont lab COMMAND` runs one
  command there. Where not even the VM can start, each experiment prints one "skipped: needs …"
  line instead of failing, and the recorded pictures in the text show what it does.

The same report is available in a terminal: `pycont doctor`.
"""),
    ("md", r"""
## What a container is

> *"Resumindo, containers são processos isolados que compartilham o kernel do sistema operacional."*
> — in short, containers are isolated processes that share the operating system's kernel.

A container is **not** a small machine. It is one or more ordinary processes on the host, started
in a way that limits what they can see and what they can use. The kernel offers three mechanisms,
the three pillars of containers:

| pillar | what it does | examples | chapter |
|---|---|---|---|
| **namespaces** | isolate what a process *sees* | PID, NET, IPC, MNT, UTS, USER, CGROUP | 02 |
| **cgroups** | limit what a process *uses* | CPU, memory, disk I/O, number of processes | 03 |
| **OverlayFS** | give it its *own filesystem*, stacked from shared read-only layers | image layers + a read/write layer | 04 |

### Containers vs virtual machines

| | container | virtual machine |
|---|---|---|
| kernel | shares the host's kernel | boots its own kernel on emulated or virtualised hardware |
| what starts | a process | firmware, a kernel, an init, then your process |
| start-up time | milliseconds | seconds |
| memory overhead | what the process uses | a whole guest OS |
| isolation boundary | the kernel's namespaces and cgroups | the hypervisor |

Chapter 09 measures these claims: the same image started as a container and as a VM, side by side.

### Images, layers, registries

A container starts from an **image**: a stack of read-only **layers** (file-system diffs) plus a
config (command, environment, working directory). The container adds one thin **read/write layer**
on top; it is thrown away when the container is removed, which is why data you want to keep
belongs in a **volume**. Two versions of an application (`myapp:v1`, `myapp:v2`) **share** every
layer they have in common, which is one reason containers are light. Images are built from a
**Dockerfile** (or committed from a container) and stored in **registries** (Docker Hub, ECR, GCR,
…) from which you `pull` them. Chapters 04–07 take each of these apart.
"""),
    ("md", r"""
## How a chapter works

Every chapter has the same parts:

1. **Goal** — what you will be able to do and see at the end.
2. **What this machine allows** — a quick check that the experiments can run here.
3. **Concept → experiment → explanation**, repeated: a short idea, a cell that shows it on the
   real kernel (each cell prints what to look at), then why, citing the man pages.
4. **Exercises** — each has a cell where you fill in a variable (`answer = None`) and a
   **check cell** that prints `✓ exercise N: correct` or
   `✗ exercise N: not yet — hint: …`. That is how you check your
   work. The solution is folded in a *Solution* block below it: try first.
5. **Questionnaire** — a few questions to test your understanding; answers are folded.
6. **Further reading** — man pages and kernel documentation.

Run the cells in order, top to bottom (*Run → Run All Cells* works too). Each run of a chapter
works in a **session** of its own: its setup cell (under *What this machine allows*) makes a
pycont root folder, `sessions/chNN-<tag>` in pycont's root, and points `PYCONT_ROOT` at it, so
the chapter's containers (named `ch01-…`), images, volumes and host folders are there and
nowhere else. Two runs of a chapter at once — in two tabs, or two learners on one machine —
never see each other's, like two docker daemons each with its own data-root. The clean-up cell
at the end removes the session; if you stop half way, simply run the chapter again from the
top: its setup cell removes what a previous run left behind (a session whose kernel has gone),
and nothing else. To see a chapter's containers from a terminal, `export PYCONT_ROOT=...` with
the folder `course.root` names, then `pycont ps -a`.

**Start a chapter again.** Running a chapter saves your answers and outputs into its notebook
(JupyterLab autosaves). To get it back as committed, close it, then at the repository's root run
`bash scripts/reset-chapter.sh 03` (or `git checkout -- notebooks/03-*.ipynb`; `all` resets
every chapter), and open it again. Opening a chapter without running it changes nothing.
"""),
    ("md", r"""
## Your first container

`pycont.run` is `docker run`: it creates a container from an image, starts it, waits for it and
gives you its output. `busybox` is a tiny image (one static binary providing `sh`, `ls`, `ps`, …)
that pycont builds on first use.
"""),
    ("code", r"""
c = pycont.run("busybox", ["echo", "hello"], rm=True, name="ch00-hello")
c.output
"""),
    ("code", r"""
print("exit code:", c.exit_code)
"""),
    ("md", r"""
`rm=True` removed the container as soon as it ended (`docker run --rm`). The same in the two
other surfaces, which `%load_ext pycont` (in the setup cell above) made available: the
`%%container` cell magic runs the cell as a shell script in a new container, and `%pycont` is the
command-line tool.
"""),
    ("code", r"""
%%container --rm --name ch00-magic --hostname first-box busybox
echo "hello from $(hostname)"
echo "my PID is $$"
"""),
    ("code", r"""
%pycont run --rm --name ch00-cli --hostname cli-box busybox hostname
"""),
    ("md", r"""
*My PID is 1*: the shell is the first process of its own PID namespace, although the host runs
many more. That is where chapter 01 starts.

## Table of contents

{{TOC}}

Chapters marked *coming soon* are being written; their experiments follow the same structure.
"""),
]
# fmt: on
