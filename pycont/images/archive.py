"""Image archives: ``docker save`` and ``docker load``, images as one tar file to carry around.

Two formats exist. A *docker-archive* (what ``docker save`` wrote before docker 25, and what
skopeo and podman read and write) holds ``manifest.json`` (per image: its config file, its
names, its layer files), the config as ``<image id>.json`` and each layer as an uncompressed
``<layer id>/layer.tar``. An *oci-archive* is a tar of an OCI image layout (image-spec:
image-layout.md): ``oci-layout``, ``index.json`` naming the manifests, ``blobs/sha256/<hex>``,
the same layout as pycont's own store.

Loading never extracts the archive to disk: each member is read once, into memory or straight
into the blob store under the hash of its content, and only then checked against the digests
the documents name. An image is named in the index only when everything it refers to is there
and verified; a broken archive leaves the index as it was.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import posixpath
import tarfile
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from tarfile import HeaderError, ReadError
from typing import IO, Any, Self, cast

from pycont.errors import ArchiveError, CorruptBlob, ImageNotFound, PycontError, UsageError
from pycont.images import oci
from pycont.images.blobs import DIGEST_RE, canonical_json
from pycont.images.reference import Reference
from pycont.images.report import ImageRecord
from pycont.images.store import Store

__all__ = ["DOCKER_ARCHIVE", "FORMATS", "OCI_ARCHIVE", "ArchiveError", "load", "save"]

DOCKER_ARCHIVE = "docker-archive"
OCI_ARCHIVE = "oci-archive"
FORMATS = (DOCKER_ARCHIVE, OCI_ARCHIVE)
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
CONTAINERD_NAME = "io.containerd.image.name"  # docker 25+ and containerd name images with it
_CHUNK = 1 << 20
_IN_MEMORY = 1 << 20  # members up to this size are kept in memory while the archive is read...
_MEMORY_BUDGET = 64 << 20  # ...until they add up to this; the rest goes to the blob store
_EPOCH = "1970-01-01T00:00:00Z"

PathOrFile = str | os.PathLike[str] | IO[bytes]


def _describe(f: PathOrFile) -> str:
    if isinstance(f, str | os.PathLike):
        return os.fspath(f)
    return str(getattr(f, "name", "<stream>"))


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1]


# -- save -------------------------------------------------------------------------------------
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
            raise ArchiveError(f"{_describe(out)}: cannot write: {err.strerror or err}") from err


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
        config = f"{_hex(rec.id)}.json"
        files[config] = _Out(int(rec.manifest["config"]["size"]), blob=rec.id)
        chain, parent, layers = "", "", []
        for desc, diff_id in zip(rec.manifest["layers"], rec.diff_ids, strict=True):
            # The layer's directory is named by a legacy (v1) id made from its chain id
            # (image-spec config.md: ChainID) and its parent's: the same base layers of two
            # images share one directory, as in docker save.
            chain = _sha256(f"{chain} {diff_id}".encode()) if chain else diff_id
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
        while chunk := stream.read(_CHUNK):
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
            files[f"blobs/sha256/{_hex(desc['digest'])}"] = _Out(
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


# -- load -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _In:
    """A member of the archive read: in memory, or stored as the blob ``digest``."""

    member: str
    digest: str
    size: int
    head: bytes  # its first bytes: what compression it has
    data: bytes | None = None


def load(inp: PathOrFile, store: Store | None = None) -> list[str]:
    """``docker load``: add the images of a docker-archive or an oci-archive (plain or
    compressed) to the store. Returns what was loaded: a name (``busybox:latest``) per named
    image, the id (``sha256:...``) of each unnamed one. ArchiveError when the archive is not
    one, is incomplete or does not match its digests; nothing is added then."""
    store = store or Store()
    name = _describe(inp)
    with contextlib.ExitStack() as stack:
        if isinstance(inp, str | os.PathLike):
            try:
                f: IO[bytes] = stack.enter_context(open(inp, "rb"))  # noqa: SIM115
            except OSError as err:
                raise ArchiveError(f"{name}: cannot open: {err.strerror}") from None
        else:
            f = inp
        stack.enter_context(store.writing())  # prune waits until our blobs are referenced
        arc = _Archive(name, store)
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
        try:
            records = store.add_manifests(plan)
        except PycontError as err:  # a layer refused on unpacking, a blob gone meanwhile
            raise ArchiveError(f"{name}: {err}") from err
    loaded: list[str] = []
    for rec, (_desc, refs) in zip(records, plan, strict=True):
        loaded += [str(r) for r in refs] or [rec.id]
    return loaded


class _StrictHeader(tarfile.TarInfo):
    """Tells a whole archive from a cut one. tarfile takes the end of the data, or garbage,
    where a header should be for the end of the archive; a tar ends with zero blocks (POSIX
    ustar), and anything else after the first member is an error here."""

    @classmethod
    def fromtarfile(cls, tarfile: tarfile.TarFile) -> Self:
        try:
            return super().fromtarfile(tarfile)
        except HeaderError as err:
            if tarfile.offset == 0 or isinstance(err, _EOF_HEADER):  # zero blocks: the end
                raise
            if isinstance(err, _EMPTY_HEADER):
                raise ReadError("truncated: it ends without the end-of-archive blocks") from None
            raise ReadError(f"broken header at byte {tarfile.offset}: {err}") from None


# tarfile's header errors, not in typeshed: which one says why a header could not be read
_EOF_HEADER = cast(type[Exception], getattr(tarfile, "EOFHeaderError"))  # noqa: B009
_EMPTY_HEADER = cast(type[Exception], getattr(tarfile, "EmptyHeaderError"))  # noqa: B009


class _Archive:
    """The members of an archive, read in one pass without extracting anything."""

    def __init__(self, name: str, store: Store) -> None:
        self.name = name
        self.store = store
        self.files: dict[str, _In] = {}
        self.links: dict[str, str] = {}  # member -> the member it links to
        self.in_memory = 0

    def error(self, what: str) -> ArchiveError:
        return ArchiveError(f"{self.name}: {what}")

    # -- reading the outer tar ----------------------------------------------------------
    def read(self, f: IO[bytes]) -> None:
        try:
            with tarfile.open(fileobj=f, mode="r|*", tarinfo=_StrictHeader) as tar:
                for m in tar:
                    self.add(tar, m)
        except tarfile.ReadError as err:
            text = str(err)
            if text == "empty file":
                raise self.error("empty file, not an image archive") from None
            if text.startswith(("truncated", "broken")) or "end of data" in text:
                raise self.error(f"truncated or broken archive: {text}") from None
            raise self.error(f"not a tar archive ({text})") from None
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
            raise self.error(f"truncated or broken archive: {err}") from None

    def path(self, name: str, member: str) -> str:
        """A member name made relative and normal; refused if it could leave the archive."""
        if name.startswith("/") or "\0" in name:
            raise self.error(f"refusing member {member!r}: absolute path or NUL byte")
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise self.error(f"refusing member {member!r}: {name!r} leaves the archive")
        return "/".join(parts)

    def add(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        path = self.path(m.name, m.name)
        if m.isdir():
            return
        if path in self.files or path in self.links:
            raise self.error(f"refusing member {m.name!r}: it appears twice")
        if m.issym():  # podman's docker-archive: <layer id>/layer.tar -> ../<diff_id>.tar
            target = posixpath.normpath(posixpath.join(posixpath.dirname(path), m.linkname))
            self.links[path] = self.path(target, m.name)
        elif m.islnk():
            self.links[path] = self.path(m.linkname, m.name)
        elif m.isreg():
            self.files[path] = self.content(tar, m, path)
        else:
            raise self.error(
                f"refusing member {m.name!r}: an image archive holds only files and links"
            )

    def content(self, tar: tarfile.TarFile, m: tarfile.TarInfo, path: str) -> _In:
        src = tar.extractfile(m)
        assert src is not None
        parts = path.split("/")
        named = f"sha256:{parts[2]}" if len(parts) == 3 and parts[:2] == ["blobs", "sha256"] else ""
        if named and not DIGEST_RE.fullmatch(named):
            raise self.error(f"refusing member {m.name!r}: not a sha256 blob name")
        if not named and m.size <= _IN_MEMORY and self.in_memory + m.size <= _MEMORY_BUDGET:
            data = src.read()
            self.in_memory += len(data)
            return _In(path, _sha256(data), len(data), data[:8], data)
        head, size, h = b"", 0, hashlib.sha256()
        # An OCI blob already in the store is hashed, not written again.
        writer = None if named and self.store.blobs.exists(named) else self.store.blobs.writer()
        try:
            while chunk := src.read(_CHUNK):
                head = head or chunk[:8]
                size += len(chunk)
                h.update(chunk)
                if writer is not None:
                    writer.write(chunk)
            digest = "sha256:" + h.hexdigest()
            if named and digest != named:
                raise self.error(f"blob {m.name!r} is corrupt: its content hashes to {digest}")
            if writer is not None:
                writer.commit()
        finally:
            if writer is not None and not writer.digest:
                writer.abort()
        return _In(path, digest, size, head)

    # -- finding and using members ------------------------------------------------------
    def get(self, path: str, what: str) -> _In:
        seen: list[str] = []
        while path in self.links and path not in seen and len(seen) < 16:
            seen.append(path)
            path = self.links[path]
        found = self.files.get(path)
        if found is None:
            raise self.error(f"{what} {path!r} is missing from the archive")
        return found

    def read_bytes(self, item: _In) -> bytes:
        if item.data is not None:
            return item.data
        return self.store.blobs.read(item.digest)

    def json(self, item: _In, what: str) -> Any:
        try:
            return json.loads(self.read_bytes(item))
        except ValueError as err:
            raise self.error(f"{what} {item.member!r} is not valid JSON: {err}") from None

    def blob(self, desc: Any, what: str) -> _In:
        """The blob an OCI descriptor names, its size checked (its digest was, on reading)."""
        digest = desc.get("digest") if isinstance(desc, dict) else None
        if not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest):
            raise self.error(f"{what}: invalid descriptor {desc!r}")
        item = self.get(f"blobs/sha256/{_hex(digest)}", f"{what} {digest}:")
        if desc.get("size") != item.size:
            raise self.error(
                f"{what} {digest}: {item.size} bytes, its descriptor says {desc.get('size')}"
            )
        return item

    def stored(self, item: _In) -> str:
        """Put a member kept in memory into the blob store; its digest."""
        if item.data is not None:
            self.store.put_blob(item.data, item.digest)
        return item.digest

    def diff_id(self, item: _In, gzipped: bool, what: str) -> str:
        """The digest of the layer's uncompressed tar: what an image config lists."""
        if not gzipped:
            return item.digest
        h = hashlib.sha256()
        try:
            source = (
                io.BytesIO(item.data)
                if item.data is not None
                else self.store.open_blob(item.digest)
            )
            with source, gzip.GzipFile(fileobj=cast(IO[bytes], source), mode="rb") as z:
                while chunk := z.read(_CHUNK):
                    h.update(chunk)
        except (OSError, EOFError, zlib.error) as err:
            raise self.error(f"{what} {item.member!r} is not valid gzip: {err}") from None
        return "sha256:" + h.hexdigest()


