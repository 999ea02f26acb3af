"""A stored layer blob unpacked into a folder, checked against its diff_id on the way.

A layer is listed twice in an image: by the digest of its blob (plain or gzip, as it
travelled) in the manifest, and by the digest of its uncompressed tar, its diff_id, in the
config (image-spec, config.md). Both are checked while the tar streams into a temporary
folder (:func:`pycont.images.layers.unpack_layer`), which becomes the layer only if they match.
The tar's length is counted on the way: the layer's size (:mod:`pycont.images.layer_sizes`).
"""

from __future__ import annotations

import gzip
import hashlib
from typing import IO, Any, cast

from pycont.errors import CorruptBlob, LayerError
from pycont.images import oci
from pycont.images.blobs import BlobStore, Readable
from pycont.images.layers import LayerStats, unpack_layer

__all__ = ["unpack_blob"]


class _Hashing:
    """A reader that hashes and counts what passes through."""

    def __init__(self, inner: Readable) -> None:
        self.inner, self.hash, self.count = inner, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self.inner.read(n)
        self.hash.update(data)
        self.count += len(data)
        return data


def unpack_blob(
    blobs: BlobStore, desc: dict[str, Any], diff_id: str, dest: str
) -> tuple[LayerStats | None, int]:
    """Unpack the layer blob ``desc`` names into ``dest`` (atomically). Returns what it held
    (None when another process made ``dest`` first) and the uncompressed size. LayerError for
    an unsafe entry, a layer past the limits (:mod:`pycont.images.limits`, counted on the
    uncompressed stream) or an unknown media type; CorruptBlob when a digest does not match."""
    media = desc.get("mediaType", oci.LAYER)
    if media not in oci.LAYER_TYPES:
        raise LayerError(f"layer {desc['digest']}: unsupported media type {media}")
    with blobs.open(desc["digest"], desc.get("size")) as blob:
        stream: Readable = blob
        if media.endswith("gzip"):
            stream = gzip.GzipFile(fileobj=cast(IO[bytes], blob), mode="rb")
        hashing = _Hashing(stream)

        def check() -> None:
            while hashing.read(1 << 20):
                pass
            blob.verify()
            actual = "sha256:" + hashing.hash.hexdigest()
            if actual != diff_id:
                raise CorruptBlob(
                    f"layer {desc['digest']}: its content hashes to {actual}, "
                    f"the image config says {diff_id}"
                )

        stats = unpack_layer(hashing, dest, what=f"layer {desc['digest']}", check=check)
    return stats, hashing.count
