"""An image's layers as a VM's root: the merged view a container sees, as one cpio archive.

A container gets its root from overlayfs, which merges the image's layer folders at every
lookup. A VM's kernel cannot reach the host's folders, so the merge is done once, here, with
overlay's own rules (Documentation/filesystems/overlayfs.rst): the topmost entry of a name wins,
a whiteout (a 0/0 char device) hides the name below, an opaque folder hides the lower folders'
content, a non-folder hides a folder of that name below it. The result is written as a newc
cpio archive that the guest kernel unpacks into its RAM (rootfs), cached by image id under
``<store>/cache/vm``: a second VM of the same image reuses it.

Hard links inside the image stay hard links (one inode, the data once: pycont.vm.initramfs's
HardLink). The image's device nodes are kept as nodes. What newc cannot carry is lost: xattrs,
so file capabilities (security.capability) too.
"""

from __future__ import annotations

import collections
import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pycont.images import whiteouts as wh
from pycont.vm.errors import VMError
from pycont.vm.initramfs import CpioWriter, HardLink

if TYPE_CHECKING:
    from pycont.images import Image
    from pycont.images.store import Store

__all__ = ["Entry", "cache_path", "find_command", "flatten", "guest_root", "resolve", "tree"]

SYMLINK_HOPS = 40  # path_resolution(7): Linux gives up after 40 symlinks

_KINDS = {
    stat.S_IFDIR: "dir",
    stat.S_IFREG: "file",
    stat.S_IFLNK: "symlink",
    stat.S_IFCHR: "char",
    stat.S_IFBLK: "block",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
}

Sources = list[tuple[str, os.stat_result]]  # where a merged name comes from, top first


@dataclass(frozen=True)
class Entry:
    """One name of the merged view, with what a cpio header needs."""

    path: str  # relative, no leading "/": "bin/sh"
    kind: str  # dir, file, symlink, char, block, fifo, socket
    mode: int  # st_mode: the type and the permission bits
    uid: int
    gid: int
    mtime: int
    size: int  # a regular file's length, else 0
    target: str  # a symlink's target, else ""
    source: str  # the file in a layer folder that holds it (read with lstat only)
    st: os.stat_result = field(repr=False, compare=False)


def _opaque(path: str) -> bool:
    """Opaque for overlay: pycont marks a layer's opaque folder with user.overlay.opaque and,
    when root, trusted.overlay.opaque as well (pycont.images.whiteouts.mark_opaque); either
    counts, so a rootless store (user.* only) reads the same as a root one."""
    return wh.is_opaque(path, True) or wh.is_opaque(path, False)


def _sources(dirs: Sequence[str], name: str) -> Sources:
    """Where ``name`` of the merged folder made of ``dirs`` (top first) comes from: one entry
    for a non-folder, the folders that merge (top first) for a folder, [] if none shows.
    The same walk as overlayfs's ovl_lookup and pycont.overlay.lookup."""
    found: Sources = []
    for d in dirs:
        path = os.path.join(d, name)
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if wh.is_whiteout(st):
            break  # deleted in this layer: nothing below counts
        if not stat.S_ISDIR(st.st_mode):
            if not found:  # a non-folder on top: it wins, and hides any folder below
                found = [(path, st)]
            break  # a non-folder below a folder ends the merge there
        found.append((path, st))
        if _opaque(path):
            break
    return found


def _roots(layers: Sequence[str]) -> list[str]:
    return [d for d in layers if os.path.isdir(d)]


def _entry(rel: str, path: str, st: os.stat_result) -> Entry:
    kind = _KINDS.get(stat.S_IFMT(st.st_mode), "other")
    return Entry(
        path=rel,
        kind=kind,
        mode=st.st_mode,
        uid=st.st_uid,
        gid=st.st_gid,
        mtime=int(st.st_mtime),
        size=st.st_size if kind == "file" else 0,
        target=os.readlink(path) if kind == "symlink" else "",
        source=path,
        st=st,
    )


def flatten(layers: Sequence[str]) -> Iterator[Entry]:
    """The merged view of ``layers`` (top first, overlay's lowerdir order) without the root
    itself: parents before children, names sorted, never following a symlink of the image."""

    def walk(rel: str, dirs: list[str]) -> Iterator[Entry]:
        names: set[str] = set()
        for d in dirs:
            names.update(os.listdir(d))
        for name in sorted(names):
            found = _sources(dirs, name)
            if not found:
                continue  # whited out, or absent from the folders that count
            child = f"{rel}/{name}" if rel else name
            yield _entry(child, *found[0])
            if stat.S_ISDIR(found[0][1].st_mode):
                yield from walk(child, [p for p, _ in found])

    yield from walk("", _roots(layers))


