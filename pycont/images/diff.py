"""A container's changes as a layer: an overlay upper dir written out as an OCI layer tar.

``upper`` holds exactly what a container changed (overlay's copy-up), so ``docker commit`` is
a walk over it: overlay's whiteouts become OCI ``.wh.`` files (:mod:`pycont.images.whiteouts`),
hard links stay links, and the tar is written deterministically (:mod:`._tarwrite`). Unpacking
a layer, the other direction, is :mod:`pycont.images.layers`.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Iterator

from pycont.errors import LayerError
from pycont.fsutil import walk_tree
from pycont.images import whiteouts as wh
from pycont.images._tarwrite import Entry, TarStats, Writable, keep_xattr, write_tar

__all__ = ["diff_entries", "walk", "write_layer"]


def walk(top: str, rel: str = "") -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of everything below ``top`` (or its subfolder ``rel``), sorted,
    parents first: :func:`pycont.fsutil.walk_tree`, which works at any depth."""
    start = os.path.join(top, rel) if rel else top
    for e in walk_tree(start):
        yield (f"{rel}/{e.rel}" if rel else e.rel), e.st


def _file_xattrs(path: str) -> tuple[tuple[str, bytes], ...]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as err:
        if err.errno in (errno.EOPNOTSUPP, errno.EPERM):
            return ()
        raise
    keep = sorted(n for n in names if keep_xattr(n))
    return tuple((n, os.getxattr(path, n, follow_symlinks=False)) for n in keep)


def diff_entries(upper: str, *, userxattr: bool = True) -> Iterator[Entry]:
    """The layer entries for an overlay upper dir: overlay whiteouts become OCI ``.wh.`` files.

    ``userxattr`` says how the overlay was mounted, so which xattr marks an opaque directory:
    an overlay mounted *without* it copies a lower directory's ``user.overlay.opaque`` up like
    any other xattr, and that copy must not be read as "opaque" (tested)."""
    prefix = wh.overlay_xattr_prefix(userxattr)
    links: dict[tuple[int, int], str] = {}
    for e in walk_tree(upper):  # without recursion: a container may nest folders 5,000 deep
        rel, st, path = e.rel, e.st, e.path
        uid, gid, mtime = st.st_uid, st.st_gid, int(st.st_mtime)
        mode = stat.S_IMODE(st.st_mode)
        if wh.is_whiteout(st):
            name = wh.whiteout_entry(rel)
            yield Entry(name, tarfile.REGTYPE, 0o644, uid, gid, mtime, data=b"")
        elif stat.S_ISDIR(st.st_mode):
            if _has_xattr(path, prefix + "redirect"):
                raise LayerError(f"cannot commit /{rel}: a renamed lower directory (redirect_dir)")
            yield Entry(rel, tarfile.DIRTYPE, mode, uid, gid, mtime, xattrs=_file_xattrs(path))
            if wh.is_opaque(path, userxattr):
                name = wh.opaque_entry(rel)
                yield Entry(name, tarfile.REGTYPE, 0o644, uid, gid, mtime, data=b"")
        elif stat.S_ISREG(st.st_mode):
            if _has_xattr(path, prefix + "metacopy"):
                raise LayerError(f"cannot commit /{rel}: a metadata-only copy-up (metacopy=on)")
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in links:
                yield Entry(rel, tarfile.LNKTYPE, mode, uid, gid, mtime, linkname=links[key])
                continue
            links[key] = rel
            xattrs = _file_xattrs(path)
            yield Entry(
                rel,
                tarfile.REGTYPE,
                mode,
                uid,
                gid,
                mtime,
                source=path,
                size=st.st_size,
                xattrs=xattrs,
            )
        elif stat.S_ISLNK(st.st_mode):
            target = os.readlink(path)
            yield Entry(rel, tarfile.SYMTYPE, mode, uid, gid, mtime, linkname=target)
        elif stat.S_ISFIFO(st.st_mode):
            yield Entry(rel, tarfile.FIFOTYPE, mode, uid, gid, mtime)
        elif stat.S_ISSOCK(st.st_mode):
            continue  # tar cannot hold a socket; it belonged to a process anyway
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            # as docker commits one (the container could not open it: its root is nodev)
            kind = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
            yield Entry(rel, kind, mode, uid, gid, mtime, rdev=st.st_rdev)


def _has_xattr(path: str, name: str) -> bool:
    try:
        os.getxattr(path, name, follow_symlinks=False)
        return True
    except OSError:
        return False


def write_layer(upper: str, out: Writable, *, userxattr: bool = True) -> TarStats:
    """Write the overlay upper dir ``upper`` to ``out`` as an OCI layer tar."""
    return write_tar(diff_entries(upper, userxattr=userxattr), out)
