"""Linux namespaces: what each one isolates, and how to tell whether two processes share one.

A namespace wraps one global resource so the processes inside see their own copy: PID numbers,
network devices, System V IPC objects, the mount table, the host name, user and group ids, the
cgroup root (namespaces(7)). Two processes share a namespace when ``/proc/<pid>/ns/<name>`` of
both point at the same inode.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass

from pycont import kernel
from pycont.errors import UsageError


class Namespace(enum.Enum):
    """The namespaces a container gets, in the order setns(2) joins them (user first)."""

    USER = ("user", kernel.CLONE_NEWUSER, "user and group ids (uid_map, gid_map)")
    MNT = ("mnt", kernel.CLONE_NEWNS, "the mount table and the root directory")
    UTS = ("uts", kernel.CLONE_NEWUTS, "host name and NIS domain name")
    IPC = ("ipc", kernel.CLONE_NEWIPC, "System V IPC objects and POSIX message queues")
    NET = ("net", kernel.CLONE_NEWNET, "network devices, addresses, routes, ports")
    PID = ("pid", kernel.CLONE_NEWPID, "process ids: the container's first process is PID 1")
    CGROUP = ("cgroup", kernel.CLONE_NEWCGROUP, "the root of the cgroup tree it sees")

    def __init__(self, procname: str, flag: int, isolates: str) -> None:
        self.procname = procname
        self.flag = flag
        self.isolates = isolates

    @classmethod
    def parse(cls, name: str) -> Namespace:
        aliases = {"network": "net", "mount": "mnt", "userns": "user", "cgroupns": "cgroup"}
        key = aliases.get(name, name)
        for ns in cls:
            if ns.procname == key:
                return ns
        accepted = ", ".join(ns.procname for ns in cls)
        raise UsageError(f"unknown namespace {name!r}: accepted are {accepted}")


# docker's --pid/--network/--ipc/--uts/--userns/--cgroupns values for each mode.
PRIVATE = "private"
HOST = "host"


@dataclass(frozen=True)
class NamespaceSet:
    """Which namespaces a container shares with the host. Default: none (all seven private)."""

    shared: frozenset[Namespace] = frozenset()

    @classmethod
    def from_modes(cls, modes: dict[str, str]) -> NamespaceSet:
        shared = set()
        for name, mode in modes.items():
            ns = Namespace.parse(name)
            if mode == HOST:
                shared.add(ns)
            elif mode not in (PRIVATE, "", "none", "private"):
                raise UsageError(
                    f"invalid --{name} value {mode!r}: accepted are 'host' or 'private'"
                )
        return cls(frozenset(shared))

    def private(self) -> list[Namespace]:
        return [ns for ns in Namespace if ns not in self.shared]

    def clone_flags(self) -> int:
        """Flags for clone(2); the cgroup namespace is unshared later, after joining the cgroup."""
        flags = 0
        for ns in self.private():
            if ns is not Namespace.CGROUP:
                flags |= ns.flag
        return flags

    def modes(self) -> dict[str, str]:
        return {ns.procname: HOST if ns in self.shared else PRIVATE for ns in Namespace}


def ns_inode(pid: int | str, ns: Namespace) -> int:
    """The inode of ``/proc/<pid>/ns/<name>``: equal inodes mean a shared namespace."""
    return os.stat(f"/proc/{pid}/ns/{ns.procname}").st_ino


def ns_link(pid: int | str, ns: Namespace) -> str:
    """``pid:[4026531836]``, as ``readlink /proc/<pid>/ns/pid`` prints it."""
    return os.readlink(f"/proc/{pid}/ns/{ns.procname}")


def compare(pid: int, other: int | str = "self") -> dict[str, tuple[str, str]]:
    """For each namespace: (link of ``pid``, link of ``other``)."""
    return {ns.procname: (ns_link(pid, ns), ns_link(other, ns)) for ns in Namespace}


def nspid(pid: int) -> list[int]:
    """The ``NSpid`` line of /proc/<pid>/status: the pid in each nested PID namespace."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("NSpid:"):
                return [int(x) for x in line.split()[1:]]
    return [pid]
