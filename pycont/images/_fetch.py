"""One blob from a registry into a blob store, checked as it arrives: size, digest, diff_id.

A transfer that ends early (the registry went away, the connection was reset) is reported as
such, with how far it got; one that arrived whole but hashes to something else is corrupt:
retrying helps the first, not the second.
"""

from __future__ import annotations

import hashlib
import http.client
import zlib
from typing import Any

from pycont.errors import RegistryError
from pycont.images.blobs import BlobStore
from pycont.images.distribution import corrupt_message, cut_off_message
from pycont.images.progress import Progress

__all__ = ["fetch_blob"]

_CHUNK = 1 << 20


class _DiffId:
    """The sha256 of a layer's uncompressed tar (its diff_id), computed as the bytes arrive."""

    def __init__(self, gzipped: bool) -> None:
        self.hash = hashlib.sha256()
        self.z = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None

    def update(self, data: bytes) -> None:
        while self.z is not None and data:
            self.hash.update(self.z.decompress(data))
            data = b""
            if self.z.eof:  # gzip allows several members one after the other (RFC 1952)
                data = self.z.unused_data
                if not data.strip(b"\0"):  # zero padding after the last member
                    break
                self.z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        if self.z is None:
            self.hash.update(data)

    def digest(self) -> str:
        if self.z is not None:
            self.hash.update(self.z.flush())
        return "sha256:" + self.hash.hexdigest()


def fetch_blob(
    t: Any, desc: dict[str, Any], into: BlobStore, progress: Progress, diff_id: str | None
) -> None:
    """Download one blob into ``into``, checking its size, digest and (a layer) diff_id.
    A transfer that ends early is told apart from one that arrived whole but wrong."""
    digest, size = desc["digest"], desc.get("size")
    layer = _DiffId(str(desc.get("mediaType", "")).endswith("gzip")) if diff_id else None
    got = 0
    with t.blob(digest) as stream, into.writer() as w:
        while True:
            try:
                chunk = stream.read(_CHUNK)
            except (OSError, http.client.HTTPException) as err:
                # IncompleteRead, a reset, a timeout: the bytes stopped coming
                if size is None:
                    raise
                raise RegistryError(cut_off_message(digest, got, int(size))) from err
            if not chunk:
                break
            got += len(chunk)
            if size is not None and got > size:
                raise RegistryError(f"blob {digest}: more than the {size} bytes it should have")
            w.write(chunk)
            if layer is not None:
                layer.update(chunk)
            if diff_id:
                progress.advance(digest, len(chunk))
        # http.client returns b"" when the peer closes before Content-Length: a short blob
        if size is not None and got < size:
            raise RegistryError(cut_off_message(digest, got, int(size)))
    if w.digest != digest:  # whole, but not what was asked for (the staging folder goes)
        raise RegistryError(corrupt_message(digest, w.digest, got))
    if layer is not None and layer.digest() != diff_id:
        raise RegistryError(
            f"layer {digest}: its content unpacks to {layer.digest()}, the config says {diff_id}"
        )
