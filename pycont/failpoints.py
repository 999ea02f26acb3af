"""Failpoints: named steps where a test makes pycont die or fail, as containerd's failpoints.

A crash can happen between any two steps of a create, a start or a removal; the only way to know
that every such crash leaves something the next command can finish or remove is to crash there
on purpose. Code marks its steps with :func:`hit`; a test sets ``PYCONT_FAILPOINTS`` for the
process it starts (children such as the shim inherit it)::

    PYCONT_FAILPOINTS="create.config-written=kill"         SIGKILL at that step
    PYCONT_FAILPOINTS="rm.renamed=error,pause.frozen=kill"  several points
    PYCONT_FAILPOINTS="pull.layer-staged=kill@2"            on the 2nd time the step is reached

``kill`` sends SIGKILL to the process itself (nothing runs after it: no ``finally``, no atexit);
``error`` raises :class:`FailpointError` (the code's own error path runs).

The variable is read once, at import; with it unset, :func:`hit` is one dict lookup on an empty
dict. Every step is declared in :data:`STEPS` with what has happened when it is reached, so a
test can sweep them all.
"""

from __future__ import annotations

import os
import signal

from pycont.errors import PycontError

__all__ = ["STEPS", "FailpointError", "hit", "parse"]

ENV = "PYCONT_FAILPOINTS"

# name -> what has been done when the step is reached, one block per command, in the order of
# its steps. A name given to hit() must be here (checked when failpoints are on).
STEPS: dict[str, str] = {
    # -- create (pycont.runtime.api) --
    #
    # -- start (pycont.runtime.shim, in the shim) --
    #
    # -- exec (pycont.runtime.shim) --
    #
    # -- stop, kill --
    #
    # -- rm, container prune (pycont.runtime._container) --
    #
    # -- pause, unpause --
    #
    # -- update --
    #
    # -- commit --
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
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise FailpointError(f"failpoint {name}: injected error")
