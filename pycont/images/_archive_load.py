"""``docker load``: the images of a docker-archive or an oci-archive, checked, then named.

Each format is turned into a plan: per image, an OCI manifest (stored) and the names to give
it. Every config, layer and manifest is checked against the digests the archive's documents
name before anything enters the store: a broken archive leaves the store as it was (what was
read waits in a staging folder, removed on failure).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from typing import IO, Any, cast

from pycont import failpoints
from pycont.errors import ArchiveError, PycontError, UsageError
from pycont.images import jsonlimits, oci
from pycont.images._archive_common import (
    CONTAINERD_NAME,
    PathOrFile,
    describe,
)
from pycont.images._archive_read import ArchiveReader, Member
from pycont.images.blobs import DIGEST_RE, canonical_json
from pycont.images.reference import Reference
from pycont.images.store import Store

__all__ = ["load"]


def load(inp: PathOrFile, store: Store | None = None) -> list[str]:
    """``docker load``: add the images of a docker-archive or an oci-archive (plain or
    compressed) to the store. Returns what was loaded: a name (``busybox:latest``) per named
    image, the id (``sha256:...``) of each unnamed one. ArchiveError when the archive is not
    one, is incomplete or does not match its digests; nothing is added then."""
    store = store or Store()
    name = describe(inp)
    with contextlib.ExitStack() as stack:
        if isinstance(inp, str | os.PathLike):
            try:
                f: IO[bytes] = stack.enter_context(open(inp, "rb"))  # noqa: SIM115
            except OSError as err:
                raise ArchiveError(f"{name}: cannot open: {err.strerror}") from None
        else:
            f = inp
        stage = stack.enter_context(store.stage())  # removed whatever happens
        arc = ArchiveReader(name, stage.blobs)
        arc.read(f)
        if "manifest.json" in arc.files:
            plan = _plan_docker(arc)
        elif "oci-layout" in arc.files:
            plan = _plan_oci(arc)
        else:
            raise ArchiveError(
                f"{name}: not an image archive: no manifest.json (docker-archive) "
                "and no oci-layout (oci-archive)"
            )
        failpoints.hit("load.blobs-staged")  # read and checked; nothing is in the store yet
        try:
            records = store.add_manifests(plan, staging=stage, step="load.published")
        except PycontError as err:  # a layer refused on unpacking, a blob gone meanwhile
            raise ArchiveError(f"{name}: {err}") from err
    loaded: list[str] = []
    for rec, (_desc, refs) in zip(records, plan, strict=True):
        loaded += [str(r) for r in refs] or [rec.id]
    return loaded


def _layer_media(arc: ArchiveReader, item: Member) -> str:
    """docker-archive layers are plain tars; a gzip one is accepted, as docker load does."""
    if item.head.startswith(b"\x1f\x8b"):
        return oci.LAYER_GZIP
    for magic, kind in ((b"\x28\xb5\x2f\xfd", "zstd"), (b"\xfd7zXZ", "xz"), (b"BZh", "bzip2")):
        if item.head.startswith(magic):
            raise arc.error(f"layer {item.member!r}: {kind} compression is not supported")
    return oci.LAYER


def _config(arc: ArchiveReader, item: Member, layers: int, what: str) -> list[str]:
    """The diff_ids of an image config, checked against the number of layers."""
    doc = arc.json(item, what)
    try:
        jsonlimits.check_config(doc)  # Cmd a string, Env with a NUL...: refused here
    except jsonlimits.JSONRefused as err:
        raise arc.error(f"{what} {item.member!r}: {err}") from None
    rootfs = doc.get("rootfs") if isinstance(doc, dict) else None
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(
        isinstance(d, str) and DIGEST_RE.fullmatch(d) for d in diff_ids
    ):
        raise arc.error(f"{what} {item.member!r} has no valid rootfs.diff_ids")
    if len(diff_ids) != layers:
        raise arc.error(
            f"{what} {item.member!r} lists {len(diff_ids)} diff_ids for {layers} layers"
        )
    return diff_ids


def _check_layer(arc: ArchiveReader, item: Member, gzipped: bool, diff_id: str) -> None:
    actual = arc.diff_id(item, gzipped, "layer")
    if actual != diff_id:
        raise arc.error(
            f"layer {item.member!r} is corrupt: its content hashes to {actual}, "
            f"the image config says {diff_id}"
        )


def _refs(arc: ArchiveReader, names: Any, where: str) -> list[Reference]:
    if names is None:
        return []
    if not isinstance(names, list):
        raise arc.error(f"{where}: RepoTags must be a list")
    out = []
    for text in names:
        try:
            ref = Reference.parse(str(text))
        except UsageError as err:
            raise arc.error(f"{where}: {err}") from None
        if ref.digest:
            raise arc.error(f"{where}: {text!r} is not a tag")
        out.append(ref)
    return out


Plan = list[tuple[dict[str, Any], list[Reference]]]


def _plan_docker(arc: ArchiveReader) -> Plan:
    """A docker-archive's images as OCI manifests (stored), each with its names."""
    doc = arc.json(arc.get("manifest.json", "file"), "file")
    if not isinstance(doc, list) or not doc:
        raise arc.error("manifest.json lists no image")
    plan: Plan = []
    for i, entry in enumerate(doc):
        where = f"manifest.json entry {i}"
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("Config"), str)
            and isinstance(entry.get("Layers"), list)
            and all(isinstance(p, str) for p in entry["Layers"])
        ):
            raise arc.error(f"{where}: expected Config, RepoTags and Layers")
        cfg = arc.get(arc.path(entry["Config"], entry["Config"]), "image config")
        # docker names the config by its digest (<hex>.json, or blobs/sha256/<hex> since 25)
        base = posixpath.basename(cfg.member).removesuffix(".json")
        if DIGEST_RE.fullmatch(f"sha256:{base}") and cfg.digest != f"sha256:{base}":
            raise arc.error(f"image config {cfg.member!r} is corrupt: it hashes to {cfg.digest}")
        diff_ids = _config(arc, cfg, len(entry["Layers"]), "image config")
        layers = []
        for path, diff_id in zip(entry["Layers"], diff_ids, strict=True):
            item = arc.get(arc.path(path, path), "layer")
            media = _layer_media(arc, item)
            _check_layer(arc, item, media == oci.LAYER_GZIP, diff_id)
            layers.append(oci.descriptor(media, arc.stored(item), item.size))
        config = oci.descriptor(oci.CONFIG, arc.stored(cfg), cfg.size)
        manifest = canonical_json(oci.manifest(config, layers))
        digest = arc.blobs.put(manifest)
        refs = _refs(arc, entry.get("RepoTags"), where)
        plan.append((oci.descriptor(oci.MANIFEST, digest, len(manifest)), refs))
    return plan


