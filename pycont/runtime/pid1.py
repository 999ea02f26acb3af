"""PID 1 of the container, between clone(2) and execve(2): the last steps inside.

The shim clones this process into new namespaces and holds it until its cgroup and uid/gid maps
are set; then it names its host, brings up loopback, builds its root (rootfs.setup_root) and
execs the command. A failure before exec travels back to the shim as a protocol.Failed over a
close-on-exec pipe: the pipe's EOF alone means the exec succeeded.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable

from pycont.errors import KernelError
from pycont.kernel._base import CLONE_NEWCGROUP, Kernel
from pycont.namespaces import Namespace, NamespaceSet
from pycont.rootfs import RootSpec, setup_root
from pycont.runtime import protocol
from pycont.runtime.state import ContainerConfig

MAX_FD = os.sysconf("SC_OPEN_MAX")


def container_init(
    k: Kernel,
    cfg: ContainerConfig,
    cdir: str,
    nsset: NamespaceSet,
    go_r: int,
    err_w: int,
    say: Callable[[str], None] | None,
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
            mounts=tuple(cfg.mounts),
            driver=cfg.storage_driver,
        )
        setup_root(k, spec)
        os.makedirs(cfg.workdir, exist_ok=True)
        os.chdir(cfg.workdir)
        env = dict(e.split("=", 1) for e in cfg.env)
    except BaseException as err:  # noqa: BLE001 - anything before exec goes to the caller
        msg = str(err) if isinstance(err, OSError | KernelError) else repr(err)
        os.write(err_w, protocol.encode(protocol.Failed("setup", 125, msg)))
        os._exit(125)
    exec_command(cfg.args, env, err_w, say)


def _restore_signals() -> None:
    # Python ignores SIGPIPE and SIGXFSZ; an ignored signal stays ignored across execve(2),
    # so undo it as subprocess does (restore_signals=True).
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)


def exec_command(
    args: list[str], env: dict[str, str], err_w: int, say: Callable[[str], None] | None = None
) -> None:
    """execvpe in the container; on failure report docker's message and exit 126/127."""
    _restore_signals()
    if say is not None:
        say(f"execve({json.dumps(args[0])}, {json.dumps(args)}) (searching PATH)")
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
    os.write(err_w, protocol.encode(protocol.Failed(kind, code, msg)))
    os._exit(code)
