"""Small file-system helpers every layer shares: tree walks and rm -rf that work at any depth,
atomic replacement.

Kept here once (the runtime's state, the image store, volumes and overlay all use them) so the
rules they encode (rename(2) is atomic for readers; overlayfs leaves ``work/work`` mode 000) are
written down in one place.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any


@dataclass(frozen=True)
class TreeEntry:
    """One thing below a walked folder. ``dir_fd`` is its folder, open only until the walk
    goes on: use it (or :attr:`path`) before asking for the next entry."""

    rel: str  # "a/b/c", relative to the top
    name: str
    st: os.stat_result  # lstat(2)
    dir_fd: int
    top: str

    @property
    def path(self) -> str:
        """A path to it that works now: the plain one, or one through ``/proc/self/fd`` when
        the plain one is longer than the kernel takes (PATH_MAX, ENAMETOOLONG)."""
        plain = os.path.join(self.top, self.rel)
        if len(os.fsencode(plain)) < _PATH_MAX:
            return plain
        return f"/proc/self/fd/{self.dir_fd}/{self.name}"


_PATH_MAX = 4000  # 4096 in linux/limits.h, less a margin for what callers append
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_dir(name: str, dir_fd: int | None) -> int:
    """Open a folder without following a symlink; make it readable first if we cannot
    (overlayfs leaves ``work/work`` mode 000)."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except PermissionError:
        # chmod(2) through an O_PATH fd: never a symlink's target (fchmodat cannot refuse one)
        flags = os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC
        ref = os.open(name, flags, dir_fd=dir_fd)
        try:
            os.chmod(f"/proc/self/fd/{ref}", stat.S_IRWXU)
        finally:
            os.close(ref)
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)


def _up(fd: int, parent: os.stat_result) -> int:
    """The folder above ``fd``, checked to be the one we came down from: a tree renamed
    meanwhile must not send the walk somewhere else."""
    up = os.open("..", _DIR_FLAGS, dir_fd=fd)
    st = os.fstat(up)
    if (st.st_dev, st.st_ino) != (parent.st_dev, parent.st_ino):
        os.close(up)
        raise OSError(errno.ESTALE, "folder moved during the walk", "..")
    return up


def walk_tree(top: str, *, skip_denied: bool = False) -> Iterator[TreeEntry]:
    """Everything below ``top``: sorted, parents first, symlinks not followed. A folder we
    may not read raises PermissionError, or is not entered with ``skip_denied`` (as os.walk
    skips it); nothing's mode is changed.

    Without recursion and with one folder open at a time, so a tree of any depth works (a
    layer of 5,000 nested folders; paths longer than PATH_MAX): each folder is entered by
    openat(2) from its parent and left by ``..``, checked against the parent's inode. os.walk
    and shutil.rmtree recurse once per level in Python 3.11 (RecursionError at ~1,000)."""
    fd = os.open(top, _DIR_FLAGS)
    # per level: (the folder's lstat, its relative path, its names not yet visited)
    stack: list[tuple[os.stat_result, str, list[str]]] = []
    try:
        stack.append((os.fstat(fd), "", sorted(os.listdir(fd), reverse=True)))
        while stack:
            _, rel, names = stack[-1]
            if not names:
                stack.pop()
                if stack:
                    up = _up(fd, stack[-1][0])
                    os.close(fd)
                    fd = up
                continue
            name = names.pop()
            try:
                st = os.lstat(name, dir_fd=fd)
            except FileNotFoundError:
                continue  # removed since the folder was listed
            except PermissionError:
                if skip_denied:
                    continue
                raise
            sub = f"{rel}/{name}" if rel else name
            yield TreeEntry(sub, name, st, fd, top)
            if stat.S_ISDIR(st.st_mode):
                try:
                    # Readable but not searchable (mode 0444): listable, but neither its
                    # entries nor ".." could be reached from it (path_resolution(7)).
                    if not os.access(name, os.R_OK | os.X_OK, dir_fd=fd):
                        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), sub)
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except PermissionError:
                    if skip_denied:
                        continue
                    raise
                except (FileNotFoundError, NotADirectoryError):
                    continue  # removed or replaced since it was yielded
                except OSError as err:
                    if err.errno != errno.ELOOP:
                        raise
                    continue  # replaced by a symlink since it was yielded: not followed
                os.close(fd)
                fd = child
                stack.append((os.fstat(fd), sub, sorted(os.listdir(fd), reverse=True)))
    finally:
        os.close(fd)


def tree_size(top: str) -> int:
    """Bytes of the files below ``top`` (apparent sizes, as ``du -sb`` without folders);
    0 if it is gone. Things that vanish meanwhile count 0."""
    total = 0
    try:
        for e in walk_tree(top, skip_denied=True):
            if not stat.S_ISDIR(e.st.st_mode):
                total += e.st.st_size
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError as err:
        if err.errno != errno.ESTALE:
            raise
        # moved during the walk (a staging folder published): the bytes seen so far
    return total


