"""OverlayFS: one directory tree made of read-only layers, with a writable layer on top.

A lookup in ``merged`` finds the topmost layer that has the name; writing to a lower file first
copies it up into ``upper`` ("copy-up"); deleting one leaves a whiteout in ``upper``
(Documentation/filesystems/overlayfs.rst). The image's layers are never modified, which is why
many containers can share them, and why ``upper`` alone is what a container changed: what
``pycont diff`` lists and ``pycont commit`` turns into a new layer. Where overlay cannot mount,
:class:`CopyStack` copies the layers into one directory instead (docker's ``vfs`` driver).
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple, Protocol

from pycont import kernel as _kernel
from pycont.errors import UsageError
from pycont.fsutil import remove_tree
from pycont.images import whiteouts as wh
from pycont.kernel import MNT_DETACH, Kernel

__all__ = ["Change", "CopyStack", "RootStack", "Stack", "changes", "mount_options", "stack_for"]

# mount(2) copies at most one page of option data (copy_mount_options: PAGE_SIZE, the last byte
# being the terminating NUL): about 40 lowerdirs of pycont's length.
MAX_OPTIONS = os.sysconf("SC_PAGE_SIZE") - 1


class Change(NamedTuple):
    """One line of ``docker diff``: A added, C changed, D deleted."""

    kind: str
    path: str

    def __str__(self) -> str:
        return f"{self.kind} {self.path}"


class RootStack(Protocol):
    """What the runtime needs from a layered root: the two drivers below."""

    driver: ClassVar[str]
    merged: str

    def mount(self, kernel: Kernel | None = None) -> None: ...

    def unmount(self, kernel: Kernel | None = None) -> None: ...

    def changes(self) -> list[Change]: ...


def _escape(path: str) -> str:
    r"""A path as overlay's option parser reads it back: ':' separates lowerdirs and ',' the
    options, so both are escaped with a backslash in a name (overlayfs.rst on lowerdir; the
    kernel's ovl_next_opt skips '\,'), and a backslash escapes itself (ovl_unescape)."""
    for c in "\\,:":
        path = path.replace(c, "\\" + c)
    return path


def mount_options(
    lowers: Sequence[str],
    upper: str | None = None,
    work: str | None = None,
    *,
    userxattr: bool = False,
) -> str:
    """The data argument of mount(2) for an overlay: ``lowerdir=`` (top first), ``upperdir=``,
    ``workdir=`` and ``userxattr``, every path escaped. The only place pycont builds it.

    ``userxattr``: overlayfs in a user namespace cannot use trusted.* xattrs; it then keeps its
    metadata in user.overlay.* (overlayfs.rst, Linux >= 5.11)."""
    if not lowers:
        raise UsageError("build overlay mount options: an overlay needs at least one lowerdir")
    opts = "lowerdir=" + ":".join(_escape(p) for p in lowers)
    if upper is not None:
        if work is None:
            raise UsageError(f"build overlay mount options: upperdir {upper} needs a workdir")
        opts += f",upperdir={_escape(upper)},workdir={_escape(work)}"
    if userxattr:
        opts += ",userxattr"
    if len(opts) > MAX_OPTIONS:
        raise UsageError(
            f"build overlay mount options: they are {len(opts)} bytes, mount(2) takes "
            f"{MAX_OPTIONS} (one page): {len(lowers)} layers are too many for paths this long"
        )
    return opts


@dataclass(frozen=True)
class Stack:
    """An overlay mount: ``lowers`` (top first, as in lowerdir=), ``upper``, ``work``, ``merged``.

    ``userxattr``: keep overlay's metadata in ``user.overlay.*`` (needed when mounting inside a
    user namespace, which pycont's containers do by default)."""

    lowers: tuple[str, ...]
    upper: str | None
    work: str | None
    merged: str
    userxattr: bool = False
    driver: ClassVar[str] = "overlay"

    def options(self) -> str:
        """The mount(2) data for this stack: :func:`mount_options`."""
        return mount_options(self.lowers, self.upper, self.work, userxattr=self.userxattr)

    def prepare(self) -> None:
        """Create upper, work and merged (workdir must be empty and on upper's filesystem)."""
        for d in (self.upper, self.work, self.merged):
            if d is not None:
                os.makedirs(d, mode=0o755, exist_ok=True)

    def mount(self, kernel: Kernel | None = None) -> None:
        k = kernel or _kernel.current()
        k.mount("pycont-overlay", self.merged, "overlay", 0, self.options())

    def unmount(self, kernel: Kernel | None = None) -> None:
        k = kernel or _kernel.current()
        k.umount2(self.merged, MNT_DETACH)

    def changes(self) -> list[Change]:
        if self.upper is None:
            return []
        return changes(self.upper, self.lowers, userxattr=self.userxattr)


# -- what changed -------------------------------------------------------------------------------
def _walk(top: str, rel: str = "") -> Iterator[tuple[str, os.stat_result]]:
    """:func:`pycont.images.diff.walk`, imported when a tree is compared or copied: it comes
    with the tar code, which a container's init (it only mounts) need not load."""
    from pycont.images.diff import walk

    return walk(top, rel)


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def lookup(lowers: Sequence[str], rel: str, userxattr: bool = True) -> list[str]:
    """Where ``rel`` comes from in the lower layers, as overlay resolves it: ``[]`` if it is
    not there (absent, whited out, or hidden by an opaque directory), one path for a file,
    the merged directories (top first) for a directory."""
    parts = [p for p in rel.split("/") if p]
    found = list(lowers)  # what makes up the current prefix, top first
    for i, part in enumerate(parts):
        below: list[str] = []
        for parent in found:
            path = os.path.join(parent, part)
            st = _lstat(path)
            if st is None:
                continue
            if wh.is_whiteout(st):
                break  # deleted here: the layers below do not count
            if not stat.S_ISDIR(st.st_mode):
                if not below:  # a file above every directory of that name: the file wins
                    below = [path]
                break  # whatever is above hides the layers below
            below.append(path)
            if wh.is_opaque(path, userxattr):
                break
        found = below
        if not found:
            return []
        if i < len(parts) - 1 and not stat.S_ISDIR(os.lstat(found[0]).st_mode):
            return []  # a file where the path needs a directory
    return found


def _visible_names(dirs: Sequence[str]) -> set[str]:
    """The names a merged directory shows from these lower directories (top first)."""
    seen: set[str] = set()
    visible: set[str] = set()
    for d in dirs:
        for name in os.listdir(d):
            if name in seen:
                continue
            seen.add(name)
            st = _lstat(os.path.join(d, name))
            if st is not None and not wh.is_whiteout(st):
                visible.add(name)
    return visible


def changes(upper: str, lowers: Sequence[str] = (), *, userxattr: bool = True) -> list[Change]:
    """``docker diff`` from an overlay upper dir: a whiteout is D, a name the lowers also have
    is C (directories that hold changes are C), anything else is A. Sorted by path."""
    out: list[Change] = []
    for rel, st in _walk(upper):
        path = "/" + rel
        if wh.is_whiteout(st):
            out.append(Change("D", path))
            continue
        below = lookup(lowers, rel, userxattr)
        out.append(Change("C" if below else "A", path))
        if below and stat.S_ISDIR(st.st_mode) and wh.is_opaque(os.path.join(upper, rel), userxattr):
            # Deleted, then made again: whatever the lower directory held is gone.
            dirs = [d for d in below if stat.S_ISDIR(os.lstat(d).st_mode)]
            kept = set(os.listdir(os.path.join(upper, rel)))
            out += [Change("D", f"{path}/{n}") for n in sorted(_visible_names(dirs) - kept)]
    return sorted(out, key=lambda c: c.path)


# -- the copy fallback --------------------------------------------------------------------------
@dataclass(frozen=True)
class CopyStack:
    """The layers copied, bottom first, into one directory: docker's ``vfs`` driver.

    Slow and heavy (every container gets a full copy) but it needs no mount at all; used
    where overlay cannot mount, and labelled so: ``driver`` says which one ran."""

    lowers: tuple[str, ...]
    merged: str
    userxattr: bool = True  # which opaque xattr the layers are read with
    driver: ClassVar[str] = "vfs (copy of the layers; overlay could not be mounted)"

    def options(self) -> str:
        return ""

    def mount(self, kernel: Kernel | None = None) -> None:
        """Make ``merged`` (if it is not there yet): the merged view, as plain files."""
        if os.path.isdir(self.merged) and os.listdir(self.merged):
            return  # already copied: a restarted container keeps its files, as with vfs
        os.makedirs(self.merged, mode=0o755, exist_ok=True)
        for layer in reversed(self.lowers):
            _copy_layer(layer, self.merged, self.userxattr)

    def unmount(self, kernel: Kernel | None = None) -> None:
        """Nothing is mounted; the copy stays until :meth:`remove` (it is the container's)."""

    def remove(self) -> None:
        remove_tree(self.merged)

    def changes(self) -> list[Change]:
        out: list[Change] = []
        _compare(self.merged, self.lowers, "", self.userxattr, out)
        return sorted(out, key=lambda c: c.path)


def _copy_layer(src_root: str, dst_root: str, userxattr: bool) -> None:
    """Apply one unpacked layer onto ``dst_root``: its whiteouts delete, its files replace."""
    same_owner = os.geteuid() == 0
    dir_times: list[tuple[str, os.stat_result]] = []
    for rel, st in _walk(src_root):
        src, dst = os.path.join(src_root, rel), os.path.join(dst_root, rel)
        old = _lstat(dst)
        is_dir = stat.S_ISDIR(st.st_mode)
        if old is not None and (wh.is_whiteout(st) or not (is_dir and stat.S_ISDIR(old.st_mode))):
            remove_tree(dst)  # parents come first in the walk, so dst's parent is a real dir
        if wh.is_whiteout(st):
            continue
        if is_dir:
            if old is None or not stat.S_ISDIR(old.st_mode):
                os.mkdir(dst, 0o700)
            elif wh.is_opaque(src, userxattr):
                for name in os.listdir(dst):  # the lower layers' content is hidden
                    remove_tree(os.path.join(dst, name))
            dir_times.append((dst, st))
        elif stat.S_ISREG(st.st_mode):
            shutil.copy2(src, dst, follow_symlinks=False)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), dst)
        elif stat.S_ISFIFO(st.st_mode):
            os.mkfifo(dst, 0o600)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            try:  # a layer's device node; the root is mounted nodev (pycont.rootfs)
                os.mknod(dst, stat.S_IFMT(st.st_mode) | 0o600, st.st_rdev)
            except PermissionError:  # mknod(2) without CAP_MKNOD: skipped, as on unpacking
                continue
        else:
            continue
        if same_owner:
            os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(dst, stat.S_IMODE(st.st_mode))
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    for dst, st in reversed(dir_times):  # last: adding entries changed the directories' times
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def _differs(path: str, a: os.stat_result, low: str, b: os.stat_result) -> bool:
    if stat.S_IFMT(a.st_mode) != stat.S_IFMT(b.st_mode):
        return True
    if (a.st_mode, a.st_uid, a.st_gid) != (b.st_mode, b.st_uid, b.st_gid):
        return True
    if stat.S_ISLNK(a.st_mode):
        return os.readlink(path) != os.readlink(low)
    if stat.S_ISREG(a.st_mode):  # rsync's quick check: size and modification time
        return (a.st_size, a.st_mtime_ns) != (b.st_size, b.st_mtime_ns)
    return stat.S_ISDIR(a.st_mode) and a.st_mtime_ns != b.st_mtime_ns


