"""The kernel seam: the only code in pycont that makes raw system calls.

Containers are made of a handful of syscalls: unshare(2)/clone(2) create namespaces, setns(2)
joins them, mount(2)/umount2(2)/pivot_root(2) build the container's root, sethostname(2) names
it. Everything above this package calls a :class:`Kernel`, so the course can swap in one that
records calls (unit tests without root) or one that narrates each call as it happens.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pycont.kernel._base import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    MNT_DETACH,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_SLAVE,
    Kernel,
    describe_flags,
)
from pycont.kernel.linux import LinuxKernel

if TYPE_CHECKING:
    from pycont.kernel.narrating import NarratingKernel
    from pycont.kernel.recording import Call, RecordingKernel

__all__ = [
    "CLONE_NEWCGROUP",
    "CLONE_NEWIPC",
    "CLONE_NEWNET",
    "CLONE_NEWNS",
    "CLONE_NEWPID",
    "CLONE_NEWUSER",
    "CLONE_NEWUTS",
    "MNT_DETACH",
    "MS_BIND",
    "MS_NODEV",
    "MS_NOEXEC",
    "MS_NOSUID",
    "MS_PRIVATE",
    "MS_RDONLY",
    "MS_REC",
    "MS_REMOUNT",
    "MS_SLAVE",
    "Call",
    "Kernel",
    "LinuxKernel",
    "NarratingKernel",
    "RecordingKernel",
    "current",
    "describe_flags",
    "use",
]

_LAZY = {
    "NarratingKernel": "pycont.kernel.narrating",
    "RecordingKernel": "pycont.kernel.recording",
    "Call": "pycont.kernel.recording",
}


def __getattr__(name: str) -> Any:
    # The recording and narrating kernels load on first use: the CLI and the shim start faster.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pycont.kernel' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


_current: Kernel = LinuxKernel()


def current() -> Kernel:
    """The kernel implementation in use in this process."""
    return _current


@contextlib.contextmanager
def use(kernel: Kernel) -> Iterator[Kernel]:
    """Use ``kernel`` for every syscall pycont makes in this process, until the block ends."""
    global _current
    previous, _current = _current, kernel
    try:
        yield kernel
    finally:
        _current = previous
