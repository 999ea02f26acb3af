"""The helper process that creates a container and watches it until it exits.

Started as a fresh, single-threaded interpreter (``python -I shim.py run DIR FD``), never
forked from the caller: the caller may be a multi-threaded Jupyter kernel. It clones the
container's first process into new namespaces, writes its uid/gid maps, reports "started" (or
the error that stopped it) over a pipe, forwards signals, and records the exit status, so a
detached container is still accounted for after the CLI or notebook that started it is gone.

Process tree::

    caller ──spawn──> shim (host namespaces) ──clone(CLONE_NEW*)──> PID 1 of the container
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import signal
import socket
import sys
import time
from typing import TYPE_CHECKING, NoReturn

if __name__ == "__main__":  # run as a script: make the package importable, nothing else
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from pycont.errors import KernelError
from pycont.kernel import LinuxKernel
from pycont.kernel._base import CLONE_NEWCGROUP, Kernel
from pycont.namespaces import Namespace, NamespaceSet
from pycont.rootfs import RootSpec, setup_root
from pycont.runtime import state as st

if TYPE_CHECKING:
    from pycont.cgroups import Cgroup

MAX_FD = os.sysconf("SC_OPEN_MAX")
FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
)


class Reporter:
    """JSON lines to the caller over the status pipe; silent once the caller has gone."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, **msg: object) -> None:
        if self.fd < 0:
            return
        try:
            os.write(self.fd, (json.dumps(msg) + "\n").encode())
        except OSError:
            self.fd = -1

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# Paths the narration writes as $CONTAINER and $IMAGE, so each line reads at a glance.
_SHORT: list[tuple[str, str]] = []


def _shortener(cfg: st.ContainerConfig, cdir: str) -> None:
    _SHORT[:] = [(cdir, "$CONTAINER"), *((layer, "$IMAGE") for layer in cfg.layers)]


def shorten(line: str) -> str:
    for old, new in _SHORT:
        line = line.replace(old, new)
    return line


def _kernel(narrate: bool, rep: Reporter) -> Kernel:
    real = LinuxKernel()
    if not narrate:
        return real
    from pycont.kernel.narrating import NarratingKernel

    return NarratingKernel(real, lambda line: rep.send(narrate=shorten(line)))


def _restore_signals() -> None:
    # Python ignores SIGPIPE and SIGXFSZ; an ignored signal stays ignored across execve(2),
    # so undo it as subprocess does (restore_signals=True).
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)


def _exec(args: list[str], env: dict[str, str], err_w: int, rep: Reporter | None = None) -> None:
    """execvpe in the container; on failure report docker's message and exit 126/127."""
    _restore_signals()
    if rep is not None:
        rep.send(narrate=f"execve({json.dumps(args[0])}, {json.dumps(args)}) (searching PATH)")
    # The command gets stdio and nothing else (err_w closes itself at exec: O_CLOEXEC).
    os.closerange(3, err_w)
    os.closerange(err_w + 1, MAX_FD)
    try:
        os.execvpe(args[0], args, env)
    except FileNotFoundError:
        where = (
            "no such file or directory" if "/" in args[0] else "executable file not found in $PATH"
        )
        kind, code = "notfound", 127
        msg = f'exec: "{args[0]}": {where}'
    except PermissionError:
        kind, code, msg = "noexec", 126, f'exec: "{args[0]}": permission denied'
    except OSError as err:
        kind, code, msg = "noexec", 126, f'exec: "{args[0]}": {err.strerror}'
    os.write(err_w, json.dumps({"kind": kind, "code": code, "error": msg}).encode())
    os._exit(code)


def _write_maps(pid: int, cfg: st.ContainerConfig, rep: Reporter) -> None:
    # user_namespaces(7): an unprivileged writer must deny setgroups before writing gid_map.
    writes = [("setgroups", "deny")] if cfg.rootless else []
    for name, rows in (("uid_map", cfg.uid_map), ("gid_map", cfg.gid_map)):
        writes.append((name, "".join(f"{a} {b} {c}\n" for a, b, c in rows)))
    for name, text in writes:
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write(text)
        if cfg.narrate:
            rep.send(narrate=f'write("/proc/{pid}/{name}", "{text.strip()}")')


