"""The port proxy: docker-proxy's job, one process per container for all its published ports.

Connections to a published host port arrive at a socket :func:`pycont.net.ports.bind` opened;
this process relays each of them to the same port of the container's address, both ways. One
:mod:`selectors` loop serves every port: no thread, no process per connection.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import signal
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from pycont.errors import StartError
from pycont.kernel import current
from pycont.net.ports import Bound

NAME = "pycont-proxy"  # /proc/PID/comm of the proxy (15 bytes at most, proc(5))
UDP_TIMEOUT = 90.0  # seconds: docker-proxy forgets a UDP client idle that long
CHUNK = 65536
LIMIT = 4 * CHUNK  # bytes buffered one way before the proxy stops reading that side
_R, _W = selectors.EVENT_READ, selectors.EVENT_WRITE


@dataclass
class _Tcp:
    """One relayed connection: ``socks[0]`` the client, ``socks[1]`` the container.
    ``bufs[i]`` holds what was read from ``socks[i]`` and not yet written to the other."""

    socks: tuple[socket.socket, socket.socket]
    connected: bool = False
    bufs: tuple[bytearray, bytearray] = field(default_factory=lambda: (bytearray(), bytearray()))
    eof: list[bool] = field(default_factory=lambda: [False, False])
    registered: list[int] = field(default_factory=lambda: [0, 0])


@dataclass
class _Udp:
    """One UDP client: its own connected socket to the container, so replies find it."""

    listener: socket.socket
    client: tuple[str, int]
    upstream: socket.socket
    last: float


class _Loop:
    def __init__(self, bound: Sequence[Bound], target_ip: str) -> None:
        self.sel = selectors.DefaultSelector()
        self.target_ip = target_ip
        self.family = socket.AF_INET6 if ":" in target_ip else socket.AF_INET
        self.udp: dict[tuple[socket.socket, tuple[str, int]], _Udp] = {}
        for b in bound:
            b.sock.setblocking(False)
            self.sel.register(b.sock, _R, ("listen", b))

    # TCP -----------------------------------------------------------------------------------

    def accept(self, b: Bound) -> None:
        while True:
            try:
                client, _ = b.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ECONNABORTED, EMFILE...: drop this one, keep serving
                return
            client.setblocking(False)
            up = socket.socket(self.family, socket.SOCK_STREAM)
            up.setblocking(False)
            conn = _Tcp((client, up))
            err = up.connect_ex((self.target_ip, b.binding.container_port))
            if err not in (0, errno.EINPROGRESS):
                self.close(conn)
                continue
            # connect(2): non-blocking, the socket turns writable when the handshake is done.
            self.sel.register(up, _W, ("tcp", conn, 1))
            conn.registered[1] = _W

    def close(self, conn: _Tcp) -> None:
        for i, s in enumerate(conn.socks):
            if conn.registered[i]:
                self.sel.unregister(s)
                conn.registered[i] = 0
            s.close()

    def interest(self, conn: _Tcp) -> None:
        """Read a side while it has not ended and its buffer has room; write a side while
        the other side's buffer holds data. Both ended and flushed: the relay is done."""
        if all(conn.eof) and not any(conn.bufs):
            self.close(conn)
            return
        for i, s in enumerate(conn.socks):
            want = 0
            if not conn.eof[i] and len(conn.bufs[i]) < LIMIT:
                want |= _R
            if conn.bufs[1 - i]:
                want |= _W
            if want == conn.registered[i]:
                continue
            if not conn.registered[i]:
                self.sel.register(s, want, ("tcp", conn, i))
            elif want:
                self.sel.modify(s, want, ("tcp", conn, i))
            else:
                self.sel.unregister(s)
            conn.registered[i] = want

    def tcp_event(self, conn: _Tcp, i: int, events: int) -> None:
        s, other = conn.socks[i], conn.socks[1 - i]
        try:
            if not conn.connected:  # i == 1: the connect finished, or failed
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    self.close(conn)  # nothing listens in the container: drop the client
                    return
                conn.connected = True
            elif events & _R:
                data = s.recv(CHUNK)
                if data:
                    conn.bufs[i].extend(data)
                else:
                    conn.eof[i] = True
                    if not conn.bufs[i]:
                        other.shutdown(socket.SHUT_WR)  # pass the half-close on
            if events & _W and conn.bufs[1 - i]:
                buf = conn.bufs[1 - i]
                del buf[: s.send(buf)]
                if not buf and conn.eof[1 - i]:
                    s.shutdown(socket.SHUT_WR)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:  # ECONNRESET, EPIPE: one side is gone, so is the relay
            self.close(conn)
            return
        self.interest(conn)

    # UDP -----------------------------------------------------------------------------------

    def datagram(self, b: Bound) -> None:
        while True:
            try:
                data, client = b.sock.recvfrom(CHUNK)
            except OSError:  # EAGAIN: drained; others: a UDP socket has nothing to recover
                return
            entry = self.udp.get((b.sock, client))
            if entry is None:
                up = socket.socket(self.family, socket.SOCK_DGRAM)
                up.setblocking(False)
                try:
                    up.connect((self.target_ip, b.binding.container_port))
                except OSError:
                    up.close()
                    continue
                entry = _Udp(b.sock, client, up, time.monotonic())
                self.udp[(b.sock, client)] = entry
                self.sel.register(up, _R, ("udp", entry))
            entry.last = time.monotonic()
            with contextlib.suppress(OSError):  # ECONNREFUSED from an earlier ICMP: drop it
                entry.upstream.send(data)

    def reply(self, entry: _Udp) -> None:
        while True:
            try:
                data = entry.upstream.recv(CHUNK)
            except OSError:
                return
            entry.last = time.monotonic()
            with contextlib.suppress(OSError):
                entry.listener.sendto(data, entry.client)

    def expire(self) -> float | None:
        """Forget UDP clients idle for UDP_TIMEOUT; the seconds until the next one expires."""
        now = time.monotonic()
        for key, entry in list(self.udp.items()):
            if now - entry.last >= UDP_TIMEOUT:
                self.sel.unregister(entry.upstream)
                entry.upstream.close()
                del self.udp[key]
        if not self.udp:
            return None
        return max(0.0, min(e.last for e in self.udp.values()) + UDP_TIMEOUT - now)

    def run(self, wake: socket.socket) -> None:
        self.sel.register(wake, _R, ("stop",))
        while True:
            for key, events in self.sel.select(self.expire()):
                kind, *args = key.data
                if kind == "stop":
                    return
                if kind == "listen":
                    b = args[0]
                    (self.accept if b.binding.proto == "tcp" else self.datagram)(b)
                elif kind == "tcp":
                    conn, i = args
                    if conn.registered[i]:  # not closed by an earlier event of this round
                        self.tcp_event(conn, i, events)
                elif kind == "udp" and args[0].upstream.fileno() >= 0:
                    self.reply(args[0])

    def shutdown(self) -> None:
        for key in list(self.sel.get_map().values()):
            self.sel.unregister(key.fileobj)
            if key.data[0] in ("tcp", "udp"):
                with contextlib.suppress(OSError):
                    key.fileobj.close()  # type: ignore[union-attr]
        self.sel.close()


