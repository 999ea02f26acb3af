"""Failpoints: named steps where a test makes pycont die or fail, as containerd's failpoints.

A crash can happen between any two steps of a create, a start or a removal; the only way to know
that every such crash leaves something the next command can finish or remove is to crash there
on purpose. Code marks its steps with :func:`hit`; a test sets ``PYCONT_FAILPOINTS`` for the
process it starts (children such as the shim inherit it)::

    PYCONT_FAILPOINTS="create.config-written=kill"         SIGKILL at that step
    PYCONT_FAILPOINTS="rm.renamed=error,pause.frozen=kill"  several points
    PYCONT_FAILPOINTS="pull.layer-staged=kill@2"            on the 2nd time the step is reached

``kill`` sends SIGKILL to the process itself (nothing runs after it: no ``finally``, no atexit);
``error`` raises :class:`FailpointError` (the code's own error path runs). With
``PYCONT_FAILPOINTS_LOG=FILE`` too, each point that fires first appends ``NAME PID`` to FILE, so
a test knows its step was reached (a step that is never reached tests nothing).

The variable is read once, at import; with it unset, :func:`hit` is one dict lookup on an empty
dict. Every step is declared in :data:`STEPS` with what has happened when it is reached, so a
test can sweep them all.
"""

from __future__ import annotations

import fcntl
import os
import signal

from pycont.errors import PycontError

__all__ = ["STEPS", "FailpointError", "hit", "kept_fds", "parse"]

ENV = "PYCONT_FAILPOINTS"
LOG_ENV = "PYCONT_FAILPOINTS_LOG"

# name -> what has been done when the step is reached, one block per command, in the order of
# its steps. A name given to hit() must be here (checked when failpoints are on).
STEPS: dict[str, str] = {
    # -- create (pycont.runtime.api) --
    "create.dir-made": "the folder is made aside (containers/.creating/<id>), empty",
    "create.layers-prepared": "its upper, work and merged folders are made",
    "create.config-written": "network leases taken, its /etc files and config.json written",
    "create.state-written": "state.json written; the folder is not renamed into place yet",
    "create.published": "renamed into place: the container exists (created), lock released",
    #
    # -- start (pycont.runtime.shim, in the shim) --
    "start.cgroup-made": "the shim made the container's cgroup folders and set its limits",
    "start.forked": "the init is cloned (into its cgroup on v2) and waits for go; no maps, net",
    "start.go-sent": "the init was let go (cgroup, maps, network set); not yet known to exec",
    "start.exec-next": "in the init: root, user and confinement done, execve(2) is next",
    "start.running-recorded": "the state says running (pid, shim); the caller is not told yet",
    # -- exec (pycont.runtime.execshim) --
    "exec.forked": "the shim joined the container and forked the command's process",
    "exec.exec-next": "in the exec'd process: user and confinement done, execve(2) is next",
    # -- stop, kill --
    "stop.signalled": "SIGTERM sent to PID 1; a paused container not thawed yet",
    "stop.killed": "SIGKILL sent after stop's timeout; a paused container not thawed yet",
    "kill.signalled": "the signal sent to PID 1; a paused container not thawed yet",
    #
    # -- rm, container prune (pycont.runtime.removal) --
    "rm.killed": "its processes are killed (shim waited for), the folder still in place",
    "rm.renamed": "the folder is renamed aside (containers/.removing/<id>): the name is free",
    "rm.cgroups-removed": "helpers killed, its cgroup folders (every controller) removed",
    "rm.mounts-removed": "mounts under its folder detached; network and folder still there",
    #
    # -- pause, unpause --
    "pause.frozen": "the freezer holds the container; state.json still says running",
    "unpause.thawed": "the freezer let the container go; state.json still says paused",
    #
    # -- update --
    "update.journal-written": "pending-update.json holds the new limits; nothing applied",
    "update.kernel-set": "the cgroup holds the new limits; config.json not yet",
    #
    # -- commit --
    "commit.frozen": "commit-freeze written, the freezer holds the container; state running",
    "commit.layer-written": "the image is in the store; the container still frozen for it",
    #
    "commit.blobs-staged": "the layer tar is written in a staging folder; the store is untouched",
    "commit.published": "the new blobs and layer are in the store; index.json does not name them",
    # -- load --
    #
    "load.blobs-staged": "the archive is read and checked into a staging folder; store untouched",
    "load.published": "the images' blobs and layers are in the store; index.json not yet written",
    # -- pull --
    #
    "pull.layer-staged": "every blob is fetched into the .pull- staging folder; store untouched",
    "pull.published": "the fetched blobs are in the store; index.json does not name the image",
    # -- build --
    #
    "build.step-committed": "a step's layer and build cache entry are in the store",
    "build.published": "the image's blobs are in the store; index.json does not name it yet",
    # -- rmi, image prune --
    #
    "rmi.index-written": "index.json no longer names the image; its blobs are all still there",
    "rmi.blobs-removed": "the blobs and layers nothing names are deleted (gc done)",
    "prune.index-written": "index.json no longer names the dangling images; blobs still there",
}


class FailpointError(PycontError):
    """Raised at a failpoint set to ``error``."""


def parse(text: str) -> dict[str, tuple[str, int]]:
    """``"a=kill,b=error@2"`` -> ``{"a": ("kill", 1), "b": ("error", 2)}``; ValueError on a
    malformed entry (a typo must not silently test nothing)."""
    points: dict[str, tuple[str, int]] = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        name, sep, action = entry.partition("=")
        action, at, nth = action.partition("@")
        nth = nth if at else "1"
        if not sep or action not in ("kill", "error") or not nth.isdigit() or int(nth) < 1:
            raise ValueError(
                f"{ENV}: bad entry {entry!r}: expected NAME=kill or NAME=error, optionally @N"
            )
        points[name.strip()] = (action, int(nth))
    return points


_points = parse(os.environ.get(ENV, ""))
_seen: dict[str, int] = {}
# Opened now, not when a point fires: a step may be reached inside a container's mount
# namespace, where the log's path does not exist. Close-on-exec: the command never sees it.
# Moved above the low numbers the shim dup2(2)s its pipes onto (fcntl(2) F_DUPFD_CLOEXEC).
_log_fd = -1
if _points and os.environ.get(LOG_ENV):
    _fd = os.open(os.environ[LOG_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    _log_fd = fcntl.fcntl(_fd, fcntl.F_DUPFD_CLOEXEC, 200)
    os.close(_fd)


def kept_fds() -> tuple[int, ...]:
    """Descriptors a process that closes all others before exec must keep: the log's."""
    return (_log_fd,) if _log_fd >= 0 else ()


def hit(name: str) -> None:
    """Mark a step; does nothing unless a test set a failpoint on it."""
    if not _points:
        return
    if name not in STEPS:
        raise AssertionError(f"failpoint {name!r} is not declared in pycont.failpoints.STEPS")
    point = _points.get(name)
    if point is None:
        return
    _seen[name] = _seen.get(name, 0) + 1
    action, nth = point
    if _seen[name] != nth:
        return
    if _log_fd >= 0:
        # One write(2) with O_APPEND: whole lines, even from several processes (open(2)).
        os.write(_log_fd, f"{name} {os.getpid()}\n".encode())
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise FailpointError(f"failpoint {name}: injected error")
