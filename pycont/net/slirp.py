"""A user-mode network for containers without root: slirp4netns(1).

Without root no veth can be plugged into a host bridge. slirp4netns makes a tap device
``tap0`` inside the container's network namespace and answers its packets with a TCP/IP stack
of its own, in user space, turning them into ordinary sockets of the host (what podman and
docker's rootless mode use). Published ports are ``add_hostfwd`` requests on its API socket:
slirp4netns listens on the host and forwards into the namespace.

Held in on purpose, as the rest of pycont's networks (these machines must not reach anywhere):
the container gets ``10.0.2.100/24`` and no default route (pid 1 sets the address itself; no
``--configure``), ``--disable-host-loopback`` refuses 10.0.2.2 -> the host's 127.0.0.1, and
``--disable-dns`` turns off the DNS relay. ``--enable-sandbox`` and ``--enable-seccomp`` shut
slirp4netns itself in. It exits when the shim closes its ``--exit-fd`` or dies.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import socket
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, replace

from pycont.errors import NetworkError
from pycont.net.ports import PortBinding, PortInUse

BINARY = "slirp4netns"
TAP = "tap0"
ADDRESS = "10.0.2.100"
PREFIXLEN = 24
MTU = 65520  # slirp4netns's maximum: fewer, larger packets through the user-space stack
READY_TIMEOUT = 10.0


def available() -> tuple[bool, str]:
    """(True, path) when slirp4netns can run here, else (False, why)."""
    path = shutil.which(BINARY)
    if path is None:
        return False, "slirp4netns is not installed (Debian: apt-get install slirp4netns)"
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        return False, (
            "slirp4netns needs /dev/net/tun, which this user cannot open "
            "(it is usually mode 0666; here it is not)"
        )
    return True, path


@dataclass
class Slirp:
    """A running slirp4netns for one container."""

    pid: int
    exit_w: int  # closing it tells slirp4netns to exit (--exit-fd)
    api: str  # its API socket


def api_path(cid: str) -> str:
    """A short path: sun_path holds 108 bytes, a container's folder may be longer."""
    return f"/tmp/pycont-slirp-{cid[:12]}.sock"


def start(pid: int, cid: str, log: str) -> Slirp:
    """slirp4netns for the network namespace of ``pid`` (and its user namespace, which
    slirp4netns joins to open /dev/net/tun there); returns once ``tap0`` exists. Its messages
    go to the file ``log`` (a pipe nobody reads would stall it, or kill it once closed)."""
    ok, why = available()
    if not ok:
        raise NetworkError(f"--network slirp4netns: {why}")
    api = api_path(cid)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(api)  # left by a crash
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    exit_r, exit_w = os.pipe2(os.O_CLOEXEC)
    argv = [
        why,
        f"--mtu={MTU}",
        "--disable-host-loopback",
        "--disable-dns",
        "--enable-sandbox",
        "--enable-seccomp",
        f"--api-socket={api}",
        f"--ready-fd={ready_w}",
        f"--exit-fd={exit_r}",
        str(pid),
        TAP,
    ]
    try:
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv,
                pass_fds=(ready_w, exit_r),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
    except OSError as err:
        for fd in (ready_r, ready_w, exit_r, exit_w):
            os.close(fd)
        raise NetworkError(f"cannot run slirp4netns: {err}") from None
    os.close(ready_w)
    os.close(exit_r)
    slirp = Slirp(proc.pid, exit_w, api)
    try:
        readable, _, _ = select.select([ready_r], [], [], READY_TIMEOUT)
        if not readable or os.read(ready_r, 1) != b"1":
            stop(slirp)
            with open(log, errors="replace") as f:
                said = [line.strip() for line in f if line.strip()]
            raise NetworkError(f"slirp4netns did not start: {said[-1] if said else 'no reason'}")
    finally:
        os.close(ready_r)
    return slirp


def _request(api: str, doc: dict[str, object]) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(api)
        s.sendall(json.dumps(doc).encode())
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
    answer = json.loads(reply or b"{}")
    return answer if isinstance(answer, dict) else {}


def _free_port(b: PortBinding) -> int:
    """A host port the kernel picks (``-p 3000``): slirp4netns's API answers with an id, not
    with the port it bound, so pycont asks the kernel first."""
    kind = socket.SOCK_DGRAM if b.proto == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((b.host_ip or "0.0.0.0", 0))
        return int(s.getsockname()[1])


def forward(slirp: Slirp, bindings: Iterable[PortBinding]) -> list[PortBinding]:
    """Publish ports through slirp4netns (``add_hostfwd``); returns them with host ports
    resolved. A port slirp4netns cannot bind raises PortInUse."""
    done = []
    for b in bindings:
        port = b.host_port or _free_port(b)
        answer = _request(
            slirp.api,
            {
                "execute": "add_hostfwd",
                "arguments": {
                    "proto": b.proto,
                    "host_addr": b.host_ip or "0.0.0.0",
                    "host_port": port,
                    "guest_addr": ADDRESS,
                    "guest_port": b.container_port,
                },
            },
        )
        if "error" in answer:
            raise PortInUse(f"Bind for {b.host_ip or '0.0.0.0'}:{port} failed: {answer['error']}")
        done.append(replace(b, host_port=port, host_port_end=0))
    return done


def stop(slirp: Slirp) -> None:
    """Close its exit fd (it exits), reap it; the API socket goes too."""
    with contextlib.suppress(OSError):
        os.close(slirp.exit_w)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(slirp.pid, 0)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(slirp.api)
