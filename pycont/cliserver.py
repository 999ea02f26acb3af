"""The command server behind the ``pycont`` client: the CLI imported once, a fork per command.

One server per user and per installed tree (the key in its socket's name, pycont.client). It
accepts a connection, checks the peer's uid (SO_PEERCRED, socket(7)), takes the client's stdio
and working folder (SCM_RIGHTS), forks a worker and replies with its pid; the worker becomes the
client (fds 0-2, cwd, umask, environment, signal state) and, once the client says go, runs
``pycont.cli.main(argv)`` as a direct start would. The server watches each worker's pidfd and
sends its wait status to its client; a client that vanishes takes its worker with it (SIGKILL,
as the direct CLI would have died). Idle for ``PYCONT_CLI_SERVER_IDLE`` seconds: it exits.

    python -I pycont/cliserver.py serve FOLDER KEY SYSPATH     (started by pycont.client)
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # a script: import the package from where the client found it
    sys.path[:] = [p for p in sys.argv[4].split(os.pathsep) if p]

import contextlib
import errno
import fcntl
import json
import select
import signal
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

from pycont import client
from pycont.cli import GROUPS
from pycont.cliworker import name_self, read_request, run_worker

SERVER_NAME = "pycont-cli-server"  # comm keeps 15 bytes: "pycont-cli-serv" (proc(5))
DEFAULT_IDLE = 60.0


@dataclass
class Worker:
    pid: int
    pidfd: int
    conn: socket.socket


def idle_timeout(environ: dict[str, str] | os._Environ[str]) -> float:
    try:
        return float(environ.get(client.ENV_IDLE, DEFAULT_IDLE))
    except ValueError:
        return DEFAULT_IDLE


def info_path(folder: str, key: str) -> str:
    return os.path.join(folder, f"cli-{key}.json")


# -- the server -----------------------------------------------------------------------------------
class Server:
    """The accept loop: one listening socket, and for each worker its pidfd and its client."""

    def __init__(self, folder: str, key: str, idle: float) -> None:
        self.folder, self.key, self.idle = folder, key, idle
        self.path = os.path.join(folder, client.socket_name(key))
        self.workers: dict[int, Worker] = {}  # pidfd -> worker
        self.by_conn: dict[int, Worker] = {}  # client socket fd -> worker
        self.last = time.monotonic()
        self.stopping = False
        self.listener: socket.socket | None = None
        self.ino = 0
        self.context = client.context()  # what each worker inherits: clients must share it

    def bind(self) -> None:
        """Listen under a private name, then rename(2) it into place: the public name is never
        a socket that refuses (which a client would remove as stale)."""
        tmp = os.path.join(self.folder, f".cli-{self.key}.{os.getpid()}.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        sock.bind(tmp)
        sock.listen(64)
        os.rename(tmp, self.path)
        self.ino = os.lstat(self.path).st_ino
        self.listener = sock
        info = {
            "socket": self.path,
            "pid": os.getpid(),
            "key": self.key,
            "idle": self.idle,
            "started": time.time(),
            "executable": sys.executable,
            "package": client.package_dir(),
        }
        tmp_info = info_path(self.folder, self.key) + ".tmp"
        with open(tmp_info, "w") as f:
            json.dump(info, f)
        os.rename(tmp_info, info_path(self.folder, self.key))

    def unbind(self) -> None:
        """Remove our socket and info file, unless a newer server already took the names."""
        if self.listener is None:
            return
        self.listener.close()
        self.listener = None
        with contextlib.suppress(OSError):
            if os.lstat(self.path).st_ino == self.ino:
                os.unlink(self.path)
                os.unlink(info_path(self.folder, self.key))

    def accept(self) -> None:
        assert self.listener is not None
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        self.last = time.monotonic()
        conn.settimeout(client.HANDSHAKE_TIMEOUT)
        cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        peer, uid, _gid = struct.unpack("3i", cred)
        if uid != os.geteuid():  # the folder is 0700; this is the second lock
            conn.close()
            return
        if client.context(str(peer)) != self.context:
            # A worker runs with the server's credentials, not the client's: a client with
            # fewer capabilities, other groups, limits or namespaces runs its command itself.
            conn.close()
            return
        req = read_request(conn)
        if req is None:
            conn.close()
            return
        try:
            pid = os.fork()
        except OSError:
            pid = -1
        if pid == 0:
            run_worker(conn, req)
        for fd in req.fds:  # a pipe's reader waits for EOF: our copies must go now
            os.close(fd)
        if pid < 0:
            conn.close()
            return
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)  # also in the child: whichever runs first (setpgid(2))
        pidfd = os.pidfd_open(pid)
        w = Worker(pid, pidfd, conn)
        self.workers[pidfd] = w
        self.by_conn[conn.fileno()] = w
        try:
            conn.sendall(client.REPLY.pack(pid))
        except OSError:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)

    def reap(self, pidfd: int) -> None:
        w = self.workers.pop(pidfd)
        del self.by_conn[w.conn.fileno()]
        _, status = os.waitpid(w.pid, 0)
        with contextlib.suppress(OSError):
            w.conn.sendall(client.REPLY.pack(status))
        w.conn.close()
        os.close(pidfd)
        self.last = time.monotonic()

    def client_gone(self, fd: int) -> None:
        """The client died (it hangs up only after the status): so does its command."""
        w = self.by_conn[fd]
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(w.pidfd, signal.SIGKILL)

    def still_ours(self) -> bool:
        try:
            return os.lstat(self.path).st_ino == self.ino
        except OSError:
            return False

    def loop(self) -> None:
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        signal.signal(signal.SIGINT, lambda *_: setattr(self, "stopping", True))
        while True:
            if self.stopping or (self.listener is not None and not self.still_ours()):
                self.unbind()
            if self.listener is None and not self.workers:
                return
            left = self.idle - (time.monotonic() - self.last)
            if not self.workers and left <= 0:
                self.unbind()
                return
            poller = select.poll()
            poller.register(wake_r, select.POLLIN)
            if self.listener is not None:
                poller.register(self.listener.fileno(), select.POLLIN)
            for pidfd, w in self.workers.items():
                poller.register(pidfd, select.POLLIN)
                poller.register(w.conn.fileno(), 0)  # POLLHUP only: the client closed
            timeout = None if self.workers else max(0.0, min(left, 10.0)) * 1000
            for fd, ev in poller.poll(timeout):
                if fd == wake_r:
                    with contextlib.suppress(OSError):
                        os.read(wake_r, 64)
                elif self.listener is not None and fd == self.listener.fileno():
                    self.accept()
                elif fd in self.workers:
                    self.reap(fd)
                elif fd in self.by_conn and ev & (select.POLLHUP | select.POLLERR):
                    self.client_gone(fd)


def serve(folder: str, key: str) -> int:
    """The server's main: one per (folder, key), kept by a lock; exits when idle."""
    os.chdir("/")  # hold no client's folder (a busy mount)
    name_self(SERVER_NAME)
    if not client.dir_is_safe(folder):
        return 1
    lock_path = os.path.join(folder, f"cli-{key}.lock")
    lock = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return 0  # another server for this key is starting or running
        raise
    preload()
    server = Server(folder, key, idle_timeout(os.environ))
    server.bind()
    try:
        server.loop()
    finally:
        server.unbind()
        # Removed while still held: a server that opened it just before flocks a dead inode
        # and may run beside the next one; harmless, the newer one's rename(2) wins the socket
        # and the older notices (still_ours) and leaves.
        with contextlib.suppress(OSError):
            if os.stat(lock_path).st_ino == os.fstat(lock).st_ino:
                os.unlink(lock_path)
    return 0


