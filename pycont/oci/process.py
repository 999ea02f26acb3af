"""The last steps of a container process, shared by the init and ``exec``: limits, identity,
privileges, then execve(2).

The order is the kernel's: rlimits and umask while still privileged; the seccomp filter while
CAP_SYS_ADMIN is still held, unless no_new_privs lets an unprivileged process load it
(seccomp(2)); capabilities before the uid change (capabilities(7): PR_CAPBSET_DROP needs
CAP_SETPCAP; setuid(2) needs CAP_SETUID), and the command last (pid1.exec_command).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from typing import Any, NoReturn

from pycont.errors import CommandNotExecutable, CommandNotFound, KernelError
from pycont.kernel import Kernel
from pycont.oci.bundle import Process
from pycont.rootfs import open_inside
from pycont.runtime.pid1 import exec_command
from pycont.security import capabilities

__all__ = [
    "set_limits",
    "become_ns_root",
    "check_command",
    "enter_cwd",
    "exec_process",
    "prepare_seccomp",
    "set_rlimits",
]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def become_ns_root() -> None:
    """Take uid and gid 0 of the user namespace just entered: until then our ids are the
    host's, unmapped there, seen as 65534 (user_namespaces(7))."""
    os.setgroups([])
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)


def set_limits(k: Kernel, proc: Process) -> None:
    """rlimits, umask and the OOM score (proc(5) oom_score_adj) of the process to be."""
    if proc.oom_score_adj is not None:
        k.write_file("/proc/self/oom_score_adj", str(proc.oom_score_adj))
    if proc.umask is not None:
        os.umask(proc.umask)
    set_rlimits(proc)


def set_rlimits(proc: Process) -> None:
    import resource

    for r in proc.rlimits:
        try:
            resource.setrlimit(r.resource, (r.soft, r.hard))
        except (OSError, ValueError) as err:
            # CPython turns EPERM into ValueError("not allowed to raise maximum limit").
            denied = "not allowed" in str(err) or getattr(err, "errno", 0) == errno.EPERM
            raise KernelError(
                f"setrlimit {r.name} soft={r.soft} hard={r.hard}",
                errno.EPERM if denied else errno.EINVAL,
                None,
                "raising a hard limit needs CAP_SYS_RESOURCE (setrlimit(2)); ask for less "
                "(podman: --ulimit nofile=1024:1024)"
                if denied
                else str(err),
            ) from err


def enter_cwd(proc: Process) -> None:
    """chdir(2) to the process's cwd, made if missing, resolved inside the (new) root without
    following a symlink out of it."""
    os.close(open_inside("/", proc.cwd, want_dir=True))
    # No symlink on the way (checked above): the path names that folder.
    os.chdir(proc.cwd)


def check_command(proc: Process) -> None:
    """Find the command now, as execvpe(3) will, so a missing one fails ``create`` with the
    message docker users know, not later with no one to read it."""
    name = proc.args[0]
    path = proc.environ().get("PATH", DEFAULT_PATH)
    candidates = [name] if "/" in name else [os.path.join(d or ".", name) for d in path.split(":")]
    for c in candidates:
        if os.path.isfile(c):
            if not os.access(c, os.X_OK):
                raise CommandNotExecutable(f'exec: "{name}": permission denied')
            return
    where = "no such file or directory" if "/" in name else "executable file not found in $PATH"
    raise CommandNotFound(f'exec: "{name}": {where}')


def exec_process(
    k: Kernel, proc: Process, seccomp: Mapping[str, Any] | None, err_w: int
) -> NoReturn:
    """Privileges down to what ``proc`` asks, then execve its command (never returns)."""
    keep = proc.keep_caps()
    if proc.no_new_privileges:
        k.set_no_new_privs()
    if seccomp is not None and not proc.no_new_privileges:
        _seccomp(k, seccomp, keep)
    switch = proc.uid != 0 or proc.gid != 0 or bool(proc.additional_gids)
    # Without PR_SET_KEEPCAPS the uid change below clears every capability of a non-root
    # user anyway (as its execve would); CAP_SETUID/SETGID are kept until then to make it.
    capabilities.apply(k, keep | ({"CAP_SETUID", "CAP_SETGID"} if switch else frozenset()))
    if switch:
        try:
            os.setgroups(list(proc.additional_gids))
            os.setgid(proc.gid)
            os.setuid(proc.uid)
        except OSError as err:
            raise KernelError(f"set user {proc.uid}:{proc.gid}", err.errno or errno.EPERM) from err
    if seccomp is not None and proc.no_new_privileges:
        _seccomp(k, seccomp, keep)
    env = proc.environ()
    exec_command(list(proc.args), env, err_w)
    os._exit(127)  # exec_command never returns; for the type checker


def prepare_seccomp(proc: Process, profile: Mapping[str, Any] | None) -> None:
    """Compile the filter on the host side, before pivot_root or setns: libseccomp and the
    cache are the host's files. exec_process then only loads it."""
    if profile is not None:
        from pycont.security import seccomp

        seccomp.prepare(dict(profile), proc.keep_caps())


def _seccomp(k: Kernel, profile: Mapping[str, Any], keep: frozenset[str]) -> None:
    from pycont.security import seccomp

    seccomp.install(dict(profile), keep, k)
