"""Layer archives: a tar of what one step changed, unpacked without trusting it.

An image layer is a tar archive of a filesystem diff (OCI image-spec, layer.md). Unpacking one
naively is a classic container escape: a name like ``../../etc/cron.d/x``, a symlink
``etc -> /etc`` followed by ``etc/shadow``, a hard link to ``/etc/passwd``. So nothing here
uses ``tarfile.extractall``: every entry is created relative to a directory file descriptor
whose every path component was opened with ``O_NOFOLLOW`` (open(2)), so no write can follow a
symlink or a ``..`` out of the layer root. A symlink *entry* may point anywhere (``/bin/sh ->
/bin/busybox`` is normal: it is resolved inside the container, later); what matters is that
we never write *through* one.

The other direction, a container's upper dir written out as a layer, is
:mod:`pycont.images.diff` (``write_layer`` and ``diff_entries`` are importable from here too).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from typing import IO, cast

from pycont.errors import LayerError
from pycont.fsutil import remove_tree
from pycont.images import whiteouts as wh
from pycont.images._layerstats import LayerStats, layer_warnings
from pycont.images._tarstream import EntryCheck, StrictHeader, show
from pycont.images._tarwrite import XATTR_PAX, Entry, keep_xattr, write_tar
from pycont.images.blobs import Readable
from pycont.images.diff import diff_entries, write_layer
from pycont.images.limits import LayerLimits

__all__ = [
    "Entry",
    "LayerError",
    "LayerLimits",
    "LayerStats",
    "Readable",
    "apply_layer",
    "diff_entries",
    "layer_warnings",
    "unpack_layer",
    "write_layer",
    "write_tar",
]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


# -- unpacking --------------------------------------------------------------------------------
def _split(name: str, what: str, entry: str) -> list[str]:
    """The path components of a tar name; refuse anything that could leave the root."""
    if name.startswith("/"):
        raise LayerError(f"{what}: refusing entry {entry!r}: absolute path {name!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise LayerError(f"{what}: refusing entry {entry!r}: {name!r} leaves the layer root")
    if any("\0" in p for p in parts):
        raise LayerError(f"{what}: refusing entry {entry!r}: NUL byte in the name")
    return parts


class _Unpacker:
    """Creates one tar member at a time below ``root_fd``, never through a symlink."""

    def __init__(self, root_fd: int, what: str) -> None:
        self.root_fd = root_fd
        self.what = what
        self.same_owner = os.geteuid() == 0  # as tar(1): only root keeps the archive's owners
        self.dirs: list[tuple[list[str], int, int]] = []  # (parts, mode, mtime_ns): set last
        self.stats = LayerStats()

    def refuse(self, entry: str, why: str) -> LayerError:
        if not entry:  # the archive as a whole
            return LayerError(f"{self.what}: refused: {why}")
        return LayerError(f"{self.what}: refusing entry {show(entry)}: {why}")

    def open_dir(self, parts: list[str], entry: str, create: bool) -> int:
        """An fd on root/parts, opened component by component with O_NOFOLLOW."""
        fd = os.dup(self.root_fd)
        try:
            for i, part in enumerate(parts):
                try:
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        missing = "/".join(parts[: i + 1])
                        raise self.refuse(entry, f"{missing!r} is not in the layer") from None
                    os.mkdir(part, 0o755, dir_fd=fd)  # tar(1) also makes missing parents
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as err:
                    if err.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    prefix = "/".join(parts[: i + 1])
                    if stat.S_ISLNK(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode):
                        why = f"it goes through the symlink {prefix!r}"
                        raise self.refuse(entry, why) from None
                    raise self.refuse(entry, f"{prefix!r} is not a directory") from None
                os.close(fd)
                fd = nfd
            return fd
        except BaseException:
            os.close(fd)
            raise

    def clear(self, parent: int, base: str, keep_dir: bool = False) -> bool:
        """Remove what is at ``base`` (a later entry replaces an earlier one, as in tar).

        Returns True when an existing directory was kept."""
        try:
            st = os.stat(base, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            shutil.rmtree(base, dir_fd=parent)
        else:
            os.unlink(base, dir_fd=parent)
        return False

    def add(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = _split(m.name, self.what, m.name)
        self.stats.entries += 1
        if not parts:  # "./": the layer root itself
            if not m.isdir():
                raise self.refuse(m.name, "the layer root must be a directory")
            self.meta_fd(self.root_fd, m)
            self.dirs.append(([], m.mode & 0o7777, _ns(m.mtime)))
            return
        *dirs, base = parts
        kind, target = wh.oci_marker(base)
        if kind == "skip":
            return
        parent = self.open_dir(dirs, m.name, create=True)
        try:
            if kind == "opaque":
                wh.mark_opaque(parent)
                self.stats.opaque += 1
            elif kind == "whiteout" or (m.ischr() and m.devmajor == 0 and m.devminor == 0):
                target = target if kind == "whiteout" else base
                if target in ("", ".", ".."):
                    raise self.refuse(m.name, "a whiteout must name a file")
                self.clear(parent, target)
                wh.make_whiteout(parent, target)
                self.stats.whiteouts += 1
            elif m.isdir():
                self.add_dir(parent, base, parts, m)
            elif m.isreg():
                self.add_file(parent, base, tar, m)
            elif m.issym():
                self.clear(parent, base)
                os.symlink(m.linkname, base, dir_fd=parent)
                if self.same_owner:
                    os.chown(base, m.uid, m.gid, dir_fd=parent, follow_symlinks=False)
                os.utime(base, ns=(_ns(m.mtime),) * 2, dir_fd=parent, follow_symlinks=False)
                self.stats.symlinks += 1
            elif m.islnk():
                self.add_hardlink(parent, base, parts, m)
            elif m.isfifo():
                self.clear(parent, base)
                os.mkfifo(base, 0o600, dir_fd=parent)
                self.meta_path(parent, base, m)
            elif m.ischr() or m.isblk():
                self.add_device(parent, base, "/".join(parts), m)
            else:
                raise self.refuse(m.name, f"unsupported tar entry type {m.type!r}")
        finally:
            os.close(parent)

    def add_dir(self, parent: int, base: str, parts: list[str], m: tarfile.TarInfo) -> None:
        if not self.clear(parent, base, keep_dir=True):
            # 0700 while unpacking; the archive's mode is set at the end, so a read-only
            # directory does not stop its own entries from being written (unprivileged).
            os.mkdir(base, 0o700, dir_fd=parent)
        fd = os.open(base, _DIR_FLAGS, dir_fd=parent)
        try:
            self.meta_fd(fd, m, mode=False)
        finally:
            os.close(fd)
        self.dirs.append((parts, m.mode & 0o7777, _ns(m.mtime)))
        self.stats.dirs += 1

    def add_file(self, parent: int, base: str, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        self.clear(parent, base)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(base, flags, 0o600, dir_fd=parent)
        try:
            src = tar.extractfile(m)
            if src is not None:
                with os.fdopen(os.dup(fd), "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            self.meta_fd(fd, m)
        finally:
            os.close(fd)
        self.stats.files += 1
        self.stats.size += m.size

    def add_device(self, parent: int, base: str, name: str, m: tarfile.TarInfo) -> None:
        """A character or block device node, as docker and podman unpack one as root. The
        node is made with mknod(2) relative to ``parent`` (opened with O_NOFOLLOW all the way
        down) and is never opened: opening a device has effects. A container cannot use it
        anyway: its root is mounted nodev (pycont.rootfs)."""
        kind, letter = (stat.S_IFCHR, "c") if m.ischr() else (stat.S_IFBLK, "b")
        self.clear(parent, base)
        try:
            os.mknod(base, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=parent)
        except PermissionError:
            # EPERM: no CAP_MKNOD, or a user namespace (mknod(2)); podman and umoci skip the
            # node there too, and so does a rootless docker.
            self.stats.skipped_devices.append(f"{name} ({letter} {m.devmajor}:{m.devminor})")
            return
        self.meta_path(parent, base, m)
        self.stats.devices += 1

    def add_hardlink(self, parent: int, base: str, parts: list[str], m: tarfile.TarInfo) -> None:
        target = _split(m.linkname, self.what, m.name)
        if not target:
            raise self.refuse(m.name, "a hard link to the layer root")
        if target == parts:
            return
        tparent = self.open_dir(target[:-1], m.name, create=False)
        tname = "/".join(target)
        try:
            try:
                st = os.stat(target[-1], dir_fd=tparent, follow_symlinks=False)
            except FileNotFoundError:
                skipped = [d for d in self.stats.skipped_devices if d.startswith(tname + " (")]
                if skipped:  # a link to a node mknod(2) refused: skipped with it
                    self.stats.skipped_devices.append("/".join(parts) + skipped[0][len(tname) :])
                    return
                raise self.refuse(
                    m.name, f"hard link target {m.linkname!r} is not in the layer"
                ) from None
            if stat.S_ISDIR(st.st_mode):
                raise self.refuse(m.name, f"hard link to the directory {m.linkname!r}")
            self.clear(parent, base)
            # linkat(2) without AT_SYMLINK_FOLLOW links the entry itself, never what it points to.
            os.link(target[-1], base, src_dir_fd=tparent, dst_dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(tparent)
        self.stats.hardlinks += 1

    def meta_fd(self, fd: int, m: tarfile.TarInfo, mode: bool = True) -> None:
        """Owner (numeric, from the archive), mode, xattrs and mtime of an open file."""
        if self.same_owner:
            os.fchown(fd, m.uid, m.gid)
        if mode:  # after chown(2), which clears the set-user-ID bit
            os.fchmod(fd, m.mode & 0o7777)
        self.xattrs(m, lambda name, value: os.setxattr(fd, name, value))
        if mode:
            os.utime(fd, ns=(_ns(m.mtime),) * 2)

    def meta_path(self, parent: int, base: str, m: tarfile.TarInfo) -> None:
        """Owner, mode, xattrs and mtime of a fifo or device node, by name: opening one could
        block (a fifo) or act on the device."""
        if self.same_owner:
            os.chown(base, m.uid, m.gid, dir_fd=parent, follow_symlinks=False)
        os.chmod(base, m.mode & 0o7777, dir_fd=parent)  # just made by us: not a symlink
        # setxattr(2) has no *at form: the parent's fd names the directory (proc(5)).
        path = f"/proc/self/fd/{parent}/{base}"
        self.xattrs(m, lambda name, value: os.setxattr(path, name, value, follow_symlinks=False))
        os.utime(base, ns=(_ns(m.mtime),) * 2, dir_fd=parent, follow_symlinks=False)

    def xattrs(self, m: tarfile.TarInfo, setxattr: Callable[[str, bytes], None]) -> None:
        """The entry's SCHILY.xattr.* PAX records that the store keeps, applied."""
        for key, value in m.pax_headers.items():
            if not key.startswith(XATTR_PAX):
                continue
            name = key[len(XATTR_PAX) :]
            if not keep_xattr(name):
                self.stats.skipped_xattrs.append(f"{m.name.removeprefix('./')}: {name}")
                continue
            try:
                setxattr(name, value.encode("utf-8", "surrogateescape"))
            except OSError as err:
                if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EACCES):
                    raise
                self.stats.skipped_xattrs.append(
                    f"{m.name.removeprefix('./')}: {name} ({err.strerror})"
                )

    def finish(self) -> None:
        # Directory modes and times last (adding entries changes a directory's mtime), the
        # deepest first so that a parent's mode cannot stop us from reaching its children.
        for parts, mode, mtime in sorted(self.dirs, key=lambda d: -len(d[0])):
            try:
                fd = self.open_dir(parts, "/".join(parts), create=False)
            except LayerError:
                continue  # replaced by a later entry
            try:
                os.fchmod(fd, mode)
                os.utime(fd, ns=(mtime, mtime))
            finally:
                os.close(fd)