# -- pycont system server status|stop --------------------------------------------------------------
def _alive(pid: int) -> bool:
    """pid is a command server still (proc(5) stat): not a reused pid, nor a killed server that
    its parent (init, for a server whose client has gone) has not reaped yet."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    comm, _, rest = stat.partition(" (")[2].rpartition(") ")
    return comm == SERVER_NAME[:15] and rest[:1] not in ("Z", "X")


def servers(folder: str | None = None) -> list[dict[str, Any]]:
    """The running servers of this user (their info files), oldest first."""
    folder = folder or client.server_dir()
    found = []
    with contextlib.suppress(OSError), os.scandir(folder) as it:
        for e in it:
            if e.name.startswith("cli-") and e.name.endswith(".json"):
                with contextlib.suppress(OSError, ValueError), open(e.path) as f:
                    info = json.load(f)
                    if _alive(int(info["pid"])):
                        found.append(info)
    return sorted(found, key=lambda i: float(i["started"]))


def stop(folder: str | None = None, timeout: float = 10.0) -> list[int]:
    """SIGTERM every server: each stops accepting, removes its socket, and exits once its
    running commands ended. Waits for them, but not for the one running this command."""
    stopped = []
    for info in servers(folder):
        pid = int(info["pid"])
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            continue
        try:
            if _alive(pid):
                signal.pidfd_send_signal(pidfd, signal.SIGTERM)
                stopped.append(pid)
                if pid != os.getppid():
                    select.select([pidfd], [], [], timeout)
        finally:
            os.close(pidfd)
    return stopped


# What the server imports before any fork: the CLI with every verb's module, the runtime and the
# shim (which `run` forks from the worker). Audited for state computed at import (README, "The
# command server"): failpoints (empty here: the client runs failpoint commands itself), the
# machine (uname, page size, libc, the root's inode): the same for every command of this user.
PRELOAD = (
    "pycont.cli",
    *(f"pycont.cli.{group}" for group in GROUPS),
    "pycont.runtime.container",
    "pycont.runtime.forkserver",
    "pycont.runtime.shim",
    "pycont.cgroups",
    "pycont.net.attach",  # a default (bridge) network's veth, as the fork server does
)


def preload() -> None:
    """Import what commands import, once, and build every verb's parser: each worker then
    starts with it in memory. pyroute2 too (~0.1 s to import; no thread until it is used)."""
    for name in PRELOAD:
        __import__(name)
    with contextlib.suppress(ImportError):
        import pyroute2  # noqa: F401
    from pycont.cli import prebuild

    prebuild()


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        sys.exit(serve(sys.argv[2], sys.argv[3]))
    sys.exit(2)
