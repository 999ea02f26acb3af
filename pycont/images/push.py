"""``docker push``: layers go up gzip-compressed, in a docker schema2 manifest, once per registry.

For each layer, bottom first, as docker does:

* the repository has it (HEAD): ``Layer already exists``;
* another repository of the same registry is known to have it: ``POST
  /v2/<name>/blobs/uploads/?mount=<digest>&from=<repo>`` links it without sending a byte
  (spec.md "Mounting a blob from another repository"): ``Mounted from <repo>``;
* else it is sent: a layer stored as a plain tar is compressed on the way
  (:class:`pycont.images.distribution.GzipStream`, deterministic, on up to 4 cores as podman's
  pgzip), in chunks that survive a dropped connection: ``Pushed``.

An image whose layers are all gzip already goes up exactly as stored (its manifest digest
unchanged, as docker keeps the digest of a pulled image); any other gets a docker schema2
manifest (application/vnd.docker.distribution.manifest.v2+json) naming the gzip forms. The gzip
digest of each layer, the repositories that hold each blob and the manifest digest pushed
(a RepoDigest) are recorded in the store (:class:`~pycont.images.distribution.Metadata`).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pycont.errors import RegistryError
from pycont.images._parallel import UPLOADS, run_parallel
from pycont.images.blobs import Readable, sha256_of
from pycont.images.distribution import Metadata, docker_manifest
from pycont.images.progress import Progress
from pycont.images.reference import Reference
from pycont.images.store import Store

__all__ = ["PushStats", "push_image"]


@dataclass
class PushStats:
    """What a push did: blob bytes sent, blobs mounted, blobs uploaded, uploads resumed
    after a dropped connection, uploads the registry lost and that went again whole."""

    bytes_sent: int = 0
    mounted: list[str] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    resumed: int = 0
    restarted: int = 0


class _Counting:
    """A blob being read to be sent: reports each chunk (uncompressed, as docker's bar)."""

    def __init__(self, inner: Readable, layer: str, progress: Progress) -> None:
        self.inner, self.layer, self.progress = inner, layer, progress

    def read(self, n: int = -1) -> bytes:
        data: bytes = self.inner.read(n)
        if data:
            self.progress.advance(self.layer, len(data))
        return data


def push_image(
    t: Any, name: Reference, store: Store, ref: str, progress: Progress, stats: PushStats
) -> str:
    """Push the local image ``ref`` to ``t`` (a transport) as ``name``; its manifest digest."""
    from pycont.images._registry_http import HttpRegistry
    from pycont.images.distribution import GzipStream

    note = getattr(progress, "note", lambda text: None)
    note(f"The push refers to repository [{name.name}]")
    rec = store.lookup(ref)
    manifest = rec.manifest
    meta = Metadata(store.root)
    here = f"{name.registry}/{name.repository}" if isinstance(t, HttpRegistry) else ""
    # A folder (dir:) is an OCI layout like the store: it gets the image as stored, as
    # skopeo's oci: transport does. A registry gets gzip.
    as_stored = not here or all(
        str(d.get("mediaType", "")).endswith("gzip") for d in manifest["layers"]
    )
    gzip_forms: dict[str, tuple[str, int]] = {}
    lock = threading.Lock()

    def one(desc: dict[str, Any], diff_id: str, progress: Progress) -> dict[str, Any]:
        """One layer, on a worker with its own connection: its descriptor in the registry."""
        local, size = desc["digest"], int(desc["size"])
        gz = as_stored or str(desc.get("mediaType", "")).endswith("gzip")  # sent as stored
        known = (local, size) if gz else meta.gzip_of(diff_id)
        w = t.fork()
        try:
            if known and w.has_blob(known[0]):
                progress.done(local, "Layer already exists")
                return {"digest": known[0], "size": known[1]}
            source = _mount_source(w, here, known[0], meta) if known else None
            if known and source:
                stats.mounted.append(known[0])
                progress.done(local, f"Mounted from {source}")
                return {"digest": known[0], "size": known[1]}

            @contextlib.contextmanager
            def opener() -> Iterator[Readable]:
                with store.open_blob(local) as blob:
                    stream: Readable = _Counting(blob, local, progress)
                    if gz:
                        yield stream
                    else:  # closed even if the upload breaks off: its threads are joined
                        with GzipStream(stream) as zipped:
                            yield zipped
                    blob.verify()  # all of it went: the store's copy was intact

            digest, sent = w.send(opener, local if gz else None)
            stats.uploaded.append(digest)
            if not gz:
                with lock:
                    gzip_forms[diff_id] = (digest, sent)
            progress.done(local, "Pushed")
            return {"digest": digest, "size": sent}
        finally:
            with lock:
                stats.bytes_sent += w.sent
                stats.resumed += w.resumed
                stats.restarted += w.restarted
            if w is not t:
                w.close()

    pairs = list(zip(manifest["layers"], rec.diff_ids, strict=True))
    for desc, _ in pairs:  # one line per layer, bottom first, before any moves (as docker)
        progress.start(desc["digest"], int(desc["size"]))
    jobs = [functools.partial(one, desc, diff_id) for desc, diff_id in pairs]
    remote = run_parallel(jobs, UPLOADS, progress)
    cfg = manifest["config"]
    if not t.has_blob(cfg["digest"]):
        t.sent = 0
        with store.open_blob(cfg["digest"]) as blob:
            t.put_blob(cfg["digest"], int(cfg["size"]), blob)
            blob.verify()
        stats.uploaded.append(cfg["digest"])
    if as_stored:
        data, media = store.blobs.read(rec.digest), rec.descriptor["mediaType"]
    else:
        data, media = docker_manifest(cfg, remote)
    digest = t.put_manifest(name.tag or "latest", data, media)
    check_pushed(digest, sha256_of(data))
    stats.bytes_sent += t.sent
    meta.record(
        gzip=gzip_forms,
        blobs=[d["digest"] for d in remote] + [cfg["digest"]] if here else [],
        repository=here,
        image_id=rec.id,
        repo_digest=f"{name.name}@{digest}",
    )
    note(f"{name.tag}: digest: {digest} size: {len(data)}")
    return str(digest)


def _mount_source(t: Any, here: str, digest: str, meta: Metadata) -> str | None:
    """The first other repository of this registry that takes the mount of ``digest``."""
    if not here:
        return None
    registry = here.split("/", 1)[0]
    for other in meta.where(digest):
        host, _, repo = other.partition("/")
        if host == registry and other != here and t.mount(digest, repo):
            return repo
    return None


def check_pushed(pushed: str, expected: str) -> None:
    if pushed != expected:
        raise RegistryError(f"the registry stored the manifest as {pushed}, not {expected}")
