"""Small file-system helpers every layer shares: rm -rf that always works, atomic replacement.

Kept here once (the runtime's state, the image store, volumes and overlay all use them) so the
rules they encode (rename(2) is atomic for readers; overlayfs leaves ``work/work`` mode 000) are
written down in one place.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
from typing import Any


def remove_tree(path: str) -> None:
    """rm -rf, also through folders we cannot read or search: overlayfs leaves ``work/work``
    with mode 000, and files made inside a user namespace may not be writable to us.
    A missing ``path`` is fine."""

    def fix(func: Any, p: str, _exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), stat.S_IRWXU)
            if os.path.isdir(p) and not os.path.islink(p):
                os.chmod(p, stat.S_IRWXU)
                shutil.rmtree(p, onerror=fix)
                return
        with contextlib.suppress(FileNotFoundError):
            func(p)

    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, onerror=fix)
    elif os.path.lexists(path):
        os.unlink(path)


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