def tree(image: Image) -> dict[str, tuple[str, int, int, int, int, str]]:
    """path -> (kind, permission bits, uid, gid, size of a file, symlink target)."""
    return {
        e.path: (e.kind, stat.S_IMODE(e.mode), e.uid, e.gid, e.size, e.target)
        for e in flatten(image.layers)
    }


def cache_path(image: Image, store: Store | None = None) -> Path:
    """Where the guest root of ``image`` is cached: <store root>/cache/vm/root-<id hex>.cpio."""
    from pycont.images.store import Store

    algo, _, hexid = image.id.partition(":")
    if algo != "sha256" or len(hexid) != 64 or not all(c in "0123456789abcdef" for c in hexid):
        raise VMError(
            f"guest root of image {image.name!r}: its id {image.id!r} is not sha256:<64 hex> "
            "(the cache is named by it)"
        )
    return Path((store or Store()).root) / "cache" / "vm" / f"root-{hexid}.cpio"


def guest_root(image: Image, store: Store | None = None) -> Path:
    """The image's merged files as a cpio archive (nothing of pycont's own), made once per
    image id; a second call returns the cached file."""
    out = cache_path(image, store)
    if out.exists():
        return out
    roots = _roots(image.layers)
    if not roots:
        raise VMError(f"guest root of image {image.name!r}: none of its layer folders exists")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            _write(CpioWriter(f), image.layers, roots[0])
            os.fsync(f.fileno())
        # rename(2) is atomic: the final name holds a whole archive or nothing; a concurrent
        # build of the same image replaces it with an equal one.
        os.replace(tmp, out)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise VMError(
                f"guest root of image {image.name!r}: {err.strerror or err} ({err.filename})"
            ) from err
        raise
    return out


def _write(cpio: CpioWriter, layers: Sequence[str], top: str) -> None:
    """The merged view into ``cpio``: "/" first (the top layer's mode, owner, mtime)."""
    # Hard links: how many names of each inode the merged view shows (a whiteout may hide
    # some), so that every name gets that nlink and the last one the data.
    names = collections.Counter(
        (e.st.st_dev, e.st.st_ino)
        for e in flatten(layers)
        if e.kind == "file" and e.st.st_nlink > 1
    )
    cpio.entry(".", os.lstat(top))
    links: dict[tuple[int, int], HardLink] = {}
    for e in flatten(layers):
        key = (e.st.st_dev, e.st.st_ino)
        link = links.get(key)
        if link is None and names.get(key, 0) > 1:
            link = links[key] = cpio.hardlink(names[key])
        cpio.entry(e.path, e.st, e.source, link=link)
    cpio.close()


def resolve(image: Image, path: str, workdir: str = "/") -> tuple[str, os.stat_result] | None:
    """Where ``path`` of the image leads (relative to ``workdir``), following its symlinks
    inside the image: an absolute target starts again at the image's root, as it will in the
    guest, and ".." stops at the root. The in-image path and its lstat, or None."""
    layers = image.layers
    if not path.startswith("/"):
        path = f"{workdir.rstrip('/')}/{path}"
    parts = collections.deque(p for p in path.split("/") if p)
    done: Sources = []  # the components resolved so far (name, lstat): folders but the last
    dirs = _roots(layers)  # the layer folders that make up the merged folder "done"
    hops = 0
    while parts:
        part = parts.popleft()
        if part in (".", ".."):
            if done and not stat.S_ISDIR(done[-1][1].st_mode):
                return None  # ENOTDIR: "file/."
            if part == ".." and done:
                done.pop()
                dirs = _roots(layers)
                for name, _ in done:  # the parent's folders: walk down again from the root
                    dirs = [s for s, _ in _sources(dirs, name)]
            continue
        found = _sources(dirs, part)
        if not found:
            return None  # absent, or a component before it was not a folder (dirs == [])
        source, st = found[0]
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > SYMLINK_HOPS:
                return None  # ELOOP
            target = os.readlink(source)
            if target.startswith("/"):
                done, dirs = [], _roots(layers)
            parts.extendleft(reversed([p for p in target.split("/") if p]))
            continue
        done.append((part, st))
        dirs = [s for s, s_st in found if stat.S_ISDIR(s_st.st_mode)]
    if not done:
        return None
    return "/" + "/".join(name for name, _ in done), done[-1][1]


def find_command(image: Image, argv0: str, path_env: str, workdir: str = "/") -> str | None:
    """Where ``argv0`` is in the image, as execvp(3) looks for it: a name with a "/" as it is,
    else in each folder of ``path_env`` (an empty entry is the working folder). The in-image
    path of an executable regular file, or None."""
    if not argv0:
        return None
    dirs = path_env.split(":")
    candidates = [argv0] if "/" in argv0 else [f"{d or '.'}/{argv0}" for d in dirs]
    for cand in candidates:
        hit = resolve(image, cand, workdir)
        if hit and stat.S_ISREG(hit[1].st_mode) and hit[1].st_mode & 0o111:
            return hit[0]
    return None
