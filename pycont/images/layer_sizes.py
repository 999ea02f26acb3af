"""How big a layer is: the length of its uncompressed tar, counted once and kept beside it.

A layer's size is the same number whatever brought it (a plain tar from a docker-archive, gzip
from a registry or an oci-archive): the bytes of the uncompressed tar, the stream its diff_id
hashes (image-spec config.md, ``rootfs.diff_ids``). The store counts them while unpacking
(the tar passes through a hashing reader anyway) and keeps the count in
``<images root>/layer-sizes/<hex>``, named like the layer's folder; ``prune`` drops the count
with the layer.

Why the tar's length and not the unpacked files' bytes (docker's overlay2 driver sums those):
it costs nothing to count, it is exact and the same on every host and filesystem, it is what
podman reports (containers/storage's ``UncompressedSize``) and the size of the layer's file in
a docker-archive. It is a little larger than overlay2's number: 512 bytes of tar header per
file. ``docker images``, ``system df`` and ``history`` all use it.
"""

from __future__ import annotations

import contextlib
import gzip
import os
from typing import IO, Any, cast

from pycont.fsutil import write_atomic
from pycont.images.blobs import BlobStore

__all__ = ["SIZES_DIR", "forget", "is_compressed", "keep_only", "measure", "read", "record"]

SIZES_DIR = "layer-sizes"
_CHUNK = 1 << 20


def _path(root: str, diff_id: str) -> str:
    algo, _, hexdigest = diff_id.partition(":")
    if algo != "sha256" or not hexdigest or not hexdigest.isalnum():
        raise ValueError(f"layer size: not a sha256 diff_id: {diff_id!r}")
    return os.path.join(root, SIZES_DIR, hexdigest)


def is_compressed(desc: dict[str, Any]) -> bool:
    """Whether a layer descriptor's blob is gzip (its size is not the layer's)."""
    return str(desc.get("mediaType", "")).endswith("gzip")


def read(root: str, diff_id: str) -> int | None:
    """The recorded size of the layer ``diff_id``; None if none is recorded."""
    try:
        with open(_path(root, diff_id), encoding="ascii") as f:
            return int(f.read().strip())
    except (FileNotFoundError, ValueError):
        return None  # never recorded, or cut short by a crash: measured again


def record(root: str, diff_id: str, size: int) -> None:
    """Keep the size of the layer ``diff_id`` (atomically: a reader sees all or nothing).
    A cache: when it cannot be written (a read-only store, a full disk, a prune racing a
    first count), the size is counted again next time."""
    path = _path(root, diff_id)
    with contextlib.suppress(OSError):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_atomic(path, f"{size}\n")


def measure(blobs: BlobStore, desc: dict[str, Any]) -> int:
    """Count a layer blob's uncompressed bytes: for a layer unpacked before sizes were
    recorded. A plain tar's blob is the tar: its size is in the descriptor."""
    if not is_compressed(desc):
        return int(desc["size"])
    total = 0
    with blobs.open(desc["digest"], desc.get("size")) as blob:
        stream = gzip.GzipFile(fileobj=cast(IO[bytes], blob), mode="rb")
        while chunk := stream.read(_CHUNK):
            total += len(chunk)
        blob.verify()  # a corrupt blob's count must not be kept
    return total


def forget(root: str, diff_id: str) -> None:
    """Drop the size of one layer (a staged write that was undone)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_path(root, diff_id))


def keep_only(root: str, keep: set[str]) -> None:
    """Drop the sizes of layers not in ``keep`` (diff_ids): ``prune`` removed them."""
    folder = os.path.join(root, SIZES_DIR)
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        if f"sha256:{name}" not in keep:  # also a write_atomic leftover: "<hex>.tmp.<pid>"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, name))
