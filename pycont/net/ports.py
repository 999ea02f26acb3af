"""Published ports: docker's ``-p [IP:][HOSTPORT:]CONTAINERPORT[/PROTO]`` and ``-P``.

A published port is a socket on the host that forwards to a port of the container's network
namespace. This module parses the specs into :class:`PortBinding` values and binds the host
side (:func:`bind`); :mod:`pycont.net.proxy` relays what arrives there into the container.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from pycont.errors import UsageError

PROTOS = ("tcp", "udp")
GRAMMAR = "[IP:][HOSTPORT:]CONTAINERPORT[/tcp|udp]"
BACKLOG = 128  # listen(2): pending connections the kernel queues before the proxy accepts
_PORT = re.compile(r"([0-9]+)(?:-([0-9]+))?")


class PortInUse(UsageError):
    """A host port to publish is already taken (EADDRINUSE); nothing of the set stays bound."""


@dataclass(frozen=True)
class PortBinding:
    """One published port. ``host_ip`` "" means every address (docker's 0.0.0.0);
    ``host_port`` 0 means a port the kernel picks; ``host_port_end`` > 0 makes
    ``host_port..host_port_end`` a range that :func:`bind` takes the first free port of."""

    container_port: int
    proto: str = "tcp"
    host_ip: str = ""
    host_port: int = 0
    host_port_end: int = 0

    def __str__(self) -> str:
        # As `docker port` prints it: 3000/tcp -> 0.0.0.0:8080
        port = str(self.host_port)
        if self.host_port_end:
            port += f"-{self.host_port_end}"
        return f"{self.container_port}/{self.proto} -> {_host(self.host_ip)}:{port}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PortBinding:
        return cls(
            container_port=int(data["container_port"]),
            proto=str(data.get("proto", "tcp")),
            host_ip=str(data.get("host_ip", "")),
            host_port=int(data.get("host_port", 0)),
            host_port_end=int(data.get("host_port_end", 0)),
        )


def _host(ip: str) -> str:
    if not ip:
        return "0.0.0.0"
    return f"[{ip}]" if ":" in ip else ip


def _q(text: str) -> str:
    """The text as typed, in double quotes; a newline escaped so the message stays one line."""
    return json.dumps(text, ensure_ascii=False)


def _bad(spec: str) -> UsageError:
    return UsageError(f"invalid publish spec {_q(spec)}: expected {GRAMMAR}")


def _number(digits: str) -> int:
    # Past 5 significant digits it is out of range anyway; int() of thousands of digits would
    # raise ValueError (Python's int_max_str_digits), not say which port was wrong.
    significant = digits.lstrip("0") or "0"
    return int(significant) if len(significant) <= 5 else 65536


def _ports(text: str, spec: str, *, host: bool) -> tuple[int, int]:
    """``"80"`` -> (80, 80), ``"8000-8010"`` -> (8000, 8010). Host port 0 means random."""
    m = _PORT.fullmatch(text)
    if not m:
        raise _bad(spec)
    start = _number(m.group(1))
    end = _number(m.group(2)) if m.group(2) else start
    for port, digits in ((start, m.group(1)), (end, m.group(2) or m.group(1))):
        if port > 65535 or (port == 0 and not (host and start == end == 0)):
            raise UsageError(f"invalid port {digits} in {_q(spec)}: ports are 1-65535")
    if start > end:
        raise UsageError(
            f"invalid range {_q(text)} in {_q(spec)}: expected START-END, START <= END"
        )
    return start, end


def _ip(text: str, spec: str) -> str:
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise UsageError(
            f"invalid IP address {_q(text)} in {_q(spec)}: expected an IPv4 address or [IPv6]"
        ) from None


def parse(spec: str) -> list[PortBinding]:
    """One ``-p`` value, as docker reads it (``8080:80``, ``127.0.0.1::80/udp``,
    ``[::1]:8080:80``, ``8000-8002:3000-3002``, ``8000-8010:80``...) -> its bindings."""
    rest, slash, proto = spec.partition("/")
    proto = proto.lower() if slash else "tcp"
    if proto == "sctp":
        raise UsageError(f"invalid publish spec {_q(spec)}: sctp is not supported, only tcp or udp")
    if proto not in PROTOS:
        raise UsageError(f"invalid protocol {_q(proto)} in {_q(spec)}: expected tcp or udp")
    # Split from the right, as docker does: an IPv6 address holds colons itself.
    parts = rest.split(":")
    cport = parts[-1]
    hport = parts[-2] if len(parts) >= 2 else ""
    ip = _ip(":".join(parts[:-2]), spec) if len(parts) >= 3 else ""
    if not cport:
        raise _bad(spec)
    c_start, c_end = _ports(cport, spec, host=False)
    if not hport:
        return [PortBinding(p, proto, ip) for p in range(c_start, c_end + 1)]
    h_start, h_end = _ports(hport, spec, host=True)
    if c_start == c_end:  # one container port: a host range is a pool to take one port from
        end = h_end if h_end != h_start else 0
        return [PortBinding(c_start, proto, ip, h_start, end)]
    if h_end - h_start != c_end - c_start:
        raise UsageError(
            f"invalid publish spec {_q(spec)}: host range {hport} and container range {cport}"
            " must have the same length"
        )
    return [
        PortBinding(c, proto, ip, h)
        for c, h in zip(range(c_start, c_end + 1), range(h_start, h_end + 1), strict=True)
    ]


def _key(b: PortBinding) -> tuple[str, int, str]:
    return (b.host_ip or "0.0.0.0", b.host_port, b.proto)


def parse_all(specs: Sequence[str]) -> tuple[PortBinding, ...]:
    """Every ``-p`` of a command line; the same fixed host ip/port/proto twice is an error."""
    out: list[PortBinding] = []
    seen: dict[tuple[str, int, str], str] = {}
    for spec in specs:
        for b in parse(spec):
            if b.host_port and not b.host_port_end:
                key = _key(b)
                if key in seen:
                    raise UsageError(
                        f"host port {_host(b.host_ip)}:{b.host_port}/{b.proto} is published twice"
                        f" ({_q(seen[key])} and {_q(spec)}): each host port can be published once"
                    )
                seen[key] = spec
            out.append(b)
    return tuple(out)


def parse_exposed(item: str) -> tuple[int, str]:
    """A key of the image config's ExposedPorts (``"3000/tcp"``, or ``"3000"``) -> (3000, "tcp")."""
    port, slash, proto = item.partition("/")
    proto = proto.lower() if slash else "tcp"
    if proto not in PROTOS or not re.fullmatch(r"[0-9]+", port) or not 0 < _number(port) <= 65535:
        raise UsageError(f"invalid exposed port {_q(item)}: expected PORT[/tcp|udp], PORT 1-65535")
    return int(port), proto


def publish_all(exposed: Iterable[str]) -> list[PortBinding]:
    """docker's ``-P``: every exposed port of the image on a random host port."""
    ports = dict.fromkeys(parse_exposed(e) for e in exposed)
    return [PortBinding(port, proto) for port, proto in sorted(ports, key=lambda p: (p[1], p[0]))]


@dataclass(frozen=True)
class Bound:
    """A binding resolved to the host port the kernel gave, with its open socket
    (TCP listening, or UDP bound): the proxy serves on it."""

    binding: PortBinding
    sock: socket.socket

    def close(self) -> None:
        self.sock.close()


def _open(b: PortBinding, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in b.host_ip else socket.AF_INET
    kind = socket.SOCK_STREAM if b.proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(family, kind)  # close-on-exec: Python makes fds non-inheritable (PEP 446)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_STREAM:
            # socket(7): rebind a port whose old connections linger in TIME_WAIT. Linux still
            # refuses it while another socket listens there. Not for UDP, where SO_REUSEADDR
            # would let two sockets share the port.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((b.host_ip or "0.0.0.0", port))
        if kind == socket.SOCK_STREAM:
            sock.listen(BACKLOG)  # EADDRINUSE can come here too, from another SO_REUSEADDR bind
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_one(b: PortBinding) -> Bound:
    last = b.host_port_end or b.host_port
    for port in range(b.host_port, last + 1):
        try:
            sock = _open(b, port)
        except OSError as err:
            if err.errno == errno.EADDRINUSE and port < last:
                continue  # a range: try the next port
            if err.errno == errno.EADDRINUSE:
                where = f"{_host(b.host_ip)}:{b.host_port}" + (
                    f"-{b.host_port_end}" if b.host_port_end else ""
                )
                raise PortInUse(f"Bind for {where} failed: port is already allocated") from err
            raise UsageError(
                f"bind {b.proto} {_host(b.host_ip)}:{port}: {err.strerror}"
                " (the IP must be an address of this host, the port free)"
            ) from err
        actual = sock.getsockname()[1]
        return Bound(replace(b, host_port=actual, host_port_end=0), sock)
    raise AssertionError("unreachable: the range has at least one port")


def bind(bindings: Iterable[PortBinding]) -> list[Bound]:
    """Bind every host port, all or nothing: on a failure, what was bound is closed again."""
    bound: list[Bound] = []
    try:
        for b in bindings:
            bound.append(_bind_one(b))
    except BaseException:
        for x in bound:
            x.close()
        raise
    return bound


def check_free(bindings: Iterable[PortBinding]) -> None:
    """Raise :class:`PortInUse` now if a port is taken (``create`` checks before it makes
    anything); the ports are released again at once."""
    for x in bind(bindings):
        x.close()