def _container_init(
    k: Kernel,
    cfg: st.ContainerConfig,
    cdir: str,
    nsset: NamespaceSet,
    go_r: int,
    err_w: int,
    rep: Reporter,
) -> None:
    """PID 1 of the container, between clone and exec. Never returns."""
    try:
        if os.read(go_r, 1) != b"1":  # EOF: the shim died before it let us go
            os._exit(125)
        os.close(go_r)
        k.set_pdeathsig(signal.SIGKILL)  # the shim died: take the container down with it
        private = set(nsset.private())
        if Namespace.CGROUP in private:
            k.unshare(CLONE_NEWCGROUP)
        if Namespace.UTS in private:
            k.sethostname(cfg.hostname)
        if Namespace.NET in private:
            k.set_link_up("lo")  # as docker's --network none: loopback only, and up
        spec = RootSpec(
            lowers=tuple(cfg.layers),
            container_dir=cdir,
            userns=Namespace.USER in private,
            private_net=Namespace.NET in private,
            private_pid=Namespace.PID in private,
            private_ipc=Namespace.IPC in private,
            mounts=tuple(_mount_specs(cfg)),
            driver=cfg.storage_driver,
        )
        setup_root(k, spec)
        os.makedirs(cfg.workdir, exist_ok=True)
        os.chdir(cfg.workdir)
        env = dict(e.split("=", 1) for e in cfg.env)
    except BaseException as err:  # noqa: BLE001 - anything before exec goes to the caller
        msg = str(err) if isinstance(err, OSError | KernelError) else repr(err)
        os.write(err_w, json.dumps({"kind": "setup", "code": 125, "error": msg}).encode())
        os._exit(125)
    _exec(cfg.args, env, err_w, rep if cfg.narrate else None)


def _mount_specs(cfg: st.ContainerConfig) -> list[tuple[str, str, bool]]:
    return [(m["host"], m["target"], bool(m["readonly"])) for m in cfg.mounts]


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _wait(pid: int) -> int:
    """Exit status as a shell reports it: the code, or 128 + the signal that killed it."""
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _finish(cdir: str, cfg: st.ContainerConfig, code: int, oom: bool) -> None:
    try:
        with st.modify_state(cdir) as rec:
            rec.status = st.Status.EXITED.value
            rec.exit_code = code
            rec.oom_killed = oom
            rec.finished_at = time.time()
    except FileNotFoundError:
        return  # removed while it ran (rm -f): nothing to record
    if cfg.auto_remove:
        st.remove_tree(cdir)


def _open_cgroup(cfg: st.ContainerConfig) -> Cgroup | None:
    """Create the container's cgroup with its limits, before its first process exists."""
    if not cfg.cgroup:
        return None
    from pycont import cgroups

    cg = cgroups.for_container(cfg.id)
    cg.create()
    try:
        cg.apply(cgroups.Limits.from_options(**cfg.limits))
    except BaseException:
        cg.destroy()
        raise
    return cg


def _close_cgroup(cg: Cgroup | None) -> bool:
    """Read whether the OOM killer struck, then remove the cgroup (and anything left in it)."""
    if cg is None:
        return False
    oom = False
    with contextlib.suppress(KernelError, OSError):
        oom = cg.oom_killed()
    with contextlib.suppress(KernelError, OSError):
        if cg.pids():  # only with --pid host can processes outlive PID 1
            cg.kill_all()
    with contextlib.suppress(KernelError, OSError):
        cg.destroy()
    return oom


def run(cdir: str, status_fd: int) -> int:
    os.set_inheritable(status_fd, False)
    rep = Reporter(status_fd)
    cfg = st.load_config(cdir)
    _shortener(cfg, cdir)
    k = _kernel(cfg.narrate, rep)
    nsset = NamespaceSet.from_modes(cfg.namespaces)
    pid = 0
    cg: Cgroup | None = None

    def abort(msg: str, code: int = 125, kind: str = "setup") -> int:
        """Undo everything made so far, record or remove the container, tell the caller."""
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait(pid)
        _close_cgroup(cg)
        rep.send(error=msg, code=code, kind=kind)
        if cfg.auto_remove:
            st.remove_tree(cdir)
        else:
            _failed(cdir, msg, code)
        return code

    try:
        cg = _open_cgroup(cfg)
    except (KernelError, OSError, ValueError) as err:
        return abort(f"cgroup: {err}")
    go_r, go_w = os.pipe()
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = k.clone(nsset.clone_flags())
    except KernelError as err:
        return abort(str(err), kind="clone")
    if pid == 0:
        os.close(go_w)
        os.close(err_r)
        _container_init(k, cfg, cdir, nsset, go_r, err_w, rep)
    os.close(go_r)
    os.close(err_w)
    try:
        # Into the cgroup before it runs anything: memory it touches is charged there, and
        # its cgroup namespace (unshared next) is rooted there (cgroup_namespaces(7)).
        if cg is not None:
            cg.add_pid(pid)
        if Namespace.USER in nsset.private():
            _write_maps(pid, cfg, rep)
        os.write(go_w, b"1")
    except (OSError, KernelError) as err:
        os.close(go_w)
        os.close(err_r)
        return abort(f"set up process {pid}: {err}")
    os.close(go_w)
    report = _read_all(err_r)  # EOF at a successful exec: err_w is close-on-exec
    if report:
        _wait(pid)
        pid = 0
        info = json.loads(report)
        return abort(info["error"], int(info["code"]), info.get("kind", "setup"))
    with st.modify_state(cdir) as rec:
        rec.status = st.Status.RUNNING.value
        rec.pid = pid
        rec.pid_start = st.process_start_time(pid)
        rec.monitor_pid = os.getpid()
        rec.started_at = time.time()
    for sig in FORWARDED:
        signal.signal(sig, lambda signum, _frame: _forward(pid, signum))
    rep.send(started=pid)
    code = _wait(pid)
    oom = _close_cgroup(cg)
    _finish(cdir, cfg, code, oom)
    rep.send(exited=code)
    return code


