"""The CLI's network verbs: ``pycont network create|ls|inspect|rm|connect|disconnect|prune``
and ``pycont port``.

A network is a Linux bridge with a subnet: containers on it each get a veth pair and an
address (``ip link`` on the host shows the bridge ``pycont0``/``pcb…`` and the ``pcv…`` ends).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from typing import Any

from pycont.cli._common import Verb, table
from pycont.errors import PycontError

DRIVERS = {"bridge": "bridge", "host": "host", "none": "null"}


def _short(net_id: str) -> str:
    return net_id[:12]


def _predefined_id(name: str) -> str:
    return hashlib.sha256(f"pycont-network-{name}".encode()).hexdigest()


def _rows() -> list[tuple[str, str, str, str]]:
    from pycont.net import networks

    have = {n.name: n for n in networks.ls()}
    rows = []
    for name in networks.PREDEFINED:
        nid = have[name].id if name in have else _predefined_id(name)
        rows.append((_short(nid), name, DRIVERS[name], "local"))
    for n in have.values():
        if n.user_defined:
            rows.append((_short(n.id), n.name, n.driver, "local"))
    return rows


def inspect_network(name: str) -> dict[str, Any]:
    """docker network inspect's document for one network."""
    from pycont.net import networks
    from pycont.runtime.inspection import iso

    if name in ("host", "none") or (name == "bridge" and not networks.exists_on_disk(name)):
        return {
            "Name": name,
            "Id": _predefined_id(name),
            "Scope": "local",
            "Driver": DRIVERS[name],
            "IPAM": {"Driver": "default", "Config": []},
            "Containers": {},
            "Labels": {},
        }
    n = networks.get(name)
    return {
        "Name": n.name,
        "Id": n.id,
        "Created": iso(n.created),
        "Scope": "local",
        "Driver": n.driver,
        "IPAM": {"Driver": "default", "Config": [{"Subnet": n.subnet, "Gateway": n.gateway}]},
        "Containers": {
            cid: {
                "Name": lease.container,
                "MacAddress": lease.mac,
                "IPv4Address": f"{lease.ip}/{n.prefixlen}",
                "Aliases": lease.aliases,
            }
            for cid, lease in n.leases.items()
        },
        "Options": {"com.docker.network.bridge.name": n.bridge},
        "Labels": n.labels,
    }


def _labels(items: list[str]) -> dict[str, str]:
    from pycont.runtime.spec import parse_labels

    return parse_labels(items)


def cmd_network(a: argparse.Namespace) -> int:
    from pycont.net import networks

    verb = a.network_verb
    if verb == "create":
        net = networks.create(a.name, a.subnet, a.gateway, _labels(a.label))
        print(net.id)
    elif verb == "ls":
        rows = _rows()
        if a.quiet:
            for r in rows:
                print(r[0])
        else:
            table(("NETWORK ID", "NAME", "DRIVER", "SCOPE"), rows)
    elif verb == "inspect":
        print(json.dumps([inspect_network(n) for n in a.names], indent=4))
    elif verb == "rm":
        rc = 0
        for n in a.names:  # each one, as docker: one refusal does not stop the others
            try:
                print(networks.remove(n))
            except PycontError as err:
                print(f"Error response from daemon: {err}", file=sys.stderr)
                rc = err.exit_code  # 125: pycont's own refusal (docker exits 1 here)
        return rc
    elif verb == "prune":
        removed = networks.prune()
        if removed:
            print("Deleted Networks:")
            for n in removed:
                print(n)
    elif verb in ("connect", "disconnect"):
        from pycont.runtime import api, netsetup

        c = api.get(a.container)
        if verb == "connect":
            netsetup.connect(c.id, a.network, a.alias)
        else:
            netsetup.disconnect(c.id, a.network)
    return 0


def cmd_port(a: argparse.Namespace) -> int:
    """docker port: the container's published ports, host side resolved."""
    from pycont.runtime import api, netsetup

    c = api.get(a.container)
    bound = netsetup.published(c.dir)
    if a.port:
        port, _, proto = a.port.partition("/")
        bound = [b for b in bound if str(b.container_port) == port and b.proto == (proto or "tcp")]
        if not bound:
            print(f"Error: No public port '{a.port}' published for {c.name}", file=sys.stderr)
            return 1
        for b in bound:
            print(f"{b.host_ip or '0.0.0.0'}:{b.host_port}")
        return 0
    for b in bound:
        print(b)
    return 0


# -- parser --------------------------------------------------------------------------------
def add_parsers(sub: Any) -> dict[str, Verb]:
    """Add the network and port verbs; returns verb name -> handler."""
    p = sub.add_parser(
        "network", help="manage networks: create, ls, inspect, rm, connect, disconnect, prune"
    )
    nsub = p.add_subparsers(dest="network_verb", metavar="COMMAND")
    nsub.required = True
    q = nsub.add_parser("create", help="create a bridge network (its bridge is made at once)")
    q.add_argument("-d", "--driver", default="bridge", choices=("bridge",))
    q.add_argument("--subnet", help="an IPv4 CIDR (default: the first free of docker's pools)")
    q.add_argument("--gateway", help="the bridge's address (default: the subnet's first)")
    q.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    q.add_argument("name")
    q = nsub.add_parser("ls", help="list networks")
    q.add_argument("-q", "--quiet", action="store_true", help="only the ids")
    nsub.add_parser("inspect", help="a network's subnet and containers, as JSON").add_argument(
        "names", nargs="+"
    )
    nsub.add_parser("rm", help="remove networks (refused while in use)").add_argument(
        "names", nargs="+"
    )
    nsub.add_parser("prune", help="remove the user-defined networks no container uses")
    q = nsub.add_parser("connect", help="connect a container to a network")
    q.add_argument("--alias", action="append", default=[], help="another name on this network")
    q.add_argument("network")
    q.add_argument("container")
    q = nsub.add_parser("disconnect", help="disconnect a container from a network")
    q.add_argument("network")
    q.add_argument("container")
    q = sub.add_parser("port", help="list a container's published ports")
    q.add_argument("container")
    q.add_argument("port", nargs="?", help="CONTAINERPORT[/PROTO]")
    return {"network": cmd_network, "port": cmd_port}
