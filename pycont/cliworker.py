"""A command server's worker: a fork of the server that becomes the client and runs its command.

The client (pycont.client) sent its stdio and working folder (SCM_RIGHTS, unix(7)), argv,
environment, umask, ignored signals and signal mask; the worker takes them all on, waits for the
client's go (so that a client which gave up never has its command run twice), then runs
``pycont.cli.main(argv)`` and leaves as the interpreter would: threads joined, atexit run,
stdout flushed, ``os._exit(code)``.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import sys
from dataclasses import dataclass

from pycont import client

MAX_FD = 1 << 20
WORKER_NAME = "pycont-cli"


@dataclass
class Request:
    fds: list[int]
    umask: int
    argv: list[str]
    env: dict[bytes, bytes]
    ignored: list[int]
    blocked: list[int]


def name_self(name: str) -> None:
    """As pycont.runtime.pid1.name_self (proc(5): /proc/self/comm), without importing the
    container runtime into the server: it holds as little as it can (see preload)."""
    with contextlib.suppress(OSError), open("/proc/self/comm", "w") as f:
        f.write(name)


# -- the request --------------------------------------------------------------------------------
def _ints(field: bytes) -> list[int]:
    return [int(x) for x in field.split(b",") if x]


def parse_body(body: bytes) -> tuple[list[str], dict[bytes, bytes], list[int], list[int]]:
    """pycont.client.request_body, read back."""
    fields = body.split(b"\0")
    argc = int(fields[0])
    argv = [os.fsdecode(a) for a in fields[1 : 1 + argc]]
    envc = int(fields[1 + argc])
    env_fields = fields[2 + argc : 2 + argc + envc]
    env = dict(e.split(b"=", 1) for e in env_fields)
    rest = fields[2 + argc + envc :]
    if len(env_fields) != envc or len(rest) != 2:
        raise ValueError("malformed request body")
    return argv, env, _ints(rest[0]), _ints(rest[1])


def read_request(conn: socket.socket) -> Request | None:
    """The client's header with its descriptors, then its body; None (fds closed) if malformed."""
    fds: list[int] = []
    try:
        head, anc, _flags, _addr = conn.recvmsg(
            client.HEADER.size, socket.CMSG_SPACE(4 * 4), socket.MSG_CMSG_CLOEXEC
        )
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                n = len(data) // 4
                fds += list(memoryview(data)[: n * 4].cast("i"))
        magic, umask, nfds, length = client.HEADER.unpack(head)
        if magic != client.MAGIC or nfds != 4 or len(fds) != 4:
            raise ValueError("bad header")
        argv, env, ignored, blocked = parse_body(client._recv_exact(conn, length))
        return Request(fds, umask, argv, env, ignored, blocked)
    except (OSError, ValueError, ConnectionError):
        for fd in fds:
            os.close(fd)
        return None


# -- the worker -----------------------------------------------------------------------------------
def _stdio() -> None:
    """sys.stdin/stdout/stderr over the new fds 0-2, as Python makes them at start: line-buffered
    on a terminal, stderr always line-buffered, the server's encoding (its locale's)."""
    old = sys.__stdout__
    enc = old.encoding if old else "utf-8"
    errors = old.errors if old else "strict"
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        mode = "rb" if fd == 0 else "wb"
        raw = io.FileIO(fd, mode, closefd=False)
        tty = raw.isatty()
        buf = io.BufferedReader(raw) if fd == 0 else io.BufferedWriter(raw)
        stream = io.TextIOWrapper(
            buf,
            encoding=enc,
            errors="backslashreplace" if fd == 2 else errors,
            line_buffering=tty or fd == 2,
        )
        stream.mode = "r" if fd == 0 else "w"  # type: ignore[misc]
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def _signals(ignored: list[int], blocked: list[int]) -> None:
    """The dispositions of a fresh interpreter (SIGINT raises KeyboardInterrupt, SIGPIPE and
    SIGXFSZ ignored), plus what the client was started with: ignored signals and the mask."""
    signal.set_wakeup_fd(-1)
    for sig in signal.valid_signals():
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            with contextlib.suppress(OSError, ValueError):
                signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for s in (signal.SIGPIPE, signal.SIGXFSZ, *ignored):
        with contextlib.suppress(OSError, ValueError):
            signal.signal(s, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _exit_code(err: SystemExit) -> int:
    """What Python's exit does with SystemExit's argument."""
    if err.code is None:
        return 0
    if isinstance(err.code, int):
        return err.code & 0xFF
    print(err.code, file=sys.stderr)
    return 1


def _finish() -> int:
    """What the interpreter does at exit: join threads, run atexit, flush (120 if it fails)."""
    threading = sys.modules.get("threading")
    if threading is not None:
        threading._shutdown()
    import atexit

    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        return 120
    return -1


def run_worker(conn: socket.socket, req: Request) -> None:
    """In the forked child: become the client, wait for go, run the command, exit. Never
    returns."""
    code = 125
    try:
        os.setpgid(0, 0)  # the client signals our group as a terminal would its foreground group
        _signals(req.ignored, req.blocked)
        for fd in (0, 1, 2):
            os.dup2(req.fds[fd], fd)
        os.fchdir(req.fds[3])
        os.umask(req.umask)
        os.environ.clear()
        for k, v in req.env.items():
            os.environb[k] = v
        sys.argv = req.argv
        name_self(WORKER_NAME)  # named once it is the client (what ps and the tests look for)
        conn.settimeout(None)
        go = conn.recv(1)
        conn.detach()
        os.closerange(3, MAX_FD)  # the listener, other clients, the lock: none of theirs
        if go != client.GO:
            os._exit(0)  # the client gave up before go: nothing ran, it runs the command itself
        _stdio()
        try:
            from pycont.cli import main

            code = int(main(req.argv[1:]) or 0)
        except SystemExit as err:
            code = _exit_code(err)
        except KeyboardInterrupt:
            # cli.main turns ^C into 130 itself; one outside it kills Python by SIGINT
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        flushed = _finish()
        code = flushed if flushed >= 0 else code
    finally:
        os._exit(code)