def _oci_name(desc: dict[str, Any]) -> Reference | None:
    """The name an index entry gives its image: containerd's full name, else ref.name when it
    is a full reference. A bare ``latest`` (a tag without a repository) names nothing."""
    notes = desc.get("annotations") or {}
    text = notes.get(CONTAINERD_NAME) or notes.get(oci.REF_NAME)
    if not isinstance(text, str) or not ("/" in text or ":" in text):
        return None
    try:
        ref = Reference.parse(text)
    except UsageError:
        return None
    return None if ref.digest else ref


def _plan_oci(arc: ArchiveReader) -> Plan:
    layout = arc.json(arc.get("oci-layout", "file"), "file")
    if not isinstance(layout, dict) or layout.get("imageLayoutVersion") != "1.0.0":
        raise arc.error(f"oci-layout: unsupported layout {layout!r} (expected version 1.0.0)")
    index = arc.json(arc.get("index.json", "file"), "file")
    try:
        jsonlimits.check_index(index)
    except jsonlimits.JSONRefused as err:
        raise arc.error(f"index.json: {err}") from None
    entries = index["manifests"]
    if not entries:
        raise arc.error("index.json lists no image")
    by_digest: dict[str, tuple[dict[str, Any], list[Reference]]] = {}
    for entry in entries:
        desc = _platform_manifest(arc, entry, 0)
        _check_manifest(arc, desc)
        plain = {
            "mediaType": desc.get("mediaType") or oci.MANIFEST,
            **{k: desc[k] for k in ("digest", "size")},
        }
        refs = by_digest.setdefault(desc["digest"], (plain, []))[1]
        ref = _oci_name(entry) if isinstance(entry, dict) else None
        if ref is not None and ref not in refs:
            refs.append(ref)
    return list(by_digest.values())


def _platform_manifest(arc: ArchiveReader, desc: Any, depth: int) -> dict[str, Any]:
    """The image manifest an index entry leads to (this machine's, in a multi-platform one)."""
    item = arc.blob(desc, "index entry")
    media = desc.get("mediaType")
    if media in oci.MANIFEST_TYPES:
        return cast(dict[str, Any], desc)
    if media not in oci.INDEX_TYPES or depth > 3:
        raise arc.error(f"index entry {desc.get('digest')}: unsupported media type {media!r}")
    doc = arc.json(item, "image index")
    try:
        jsonlimits.check_index(doc)
    except jsonlimits.JSONRefused as err:
        raise arc.error(f"image index {desc['digest']}: {err}") from None
    nested = doc["manifests"]
    arch = oci.architecture()
    for d in nested:
        platform = d.get("platform") or {}
        if platform.get("os") == "linux" and platform.get("architecture") == arch:
            return _platform_manifest(arc, d, depth + 1)
    raise arc.error(f"image index {desc['digest']}: no image for linux/{arch}")


def _check_manifest(arc: ArchiveReader, desc: dict[str, Any]) -> None:
    """Everything a manifest names is in the archive, and every layer matches its diff_id."""
    item = arc.blob(desc, "manifest")
    man = arc.json(item, "manifest")
    try:
        jsonlimits.check_manifest(man)
    except jsonlimits.JSONRefused as err:
        raise arc.error(f"manifest {desc['digest']}: not an image manifest: {err}") from None
    cfg = arc.blob(man.get("config"), "image config")
    diff_ids = _config(arc, cfg, len(man["layers"]), "image config")
    for layer, diff_id in zip(man["layers"], diff_ids, strict=True):
        if not isinstance(layer, dict) or layer.get("mediaType") not in oci.LAYER_TYPES:
            media = layer.get("mediaType") if isinstance(layer, dict) else None
            raise arc.error(f"manifest {desc['digest']}: unsupported layer media type {media!r}")
        media = layer["mediaType"]
        _check_layer(arc, arc.blob(layer, "layer"), str(media).endswith("gzip"), diff_id)