def serve(bound: Sequence[Bound], target_ip: str) -> None:
    """Relay every published port in ``bound`` to ``target_ip`` until SIGTERM. Never prints.

    TCP: accept, connect to (target_ip, container port) without blocking, relay both ways;
    an EOF from one side becomes shutdown(SHUT_WR) on the other. UDP: one connected socket
    per client address; replies go back with sendto; clients idle for 90 s are forgotten.
    """
    # signal(7) self-pipe: the handler's wakeup byte makes select() return; the loop stops.
    wake, wake_w = socket.socketpair()
    wake.setblocking(False)
    wake_w.setblocking(False)
    old_fd = signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
    old_term = signal.signal(signal.SIGTERM, lambda *_: None)
    loop = _Loop(bound, target_ip)
    try:
        loop.run(wake)
    finally:
        loop.shutdown()
        signal.signal(signal.SIGTERM, old_term)
        signal.set_wakeup_fd(old_fd)
        wake.close()
        wake_w.close()


def _set_comm(name: str) -> None:
    """Name this process in ps and /proc/PID/comm (proc(5): prctl PR_SET_NAME, 15 bytes)."""
    with contextlib.suppress(OSError), open("/proc/self/comm", "w") as f:
        f.write(name)


def start(bound: Sequence[Bound], target_ip: str) -> int:
    """Fork the proxy for ``bound`` and return its pid; this process's copies of the
    listening sockets are closed, the proxy owns them.

    fork(2) without exec is safe here only because the caller, the container's shim, is a
    single-threaded process: a fork of a threaded one may copy a lock some other thread held.
    The proxy dies with its parent (PR_SET_PDEATHSIG SIGTERM).
    """
    parent = os.getpid()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid:
        os.close(ready_w)
        for b in bound:
            b.close()
        # Return once the proxy is named and tied to us: then `ps` and find_proxies() see it.
        with open(ready_r, "rb") as ready:
            ok = ready.read() == b"1"  # until EOF: the proxy has closed its end too
        if not ok:
            _, status = os.waitpid(pid, 0)
            raise StartError(f"port proxy {pid} exited before it was ready (status {status})")
        return pid
    code = 1
    try:
        os.close(ready_r)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a ^C at the terminal is not for us
        signal.set_wakeup_fd(-1)  # the parent's wakeup fd is not ours to write to
        _set_comm(NAME)
        current().set_pdeathsig(signal.SIGTERM)
        # prctl(2): the parent may have died before PR_SET_PDEATHSIG took effect.
        if os.getppid() != parent:
            os._exit(0)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        # Hold no fd of the parent's but the listeners: a pipe kept open here would keep
        # its reader from ever seeing EOF.
        keep = sorted([ready_w, *(b.sock.fileno() for b in bound)])
        low = 3
        for fd in keep:
            os.closerange(low, fd)
            low = fd + 1
        os.closerange(low, os.sysconf("SC_OPEN_MAX"))
        os.write(ready_w, b"1")
        os.close(ready_w)
        serve(bound, target_ip)
        code = 0
    finally:
        os._exit(code)


def stop(pid: int) -> None:
    """SIGTERM the proxy and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def find_proxies() -> list[int]:
    """The pids of every running pycont proxy on this machine (for the leak check). A zombie
    (its parent died and init has not reaped it yet) runs nothing and holds no port: skipped."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # proc(5): "pid (comm) state ...": comm may hold ")", so split at the last one.
        comm = stat[stat.find("(") + 1 : stat.rfind(")")]
        state = stat[stat.rfind(")") + 2 :][:1]
        if comm == NAME and state not in ("Z", "X"):
            pids.append(int(entry))
    return sorted(pids)
