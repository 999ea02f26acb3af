"""What the store knows about registries: gzip forms of layers, where blobs are, RepoDigests.

A registry holds layers gzip-compressed; the store often holds them as plain tars (``load``
of a docker-archive, ``commit``). So that a second push need not compress again to learn the
digest, and can ask the registry to *mount* a blob it already has in another repository
(distribution-spec, spec.md "Mounting a blob from another repository"), the store keeps, in
``<images root>/distribution.json`` (written atomically under ``distribution.lock``)::

    "gzip":   {diff_id: {"digest": ..., "size": ...}}     the layer's gzip form, as pushed
    "where":  {blob digest: ["host:port/repository", ...]} repositories known to hold it
    "repo_digests": {image id: ["host:port/repo@sha256:...", ...]}  manifests pushed/pulled

Stale entries are ignored, never trusted: a gzip digest is re-checked when the layer is
compressed again; a blob the registry lost makes the mount answer 202 (then it is uploaded);
:func:`repo_digests` lists only repositories the image still has a name in. ``rmi`` and
``prune`` leave the file alone (it holds a few hundred bytes per image).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

from pycont.format import decimal_size
from pycont.fsutil import write_json
from pycont.images import index, oci
from pycont.images._locks import file_lock
from pycont.images._pgzip import ParallelGzip
from pycont.images.blobs import Readable, canonical_json

__all__ = [
    "GZIP_LEVEL",
    "GzipStream",
    "Metadata",
    "corrupt_message",
    "cut_off_message",
    "docker_manifest",
    "local_layers",
    "repo_digests",
]

# Level 1, not zlib's default 6: on a 526 MB tar of /usr, level 1 took 6.2 s (85 MB/s) for
# 236 MB, level 6 took 19.8 s for 218 MB: 3.2 times the CPU for 8 % fewer bytes, worth it only
# on a link slower than ~1.4 MB/s.
GZIP_LEVEL = 1
_FILE = "distribution.json"


class GzipStream(ParallelGzip):
    """A plain tar read as a deterministic gzip stream, compressed on up to 4 cores
    (:mod:`pycont.images._pgzip`): the header (RFC 1952) has no file name, mtime 0 and a fixed
    OS byte, the blocks have a fixed size and one level is used, so the same layer always gives
    the same bytes and the same digest (with this zlib), whatever the machine. Close it when
    stopping before its end (its threads are joined)."""

    def __init__(self, inner: Readable, workers: int | None = None) -> None:
        super().__init__(inner, GZIP_LEVEL, workers)


def docker_manifest(config: dict[str, Any], layers: list[dict[str, Any]]) -> tuple[bytes, str]:
    """A docker schema2 manifest (image-manifest-2-schema.md) for gzip layers: what docker
    push sends. Returns its bytes (one form: the same image, the same digest) and media type."""
    doc = {
        "schemaVersion": 2,
        "mediaType": oci.DOCKER_MANIFEST,
        "config": oci.descriptor(DOCKER_CONFIG, config["digest"], int(config["size"])),
        "layers": [
            oci.descriptor(oci.DOCKER_LAYER_GZIP, d["digest"], int(d["size"])) for d in layers
        ],
    }
    return canonical_json(doc), oci.DOCKER_MANIFEST


DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
_OCI_LAYER = {
    oci.DOCKER_LAYER: oci.LAYER,
    oci.DOCKER_LAYER_GZIP: oci.LAYER_GZIP,
}


def local_manifest(manifest: dict[str, Any], layers: list[dict[str, Any]]) -> bytes:
    """An OCI manifest for the store: the registry's config, with ``layers`` (some of them
    the store's own blobs for the same diff_ids)."""
    cfg = manifest["config"]
    plain = [
        oci.descriptor(_OCI_LAYER.get(d["mediaType"], d["mediaType"]), d["digest"], d["size"])
        for d in layers
    ]
    return canonical_json(
        oci.manifest(oci.descriptor(oci.CONFIG, cfg["digest"], int(cfg["size"])), plain)
    )


def cut_off_message(digest: str, got: int, size: int) -> str:
    return (
        f"blob {digest}: the connection closed after {decimal_size(got)} of "
        f"{decimal_size(size)} (the registry went away?); pull again to retry"
    )


def corrupt_message(digest: str, actual: str, size: int) -> str:
    return (
        f"blob {digest} is corrupt: all {decimal_size(size)} arrived but they hash to {actual}"
        "; the registry's copy is damaged (pulling again will not help)"
    )


