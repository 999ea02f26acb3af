"""capabilities.apply() and the masked / read-only paths on the real kernel, each in a forked
child (in its own mount namespace, so nothing reaches the host) that sends what it saw back
through a pipe as one JSON document; the test asserts in the parent.

A path with a symlink on it is refused (KernelError, ELOOP), never followed: a mount on the
symlink's target could land anywhere, even outside the container's root.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pycont.errors import KernelError
from pycont.kernel import (
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUTS,
    MS_BIND,
    MS_PRIVATE,
    MS_REC,
    LinuxKernel,
)
from pycont.security import capabilities, paths
from tests.helpers import requires

# cgroup_v2: the v2 VM (tests/vm/run_v2.py) runs these too, on its own kernel.
pytestmark = [pytest.mark.cgroup_v2, requires("root")]

DOCKER_MASK = 0xA80425FB


def in_child(fn: Callable[[], dict[str, Any]], flags: int = CLONE_NEWNS) -> dict[str, Any]:
    """Run ``fn`` in a forked child with new namespaces (``flags``; with CLONE_NEWPID it runs as
    PID 1 of the new one) and / made private, and return what it returned."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: whatever happens, it ends here and never returns into pytest
        code = 1
        try:
            os.close(r)
            k = LinuxKernel()
            k.unshare(flags)
            k.mount("", "/", "", MS_PRIVATE | MS_REC)
            # unshare(2): CLONE_NEWPID puts only our next child in the new namespace (as PID 1).
            inner = os.fork() if flags & CLONE_NEWPID else 0
            if inner:
                os.close(w)
                code = os.waitstatus_to_exitcode(os.waitpid(inner, 0)[1])
            else:
                try:
                    out: dict[str, Any] = fn()
                except BaseException as err:  # noqa: BLE001 - sent to the parent to fail there
                    out = {"error": f"{type(err).__name__}: {err}"}
                os.write(w, json.dumps(out).encode())
                code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        raw = f.read()
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    assert status == 0, f"child exited {status}: {raw!r}"
    out = json.loads(raw)
    assert "error" not in out, out["error"]
    return out


def errno_of(fn: Callable[[], object]) -> str:
    try:
        fn()
    except OSError as err:
        return errno.errorcode[err.errno or 0]
    return "ok"


# Capabilities


def test_apply_leaves_dockers_fourteen_and_nothing_inheritable(tmp_path: Path) -> None:
    def child() -> dict[str, Any]:
        k = LinuxKernel()
        capabilities.apply(k, capabilities.DOCKER_DEFAULT)
        target = str(tmp_path)
        return {
            "sets": capabilities.of_process(),
            "mount": errno_of(lambda: k.mount("pc-tmpfs", target, "tmpfs")),
            # Dropped from bounding and permitted: capset(2) cannot take CAP_SYS_ADMIN back.
            "regain": errno_of(lambda: k.capset(1 << 21, 1 << 21, 0)),
        }

    got = in_child(child)
    sets = got["sets"]
    assert sets["CapEff"] == sets["CapPrm"] == sets["CapBnd"] == DOCKER_MASK, {
        key: hex(v) for key, v in sets.items()
    }
    assert sets["CapInh"] == 0 and sets["CapAmb"] == 0
    assert got["mount"] == "EPERM"
    assert got["regain"] == "EPERM"


def test_after_execve_roots_command_has_exactly_the_kept_set() -> None:
    def child() -> dict[str, Any]:
        capabilities.apply(LinuxKernel(), capabilities.DOCKER_DEFAULT)
        # capabilities(7): root's execve(2) recomputes the sets from the bounding set.
        status = subprocess.run(
            ["cat", "/proc/self/status"], capture_output=True, text=True, check=True
        ).stdout
        return {"lines": [line for line in status.splitlines() if line.startswith("Cap")]}

    lines = dict(line.split(":\t") for line in in_child(child)["lines"])
    assert {key: int(v, 16) for key, v in lines.items()} == {
        "CapInh": 0,
        "CapPrm": DOCKER_MASK,
        "CapEff": DOCKER_MASK,
        "CapBnd": DOCKER_MASK,
        "CapAmb": 0,
    }