def _layer_media(arc: _Archive, item: _In) -> str:
    """docker-archive layers are plain tars; a gzip one is accepted, as docker load does."""
    if item.head.startswith(b"\x1f\x8b"):
        return oci.LAYER_GZIP
    for magic, kind in ((b"\x28\xb5\x2f\xfd", "zstd"), (b"\xfd7zXZ", "xz"), (b"BZh", "bzip2")):
        if item.head.startswith(magic):
            raise arc.error(f"layer {item.member!r}: {kind} compression is not supported")
    return oci.LAYER


def _config(arc: _Archive, item: _In, layers: int, what: str) -> list[str]:
    """The diff_ids of an image config, checked against the number of layers."""
    doc = arc.json(item, what)
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


def _check_layer(arc: _Archive, item: _In, gzipped: bool, diff_id: str) -> None:
    actual = arc.diff_id(item, gzipped, "layer")
    if actual != diff_id:
        raise arc.error(
            f"layer {item.member!r} is corrupt: its content hashes to {actual}, "
            f"the image config says {diff_id}"
        )


def _refs(arc: _Archive, names: Any, where: str) -> list[Reference]:
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


def _plan_docker(arc: _Archive) -> Plan:
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
        digest = arc.store.put_blob(manifest)
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


def _plan_oci(arc: _Archive) -> Plan:
    layout = arc.json(arc.get("oci-layout", "file"), "file")
    if not isinstance(layout, dict) or layout.get("imageLayoutVersion") != "1.0.0":
        raise arc.error(f"oci-layout: unsupported layout {layout!r} (expected version 1.0.0)")
    index = arc.json(arc.get("index.json", "file"), "file")
    entries = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(entries, list) or not entries:
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


