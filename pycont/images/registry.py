"""Registries: where images travel between machines, over the OCI distribution API or a folder.

A registry keeps the same blobs and manifests as the local store, by repository name:
``GET /v2/<name>/manifests/<tag>`` gives an image's manifest and ``GET /v2/<name>/blobs/<digest>``
each of its blobs (OCI distribution-spec, spec.md). ``pull`` fetches what the store lacks,
checks every digest, and names the image only when all of it is in; ``push`` sends the blobs
the registry lacks, then the manifest.

Where an image travels follows from the reference (the transport)::

    localhost:5000/app:1      HTTP; plain http on loopback only (127.0.0.1, localhost, ::1),
    127.0.0.1:5000/app:1      as docker allows insecure registries; https anywhere else
    ghcr.io/user/app:1        HTTPS, anonymous (a registry that wants a token is refused)
    dir:/srv/images:app:1     a folder holding an OCI image layout: no server at all
    app:1  (docker.io/...)    Docker Hub is out of reach here (no network): the folder named
                              by $PYCONT_REGISTRY_DIR serves instead, if set; else an error

In a folder the image is named as in the store: ``docker.io/library/app:1`` in index.json.
A pycont store (``<root>/images``) is itself such a folder.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import os
import tempfile
from typing import Any

from pycont import failpoints
from pycont.errors import ImageNotFound, PycontError, RegistryError, UsageError
from pycont.fsutil import fsync_dir, remove_tree
from pycont.images import jsonlimits, oci
from pycont.images._fetch import fetch_blob
from pycont.images._parallel import DOWNLOADS, run_parallel
from pycont.images._registry_dir import DirRegistry
from pycont.images._registry_http import ACCEPT, HttpRegistry, is_loopback, upload_url
from pycont.images.blobs import BlobStore, sha256_of
from pycont.images.distribution import (
    Metadata,
    local_layers,
    local_manifest,
    stored_manifest,
)
from pycont.images.oci import DOCKER_LIST, DOCKER_MANIFEST, DOCKER_SCHEMA1, media_type
from pycont.images.progress import Progress
from pycont.images.push import PushStats, push_image
from pycont.images.reference import DEFAULT_REGISTRY, Reference
from pycont.images.store import Store

__all__ = [
    "ACCEPT",
    "DOCKER_LIST",
    "DOCKER_MANIFEST",
    "DOCKER_SCHEMA1",
    "REGISTRY_DIR_ENV",
    "RegistryError",
    "choose_platform",
    "is_loopback",
    "local_name",
    "locate",
    "media_type",
    "pull",
    "push",
    "upload_url",
]

REGISTRY_DIR_ENV = "PYCONT_REGISTRY_DIR"
_CHUNK = 1 << 20


def choose_platform(index: dict[str, Any], arch: str | None = None) -> dict[str, Any]:
    """The manifest for linux/<this machine's arch> in an index or a docker manifest list."""
    arch = arch or oci.architecture()
    seen = []
    for desc in index.get("manifests") or []:
        platform = desc.get("platform") or {}
        seen.append(f"{platform.get('os')}/{platform.get('architecture')}")
        if (platform.get("os"), platform.get("architecture")) == ("linux", arch):
            return dict(desc)
    raise RegistryError(f"no manifest for linux/{arch} in the index (it has {', '.join(seen)})")


_Transport = HttpRegistry | DirRegistry


def locate(text: str, verb: str) -> tuple[_Transport, Reference]:
    """The transport for ``text`` and the image's name (the rules are in the module's doc)."""
    if text.startswith("dir:"):
        path, _, name = text[4:].partition(":")
        if not path or not name:
            raise UsageError(
                f"{verb} {text}: expected dir:PATH:IMAGE, e.g. dir:/srv/images:busybox:1"
            )
        ref = Reference.parse(name)
        return DirRegistry(path, ref), ref
    ref = Reference.parse(text)
    if ref.registry == DEFAULT_REGISTRY:
        folder = os.environ.get(REGISTRY_DIR_ENV)
        if folder:
            return DirRegistry(folder, ref), ref
        raise RegistryError(
            f"{verb} {text}: Docker Hub (docker.io) cannot be reached from here; use a registry "
            f"on this machine (localhost:5000/{ref.familiar_name}), a folder "
            f"(dir:/path:{ref}), or set {REGISTRY_DIR_ENV}=/path"
        )
    return HttpRegistry(ref), ref


