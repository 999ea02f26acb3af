"""What the image store reports: images, one image in full, its history, its disk usage.

Frozen dataclasses with docker's column names in mind (``docker images``, ``docker history``,
``docker system df -v``); sizes in bytes, times in seconds since the epoch. Formatting them is
the CLI's and the notebook display's job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pycont.errors import UsageError
from pycont.images import jsonlimits, oci
from pycont.images.reference import Reference

__all__ = [
    "DiskUsage",
    "HistoryEntry",
    "ImageInfo",
    "ImageRecord",
    "ImageUsage",
    "disk_usage",
    "history_rows",
]

NONE = "<none>"


@dataclass(frozen=True)
class ImageRecord:
    """One image in full: its documents and its unpacked layers, top first (overlay order)."""

    reference: str | None  # "busybox:latest"; None for an untagged image or a lookup by id
    id: str  # digest of the config: "sha256:..."
    digest: str  # digest of the manifest (what "busybox@sha256:..." pins)
    descriptor: dict[str, Any]
    manifest: dict[str, Any]
    config: dict[str, Any]
    diff_ids: tuple[str, ...]  # bottom first, as in the config
    layers: tuple[str, ...]  # unpacked layer dirs, top first: overlay's lowerdir order
    # (layer descriptor, diff_id) -> the layer's uncompressed size (Store.layer_size, see
    # pycont.images.layer_sizes); asked only when a size is read. None: the descriptors' sizes,
    # which are the layers' only for uncompressed blobs (a record made by hand).
    sizer: Callable[[dict[str, Any], str], int] | None = field(
        default=None, compare=False, repr=False
    )

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[1][:12]

    @property
    def created(self) -> float:
        return oci.parse_time(self.config.get("created"))

    @cached_property
    def layer_sizes(self) -> tuple[int, ...]:
        """Each layer's uncompressed size, bottom first (as ``diff_ids``)."""
        descs = self.manifest.get("layers") or ()
        if self.sizer is not None:
            sizer = self.sizer
            return tuple(sizer(d, i) for d, i in zip(descs, self.diff_ids, strict=True))
        for d in descs:
            if str(d.get("mediaType", "")).endswith("gzip"):
                raise ValueError(f"layer {d['digest']} is gzip: its size needs the store")
        return tuple(int(d["size"]) for d in descs)

    @property
    def size(self) -> int:
        """Bytes of its distinct layers, uncompressed (``docker images``' SIZE): the same
        whatever compression brought the image."""
        return sum(dict(zip(self.diff_ids, self.layer_sizes, strict=True)).values())

    def _cfg(self) -> dict[str, Any]:
        cfg = self.config.get("config") or {}
        if not isinstance(cfg, dict):
            raise self._refused(jsonlimits.JSONRefused("config must be an object"))
        return cfg

    def _field(self, name: str) -> Any:
        """A config field, type-checked (:mod:`pycont.images.jsonlimits`): a store written
        before the checks existed may hold an image whose ``Cmd`` is a string."""
        value = self._cfg().get(name)
        try:
            jsonlimits.check_config({"config": {name: value}, "rootfs": {}})
        except jsonlimits.JSONRefused as err:
            raise self._refused(err) from None
        return value

    def _refused(self, err: Exception) -> UsageError:
        return UsageError(f"image {self.reference or self.short_id}: {err}")

    @property
    def cmd(self) -> tuple[str, ...]:
        return tuple(self._field("Cmd") or ())

    @property
    def entrypoint(self) -> tuple[str, ...]:
        return tuple(self._field("Entrypoint") or ())

    @property
    def env(self) -> tuple[str, ...]:
        return tuple(self._field("Env") or ())

    @property
    def workdir(self) -> str:
        return str(self._field("WorkingDir") or "/")

    @property
    def user(self) -> str:
        return str(self._field("User") or "")

    @property
    def labels(self) -> dict[str, str]:
        return dict(self._field("Labels") or {})

    @property
    def exposed_ports(self) -> tuple[str, ...]:
        """The image's ``EXPOSE``d ports, ``"3000/tcp"`` (what ``run -P`` publishes)."""
        return tuple(sorted(self._field("ExposedPorts") or {}))


@dataclass(frozen=True)
class ImageInfo:
    """A row of ``docker images``."""

    reference: str  # "busybox:latest", or "<none>:<none>" for an untagged image
    id: str
    digest: str
    created: float
    size: int

    problem: str = ""  # why the image cannot be used (a blob missing): `rmi` removes it

    @classmethod
    def of(cls, rec: ImageRecord) -> ImageInfo:
        return cls(rec.reference or f"{NONE}:{NONE}", rec.id, rec.digest, rec.created, rec.size)

    @classmethod
    def broken(cls, entry: dict[str, Any], image_id: str, err: BaseException) -> ImageInfo:
        """The row of an image whose manifest, config or a layer cannot be read."""
        name = (entry.get("annotations") or {}).get(oci.REF_NAME)
        try:
            ref = str(Reference.parse(name)) if name else f"{NONE}:{NONE}"
        except UsageError:
            ref = str(name)
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        return cls(ref, image_id, str(entry["digest"]), 0.0, 0, problem=why)

    @property
    def repository(self) -> str:
        return self.reference.rpartition(":")[0] if ":" in self.reference else self.reference

    @property
    def tag(self) -> str:
        return self.reference.rpartition(":")[2] if ":" in self.reference else NONE

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[1][:12]


