"""The image store: an OCI image layout on disk, plus the unpacked layers that overlay stacks.

An image is a stack of read-only layers; a new version of an image adds layers on top of the
old ones and shares them. On disk (OCI image-spec, image-layout.md)::

    <root>/images/oci-layout           {"imageLayoutVersion": "1.0.0"}
    <root>/images/index.json           one entry per reference ("busybox:latest" -> manifest)
    <root>/images/blobs/sha256/<hex>   manifests, configs and layer tars, named by their hash
    <root>/images/layers/<hex>/        each layer unpacked ONCE (named by its diff_id), shared
                                       by every image that has it: these are overlay's lowerdirs
    <root>/images/layer-sizes/<hex>    each layer's uncompressed size (pycont.images.layer_sizes)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any

from pycont import failpoints, paths
from pycont.errors import ImageInUse, ImageNotFound, UsageError
from pycont.fsutil import write_json
from pycont.images import gc, index, jsonlimits, layer_sizes, oci, staging
from pycont.images._locks import file_lock
from pycont.images.blobs import BlobReader, BlobStore, CorruptBlob, check_digest
from pycont.images.reference import Reference
from pycont.images.report import (
    DiskUsage,
    HistoryEntry,
    ImageInfo,
    ImageRecord,
    disk_usage,
    history_rows,
)
from pycont.images.staging import Staging

__all__ = ["ImageInUse", "InUse", "Store", "set_in_use_hook"]

# What reading a damaged image raises: a blob gone or corrupt, a document of the wrong shape.
_BROKEN = (CorruptBlob, KeyError, TypeError, ValueError, OSError)
InUse = Callable[[str], list[str]]  # image id -> names of the containers that use it
_in_use_hook: InUse | None = None


def set_in_use_hook(fn: InUse | None) -> None:
    """Tell every Store which containers use an image (the runtime registers this)."""
    global _in_use_hook
    _in_use_hook = fn


class Store:
    """The images of one pycont root. ``in_use(image_id)`` names the containers using an image."""

    def __init__(self, root: str | None = None, *, in_use: InUse | None = None) -> None:
        self.root = os.path.abspath(root or paths.images_dir())
        self.blobs = BlobStore(self.root)
        self.layers_dir = os.path.join(self.root, "layers")
        self.index_path = os.path.join(self.root, "index.json")
        self._in_use = in_use
        self._docs: dict[str, dict[str, Any]] = {}  # digest -> verified JSON (blobs never change)
        self._sizes: dict[str, int] = {}  # diff_id -> uncompressed size (layers never change)
        # One line per layer that unpacked with something left out (rootless: device nodes);
        # the CLI prints them on stderr after load and pull.
        self.warnings: list[str] = []

    # -- locks, index ----------------------------------------------------------------------
    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Hold while writing blobs that an index entry will reference: GC waits for it."""
        return file_lock(os.path.join(self.root, "gc.lock"), exclusive=False)

    def gc_lock(self) -> contextlib.AbstractContextManager[None]:
        """Held by what deletes blobs or layers (rmi, prune, ``system check --repair``)."""
        return file_lock(os.path.join(self.root, "gc.lock"), exclusive=True)

    @contextlib.contextmanager
    def stage(self) -> Iterator[Staging]:
        """A staging folder for a new image's blobs and layers (:mod:`pycont.images.staging`),
        removed at the end; ``writing()`` is held meanwhile. Stale ones of dead writers go."""
        self._ensure_layout()
        with self.writing():
            staging.remove_stale(self.root)
            st = Staging(self)
            try:
                yield st
            finally:
                st.discard()

    def _ensure_layout(self) -> None:
        os.makedirs(self.blobs.dir, exist_ok=True)
        if not os.path.isdir(self.layers_dir):
            # 0700: unpacked layers hold the images' set-user-ID programs; host users must not
            # reach them (docker keeps /var/lib/docker 0710 for the same reason).
            os.makedirs(self.layers_dir, mode=0o700, exist_ok=True)
        layout = os.path.join(self.root, "oci-layout")
        if not os.path.exists(layout):
            write_json(layout, {"imageLayoutVersion": "1.0.0"}, indent=2, durable=True)

    def _entries(self) -> list[dict[str, Any]]:
        return index.read_entries(self.index_path)

    def _index(self) -> contextlib.AbstractContextManager[list[dict[str, Any]]]:
        """index.json to change (:func:`pycont.images.index.editing`)."""
        self._ensure_layout()
        return index.editing(self.index_path)

    # -- blobs -----------------------------------------------------------------------------
    def put_blob(self, data: bytes | IO[bytes], expected: str | None = None) -> str:
        """Store a blob; return its digest. Reference it inside ``with store.writing():``."""
        self._ensure_layout()
        with self.writing():
            return self.blobs.put(data, expected)

    def open_blob(self, digest: str) -> BlobReader:
        """A blob to read; CorruptBlob (naming the digest) at its end if it does not match."""
        return self.blobs.open(digest)

    def document(self, digest: str, blobs: BlobStore | None = None) -> dict[str, Any]:
        """A JSON blob (manifest, config), verified; ``blobs``: a staging's, to read first."""
        if digest not in self._docs:
            self._docs[digest] = (blobs or self.blobs).read_json(digest)
        return self._docs[digest]

    def layer_dir(self, diff_id: str) -> str:
        return os.path.join(self.layers_dir, check_digest(diff_id))

    # -- lookups ---------------------------------------------------------------------------
    def _image_id(self, entry: dict[str, Any]) -> str:
        """The image's id (its config's digest); for an image whose manifest is missing or
        damaged, its manifest digest: such an image can still be listed and removed."""
        try:
            return str(self.document(entry["digest"])["config"]["digest"])
        except _BROKEN:
            return str(entry["digest"])

    def _find(
        self, ref: str, entries: list[dict[str, Any]]
    ) -> tuple[Reference | None, list[dict[str, Any]]]:
        """:func:`index.find`, and ``name@sha256:…`` by a registry's manifest digest too: an
        image pushed as gzip, or pulled onto layers the store had, keeps its own manifest and
        knows the registry's digest only as a RepoDigest (:mod:`pycont.images.distribution`)."""
        try:
            return index.find(ref, entries, self._image_id)
        except ImageNotFound:
            if "@sha256:" not in ref:
                raise
            from pycont.images.distribution import image_of_repo_digest

            target = Reference.parse(ref)
            image_id = image_of_repo_digest(self.root, f"{target.name}@{target.digest}")
            hits = [e for e in entries if image_id and self._image_id(e) == image_id]
            if not hits:
                raise
            return target, hits[:1]

    def _record(
        self, entry: dict[str, Any], ref: Reference | None, blobs: BlobStore | None = None
    ) -> ImageRecord:
        manifest = self.document(entry["digest"], blobs)
        config = self.document(manifest["config"]["digest"], blobs)
        diff_ids = tuple(config.get("rootfs", {}).get("diff_ids") or ())
        if len(diff_ids) != len(manifest.get("layers") or ()):
            raise CorruptBlob(
                f"image {entry['digest']}: {len(manifest['layers'])} layers in the manifest, "
                f"{len(diff_ids)} diff_ids in the config"
            )
        name = index.ref_name(entry)
        if ref is None and name:
            ref = Reference.parse(name)
        return ImageRecord(
            reference=str(ref) if ref else None,
            id=manifest["config"]["digest"],
            digest=entry["digest"],
            descriptor={k: entry[k] for k in ("mediaType", "digest", "size")},
            manifest=manifest,
            config=config,
            diff_ids=diff_ids,
            layers=tuple(self.layer_dir(d) for d in reversed(diff_ids)),
            sizer=self.layer_size,
        )

    def get(self, ref: str) -> ImageRecord:
        """The image ``ref`` (a reference or an id prefix), its layers unpacked, top first."""
        found, entries = self._find(ref, self._entries())
        rec = self._record(entries[0], found)
        with self.writing():
            for desc, diff_id in zip(rec.manifest["layers"], rec.diff_ids, strict=True):
                self._unpack(desc, diff_id)
        return rec

    def lookup(self, ref: str) -> ImageRecord:
        """The image ``ref`` names, as :meth:`get`, without unpacking its layers (``save``)."""
        found, entries = self._find(ref, self._entries())
        return self._record(entries[0], found)

    def layer_size(self, desc: dict[str, Any], diff_id: str) -> int:
        """A layer's uncompressed size (:mod:`pycont.images.layer_sizes`): recorded when it
        was unpacked; counted once from its blob for a layer unpacked before that."""
        size = self._sizes.get(diff_id)
        if size is None:
            size = layer_sizes.read(self.root, diff_id)
        if size is None:
            size = layer_sizes.measure(self.blobs, desc)
            layer_sizes.record(self.root, diff_id, size)
        self._sizes[diff_id] = size
        return size

    def unpack(self, desc: dict[str, Any], diff_id: str, stage: Staging | None = None) -> str:
        """Unpack a stored layer blob (verified against ``diff_id``) if it is not yet; returns
        its folder. Call inside ``with store.writing():``; with ``stage`` (a new layer: the
        builder's), the blob is read from the staging first and unpacked into it."""
        self._unpack(desc, diff_id, stage)
        return stage.layer_dir(diff_id) if stage else self.layer_dir(diff_id)

    def _unpack(self, desc: dict[str, Any], diff_id: str, stage: Staging | None = None) -> None:
        dest = stage.layer_dir(diff_id) if stage else self.layer_dir(diff_id)
        if os.path.isdir(dest):
            return
        self._ensure_layout()
        # The tar code loads only when a layer is unpacked.
        from pycont.images.layers import layer_warnings
        from pycont.images.unpack import unpack_blob

        stats, size = unpack_blob(stage.blobs if stage else self.blobs, desc, diff_id, dest)
        self._sizes[diff_id] = size
        if stage is None:
            layer_sizes.record(self.root, diff_id, size)
        else:  # recorded when the layer enters the store (Staging.publish)
            stage.sizes[diff_id] = size
        if stats is not None:
            self.warnings.extend(layer_warnings(desc["digest"], stats))

    # -- listing ---------------------------------------------------------------------------
    def images(self) -> list[ImageInfo]:
        """Every image reference (and untagged image), newest first, as ``docker images``."""
        out = []
        for entry in self._entries():
            try:
                rec = self._record(entry, None)
                out.append(ImageInfo.of(rec))
            except _BROKEN as err:
                # one broken image is shown as broken; the others are still listed
                out.append(ImageInfo.broken(entry, self._image_id(entry), err))
        return sorted(out, key=lambda i: (-i.created, i.reference))

    def _records(self) -> list[ImageRecord]:
        """Every image that can be read; a broken one (a blob missing) is left out here,
        listed by :meth:`images` with its problem."""
        out = []
        for entry in self._entries():
            with contextlib.suppress(*_BROKEN):
                out.append(self._record(entry, None))
        return out

    def history(self, ref: str) -> list[HistoryEntry]:
        """One row per build step, newest first, as ``docker history``."""
        found, entries = self._find(ref, self._entries())
        rec = self._record(entries[0], found)
        return history_rows(rec, self._records())

    def build_cache_usage(self) -> tuple[int, int]:
        """``docker system df``'s Build Cache row: how many steps the cache holds, and the
        bytes of the layers only it keeps (a ``builder prune`` frees them)."""
        from pycont.images import buildcache

        return buildcache.usage(self.root, self.blobs, self._records())

    def disk_usage(self, in_use: InUse | None = None) -> DiskUsage:
        """``docker system df -v``: per image its size, the part shared with other images and
        the part only it has; the total counts each shared layer once."""
        recs = self._records()
        on_disk = gc.dir_size(self.root) if os.path.isdir(self.root) else 0
        return disk_usage(recs, lambda i: len(self._users(i, in_use)), on_disk)

    def _users(self, image_id: str, in_use: InUse | None) -> list[str]:
        fn = in_use or self._in_use or _in_use_hook
        return sorted(fn(image_id)) if fn else []

    # -- changing --------------------------------------------------------------------------
    def add_image(
        self,
        ref: str | Reference | None,
        config: dict[str, Any],
        layers: Sequence[dict[str, Any]],
        staging: Staging | None = None,
        step: str = "",
    ) -> ImageRecord:
        """Write ``config`` and a manifest for ``layers`` (stored or staged blobs, bottom
        first), unpack the layers, point ``ref`` at the result (None: an untagged image).
        Everything new enters the store only when all of it is there (``staging``: the one the
        new layers were written to; else a staging of its own). ``step``: the failpoint
        reached once the blobs are in the store and before the index names them (a kill
        there leaves unreferenced blobs: orphans that prune removes). Returns the image."""
        target = Reference.parse(ref) if isinstance(ref, str) else ref
        if target is not None and target.digest:
            raise UsageError(f"cannot name an image with a digest: {target}")
        _check_config(config, f"image {target or '(untagged)'}")
        with contextlib.ExitStack() as stack:
            stage = staging or stack.enter_context(self.stage())
            diff_ids = config.get("rootfs", {}).get("diff_ids") or []
            for layer, diff_id in zip(layers, diff_ids, strict=True):
                self._unpack(layer, diff_id, stage)
            cfg_digest, cfg_size = stage.blobs.put_json(config)
            doc = oci.manifest(oci.descriptor(oci.CONFIG, cfg_digest, cfg_size), layers)
            man_digest, man_size = stage.blobs.put_json(doc)
            desc = oci.descriptor(oci.MANIFEST, man_digest, man_size)

            def name() -> None:
                if step:
                    failpoints.hit(step)
                with self._index() as entries:
                    index.point(entries, target, desc)

            needed = [man_digest, cfg_digest, *(d["digest"] for d in layers)]
            stage.publish(needed, diff_ids, name)
        return self._record(dict(desc), target)

    def add_manifests(
        self,
        images: Sequence[tuple[dict[str, Any], Sequence[Reference]]],
        staging: Staging | None = None,
        step: str = "",
    ) -> list[ImageRecord]:
        """Name images whose blobs (manifest, config, layers) are stored, or staged in
        ``staging``: ``load``, ``pull``.

        ``images``: (manifest descriptor, the references to point at it; none: untagged).
        Every manifest and config is read back and verified and every layer unpacked (into
        the staging) before anything enters the store; then one index write names them all.
        On any error the store is as it was. ``step``: as :meth:`add_image`'s."""
        with contextlib.ExitStack() as stack:
            stage = staging or stack.enter_context(self.stage())
            needed: list[str] = []
            diff_ids: list[str] = []
            for desc, _refs in images:
                rec = self._record(dict(desc), None, stage.blobs)
                _check_config(rec.config, f"image config {rec.id}")  # the loaders checked it
                for layer, diff_id in zip(rec.manifest["layers"], rec.diff_ids, strict=True):
                    self._unpack(layer, diff_id, stage)
                needed += [rec.digest, rec.id, *(d["digest"] for d in rec.manifest["layers"])]
                diff_ids += rec.diff_ids
            stage.publish(needed, diff_ids, lambda: self._name_all(images, step))
        return [self._record(dict(desc), refs[0] if refs else None) for desc, refs in images]

    def _name_all(
        self, images: Sequence[tuple[dict[str, Any], Sequence[Reference]]], step: str = ""
    ) -> None:
        if step:
            failpoints.hit(step)
        with self._index() as entries:
            for desc, refs in images:
                plain = {k: desc[k] for k in ("mediaType", "digest", "size")}
                if not refs:
                    index.point(entries, None, plain)
                for ref in refs:
                    index.point(entries, ref, plain)

    def tag(self, src: str, dst: str) -> None:
        """``docker tag SRC DST``: one more name for the same image (no data is copied)."""
        rec = self.get(src)
        target = Reference.parse(dst)
        if target.digest:
            raise UsageError(f"cannot tag with a digest: {dst}")
        with self._index() as entries:
            index.point(entries, target, rec.descriptor)

    def remove(self, ref: str, force: bool = False, in_use: InUse | None = None) -> list[str]:
        """``docker rmi``: untag; delete the image (and the layers no other image has) when its
        last name goes. Refused while containers use it, unless ``force`` (then it only loses
        its name). Returns docker's ``Untagged:``/``Deleted:`` lines. The index is rewritten
        before any blob goes (:mod:`pycont.images.removal`)."""
        from pycont.images import removal

        return removal.remove(self, ref, force, in_use)

    def prune(
        self, in_use: InUse | None = None, dangling: bool = True, build_cache: bool = False
    ) -> int:
        """Remove untagged images no container uses (``dangling``), the build cache's entries
        (``build_cache``), then every blob and unpacked layer that neither an index entry nor
        a build cache entry references. Returns the bytes reclaimed."""
        from pycont.images import removal

        return removal.prune(self, in_use, dangling, build_cache)

    def commit_layer(
        self,
        upper_dir: str,
        parent_ref: str | None,
        new_ref: str | None,
        *,
        message: str = "",
        changes: Sequence[str] = (),
        created_by: str = "",
        author: str = "",
        userxattr: bool = True,
    ) -> str:
        """``docker commit``: the container's upper dir becomes one new layer on top of the
        parent image's layers (shared, not copied). Returns the new image's id
        (:func:`pycont.images.commit.commit_layer`, which says what ``userxattr`` is)."""
        from pycont.images.commit import commit_layer

        return commit_layer(
            self,
            upper_dir,
            parent_ref,
            new_ref,
            message=message,
            changes=changes,
            created_by=created_by,
            author=author,
            userxattr=userxattr,
        )


def _check_config(config: dict[str, Any], what: str) -> None:
    """Refuse a config whose fields have the wrong types (:mod:`.jsonlimits`) before it is
    stored: a base image stored by an older pycont may carry a ``Cmd`` that is a string."""
    try:
        jsonlimits.check_config(config)
    except jsonlimits.JSONRefused as err:
        raise UsageError(f"{what}: {err}") from None
