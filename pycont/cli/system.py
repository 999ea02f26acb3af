"""The CLI's system verbs: ``pycont system df|prune|check`` (disk used, reclaimed, and the
store checked), ``pycont system server status|stop`` (the command server, pycont.cliserver) and
``pycont doctor`` (what this machine allows pycont to do, and why).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pycont.cli._common import Verb, created_ago, table, with_containers
from pycont.errors import UsageError
from pycont.format import decimal_size


def _repo_tag(reference: str) -> tuple[str, str]:
    repo, _, tag = reference.rpartition(":")
    return repo, tag


# -- verbs ---------------------------------------------------------------------------------
def cmd_server(a: argparse.Namespace) -> int:
    import time

    from pycont import cliserver

    if a.server_verb == "stop":
        for pid in cliserver.stop():
            print(f"stopped server {pid}")
        return 0
    found = cliserver.servers()
    if not found:
        print(f"no command server in {cliserver.client.server_dir()}")
        return 0
    for info in found:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["started"])))
        for label, value in (
            ("socket", info["socket"]),
            ("pid", info["pid"]),
            ("key", info["key"]),
            ("package", info["package"]),
            ("idle timeout", f"{info['idle']:g}s"),
            ("started", started),
        ):
            print(f"{label + ':':<14}{value}")
    return 0


def cmd_system(a: argparse.Namespace) -> int:
    if a.system_verb == "server":
        return cmd_server(a)
    from pycont.images import Store

    with_containers()
    if a.system_verb == "df":
        du = Store().disk_usage()
        if a.verbose:
            print("Images space usage:\n")
            table(
                (
                    "REPOSITORY",
                    "TAG",
                    "IMAGE ID",
                    "CREATED",
                    "SIZE",
                    "SHARED SIZE",
                    "UNIQUE SIZE",
                    "CONTAINERS",
                ),
                [
                    (
                        *_repo_tag(u.reference),
                        u.id.split(":", 1)[1][:12],
                        created_ago(u.created),
                        decimal_size(u.size),
                        decimal_size(u.shared_size),
                        decimal_size(u.unique_size),
                        str(u.containers),
                    )
                    for u in du.images
                ],
            )
            print(
                f"\nTotal: {decimal_size(du.total)} in {du.layers} distinct layers "
                f"(the sum of image sizes would be {decimal_size(du.naive_total)}: "
                "shared layers are stored once)"
            )
        else:
            steps, cache_size = Store().build_cache_usage()
            # docker's columns: images counted by id, their layers once; RECLAIMABLE is what
            # no container's image needs, with its share of SIZE as docker prints it
            share = f" ({100 * du.reclaimable // du.total}%)" if du.total else ""
            table(
                ("TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"),
                [
                    (
                        "Images",
                        str(du.count),
                        str(du.active),
                        decimal_size(du.total),
                        decimal_size(du.reclaimable) + share,
                    ),
                    (
                        "Build Cache",
                        str(steps),
                        "0",
                        decimal_size(cache_size),
                        decimal_size(cache_size),
                    ),
                ],
            )
        return 0
    if a.system_verb == "prune":
        if not a.force:
            print(
                "WARNING! This removes all stopped containers, all networks not used by at "
                f"least one container and {'all unused' if a.all else 'dangling'} images "
                "(use -f to skip this note)",
                file=sys.stderr,
            )
        from pycont.runtime.api import prune

        for cid in prune():  # exited and dead containers, and what crashes left
            print(f"Deleted Container: {cid}")
        from pycont.net import networks

        for name in networks.prune():
            print(f"Deleted Network: {name}")
        # The default network stays, as docker's does; its idle bridge goes (made again by the
        # next container on it), since pycont has no daemon that would remove it at the end.
        if bridge := networks.remove_idle_default():
            print(f"Deleted Bridge: {bridge} (of the default network, made again when needed)")
        reclaimed = Store().prune(dangling=not a.all, build_cache=True)
        print(f"Total reclaimed space: {decimal_size(reclaimed)}")
        return 0
    if a.system_verb == "check":
        from pycont.images.fsck import check

        report = check(Store(), repair=a.repair)
        for line in report.lines():
            print(line)
        return 0 if report.clean else 1
    raise UsageError("system: expected df, prune, check or server")


def cmd_doctor(a: argparse.Namespace) -> int:
    from pycont.doctor import doctor_text
    from pycont.kernel.probe import probe

    print(doctor_text(probe()))
    return 0


# -- parser --------------------------------------------------------------------------------
def add_parsers(sub: Any) -> dict[str, Verb]:
    """Add the system verbs; returns verb name -> handler."""
    p = sub.add_parser("system", help="disk usage, clean-up and the store check: df, prune, check")
    ssub = p.add_subparsers(dest="system_verb", metavar="COMMAND")
    ssub.required = True
    ssub.add_parser(
        "df", help="disk used by images (-v: per image, shared and unique)"
    ).add_argument("-v", "--verbose", action="store_true")
    q = ssub.add_parser(
        "prune", help="remove stopped containers, unused networks and unused images"
    )
    q.add_argument("-a", "--all", action="store_true")
    q.add_argument("-f", "--force", action="store_true")
    c = ssub.add_parser(
        "check",
        help="verify every blob and reference of the image store; report orphans "
        "(exit 1 when something is wrong)",
    )
    c.add_argument(
        "--repair",
        action="store_true",
        help="remove orphans and stale temporaries, unpack missing layers",
    )

    srv = ssub.add_parser("server", help="the command server the pycont client hands commands to")
    srvsub = srv.add_subparsers(dest="server_verb", metavar="COMMAND")
    srvsub.required = True
    srvsub.add_parser("status", help="socket, pid, key, idle timeout and start of each server")
    srvsub.add_parser("stop", help="stop the servers (each ends its running commands first)")

    sub.add_parser("doctor", help="what this machine allows pycont to do, and why")
    return {"system": cmd_system, "doctor": cmd_doctor}
