"""The port proxy with real sockets on 127.0.0.1: TCP and UDP relays, taken ports, lifetime.

The proxy is a fork without exec, so it is never forked from pytest (which may run threads):
a helper interpreter binds the ports and starts it, prints what it got, and stops it when its
stdin closes. The "container" is an echo server of this test process on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pycont.net.ports import PortBinding, PortInUse, bind, check_free
from pycont.net.proxy import NAME, find_proxies
from tests.helpers import process_gone, wait_for

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 10.0  # a socket operation that takes longer than this means the relay is broken
_started: list[int] = []  # every proxy pid these tests started, for the last check

HELPER = """
import json, sys
from pycont.net.ports import PortBinding, bind
from pycont.net.proxy import start, stop
bound = bind([PortBinding.from_json(b) for b in json.loads(sys.argv[1])])
pid = start(bound, "127.0.0.1")
print(json.dumps({"pid": pid, "ports": [x.binding.host_port for x in bound]}), flush=True)
sys.stdin.read()
stop(pid)
"""


class Proxy:
    def __init__(self, helper: subprocess.Popen[str], pid: int, ports: list[int]) -> None:
        self.helper, self.pid, self.ports = helper, pid, ports


@pytest.fixture
def proxy() -> Iterator[Callable[..., Proxy]]:
    """Start a proxy (through a helper process) for bindings to container ports on 127.0.0.1."""
    made: list[Proxy] = []

    def start(*bindings: PortBinding) -> Proxy:
        helper = subprocess.Popen(
            [sys.executable, "-c", HELPER, json.dumps([b.to_json() for b in bindings])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        assert helper.stdout is not None
        line = helper.stdout.readline()
        if not line:
            helper.kill()
            helper.wait()
            pytest.fail(f"the proxy helper exited with {helper.returncode} before starting it")
        info = json.loads(line)
        p = Proxy(helper, info["pid"], info["ports"])
        made.append(p)
        _started.append(p.pid)
        return p

    yield start
    for p in made:
        with contextlib.suppress(OSError):
            p.helper.stdin.close()  # type: ignore[union-attr]
        try:
            p.helper.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            p.helper.kill()
            p.helper.wait()
        if not process_gone(p.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
        wait_for(functools.partial(process_gone, p.pid), what=f"proxy {p.pid} to end")


def _echo_tcp(conn: socket.socket) -> None:
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)  # echo the half-close back


@pytest.fixture
def tcp_target() -> Iterator[int]:
    """A TCP echo server on 127.0.0.1 (the container's port); each client in a thread."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.2)
    done = threading.Event()

    def loop() -> None:
        while not done.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            conn.settimeout(TIMEOUT)
            threading.Thread(target=_echo_tcp, args=(conn,), daemon=True).start()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        done.set()
        t.join()
        srv.close()


@pytest.fixture
def udp_target() -> Iterator[int]:
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(0.2)
    done = threading.Event()

    def loop() -> None:
        while not done.is_set():
            try:
                data, addr = srv.recvfrom(65536)
            except TimeoutError:
                continue
            srv.sendto(b"echo:" + data, addr)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        done.set()
        t.join()
        srv.close()


def _round_trip(port: int, payload: bytes) -> bytes:
    """Send ``payload``, half-close, and read until the proxy passes the server's EOF back."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as c:

        def send() -> None:
            c.sendall(payload)
            c.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        got = bytearray()
        while data := c.recv(65536):
            got.extend(data)
        sender.join(TIMEOUT)
        return bytes(got)


def _fds(pid: int) -> dict[int, str]:
    d = f"/proc/{pid}/fd"
    return {int(fd): os.readlink(f"{d}/{fd}") for fd in os.listdir(d)}


def test_tcp_one_mib_with_half_close(proxy: Any, tcp_target: int) -> None:
    p = proxy(PortBinding(tcp_target, host_ip="127.0.0.1"))
    payload = os.urandom(1 << 20)
    assert _round_trip(p.ports[0], payload) == payload


def test_proxy_process(proxy: Any, tcp_target: int) -> None:
    p = proxy(PortBinding(tcp_target, host_ip="127.0.0.1"))
    with open(f"/proc/{p.pid}/comm") as f:
        assert f.read().strip() == NAME
    assert p.pid in find_proxies()
    fds = _fds(p.pid)
    assert [fds[i] for i in (0, 1, 2)] == ["/dev/null"] * 3
    # The helper's stdout pipe is not held open by the proxy: only its sockets and its epoll.
    assert not [t for t in fds.values() if t.startswith("pipe:")], fds
    with open(f"/proc/{p.pid}/status") as f:
        ppid = next(int(line.split()[1]) for line in f if line.startswith("PPid:"))
    assert ppid == p.helper.pid


def test_tcp_concurrent_clients(proxy: Any, tcp_target: int) -> None:
    p = proxy(PortBinding(tcp_target, host_ip="127.0.0.1"))
    payloads = [bytes([i]) * (100_000 + i) for i in range(8)]
    results: dict[int, bytes] = {}

    def client(i: int) -> None:
        results[i] = _round_trip(p.ports[0], payloads[i])

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(payloads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    assert results == dict(enumerate(payloads))


def test_tcp_several_ports(proxy: Any, tcp_target: int, udp_target: int) -> None:
    p = proxy(
        PortBinding(tcp_target, host_ip="127.0.0.1"),
        PortBinding(udp_target, "udp", host_ip="127.0.0.1"),
        PortBinding(tcp_target, host_ip="127.0.0.1"),
    )
    assert len(set(p.ports)) == 3
    assert _round_trip(p.ports[0], b"first") == b"first"
    assert _round_trip(p.ports[2], b"third") == b"third"


def test_tcp_failed_connect_closes_client(proxy: Any) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    p = proxy(PortBinding(dead, host_ip="127.0.0.1"))
    with (
        socket.create_connection(("127.0.0.1", p.ports[0]), timeout=TIMEOUT) as c,
        contextlib.suppress(ConnectionResetError),  # closed, or reset: never data
    ):
        assert c.recv(1) == b""


def test_udp_round_trip(proxy: Any, udp_target: int) -> None:
    p = proxy(PortBinding(udp_target, "udp", host_ip="127.0.0.1"))
    clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    try:
        for i, c in enumerate(clients):
            c.settimeout(TIMEOUT)
            c.sendto(f"hello {i}".encode(), ("127.0.0.1", p.ports[0]))
        for i, c in enumerate(clients):  # each reply reaches the client that asked
            data, addr = c.recvfrom(65536)
            assert data == f"echo:hello {i}".encode()
            assert addr == ("127.0.0.1", p.ports[0])
        clients[0].sendto(b"again", ("127.0.0.1", p.ports[0]))
        assert clients[0].recvfrom(65536)[0] == b"echo:again"
    finally:
        for c in clients:
            c.close()


def _my_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_taken_port_binds_nothing(proto: str) -> None:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as taken:
        taken.bind(("127.0.0.1", 0))
        if proto == "tcp":
            taken.listen()
        port = taken.getsockname()[1]
        before = _my_fds()
        want = [
            PortBinding(1, proto, "127.0.0.1"),  # random: bound first, then released again
            PortBinding(2, proto, "127.0.0.1", port),
        ]
        with pytest.raises(PortInUse) as info:
            bind(want)
        assert str(info.value) == f"Bind for 127.0.0.1:{port} failed: port is already allocated"
        with pytest.raises(PortInUse):
            check_free(want)
        assert _my_fds() == before  # nothing left open
    check_free([PortBinding(2, proto, "127.0.0.1", port)])  # released: free again


def test_taken_on_all_addresses() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(PortInUse, match=f"Bind for 0.0.0.0:{port} failed"):
            check_free([PortBinding(80, host_port=port)])


def test_range_takes_first_free_port() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        end = min(port + 20, 65535)
        bound = bind([PortBinding(80, host_ip="127.0.0.1", host_port=port, host_port_end=end)])
        try:
            got = bound[0].binding
            assert port < got.host_port <= end
            assert got.host_port_end == 0
            assert bound[0].sock.getsockname() == ("127.0.0.1", got.host_port)
        finally:
            bound[0].close()


def test_bad_address_is_a_usage_error() -> None:
    from pycont.errors import UsageError

    with pytest.raises(UsageError, match="bind tcp 192.0.2.1:0: Cannot assign requested"):
        check_free([PortBinding(80, host_ip="192.0.2.1")])  # TEST-NET-1: not on this host


def test_sockets_close_on_exec() -> None:
    bound = bind([PortBinding(80, host_ip="127.0.0.1"), PortBinding(53, "udp", "127.0.0.1")])
    try:
        assert not any(os.get_inheritable(b.sock.fileno()) for b in bound)
    finally:
        for b in bound:
            b.close()


def test_proxy_dies_with_its_parent(proxy: Any, tcp_target: int) -> None:
    p = proxy(PortBinding(tcp_target, host_ip="127.0.0.1"))
    assert not process_gone(p.pid)
    p.helper.kill()  # SIGKILL: no chance to stop() it; PR_SET_PDEATHSIG must
    p.helper.wait()
    wait_for(lambda: process_gone(p.pid), what=f"proxy {p.pid} to die with its parent")
    with pytest.raises(OSError):  # its port is closed
        socket.create_connection(("127.0.0.1", p.ports[0]), timeout=TIMEOUT).close()


def test_stop_ends_the_proxy(proxy: Any, tcp_target: int) -> None:
    p = proxy(PortBinding(tcp_target, host_ip="127.0.0.1"))
    p.helper.stdin.close()  # the helper calls stop(pid): SIGTERM and waitpid
    assert p.helper.wait(timeout=TIMEOUT) == 0
    assert process_gone(p.pid)


def test_zz_no_proxy_left() -> None:
    """Runs last in this file: no proxy these tests started is still there."""
    assert _started, "the tests above started no proxy"
    assert not set(_started) & set(find_proxies())
