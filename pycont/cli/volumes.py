"""The CLI's volume verbs: ``pycont volume create|ls|inspect|rm|prune``.

A named volume is a directory pycont keeps outside every container's read/write layer, so its
data outlives the containers that mount it (``-v NAME:/path``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pycont.cli._common import Verb, table
from pycont.errors import PycontError


# -- verbs ---------------------------------------------------------------------------------
def cmd_volume(a: argparse.Namespace) -> int:
    from pycont import volumes

    if a.volume_verb == "create":
        print(volumes.create(a.name))
    elif a.volume_verb == "ls":
        table(("DRIVER", "VOLUME NAME"), [("local", n) for n in volumes.names()])
    elif a.volume_verb == "inspect":
        print(json.dumps([volumes.inspect(n) for n in a.names], indent=4))
    elif a.volume_verb == "rm":
        rc = 0
        for n in a.names:
            try:
                volumes.remove(n, force=a.force)
                print(n)
            except PycontError as err:
                print(f"Error response from daemon: {err}", file=sys.stderr)
                rc = 1
        return rc
    elif a.volume_verb == "prune":
        for n in volumes.names():
            if not volumes.users(n):
                volumes.remove(n)
                print(f"Deleted Volume: {n}")
    return 0


# -- parser --------------------------------------------------------------------------------
def add_parsers(sub: Any) -> dict[str, Verb]:
    """Add the volume verb; returns verb name -> handler."""
    p = sub.add_parser("volume", help="manage volumes: create, ls, inspect, rm, prune")
    vsub = p.add_subparsers(dest="volume_verb", metavar="COMMAND")
    vsub.required = True
    vsub.add_parser("create", help="create a named volume").add_argument("name")
    vsub.add_parser("ls", help="list volumes")
    vsub.add_parser("inspect", help="a volume's mount point and users, as JSON").add_argument(
        "names", nargs="+"
    )
    q = vsub.add_parser("rm", help="remove volumes and their data (refused while in use)")
    q.add_argument("-f", "--force", action="store_true")
    q.add_argument("names", nargs="+")
    vsub.add_parser("prune", help="remove the volumes no container uses")

    return {"volume": cmd_volume}