def _document(data: bytes, what: str) -> Any:
    """A registry's JSON document, within the size and depth limits (:mod:`.jsonlimits`)."""
    try:
        return jsonlimits.loads(data)
    except ValueError as err:
        raise RegistryError(f"{what} is not valid JSON: {err}") from None


def _get_manifest(t: _Transport, tail: str) -> tuple[bytes, str, str]:
    """A manifest whose digest is checked: the one asked for, or the one the registry says."""
    data, media, claimed = t.manifest(tail)
    digest = sha256_of(data)
    expected = tail if tail.startswith("sha256:") else claimed
    if expected and expected != digest:
        raise RegistryError(f"digest mismatch for {expected}: the manifest received is {digest}")
    if media in oci.INDEX_TYPES:
        doc = _document(data, f"image index {digest}")
        try:
            jsonlimits.check_index(doc)
        except jsonlimits.JSONRefused as err:
            raise RegistryError(f"image index {digest}: {err}") from None
        desc = choose_platform(doc)
        data, media, digest = _get_manifest(t, desc["digest"])
        media = desc.get("mediaType") or media
    if media == oci.DOCKER_SCHEMA1:
        raise RegistryError(f"{tail}: schema 1 manifests (docker before 1.10) are not supported")
    if media not in oci.MANIFEST_TYPES:
        raise RegistryError(f"{tail}: unsupported manifest media type {media or '(none)'}")
    return data, media, digest


def pull(ref: str, store: Store | None = None, progress: Progress | None = None) -> str:
    """``docker pull``: fetch the image ``ref`` into the store; return its id (config digest).

    Blobs the store has are not fetched. Everything fetched goes to a staging folder first
    and is checked (digest, size, layer diff_ids) before it enters the store; the reference
    names the image only when all of it is in. On failure the store is as it was."""
    store = store or Store()
    progress = progress or Progress()
    t, name = locate(ref, "pull")
    try:
        return _pull(t, name, store, progress)
    except (PycontError, OSError, http.client.HTTPException, ValueError, KeyError) as err:
        raise RegistryError(f"pull {ref}: {_one_line(err)}") from err
    finally:
        t.close()
        getattr(progress, "close", lambda: None)()


def _one_line(err: BaseException) -> str:
    if isinstance(err, KeyError):
        return f"malformed document: no {err}"
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def local_name(ref: str) -> Reference:
    """The name a pull of ``ref`` gives the image in the store (``dir:`` and all), which
    ``pycont pull -q`` prints: ``dir:/srv/images:app:1`` -> ``docker.io/library/app:1``."""
    if ref.startswith("dir:"):
        return locate(ref, "pull")[1]
    return Reference.parse(ref)