def _unlink(name: str, fd: int) -> None:
    try:
        os.unlink(name, dir_fd=fd)
    except PermissionError:  # a folder we may not write to (made in a user namespace)
        os.chmod(fd, stat.S_IRWXU)
        os.unlink(name, dir_fd=fd)
    except FileNotFoundError:
        pass


def _rmdir(name: str, fd: int) -> None:
    try:
        os.rmdir(name, dir_fd=fd)
    except PermissionError:
        os.chmod(fd, stat.S_IRWXU)
        os.rmdir(name, dir_fd=fd)
    except FileNotFoundError:
        pass


def remove_tree(path: str) -> None:
    """rm -rf, also through folders we cannot read or search: overlayfs leaves ``work/work``
    with mode 000, and files made inside a user namespace may not be writable to us.
    A missing ``path`` is fine; a symlink is removed, never followed.

    As :func:`walk_tree`, without recursion and one folder open at a time: a tree of any
    depth goes (a store that cannot remove a hostile layer is broken for everyone)."""
    try:
        fd = _open_dir(path, None)
    except FileNotFoundError:
        return
    except (NotADirectoryError, OSError) as err:
        if err.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        os.unlink(path)  # a file, or a symlink (O_NOFOLLOW: ELOOP)
        return
    # per level: (the folder's lstat, its name in its parent, its subfolders not yet removed)
    stack: list[tuple[os.stat_result, str, list[str]]] = []
    try:
        stack.append((_removable(fd), "", _clear_files(fd)))
        while stack:
            _here, name, subdirs = stack[-1]
            if subdirs:
                sub = subdirs.pop()
                try:
                    child = _open_dir(sub, fd)
                except (FileNotFoundError, NotADirectoryError):
                    _unlink(sub, fd)  # gone, or no longer a folder (it changed meanwhile)
                    continue
                except OSError as err:
                    if err.errno != errno.ELOOP:
                        raise
                    _unlink(sub, fd)  # now a symlink: removed, not followed
                    continue
                os.close(fd)
                fd = child
                stack.append((_removable(fd), sub, _clear_files(fd)))
                continue
            stack.pop()
            if stack:
                up = _up(fd, stack[-1][0])
                os.close(fd)
                fd = up
                _rmdir(name, fd)
    finally:
        os.close(fd)
    try:
        os.rmdir(path)
    except PermissionError:
        os.chmod(os.path.dirname(os.path.abspath(path)), stat.S_IRWXU)
        os.rmdir(path)
    except FileNotFoundError:
        pass


def _removable(fd: int) -> os.stat_result:
    """The folder's lstat, after making it ours to search and write (it goes anyway): a
    folder of mode 0444 can be listed, but its entries cannot be removed nor ".." reached."""
    st = os.fstat(fd)
    if st.st_mode & stat.S_IRWXU != stat.S_IRWXU:
        with contextlib.suppress(PermissionError):  # not ours: the unlinks will say so
            os.chmod(fd, stat.S_IRWXU)
    return st


def _clear_files(fd: int) -> list[str]:
    """Unlink everything in the folder ``fd`` that is not a folder; return the folders."""
    try:
        entries = list(os.scandir(fd))
    except PermissionError:
        os.chmod(fd, stat.S_IRWXU)
        entries = list(os.scandir(fd))
    subdirs = []
    for e in entries:
        try:
            is_dir = e.is_dir(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if is_dir:
            subdirs.append(e.name)
        else:
            _unlink(e.name, fd)
    return subdirs


def fsync_dir(path: str) -> None:
    """fsync(2) a folder: makes a rename or a new entry in it durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str, data: bytes | str, *, durable: bool = False) -> None:
    """Replace ``path`` atomically: a reader sees the old file or the new one, never a mix
    (rename(2)). ``durable`` also fsyncs the file and its folder, for data that must survive
    a power cut (the image index); runtime state does without, as docker's lives in a tmpfs."""
    tmp = f"{path}.tmp.{os.getpid()}"
    raw = data.encode() if isinstance(data, str) else data
    try:
        with open(tmp, "wb") as f:
            f.write(raw)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:  # a full disk, a refused rename: no temporary stays behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(os.path.dirname(path) or ".")


def write_json(path: str, doc: Any, *, indent: int = 1, durable: bool = False) -> None:
    """:func:`write_atomic` of a JSON document."""
    write_atomic(path, json.dumps(doc, indent=indent) + "\n", durable=durable)


def read_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


def wait_readable(fd: int | IO[bytes], timeout: float | None) -> bool:
    """Whether ``fd`` becomes readable (or hangs up) within ``timeout`` seconds (None: wait).
    poll(2), not select(2): a notebook kernel holds descriptors past select's FD_SETSIZE."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000))))
