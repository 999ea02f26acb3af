"""Staging: what a load, commit or build writes waits beside the store until the image verifies.

A writer puts its new blobs and unpacked layers in ``<images root>/.stage-<pid>-<random>/``
(``blobs/sha256/`` and ``layers/``, on the store's filesystem); reads fall through to the store
for what it already holds. :meth:`Staging.publish` moves what the new image needs into the
store with link(2)/rename(2) (atomic, and never over an entry that appeared meanwhile), fsyncs
the folders, and only then changes the index; if anything fails, what was moved goes back out,
and the staging folder is removed. So a refused or interrupted write leaves the store as it
was, and nothing unreferenced is ever counted by ``system df``.

A staging folder whose process died (SIGKILL, power cut) is removed by the next writer and by
``prune``; its name carries the pid for that (``registry.py``'s ``.pull-<pid>-`` folders too).
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

from pycont.errors import CorruptBlob
from pycont.fsutil import fsync_dir, remove_tree
from pycont.images import layer_sizes
from pycont.images.blobs import BlobStore, check_digest


class StoreFiles(Protocol):
    """What staging (and gc) need of a :class:`pycont.images.store.Store`: a Protocol, so
    that these modules, which the store imports, do not import it back."""

    root: str
    blobs: BlobStore
    layers_dir: str

    def layer_dir(self, diff_id: str) -> str: ...


__all__ = ["STAGING_PREFIXES", "StagedBlobs", "Staging", "StoreFiles", "remove_stale", "stale"]

STAGE_PREFIX = ".stage-"
STAGING_PREFIXES = (STAGE_PREFIX, ".pull-")  # ours, and registry.py's pulls
T = TypeVar("T")


def _pid_of(name: str) -> int | None:
    """The pid in ``.stage-<pid>-<random>`` (or ``.pull-…``); None for any other name."""
    if not name.startswith(STAGING_PREFIXES):
        return None
    pid = name.split("-")[1]
    return int(pid) if pid.isdigit() else None


def stale(images_root: str) -> list[str]:
    """The staging folders under ``images_root`` whose process is gone."""
    try:
        names = sorted(os.listdir(images_root))
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        pid = _pid_of(name)
        if pid is not None and not os.path.exists(f"/proc/{pid}"):
            out.append(os.path.join(images_root, name))
    return out


def remove_stale(images_root: str) -> list[str]:
    """Remove the staging folders of dead processes: theirs to lose. Returns their paths."""
    gone = stale(images_root)
    for path in gone:
        remove_tree(path)
    return gone


class StagedBlobs(BlobStore):
    """The staging's ``blobs/sha256``: writes land here; reads find the store's blobs too."""

    def __init__(self, staging_dir: str, store: BlobStore) -> None:
        super().__init__(staging_dir)
        self.store = store

    def staged(self, digest: str) -> bool:
        return os.path.isfile(os.path.join(self.dir, check_digest(digest)))

    def path(self, digest: str) -> str:
        return super().path(digest) if self.staged(digest) else self.store.path(digest)

    def exists(self, digest: str) -> bool:
        return self.staged(digest) or self.store.exists(digest)


class Staging:
    """One writer's staging folder in the store ``store``. Make it with ``Store.stage()``,
    which holds the store's ``writing()`` lock for its whole life (so the garbage collector
    never removes a store blob it relies on) and removes the folder at the end."""

    def __init__(self, store: StoreFiles) -> None:
        self.store = store
        self.dir = tempfile.mkdtemp(prefix=f"{STAGE_PREFIX}{os.getpid()}-", dir=store.root)
        self.blobs = StagedBlobs(self.dir, store.blobs)
        os.makedirs(self.blobs.dir)
        self.layers_dir = os.path.join(self.dir, "layers")
        os.mkdir(self.layers_dir, 0o700)  # as the store's: set-user-ID programs inside
        self.sizes: dict[str, int] = {}  # diff_id -> uncompressed size of a layer unpacked here

    def layer_dir(self, diff_id: str) -> str:
        """Where layer ``diff_id`` is: the store's folder if it has it, else the staging's."""
        stored = self.store.layer_dir(diff_id)
        if os.path.isdir(stored):
            return stored
        return os.path.join(self.layers_dir, check_digest(diff_id))

    def publish(self, blobs: Iterable[str], diff_ids: Iterable[str], then: Callable[[], T]) -> T:
        """Move the staged ``blobs`` and unpacked ``diff_ids`` the new image needs into the
        store, make that durable, then run ``then`` (the index change) and return its result.
        On any failure, what was moved is taken out again and the error goes on.

        Staged things not named here (an archive's other members) are dropped with the
        staging. A needed blob neither staged nor in the store is an error: nothing that an
        index entry names may be missing."""
        store = self.store
        moved_blobs: list[str] = []
        moved_layers: list[str] = []
        recorded: list[str] = []
        try:
            for digest in dict.fromkeys(blobs):
                if self.blobs.staged(digest):
                    try:  # link(2) never replaces: EEXIST if another writer brought it
                        os.link(self.blobs.path(digest), store.blobs.path(digest))
                    except FileExistsError:
                        continue
                    moved_blobs.append(digest)
                elif not store.blobs.exists(digest):
                    raise CorruptBlob(
                        f"blob {digest} left the store while this image was written "
                        "(rmi, prune?): try again"
                    )
            for diff_id in dict.fromkeys(diff_ids):
                src = os.path.join(self.layers_dir, check_digest(diff_id))
                dest = store.layer_dir(diff_id)
                if not os.path.isdir(src) or os.path.isdir(dest):
                    continue
                try:
                    os.rename(src, dest)
                except OSError as err:  # another writer unpacked it first: theirs is the same
                    if err.errno in (errno.EEXIST, errno.ENOTEMPTY):
                        continue
                    raise
                moved_layers.append(dest)
                if diff_id in self.sizes:
                    layer_sizes.record(store.root, diff_id, self.sizes[diff_id])
                    recorded.append(diff_id)
            # The new names on disk before index.json names them (rename(2) is durable only
            # once its folder is fsync'ed).
            if moved_blobs:
                fsync_dir(store.blobs.dir)
            if moved_layers:
                fsync_dir(store.layers_dir)
            return then()
        except BaseException:
            # What this writer brought in goes again: the store is as it was. (Another writer
            # that found one of these in the store in the same instant would say it is gone.)
            for digest in moved_blobs:
                with contextlib.suppress(OSError):
                    os.unlink(store.blobs.path(digest))
            for path in moved_layers:
                remove_tree(path)
            for diff_id in recorded:
                layer_sizes.forget(store.root, diff_id)
            raise

    def discard(self) -> None:
        remove_tree(self.dir)
