"""The netlink seam: every network device, address and route pycont makes goes through here.

rtnetlink(7) through pyroute2 (no ``ip`` subprocesses): a bridge per network, a veth pair per
container and network (veth(4): two ends of one cable; one stays on the host, plugged into the
bridge, the other is moved into the container's network namespace and renamed ``eth0``), the
container's address, MAC and default route. pyroute2 is imported on first use: it costs
~0.1 s, and containers without a network never pay it.

A netlink socket belongs to the network namespace it was opened in (netlink(7)), so the
container's side is configured through a socket opened after setns(2) into its namespace
(:func:`inside`); setns only moves the calling thread, which is moved back at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import functools
import os
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

from pycont.errors import NetworkError
from pycont.kernel._base import CLONE_NEWNET, Kernel

P = ParamSpec("P")
T = TypeVar("T")


def off_loop(fn: Callable[P, T]) -> Callable[P, T]:
    """Run ``fn`` in a worker thread when this thread runs an asyncio loop (a notebook
    kernel's does): pyroute2's synchronous API drives its own loop with run_until_complete,
    which asyncio refuses inside a running one."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return fn(*args, **kwargs)
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pycont-net") as pool:
            return pool.submit(fn, *args, **kwargs).result()

    return wrapper


def _iproute() -> Any:
    from pyroute2 import IPRoute

    return IPRoute()


def _netlink_error() -> Any:
    """pyroute2's NetlinkError (``.code`` is the errno), imported with pyroute2."""
    from pyroute2 import NetlinkError

    return NetlinkError


@contextlib.contextmanager
def host() -> Iterator[Any]:
    """An IPRoute on this process's own (the host's) network namespace."""
    ipr = _iproute()
    try:
        yield ipr
    finally:
        ipr.close()


@contextlib.contextmanager
def inside(k: Kernel, pid: int, sysctls: dict[str, str] | None = None) -> Iterator[Any]:
    """An IPRoute on the network namespace of process ``pid`` (setns(2) there and back).
    ``sysctls`` (``{"net/ipv6/conf/eth0/disable_ipv6": "1"}``) are written while there:
    /proc/sys/net shows the network namespace of the task that opens it (proc(5))."""
    mine = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    theirs = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        k.setns(theirs, CLONE_NEWNET, f"/proc/{pid}/ns/net")
        try:
            for key, value in (sysctls or {}).items():
                # FileNotFoundError: a kernel without IPv6
                with contextlib.suppress(FileNotFoundError), open(f"/proc/sys/{key}", "w") as f:
                    f.write(value)
            ipr = _iproute()
        finally:
            k.setns(mine, CLONE_NEWNET, "/proc/thread-self/ns/net")
    finally:
        os.close(theirs)
        os.close(mine)
    try:
        yield ipr
    finally:
        ipr.close()


@contextlib.contextmanager
def scratch(k: Kernel) -> Iterator[Any]:
    """An IPRoute on a new, empty network namespace of this thread only (unshare(2) with
    CLONE_NEWNET moves just the calling thread; it is moved back at once). The namespace goes
    when the socket closes: nothing named, nothing to clean. For probes: no fork, so safe in
    a notebook kernel's threads."""
    mine = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        k.unshare(CLONE_NEWNET)
        try:
            ipr = _iproute()
        finally:
            k.setns(mine, CLONE_NEWNET, "/proc/thread-self/ns/net")
    finally:
        os.close(mine)
    try:
        yield ipr
    finally:
        ipr.close()


def index(ipr: Any, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def ensure_bridge(ipr: Any, name: str, gateway: str, prefixlen: int) -> int:
    """The bridge ``name`` with the gateway address, up; made if missing (``ip link add NAME
    type bridge``). The gateway is the containers' default route: traffic for the host stops
    here, nothing is forwarded further (no NAT, ip_forward untouched)."""
    idx = index(ipr, name)
    if idx is None:
        try:
            ipr.link("add", ifname=name, kind="bridge")
        except _netlink_error() as err:
            if err.code != errno.EEXIST:  # another pycont made it first
                raise NetworkError(
                    f"cannot create bridge {name}: {os.strerror(err.code)}"
                ) from None
        idx = index(ipr, name)
        assert idx is not None
        _hold_in(name)
    have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=idx, family=2)}
    if (gateway, prefixlen) not in have:
        with contextlib.suppress(_netlink_error()):  # EEXIST: a concurrent start added it
            ipr.addr("add", index=idx, address=gateway, prefixlen=prefixlen)
    ipr.link("set", index=idx, state="up")
    return int(idx)