@dataclass
class _Level:
    """A directory being compared: its changes so far, its entries still to look at, and
    (below the top) its own lstat and where the lowers have it, to decide its C when done."""

    rel: str
    names: list[str]  # next one last
    changed: bool = False
    st: os.stat_result | None = None
    low: tuple[str, os.stat_result] | None = None


def _compare(merged: str, lowers: Sequence[str], rel: str, ux: bool, out: list[Change]) -> bool:
    """Add the changes below ``rel`` (a directory in both trees); True if there were any.
    An explicit stack, not recursion: a container may nest directories thousands deep."""

    def enter(rel: str) -> _Level:
        here = os.path.join(merged, rel) if rel else merged
        dirs = list(lowers) if not rel else lookup(lowers, rel, ux)
        names = sorted(os.listdir(here))
        level = _Level(rel, names[::-1])
        for name in sorted(_visible_names([d for d in dirs if os.path.isdir(d)]) - set(names)):
            out.append(Change("D", f"/{rel}/{name}" if rel else f"/{name}"))
            level.changed = True
        return level

    stack = [enter(rel)]
    while True:
        level = stack[-1]
        if not level.names:  # done with this directory: a C if anything below changed
            stack.pop()
            if not stack:
                return level.changed
            assert level.st is not None and level.low is not None
            path, low_st = level.low
            if level.changed or _differs(os.path.join(merged, level.rel), level.st, path, low_st):
                out.append(Change("C", "/" + level.rel))
                stack[-1].changed = True
            continue
        name = level.names.pop()
        r = f"{level.rel}/{name}" if level.rel else name
        st = os.lstat(os.path.join(merged, r))
        below = lookup(lowers, r, ux)
        if not below:
            out.append(Change("A", "/" + r))
            if stat.S_ISDIR(st.st_mode):
                out.extend(Change("A", f"/{r}/{sub}") for sub, _ in _walk(merged, r))
            level.changed = True
            continue
        low_st = os.lstat(below[0])
        if stat.S_ISDIR(st.st_mode) and stat.S_ISDIR(low_st.st_mode):
            child = enter(r)
            child.st, child.low = st, (below[0], low_st)
            stack.append(child)
        elif _differs(os.path.join(merged, r), st, below[0], low_st):
            out.append(Change("C", "/" + r))
            level.changed = True


def stack_for(
    lowers: Sequence[str], container_dir: str, *, userxattr: bool, overlay: bool = True
) -> Stack | CopyStack:
    """The root of a container in ``container_dir``: an overlay, or the copy fallback."""
    merged = os.path.join(container_dir, "merged")
    if overlay:
        upper, work = os.path.join(container_dir, "upper"), os.path.join(container_dir, "work")
        return Stack(tuple(lowers), upper, work, merged, userxattr)
    return CopyStack(tuple(lowers), merged, userxattr)
