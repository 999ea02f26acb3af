"""A kernel that records calls instead of making them: unit tests of namespace logic, no root."""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

from pycont.errors import KernelError


@dataclass(frozen=True)
class Call:
    """One recorded syscall: its name and arguments."""

    name: str
    args: tuple[object, ...]


@dataclass
class RecordingKernel:
    """Records each call; ``fail`` maps a syscall name to the errno it should fail with."""

    calls: list[Call] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)
    next_pid: int = 4242

    def _record(self, name: str, *args: object, target: object = None) -> None:
        self.calls.append(Call(name, args))
        if name in self.fail:
            where = target if target is not None else (args[0] if args else None)
            raise KernelError(name, self.fail[name], str(where) if where is not None else None)

    def names(self) -> list[str]:
        return [c.name for c in self.calls]

    def unshare(self, flags: int) -> None:
        self._record("unshare", flags)

    def clone(self, flags: int, cgroup_fd: int | None = None) -> int:
        if cgroup_fd is None:
            self._record("clone", flags)
        else:
            self._record("clone3", flags, cgroup_fd)
        return self.next_pid

    def setns(self, fd: int, nstype: int, path: str = "") -> None:
        self._record("setns", path or fd, nstype)

    def mount(
        self, source: str, target: str, fstype: str = "", flags: int = 0, data: str = ""
    ) -> None:
        self._record("mount", source, target, fstype, flags, data, target=target)

    def umount2(self, target: str, flags: int = 0) -> None:
        self._record("umount2", target, flags)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self._record("pivot_root", new_root, put_old)

    def sethostname(self, name: str) -> None:
        if len(name.encode()) > 64:
            # sethostname(2): EINVAL when len exceeds HOST_NAME_MAX, as the real kernel does.
            raise KernelError("sethostname", errno.EINVAL, name)
        self._record("sethostname", name)

    def set_child_subreaper(self) -> None:
        self._record("prctl", "PR_SET_CHILD_SUBREAPER")

    def set_pdeathsig(self, sig: int) -> None:
        self._record("prctl", "PR_SET_PDEATHSIG", sig)

    def set_no_new_privs(self) -> None:
        self._record("prctl", "PR_SET_NO_NEW_PRIVS")

    def drop_bounding(self, cap: int) -> None:
        self._record("prctl", "PR_CAPBSET_DROP", cap)

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        self._record("capset", effective, permitted, inheritable)

    def clear_ambient(self) -> None:
        self._record("prctl", "PR_CAP_AMBIENT_CLEAR_ALL")

    def load_seccomp(self, program: bytes, flags: int = 0) -> None:
        self._record("seccomp", "SECCOMP_SET_MODE_FILTER", flags, len(program) // 8)

    def set_dumpable(self, dumpable: bool) -> None:
        self._record("prctl", "PR_SET_DUMPABLE", dumpable)

    def set_link_up(self, name: str) -> None:
        self._record("set_link_up", name)

    def set_address(self, name: str, address: str, prefixlen: int) -> None:
        self._record("set_address", name, address, prefixlen)

    def write_file(self, path: str, data: str) -> None:
        self._record("write", path, data)

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        self._record("mkdir", path, mode)

    def rmdir(self, path: str) -> None:
        self._record("rmdir", path)