def _hold_in(bridge: str) -> None:
    """No routing from or to the bridge, whatever the host's ``ip_forward``: IPv4 forwards a
    packet only if the device it came in on has ``forwarding`` on (ip-sysctl.rst); this is
    the bridge's own setting, nothing machine-wide. Containers reach their bridge, the host
    and each other, not the host's other networks; docker does the same with firewall rules.
    IPv6 off too, as on the containers' side."""
    for key, value in (
        (f"ipv4/conf/{bridge}/forwarding", "0"),
        (f"ipv6/conf/{bridge}/disable_ipv6", "1"),
    ):
        with contextlib.suppress(FileNotFoundError), open(f"/proc/sys/net/{key}", "w") as f:
            f.write(value)


def delete_link(ipr: Any, name: str) -> bool:
    """Delete a device if it exists (a bridge, or a veth: both ends go together)."""
    idx = index(ipr, name)
    if idx is None:
        return False
    with contextlib.suppress(_netlink_error()):  # gone meanwhile
        ipr.link("del", index=idx)
    return True


def add_veth(ipr: Any, host_name: str, peer_name: str, pid: int, bridge: int, mtu: int) -> int:
    """A veth pair: ``host_name`` on the host, plugged into ``bridge`` and up; its peer made
    directly in the network namespace of ``pid`` as ``peer_name``. Returns the host end."""
    try:
        ipr.link(
            "add",
            ifname=host_name,
            kind="veth",
            mtu=mtu,
            peer={"ifname": peer_name, "net_ns_pid": pid, "mtu": mtu},
        )
    except _netlink_error() as err:
        raise NetworkError(f"cannot create veth {host_name}: {os.strerror(err.code)}") from None
    idx = index(ipr, host_name)
    assert idx is not None
    ipr.link("set", index=idx, master=bridge, state="up")
    return idx


def configure(
    ipr: Any, name: str, address: str, prefixlen: int, mac: str, gateway: str | None
) -> int:
    """Inside the container: the device's MAC and address, up, and the default route (the
    first network's gateway, as docker)."""
    idx = index(ipr, name)
    if idx is None:
        raise NetworkError(f"no device {name} in the container's network namespace")
    ipr.link("set", index=idx, address=mac)
    ipr.addr("add", index=idx, address=address, prefixlen=prefixlen)
    ipr.link("set", index=idx, state="up")
    lo = index(ipr, "lo")
    if lo is not None:
        ipr.link("set", index=lo, state="up")
    if gateway:
        ipr.route("add", dst="default", gateway=gateway)
    return idx


def ipv4_address(ipr: Any, name: str) -> tuple[str, int] | None:
    """The first IPv4 address of device ``name`` and its prefix length, if it has one."""
    idx = index(ipr, name)
    if idx is None:
        return None
    for a in ipr.get_addr(index=idx, family=2):
        return str(a.get_attr("IFA_ADDRESS")), int(a["prefixlen"])
    return None


def host_networks(ipr: Any) -> list[tuple[str, int]]:
    """Every IPv4 destination the host already reaches: routes and addresses (docker's rule:
    a new network's subnet must overlap none of them)."""
    seen = []
    for r in ipr.get_routes(family=2):
        dst = r.get_attr("RTA_DST")
        if dst and r["dst_len"]:
            seen.append((dst, r["dst_len"]))
    for a in ipr.get_addr(family=2):
        seen.append((a.get_attr("IFA_ADDRESS"), a["prefixlen"]))
    return seen
