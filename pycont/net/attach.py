"""Plugging a container into its networks: what its shim does between clone(2) and exec.

For each bridge network: the bridge (made again if it went away), a veth pair whose host end
``pcv…`` is plugged into the bridge and whose other end is made directly in the container's
network namespace as ``eth0`` (``eth1``…), then, from inside that namespace, its MAC, address,
link up and the default route through the first network's gateway. When the container's last
process exits its namespace is destroyed, and the kernel deletes both veth ends with it
(veth(4)); :func:`leave` removes what a crash may have left.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pycont.errors import NetworkError
from pycont.kernel._base import Kernel
from pycont.net import netlink, networks
from pycont.net.config import Attachment, NetConfig

MTU = 1500


def veth_name(cid: str, n: int) -> str:
    """The host end of a container's n-th veth: ``pcv`` + 10 hex digits of its id + n."""
    return f"pcv{cid[:10]}{n}"


def _shape(
    ipr: Any, idx: int, cfg: NetConfig, say: Callable[[str], None] | None = None, dev: str = ""
) -> None:
    if not cfg.shaping:
        return
    from pycont.net import shaping

    wanted = shaping.Shaping.from_json(cfg.shaping)
    shaping.apply(ipr, idx, wanted)
    if say:
        say(f"netlink: tc qdisc replace dev {dev} root … ({wanted.describe()})")


def _no_ipv6(atts: list[Attachment]) -> dict[str, str]:
    """IPv6 off on the container's devices before they go up, as docker does on networks
    without IPv6: no link-local address, no router solicitations counted as traffic."""
    return {f"net/ipv6/conf/{a.ifname}/disable_ipv6": "1" for a in atts}


def join(k: Kernel, cid: str, cfg: NetConfig, pid: int) -> list[str]:
    """Connect process ``pid`` (in its own network namespace) to ``cfg.networks``. Returns the
    host ends made. On failure removes them and raises NetworkError. With a narrating kernel
    (``--narrate``) each netlink request is told as the ``ip`` command that makes the same."""
    say: Callable[[str], None] = getattr(k, "say", None) or (lambda _line: None)
    made: list[str] = []
    try:
        with netlink.host() as ipr:
            for att in cfg.networks:
                # Under the networks' lock, and only while the lease holds: a concurrent rm
                # gives leases back and deletes an idle default bridge under that same lock.
                with networks.locked():
                    if not networks.holds(att.network, cid):
                        raise NetworkError(
                            f"container {cid[:12]} holds no address on network {att.network} "
                            "any more: it was removed"
                        )
                    bridge = netlink.ensure_bridge(ipr, att.bridge, att.gateway, att.prefixlen)
                say(
                    f"netlink: ip link add {att.bridge} type bridge (if missing); "
                    f"ip addr add {att.gateway}/{att.prefixlen} dev {att.bridge}"
                )
                name = veth_name(cid, att.index)
                netlink.delete_link(ipr, name)  # left by a crash of an earlier start
                idx = netlink.add_veth(ipr, name, att.ifname, pid, bridge, MTU)
                made.append(name)
                say(
                    f"netlink: ip link add {name} type veth peer name {att.ifname} netns {pid}; "
                    f"ip link set {name} master {att.bridge} up"
                )
                # The host end's egress is what the container receives: shaped there, and
                # the container's own egress is shaped on eth0 inside.
                _shape(ipr, idx, cfg, say, name)
        with netlink.inside(k, pid, _no_ipv6(cfg.networks)) as inner:
            for n, att in enumerate(cfg.networks):
                gateway = att.gateway if n == 0 else None
                idx = netlink.configure(inner, att.ifname, att.ip, att.prefixlen, att.mac, gateway)
                say(
                    f"netlink (in {pid}'s netns): ip link set {att.ifname} address {att.mac}; "
                    f"ip addr add {att.ip}/{att.prefixlen} dev {att.ifname}; "
                    f"ip link set {att.ifname} up"
                    + (f"; ip route add default via {gateway}" if gateway else "")
                )
                _shape(inner, idx, cfg, say, att.ifname)
    except BaseException as err:
        with netlink.host() as ipr:
            for name in made:
                netlink.delete_link(ipr, name)
        if isinstance(err, NetworkError):
            raise
        if isinstance(err, OSError | ValueError) or type(err).__name__ == "NetlinkError":
            raise NetworkError(f"network setup: {err}") from None
        raise
    return made


def leave(cid: str, cfg: NetConfig) -> None:
    """Remove the host ends of a container's veths that are still there."""
    with netlink.host() as ipr:
        for att in cfg.networks:
            netlink.delete_link(ipr, veth_name(cid, att.index))


def connect_running(k: Kernel, cid: str, pid: int, att: Attachment) -> None:
    """``network connect`` on a running container: one more veth, ``eth<index>``."""
    name = veth_name(cid, att.index)
    with netlink.host() as ipr:
        bridge = netlink.ensure_bridge(ipr, att.bridge, att.gateway, att.prefixlen)
        netlink.delete_link(ipr, name)
        netlink.add_veth(ipr, name, att.ifname, pid, bridge, MTU)
    try:
        with netlink.inside(k, pid, _no_ipv6([att])) as inner:
            netlink.configure(inner, att.ifname, att.ip, att.prefixlen, att.mac, None)
    except BaseException:
        disconnect_running(cid, att)
        raise


def disconnect_running(cid: str, att: Attachment) -> None:
    """``network disconnect``: deleting the host end deletes the pair, ``eth<n>`` inside too."""
    with netlink.host() as ipr:
        netlink.delete_link(ipr, veth_name(cid, att.index))
