"""Garbage collection of the image store: what is referenced stays, the rest goes.

Referenced are the blobs and unpacked layers that an index entry (its manifest, config and
layers) or a build cache entry names. Everything else is garbage: the blobs of a removed image,
the temporaries and staging folders of a writer that died. Collecting runs under the store's gc
lock held exclusively, so no writer is between writing a blob and naming it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Protocol

from pycont.errors import CorruptBlob
from pycont.fsutil import remove_tree, tree_size
from pycont.images import buildcache, layer_sizes, staging


class Store(staging.StoreFiles, Protocol):
    """What collecting needs of a :class:`pycont.images.store.Store` (not imported: it
    imports this module)."""

    def document(self, digest: str) -> dict[str, Any]: ...


__all__ = ["References", "collect", "dir_size", "references"]


def dir_size(path: str) -> int:
    """Bytes of the files below ``path`` (apparent sizes, as ``du -sb`` without directories),
    at any depth (:func:`pycont.fsutil.tree_size`)."""
    return tree_size(path)


@dataclass
class References:
    """What the store must keep, and who needs it (for messages: ``image X``, ``build cache``)."""

    blobs: dict[str, str] = field(default_factory=dict)  # digest -> who names it
    sizes: dict[str, int] = field(default_factory=dict)  # digest -> the descriptor's size
    layers: dict[str, str] = field(default_factory=dict)  # diff_id -> who needs it
    layer_blobs: dict[str, dict[str, Any]] = field(default_factory=dict)  # diff_id -> descriptor
    complete: bool = True  # False: an image's manifest or config could not be read


def references(store: Store, entries: list[dict[str, Any]]) -> References:
    """Everything ``entries`` (index.json's) and the build cache reference. Reads each manifest
    and config (CorruptBlob when one is missing or damaged)."""
    refs = References()
    for c in buildcache.entries(store.root):
        who = f"build cache entry {c.key[:12]}"
        diff_ids = c.config.get("rootfs", {}).get("diff_ids") or ()
        for desc, diff_id in zip(c.layers, diff_ids, strict=False):
            refs.blobs.setdefault(str(desc["digest"]), who)
            refs.sizes.setdefault(str(desc["digest"]), int(desc.get("size", -1)))
            refs.layers.setdefault(str(diff_id), who)
            refs.layer_blobs.setdefault(str(diff_id), desc)
    for e in entries:
        who = f"image {(e.get('annotations') or {}).get(_REF_NAME) or e['digest']}"
        refs.blobs[e["digest"]], refs.sizes[e["digest"]] = who, int(e.get("size", -1))
        try:
            man = store.document(e["digest"])
            cfg = man["config"]
            refs.blobs[cfg["digest"]], refs.sizes[cfg["digest"]] = who, int(cfg.get("size", -1))
            for desc in man.get("layers") or ():  # kept even when the config is unreadable
                refs.blobs[desc["digest"]], refs.sizes[desc["digest"]] = who, int(desc["size"])
            diff_ids = store.document(cfg["digest"])["rootfs"]["diff_ids"]
        except (CorruptBlob, KeyError, TypeError, ValueError, OSError):
            # A broken image (a blob gone): what else it needs is unknown, so collect keeps
            # every blob and layer until it is removed; it must not make rmi fail for others.
            refs.complete = False
            continue
        for desc, diff_id in zip(man.get("layers") or (), diff_ids, strict=False):
            refs.layers[diff_id] = who
            refs.layer_blobs[diff_id] = desc
    return refs


_REF_NAME = "org.opencontainers.image.ref.name"


def collect(store: Store, entries: list[dict[str, Any]]) -> tuple[int, list[str]]:
    """Delete what ``entries`` and the build cache do not reference, the temporaries of
    crashed writers and the staging folders of dead ones. Call with the gc lock held
    exclusively. Returns (bytes freed, digests of the blobs deleted)."""
    refs = references(store, entries)
    freed, deleted = 0, []
    for digest in store.blobs.digests() if refs.complete else ():
        if digest not in refs.blobs:
            freed += store.blobs.size(digest)
            os.unlink(store.blobs.path(digest))
            deleted.append(digest)
    for tmp in store.blobs.temporaries():  # left by a writer that crashed: none runs now
        freed += os.path.getsize(tmp)
        os.unlink(tmp)
    if os.path.isdir(store.layers_dir):
        for name in sorted(os.listdir(store.layers_dir)):
            orphan = refs.complete and f"sha256:{name}" not in refs.layers
            if name.startswith(".tmp-") or orphan:
                path = os.path.join(store.layers_dir, name)
                freed += dir_size(path)
                remove_tree(path)
    for path in staging.stale(store.root):
        freed += dir_size(path)
        remove_tree(path)
    if refs.complete:
        layer_sizes.keep_only(store.root, set(refs.layers))
    return freed, deleted