def _forward(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _failed(cdir: str, msg: str, code: int = 125) -> None:
    with st.modify_state(cdir) as rec:
        rec.status = st.Status.EXITED.value
        rec.exit_code = code
        rec.error = msg
        rec.finished_at = time.time()


def exec_in(cdir: str, status_fd: int, spec_json: str) -> int:
    """Run a command in a running container: join each of its namespaces, then fork."""
    os.set_inheritable(status_fd, False)
    rep = Reporter(status_fd)
    spec = json.loads(spec_json)
    cfg = st.load_config(cdir)
    rec = st.load_state(cdir)
    k = _kernel(cfg.narrate, rep)
    pid = rec.pid
    if rec.status != st.Status.RUNNING.value or not st.alive(pid, rec.pid_start):
        rep.send(error=f"container {cfg.name} is not running", code=125, kind="state")
        return 125
    if cfg.cgroup:
        from pycont import cgroups

        try:  # the command joins the container's cgroup: its limits and its accounting
            cgroups.for_container(cfg.id).add_pid(os.getpid())
        except (KernelError, OSError) as err:
            rep.send(error=f"join the container's cgroup: {err}", code=125, kind="cgroup")
            return 125
    # Open every namespace before joining any: once in its mount namespace, the host's /proc
    # paths are gone. Join the user namespace first: it owns the others (setns(2)).
    fds: list[tuple[Namespace, int, str]] = []
    for ns in Namespace:
        path = f"/proc/{pid}/ns/{ns.procname}"
        if os.stat(path).st_ino != os.stat(f"/proc/self/ns/{ns.procname}").st_ino:
            fds.append((ns, os.open(path, os.O_RDONLY | os.O_CLOEXEC), path))
    try:
        for ns, fd, path in fds:
            k.setns(fd, ns.flag, path)
            os.close(fd)
    except KernelError as err:
        rep.send(error=str(err), code=125, kind="setns")
        return 125
    env = dict(e.split("=", 1) for e in cfg.env)
    env.update(dict(e.split("=", 1) for e in spec.get("env", [])))
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    # setns(CLONE_NEWPID) moves only the children: fork so the command is inside.
    child = os.fork()
    if child == 0:
        os.close(err_r)
        try:
            os.chdir(spec.get("workdir") or cfg.workdir)
        except OSError as err:
            msg = f"chdir {spec.get('workdir')}: {err.strerror}"
            os.write(err_w, json.dumps({"kind": "setup", "code": 125, "error": msg}).encode())
            os._exit(125)
        _exec(spec["args"], env, err_w)
    os.close(err_w)
    report = _read_all(err_r)
    if report:
        _wait(child)
        info = json.loads(report)
        rep.send(**info)
        return int(info["code"])
    for sig in FORWARDED:
        signal.signal(sig, lambda signum, _frame: _forward(child, signum))
    rep.send(started=child)
    code = _wait(child)
    rep.send(exited=code)
    return code


def _set_comm(name: str) -> None:
    """Name this process in ps -o comm / top (proc(5): /proc/self/comm, 15 bytes)."""
    with contextlib.suppress(OSError), open("/proc/self/comm", "w") as f:
        f.write(name)


def dispatch(mode: str, args: list[str], status_fd: int) -> int:
    _set_comm(f"pycont-{mode}")
    if mode == "run":
        return run(args[0], status_fd)
    if mode == "exec":
        return exec_in(args[0], status_fd, args[1])
    raise ValueError(f"pycont shim: unknown mode {mode!r}")


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
        os.closerange(4, MAX_FD)
        code = dispatch(mode, args, 3)
    except BaseException as err:  # noqa: BLE001 - a forked child must never return
        Reporter(3).send(error=f"pycont shim: {err!r}", code=125, kind="internal")
    finally:
        os._exit(code)


def fork_server(sock_fd: int) -> int:
    """Fork a shim per request until the caller closes the socket (see launcher.ForkServer)."""
    sock = socket.socket(fileno=sock_fd)
    _set_comm("pycont-forksrv")
    # Import now what every shim needs later: each forked shim then starts with it loaded,
    # instead of importing the cgroup drivers again for every container.
    import pycont.cgroups  # noqa: F401

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


def main(argv: list[str]) -> int:
    if argv[0] == "forkserver":
        return fork_server(int(argv[2]))
    return dispatch(argv[0], [argv[1], *argv[3:]], int(argv[2]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
