"""A chapter's session: a pycont root of its own, so that two runs of a chapter never meet.

Each run of a chapter (one notebook kernel) works in ``<root>/sessions/chNN-<tag>``, which it
makes its ``PYCONT_ROOT``: its containers, networks, images, volumes and VMs, its host folders
(``scratch/``), live there and nowhere else. Two learners on one machine can then both run a
container ``ch07-life`` and commit ``myapp:2.0``, like two docker daemons each with its own
data-root. ``session.json`` names the owner (a pid and its start time, which together name one
process for good), the processes the chapter started, and the folders it made under /tmp for
programs that limit a path's length (podman). A later run of the chapter removes the sessions
whose owner has gone (an interrupted run), never one whose owner still runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from pycont import paths, procfs
from pycont.errors import ContainerNotFound, PycontError
from pycont.fsutil import read_json, remove_tree, write_json

SESSIONS = "sessions"  # under the pycont root the chapter started in
RECORD = "session.json"
SCRATCH = "scratch"  # the chapter's host folders (a lab, a registry's storage...)
CACHE = "cache"  # pycont's own caches: shared with the root the session is made in
_NAME = re.compile(r"ch\d\d-[0-9a-f]{6}")  # a session's folder: chapter and tag


@contextlib.contextmanager
def rooted(root: str) -> Iterator[None]:
    """Run the block with ``PYCONT_ROOT`` set to ``root`` (pycont reads it at each call)."""
    previous = os.environ.get("PYCONT_ROOT")
    os.environ["PYCONT_ROOT"] = root
    try:
        yield
    finally:
        if previous is None:
            del os.environ["PYCONT_ROOT"]
        else:
            os.environ["PYCONT_ROOT"] = previous


@dataclass
class Session:
    """One run of chapter ``number``: its folder (its ``PYCONT_ROOT``) and who owns it."""

    number: str
    dir: str
    pid: int
    start: int
    processes: list[tuple[int, int]] = field(default_factory=list)  # (pid, start time)
    outside: list[str] = field(default_factory=list)  # folders made under /tmp

    @classmethod
    def create(cls, number: str, base: str) -> Session:
        """A new session of this process under ``base`` (a pycont root), with a fresh tag."""
        top = os.path.join(base, SESSIONS)
        os.makedirs(top, mode=0o700, exist_ok=True)
        while True:
            folder = os.path.join(top, f"ch{number}-{secrets.token_hex(3)}")
            with contextlib.suppress(FileExistsError):  # another run drew the same tag
                os.mkdir(folder, 0o700)
                break
        # Compiled seccomp filters, named by digest and written atomically: safe to share. A cold
        # cache would also change what chapters show: the first container would then load
        # libseccomp, whose ctypes find_library() forks ldconfig inside its PID namespace.
        shared = os.path.join(base, CACHE)
        os.makedirs(shared, mode=0o700, exist_ok=True)
        os.symlink(shared, os.path.join(folder, CACHE))
        me = os.getpid()
        session = cls(number, folder, me, procfs.start_time(me))
        session.save()
        return session

    @classmethod
    def load(cls, folder: str) -> Session | None:
        """The session recorded in ``folder``; None without a readable record (not ours)."""
        try:
            doc = read_json(os.path.join(folder, RECORD))
            return cls(
                str(doc["chapter"]),
                folder,
                int(doc["pid"]),
                int(doc["start"]),
                [(int(p), int(s)) for p, s in doc.get("processes", [])],
                [str(d) for d in doc.get("outside", [])],
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self) -> None:
        doc = {"chapter": self.number, "pid": self.pid, "start": self.start}
        doc.update(processes=self.processes, outside=self.outside)
        write_json(os.path.join(self.dir, RECORD), doc)

    @property
    def tag(self) -> str:
        return os.path.basename(self.dir).rpartition("-")[2]

    @property
    def base(self) -> str:
        """The pycont root this session was made in."""
        return os.path.dirname(os.path.dirname(self.dir))

    def owner_alive(self) -> bool:
        return procfs.alive(self.pid, self.start)

    def scratch(self, name: str, short: bool = False) -> str:
        """A host folder of the session: its path in the session's folder (not made here),
        or with ``short`` a new folder in the system's temporary folder (for programs that
        limit a path's length), recorded so that the session's removal takes it too."""
        if not short:
            return os.path.join(self.dir, SCRATCH, name)
        made = tempfile.mkdtemp(prefix=f"ch{self.number}-{name}-")
        self.outside.append(made)
        self.save()
        return made

    def adopt(self, pid: int) -> None:
        """Record a process the chapter started: the clean-up ends it, even after a crash."""
        start = procfs.start_time(pid)
        if start:  # 0: it has already gone
            self.processes.append((pid, start))
            self.save()

    # -- what it holds, and taking it back -----------------------------------------------------
    def contents(self) -> dict[str, list[str]]:
        """What the session holds now, by kind; empty lists when it is all gone."""
        from pycont import volumes
        from pycont.images import Store
        from pycont.net import networks
        from pycont.runtime.container import containers
        from pycont.vm.machine import vms

        if not os.path.isdir(self.dir):  # removed: asking pycont would make it again
            kinds = ("containers", "vms", "networks", "volumes", "images", "paths", "processes")
            return {k: [] for k in kinds}
        scratch = os.path.join(self.dir, SCRATCH)
        with rooted(self.dir):
            found = {
                "containers": [c.name for c in containers(all=True)],
                "vms": [v.name for v in vms(all=True)],
                "networks": [n.name for n in networks.ls()],
                "volumes": volumes.names(),
                "images": [i.reference for i in Store().images()],
                "paths": sorted(os.listdir(scratch)) if os.path.isdir(scratch) else [],
            }
        found["paths"] += [d for d in self.outside if os.path.lexists(d)]
        found["processes"] = [str(p) for p, s in self.processes if procfs.alive(p, s)]
        return found

    def empty(self) -> list[str]:
        """Remove everything in the session but its record (and the link to the shared
        cache); what was there, named."""
        from pycont.runtime.container import containers
        from pycont.vm.machine import vms

        before = self.contents()
        with rooted(self.dir):
            for c in containers(all=True):
                with contextlib.suppress(ContainerNotFound):  # a --rm one may go by itself
                    c.remove(force=True)
            for v in vms(all=True):
                v.remove(force=True)
            _remove_networks()
        for pid, start in self.processes:
            _end(pid, start)
        self.processes = []
        for folder in [self.dir, *self.outside]:
            _detach_mounts(folder)
        for folder in self.outside:
            remove_tree(folder)
        self.outside = []
        self.save()
        for entry in os.listdir(self.dir):
            if entry not in (RECORD, CACHE):
                remove_tree(os.path.join(self.dir, entry))
        named = {"containers": "", "vms": "VM ", "networks": "network ", "volumes": "volume "}
        named["images"] = "image "
        removed = [f"{label}{n}" for kind, label in named.items() for n in before[kind]]
        removed += [p if os.path.isabs(p) else os.path.join(SCRATCH, p) for p in before["paths"]]
        return removed + [f"process {p}" for p in before["processes"]]

    def remove(self) -> list[str]:
        """:meth:`empty`, then the folder itself."""
        removed = self.empty()
        remove_tree(self.dir)
        return removed


def _remove_networks() -> None:
    """The session's networks, their bridges with them (a bridge is a host device: removing
    the session's folder would leave it behind). Its containers are gone by now; collecting
    the leases of containers whose folder is gone frees the bridges a crash held. The default
    network's bridge stays after its last container, as docker0 does: it goes here too."""
    from pycont.net import networks

    networks.collect()
    for net in networks.ls():
        if net.user_defined:
            networks.remove(net.name)
    networks.remove_idle_default()


