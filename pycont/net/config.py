"""A container's network, as its config.json keeps it, and the files that name it.

``mode`` is docker's ``--network``: ``bridge`` (one or more bridge networks: the default one or
user-defined ones), ``none`` (loopback only), ``host`` (the host's namespace), ``container``
(the namespace of another container). Each bridge network the container is on is an
:class:`Attachment`, fixed when it is created: its address, MAC and aliases.

pycont writes ``/etc/hosts``, ``/etc/hostname`` and ``/etc/resolv.conf`` into the container's
folder and bind-mounts them, as docker does. Docker answers the names of the other containers
on a user-defined network from a DNS server of its own at 127.0.0.11; pycont writes them into
``/etc/hosts`` instead, rewriting the file in place when a container joins or leaves (a bind
mount of a file holds its inode: a rename would not be seen inside).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

FILES = ("hosts", "hostname", "resolv.conf")
# The container's init layer (docker's "-init" layer): empty mount points for FILES in etc/.
INIT_LAYER = "init"

_LOCAL = """127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
ff00::0\tip6-mcastprefix
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""


@dataclass
class Attachment:
    """The container on one bridge network."""

    network: str
    ip: str
    mac: str
    prefixlen: int
    gateway: str
    bridge: str
    aliases: list[str] = field(default_factory=list)
    user_defined: bool = False
    index: int = 0  # its device is eth<index> inside, pcv<id><index> on the host

    @property
    def ifname(self) -> str:
        return f"eth{self.index}"


@dataclass
class NetConfig:
    mode: str = "none"
    networks: list[Attachment] = field(default_factory=list)
    container: str = ""  # mode "container": the id of the container whose namespace it joins
    ports: list[dict[str, Any]] = field(default_factory=list)  # ports.PortBinding.to_json()
    dns: list[str] = field(default_factory=list)
    add_hosts: list[str] = field(default_factory=list)  # "name:ip"
    shaping: dict[str, Any] = field(default_factory=dict)  # shaping.Shaping.to_json()
    note: str = ""  # why the network asked for is not the one given (rootless)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any] | None) -> NetConfig:
        if not doc:
            return cls()
        doc = dict(doc)
        doc["networks"] = [Attachment(**a) for a in doc.get("networks") or []]
        return cls(**doc)

    @property
    def files(self) -> bool:
        """Does the container get pycont's /etc/hosts and friends? Not with the host's network
        (docker then binds the host's own files; pycont leaves the image's)."""
        return self.mode in ("bridge", "none", "slirp4netns")


def hosts_text(
    cfg: NetConfig,
    hostname: str,
    peers: Iterable[tuple[str, str, list[str]]] = (),
) -> str:
    """/etc/hosts: loopback names, the container's own address and name, ``--add-host``
    entries, and (pycont's stand-in for docker's DNS server) the other containers of its
    user-defined networks: ``peers`` is (address, name, aliases)."""
    lines = [_LOCAL.rstrip("\n")]
    for host in cfg.add_hosts:
        name, _, ip = host.partition(":")
        lines.append(f"{ip}\t{name}")
    for att in cfg.networks:
        own = [hostname, *att.aliases] if att.user_defined else [hostname]
        lines.append(f"{att.ip}\t{' '.join(dict.fromkeys(own))}")
    rows = sorted({(ip, name, tuple(aliases)) for ip, name, aliases in peers})
    if rows:
        lines.append(
            "# other containers on its networks (docker's DNS at 127.0.0.11 answers these)"
        )
        for ip, name, aliases in rows:
            lines.append(f"{ip}\t{' '.join(dict.fromkeys([name, *aliases]))}")
    return "\n".join(lines) + "\n"


def resolv_text(cfg: NetConfig) -> str:
    """/etc/resolv.conf: the ``--dns`` servers. Docker copies the host's (without loopback
    ones) because it NATs the container outward; pycont does not, so the host's servers are
    out of reach and each lookup of an unknown name would wait for their timeout (10 s).
    Without ``--dns`` the file names none: the resolver then asks 127.0.0.1 in the container,
    is refused at once, and names come from /etc/hosts."""
    if not cfg.dns:
        return (
            "# pycont: no DNS server (containers are not NATed outward; give one with --dns).\n"
            "# The other containers of its user-defined networks are in /etc/hosts.\n"
        )
    return "".join(f"nameserver {s}\n" for s in cfg.dns)


def make_init_layer(cdir: str) -> str:
    """``<cdir>/init/etc/{hosts,hostname,resolv.conf}``, empty: a lower layer just above the
    image's, so the files' bind mounts find their mount points without a copy-up into the
    read/write layer (docker's init layer)."""
    etc = os.path.join(cdir, INIT_LAYER, "etc")
    os.makedirs(etc, mode=0o755, exist_ok=True)
    for name in FILES:
        fd = os.open(os.path.join(etc, name), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        os.close(fd)
    return os.path.dirname(etc)


def write_in_place(path: str, text: str) -> None:
    """Replace a file's content keeping its inode (it may be bind-mounted in a container)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        data = text.encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)
