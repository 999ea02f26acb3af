"""Networks and their address leases, on disk: ``<root>/networks/<name>.json``.

Docker's model. Three networks are always there: ``bridge`` (the default: the bridge
``pycont0`` and a subnet chosen when its first container is made; like ``docker0`` the bridge
stays up after its last container, until ``system prune``), ``host`` and ``none``.
``network create NAME`` adds a user-defined bridge network, with its own bridge ``pcb…`` made at
once; on those, containers reach each other by name. A container leases one address per
network when it is created and keeps it until it is removed; leases of containers whose folder
is gone (a crash, a ``kill -9`` of the CLI) are collected at the next allocation, so an address
is never lost for good. All changes happen under one flock(2) per store.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pycont import paths
from pycont.errors import NetworkError, NetworkNotFound, UsageError
from pycont.fsutil import read_json, write_json
from pycont.net import ipam, netlink

DEFAULT = "bridge"
PREDEFINED = ("bridge", "host", "none")
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$")  # docker's network names


@dataclass
class Lease:
    """One container's place on one network."""

    ip: str
    mac: str
    container: str  # the container's name, for /etc/hosts and inspect
    aliases: list[str] = field(default_factory=list)


@dataclass
class Network:
    name: str
    id: str
    subnet: str
    gateway: str
    bridge: str
    created: float = 0.0
    driver: str = "bridge"
    labels: dict[str, str] = field(default_factory=dict)
    leases: dict[str, Lease] = field(default_factory=dict)  # container id -> its lease

    @property
    def prefixlen(self) -> int:
        return int(self.subnet.rsplit("/", 1)[1])

    @property
    def user_defined(self) -> bool:
        return self.name not in PREDEFINED

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Network:
        doc = dict(doc)
        doc["leases"] = {cid: Lease(**lease) for cid, lease in (doc.get("leases") or {}).items()}
        return cls(**doc)


def _dir() -> str:
    return os.path.join(paths.root(), "networks")


