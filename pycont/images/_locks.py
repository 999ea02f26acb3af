"""File locks (flock(2)) that a process may take again while it holds them.

The image store has two locks: ``index.lock`` (exclusive, around every read-modify-write of
index.json) and ``gc.lock`` (shared by everything that writes blobs or unpacks layers,
exclusive for garbage collection, so a blob written but not yet referenced is never collected).
Always take gc.lock before index.lock. flock locks belong to an open file, so a second open in
the same process would deadlock against the first: one lock object per path is shared.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator

_locks: dict[str, _FileLock] = {}
_registry = threading.Lock()


class _FileLock:
    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1
        self.depth = 0
        self.exclusive = False
        self.thread_lock = threading.RLock()  # threads of one process take turns

    @contextlib.contextmanager
    def hold(self, exclusive: bool) -> Iterator[None]:
        with self.thread_lock:
            if self.depth:
                if exclusive and not self.exclusive:
                    raise RuntimeError(f"{self.path}: exclusive lock wanted while shared is held")
                self.depth += 1
                try:
                    yield
                finally:
                    self.depth -= 1
                return
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
                self.exclusive, self.depth = exclusive, 1
                try:
                    yield
                finally:
                    self.depth = 0
            finally:
                os.close(self.fd)  # closing the last fd of the open file releases the flock
                self.fd = -1


def file_lock(path: str, exclusive: bool = True) -> contextlib.AbstractContextManager[None]:
    """``with file_lock(path): ...``: flock(2) on ``path``, re-entrant within this process."""
    path = os.path.abspath(path)
    with _registry:
        lock = _locks.get(path)
        if lock is None:
            lock = _locks[path] = _FileLock(path)
    return lock.hold(exclusive)