def _platform_manifest(arc: _Archive, desc: Any, depth: int) -> dict[str, Any]:
    """The image manifest an index entry leads to (this machine's, in a multi-platform one)."""
    item = arc.blob(desc, "index entry")
    media = desc.get("mediaType")
    if media in (oci.MANIFEST, DOCKER_MANIFEST):
        return cast(dict[str, Any], desc)
    if media not in (oci.INDEX, DOCKER_LIST) or depth > 3:
        raise arc.error(f"index entry {desc.get('digest')}: unsupported media type {media!r}")
    nested = arc.json(item, "image index").get("manifests") or []
    arch = oci.architecture()
    for d in nested:
        platform = d.get("platform") or {}
        if platform.get("os") == "linux" and platform.get("architecture") == arch:
            return _platform_manifest(arc, d, depth + 1)
    raise arc.error(f"image index {desc['digest']}: no image for linux/{arch}")


def _check_manifest(arc: _Archive, desc: dict[str, Any]) -> None:
    """Everything a manifest names is in the archive, and every layer matches its diff_id."""
    item = arc.blob(desc, "manifest")
    man = arc.json(item, "manifest")
    if not isinstance(man, dict) or not isinstance(man.get("layers"), list):
        raise arc.error(f"manifest {desc['digest']}: not an image manifest")
    cfg = arc.blob(man.get("config"), "image config")
    diff_ids = _config(arc, cfg, len(man["layers"]), "image config")
    for layer, diff_id in zip(man["layers"], diff_ids, strict=True):
        if not isinstance(layer, dict) or layer.get("mediaType") not in oci.LAYER_TYPES:
            media = layer.get("mediaType") if isinstance(layer, dict) else None
            raise arc.error(f"manifest {desc['digest']}: unsupported layer media type {media!r}")
        media = layer["mediaType"]
        _check_layer(arc, arc.blob(layer, "layer"), str(media).endswith("gzip"), diff_id)