def _pull(t: _Transport, name: Reference, store: Store, progress: Progress) -> str:
    tail = name.digest or name.tag or "latest"
    note = getattr(progress, "note", lambda text: None)
    note(f"{tail}: Pulling from {name.repository}")
    data, media, digest = _get_manifest(t, tail)
    manifest = _document(data, f"manifest {digest}")
    try:
        jsonlimits.check_manifest(manifest)
    except jsonlimits.JSONRefused as err:
        raise RegistryError(f"manifest {digest}: {err}") from None
    layers: list[dict[str, Any]] = list(manifest.get("layers") or [])
    for desc in layers:
        if desc.get("mediaType", oci.LAYER) not in oci.LAYER_TYPES:
            raise RegistryError(
                f"layer {desc['digest']}: unsupported media type {desc['mediaType']}"
            )
    os.makedirs(store.root, exist_ok=True)
    _remove_stale_staging(store.root)
    # Docker's classic store keeps layers by diff_id and a registry's manifest digest only as a
    # RepoDigest; so does this pull when the store has the image (same config) or some of its
    # layers (same diff_ids) from elsewhere (a load of plain tars, a push): those are not
    # downloaded again, the image is stored with a manifest naming the store's own blobs, and
    # the registry's digest is recorded so that the next pull says "Image is up to date".
    cfg = manifest["config"]
    local = stored_manifest(store.root, cfg["digest"])
    # Staged on the store's filesystem, so that a checked blob enters it by rename(2).
    staging = tempfile.mkdtemp(prefix=f".pull-{os.getpid()}-", dir=store.root)
    try:
        staged = BlobStore(staging)
        fetched: list[str] = []
        if local is None and not store.blobs.exists(cfg["digest"]):
            fetch_blob(t, cfg, staged, progress, None)
            fetched.append(cfg["digest"])
        source = staged if fetched else store.blobs
        config = _document(source.read(cfg["digest"]), f"image config {cfg['digest']}")
        try:
            jsonlimits.check_config(config)  # before anything is named: Cmd a string...
        except jsonlimits.JSONRefused as err:
            raise RegistryError(f"image config {cfg['digest']}: {err}") from None
        diff_ids = list(config.get("rootfs", {}).get("diff_ids") or [])
        if len(diff_ids) != len(layers):
            raise RegistryError(
                f"{len(layers)} layers in the manifest, {len(diff_ids)} diff_ids in the config"
            )
        have = local_layers(store.root) if local is None else {}
        mine = json.loads(local[0])["layers"] if local else []  # the store's own manifest
        final: list[dict[str, Any]] = []
        todo: list[tuple[dict[str, Any], str]] = []
        for i, (desc, diff_id) in enumerate(zip(layers, diff_ids, strict=True)):
            progress.start(desc["digest"], desc.get("size"))
            if local is not None:
                final.append(mine[i])
            elif store.blobs.exists(desc["digest"]):
                final.append(desc)
            elif diff_id in have:
                final.append(have[diff_id])
            elif desc["digest"] in fetched:
                final.append(desc)
            else:
                todo.append((desc, diff_id))
                fetched.append(desc["digest"])
                final.append(desc)
                continue
            progress.done(desc["digest"], "Already exists")
        run_parallel(
            [functools.partial(_download, t, d, i, staged) for d, i in todo], DOWNLOADS, progress
        )
        failpoints.hit("pull.layer-staged")  # every blob fetched into the staging folder
        if local is None and final != layers:
            data = local_manifest(manifest, final)
            local = (data, oci.MANIFEST, sha256_of(data))
        stored = local or (data, media, digest)
        with store.writing():  # from here on, rmi and prune wait for this pull
            named = _named(store, name)
            fresh = bool(fetched) or (named != stored[2] and not name.digest)
            if name.digest and named is None and not fetched:  # by the registry's digest
                known = Metadata(store.root).read()["repo_digests"].get(cfg["digest"]) or []
                fresh = f"{name.name}@{digest}" not in known
            doc = {"config": cfg, "layers": final}
            image_id = _commit(store, name, staged, fetched, *stored, doc)
    finally:
        with contextlib.suppress(OSError):  # as before: a leftover goes with the next pull
            remove_tree(staging)
    _remember(t, name, store, image_id, digest, layers, diff_ids)
    for desc in layers:
        if desc["digest"] in fetched:
            progress.done(desc["digest"], "Pull complete")
    note(f"Digest: {digest}")
    note(f"Status: {'Downloaded newer image' if fresh else 'Image is up to date'} for {name}")
    note(name.canonical)
    return image_id


def _download(
    t: _Transport, desc: dict[str, Any], diff_id: str, into: BlobStore, progress: Progress
) -> None:
    """One layer, on a worker with a connection of its own."""
    w = t.fork()
    try:
        fetch_blob(w, desc, into, progress, diff_id)
    finally:
        w.close()