class Metadata:
    """``distribution.json`` of one store (see the module's doc)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.path = os.path.join(root, _FILE)

    def read(self) -> dict[str, Any]:
        try:
            with open(self.path) as f:
                doc = json.load(f)
        except (FileNotFoundError, ValueError):
            doc = {}  # none yet, or damaged: it is only a cache of facts, start again
        for key in ("gzip", "where", "repo_digests"):
            doc.setdefault(key, {})
        return dict(doc)

    @contextlib.contextmanager
    def editing(self) -> Iterator[dict[str, Any]]:
        os.makedirs(self.root, exist_ok=True)
        with file_lock(os.path.join(self.root, "distribution.lock")):
            doc = self.read()
            before = json.dumps(doc, sort_keys=True)
            yield doc
            if json.dumps(doc, sort_keys=True) != before:
                write_json(self.path, doc)

    def gzip_of(self, diff_id: str) -> tuple[str, int] | None:
        got = self.read()["gzip"].get(diff_id)
        return (got["digest"], int(got["size"])) if got else None

    def where(self, digest: str) -> list[str]:
        return list(self.read()["where"].get(digest) or [])

    def record(
        self,
        *,
        gzip: dict[str, tuple[str, int]] | None = None,
        blobs: Sequence[str] = (),
        repository: str = "",
        image_id: str = "",
        repo_digest: str = "",
    ) -> None:
        """Remember gzip forms (diff_id -> (digest, size)), that ``blobs`` are in
        ``repository`` (``host/name``), and that ``image_id`` is ``repo_digest`` there."""
        with self.editing() as doc:
            for diff_id, (digest, size) in (gzip or {}).items():
                doc["gzip"][diff_id] = {"digest": digest, "size": size}
            for b in blobs:
                known = doc["where"].setdefault(b, [])
                if repository and repository not in known:
                    known.append(repository)
            if image_id and repo_digest:
                known = doc["repo_digests"].setdefault(image_id, [])
                name = repo_digest.split("@", 1)[0]
                known[:] = [r for r in known if r.split("@", 1)[0] != name] + [repo_digest]


def _manifests(root: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(index entry, manifest) of every image in the store's index that can be read."""
    from pycont.images.blobs import BlobStore

    blobs = BlobStore(root)
    out = []
    for e in index.read_entries(os.path.join(root, "index.json")):
        with contextlib.suppress(OSError, ValueError, KeyError):
            out.append((e, blobs.read_json(e["digest"])))
    return out


def stored_manifest(root: str, image_id: str) -> tuple[bytes, str, str] | None:
    """(bytes, media type, digest) of a manifest in the store for ``image_id``, if any."""
    from pycont.images.blobs import BlobStore

    for e, man in _manifests(root):
        if man["config"]["digest"] == image_id:
            with contextlib.suppress(OSError, ValueError):
                return BlobStore(root).read(e["digest"]), e["mediaType"], e["digest"]
    return None


def repo_digests(store: Any, image_id: str) -> list[str]:
    """``RepoDigests`` of ``docker image inspect``: ``name@sha256:...`` of every manifest of
    this image pushed or pulled (the registry's digests, not the store's), for the
    repositories the image still has a name in (as docker drops them with the last tag)."""
    from pycont.images.reference import Reference

    names = [
        index.ref_name(e) for e, m in _manifests(store.root) if m["config"]["digest"] == image_id
    ]
    if not names:
        return []  # removed: its entries are stale
    known = Metadata(store.root).read()["repo_digests"].get(image_id) or []
    if not any(names):  # pulled by digest only: no tag to go by
        return sorted(known)
    repos = {Reference.parse(n).name for n in names if n}
    return sorted(r for r in known if r.split("@", 1)[0] in repos)


def image_of_repo_digest(root: str, repo_digest: str) -> str | None:
    """The image id recorded for ``name@sha256:…`` (a registry's manifest digest), if any."""
    for image_id, known in Metadata(root).read()["repo_digests"].items():
        if repo_digest in known:
            return str(image_id)
    return None


def local_layers(root: str) -> dict[str, dict[str, Any]]:
    """diff_id -> a layer descriptor of a manifest in the store that gives it (its blob
    there), for the layers whose unpacked folder exists."""
    from pycont.images.blobs import BlobStore

    blobs = BlobStore(root)
    out: dict[str, dict[str, Any]] = {}
    for _, man in _manifests(root):
        with contextlib.suppress(OSError, ValueError, KeyError):
            config = blobs.read_json(man["config"]["digest"])
            diff_ids = config["rootfs"]["diff_ids"]
            for desc, diff_id in zip(man["layers"], diff_ids, strict=True):
                layer_dir = os.path.join(root, "layers", diff_id.split(":", 1)[1])
                if os.path.isdir(layer_dir) and blobs.exists(desc["digest"]):
                    out.setdefault(diff_id, dict(desc))
    return out
