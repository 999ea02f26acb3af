"""The ``pycont`` command: a thin client that hands each command to a per-user command server.

Starting Python and importing the CLI costs more than many commands take, so, as docker's CLI
hands requests to its daemon, this client passes its stdin, stdout, stderr and working folder
(SCM_RIGHTS, unix(7)), its argv, environment, umask and signal state to a server that already
imported the CLI; the server forks a worker that runs ``pycont.cli.main(argv)`` exactly as a
direct start would (:mod:`pycont.cliserver`). The client forwards signals to the worker and
ends as it ended: same exit code, or killed by the same signal.

Runs the command itself (the direct path) when no server answers (then starts one for the next
commands), when a terminal is involved (``-i``/``-t``: job control must stay as it is), or when
``PYCONT_CLI_SERVER=0`` or failpoints are set. Only cheap stdlib modules are imported here:
``_socket`` and ``_signal`` rather than ``socket`` and ``signal`` (their enums cost milliseconds).
"""

from __future__ import annotations

import _signal
import _socket
import _struct
import errno
import os
import sys

# Signals the client passes on. A terminal sends SIGINT, SIGQUIT and SIGWINCH to its whole
# foreground process group, so in a direct run the CLI's helpers (the shim) get them too: these
# go to the worker's process group. The others are meant for the CLI alone (it forwards them to
# a container itself): they go to the worker only, through its pidfd.
GROUP_SIGNALS = (_signal.SIGINT, _signal.SIGQUIT, _signal.SIGWINCH)
ALONE_SIGNALS = (_signal.SIGTERM, _signal.SIGHUP, _signal.SIGUSR1, _signal.SIGUSR2)

ENV_SWITCH = "PYCONT_CLI_SERVER"  # "0": always the direct path
ENV_DIR = "PYCONT_CLI_SERVER_DIR"  # where the socket lives (tests use their own)
ENV_IDLE = "PYCONT_CLI_SERVER_IDLE"  # seconds without a request before the server exits
SERVER_ENV = (b"PATH", b"LANG", ENV_DIR.encode(), ENV_IDLE.encode())  # what the server keeps
MAGIC = 0x70630001  # "pc", protocol 1
# header: magic, umask, number of fds, length of the body; the body is NUL-separated fields
HEADER = _struct.Struct("!IIII")
REPLY = _struct.Struct("!i")
GO = b"g"
HANDSHAKE_TIMEOUT = 5.0


def server_dir() -> str:
    """The folder of this user's servers: ``$PYCONT_CLI_SERVER_DIR``, else ``/run/pycont/cli``
    for root, else ``$XDG_RUNTIME_DIR/pycont``, else ``/tmp/pycont-<uid>``."""
    given = os.environ.get(ENV_DIR)
    if given:
        return given
    uid = os.geteuid()
    if uid == 0:
        return "/run/pycont/cli"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    return os.path.join(xdg, "pycont") if xdg else f"/tmp/pycont-{uid}"


