"""A container's folder appears and disappears at once: built aside and renamed into place,
renamed out of the way and then deleted.

rename(2) of a folder is atomic, so a reader of ``<root>/containers`` sees a whole container or
none, never one without its config or its state, whatever step a SIGKILL stops. Folders being
built live in ``containers/.creating/<id>``, folders being deleted in
``containers/.removing/<id>``: names starting with a dot are not containers, and listing skips
them. Each holds an ``owner`` file (the pid and start time of the process at work), so a
leftover of a crash is told from a job in progress; :mod:`.removal` finishes the leftovers.
"""

from __future__ import annotations

import contextlib
import errno
import os
from dataclasses import dataclass

from pycont import paths, procfs
from pycont.fsutil import remove_tree

__all__ = [
    "CREATING",
    "REMOVING",
    "Leftover",
    "begin_create",
    "begin_remove",
    "finish",
    "leftovers",
    "parse_owner",
    "publish",
]

CREATING = ".creating"
REMOVING = ".removing"
OWNER = "owner"


@dataclass(frozen=True)
class Leftover:
    """A folder half made or half removed: ``kind`` is CREATING or REMOVING."""

    kind: str
    cid: str
    path: str
    owner: tuple[int, int] | None  # (pid, start time) of the process at work, if recorded

    def in_progress(self) -> bool:
        """Its owner still runs: it is a job in progress, not a leftover."""
        return self.owner is not None and procfs.alive(*self.owner)


def parse_owner(text: str) -> tuple[int, int] | None:
    """``"1234 5678\\n"`` -> (1234, 5678): pid and start time (proc(5) stat field 22); None when
    malformed (the owner died while writing it)."""
    fields = text.split()
    if len(fields) != 2 or not all(f.isdigit() for f in fields):
        return None
    pid, start = int(fields[0]), int(fields[1])
    return (pid, start) if pid > 0 else None


def _write_owner(folder: str) -> None:
    me = os.getpid()
    with open(os.path.join(folder, OWNER), "w") as f:
        f.write(f"{me} {procfs.start_time(me)}\n")


def _read_owner(folder: str) -> tuple[int, int] | None:
    try:
        with open(os.path.join(folder, OWNER)) as f:
            return parse_owner(f.read(64))
    except (OSError, UnicodeDecodeError):
        return None


def _aside(kind: str) -> str:
    return os.path.join(paths.containers_dir(), kind)


def begin_create(cid: str) -> str:
    """Make the folder of container ``cid`` aside (``.creating/<id>``), owned by this process;
    returns its path. Call under the store lock."""
    base = _aside(CREATING)
    os.makedirs(base, mode=0o711, exist_ok=True)
    folder = os.path.join(base, cid)
    os.mkdir(folder, 0o711)
    _write_owner(folder)
    return folder


def publish(folder: str, cid: str) -> str:
    """Rename the finished folder into place: from now on the container exists. Returns its
    path. Call under the store lock (names are checked unique under it)."""
    target = os.path.join(paths.containers_dir(), cid)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(folder, OWNER))
    os.rename(folder, target)
    _drop_if_empty(os.path.dirname(folder))
    return target


def begin_remove(cdir: str) -> str:
    """Rename container folder ``cdir`` out of the namespace (``.removing/<id>``), owned by
    this process: from now on the container no longer exists, and its name is free. Returns
    the new path; FileNotFoundError if ``cdir`` is gone."""
    cid = os.path.basename(cdir)
    base = _aside(REMOVING)
    target = os.path.join(base, cid)
    _write_owner(cdir)
    for attempt in range(3):
        os.makedirs(base, mode=0o711, exist_ok=True)
        try:
            os.rename(cdir, target)
            return target
        except FileNotFoundError:
            # ``.removing`` itself went (the last removal dropped it) between the two calls.
            if not os.path.lexists(cdir) or attempt == 2:
                raise
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            # A leftover of a removal of this very id (rename(2): the target is a non-empty
            # folder): delete it first.
            remove_tree(target)
    raise OSError(errno.ENOTEMPTY, f"cannot move {cdir} aside: {target} keeps coming back")


def finish(folder: str) -> None:
    """Delete a folder being made or removed (its kernel objects released: see removal)."""
    remove_tree(folder)
    _drop_if_empty(os.path.dirname(folder))


def _drop_if_empty(base: str) -> None:
    # No ``.creating``/``.removing`` stays behind once empty: the folder lists containers only.
    with contextlib.suppress(OSError):
        os.rmdir(base)


def leftovers() -> list[Leftover]:
    """Every folder half made or half removed, with its owner (live or not)."""
    found = []
    for kind in (CREATING, REMOVING):
        base = _aside(kind)
        try:
            names = sorted(os.listdir(base))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for cid in names:
            path = os.path.join(base, cid)
            found.append(Leftover(kind, cid, path, _read_owner(path)))
    return found


def drop_empty_asides() -> None:
    """Remove ``.creating`` and ``.removing`` when empty (a crash between the rename and this)."""
    for kind in (CREATING, REMOVING):
        _drop_if_empty(_aside(kind))
