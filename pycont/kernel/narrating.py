"""A kernel that tells each syscall as it makes it, strace-style: the course turns it on to show
the exact sequence of calls behind ``pycont run``."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable

from pycont.errors import KernelError
from pycont.kernel._base import Kernel, describe_cap, describe_flags


class NarratingKernel:
    """Wraps another kernel; ``say`` receives one line per call, with its result."""

    def __init__(self, inner: Kernel, say: Callable[[str], None]) -> None:
        self.inner = inner
        self.say = say

    def _do(self, text: str, fn: Callable[[], object]) -> object:
        try:
            result = fn()
        except KernelError as err:
            self.say(f"{text} = -1 {err.strerror}")
            raise
        self.say(f"{text} = {result if isinstance(result, int) else 0}")
        return result

    def unshare(self, flags: int) -> None:
        self._do(f"unshare({describe_flags(flags)})", lambda: self.inner.unshare(flags))

    def clone(self, flags: int, cgroup_fd: int | None = None) -> int:
        text = f"clone({describe_flags(flags)}|SIGCHLD)"
        if cgroup_fd is not None:
            try:
                folder = os.readlink(f"/proc/self/fd/{cgroup_fd}")
            except OSError:
                folder = str(cgroup_fd)
            text = (
                f"clone3({{flags={describe_flags(flags)}|CLONE_INTO_CGROUP, "
                f'exit_signal=SIGCHLD, cgroup=open("{folder}")}})'
            )
        try:
            pid = self.inner.clone(flags, cgroup_fd)
        except KernelError as err:
            if cgroup_fd is not None:  # the caller falls back to clone + cgroup.procs
                self.say(f"{text} = -1 {err.strerror}")
            raise
        if pid:  # only the parent narrates, or the line would be printed twice
            self.say(f"{text} = {pid}")
        return pid

    def setns(self, fd: int, nstype: int, path: str = "") -> None:
        self._do(
            f'setns(open("{path}"), {describe_flags(nstype)})',
            lambda: self.inner.setns(fd, nstype, path),
        )

    def mount(
        self, source: str, target: str, fstype: str = "", flags: int = 0, data: str = ""
    ) -> None:
        text = (
            f'mount("{_with_path(source) or "none"}", "{_with_path(target)}", '
            f"{f'{chr(34)}{fstype}{chr(34)}' if fstype else 'NULL'}, "
            f"{describe_flags(flags, 'mount')}, {f'{chr(34)}{data}{chr(34)}' if data else 'NULL'})"
        )
        self._do(text, lambda: self.inner.mount(source, target, fstype, flags, data))

    def umount2(self, target: str, flags: int = 0) -> None:
        self._do(
            f'umount2("{target}", {"MNT_DETACH" if flags == 2 else flags})',
            lambda: self.inner.umount2(target, flags),
        )

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self._do(
            f'pivot_root("{new_root}", "{put_old}")',
            lambda: self.inner.pivot_root(new_root, put_old),
        )

    def sethostname(self, name: str) -> None:
        self._do(f'sethostname("{name}")', lambda: self.inner.sethostname(name))

    def set_child_subreaper(self) -> None:
        self._do("prctl(PR_SET_CHILD_SUBREAPER, 1)", self.inner.set_child_subreaper)

    def set_pdeathsig(self, sig: int) -> None:
        name = signal.Signals(sig).name if sig else "0"
        self._do(f"prctl(PR_SET_PDEATHSIG, {name})", lambda: self.inner.set_pdeathsig(sig))

    def set_no_new_privs(self) -> None:
        self._do("prctl(PR_SET_NO_NEW_PRIVS, 1)", self.inner.set_no_new_privs)

    def drop_bounding(self, cap: int) -> None:
        self._do(
            f"prctl(PR_CAPBSET_DROP, {describe_cap(cap)})", lambda: self.inner.drop_bounding(cap)
        )

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        self._do(
            f"capset(eff={effective:#x}, prm={permitted:#x}, inh={inheritable:#x})",
            lambda: self.inner.capset(effective, permitted, inheritable),
        )

    def clear_ambient(self) -> None:
        self._do("prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)", self.inner.clear_ambient)

    def load_seccomp(self, program: bytes, flags: int = 0) -> None:
        self._do(
            f"seccomp(SECCOMP_SET_MODE_FILTER, {flags}, {{{len(program) // 8} BPF instructions}})",
            lambda: self.inner.load_seccomp(program, flags),
        )

    def set_dumpable(self, dumpable: bool) -> None:
        self._do(
            f"prctl(PR_SET_DUMPABLE, {int(dumpable)})", lambda: self.inner.set_dumpable(dumpable)
        )

    def set_link_up(self, name: str) -> None:
        self._do(f'ioctl(SIOCSIFFLAGS, "{name}", IFF_UP)', lambda: self.inner.set_link_up(name))

    def set_address(self, name: str, address: str, prefixlen: int) -> None:
        self._do(
            f'ioctl(SIOCSIFADDR, "{name}", {address}/{prefixlen})',
            lambda: self.inner.set_address(name, address, prefixlen),
        )

    def write_file(self, path: str, data: str) -> None:
        self._do(
            f"write({json.dumps(path)}, {json.dumps(data.strip())})",
            lambda: self.inner.write_file(path, data),
        )

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        self._do(f"mkdir({json.dumps(path)}, {mode:#o})", lambda: self.inner.mkdir(path, mode))

    def rmdir(self, path: str) -> None:
        self._do(f"rmdir({json.dumps(path)})", lambda: self.inner.rmdir(path))


def _with_path(path: str) -> str:
    """``/proc/self/fd/4</proc/keys>``, as ``strace -y`` shows a descriptor: pycont mounts on
    targets it opened first without following symlinks (rootfs.open_inside), by their fd."""
    if not path.startswith("/proc/self/fd/"):
        return path
    try:
        return f"{path}<{os.readlink(path)}>"
    except OSError:
        return path
