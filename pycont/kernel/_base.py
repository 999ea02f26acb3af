"""The Kernel interface and the flag constants of <sched.h> and <sys/mount.h>."""

from __future__ import annotations

from typing import Protocol

# clone(2) / unshare(2) namespace flags, from <linux/sched.h>.
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount(2) flags, from <linux/mount.h>.
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19

# umount2(2) flags.
MNT_DETACH = 2

# capabilities(7) by number, from <linux/capability.h>: index == the capability's bit.
CAP_NAMES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)

_CLONE_NAMES = {
    CLONE_NEWNS: "CLONE_NEWNS",
    CLONE_NEWCGROUP: "CLONE_NEWCGROUP",
    CLONE_NEWUTS: "CLONE_NEWUTS",
    CLONE_NEWIPC: "CLONE_NEWIPC",
    CLONE_NEWUSER: "CLONE_NEWUSER",
    CLONE_NEWPID: "CLONE_NEWPID",
    CLONE_NEWNET: "CLONE_NEWNET",
}
_MS_NAMES = {
    MS_RDONLY: "MS_RDONLY",
    MS_NOSUID: "MS_NOSUID",
    MS_NODEV: "MS_NODEV",
    MS_NOEXEC: "MS_NOEXEC",
    MS_REMOUNT: "MS_REMOUNT",
    MS_BIND: "MS_BIND",
    MS_MOVE: "MS_MOVE",
    MS_REC: "MS_REC",
    MS_PRIVATE: "MS_PRIVATE",
    MS_SLAVE: "MS_SLAVE",
}


def describe_flags(flags: int, kind: str = "clone") -> str:
    """``CLONE_NEWNS|CLONE_NEWPID`` for a flag word, as strace prints it."""
    table = _CLONE_NAMES if kind == "clone" else _MS_NAMES
    names = [name for bit, name in table.items() if flags & bit]
    rest = flags & ~sum(bit for bit in table if flags & bit)
    if rest:
        names.append(hex(rest))
    return "|".join(names) or "0"


def describe_cap(cap: int) -> str:
    """``CAP_SYS_ADMIN`` for 21, as strace prints it; the number for one newer than this table."""
    return CAP_NAMES[cap] if 0 <= cap < len(CAP_NAMES) else str(cap)


class Kernel(Protocol):
    """What pycont needs from the kernel. Each method raises KernelError on failure."""

    def unshare(self, flags: int) -> None: ...

    def clone(self, flags: int, cgroup_fd: int | None = None) -> int:
        """fork(2) into new namespaces: returns the child's pid in the parent, 0 in the child.
        ``cgroup_fd``: a cgroup v2 folder the child starts in (clone3 CLONE_INTO_CGROUP)."""
        ...

    def setns(self, fd: int, nstype: int, path: str = "") -> None: ...

    def mount(
        self, source: str, target: str, fstype: str = "", flags: int = 0, data: str = ""
    ) -> None: ...

    def umount2(self, target: str, flags: int = 0) -> None: ...

    def pivot_root(self, new_root: str, put_old: str) -> None: ...

    def sethostname(self, name: str) -> None: ...

    def set_child_subreaper(self) -> None: ...

    def set_pdeathsig(self, sig: int) -> None: ...

    def set_no_new_privs(self) -> None: ...

    # capabilities(7): what root may still do once it runs the container's command.
    def drop_bounding(self, cap: int) -> None:
        """prctl(PR_CAPBSET_DROP): ``cap`` leaves the bounding set, for good (needs CAP_SETPCAP)."""
        ...

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        """capset(2) of this thread's three sets, each a bit mask of capability numbers."""
        ...

    def clear_ambient(self) -> None:
        """prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL): no capability survives execve(2)
        through the ambient set."""
        ...

    def set_dumpable(self, dumpable: bool) -> None:
        """prctl(PR_SET_DUMPABLE): a non-dumpable process's /proc/<pid> belongs to root and
        cannot be ptraced, so a container cannot reach it while it joins."""
        ...

    def load_seccomp(self, program: bytes, flags: int = 0) -> None:
        """Install a seccomp BPF program (struct sock_filter instructions, 8 bytes each) in this
        process: seccomp(2) SECCOMP_SET_MODE_FILTER with ``flags``, or prctl(2) PR_SET_SECCOMP
        when there are none. Needs CAP_SYS_ADMIN or no_new_privs."""
        ...

    def set_link_up(self, name: str) -> None:
        """Bring a network device up (``ip link set NAME up``)."""
        ...

    def set_address(self, name: str, address: str, prefixlen: int) -> None:
        """Give a network device an IPv4 address (``ip addr add ADDRESS/PREFIXLEN dev NAME``)."""
        ...

    # Kernel state that lives in files: cgroupfs and /proc/<pid>/{uid,gid}_map act on each
    # write(2), so these go through the seam too and show up in a narration.
    def write_file(self, path: str, data: str) -> None:
        """One open(O_WRONLY|O_TRUNC) + write(2) of ``data``: the kernel acts on that write."""
        ...

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        """mkdir(2); a folder that already exists is fine."""
        ...

    def rmdir(self, path: str) -> None:
        """rmdir(2); a folder that is already gone is fine."""
        ...
