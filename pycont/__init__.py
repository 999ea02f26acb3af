"""pycont: a small, real container runtime in Python, and the engine of the container course.

    >>> import pycont
    >>> c = pycont.run("busybox", ["sh", "-c", "echo $$; hostname"], rm=True)
    >>> c.output
    '1\\n...\\n'

Heavy parts are imported on first use, so the CLI and the helper process start fast.
"""

from __future__ import annotations

import importlib

from pycont.errors import (
    ArchiveError,
    CommandNotExecutable,
    CommandNotFound,
    ContainerNotFound,
    ContainerTimeout,
    CorruptBlob,
    ImageInUse,
    ImageNotFound,
    InvalidState,
    KernelError,
    LayerError,
    NameConflict,
    NetworkError,
    NetworkNotFound,
    PycontError,
    RegistryError,
    StartError,
    Unsupported,
    UsageError,
    VolumeNotFound,
)

# Not typing's: `import typing` costs ~10 ms (re, collections, functools), paid by every
# `pycont` command through this package's import (the thin client imports nothing else).
TYPE_CHECKING = False

__version__ = "0.1.0"

__all__ = [
    "ArchiveError",
    "CommandNotExecutable",
    "CommandNotFound",
    "Container",
    "ContainerNotFound",
    "ContainerTimeout",
    "CorruptBlob",
    "ExecResult",
    "ImageInUse",
    "ImageNotFound",
    "LayerError",
    "VolumeNotFound",
    "InvalidState",
    "KernelError",
    "NameConflict",
    "NetworkError",
    "NetworkNotFound",
    "PycontError",
    "RegistryError",
    "StartError",
    "Unsupported",
    "UsageError",
    "build",
    "containers",
    "create",
    "get",
    "load_ipython_extension",
    "probe",
    "pull",
    "push",
    "run",
    "stats",
    "unload_ipython_extension",
]

_LAZY = {
    "Container": "pycont.runtime.container",
    "ExecResult": "pycont.runtime.container",
    "build": "pycont.builder.build",
    "containers": "pycont.runtime.api",
    "create": "pycont.runtime.api",
    "get": "pycont.runtime.api",
    "run": "pycont.runtime.api",
    "probe": "pycont.kernel.probe",
    "pull": "pycont.images.registry",
    "push": "pycont.images.registry",
    "stats": "pycont.stats_table",
}

if TYPE_CHECKING:
    import typing

    from pycont.builder.build import build
    from pycont.images.registry import pull, push
    from pycont.kernel.probe import probe
    from pycont.runtime.api import containers, create, get, run
    from pycont.runtime.container import Container, ExecResult
    from pycont.stats_table import stats


def __getattr__(name: str) -> typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pycont' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def load_ipython_extension(ipython: typing.Any) -> None:
    """``%load_ext pycont``: registers the magics."""
    from pycont.magics import load

    load(ipython)


def unload_ipython_extension(ipython: typing.Any) -> None:
    from pycont.magics import unload

    unload(ipython)