def _path(name: str) -> str:
    return os.path.join(_dir(), f"{name}.json")


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """The store's network lock (flock(2)): leases and networks change one writer at a time."""
    os.makedirs(_dir(), mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(_dir(), ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def default_bridge(root: str | None = None) -> str:
    """``pycont0`` for the default store; another store (``PYCONT_ROOT``, as each test has)
    gets a bridge of its own, so two stores never lease the same address on one bridge.
    ``root``: that store's instead of this process's (a test session, a benchmark)."""
    store = paths.root() if root is None else os.path.abspath(root)
    if store == paths.default_root():
        return "pycont0"
    return "pc0" + hashlib.sha256(store.encode()).hexdigest()[:8]


def _load(name: str) -> Network | None:
    try:
        return Network.from_json(read_json(_path(name)))
    except FileNotFoundError:
        return None


def _save(net: Network) -> None:
    write_json(_path(net.name), net.to_json())


def _all() -> list[Network]:
    try:
        names = sorted(f[:-5] for f in os.listdir(_dir()) if f.endswith(".json"))
    except FileNotFoundError:
        return []
    return [n for n in (_load(name) for name in names) if n is not None]


def _taken_subnets(ipr: Any, skip: str = "") -> list[tuple[str, int]]:
    taken = netlink.host_networks(ipr)
    for other in _all():
        if other.name != skip:
            addr, plen = other.subnet.split("/")
            taken.append((addr, int(plen)))
    return taken


def _new_network(name: str, subnet: str | None, gateway: str | None, bridge: str) -> Network:
    with netlink.host() as ipr:
        taken = _taken_subnets(ipr)
        if subnet is None:
            net = ipam.choose_subnet(taken)
        else:
            net = ipam.parse_subnet(subnet)
            clash = ipam.overlapping(net, taken)
            if clash is not None:
                raise UsageError(
                    f"invalid subnet {net}: it overlaps {clash}, already used on this host "
                    "(by a route, an address or another network)"
                )
        gw = ipam.parse_gateway(gateway, net) if gateway else ipam.gateway_of(net)
    nid = os.urandom(32).hex()
    return Network(
        name=name,
        id=nid,
        subnet=str(net),
        gateway=gw,
        bridge=bridge or "pcb" + nid[:8],
        created=time.time(),
    )


@netlink.off_loop
def create(
    name: str,
    subnet: str | None = None,
    gateway: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> Network:
    """``network create``: a user-defined bridge network and its bridge, made now."""
    if not NAME_RE.fullmatch(name):
        raise UsageError(
            f"invalid network name {name!r}: [a-zA-Z0-9][a-zA-Z0-9_.-], at most 64 characters"
        )
    if gateway and not subnet:
        raise UsageError("--gateway needs --subnet: the gateway must be an address of it")
    with locked():
        if name in PREDEFINED or _load(name) is not None:
            raise NetworkError(f"network with name {name} already exists")
        net = _new_network(name, subnet, gateway, "")
        net.labels = dict(labels or {})
        try:
            with netlink.host() as ipr:
                netlink.ensure_bridge(ipr, net.bridge, net.gateway, net.prefixlen)
            _save(net)
        except BaseException:
            with netlink.host() as ipr:
                netlink.delete_link(ipr, net.bridge)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(_path(name))
            raise
    return net


def get(name_or_id: str) -> Network:
    """A network by name, full id or unique id prefix (the predefined ``bridge`` included
    once it exists: before its first container it has no subnet yet)."""
    net = _load(name_or_id) if NAME_RE.fullmatch(name_or_id) else None
    if net is not None:
        return net
    if len(name_or_id) >= 3:
        found = [n for n in _all() if n.id.startswith(name_or_id)]
        if len(found) == 1:
            return found[0]
    raise NetworkNotFound(f"network {name_or_id} not found")


def ls() -> list[Network]:
    return _all()


def holds(name: str, cid: str) -> bool:
    """Does container ``cid`` hold a lease on network ``name``? (Call under :func:`locked`.)"""
    net = _load(name)
    return net is not None and cid in net.leases


def exists_on_disk(name: str) -> bool:
    return _load(name) is not None


def exists(name: str) -> bool:
    return name in PREDEFINED or _load(name) is not None


def _collect(net: Network) -> bool:
    """Drop leases of containers that no longer exist; True if any was dropped."""
    # A container being created lives in containers/.creating/<id> until it is complete
    # (pycont.runtime.staging): its lease is taken already, and must stay.
    base = paths.containers_dir()
    gone = [
        cid
        for cid in net.leases
        if not any(os.path.isdir(os.path.join(base, *d, cid)) for d in ((), (".creating",)))
    ]
    for cid in gone:
        del net.leases[cid]
    return bool(gone)


@netlink.off_loop
def remove(name_or_id: str) -> str:
    """``network rm``: refused while a container is attached. Returns the name removed."""
    if name_or_id in PREDEFINED:
        raise NetworkError(f"{name_or_id} is a pre-defined network and cannot be removed")
    with locked():
        net = get(name_or_id)
        _collect(net)
        if net.leases:
            users = ", ".join(sorted(lease.container for lease in net.leases.values()))
            raise NetworkError(
                f"network {net.name} is in use by container {users}: remove or disconnect it first"
            )
        with netlink.host() as ipr:
            netlink.delete_link(ipr, net.bridge)
        os.unlink(_path(net.name))
    return net.name


@netlink.off_loop
def prune() -> list[str]:
    """``network prune``: every user-defined network no container uses."""
    removed = []
    for net in _all():
        if not net.user_defined:
            continue
        with contextlib.suppress(NetworkError, NetworkNotFound):
            removed.append(remove(net.name))
    return removed


@netlink.off_loop
def lease(name: str, cid: str, container: str, aliases: list[str] | None = None) -> Network:
    """Give container ``cid`` an address on network ``name`` (the default one is made on first
    use). Returns the network; its ``leases[cid]`` is the container's."""
    with locked():
        net = _load(name)
        if net is None:
            if name != DEFAULT:
                raise NetworkNotFound(f"network {name} not found")
            net = _idle_default() or _new_network(DEFAULT, None, None, default_bridge())
        _collect(net)
        if cid not in net.leases:
            ip = ipam.allocate(
                ipam.parse_subnet(net.subnet), net.gateway, (x.ip for x in net.leases.values())
            )
            net.leases[cid] = Lease(ip, ipam.mac_for(ip), container, list(aliases or ()))
        _save(net)
        return net


@netlink.off_loop
def release(cid: str | None, only: str | None = None) -> list[Network]:
    """Give back the addresses of container ``cid`` (all its networks, or ``only`` one), and
    those of containers whose folder is gone; ``cid=None`` only collects those (see
    :func:`collect`). The default network's record goes with its last lease, its bridge
    stays up (:func:`remove_idle_default`); user networks keep theirs until ``network rm``.
    Returns the networks changed."""
    changed = []
    with locked():
        for net in _all():
            if only is not None and net.name != only:
                continue
            dropped = cid is not None and net.leases.pop(cid, None) is not None
            if not (dropped or _collect(net)):
                continue
            changed.append(net)
            if net.name == DEFAULT and not net.leases:
                # Its bridge stays up, as docker0 does: deleting a device costs the kernel
                # 30-70 ms (netdev unregistration), and the next container's start would pay
                # again to make it. That start finds it and takes it over (_idle_default).
                os.unlink(_path(net.name))
            else:
                _save(net)
    return changed


def _idle_default() -> Network | None:
    """The default network again, from the bridge its last container left up: the bridge's
    address is the gateway, its subnet the network's. None if that bridge is not there (the
    first container of the store, a reboot, ``ip link del``, ``system prune``)."""
    bridge = default_bridge()
    with netlink.host() as ipr:
        found = netlink.ipv4_address(ipr, bridge)
    if found is None:
        return None
    gateway, prefixlen = found
    subnet = ipaddress.IPv4Network(f"{gateway}/{prefixlen}", strict=False)
    return Network(
        name=DEFAULT,
        id=os.urandom(32).hex(),
        subnet=str(subnet),
        gateway=gateway,
        bridge=bridge,
        created=time.time(),
    )


@netlink.off_loop
def remove_idle_default() -> str | None:
    """Delete the default network's bridge if no container holds an address on it (``system
    prune``, the end of a chapter's session). Returns its name, if it was there; the next
    container on the default network makes it again."""
    with locked():
        net = _load(DEFAULT)
        if net is not None:
            _collect(net)
            if net.leases:
                _save(net)
                return None
            os.unlink(_path(DEFAULT))
        bridge = default_bridge() if net is None else net.bridge
        if not _link_exists(bridge):
            return None
        with netlink.host() as ipr:
            netlink.delete_link(ipr, bridge)  # quiet on EPERM: a user's store, root's pycont0
            gone = netlink.index(ipr, bridge) is None
        return bridge if gone else None


def _link_exists(name: str) -> bool:
    """Whether this network namespace has a device ``name`` (sysfs, as ``ip link`` lists it):
    no netlink socket, no pyroute2 import, for the common case of none."""
    return os.path.lexists(os.path.join("/sys/class/net", name))


def collect() -> list[Network]:
    """Give back the leases of containers whose folder is gone (a crash, a removed store)."""
    return release(None)
