"""The CLI's resource verbs: stats, update, pause, unpause.

They act on a running container's cgroup: read its counters, write new limits into it live,
freeze and thaw it (the freezer controller).
"""

from __future__ import annotations

import argparse
from typing import Any

from pycont.cli._common import Verb, add_limit_flags, each, limit_options
from pycont.errors import UsageError


def cmd_update(a: argparse.Namespace) -> int:
    opts = limit_options(a)
    if not opts:
        raise UsageError("update: give at least one limit flag, e.g. --cpus 1 or -m 128m")
    return each(a.containers, lambda c: (c.update(**opts), None)[1])


def cmd_pause(a: argparse.Namespace) -> int:
    return each(a.containers, lambda c: c.pause())


def cmd_unpause(a: argparse.Namespace) -> int:
    return each(a.containers, lambda c: c.unpause())


def cmd_stats(a: argparse.Namespace) -> int:
    from pycont.stats_table import stats_loop

    return stats_loop(a.containers, stream=not a.no_stream, all=a.all)


def add_parsers(sub: Any) -> dict[str, Verb]:
    """Add the resource verbs; returns verb name -> handler."""
    p = sub.add_parser("update", help="change the resource limits of containers, live")
    add_limit_flags(p)
    p.add_argument("containers", nargs="+")

    p = sub.add_parser("stats", help="live CPU, memory, network, block I/O and pids of containers")
    p.add_argument("--no-stream", action="store_true", help="print one reading and exit")
    p.add_argument("-a", "--all", action="store_true", help="all containers (default: running)")
    p.add_argument("containers", nargs="*")

    for verb, what in (("pause", "freeze"), ("unpause", "thaw")):
        p = sub.add_parser(verb, help=f"{what} every process of containers (the freezer)")
        p.add_argument("containers", nargs="+")

    return {"update": cmd_update, "stats": cmd_stats, "pause": cmd_pause, "unpause": cmd_unpause}
