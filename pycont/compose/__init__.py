"""pycont compose: a compose.yaml project (services, networks, volumes) run on pycont.

:func:`load` reads and checks the file (loader.py, services.py, interpolate.py) into the
typed values of model.py; project.py plans ``up``/``down``/``ps``/``logs`` over an Engine,
and engine.py's RealEngine carries the plan out with pycont's own API.
"""

from __future__ import annotations

from pycont.compose.loader import FILES, find_file, load, parse
from pycont.compose.model import Build, Mount, NetworkDef, Project, Service, VolumeDef

__all__ = [
    "FILES",
    "Build",
    "Mount",
    "NetworkDef",
    "Project",
    "Service",
    "VolumeDef",
    "find_file",
    "load",
    "parse",
]