def _end(pid: int, start: int, timeout: float = 10.0) -> None:
    """SIGTERM the process that has this pid and start time, then SIGKILL; wait until it has
    stopped (a zombie has stopped: its parent reaps it)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not procfs.alive(pid, start):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout / 2
        while procfs.alive(pid, start) and time.monotonic() < deadline:
            time.sleep(0.02)


def _detach_mounts(folder: str) -> None:
    """Detach what is mounted under ``folder`` (podman's layers in a scratch folder), deepest
    first, so that removing the folder cannot reach through a mount into another file system."""
    from pycont.kernel import MNT_DETACH, current
    from pycont.kernel.mounts import parse_mountinfo

    with open("/proc/self/mountinfo") as f:
        points = [m.mount_point for m in parse_mountinfo(f.read())]
    for point in sorted((p for p in points if p.startswith(folder + os.sep)), reverse=True):
        with contextlib.suppress(OSError):
            current().umount2(point, MNT_DETACH)


def sessions_of(number: str, base: str) -> list[Session]:
    """The recorded sessions of chapter ``number`` under ``base``; folders without a
    readable record are not listed (nothing says whose they are)."""
    top = os.path.join(base, SESSIONS)
    found = []
    with contextlib.suppress(FileNotFoundError):
        for name in sorted(os.listdir(top)):
            if name.startswith(f"ch{number}-"):
                session = Session.load(os.path.join(top, name))
                if session is not None and session.number == number:
                    found.append(session)
    return found


def reclaim(number: str, base: str) -> list[str]:
    """Remove the sessions of chapter ``number`` whose owner has gone; what they held."""
    removed: list[str] = []
    for session in sessions_of(number, base):
        if not session.owner_alive():
            try:
                removed += session.remove()
            except (PycontError, OSError) as err:  # report it, and go on with the chapter
                removed.append(f"(not all of {session.dir}: {err})")
    return removed


def base_root() -> str:
    """The pycont root a new session goes under: the current one, unless that is itself a
    session folder (a chapter run again in the same kernel), then the root it was made in."""
    root = paths.root()
    parent, name = os.path.split(root)
    if os.path.basename(parent) == SESSIONS and _NAME.fullmatch(name):
        return os.path.dirname(parent)
    return root
