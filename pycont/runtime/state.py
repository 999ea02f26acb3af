"""A container's status and its record on disk.

The status is a small state machine (created → running → exited → removed); an illegal
transition raises with the current status in the message. The record is one JSON file per
container, always replaced atomically (write a temporary file, then rename(2)), so a reader
never sees half of it, even when the helper that writes it is killed.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from pycont import paths
from pycont.errors import InvalidState, UsageError

# docker's rule for container names: [a-zA-Z0-9][a-zA-Z0-9_.-]+
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


class Status(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    EXITED = "exited"

    def can_start(self) -> bool:
        return self is Status.CREATED

    def can_exec(self) -> bool:
        return self is Status.RUNNING

    def can_kill(self) -> bool:
        return self in (Status.RUNNING, Status.PAUSED)

    def can_remove(self, force: bool) -> bool:
        return force or self in (Status.CREATED, Status.EXITED)


_TRANSITIONS = {
    Status.CREATED: {Status.RUNNING, Status.EXITED},
    Status.RUNNING: {Status.PAUSED, Status.EXITED},
    Status.PAUSED: {Status.RUNNING, Status.EXITED},
    Status.EXITED: set(),
}


def check_transition(current: Status, new: Status, name: str) -> None:
    if new not in _TRANSITIONS[current]:
        raise InvalidState(f"container {name} is {current.value}: cannot become {new.value}")


@dataclass
class ContainerConfig:
    """How to run the container: fixed when it is created."""

    id: str
    name: str
    image: str
    layers: list[str]
    args: list[str]
    env: list[str]
    workdir: str
    hostname: str
    namespaces: dict[str, str]
    detach: bool = False
    interactive: bool = False
    auto_remove: bool = False
    rootless: bool = False
    uid_map: list[list[int]] = field(default_factory=list)
    gid_map: list[list[int]] = field(default_factory=list)
    narrate: bool = False
    # Resource limits as docker's flag values (pycont.cgroups.Limits.as_options()).
    limits: dict[str, Any] = field(default_factory=dict)
    # Whether the container has its own cgroup; if not, why (shown by inspect and stats).
    cgroup: bool = False
    cgroup_note: str = ""
    image_id: str = ""
    storage_driver: str = "overlay"  # "vfs" copies the layers (PYCONT_STORAGE_DRIVER=vfs)
    # Volumes and bind mounts (pycont.volumes.Mount as dicts).
    mounts: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ContainerState:
    """What the container is doing: written by whoever changes it, read by everyone."""

    status: str = Status.CREATED.value
    pid: int = 0
    monitor_pid: int = 0
    pid_start: int = 0
    created: float = field(default_factory=time.time)
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int | None = None
    oom_killed: bool = False
    error: str = ""


def write_json(path: str, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically: a reader sees the old file or the new one, never a mix."""
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # rename(2) is atomic for readers. No fsync: this is runtime state (docker keeps its own
    # in /run, a tmpfs), and an fsync per write would cost more than the container start.
    os.rename(tmp, path)


def read_json(path: str) -> dict[str, Any]:
    with open(path) as f:
        data: dict[str, Any] = json.load(f)
    return data


def container_dir(cid: str) -> str:
    return os.path.join(paths.containers_dir(), cid)


def save_config(cfg: ContainerConfig) -> None:
    write_json(os.path.join(container_dir(cfg.id), "config.json"), asdict(cfg))


def load_config(cdir: str) -> ContainerConfig:
    return ContainerConfig(**read_json(os.path.join(cdir, "config.json")))


def save_state(cdir: str, st: ContainerState) -> None:
    write_json(os.path.join(cdir, "state.json"), asdict(st))


@contextlib.contextmanager
def modify_state(cdir: str) -> Iterator[ContainerState]:
    """Read, change and save the state under the container's lock: the shim (which records
    the exit) and a caller (pause, unpause) never overwrite each other's change."""
    fd = os.open(os.path.join(cdir, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        rec = load_state(cdir)
        yield rec
        save_state(cdir, rec)
    finally:
        os.close(fd)


def load_state(cdir: str) -> ContainerState:
    return ContainerState(**read_json(os.path.join(cdir, "state.json")))


@contextlib.contextmanager
def store_lock() -> Iterator[None]:
    """Serialise creations and removals: names stay unique across processes (flock(2))."""
    os.makedirs(paths.containers_dir(), exist_ok=True)
    fd = os.open(os.path.join(paths.root(), "containers.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def validate_name(name: str) -> None:
    if not NAME_RE.fullmatch(name) or len(name) > 128:
        raise UsageError(
            f"invalid container name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, "
            "at least 2 characters"
        )


def process_start_time(pid: int) -> int:
    """Field 22 of /proc/<pid>/stat (proc(5)): with the pid, it names one process for good."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return 0
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # exited, not yet reaped: it runs no more
        return 0
    return int(fields[19])


def alive(pid: int, start: int) -> bool:
    """The process that had this pid and start time still runs (a zombie does not count)."""
    return pid > 0 and process_start_time(pid) == start


def remove_tree(path: str) -> None:
    """rm -rf that also removes what the owner cannot read: overlayfs leaves ``work/work``
    with mode 000, and files made inside a user namespace may not be writable to us."""
    import shutil
    import stat

    def fix(func: Any, p: str, _exc: Any) -> None:
        parent = os.path.dirname(p)
        with contextlib.suppress(OSError):
            os.chmod(parent, stat.S_IRWXU)
            if os.path.isdir(p) and not os.path.islink(p):
                os.chmod(p, stat.S_IRWXU)
                shutil.rmtree(p, onerror=fix)
                return
        with contextlib.suppress(FileNotFoundError):
            func(p)

    if os.path.lexists(path):
        shutil.rmtree(path, onerror=fix)
