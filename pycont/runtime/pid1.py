"""PID 1 of the container, between clone(2) and execve(2): the last steps inside.

The shim clones this process into new namespaces and holds it until its cgroup and uid/gid maps
are set; then it names its host, brings up loopback, builds its root (rootfs.setup_root) and
execs the command. A failure before exec travels back to the shim as a protocol.Failed over a
close-on-exec pipe. Its EOF means the exec happened *or* that this process died (a signal,
the OOM killer): the shim tells them apart by this process's name, :data:`PRE_EXEC_NAME` until
execve(2) gives it the command's (see handshake.died_before_exec).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import signal
from collections.abc import Callable

from pycont import failpoints
from pycont.errors import PycontError, StartError
from pycont.kernel._base import (
    CLONE_NEWCGROUP,
    MS_BIND,
    MS_RDONLY,
    MS_REMOUNT,
    Kernel,
)
from pycont.namespaces import Namespace, NamespaceSet
from pycont.net import slirp
from pycont.net.config import FILES as NET_FILES
from pycont.net.config import INIT_LAYER
from pycont.rootfs import RootSpec, setup_root
from pycont.runtime import protocol, users
from pycont.runtime.state import ContainerConfig
from pycont.security import capabilities, paths, seccomp
from pycont.security.options import DEFAULT, UNCONFINED, SecurityOptions

MAX_FD = os.sysconf("SC_OPEN_MAX")
# This process's name (proc(5): /proc/<pid>/comm) until execve(2) renames it after the command:
# a process that dies still called so died before exec (handshake.died_before_exec).
PRE_EXEC_NAME = "pycont-init"


def name_self(name: str) -> None:
    """Name this process in ps -o comm / top (proc(5): /proc/self/comm, 15 bytes)."""
    with contextlib.suppress(OSError), open("/proc/self/comm", "w") as f:
        f.write(name)


def hold_to_parent(k: Kernel, parent_fd: int) -> None:
    """SIGKILL when the shim dies (PR_SET_PDEATHSIG), and exit now if it already has: prctl(2)
    sends nothing for a parent that died before the call. ``parent_fd``: a pidfd of the shim
    (pidfd_open(2)), readable once it has exited; getppid(2) cannot tell, it says 0 in a new
    PID namespace whether the parent lives or not."""
    k.set_pdeathsig(signal.SIGKILL)
    gone = select.select([parent_fd], [], [], 0)[0]
    os.close(parent_fd)
    if gone:
        os._exit(125)  # nobody would record or stop this container


def close_host_fds(*keep: int, low: int = 3) -> None:
    """Close every descriptor from ``low`` up but ``keep`` and a failpoint log (tests only):
    nothing of the host crosses into the container."""
    for fd in sorted({*keep, *failpoints.kept_fds()}):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, MAX_FD)


def step(name: str) -> None:
    """:func:`pycont.failpoints.hit` in this process. The init of a PID namespace ignores the
    SIGKILL it sends itself (pid_namespaces(7): only signals it has a handler for reach it
    from inside), so ``kill`` there would turn into ``error``: it gets killed by the kernel
    instead, which does reach it, by a hard RLIMIT_CPU (setrlimit(2): SIGKILL at the hard
    limit) and a busy loop."""
    try:
        failpoints.hit(name)
    except failpoints.FailpointError:
        point = failpoints.parse(os.environ.get(failpoints.ENV, "")).get(name)
        if point is None or point[0] != "kill":
            raise
        resource.setrlimit(resource.RLIMIT_CPU, (1, 1))
        while True:
            pass


def container_init(
    k: Kernel,
    cfg: ContainerConfig,
    cdir: str,
    nsset: NamespaceSet,
    go_r: int,
    err_w: int,
    say: Callable[[str], None] | None,
    shim_fd: int,
    outlive_shim: bool = False,
) -> None:
    """PID 1 of the container, between clone and exec. Never returns. ``outlive_shim``: a
    detached container watched by pycont-mon (:mod:`.mon`) survives its monitor."""
    name_self(PRE_EXEC_NAME)
    try:
        # Built while the shim sets our cgroup and maps, and the host's files are in reach.
        confinement = Confinement.prepare(cfg.security, cfg.rootless)
        if os.read(go_r, 1) != b"1":  # EOF: the shim died before it let us go
            os._exit(125)
        os.close(go_r)
        # A host interpreter in the container's namespaces until execve(2): not dumpable, so
        # nothing there may open its /proc/<pid>/exe or ptrace it (prctl(2); exec resets it).
        # Only now: /proc/<pid>/uid_map of a non-dumpable process belongs to root, and a
        # rootless shim has just written ours.
        k.set_dumpable(False)
        hold_to_parent(k, shim_fd)  # the shim died: take the container down with it
        private = set(nsset.private())
        if Namespace.CGROUP in private:
            k.unshare(CLONE_NEWCGROUP)
        if Namespace.UTS in private:
            k.sethostname(cfg.hostname)
        if Namespace.NET in private:
            k.set_link_up("lo")  # as docker's --network none: loopback only, and up
            if cfg.network.mode == "slirp4netns":
                # slirp4netns made tap0 before the shim let us go; no default route: the
                # user-mode stack reaches the published ports' clients, nothing further.
                k.set_address(slirp.TAP, slirp.ADDRESS, slirp.PREFIXLEN)
                k.set_link_up(slirp.TAP)
        etc = etc_files(cfg, cdir)
        spec = RootSpec(
            # docker's init layer under the read/write one: the mount points of the network
            # files exist there, so binding them writes nothing that diff or commit would see.
            lowers=((os.path.join(cdir, INIT_LAYER),) if etc else ()) + tuple(cfg.layers),
            container_dir=cdir,
            userns=Namespace.USER in private,
            private_net=Namespace.NET in private,
            private_pid=Namespace.PID in private,
            private_ipc=Namespace.IPC in private,
            mounts=tuple(cfg.mounts),
            driver=cfg.storage_driver,
            privileged=cfg.security.privileged,
            cgroup_view=Namespace.CGROUP in private and bool(cfg.cgroup),
            etc_files=etc,
        )
        setup_root(k, spec)
        # The user's ids come from the container's /etc/passwd: read now, inside its root.
        ident = identity(cfg, cfg.user, Namespace.USER in private)
        os.makedirs(cfg.workdir, exist_ok=True)
        lock_down_root(k, cfg.security)
        enter_workdir(cfg.workdir)
        env = dict(e.split("=", 1) for e in cfg.env)
        if ident is not None:
            env.setdefault("HOME", ident.home)  # as docker: from passwd unless -e HOME
        if outlive_shim:
            # Set up: from here a monitor killed leaves the container running, to be adopted
            # (mon.adopt). Before the seccomp filter, which a custom profile may tighten.
            k.set_pdeathsig(0)
        confinement.apply(k, say, ident)
    except BaseException as err:  # noqa: BLE001 - anything before exec goes to the caller
        msg = str(err) if isinstance(err, OSError | PycontError) else repr(err)
        os.write(err_w, protocol.encode(protocol.Failed("setup", 125, msg)))
        os._exit(125)
    exec_command(cfg.args, env, err_w, say, "start.exec-next")


def etc_files(cfg: ContainerConfig, cdir: str) -> tuple[tuple[str, str], ...]:
    """The network files pycont wrote for the container (pycont.runtime.netsetup)."""
    if not cfg.network.files:
        return ()
    found = []
    for name in NET_FILES:
        path = os.path.join(cdir, name)
        if os.path.isfile(path) and os.path.isfile(os.path.join(cdir, INIT_LAYER, "etc", name)):
            found.append((path, f"/etc/{name}"))
    return tuple(found)


def identity(cfg: ContainerConfig, user: str, userns: bool) -> users.Identity | None:
    """``user`` resolved in the root this process sees (the container's), and checked
    against the container's user namespace; None when no user was asked for (root)."""
    if not user:
        return None
    ident = users.lookup(user)
    if userns:
        users.check_mapped(user, ident, cfg.uid_map, cfg.gid_map, cfg.rootless)
    return ident


def lock_down_root(k: Kernel, sec: SecurityOptions) -> None:
    """After pivot_root: Docker's masked and read-only paths, and ``--read-only``'s root."""
    if sec.masked:
        paths.mask(k, paths.MASKED)
        paths.make_readonly(k, paths.READONLY)
    if sec.read_only:
        # mount(2): a bind remount changes this mount's flags only; volumes stay writable.
        k.mount("", "/", "", MS_REMOUNT | MS_BIND | MS_RDONLY)


def enter_workdir(workdir: str) -> None:
    """chdir into the container's working directory and check it is inside its root: a cwd
    outside (reached through a leaked host fd, /proc/self/fd/N) would hand the command the
    host's tree (CVE-2024-21626). getcwd(3) fails with ENOENT for an unreachable cwd."""
    os.chdir(workdir)
    try:
        cwd = os.getcwd()
    except FileNotFoundError:
        cwd = ""
    if not cwd.startswith("/"):
        raise StartError(f"working directory {workdir}: outside the container's root")


class Confinement:
    """What the process keeps when it execs: made ready while the host's files are still in
    reach (:meth:`prepare`, before pivot_root or setns: it reads the seccomp profile and loads
    libseccomp), applied as the very last step before exec (:meth:`apply`)."""

    def __init__(
        self, sec: SecurityOptions, program: bytes | None, flags: int = 0, rootless: bool = False
    ) -> None:
        self.sec = sec
        self.program = program  # the compiled seccomp filter; None: unconfined
        self.flags = flags
        self.rootless = rootless  # setgroups(2) is denied in a rootless user namespace

    @classmethod
    def prepare(cls, sec: SecurityOptions, rootless: bool = False) -> Confinement:
        if sec.seccomp == UNCONFINED:
            return cls(sec, None, rootless=rootless)
        profile = seccomp.default_profile() if sec.seccomp == DEFAULT else sec.seccomp
        assert isinstance(profile, dict)
        return cls(sec, seccomp.prepare(profile, sec.caps), seccomp.flags_of(profile), rootless)

    def apply(
        self,
        k: Kernel,
        say: Callable[[str], None] | None = None,
        user: users.Identity | None = None,
    ) -> None:
        """In this order: no_new_privs (prctl(2)); the seccomp filter, loaded while this
        process still holds CAP_SYS_ADMIN (seccomp(2) needs it, or no_new_privs); then the
        capabilities cut to the kept set (capabilities(7)); then ``user``'s ids, if given
        (:func:`become`). The filter allows the capset(2), setuid(2) and execve(2) that
        follow."""
        sec = self.sec
        if sec.no_new_privileges:
            k.set_no_new_privs()
        if self.program is not None:
            # Compiled in prepare(): nothing left to resolve or read, only the syscall.
            k.load_seccomp(self.program, self.flags)
        # privileged keeps every capability, newer ones included
        keep = None if sec.privileged else sec.caps
        if user is not None:
            become(k, user, keep, set_groups=not self.rootless)
        elif keep is not None:
            capabilities.apply(k, keep)


# What the identity change needs (setgroups(2), setgid(2), setuid(2)), and PR_CAPBSET_DROP
# to take them out of the bounding set again: CAP_SETPCAP last, it drops itself.
_SWITCH_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")


def become(
    k: Kernel, user: users.Identity, keep: frozenset[str] | None, set_groups: bool = True
) -> None:
    """Cut the capabilities to ``keep`` (None: all, --privileged) and take ``user``'s ids.

    A non-root user ends with empty permitted and effective sets, as in docker: when every
    uid leaves 0, setuid(2) clears them (capabilities(7), no PR_SET_KEEPCAPS), and its
    execve(2) gives nothing back. The bounding set ends exactly ``keep``, so a set-user-ID
    root program in the container gains no more than root there has. ``set_groups`` False:
    setgroups(2) is denied in this user namespace (rootless), the groups stay as they are."""
    if keep is not None:
        # Held for the switch even if --cap-drop named them, out of the bounding set at once.
        capabilities.apply(k, keep | frozenset(_SWITCH_CAPS))
        for name in _SWITCH_CAPS:
            if name not in keep:
                k.drop_bounding(capabilities.ALL.index(name))
    step = "setgroups"
    try:
        if set_groups:
            os.setgroups(list(user.groups))
        step = "setgid"
        os.setgid(user.gid)
        step = "setuid"
        os.setuid(user.uid)
    except OSError as err:
        ids = f"{user.uid}:{user.gid}" + (f" groups {list(user.groups)}" if user.groups else "")
        raise StartError(f"{step} to user {ids}: {err.strerror}") from err
    if keep is not None and user.is_root:
        # Still uid 0: its capabilities stay, but not the ones held only for the switch.
        mask = capabilities.to_mask(keep) & capabilities.of_process("self")["CapBnd"]
        k.capset(mask, mask, 0)


def _restore_signals() -> None:
    # An ignored signal stays ignored across execve(2), and the signal mask is kept
    # (signal(7)): the command would inherit Python's SIGPIPE/SIGXFSZ, the fork server's
    # SIGINT, or SIGHUP from a caller under nohup(1) -- and a shell cannot trap a signal that
    # was ignored when it started (POSIX, "trap"). The command starts as docker's does: every
    # disposition default, nothing blocked.
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            if signal.getsignal(sig) == signal.SIG_IGN:
                signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):  # glibc's reserved real-time signals
            continue
    signal.pthread_sigmask(signal.SIG_SETMASK, ())


def exec_command(
    args: list[str],
    env: dict[str, str],
    err_w: int,
    say: Callable[[str], None] | None = None,
    failpoint: str = "",
) -> None:
    """execvpe in the container; on failure report docker's message and exit 126/127."""
    _restore_signals()
    if say is not None:
        say(f"execve({json.dumps(args[0])}, {json.dumps(args)}) (searching PATH)")
    # The command gets stdio and nothing else (err_w closes itself at exec: O_CLOEXEC).
    close_host_fds(err_w)
    if failpoint:
        try:  # everything checked: a death here is the last one before exec
            step(failpoint)
        except failpoints.FailpointError as err:
            os.write(err_w, protocol.encode(protocol.Failed("setup", 125, str(err))))
            os._exit(125)
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
    except ValueError as err:  # a NUL byte: checked at the edge (spec), kept from the kernel
        kind, code, msg = "setup", 125, f"exec: {args!r}: {err}"
    os.write(err_w, protocol.encode(protocol.Failed(kind, code, msg)))
    os._exit(code)