def dir_is_safe(path: str) -> bool:
    """A real folder (not a link), owned by us, mode 0700: nobody else can place a socket in it
    or connect to ours (lstat(2), unix(7): connecting needs write permission on the socket)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return (st.st_mode & 0o170777) == 0o040700 and st.st_uid == os.geteuid()


def _fnv1a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def package_dir() -> str:
    return os.path.dirname(os.path.abspath(__file__))


def newest_mtime(top: str) -> int:
    """The newest mtime_ns over the package's folders and *.py files: an edit, an added or a
    removed file changes it (a rename changes the folder's mtime)."""
    newest, stack = 0, [top]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                if e.name.endswith(".py"):
                    newest = max(newest, e.stat(follow_symlinks=False).st_mtime_ns)
                elif e.name != "__pycache__" and e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                    newest = max(newest, e.stat(follow_symlinks=False).st_mtime_ns)
    return newest


def server_path() -> list[str]:
    """The server's sys.path: this package's parent first, then ours but our first entry (the
    script's folder or the cwd of ``python -m``), so it imports what a direct run imports."""
    return [os.path.dirname(package_dir()), *sys.path[1:]]


# What a worker takes from the server rather than from its client (proc(5)): credentials,
# capabilities, no_new_privs, seccomp, namespaces, cgroup, limits, LSM label, nice value.
_STATUS_FIELDS = (
    b"Uid:",
    b"Gid:",
    b"Groups:",
    b"CapInh:",
    b"CapPrm:",
    b"CapEff:",
    b"CapBnd:",
    b"CapAmb:",
    b"NoNewPrivs:",
    b"Seccomp:",
)
_NAMESPACES = ("cgroup", "ipc", "mnt", "net", "pid", "user", "uts")


def _read(path: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return b"-"
    try:
        return os.read(fd, 65536)
    except OSError:
        return b"-"
    finally:
        os.close(fd)


def context(pid: str = "self") -> str:
    """Process ``pid``'s security and resource context, as one string: a server serves only
    clients whose context is its own (a worker runs with the server's, not the client's)."""
    status = _read(f"/proc/{pid}/status").splitlines()
    parts = [line for line in status if line.startswith(_STATUS_FIELDS)]
    for ns in _NAMESPACES:
        try:
            parts.append(os.readlink(f"/proc/{pid}/ns/{ns}").encode())
        except OSError:
            parts.append(b"-")
    stat = _read(f"/proc/{pid}/stat")
    nice = stat[stat.rfind(b")") + 2 :].split(b" ")[16:17]  # proc(5): field 19, nice
    for name in ("cgroup", "limits", "attr/current"):
        parts.append(_read(f"/proc/{pid}/{name}"))
    return b"\0".join([*parts, *nice]).decode("utf-8", "surrogateescape")


def server_key() -> str:
    """A short hash of the interpreter, the package folder, its newest mtime, the import path
    and the caller's context: another venv, an edited tree, another PYTHONPATH or another
    set of credentials never reaches a stale or foreign server."""
    pkg = package_dir()
    text = "\0".join(
        [
            os.path.realpath(sys.executable),
            pkg,
            str(newest_mtime(pkg)),
            *server_path(),
            context(),
        ]
    )
    return f"{_fnv1a(text.encode('utf-8', 'surrogateescape')):016x}"[:12]


def socket_name(key: str) -> str:
    return f"cli-{key}.sock"


# -- when not to use the server ---------------------------------------------------------------
def wants_terminal(args: list[str]) -> bool:
    """An argument that looks like -i/-t/--interactive/--tty, or a cluster of short flags with an
    i or a t (``-it``, ``-ti``, ``-dit``). False positives only cost speed."""
    for a in args:
        if a == "--":
            break
        if a in ("--interactive", "--tty") or a.startswith(("--interactive=", "--tty=")):
            return True
        if (
            len(a) > 1
            and a[0] == "-"
            and a[1] != "-"
            and a[1:].isalpha()
            and ("i" in a or "t" in a)
        ):
            return True
    return False


# Verbs that may start a process in the caller's session: in a direct run it shares the caller's
# controlling terminal (/dev/tty, pycont has no -t) and its job control (^Z); a worker of the
# server, in the server's session, has neither.
ATTACHING = frozenset(
    {"run", "exec", "start", "restart", "compose", "build", "container", "vm", "lab"}
)


def has_terminal() -> bool:
    """This process has a controlling terminal (tty(4): /dev/tty opens only then)."""
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def use_direct(
    args: list[str],
    environ: dict[str, str] | os._Environ[str],
    stdin_tty: bool,
    terminal: bool = False,
) -> bool:
    """The cases where the command runs in this process, as before the server existed.
    ``terminal``: whether we have a controlling terminal (asked only for ATTACHING verbs)."""
    if environ.get(ENV_SWITCH) == "0":
        return True
    if any(k.startswith("PYCONT_FAILPOINTS") for k in environ):
        return True  # read at import (pycont.failpoints): the server imported without them
    if stdin_tty and wants_terminal(args):
        return True
    return terminal and bool(args) and args[0] in ATTACHING


# -- the handshake ------------------------------------------------------------------------------
def _signal_state() -> tuple[list[int], list[int]]:
    """The signals this process was started with ignored, and its blocked mask: a direct run
    keeps both (Python leaves an inherited SIG_IGN alone), so the worker takes them on."""
    ignored = []
    for s in range(1, _signal.NSIG):
        if 32 <= s < _signal.SIGRTMIN:
            continue  # glibc's own (nptl): not ours to pass on, and Python misreads them
        try:
            if _signal.getsignal(s) == _signal.SIG_IGN:
                ignored.append(s)
        except (ValueError, OSError):
            continue
    blocked = [
        s for s in _signal.pthread_sigmask(_signal.SIG_BLOCK, []) if not 32 <= s < _signal.SIGRTMIN
    ]
    return ignored, sorted(blocked)


def request_body(argv: list[str], environ: dict[bytes, bytes] | os._Environ[bytes]) -> bytes:
    """argv, the environment, the ignored signals and the mask, NUL-separated, each list led
    by its count."""
    ignored, blocked = _signal_state()
    fields: list[bytes] = [str(len(argv)).encode()]
    fields += [os.fsencode(a) for a in argv]
    fields.append(str(len(environ)).encode())
    fields += [k + b"=" + v for k, v in environ.items()]
    fields.append(",".join(map(str, ignored)).encode())
    fields.append(",".join(map(str, blocked)).encode())
    return b"\0".join(fields)


def _recv_exact(sock: _socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("server closed the connection")
        data += chunk
    return data


def connect(path: str) -> _socket.socket | None:
    """A connection to the server at ``path``; None when there is none. A socket that refuses
    belongs to a server that died: it is removed so that the next server can take its name."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(HANDSHAKE_TIMEOUT)
        sock.connect(path)
    except OSError as err:
        sock.close()
        if err.errno == errno.ECONNREFUSED:
            try:  # noqa: SIM105 - no contextlib here: an import the client saves
                os.unlink(path)
            except OSError:
                pass
        return None
    return sock


def hand_over(sock: _socket.socket, argv: list[str]) -> int | None:
    """Send the request; return the worker's pid once it is told to go, None if anything
    failed before (the worker then exits without running anything: no command runs twice)."""
    cwd = -1
    try:
        cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fds = [0, 1, 2, cwd]
        mask = os.umask(0o022)
        os.umask(mask)
        body = request_body(argv, os.environb)
        head = HEADER.pack(MAGIC, mask, len(fds), len(body))
        rights = _struct.pack(f"{len(fds)}i", *fds)
        sock.sendmsg([head], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
        sock.sendall(body)
        (pid,) = REPLY.unpack(_recv_exact(sock, REPLY.size))
        if pid <= 0:
            return None
        return pid
    except OSError:
        return None
    finally:
        if cwd >= 0:
            os.close(cwd)


def follow(sock: _socket.socket, pid: int) -> int | None:
    """Tell the worker to go, forward signals to it and return its wait status; None when the
    worker could not be reached before it went (the direct path is still safe then)."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None

    def to_group(signum: int, _frame: object) -> None:
        try:
            _signal.pidfd_send_signal(pidfd, 0)  # still our worker (its pid not reused)
            os.killpg(pid, signum)  # the worker leads its own process group (cliserver)
        except OSError:
            pass

    def to_worker(signum: int, _frame: object) -> None:
        try:  # noqa: SIM105 - no contextlib here: an import the client saves
            _signal.pidfd_send_signal(pidfd, signum)
        except OSError:
            pass

    before = {s: _signal.getsignal(s) for s in (*GROUP_SIGNALS, *ALONE_SIGNALS)}
    for s, handler in before.items():
        if handler != _signal.SIG_IGN:  # ignored since our start (nohup): so in the worker too
            _signal.signal(s, to_group if s in GROUP_SIGNALS else to_worker)
    try:
        sock.sendall(GO)
    except OSError:
        for s, handler in before.items():
            _signal.signal(s, handler)
        return None
    sock.settimeout(None)
    try:
        (status,) = REPLY.unpack(_recv_exact(sock, REPLY.size))
    except (OSError, ConnectionError):
        # The server died while the worker ran: the worker still ends, but its status is lost
        # with its parent. Wait for it (a pidfd is readable once the process exited).
        import select

        select.select([pidfd], [], [])
        print("pycont: the command server died; the exit status is lost", file=sys.stderr)
        return 125 << 8
    return status


def end_like(status: int) -> int:
    """Exit as the worker did: the same code, or killed by the same signal (so a shell sees
    130 or "Killed" exactly as for a direct run)."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig not in (_signal.SIGKILL, _signal.SIGSTOP):  # those two cannot be caught
            _signal.signal(sig, _signal.SIG_DFL)
        _signal.pthread_sigmask(_signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
        return 128 + sig  # a signal whose default is to ignore (SIGWINCH) leaves us here
    return os.WEXITSTATUS(status)


def spawn_server(folder: str, key: str) -> None:
    """Start a server for the next commands: double fork and setsid, so it belongs to no
    terminal and no caller waits for it; stdio on /dev/null; a minimal environment."""
    try:
        if not os.path.isdir(folder):
            os.makedirs(os.path.dirname(folder), mode=0o755, exist_ok=True)
            os.mkdir(folder, 0o700)
        if not dir_is_safe(folder):
            return
        pid = os.fork()
    except OSError:
        return
    if pid:
        try:  # noqa: SIM105 - no contextlib here: an import the client saves
            os.waitpid(pid, 0)
        except OSError:
            pass
        return
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        # Nothing of this client's environment but the locale, PATH and the server's own
        # settings: a worker takes on each client's environment, and the server must not hold
        # (nor show, in /proc/PID/environ) the first client's PYCONT_ROOT, tokens or paths.
        env = {k: v for k, v in os.environb.items() if k in SERVER_ENV or k.startswith(b"LC_")}
        script = os.path.join(package_dir(), "cliserver.py")
        argv = [sys.executable, "-I", script, "serve", folder, key, os.pathsep.join(server_path())]
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.chdir("/")
        # A fresh signal state, as a login would give it: the server's workers take the
        # client's on. Not posix_spawn(3): glibc's leaves its own signals 32 and 33 ignored in
        # the child, and an ignored signal survives execve(2) (signal(7)).
        for sig in range(1, _signal.NSIG):
            if sig not in (_signal.SIGKILL, _signal.SIGSTOP) and not 32 <= sig < _signal.SIGRTMIN:
                try:  # noqa: SIM105 - no contextlib here: an import the client saves
                    _signal.signal(sig, _signal.SIG_DFL)
                except (OSError, ValueError):
                    pass
        _signal.pthread_sigmask(_signal.SIG_SETMASK, [])
        os.execve(sys.executable, argv, env)
    finally:
        os._exit(0)


def direct(argv: list[str]) -> int:
    from pycont.cli import main as cli_main

    return cli_main(argv[1:])


def main(argv: list[str] | None = None) -> int:
    """The ``pycont`` console script and ``python -m pycont``."""
    argv = list(sys.argv if argv is None else argv)
    try:
        stdin_tty = os.isatty(0)
    except OSError:
        stdin_tty = False
    terminal = len(argv) > 1 and argv[1] in ATTACHING and has_terminal()
    if use_direct(argv[1:], os.environ, stdin_tty, terminal):
        return direct(argv)
    folder = server_dir()
    if not dir_is_safe(folder):
        if not os.path.lexists(folder):
            spawn_server(folder, server_key())
        return direct(argv)
    key = server_key()
    sock = connect(os.path.join(folder, socket_name(key)))
    if sock is None:
        spawn_server(folder, key)
        return direct(argv)
    try:
        pid = hand_over(sock, argv)
        status = None if pid is None else follow(sock, pid)
    finally:
        sock.close()
    if status is None:
        return direct(argv)
    code = end_like(status)
    # The worker did the command; this process has nothing to finalise but its own stdio:
    # skip the interpreter's teardown (~2.5 ms of every command).
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - contextlib is not imported here: it costs ~2 ms
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
