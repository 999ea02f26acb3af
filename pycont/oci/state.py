"""The runtime's state directory: what ``create`` leaves for the other operations.

One folder per container under ``--root`` (default /run/pycont-oci): ``state.json`` (pid, bundle,
the init's start time, the cgroup made), a copy of ``config.json`` (exec and delete read it, not
the bundle, which may have changed) and ``exec.fifo``, on which a created container's init waits
until ``start`` reads it (runtime.md: "created" until then). The status is never stored: it is
read from the kernel each time (is the pid alive, is it still the same process, is the fifo there).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from typing import Any

from pycont.errors import ContainerNotFound, NameConflict
from pycont.oci.bundle import check_id
from pycont.oci.cgroup import from_json

__all__ = ["DEFAULT_ROOT", "OCI_VERSION", "State", "StateDir", "start_time"]

DEFAULT_ROOT = "/run/pycont-oci"
OCI_VERSION = "1.0.2"  # the runtime-spec version this runtime implements


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (proc(5)): when the process started, in clock ticks since
    boot. A pid may be reused; pid + start time names one process. None: no such process, or a
    zombie (it has exited; its parent has not reaped it yet)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = raw[raw.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


@dataclass
class State:
    """What ``create`` recorded (the runtime-spec state, less the status, which is live)."""

    id: str
    pid: int
    bundle: str
    started_at: int  # the init's start time (start_time(pid))
    created: str  # ISO time
    annotations: dict[str, str] = field(default_factory=dict)
    cgroup: dict[str, Any] = field(default_factory=dict)  # OciCgroup.to_json()
    owner: int = 0


class StateDir:
    """``ROOT/ID``: the files of one container."""

    def __init__(self, root: str, cid: str) -> None:
        self.root = os.path.abspath(root)
        self.id = check_id(cid)
        self.path = os.path.join(self.root, self.id)

    @property
    def fifo(self) -> str:
        return os.path.join(self.path, "exec.fifo")

    @property
    def config_path(self) -> str:
        return os.path.join(self.path, "config.json")

    @property
    def state_path(self) -> str:
        return os.path.join(self.path, "state.json")

    def exists(self) -> bool:
        return os.path.isdir(self.path)

    def make(self) -> None:
        """Create the folder; NameConflict if a container has this id (mkdir(2) is atomic)."""
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        try:
            os.mkdir(self.path, 0o711)
        except FileExistsError as err:
            raise NameConflict(f"container {self.id} already exists") from err

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def save(self, state: State) -> None:
        write_atomic(self.state_path, json.dumps(asdict(state), indent=1) + "\n")

    def load(self) -> State:
        try:
            with open(self.state_path, encoding="utf-8") as f:
                doc = json.load(f)
        except FileNotFoundError as err:
            raise ContainerNotFound(f"container {self.id} does not exist") from err
        return State(**doc)

    def config(self) -> dict[str, Any]:
        with open(self.config_path, encoding="utf-8") as f:
            doc: dict[str, Any] = json.load(f)
        return doc

    def status(self, state: State) -> str:
        """created | running | paused | stopped, from the kernel (runtime.md's states; paused
        is runc's: the cgroup is frozen)."""
        if start_time(state.pid) != state.started_at:
            return "stopped"
        if os.path.exists(self.fifo):
            return "created"
        cg = from_json(state.cgroup)
        with contextlib.suppress(OSError):
            if cg is not None and cg.frozen():
                return "paused"
        return "running"

    def report(self, state: State) -> dict[str, Any]:
        """The state JSON of runtime.md ("Query State")."""
        status = self.status(state)
        out: dict[str, Any] = {
            "ociVersion": OCI_VERSION,
            "id": state.id,
            "status": status,
            "pid": state.pid if status != "stopped" else 0,
            "bundle": state.bundle,
            "rootfs": "",
            "created": state.created,
            "owner": "",
        }
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            out["rootfs"] = os.path.join(state.bundle, str(self.config()["root"]["path"]))
        if state.annotations:
            out["annotations"] = state.annotations
        return out


def write_atomic(path: str, text: str, mode: int = 0o644) -> None:
    """Write a file whole or not at all: a reader never sees half of it (rename(2))."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.rename(tmp, path)
