"""Masked and read-only paths: the parts of /proc and /sys a container must not read or write,
covered as Docker covers them, because those files are the host's, not the container's.

A masked file gets /dev/null bound over it (it reads empty), a masked folder an empty read-only
tmpfs. A read-only path is bound onto itself and remounted read-only, so /proc/sys/vm/drop_caches
still reads but no write reaches the host's kernel.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence

from pycont.errors import KernelError
from pycont.kernel._base import (
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    Kernel,
)

# Docker's default masked paths (moby's oci defaults): host information, or kernel interfaces
# a container has no business with.
MASKED: tuple[str, ...] = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)

# Docker's default read-only paths: readable, but a write would change the host's kernel.
READONLY: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

_O_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_parent(root: str, path: str) -> tuple[int, str] | None:
    """An O_PATH descriptor of the folder holding ``path`` inside ``root``, and the last name;
    None when a component is missing. Walks one component at a time with O_NOFOLLOW
    (openat(2)) and creates nothing: a symlink on the way is refused (ELOOP), since it could
    point the mount anywhere, even out of the container's root."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise KernelError("resolve", errno.EINVAL, path, "an absolute path without '..' is needed")
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in parts[:-1]:
            try:
                nfd = os.open(name, _O_PATH, dir_fd=fd)
            except FileNotFoundError:
                os.close(fd)
                return None
            os.close(fd)
            fd = nfd
            _refuse_symlink(fd, path, name)
        return fd, parts[-1]
    except BaseException:
        os.close(fd)
        raise


def _refuse_symlink(fd: int, path: str, name: str) -> None:
    if stat.S_ISLNK(os.fstat(fd).st_mode):
        raise KernelError("resolve", errno.ELOOP, path, f"{name} is a symlink: not followed")


def _open_inside(root: str, path: str) -> int | None:
    """An O_PATH descriptor of ``path`` inside ``root`` (see _open_parent), None if missing."""
    found = _open_parent(root, path)
    if found is None:
        return None
    parent, name = found
    try:
        return _reopen(parent, path, name)
    finally:
        os.close(parent)


def mask(k: Kernel, paths: Sequence[str], root: str = "/") -> None:
    """Hide each of ``paths`` (absolute, inside ``root``): /dev/null bound over a file, an
    empty read-only tmpfs over a folder. A missing path is skipped; a path with a symlink on
    it is refused with KernelError (ELOOP), never followed.

    ``root`` is "/" after pivot_root(2), or the container's merged folder before it."""
    for path in paths:
        fd = _open_inside(root, path)
        if fd is None:
            continue
        try:
            # proc(5): /proc/self/fd/N names the very file we opened, whatever its path.
            target = f"/proc/self/fd/{fd}"
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                k.mount("tmpfs", target, "tmpfs", MS_RDONLY)
            else:
                k.mount("/dev/null", target, "", MS_BIND)
        finally:
            os.close(fd)


def make_readonly(k: Kernel, paths: Sequence[str], root: str = "/") -> None:
    """Make each of ``paths`` (absolute, inside ``root``) read-only, with no setuid, device or
    exec on it: bound onto itself, then remounted. A missing path is skipped; a path with a
    symlink on it is refused with KernelError (ELOOP), never followed."""
    for path in paths:
        found = _open_parent(root, path)
        if found is None:
            continue
        parent, name = found
        try:
            fd = _reopen(parent, path, name)
            if fd is None:
                continue
            try:
                k.mount(f"/proc/self/fd/{fd}", f"/proc/self/fd/{fd}", "", MS_BIND | MS_REC)
            finally:
                os.close(fd)
            # The descriptor still names the folder under the new bind mount; looked up again
            # from its parent, the name crosses into the mount, whose root the remount needs
            # (mount(2): MS_REMOUNT|MS_BIND acts on the mount at the target).
            fd = _reopen(parent, path, name)
            if fd is None:
                continue
            try:
                flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
                k.mount("", f"/proc/self/fd/{fd}", "", flags | MS_REC)
            finally:
                os.close(fd)
        finally:
            os.close(parent)


def _reopen(parent: int, path: str, name: str) -> int | None:
    """``name`` in the folder ``parent``, opened O_PATH without following it; None if missing."""
    try:
        fd = os.open(name, _O_PATH, dir_fd=parent)
    except FileNotFoundError:
        return None
    try:
        _refuse_symlink(fd, path, name)
    except BaseException:
        os.close(fd)
        raise
    return fd
