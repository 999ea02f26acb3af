"""The build cache (kept with the store, whose garbage collector must know it): which step, on
which parent, already made which layer and config.

A step is reused when its key matches: the key chains the parent step's key with the
instruction after substitution and, for ``COPY``/``ADD``, the content and metadata digest of
its sources (docker's rule; BuildKit's cache keys work the same way). Because every key
includes its parent's, a miss invalidates every later step.

Each entry is one JSON file, ``<store>/build-cache/<key>.json``, holding the whole state after
the step (the image config and the layer descriptors so far): a hit needs nothing else. Entries
are written atomically (a temporary file renamed over), so concurrent builds of the same
Dockerfile at worst write the same entry twice. The store's garbage collector keeps the blobs
and layers that entries reference (:func:`referenced`); ``builder prune`` and ``system prune``
remove the entries first (:func:`clear`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pycont.fsutil import write_json

if TYPE_CHECKING:
    from pycont.images.blobs import BlobStore
    from pycont.images.report import ImageRecord

__all__ = ["CacheEntry", "clear", "entries", "key", "load", "referenced", "save", "usage"]

DIR = "build-cache"


@dataclass(frozen=True)
class CacheEntry:
    key: str
    config: dict[str, Any]  # the OCI image config after the step
    layers: list[dict[str, Any]]  # layer descriptors so far, bottom first

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "config": self.config, "layers": self.layers}


def key(parent: str, *parts: str) -> str:
    """The key of a step on ``parent``: a sha256 over the parent's key and ``parts``."""
    h = hashlib.sha256()
    h.update(json.dumps([parent, *parts], separators=(",", ":")).encode())
    return h.hexdigest()


def _dir(store_root: str) -> str:
    return os.path.join(store_root, DIR)


def load(store_root: str, k: str) -> CacheEntry | None:
    """The entry for key ``k``, or None (absent, or unreadable: a miss, never an error)."""
    try:
        with open(os.path.join(_dir(store_root), f"{k}.json")) as f:
            doc = json.load(f)
        return CacheEntry(k, dict(doc["config"]), list(doc["layers"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(store_root: str, entry: CacheEntry) -> None:
    os.makedirs(_dir(store_root), mode=0o700, exist_ok=True)
    write_json(os.path.join(_dir(store_root), f"{entry.key}.json"), entry.to_json())


def entries(store_root: str) -> list[CacheEntry]:
    out: list[CacheEntry] = []
    folder = _dir(store_root)
    if not os.path.isdir(folder):
        return out
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json") and not name.startswith("."):
            e = load(store_root, name[: -len(".json")])
            if e is not None:
                out.append(e)
    return out


def referenced(store_root: str) -> tuple[set[str], set[str]]:
    """(blob digests, diff_ids) that cache entries need: the garbage collector keeps them."""
    blobs: set[str] = set()
    diff_ids: set[str] = set()
    for e in entries(store_root):
        blobs.update(str(d["digest"]) for d in e.layers)
        diff_ids.update(str(d) for d in e.config.get("rootfs", {}).get("diff_ids") or ())
    return blobs, diff_ids


def clear(store_root: str) -> int:
    """Remove every entry (``builder prune``); returns how many there were. Call with the
    store's gc lock held, then collect: the layers only they referenced go too."""
    folder = _dir(store_root)
    if not os.path.isdir(folder):
        return 0
    n = 0
    for name in os.listdir(folder):
        try:
            os.unlink(os.path.join(folder, name))
            n += name.endswith(".json") and not name.startswith(".")
        except FileNotFoundError:
            continue
    return n


def usage(root: str, blobs: BlobStore, images: Iterable[ImageRecord]) -> tuple[int, int]:
    """How many steps the cache of the store at ``root`` holds, and the bytes of the layer
    blobs only it keeps (not in any of ``images``): ``system df``'s Build Cache row."""
    only, _ = referenced(root)
    for rec in images:
        only -= {d["digest"] for d in rec.manifest.get("layers") or ()}
    size = sum(blobs.size(d) for d in only if os.path.exists(blobs.path(d)))
    return len(entries(root)), size
