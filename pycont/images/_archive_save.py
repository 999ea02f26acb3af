"""``docker save``: images written as one tar, a docker-archive or an oci-archive.

The archive is a pure function of the images: members in name order, no owners, no times, so
the same images give the same bytes. Every blob is read back from the store and verified on the
way out; a path is written to a temporary sibling and renamed when complete.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, cast

from pycont.errors import ArchiveError, CorruptBlob, ImageNotFound, PycontError, UsageError
from pycont.images import oci
from pycont.images._archive_common import (
    CHUNK,
    CONTAINERD_NAME,
    DOCKER_ARCHIVE,
    FORMATS,
    PathOrFile,
    describe,
    hex_of,
)
from pycont.images.blobs import canonical_json, sha256_of
from pycont.images.reference import Reference
from pycont.images.report import ImageRecord
from pycont.images.store import Store

__all__ = ["save"]

_EPOCH = "1970-01-01T00:00:00Z"


@dataclass(frozen=True)
class _Out:
    """One file of the archive being written: bytes, a blob, or a gzip blob decompressed."""

    size: int
    data: bytes | None = None
    blob: str = ""  # digest of a stored blob
    gunzip: bool = False


def save(
    refs: Sequence[str],
    out: PathOrFile,
    format: str = DOCKER_ARCHIVE,  # noqa: A002 - docker's flag name
    store: Store | None = None,
) -> None:
    """``docker save``: write the images ``refs`` to ``out`` (a path, written atomically, or a
    binary stream) as a docker-archive or an oci-archive. Same images, same bytes."""
    if format not in FORMATS:
        raise UsageError(f"unknown archive format {format!r}: use {' or '.join(FORMATS)}")
    if not refs:
        raise UsageError("save: name at least one image")
    store = store or Store()
    with store.writing():  # a concurrent prune waits: every blob we read stays
        images = [_find(store, r) for r in refs]
        files = _docker_files(store, images) if format == DOCKER_ARCHIVE else _oci_files(images)
        try:
            with _output(out) as f:
                _write(store, files, f)
        except PycontError:
            raise
        except OSError as err:  # a full disk, a closed pipe, a directory in the way
            raise ArchiveError(f"{describe(out)}: cannot write: {err.strerror or err}") from err


def _find(store: Store, text: str) -> tuple[ImageRecord, Reference | None]:
    """The image ``text`` names, and the name to give it in the archive (None: by id)."""
    try:
        rec = store.lookup(text)
    except ImageNotFound:
        from pycont.images import resolve  # builds a built-in (busybox) on first use

        resolve(text, store)
        rec = store.lookup(text)
    try:
        ref: Reference | None = Reference.parse(text)
    except UsageError:
        ref = None
    if ref is not None and (ref.digest or rec.reference != str(ref)):
        ref = None  # found by id or digest: docker saves such an image without a name
    return rec, ref


def _docker_files(
    store: Store, images: list[tuple[ImageRecord, Reference | None]]
) -> dict[str, _Out]:
    """docker save's layout: manifest.json, repositories, <id>.json, <layer id>/layer.tar."""
    by_id: dict[str, tuple[ImageRecord, list[Reference]]] = {}
    for rec, ref in images:
        names = by_id.setdefault(rec.id, (rec, []))[1]
        if ref is not None and ref not in names:
            names.append(ref)
    files: dict[str, _Out] = {}
    manifest: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    for rec, names in by_id.values():
        config = f"{hex_of(rec.id)}.json"
        files[config] = _Out(int(rec.manifest["config"]["size"]), blob=rec.id)
        chain, parent, layers = "", "", []
        for desc, diff_id in zip(rec.manifest["layers"], rec.diff_ids, strict=True):
            # The layer's directory is named by a legacy (v1) id made from its chain id
            # (image-spec config.md: ChainID) and its parent's: the same base layers of two
            # images share one directory, as in docker save.
            chain = sha256_of(f"{chain} {diff_id}".encode()) if chain else diff_id
            v1 = hashlib.sha256(canonical_json({"layer_id": chain, "parent": parent})).hexdigest()
            files[f"{v1}/layer.tar"] = _layer_file(store, desc, diff_id)
            files[f"{v1}/VERSION"] = _bytes(b"1.0")
            legacy = {"id": v1, "created": _EPOCH, "os": "linux"}
            if parent:
                legacy["parent"] = parent
            files[f"{v1}/json"] = _bytes(canonical_json(legacy))
            parent = v1
            layers.append(f"{v1}/layer.tar")
        # Fully qualified, as skopeo and podman write them: podman reads a short name such as
        # "busybox:latest" as localhost/busybox (libimage.NormalizeName); docker reads both.
        tags = [r.canonical for r in names]
        manifest.append({"Config": config, "RepoTags": tags or None, "Layers": layers})
        for r in names:
            repositories.setdefault(r.name, {})[str(r.tag)] = parent
    files["manifest.json"] = _bytes(json.dumps(manifest, separators=(",", ":")).encode())
    if repositories:
        files["repositories"] = _bytes(canonical_json(repositories))
    return files