@dataclass(frozen=True)
class HistoryEntry:
    """A row of ``docker history``: one build step, a layer or a config-only change."""

    id: str  # the image this step ends, when it is in the store; "<missing>" otherwise
    created: float
    created_by: str
    size: int
    comment: str = ""
    empty_layer: bool = False


@dataclass(frozen=True)
class ImageUsage:
    """A row of ``docker system df -v``'s images table: one per name, as docker prints them
    (every name of an image id has the same numbers)."""

    reference: str
    id: str
    created: float
    size: int  # shared_size + unique_size
    shared_size: int  # bytes in layers that images with another id also have
    unique_size: int  # bytes only this image id has: what removing it would free
    containers: int


@dataclass(frozen=True)
class DiskUsage:
    """``docker system df`` for images. Rows are per name; the totals count each image id
    and each distinct layer (diff_id: the store unpacks each once) once."""

    images: list[ImageUsage] = field(default_factory=list)
    total: int = 0  # bytes of distinct layers
    layers: int = 0  # distinct layers
    on_disk: int = 0  # bytes under <root>/images: blobs, unpacked layers, index
    reclaimable: int = 0  # bytes of layers no image used by a container has

    def _by_id(self) -> dict[str, ImageUsage]:
        return {u.id: u for u in self.images}

    @property
    def count(self) -> int:
        """Images: distinct ids (``system df``'s TOTAL)."""
        return len(self._by_id())

    @property
    def active(self) -> int:
        """Images that containers use (``system df``'s ACTIVE)."""
        return sum(1 for u in self._by_id().values() if u.containers)

    @property
    def naive_total(self) -> int:
        """The sum of the images' sizes (each id once), as if no layer were shared."""
        return sum(u.size for u in self._by_id().values())


def history_rows(rec: ImageRecord, local: Sequence[ImageRecord]) -> list[HistoryEntry]:
    """``docker history``: one row per step, newest first. A step shows the id of a ``local``
    image that ends there (v1 under v2), else ``<missing>``, as docker does for pulled ones."""
    steps = rec.config.get("history") or [{} for _ in rec.diff_ids]
    rows, layers = [], 0
    for i, step in enumerate(steps):
        empty = bool(step.get("empty_layer"))
        size = 0 if empty else rec.layer_sizes[layers]
        layers += 0 if empty else 1
        ident = rec.id if i == len(steps) - 1 else "<missing>"
        for other in local:
            if ident == "<missing>" and (
                len(other.config.get("history") or ()) == i + 1
                and other.diff_ids == rec.diff_ids[:layers]
            ):
                ident = other.id
        rows.append(
            HistoryEntry(
                id=ident,
                created=oci.parse_time(step.get("created")),
                created_by=step.get("created_by", ""),
                size=size,
                comment=step.get("comment", ""),
                empty_layer=empty,
            )
        )
    return rows[::-1]


def disk_usage(
    recs: Sequence[ImageRecord], containers: Callable[[str], int], on_disk: int
) -> DiskUsage:
    """``docker system df -v`` from the store's records (one per name; several may have one
    id). A layer is shared when images with different ids have it; it is reclaimable when no
    image a container uses has it (what removing every unused image would free)."""
    sizes: dict[str, int] = {}  # diff_id -> bytes
    users: dict[str, set[str]] = {}  # diff_id -> image ids
    names: dict[str, list[ImageRecord]] = {}  # image id -> its records
    for rec in recs:
        names.setdefault(rec.id, []).append(rec)
        for diff_id, size in zip(rec.diff_ids, rec.layer_sizes, strict=True):
            sizes[diff_id] = size
            users.setdefault(diff_id, set()).add(rec.id)
    rows, needed = [], set()
    for image_id, same in names.items():
        rec, used_by = same[0], containers(image_id)
        layers = set(rec.diff_ids)
        if used_by:
            needed |= layers
        size = sum(sizes[d] for d in layers)
        shared = sum(sizes[d] for d in layers if len(users[d]) > 1)
        # an image with names shows them; one without shows <none>:<none> once
        refs = sorted({r.reference for r in same if r.reference}) or [ImageInfo.of(rec).reference]
        rows += [
            ImageUsage(ref, image_id, rec.created, size, shared, size - shared, used_by)
            for ref in refs
        ]
    rows.sort(key=lambda u: (-u.created, u.reference))
    return DiskUsage(
        images=rows,
        total=sum(sizes.values()),
        layers=len(sizes),
        on_disk=on_disk,
        reclaimable=sum(s for d, s in sizes.items() if d not in needed),
    )
