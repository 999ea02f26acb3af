"""Whiteouts: how a layer says "this file was deleted" without touching the layers below.

Layers are read-only, so a deletion is recorded as a marker in a higher layer. The image format
and the kernel mark it differently, and this module is the one place that translates:

=====================  ==============================  =====================================
                       OCI image layer (tar)           OverlayFS (a directory on disk)
=====================  ==============================  =====================================
NAME deleted           an empty file ``.wh.NAME``      a character device 0/0 named NAME
DIR's lower content    an empty file                   the xattr ``trusted.overlay.opaque=y``
hidden (opaque DIR)    ``DIR/.wh..wh..opq``            on DIR (``user.overlay.opaque=y`` when
                                                       the overlay is mounted ``userxattr``)
=====================  ==============================  =====================================

(OCI image-spec, layer.md "Whiteouts"; Documentation/filesystems/overlayfs.rst "whiteouts and
opaque directories" and "User xattr".) An overlay mounted with ``userxattr`` (pycont's default:
every container has a user namespace) reads only ``user.overlay.*``; one mounted without it
reads only ``trusted.overlay.*``. Unpacked layers are shared by every container, whatever its
mount, so an opaque directory in a layer carries both xattrs (``trusted.*`` only where we may
set it: it needs CAP_SYS_ADMIN).
"""

from __future__ import annotations

import errno
import os
import stat

__all__ = [
    "OPAQUE_MARKER",
    "WHITEOUT_PREFIX",
    "is_opaque",
    "is_overlay_xattr",
    "is_whiteout",
    "make_whiteout",
    "mark_opaque",
    "oci_marker",
    "opaque_xattr",
    "overlay_xattr_prefix",
]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
# aufs kept its own bookkeeping under ".wh..wh." (".wh..wh.plnk", ".wh..wh.aufs"): such names in
# a layer tar are neither files nor deletions, and docker skips them; so do we.
_AUFS_META = ".wh..wh."
TRUSTED_PREFIX = "trusted.overlay."
USER_PREFIX = "user.overlay."
WHITEOUT_DEV = os.makedev(0, 0)


def overlay_xattr_prefix(userxattr: bool) -> str:
    """Where overlay keeps its metadata: ``user.overlay.`` with userxattr, else ``trusted.``."""
    return USER_PREFIX if userxattr else TRUSTED_PREFIX


def opaque_xattr(userxattr: bool) -> str:
    return overlay_xattr_prefix(userxattr) + "opaque"


def is_overlay_xattr(name: str) -> bool:
    """overlay's own metadata (opaque, redirect, metacopy, origin...): never part of a file.

    A layer that carried such xattrs could redirect lookups to other files (overlayfs.rst:
    "Do not use metacopy=on with untrusted upper/lower directories"), so they are neither
    written into layers nor accepted from them."""
    return name.startswith((TRUSTED_PREFIX, USER_PREFIX))


# -- OCI → overlay (applying a layer tar) ---------------------------------------------------
def oci_marker(basename: str) -> tuple[str, str]:
    """What a tar entry's last path component means.

    ``("opaque", "")``, ``("whiteout", NAME)``, ``("skip", "")`` for aufs metadata, or
    ``("entry", basename)`` for an ordinary file."""
    if basename == OPAQUE_MARKER:
        return "opaque", ""
    if basename.startswith(_AUFS_META):
        return "skip", ""
    if basename.startswith(WHITEOUT_PREFIX):
        return "whiteout", basename[len(WHITEOUT_PREFIX) :]
    return "entry", basename


def make_whiteout(dir_fd: int, name: str) -> None:
    """Create overlay's whiteout for ``name`` in the directory ``dir_fd``: a char device 0/0.

    mknod(2) refuses devices without CAP_MKNOD, except this one: since Linux 5.8 anyone may
    create a 0/0 character device ("whiteout"), so rootless pycont can unpack layers too."""
    os.mknod(name, stat.S_IFCHR | 0o000, WHITEOUT_DEV, dir_fd=dir_fd)


def mark_opaque(fd: int) -> None:
    """Make the directory open at ``fd`` opaque for overlay, with and without userxattr."""
    os.setxattr(fd, USER_PREFIX + "opaque", b"y")
    try:
        os.setxattr(fd, TRUSTED_PREFIX + "opaque", b"y")
    except OSError as err:
        # trusted.* needs CAP_SYS_ADMIN in the initial user namespace (xattr(7)): rootless
        # overlays mount with userxattr anyway, so user.overlay.opaque is the one that counts.
        if err.errno not in (errno.EPERM, errno.EOPNOTSUPP):
            raise


# -- overlay → OCI (turning an upper dir into a layer tar) ----------------------------------
def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == WHITEOUT_DEV


def is_opaque(path: str | int, userxattr: bool) -> bool:
    """Is this directory opaque for an overlay mounted with (or without) userxattr?"""
    try:
        if isinstance(path, int):
            return os.getxattr(path, opaque_xattr(userxattr)) == b"y"
        return os.getxattr(path, opaque_xattr(userxattr), follow_symlinks=False) == b"y"
    except OSError as err:
        if err.errno in (errno.ENODATA, errno.EOPNOTSUPP, errno.EPERM):
            return False
        raise


def whiteout_entry(name: str) -> str:
    """The OCI tar name that deletes ``name`` (a path relative to the layer root)."""
    parent, _, base = name.rpartition("/")
    return f"{parent}/{WHITEOUT_PREFIX}{base}" if parent else WHITEOUT_PREFIX + base


def opaque_entry(dirname: str) -> str:
    """The OCI tar name that makes ``dirname`` opaque."""
    return f"{dirname}/{OPAQUE_MARKER}" if dirname else OPAQUE_MARKER