def _bytes(data: bytes) -> _Out:
    return _Out(len(data), data=data)


def _layer_file(store: Store, desc: dict[str, Any], diff_id: str) -> _Out:
    """A docker-archive layer is an uncompressed tar whose digest is its diff_id."""
    if not str(desc.get("mediaType", oci.LAYER)).endswith("gzip"):
        if desc["digest"] != diff_id:
            raise CorruptBlob(f"layer {desc['digest']}: uncompressed, but its diff_id is {diff_id}")
        return _Out(int(desc["size"]), blob=desc["digest"])
    size, digest = 0, hashlib.sha256()
    with store.open_blob(desc["digest"]) as blob:
        stream = gzip.GzipFile(fileobj=cast(IO[bytes], blob), mode="rb")
        while chunk := stream.read(CHUNK):
            size += len(chunk)
            digest.update(chunk)
        blob.verify()
    if "sha256:" + digest.hexdigest() != diff_id:
        raise CorruptBlob(f"layer {desc['digest']}: decompressed, it does not hash to {diff_id}")
    return _Out(size, blob=desc["digest"], gunzip=True)


def _oci_files(images: list[tuple[ImageRecord, Reference | None]]) -> dict[str, _Out]:
    """An OCI image layout: oci-layout, index.json, every blob under blobs/sha256."""
    files: dict[str, _Out] = {}
    manifests: list[dict[str, Any]] = []
    for rec, ref in images:
        for desc in (rec.descriptor, rec.manifest["config"], *rec.manifest["layers"]):
            files[f"blobs/sha256/{hex_of(desc['digest'])}"] = _Out(
                int(desc["size"]), blob=desc["digest"]
            )
        entry = dict(rec.descriptor)
        if ref is not None:  # the full name, as podman and skopeo write it; docker 25's key too
            entry["annotations"] = {oci.REF_NAME: ref.canonical, CONTAINERD_NAME: ref.canonical}
        if entry not in manifests:
            manifests.append(entry)
    index = {"schemaVersion": 2, "mediaType": oci.INDEX, "manifests": manifests}
    files["index.json"] = _bytes(json.dumps(index, indent=2, sort_keys=True).encode() + b"\n")
    files["oci-layout"] = _bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    return files


@contextlib.contextmanager
def _output(out: PathOrFile) -> Iterator[IO[bytes]]:
    """A path is written to a temporary sibling, renamed when complete: never half a file."""
    if not isinstance(out, str | os.PathLike):
        yield out
        return
    path = os.path.abspath(os.fspath(out))
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{os.path.basename(path)}.tmp-", dir=os.path.dirname(path)
        )
    except OSError as err:
        raise ArchiveError(f"{out}: cannot write: {err.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write(store: Store, files: dict[str, _Out], out: IO[bytes]) -> None:
    """A tar of ``files`` in name order, parents first, no owner names, no times: the same
    files give the same bytes."""
    dirs = {"/".join(n.split("/")[:i]) for n in files for i in range(1, n.count("/") + 1)}
    names = sorted([*files, *dirs], key=lambda n: n.split("/"))
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.uname = info.gname = ""
            info.mtime = 0
            if name in dirs:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
                continue
            f = files[name]
            info.mode, info.size = 0o644, f.size
            if f.data is not None:
                tar.addfile(info, io.BytesIO(f.data))
                continue
            with store.open_blob(f.blob) as blob:
                if f.gunzip:
                    unzipped = gzip.GzipFile(fileobj=cast(IO[bytes], blob), mode="rb")
                    tar.addfile(info, cast(IO[bytes], unzipped))
                else:
                    tar.addfile(info, cast(IO[bytes], blob))
                blob.verify()  # the whole blob was read: a corrupt one raises here