def _ns(mtime: float) -> int:
    return int(mtime * 1_000_000_000)  # EntryCheck has bounded it: 0 to year 2262


def apply_layer(
    fileobj: Readable, dest: str, *, what: str = "layer", limits: LayerLimits | None = None
) -> LayerStats:
    """Unpack the tar (plain or compressed) read from ``fileobj`` into the directory ``dest``.

    OCI whiteouts become overlay whiteouts (:mod:`pycont.images.whiteouts`). Raises
    LayerError, naming the entry, for anything unsafe: absolute names, ``..``, writing through
    a symlink, hard links out of the layer, anything past ``limits`` (default: the
    :mod:`pycont.images.limits`, the size from the environment), data after the end of the
    archive. Device nodes are made where mknod(2) is allowed and listed in
    ``skipped_devices`` where it is not (rootless)."""
    limits = limits or LayerLimits.current()
    root_fd = os.open(dest, _DIR_FLAGS)
    try:
        unpacker = _Unpacker(root_fd, what)
        checker = EntryCheck(limits, unpacker.refuse)
        name = ""
        try:
            stream = cast(IO[bytes], fileobj)
            with tarfile.open(fileobj=stream, mode="r|*", tarinfo=StrictHeader) as tar:
                while (member := tar.next()) is not None:
                    getattr(tar, "members").clear()  # noqa: B009 (else a stream keeps all)
                    name = member.name
                    checker.check(member)
                    unpacker.add(tar, member)
                name = ""
                checker.trailer(tar)
            unpacker.finish()
        except tarfile.TarError as err:
            raise LayerError(f"{what}: not a valid tar archive: {err}") from err
        except (ValueError, OverflowError) as err:  # e.g. a NUL byte in a symlink target
            at = f" {show(name)}" if name else ""
            raise LayerError(f"{what}: invalid entry{at}: {err}") from err
        except (EOFError, zlib.error) as err:  # a compressed stream cut or corrupt
            raise LayerError(f"{what}: truncated or corrupt compressed data: {err}") from err
        except RecursionError:
            raise LayerError(f"{what}: entry {show(name)}: nested too deep") from None
        except OSError as err:  # ENOSPC, EDQUOT, EIO: the store's disk, named with the entry
            at = f" entry {show(name)}" if name else ""
            raise LayerError(f"{what}: cannot unpack{at}: {err.strerror or err}") from err
        return unpacker.stats
    finally:
        os.close(root_fd)


def unpack_layer(
    fileobj: Readable,
    dest: str,
    *,
    what: str = "layer",
    check: Callable[[], None] | None = None,
    limits: LayerLimits | None = None,
) -> LayerStats | None:
    """Unpack into ``dest`` atomically: into a temporary sibling, renamed when complete.

    ``check`` runs after the archive is read and before the rename (the store verifies the
    blob's digest there), so a corrupt or refused layer leaves nothing behind. Returns None
    when another process made ``dest`` first (theirs is the same content)."""
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    try:
        os.chmod(tmp, 0o755)
        stats = apply_layer(fileobj, tmp, what=what, limits=limits)
        if check is not None:
            check()
        try:
            os.rename(tmp, dest)
        except OSError as err:
            if err.errno in (errno.EEXIST, errno.ENOTEMPTY) and os.path.isdir(dest):
                return None
            raise
        return stats
    finally:
        if os.path.lexists(tmp):
            remove_tree(tmp)
