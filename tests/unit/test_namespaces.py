"""Which namespaces a container gets: parsing docker's --pid/--network/... modes, clone flags."""

from __future__ import annotations

import os

import pytest

from pycont import kernel
from pycont.errors import UsageError
from pycont.namespaces import Namespace, NamespaceSet, compare, ns_inode, ns_link

ALL_SEVEN = ("user", "mnt", "uts", "ipc", "net", "pid", "cgroup")


def test_seven_namespaces_user_first() -> None:
    # setns(2): joining the user namespace first gives the rights to join the others
    assert tuple(ns.procname for ns in Namespace) == ALL_SEVEN


def test_default_is_all_private() -> None:
    s = NamespaceSet()
    assert s.private() == list(Namespace)
    assert s.modes() == dict.fromkeys(ALL_SEVEN, "private")


@pytest.mark.parametrize(
    ("flag", "ns"),
    [
        ("pid", Namespace.PID),
        ("network", Namespace.NET),
        ("net", Namespace.NET),
        ("ipc", Namespace.IPC),
        ("uts", Namespace.UTS),
        ("userns", Namespace.USER),
        ("user", Namespace.USER),
        ("cgroupns", Namespace.CGROUP),
        ("mount", Namespace.MNT),
    ],
)
def test_from_modes_host_shares_that_one(flag: str, ns: Namespace) -> None:
    s = NamespaceSet.from_modes({flag: "host"})
    assert s.shared == frozenset({ns})
    assert ns not in s.private()
    assert s.modes()[ns.procname] == "host"


def test_from_modes_private_and_empty_share_nothing() -> None:
    s = NamespaceSet.from_modes({"pid": "private", "net": "", "ipc": "private"})
    assert s.shared == frozenset()


@pytest.mark.parametrize("bad", ["container:web", "HOST", "yes", "bridge"])
def test_from_modes_bad_value_names_the_accepted_ones(bad: str) -> None:
    with pytest.raises(UsageError) as info:
        NamespaceSet.from_modes({"pid": bad})
    msg = str(info.value)
    assert repr(bad) in msg
    assert "'host'" in msg and "'private'" in msg
    assert "pid" in msg
    assert info.value.exit_code == 125


def test_from_modes_unknown_namespace_names_the_accepted_ones() -> None:
    with pytest.raises(UsageError) as info:
        NamespaceSet.from_modes({"time": "host"})
    msg = str(info.value)
    assert "'time'" in msg
    for name in ALL_SEVEN:
        assert name in msg


def test_clone_flags_leave_the_cgroup_namespace_for_later() -> None:
    # The cgroup namespace is unshared by the container's init after it joined its cgroup,
    # so its cgroup root is its own cgroup: never in the clone(2) flags.
    flags = NamespaceSet().clone_flags()
    assert not flags & kernel.CLONE_NEWCGROUP
    assert flags == (
        kernel.CLONE_NEWUSER
        | kernel.CLONE_NEWNS
        | kernel.CLONE_NEWUTS
        | kernel.CLONE_NEWIPC
        | kernel.CLONE_NEWNET
        | kernel.CLONE_NEWPID
    )


def test_clone_flags_skip_the_shared_ones() -> None:
    s = NamespaceSet.from_modes({"pid": "host", "network": "host", "userns": "host"})
    flags = s.clone_flags()
    assert not flags & (kernel.CLONE_NEWPID | kernel.CLONE_NEWNET | kernel.CLONE_NEWUSER)
    assert flags == kernel.CLONE_NEWNS | kernel.CLONE_NEWUTS | kernel.CLONE_NEWIPC


def test_this_process_shares_its_own_namespaces() -> None:
    pid = os.getpid()
    for ns in Namespace:
        assert ns_inode(pid, ns) == os.stat(f"/proc/self/ns/{ns.procname}").st_ino
        assert ns_link(pid, ns).startswith(f"{ns.procname}:[")
    same = compare(pid)
    assert set(same) == set(ALL_SEVEN)
    assert all(a == b for a, b in same.values())
