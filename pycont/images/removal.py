"""Removing images (``rmi``, ``image prune``): the index first, then the blobs.

A removal changes two things: index.json (which names which image) and the blobs and layer
folders nothing names any more. The index is rewritten (atomically, durably) *before* anything
is deleted, so a removal killed half-way leaves at worst unreferenced blobs, orphans that the
next prune or ``system check --repair`` deletes; never an index naming a blob that is gone,
which would break ``images`` and ``rmi`` for every image. Both run under the store's gc lock
held exclusively: no writer is between writing a blob and naming it meanwhile.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any, Protocol

from pycont import failpoints
from pycont.errors import ImageInUse
from pycont.images import gc, index
from pycont.images.reference import Reference

InUse = Callable[[str], list[str]]  # image id -> names of the containers that use it


class Store(gc.Store, Protocol):
    """What removing needs of a :class:`pycont.images.store.Store` (not imported: it
    imports this module)."""

    def gc_lock(self) -> contextlib.AbstractContextManager[None]: ...
    def _index(self) -> contextlib.AbstractContextManager[list[dict[str, Any]]]: ...
    def _entries(self) -> list[dict[str, Any]]: ...
    def _find(
        self, ref: str, entries: list[dict[str, Any]]
    ) -> tuple[Reference | None, list[dict[str, Any]]]: ...
    def _image_id(self, entry: dict[str, Any]) -> str: ...
    def _users(self, image_id: str, in_use: InUse | None) -> list[str]: ...


__all__ = ["prune", "remove"]


def remove(store: Store, ref: str, force: bool = False, in_use: InUse | None = None) -> list[str]:
    """``docker rmi`` (:meth:`pycont.images.store.Store.remove`). An image whose manifest or
    config is missing or damaged can be removed too (its id is then its manifest digest)."""
    lines: list[str] = []
    with store.gc_lock():
        with store._index() as entries:
            found, hits = store._find(ref, entries)
            image_id = store._image_id(hits[0])
            desc = {k: hits[0][k] for k in ("mediaType", "digest", "size")}
            if found is not None:
                targets = hits
                others = [e for e in entries if e not in targets]
                if any(store._image_id(e) == image_id for e in others):  # other names keep it
                    entries.remove(hits[0])
                    return [f"Untagged: {found}"]
            else:
                targets = [e for e in entries if store._image_id(e) == image_id]
                names = [str(Reference.parse(n)) for n in map(index.ref_name, targets) if n]
                if len(names) > 1 and not force:
                    raise ImageInUse(
                        f"conflict: unable to delete {image_id[7:19]} (must be forced): image is "
                        f"referenced by {', '.join(names)}"
                    )
            users = store._users(image_id, in_use)
            what = str(found) if found else image_id[7:19]
            if users and not force:
                raise ImageInUse(
                    f'conflict: unable to remove image "{what}" (must force): in use by '
                    f"container{'s' if len(users) > 1 else ''} {', '.join(users)}"
                )
            for e in targets:
                entries.remove(e)
                if index.ref_name(e):
                    lines.append(f"Untagged: {Reference.parse(index.ref_name(e) or '')}")
            if users:  # forced: the containers keep their layers; the image stays, untagged
                entries.append(desc)
                return lines
            lines.append(f"Deleted: {image_id}")
        # index.json no longer names the image (written when the block above ended)
        failpoints.hit("rmi.index-written")
        _, deleted = gc.collect(store, store._entries())
        failpoints.hit("rmi.blobs-removed")
    lines += [f"Deleted: {d}" for d in deleted if d != image_id and d != desc["digest"]]
    return lines


def prune(
    store: Store, in_use: InUse | None = None, dangling: bool = True, build_cache: bool = False
) -> int:
    """``image prune`` / ``system prune`` (:meth:`pycont.images.store.Store.prune`)."""
    if not os.path.isdir(store.root):
        return 0
    with store.gc_lock():
        if build_cache:
            from pycont.images import buildcache as cache

            cache.clear(store.root)
        if dangling:
            with store._index() as entries:
                for e in [e for e in entries if not index.ref_name(e)]:
                    if not store._users(store._image_id(e), in_use):
                        entries.remove(e)
            failpoints.hit("prune.index-written")
        freed, _ = gc.collect(store, store._entries())
    return freed