def test_drop_all_leaves_nothing() -> None:
    def child() -> dict[str, Any]:
        capabilities.apply(LinuxKernel(), capabilities.resolve([], ["ALL"]))
        return {"sets": capabilities.of_process()}

    assert set(in_child(child)["sets"].values()) == {0}


# Masked and read-only paths, on a scratch root: a tmpfs with a fresh proc mounted in it.


def scratch_root(base: Path) -> str:
    """A tmpfs at ``base`` holding a fresh proc (this PID namespace's), a fake /sys/firmware,
    a file and a folder to make read-only, and symlinks that must not be followed."""
    k = LinuxKernel()
    root = str(base)
    k.mount("pc-scratch", root, "tmpfs")
    for d in ("proc", "sys/firmware/efi", "data", "secret"):
        os.makedirs(f"{root}/{d}")
    k.mount("proc", f"{root}/proc", "proc")
    Path(f"{root}/sys/firmware/efi/vars").write_text("host firmware\n")
    Path(f"{root}/data/file").write_text("data\n")
    Path(f"{root}/secret/file").write_text("secret\n")
    os.symlink("/secret/file", f"{root}/file-link")  # the last component a symlink
    os.symlink("secret", f"{root}/dir-link")  # a folder on the way a symlink
    return root


def mount_options(mountpoint: str) -> list[str]:
    """The per-mount options (mountinfo's sixth field) of the top mount at ``mountpoint``."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == mountpoint:
                found = fields[5].split(",")
    return found


def mounts_count() -> int:
    with open("/proc/self/mountinfo") as f:
        return sum(1 for _ in f)


NEW_NS = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS


def test_masked_file_reads_empty_and_masked_folder_is_empty_and_read_only(
    tmp_path: Path,
) -> None:
    def child() -> dict[str, Any]:
        root = scratch_root(tmp_path)
        before = Path(f"{root}/proc/timer_list").read_text()
        paths.mask(LinuxKernel(), ["/proc/timer_list", "/proc/keys", "/sys/firmware"], root)
        null = os.stat("/dev/null").st_rdev
        return {
            "before": len(before),
            "after": Path(f"{root}/proc/timer_list").read_text(),
            "is_null": os.stat(f"{root}/proc/timer_list").st_rdev == null,
            "keys": Path(f"{root}/proc/keys").read_text()
            if os.path.exists(f"{root}/proc/keys")
            else "",
            "listing": os.listdir(f"{root}/sys/firmware"),
            "write": errno_of(lambda: Path(f"{root}/sys/firmware/x").write_text("x")),
            "options": mount_options(f"{root}/sys/firmware"),
        }

    got = in_child(child, NEW_NS)
    assert got["before"] > 0, "timer_list had something to hide"
    assert got["after"] == "" and got["is_null"]
    assert got["keys"] == ""
    assert got["listing"] == []
    assert got["write"] == "EROFS"
    assert "ro" in got["options"]


def test_read_only_paths_refuse_writes_and_still_read(tmp_path: Path) -> None:
    def child() -> dict[str, Any]:
        root = scratch_root(tmp_path)
        # In this child's own UTS namespace: even a write that got through changes nothing.
        hostname = f"{root}/proc/sys/kernel/hostname"
        # A folder of proc, a folder and a single file of the tmpfs; /proc/sysrq-trigger exists
        # only with CONFIG_MAGIC_SYSRQ: missing, it is skipped.
        file = f"{root}/sys/firmware/efi/vars"
        paths.make_readonly(
            LinuxKernel(),
            ["/proc/sys", "/data", "/sys/firmware/efi/vars", "/proc/sysrq-trigger"],
            root,
        )
        return {
            "sysctl": errno_of(lambda: os.close(os.open(hostname, os.O_WRONLY))),
            "reads": Path(hostname).read_text().strip() == os.uname().nodename,
            "file": errno_of(lambda: Path(file).write_text("x")),
            "file_options": mount_options(file),
            "data": errno_of(lambda: Path(f"{root}/data/file").write_text("x")),
            "data_reads": Path(f"{root}/data/file").read_text(),
            "new_file": errno_of(lambda: Path(f"{root}/data/new").write_text("x")),
            "options": mount_options(f"{root}/proc/sys"),
            "data_options": mount_options(f"{root}/data"),
        }

    got = in_child(child, NEW_NS)
    assert got["sysctl"] == "EROFS" and got["reads"]
    assert got["file"] == "EROFS"
    assert got["data"] == got["new_file"] == "EROFS" and got["data_reads"] == "data\n"
    for options in (got["options"], got["data_options"], got["file_options"]):
        assert {"ro", "nosuid", "nodev", "noexec"} <= set(options), options


def test_a_symlink_on_the_path_is_refused_not_followed(tmp_path: Path) -> None:
    def child() -> dict[str, Any]:
        root = scratch_root(tmp_path)
        k = LinuxKernel()
        out: dict[str, Any] = {}
        for name, call in {
            "mask_last": lambda: paths.mask(k, ["/file-link"], root),
            "mask_on_the_way": lambda: paths.mask(k, ["/dir-link/file"], root),
            "readonly_last": lambda: paths.make_readonly(k, ["/file-link"], root),
            "readonly_on_the_way": lambda: paths.make_readonly(k, ["/dir-link/file"], root),
        }.items():
            try:
                call()
                out[name] = "followed"
            except KernelError as err:
                out[name] = [errno.errorcode[err.errno or 0], str(err)]
        out["secret"] = Path(f"{root}/secret/file").read_text()
        out["writable"] = errno_of(lambda: Path(f"{root}/secret/file").write_text("secret\n"))
        return out

    got = in_child(child, NEW_NS)
    for name in ("mask_last", "mask_on_the_way", "readonly_last", "readonly_on_the_way"):
        assert got[name][0] == "ELOOP", (name, got[name])
        assert "symlink" in got[name][1]
    assert got["secret"] == "secret\n" and got["writable"] == "ok"


def test_missing_paths_are_skipped(tmp_path: Path) -> None:
    def child() -> dict[str, Any]:
        root = scratch_root(tmp_path)
        before = mounts_count()
        k = LinuxKernel()
        paths.mask(k, ["/proc/no-such-file", "/nowhere/at/all"], root)
        paths.make_readonly(k, ["/proc/no-such-dir", "/nowhere/at/all"], root)
        return {"added": mounts_count() - before}

    assert in_child(child, NEW_NS)["added"] == 0


def test_defaults_apply_inside_the_root_after_chroot(tmp_path: Path) -> None:
    """root="/" is how pid1 calls them after pivot_root(2): here a chroot stands in for it."""

    def child() -> dict[str, Any]:
        root = scratch_root(tmp_path)
        # /dev/null for the masks, inside the new root as a container's /dev has it.
        os.makedirs(f"{root}/dev")
        Path(f"{root}/dev/null").touch()
        LinuxKernel().mount("/dev/null", f"{root}/dev/null", "", MS_BIND)
        os.chroot(root)
        os.chdir("/")
        k = LinuxKernel()
        paths.make_readonly(k, paths.READONLY)
        paths.mask(k, paths.MASKED)
        return {
            "timer_list": Path("/proc/timer_list").read_text(),
            "sysctl": errno_of(lambda: os.close(os.open("/proc/sys/kernel/hostname", os.O_WRONLY))),
            "firmware": os.listdir("/sys/firmware"),
            "options": mount_options("/proc/sys"),
        }

    got = in_child(child, NEW_NS)
    assert got["timer_list"] == "" and got["firmware"] == []
    assert got["sysctl"] == "EROFS" and "ro" in got["options"]


@pytest.mark.parametrize("bad", ["relative/../up", "/proc/../etc", ""])
def test_a_path_with_dot_dot_or_empty_is_refused(bad: str) -> None:
    with pytest.raises(KernelError, match="without '..'"):
        paths.mask(LinuxKernel(), [bad], "/")
