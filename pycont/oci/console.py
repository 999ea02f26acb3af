"""The container's terminal (process.terminal): a pty made inside, its master handed over.

runtime.md leaves the pty to the caller's console socket (runc's convention, which conmon
speaks): the runtime connects to the AF_UNIX socket given with --console-socket and sends the
master side as SCM_RIGHTS ancillary data (unix(7)); the slave becomes the process's controlling
terminal (setsid(2), ioctl TIOCSCTTY, tty_ioctl(4)) and its stdin, stdout and stderr.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import termios

from pycont.errors import KernelError
from pycont.kernel import MS_BIND, Kernel

__all__ = ["connect", "take_terminal"]


def connect(path: str) -> socket.socket:
    """Connect to the caller's console socket (before pivot_root: the path is the host's)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as err:
        sock.close()
        raise KernelError("connect console socket", err.errno or errno.EIO, path) from err
    return sock


def take_terminal(k: Kernel, sock: socket.socket, console: bool) -> None:
    """Open a pty in the container's devpts, send its master, make the slave this process's
    controlling terminal and stdio. ``console``: also bind it on /dev/console (the init)."""
    # openpty(3) opens /dev/ptmx: after pivot_root that is the container's pts/ptmx.
    master, slave = os.openpty()
    try:
        name = os.ttyname(slave)
        socket.send_fds(sock, [name.encode()], [master])
    finally:
        os.close(master)
        sock.close()
    if console:
        fd = os.open("/dev/console", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.close(fd)
        k.mount(name, "/dev/console", "", MS_BIND)
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for std in (0, 1, 2):
        os.dup2(slave, std)
    if slave > 2:
        os.close(slave)
