"""The fork server: one single-threaded helper that forks a shim for each container.

A notebook kernel is multi-threaded, so it must never fork(2) itself; spawning a fresh
interpreter per container costs ~50 ms. The fork server is that interpreter, started once
(see :class:`pycont.runtime.launcher.ForkServer`): it has one thread, so forking it is safe.
Each request carries the shim's stdio and status pipe as file descriptors (SCM_RIGHTS,
unix(7)); the reply is the new shim's pid.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import signal
import socket
import sys
from typing import NoReturn

if __name__ == "__main__":  # run as a script: make the package importable, nothing else
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    # and the third-party folders the launcher passes (launcher.ENV_SYSPATH): pyroute2
    sys.path += [p for p in os.environ.get("PYCONT_HELPER_SYSPATH", "").split(os.pathsep) if p]

from pycont.runtime import pid1, protocol, shim, shimio


def become(mode: str, args: list[str], fds: list[int], new_session: bool) -> NoReturn:
    """In a freshly forked child: take the given stdio and status fds, run the shim, exit."""
    code = 125
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        if new_session:
            os.setsid()
        for i in range(3):
            if fds[i] != i:
                os.dup2(fds[i], i)
        # Keep stdio and the status pipe (as fd 3), nothing else: a caller's stray descriptor
        # (a pipe it waits on, a directory) must not reach the container.
        if fds[3] != 3:
            os.dup2(fds[3], 3, inheritable=False)
        pid1.close_host_fds(low=4)
        code = shim.dispatch(mode, args, 3)
    except BaseException as err:  # noqa: BLE001 - a forked child must never return
        shimio.Reporter(3).send(protocol.Failed("internal", 125, f"pycont shim: {err!r}"))
    finally:
        # The caller reads the status pipe (and maybe stdout) to EOF. exit(2) closes files only
        # after it has torn down the address space, ~3 ms for this copy of the fork server:
        # close them all first (shim.lock's with them: the record is final), so the caller
        # goes on while the kernel tears down.
        os.closerange(0, os.sysconf("SC_OPEN_MAX"))
        os._exit(code)


def serve(sock_fd: int) -> int:
    """Fork a shim per request until the caller closes the socket."""
    sock = socket.socket(fileno=sock_fd)
    shim.set_comm("pycont-forksrv")
    # Import now what every shim needs later: each forked shim then starts with it loaded,
    # instead of importing the cgroup drivers again for every container.
    import pycont.cgroups  # noqa: F401
    import pycont.net.attach  # noqa: F401

    with contextlib.suppress(ImportError):  # the netlink library, ~0.1 s to import
        import pyroute2  # noqa: F401

    # Children are reaped by the kernel; each forked shim resets this before it waits for
    # its container (sigaction(2): SIG_IGN for SIGCHLD means no zombies).
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        fds = array.array("i")
        msg, ancdata, _flags, _addr = sock.recvmsg(65536, socket.CMSG_SPACE(4 * fds.itemsize))
        if not msg:
            return 0
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
        req = json.loads(msg)
        pid = os.fork()
        if pid == 0:
            sock.close()
            become(req["mode"], req["args"], list(fds), new_session=True)
        for fd in set(fds):
            os.close(fd)
        sock.sendall(str(pid).encode())


if __name__ == "__main__":
    # forkserver.py SOCKET_FD (see launcher.ForkServer)
    sys.exit(serve(int(sys.argv[1])))
