"""How the shim helper gets started, and the caller's handle on it.

Three ways, all ending in :func:`pycont.runtime.shim.run` in a single-threaded process:

- ``spawn``: a fresh interpreter (``python -I -S shim.py``); always safe, ~50 ms of start-up.
- ``forkserver``: for a long-lived caller such as a notebook kernel. One helper interpreter
  (:mod:`.forkserver`) is started on first use and kept; for each container it forks a shim.
  Forking is safe there because the fork server has a single thread; the notebook kernel
  has many.
- ``fork``: the CLI is itself a fresh, single-threaded process: it forks the shim directly.

The caller talks to the shim over a status pipe of typed messages (:mod:`.protocol`):
narration, then ``Started`` (or ``Failed``), and at the end ``Exited`` with the exit code.
"""

from __future__ import annotations

import array
import atexit
import json
import os
import socket
import subprocess
import sys
import threading
from typing import IO, Any

from pycont import failpoints, procfs
from pycont.errors import CommandNotExecutable, CommandNotFound, StartError, UsageError
from pycont.fsutil import wait_readable
from pycont.runtime import protocol

SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim.py")
FORKSERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "forkserver.py")
PIPE = subprocess.PIPE
STDOUT = subprocess.STDOUT
DEVNULL = subprocess.DEVNULL


VIAS = ("spawn", "forkserver", "fork")
# The helpers run with -I -S (no site-packages: fast, and nothing of the caller's environment
# steers them); the folders of the few third-party modules they need are passed here.
ENV_SYSPATH = "PYCONT_HELPER_SYSPATH"
HELPER_MODULES = ("pyroute2",)


def _helper_env() -> dict[str, str]:
    import importlib.util

    folders = []
    for name in HELPER_MODULES:
        spec = importlib.util.find_spec(name)  # finds, does not import
        if spec is not None and spec.submodule_search_locations:
            folders.append(os.path.dirname(list(spec.submodule_search_locations)[0]))
    return {**os.environ, ENV_SYSPATH: os.pathsep.join(dict.fromkeys(folders))}


def _shell_code(code: int) -> int:
    """An exit code as a shell reports it: -N (killed by signal N, as Popen and
    os.waitstatus_to_exitcode say it) is 128 + N, as docker's 137 for SIGKILL."""
    return 128 - code if code < 0 else code


def _error_for(msg: protocol.Failed) -> StartError:
    if msg.code == 127:
        return CommandNotFound(msg.error)
    if msg.code == 126:
        return CommandNotExecutable(msg.error)
    return StartError(msg.error, msg.code)


class ShimHandle:
    """The caller's handle on one shim (Popen-like): its pid, the container's stdio pipes, and
    ``wait()``, which returns the exit code of the container (or exec'd command) it watches."""

    def __init__(
        self,
        pid: int,
        status_fd: int,
        proc: subprocess.Popen[bytes] | None = None,
        forked: bool = False,
    ) -> None:
        self.pid = pid
        self._status = os.fdopen(status_fd, "rb")
        self._proc = proc
        self._forked = forked  # our own child: reap it
        self.returncode: int | None = None
        self.started_pid = 0  # the container's (or exec'd command's) pid, once Started
        self.what = "the container"  # what it starts, for a message ("the command": exec)
        self.oom_killed = False  # as the shim reported at the end
        self.ended_early = False  # the shim died before it said started or failed
        self.stdin: IO[bytes] | None = None
        self.stdout: IO[bytes] | None = None
        self.stderr: IO[bytes] | None = None

    def handshake(self, say: Any = None) -> int:
        """Read until the shim says started (returns the container's pid) or failed (raises)."""
        for raw in self._status:
            msg = protocol.decode(raw)
            if isinstance(msg, protocol.Narration):
                if say:
                    say(msg.line)
            elif isinstance(msg, protocol.Started):
                self.started_pid = msg.pid
                return msg.pid
            elif isinstance(msg, protocol.Failed):
                self.wait()
                raise _error_for(msg)
        self.ended_early = True
        self.wait()
        raise StartError(
            f"the pycont shim ended (exit {self.returncode}) before {self.what} started"
        )

    def poll(self) -> int | None:
        if self.returncode is None and not wait_readable(self._status, 0):
            return None
        return self.wait()

    def wait(self, timeout: float | None = None) -> int:
        """The container's exit code, as the shim reports it at the end."""
        if self.returncode is not None:
            return self.returncode
        if timeout is not None and not wait_readable(self._status, timeout):
            raise TimeoutError(f"still running after {timeout}s")
        code = None
        for raw in self._status:
            msg = protocol.decode(raw)
            if isinstance(msg, protocol.Exited):
                code, self.oom_killed = msg.code, msg.oom_killed
        self._status.close()
        if code is None and self.started_pid:
            # The shim died before it could say (SIGKILL): its command dies with it
            # (PR_SET_PDEATHSIG); once it has, the record reads exited (state.reconcile).
            procfs.wait_gone(self.started_pid, 10)
        if self._proc is not None:
            shim_code = _shell_code(self._proc.wait())
            code = shim_code if code is None else code
        elif self._forked:
            shim_code = _shell_code(os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1]))
            code = shim_code if code is None else code
        self.returncode = 137 if code is None else code
        return self.returncode


