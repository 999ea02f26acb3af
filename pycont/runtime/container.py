"""Containers: the :class:`Container` handle and the functions that make and find them.

The facade of the runtime for the tools above it (CLI, magics, monitor): the class lives in
:mod:`._container`, create/run/get/containers in :mod:`.api`, the options in :mod:`.spec`.
"""

from __future__ import annotations

from pycont.runtime._container import DEVNULL, PIPE, STDOUT, Container, ExecResult
from pycont.runtime.api import config_dict, containers, create, create_from_spec, get, run
from pycont.runtime.spec import LIMIT_OPTIONS, RunSpec

__all__ = [
    "DEVNULL",
    "LIMIT_OPTIONS",
    "PIPE",
    "STDOUT",
    "Container",
    "ExecResult",
    "RunSpec",
    "config_dict",
    "containers",
    "create",
    "create_from_spec",
    "get",
    "run",
]