def _remember(
    t: _Transport,
    name: Reference,
    store: Store,
    image_id: str,
    digest: str,
    layers: list[dict[str, Any]],
    diff_ids: list[str],
) -> None:
    """Record the gzip forms pulled, where the blobs are and the RepoDigest (distribution)."""
    http = isinstance(t, HttpRegistry)
    Metadata(store.root).record(
        gzip={
            i: (d["digest"], int(d["size"]))
            for d, i in zip(layers, diff_ids, strict=True)
            if str(d.get("mediaType", "")).endswith("gzip")
        },
        blobs=[d["digest"] for d in layers] if http else [],
        repository=f"{name.registry}/{name.repository}" if http else "",
        image_id=image_id,
        repo_digest=f"{name.name}@{digest}",
    )


def _remove_stale_staging(root: str) -> None:
    """Staging folders of pulls whose process died (killed mid-download): theirs to lose."""
    for entry in os.listdir(root):
        pid = entry.split("-")[1] if entry.startswith(".pull-") else ""
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            with contextlib.suppress(OSError):
                remove_tree(os.path.join(root, entry))


def _named(store: Store, name: Reference) -> str | None:
    """The digest of the manifest ``name`` points at in the store, if any."""
    try:
        return store.lookup(name.canonical).digest
    except ImageNotFound:
        return None


def _commit(
    store: Store,
    name: Reference,
    staged: BlobStore,
    fetched: list[str],
    data: bytes,
    media: str,
    digest: str,
    manifest: dict[str, Any],
) -> str:
    """Move the checked blobs into the store and name the image; undo the move on failure."""
    needed = [manifest["config"]["digest"], *(d["digest"] for d in manifest["layers"])]
    for d in needed:
        if d not in fetched and not store.blobs.exists(d):
            raise RegistryError(f"blob {d} left the store during the pull (rmi, prune?): again")
    os.makedirs(store.blobs.dir, exist_ok=True)
    moved = []
    try:
        for d in dict.fromkeys([*fetched, digest]):
            if store.blobs.exists(d):  # another pull brought it meanwhile
                continue
            if d == digest:
                store.blobs.put(data, digest)
            else:
                os.rename(staged.path(d), store.blobs.path(d))
            moved.append(d)
        fsync_dir(store.blobs.dir)
        tag = Reference(name.registry, name.repository, name.tag) if name.tag else None
        desc = oci.descriptor(media, digest, len(data))
        failpoints.hit("pull.published")  # the blobs are in the store, the index not yet
        (rec,) = store.add_manifests([(desc, [tag] if tag else [])])
        return rec.id
    except BaseException:
        # The blobs this pull brought in go again: the store is as it was. (Another pull of an
        # image sharing one of them in the same instant would lose it; it would say so.)
        for d in moved:
            with contextlib.suppress(OSError):
                os.unlink(store.blobs.path(d))
        raise


def push(
    ref: str,
    store: Store | None = None,
    progress: Progress | None = None,
    stats: PushStats | None = None,
) -> str:
    """``docker push``: send the local image ``ref`` to its registry; return the manifest's
    digest (see :mod:`pycont.images.push`). ``stats`` learns the bytes sent, mounts, ..."""
    store = store or Store()
    progress = progress or Progress()
    t, name = locate(ref, "push")
    if name.digest or not name.tag:
        raise UsageError(f"push {ref}: cannot push to a digest; name the image with a tag")
    try:
        store.lookup(name.canonical)
    except ImageNotFound:
        raise ImageNotFound(
            f"push {ref}: an image does not exist locally with the tag {name} "
            f"(pycont tag IMAGE {name} first)"
        ) from None
    try:
        return push_image(t, name, store, name.canonical, progress, stats or PushStats())
    except (PycontError, OSError, http.client.HTTPException, ValueError, KeyError) as err:
        raise RegistryError(f"push {ref}: {_one_line(err)}") from err
    finally:
        t.close()
        getattr(progress, "close", lambda: None)()