def _stdio_fds(
    stdin: Any, stdout: Any, stderr: Any
) -> tuple[list[int], list[int], list[IO[bytes] | None]]:
    """Popen-style stdin/stdout/stderr → (fds for the child, fds to close here, our ends)."""
    child: list[int] = []
    ours_to_close: list[int] = []
    ends: list[IO[bytes] | None] = [None, None, None]
    for i, spec in enumerate((stdin, stdout, stderr)):
        if spec is None:
            child.append(i)
        elif spec == DEVNULL:
            fd = os.open(os.devnull, os.O_RDWR)
            child.append(fd)
            ours_to_close.append(fd)
        elif spec == PIPE:
            r, w = os.pipe()
            if i == 0:
                child.append(r)
                ours_to_close.append(r)
                ends[0] = os.fdopen(w, "wb")
            else:
                child.append(w)
                ours_to_close.append(w)
                ends[i] = os.fdopen(r, "rb")
        elif spec == STDOUT and i == 2:
            child.append(child[1])
        elif isinstance(spec, int):
            child.append(spec)
        else:
            child.append(spec.fileno())
    return child, ours_to_close, ends


class ForkServer:
    """One single-threaded helper that forks shims on request (SCM_RIGHTS carries the fds)."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", FORKSERVER, str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            env=_helper_env(),
            stdin=DEVNULL,
            # Its own session: a ^C in a terminal running the caller does not reach it, and the
            # shims it forks outlive the caller when their containers are detached.
            start_new_session=True,
        )
        theirs.close()
        self.sock = ours
        self.lock = threading.Lock()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def launch(self, mode: str, args: list[str], fds: list[int]) -> int:
        """Ask for a shim; returns its pid. ``fds``: stdin, stdout, stderr, status."""
        with self.lock:
            req = json.dumps({"mode": mode, "args": args}).encode()
            self.sock.sendmsg(
                [req], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
            )
            reply = self.sock.recv(64)
        if not reply:
            raise StartError("the pycont fork server is gone")
        return int(reply)


_server: ForkServer | None = None
_server_lock = threading.Lock()


def shutdown() -> None:
    """Stop this process's fork server (running containers and their shims go on)."""
    global _server
    with _server_lock:
        if _server is not None:
            _server.sock.close()
            _server.proc.wait(10)
            _server = None


atexit.register(shutdown)


def _fork_server() -> ForkServer:
    global _server
    with _server_lock:
        if _server is None or not _server.alive():
            _server = ForkServer()
        return _server


def launch(
    mode: str,
    args: list[str],
    *,
    stdin: Any = None,
    stdout: Any = None,
    stderr: Any = None,
    detach: bool = False,
    via: str | None = None,
) -> ShimHandle:
    """Start a shim for ``mode`` ("run" or "exec") and return the caller's handle on it.

    ``via``: "spawn", "forkserver" or "fork" (see above); default $PYCONT_LAUNCH, else
    forkserver. "fork" falls back to spawn in a multi-threaded process."""
    how = via or os.environ.get("PYCONT_LAUNCH", "forkserver")
    if how not in VIAS:
        raise UsageError(f"launch a shim via {how!r}: expected one of {', '.join(VIAS)}")
    if how == "forkserver" and os.environ.get(failpoints.ENV):
        # The fork server's shims carry the failpoints it was started with (read once, at
        # import), maybe none: a shim of its own takes the ones set now.
        how = "spawn"
    status_r, status_w = os.pipe()
    child, to_close, ends = _stdio_fds(stdin, stdout, stderr)
    try:
        if how == "fork" and threading.active_count() > 1:
            how = "spawn"  # fork(2) in a multi-threaded process is not safe: never do it
        if how == "forkserver":
            pid = _fork_server().launch(mode, args, [*child, status_w])
            mon = ShimHandle(pid, status_r)
        elif how == "fork":
            from pycont.runtime import forkserver

            pid = os.fork()
            if pid == 0:
                os.close(status_r)
                forkserver.become(mode, args, [*child, status_w], new_session=detach)
            mon = ShimHandle(pid, status_r, forked=True)
        else:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", SHIM, mode, args[0], str(status_w), *args[1:]],
                stdin=child[0],
                stdout=child[1],
                stderr=child[2],
                pass_fds=(status_w,),
                start_new_session=detach,
                env=_helper_env(),
            )
            mon = ShimHandle(proc.pid, status_r, proc)
    except BaseException:
        os.close(status_r)
        for end in ends:
            if end is not None:
                end.close()
        raise
    finally:
        os.close(status_w)
        for fd in to_close:
            os.close(fd)
    mon.stdin, mon.stdout, mon.stderr = ends
    if mode == "exec":
        mon.what = "the command"
    return mon
