"""A container's status and its record on disk.

The status is a small state machine (created → running ⇄ paused → exited, and exited → created
again for ``docker start``); every change goes through :func:`transition`, which checks it
against one table and raises with the current status when it is illegal. The record is one JSON
file per container, always replaced atomically (write a temporary file, then rename(2)), so a
reader never sees half of it, even when the helper that writes it is killed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from pycont import paths, procfs
from pycont.cgroups.limits import Limits
from pycont.errors import InvalidState, PycontError
from pycont.fsutil import read_json, write_json
from pycont.net.config import NetConfig
from pycont.runtime import mon
from pycont.runtime.spec import limits_from_json, limits_to_json
from pycont.security.options import SecurityOptions
from pycont.volumes import Mount

_T = TypeVar("_T")


class Status(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    EXITED = "exited"
    # Never written: what a container is when its record cannot be read (a folder damaged by
    # hand, or by a pycont older than the transactional create). docker's word, and its rule:
    # it can only be removed.
    DEAD = "dead"

    def can_start(self) -> bool:
        # docker start also takes a stopped container: it runs again on the same layer.
        return self in (Status.CREATED, Status.EXITED)

    def can_exec(self) -> bool:
        return self is Status.RUNNING

    def can_kill(self) -> bool:
        return self in (Status.RUNNING, Status.PAUSED)

    def can_remove(self, force: bool) -> bool:
        return force or self in (Status.CREATED, Status.EXITED, Status.DEAD)


# Restarting an exited container goes back through CREATED: start() resets the record of the
# last run (exit code, OOM kill, error) under the lock, then the shim moves it to RUNNING as for
# a new container. No record ever says "running" with the previous run's exit code.
_TRANSITIONS = {
    Status.CREATED: {Status.RUNNING, Status.EXITED},
    Status.RUNNING: {Status.PAUSED, Status.EXITED},
    Status.PAUSED: {Status.RUNNING, Status.EXITED},
    Status.EXITED: {Status.CREATED},
    Status.DEAD: set(),
}


def check_transition(current: Status, new: Status, name: str) -> None:
    """The one rule of the lifecycle: raise unless ``current`` may become ``new``."""
    if new not in _TRANSITIONS[current]:
        raise InvalidState(f"container {name} is {current.value}: cannot become {new.value}")


@dataclass
class ContainerConfig:
    """How to run the container: fixed when it is created (but for ``update``'s limits)."""

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
    # Resource limits, parsed once (config.json holds numbers: see spec.limits_to_json).
    limits: Limits = field(default_factory=Limits)
    # Whether the container has its own cgroup; if not, why (shown by inspect and stats).
    cgroup: bool = False
    cgroup_note: str = ""
    image_id: str = ""
    storage_driver: str = "overlay"  # "vfs" copies the layers (PYCONT_STORAGE_DRIVER=vfs)
    # Volumes and bind mounts, their host folders resolved when the container was created.
    mounts: list[Mount] = field(default_factory=list)
    # Capabilities, seccomp, masked paths, read-only root (pycont.security).
    security: SecurityOptions = field(default_factory=SecurityOptions)
    # docker's --user (or the image's USER), resolved in the container's /etc/passwd at each
    # start (pycont.runtime.users); "" runs the command as root, as before pycont had it.
    user: str = ""
    # Its network (pycont.net.config): mode, addresses leased on its networks, ports, shaping.
    network: NetConfig = field(default_factory=NetConfig)
    labels: dict[str, str] = field(default_factory=dict)
    exposed_ports: list[str] = field(default_factory=list)  # the image's EXPOSE: "3000/tcp"


@dataclass
class ContainerState:
    """What the container is doing: changed only through :func:`transition`."""

    status: Status = Status.CREATED
    pid: int = 0
    shim_pid: int = 0
    shim_start: int = 0
    pid_start: int = 0
    created: float = field(default_factory=time.time)
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int | None = None
    oom_killed: bool = False
    # The kernel's memory high-water mark, read as the cgroup closes (memory.peak, v1
    # memory.max_usage_in_bytes): an allocation that OOM-kills between two samples shows here.
    memory_peak: int | None = None
    error: str = ""

    def __post_init__(self) -> None:
        self.status = Status(self.status)  # state.json holds the string value


_STATE_FIELDS = {f.name for f in dataclasses.fields(ContainerState)}


def container_dir(cid: str) -> str:
    return os.path.join(paths.containers_dir(), cid)


def save_config(cfg: ContainerConfig, cdir: str | None = None) -> None:
    """Write config.json in ``cdir`` (default: the container's folder; a creation writes it in
    the folder it builds aside, see :mod:`.staging`)."""
    doc = asdict(cfg)
    doc["limits"] = limits_to_json(cfg.limits)
    doc["security"] = cfg.security.to_json()
    doc["network"] = cfg.network.to_json()
    write_json(os.path.join(cdir or container_dir(cfg.id), "config.json"), doc)


class MalformedRecord(ValueError):
    """A record that is JSON but not a record: not an object, fields missing or of the wrong
    type, or nested too deep for the parser."""


def _load(path: str, build: Callable[[dict[str, Any]], _T]) -> _T:
    """``build`` of the JSON object in ``path``: OSError, json's ValueError, a parser's
    ValueError or PycontError for a value it refuses, MalformedRecord for the rest."""
    try:
        doc = read_json(path)
    except RecursionError:
        raise MalformedRecord("nested too deep to parse") from None
    if not isinstance(doc, dict):
        raise MalformedRecord(f"expected a JSON object, got {type(doc).__name__}")
    try:
        return build(doc)
    except (TypeError, KeyError, AttributeError, RecursionError) as err:
        raise MalformedRecord(f"{type(err).__name__}: {err}") from None


def _config_from(doc: dict[str, Any]) -> ContainerConfig:
    doc["limits"] = limits_from_json(doc.get("limits") or {})
    doc["mounts"] = [Mount(**m) for m in doc.get("mounts") or []]
    doc["security"] = SecurityOptions.from_json(doc.get("security"))
    doc["network"] = NetConfig.from_json(doc.get("network"))
    return ContainerConfig(**doc)


def load_config(cdir: str) -> ContainerConfig:
    return _load(os.path.join(cdir, "config.json"), _config_from)


def save_state(cdir: str, rec: ContainerState) -> None:
    write_json(os.path.join(cdir, "state.json"), asdict(rec))


def _state_from(doc: dict[str, Any]) -> ContainerState:
    if "monitor_pid" in doc:  # written by pycont 0.1 before the shim had its name
        doc.setdefault("shim_pid", doc.pop("monitor_pid"))
    return ContainerState(**{k: v for k, v in doc.items() if k in _STATE_FIELDS})


def load_state(cdir: str) -> ContainerState:
    return _load(os.path.join(cdir, "state.json"), _state_from)


# What loading a damaged record raises: a missing or unreadable file (OSError), a malformed one
# (ValueError, see _load), a value the parsers refuse (PycontError).
UNREADABLE = (OSError, ValueError, PycontError)


def damage(cdir: str) -> str:
    """Why the container in ``cdir`` cannot be used, or "" when its config and state load.

    Pure reading: a folder with a missing or unreadable record is reported, never repaired
    here (the user removes it: ``rm -f``, ``container prune``)."""
    if not os.path.isdir(cdir):
        return "its folder is not a folder"
    missing = [
        f for f in ("config.json", "state.json") if not os.path.exists(os.path.join(cdir, f))
    ]
    if missing:
        return f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing"
    for what, load in (("config.json", load_config), ("state.json", load_state)):
        try:
            load(cdir)
        except json.JSONDecodeError:
            return f"{what} is not valid JSON"
        except MalformedRecord as err:
            return f"{what} cannot be read: {err}"
        except ValueError as err:  # a status that is not one
            return f"{what} holds an invalid value: {err}"
        except UNREADABLE as err:
            return f"{what} cannot be read: {err or type(err).__name__}"
    return ""


def dead_state(cdir: str, reason: str) -> ContainerState:
    """The record shown for a container whose own cannot be read: status dead, and why."""
    try:
        created = os.lstat(cdir).st_mtime
    except OSError:
        created = 0.0
    return ContainerState(status=Status.DEAD, created=created, error=reason)


@contextlib.contextmanager
def _locked(cdir: str) -> Iterator[None]:
    """The container's lock (flock(2)): the shim (which records the exit) and a caller (pause,
    start) never overwrite each other's change."""
    fd = os.open(os.path.join(cdir, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def locked(cdir: str) -> contextlib.AbstractContextManager[None]:
    """The container's lock, for pause, update and commit. Not reentrant (a second flock(2) on
    a new file description waits for the first): nothing run under it may call transition()."""
    return _locked(cdir)


def transition_held(cdir: str, new: Status, **fields: Any) -> ContainerState:
    """:func:`transition` for a caller that already holds the lock (:func:`locked`): the
    kernel and the record change under one lock (pause, commit's freeze)."""
    rec = load_state(cdir)
    if new not in _TRANSITIONS[rec.status]:
        # Only now read the name for the message: a legal change costs no config read.
        check_transition(rec.status, new, _name(cdir))
    rec = dataclasses.replace(rec, status=new, **fields)
    save_state(cdir, rec)
    return rec


def _recorded_name(cdir: str) -> str:
    """The name in the container's config.json, without loading the rest; "" if unreadable."""
    try:
        doc = read_json(os.path.join(cdir, "config.json"))
    except (OSError, ValueError, RecursionError):
        return ""
    return str(doc["name"]) if isinstance(doc, dict) and "name" in doc else ""


def _name(cdir: str) -> str:
    """The container's name for a message (its short id if the config cannot be read)."""
    return _recorded_name(cdir) or os.path.basename(cdir)[:12]


def advanced(rec: ContainerState, new: Status, name: str, **fields: Any) -> ContainerState:
    """``rec`` after the transition to ``new`` (checked), with ``fields`` changed. Pure: for a
    record no longer on disk (a --rm container); everything else uses :func:`transition`."""
    check_transition(rec.status, new, name)
    return dataclasses.replace(rec, status=new, **fields)


def transition(cdir: str, new: Status, **fields: Any) -> ContainerState:
    """Move the container to ``new`` and set ``fields``, under its lock; returns the new record.

    Raises InvalidState (naming the current status) if the table does not allow it, and
    FileNotFoundError if the container has been removed."""
    with _locked(cdir):
        return transition_held(cdir, new, **fields)


def reconcile(cdir: str) -> ContainerState:
    """The record, repaired if the shim (or pycont-mon) was killed before it recorded the end.

    - The container's first process and its monitor are both gone: the monitor died, and
      with it an attached container (PR_SET_PDEATHSIG). Recorded as exited, with the code
      pycont-mon wrote to ``exit`` if it got that far, else 137.
    - A running container whose monitor is gone (a detached one outlives it): adopted by a new
      pycont-mon (:func:`.mon.adopt`), which will record how it ends (docker's live restore).

    (A created one whose shim died with processes left: :func:`.shimlock.reap`.)"""
    rec = load_state(cdir)
    if _orphaned(rec):
        with _locked(cdir):
            rec = load_state(cdir)  # the shim may have recorded the end meanwhile
            if _orphaned(rec):
                rec = _ended_unwatched(cdir, rec)
                save_state(cdir, rec)
        return rec
    if _ending(rec):
        code = mon.recorded_exit(cdir)
        if code is not None:
            # pycont-mon saw the end and its finish step is about to record it: shown now,
            # written by that step (a start meanwhile would race its clean-up).
            when = rec.finished_at or mon.exit_time(cdir)
            return advanced(rec, Status.EXITED, _name(cdir), exit_code=code, finished_at=when)
    if _unwatched(rec):
        with _try_locked(cdir) as got:  # never wait: a reader must not block on this
            rec = load_state(cdir)
            if got and _unwatched(rec):
                new = mon.adopt(cdir, rec.pid, rec.pid_start)
                if new:
                    rec = dataclasses.replace(rec, shim_pid=new, shim_start=procfs.start_time(new))
                    save_state(cdir, rec)
    return rec


def _ended_unwatched(cdir: str, rec: ContainerState) -> ContainerState:
    code = mon.recorded_exit(cdir)  # pycont-mon's, if only its finish step died
    if code is None:
        code = 137 if rec.exit_code is None else rec.exit_code
        why = rec.error or "the pycont shim died; the container was killed"
    else:
        why = rec.error
    return advanced(
        rec,
        Status.EXITED,
        _name(cdir),
        exit_code=code,
        error=why,
        finished_at=rec.finished_at or time.time(),
    )


@contextlib.contextmanager
def _try_locked(cdir: str) -> Iterator[bool]:
    """The container's lock if it is free now (yields True), else False at once."""
    fd = os.open(os.path.join(cdir, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            got = True
        except BlockingIOError:
            got = False
        yield got
    finally:
        os.close(fd)


def _shim_alive(rec: ContainerState) -> bool:
    return bool(rec.shim_start and procfs.alive(rec.shim_pid, rec.shim_start))


def _orphaned(rec: ContainerState) -> bool:
    if rec.status not in (Status.RUNNING, Status.PAUSED) or procfs.alive(rec.pid, rec.pid_start):
        return False
    # The container's process is gone; a live shim is about to record how it ended.
    return not _shim_alive(rec)


def _ending(rec: ContainerState) -> bool:
    """Its process is gone and its monitor lives: the end is being recorded."""
    return (
        rec.status in (Status.RUNNING, Status.PAUSED)
        and not procfs.alive(rec.pid, rec.pid_start)
        and _shim_alive(rec)
    )


def _unwatched(rec: ContainerState) -> bool:
    """Running, and the monitor on record is gone: nobody would record its end."""
    return (
        rec.status in (Status.RUNNING, Status.PAUSED)
        and bool(rec.pid_start and rec.shim_start)
        and procfs.alive(rec.pid, rec.pid_start)
        and not _shim_alive(rec)
    )


@contextlib.contextmanager
def store_lock() -> Iterator[None]:
    """Serialise creations and removals: names stay unique across processes (flock(2)).

    A creation or a removal holds it from its first step to its last, so whoever holds it
    knows that a folder half made or half removed (:mod:`.staging`) was left by a crash."""
    fd = _open_store_lock()
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def try_store_lock() -> Iterator[bool]:
    """The store lock if it is free now (yields True), else nothing (False): listing tidies
    up after crashes when it can, and never waits for a creation to do so."""
    fd = _open_store_lock()
    try:
        # flock(2): LOCK_NB fails with EWOULDBLOCK (BlockingIOError) while it is held, also by
        # this very process through another descriptor (a listing inside a creation).
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        got = True
    except BlockingIOError:
        got = False
    try:
        yield got
    finally:
        os.close(fd)


def _open_store_lock() -> int:
    os.makedirs(paths.containers_dir(), exist_ok=True)
    path = os.path.join(paths.root(), "containers.lock")
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def is_container_entry(entry: str) -> bool:
    """Whether a name in the containers folder is a container: the folders being made or
    removed (``.creating``, ``.removing``, see :mod:`.staging`) start with a dot."""
    return not entry.startswith(".")


def ids_and_names() -> dict[str, str]:
    """id -> name of every container in the store; a container whose config cannot be read
    (dead) is listed with the name "": found by its id, it can still be removed."""
    out = {}
    base = paths.containers_dir()
    for cid in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        if not is_container_entry(cid):
            continue
        out[cid] = _recorded_name(os.path.join(base, cid))
    return out
