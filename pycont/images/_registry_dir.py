"""A folder standing in for a registry: an OCI image layout (image-spec, image-layout.md).

``dir:/srv/images:app:1`` pulls from and pushes to a folder with ``oci-layout``, ``index.json``
and ``blobs/sha256/``: the layout pycont's own store has, and skopeo's ``oci:`` transport
writes. No server, no network: images travel by copying a folder.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

from pycont.errors import RegistryError
from pycont.fsutil import write_atomic
from pycont.images import index, oci
from pycont.images.blobs import BlobStore, Readable, canonical_json
from pycont.images.reference import Reference

__all__ = ["DirRegistry"]

_CHUNK = 1 << 20


class DirRegistry:
    """A folder with an OCI image layout (image-layout.md) standing in for a registry."""

    def __init__(self, path: str, ref: Reference) -> None:
        self.path = os.path.abspath(path)
        self._ref = ref
        self.name = ref.name  # "docker.io/library/busybox": index.json says name:tag
        self.blobs = BlobStore(self.path)
        self.where = f"dir:{self.path}"
        self.sent = 0
        self.resumed = 0
        self.restarted = 0

    def manifest(self, tail: str) -> tuple[bytes, str, str | None]:
        entries = index.read_entries(os.path.join(self.path, "index.json"))
        if tail.startswith("sha256:"):
            found = [e for e in entries if e.get("digest") == tail]
            if not found and self.blobs.exists(tail):  # a platform's manifest under an index
                found = [{"digest": tail}]
        else:
            # pycont names images in full; skopeo and oras write only the tag ("oci:PATH:TAG").
            names = {index.ref_name(e): e for e in entries}
            found = [names[n] for n in (f"{self.name}:{tail}", tail) if n in names][:1]
        if not found:
            raise RegistryError(f"manifest unknown: no {self.name}:{tail} in {self.where}")
        data = self.blobs.read(found[-1]["digest"])
        return data, found[-1].get("mediaType") or oci.media_type(None, data), found[-1]["digest"]

    def has_blob(self, digest: str) -> bool:
        return self.blobs.exists(digest)

    @contextlib.contextmanager
    def blob(self, digest: str) -> Iterator[Readable]:
        try:
            f = open(self.blobs.path(digest), "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise RegistryError(f"blob {digest}: blob unknown in {self.where}") from None
        with f:
            yield f

    def put_blob(self, digest: str, size: int, data: Readable) -> None:
        with self.blobs.writer(expected=digest) as w:
            while chunk := data.read(_CHUNK):
                w.write(chunk)

    def fork(self) -> DirRegistry:
        return DirRegistry(self.path, self._ref)

    def mount(self, digest: str, source: str) -> bool:
        return False  # one folder, one set of blobs: has_blob already said

    def send(
        self, opener: Callable[[], AbstractContextManager[Readable]], expected: str | None = None
    ) -> tuple[str, int]:
        with opener() as stream, self.blobs.writer(expected=expected) as w:
            while chunk := stream.read(_CHUNK):
                w.write(chunk)
        self.sent += w.size
        return w.digest, w.size

    def put_manifest(self, tag: str, data: bytes, media: str) -> str:
        digest = self.blobs.put(data)
        name = f"{self.name}:{tag}"
        layout = os.path.join(self.path, "oci-layout")
        if not os.path.exists(layout):
            write_atomic(layout, canonical_json({"imageLayoutVersion": "1.0.0"}), durable=True)
        # The name moves to the new manifest; unlike the store, a folder keeps no untagged image.
        with index.editing(os.path.join(self.path, "index.json")) as entries:
            entries[:] = [e for e in entries if index.ref_name(e) != name]
            entries.append(oci.descriptor(media, digest, len(data), {oci.REF_NAME: name}))
        return digest

    def close(self) -> None:
        pass
