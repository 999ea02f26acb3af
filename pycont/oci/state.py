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
from pycont.fsutil import write_json
from pycont.oci.bundle import check_id
from pycont.oci.cgroup import from_json
from pycont.procfs import running_start_time

__all__ = ["DEFAULT_ROOT", "OCI_VERSION", "State", "StateDir"]

DEFAULT_ROOT = "/run/pycont-oci"
OCI_VERSION = "1.0.2"  # the runtime-spec version this runtime implements


@dataclass
class State:
    """What ``create`` recorded (the runtime-spec state, less the status, which is live)."""

    id: str
    pid: int
    bundle: str
    started_at: int  # the init's start time (procfs.running_start_time)
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
        write_json(self.state_path, asdict(state))

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
        if running_start_time(state.pid) != state.started_at:
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
