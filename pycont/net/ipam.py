"""Address management: which subnet a new network gets, which address a container gets.

Pure logic over :mod:`ipaddress`; :mod:`pycont.net.networks` keeps the leases on disk.
Docker's rules: a network's subnet is taken from a pool of private ranges, the first one that
overlaps no route or address of the host and no other network; its first host address is the
gateway (the bridge's address); containers get the next free ones; a container's MAC is
``02:42`` and its four address bytes, so it is unique wherever its address is.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator

from pycont.errors import NetworkError, UsageError

Net = ipaddress.IPv4Network


def _pool() -> Iterator[Net]:
    """Docker's default address pools: 172.17-31.0.0/16, then 192.168.0-240.0/20."""
    for second in range(17, 32):
        yield ipaddress.IPv4Network(f"172.{second}.0.0/16")
    for third in range(0, 256, 16):
        yield ipaddress.IPv4Network(f"192.168.{third}.0/20")


def parse_subnet(text: str) -> Net:
    """``--subnet`` as docker accepts it: an IPv4 CIDR with no host bits, /8 to /30."""
    try:
        net = ipaddress.IPv4Network(text, strict=True)
    except ValueError as err:
        raise UsageError(
            f"invalid subnet {text!r}: expected an IPv4 CIDR such as 10.89.0.0/24 ({err})"
        ) from None
    if not 8 <= net.prefixlen <= 30:
        raise UsageError(f"invalid subnet {text}: the prefix length must be /8 to /30")
    return net


def parse_gateway(text: str, subnet: Net) -> str:
    try:
        gw = ipaddress.IPv4Address(text)
    except ValueError:
        raise UsageError(f"invalid gateway {text!r}: expected an IPv4 address") from None
    if gw not in subnet or gw in (subnet.network_address, subnet.broadcast_address):
        raise UsageError(f"invalid gateway {text}: it must be a host address of {subnet}")
    return str(gw)


def overlapping(net: Net, taken: Iterable[tuple[str, int]]) -> Net | None:
    """The first of ``taken`` (address, prefix length) that overlaps ``net``."""
    for addr, plen in taken:
        other = ipaddress.IPv4Network(f"{addr}/{plen}", strict=False)
        if other.prefixlen == 0:  # a default route overlaps everything and says nothing
            continue
        if net.overlaps(other):
            return other
    return None


def choose_subnet(taken: Iterable[tuple[str, int]]) -> Net:
    """The first pool subnet that overlaps nothing ``taken`` (the host's routes and addresses,
    and the other networks' subnets)."""
    taken = list(taken)
    for net in _pool():
        if overlapping(net, taken) is None:
            return net
    raise NetworkError(
        "no free subnet left in the pools 172.17-31.0.0/16 and 192.168.0.0/16: "
        "give one with --subnet, or remove unused networks (pycont network prune)"
    )


def gateway_of(subnet: Net) -> str:
    return str(subnet.network_address + 1)


def allocate(subnet: Net, gateway: str, used: Iterable[str]) -> str:
    """The first host address of ``subnet`` that is neither the gateway nor ``used``."""
    taken = {ipaddress.IPv4Address(a) for a in used} | {ipaddress.IPv4Address(gateway)}
    for addr in subnet.hosts():
        if addr not in taken:
            return str(addr)
    raise NetworkError(f"no free address left in {subnet}")


def mac_for(address: str) -> str:
    """Docker's MAC for a container address: 02:42 (locally administered) + its 4 bytes."""
    octets = ipaddress.IPv4Address(address).packed
    return "02:42:" + ":".join(f"{b:02x}" for b in octets)
