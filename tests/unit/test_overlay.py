"""pycont.overlay without mounting: options, the kernel seam, lookups, diff, the copy driver."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pycont.errors import UsageError
from pycont.kernel import MNT_DETACH, RecordingKernel, use
from pycont.overlay import (
    MAX_OPTIONS,
    Change,
    CopyStack,
    Stack,
    changes,
    lookup,
    mount_options,
    stack_for,
)
from pycont.rootfs import RootSpec
from tests.helpers import requires


def whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR, os.makedev(0, 0))


@pytest.mark.parametrize("userns", [True, False])
def test_rootfs_mounts_the_same_stack(tmp_path: Path, userns: bool) -> None:
    spec = RootSpec(("/l/top", "/l/base"), str(tmp_path), userns=userns)
    stack = stack_for(spec.lowers, str(tmp_path), userxattr=userns)
    assert isinstance(stack, Stack)
    assert spec.stack() == stack
    assert stack.options() == mount_options(
        ("/l/top", "/l/base"), spec.upper, spec.work, userxattr=userns
    )


def test_options_of_plain_paths_are_unchanged() -> None:
    opts = mount_options(("/l/1", "/l/0"), "/c/upper", "/c/work", userxattr=True)
    assert opts == "lowerdir=/l/1:/l/0,upperdir=/c/upper,workdir=/c/work,userxattr"
    assert mount_options(("/l/1",)) == "lowerdir=/l/1"


def test_options_escape_and_limits() -> None:
    assert Stack(("/a:b", "/c"), None, None, "/m").options() == "lowerdir=/a\\:b:/c"
    assert Stack(("/a,b",), "/u\\x", "/w:", "/m").options() == (
        "lowerdir=/a\\,b,upperdir=/u\\\\x,workdir=/w\\:"
    )
    with pytest.raises(UsageError, match="at least one lowerdir"):
        mount_options(())
    with pytest.raises(UsageError, match="needs a workdir"):
        Stack(("/a",), "/u", None, "/m").options()
    n = MAX_OPTIONS // 90 + 1  # one page of option data (4096 bytes on x86): 46 such paths
    many = tuple(f"/var/lib/pycont/images/layers/{i:064x}" for i in range(n))
    with pytest.raises(UsageError, match=f"{n} layers are too many"):
        Stack(many, None, None, "/m").options()
    assert Stack(many[: n // 2], None, None, "/m").options().count(":") == n // 2 - 1


def test_mount_goes_through_the_kernel_seam() -> None:
    stack = Stack(("/l1", "/l0"), "/c/upper", "/c/work", "/c/merged", userxattr=True)
    k = RecordingKernel()
    with use(k):
        stack.mount()
        stack.unmount()
    assert [(c.name, c.args) for c in k.calls] == [
        (
            "mount",
            (
                "pycont-overlay",
                "/c/merged",
                "overlay",
                0,
                "lowerdir=/l1:/l0,upperdir=/c/upper,workdir=/c/work,userxattr",
            ),
        ),
        ("umount2", ("/c/merged", MNT_DETACH)),
    ]


def test_lookup_follows_overlay_rules(tmp_path: Path) -> None:
    top, mid, base = tmp_path / "top", tmp_path / "mid", tmp_path / "base"
    for d in (top, mid, base):
        d.mkdir()
    (base / "d").mkdir()
    (base / "d" / "old").write_text("o")
    (base / "f").mkdir()  # a directory below...
    (mid / "f").write_text("file")  # ...hidden by a file above
    (mid / "d").mkdir()
    os.setxattr(mid / "d", "user.overlay.opaque", b"y")  # mid hides base's d/
    (top / "d").mkdir()
    lowers = (str(top), str(mid), str(base))
    assert lookup(lowers, "d") == [str(top / "d"), str(mid / "d")]
    assert lookup(lowers, "d/old") == []  # behind the opaque dir
    assert lookup(lowers, "d/old", userxattr=False) == [str(base / "d" / "old")]
    assert lookup(lowers, "f") == [str(mid / "f")]
    assert lookup(lowers, "f/x") == []
    assert lookup(lowers, "nope") == []


@requires("root")  # whiteouts are 0/0 character devices
def test_changes_from_a_hand_made_upper(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc" / "passwd").write_text("root\n")
    (lower / "etc" / "motd").write_text("hi\n")
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "passwd").write_text("root\nme\n")
    whiteout(upper / "etc" / "motd")
    (upper / "srv").mkdir()
    (upper / "srv" / "app").write_text("a")
    assert [str(c) for c in changes(str(upper), (str(lower),))] == [
        "C /etc",
        "D /etc/motd",
        "C /etc/passwd",
        "A /srv",
        "A /srv/app",
    ]


@requires("root")  # the layers carry 0/0 whiteouts and root-owned files
def test_copy_stack_is_a_real_fallback(tmp_path: Path) -> None:
    base, top = tmp_path / "base", tmp_path / "top"
    (base / "etc").mkdir(parents=True)
    (base / "etc" / "motd").write_text("hi\n")
    (base / "etc" / "keep").write_text("k\n")
    (base / "home" / "u").mkdir(parents=True)
    (base / "home" / "u" / "notes").write_text("n")
    os.symlink("/etc/keep", base / "link")
    (top / "etc").mkdir(parents=True)
    whiteout(top / "etc" / "motd")
    (top / "home").mkdir()
    os.setxattr(top / "home", "user.overlay.opaque", b"y")
    (top / "home" / "fresh").write_text("f")
    for d in (base, top):  # as the store leaves layer dirs: nothing changed since
        for p in sorted(d.rglob("*"), reverse=True):
            os.utime(p, (1, 1), follow_symlinks=False)
    merged = tmp_path / "merged"
    stack = CopyStack((str(top), str(base)), str(merged))
    assert "vfs" in stack.driver and "overlay could not be mounted" in stack.driver
    stack.mount()
    assert sorted(os.listdir(merged / "etc")) == ["keep"]
    assert sorted(os.listdir(merged / "home")) == ["fresh"]
    assert os.readlink(merged / "link") == "/etc/keep"
    assert stack.changes() == []  # a fresh copy has no changes of its own
    (merged / "etc" / "keep").write_text("changed\n")
    (merged / "home" / "fresh").unlink()
    (merged / "new").write_text("x")
    assert stack.changes() == [
        Change("C", "/etc"),
        Change("C", "/etc/keep"),
        Change("C", "/home"),
        Change("D", "/home/fresh"),
        Change("A", "/new"),
    ]
    assert (base / "etc" / "keep").read_text() == "k\n"  # the layers are untouched
    stack.unmount()
    stack.mount()  # a restart keeps the container's files, as docker's vfs does
    assert (merged / "new").exists()
    stack.remove()
    assert not merged.exists()
