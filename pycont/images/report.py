"""What the image store reports: images, one image in full, its history, its disk usage.

Frozen dataclasses with docker's column names in mind (``docker images``, ``docker history``,
``docker system df -v``); sizes in bytes, times in seconds since the epoch. Formatting them is
the CLI's and the notebook display's job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pycont.images import oci

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

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[1][:12]

    @property
    def created(self) -> float:
        return oci.parse_time(self.config.get("created"))

    @property
    def size(self) -> int:
        """The layers' bytes (what ``docker images`` shows)."""
        return sum(int(d["size"]) for d in self.manifest.get("layers") or ())

    def _cfg(self) -> dict[str, Any]:
        return self.config.get("config") or {}

    @property
    def cmd(self) -> tuple[str, ...]:
        return tuple(self._cfg().get("Cmd") or ())

    @property
    def entrypoint(self) -> tuple[str, ...]:
        return tuple(self._cfg().get("Entrypoint") or ())

    @property
    def env(self) -> tuple[str, ...]:
        return tuple(self._cfg().get("Env") or ())

    @property
    def workdir(self) -> str:
        return str(self._cfg().get("WorkingDir") or "/")

    @property
    def user(self) -> str:
        return str(self._cfg().get("User") or "")

    @property
    def labels(self) -> dict[str, str]:
        return dict(self._cfg().get("Labels") or {})

    @property
    def exposed_ports(self) -> tuple[str, ...]:
        """The image's ``EXPOSE``d ports, ``"3000/tcp"`` (what ``run -P`` publishes)."""
        return tuple(sorted(self._cfg().get("ExposedPorts") or {}))


@dataclass(frozen=True)
class ImageInfo:
    """A row of ``docker images``."""

    reference: str  # "busybox:latest", or "<none>:<none>" for an untagged image
    id: str
    digest: str
    created: float
    size: int

    @classmethod
    def of(cls, rec: ImageRecord) -> ImageInfo:
        return cls(rec.reference or f"{NONE}:{NONE}", rec.id, rec.digest, rec.created, rec.size)

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
    """A row of ``docker system df -v``'s images table."""

    reference: str
    id: str
    created: float
    size: int
    shared_size: int  # bytes in layers that other images also use
    unique_size: int  # bytes only this image has: what removing it would free
    containers: int


@dataclass(frozen=True)
class DiskUsage:
    """``docker system df -v`` for images: ``total`` counts every shared layer once."""

    images: list[ImageUsage] = field(default_factory=list)
    total: int = 0  # bytes of distinct layers
    layers: int = 0  # distinct layers
    on_disk: int = 0  # bytes under <root>/images: blobs, unpacked layers, index

    @property
    def naive_total(self) -> int:
        """The sum of the images' sizes, as if no layer were shared."""
        return sum(i.size for i in self.images)


def history_rows(rec: ImageRecord, local: Sequence[ImageRecord]) -> list[HistoryEntry]:
    """``docker history``: one row per step, newest first. A step shows the id of a ``local``
    image that ends there (v1 under v2), else ``<missing>``, as docker does for pulled ones."""
    steps = rec.config.get("history") or [{} for _ in rec.diff_ids]
    rows, layers = [], 0
    for i, step in enumerate(steps):
        empty = bool(step.get("empty_layer"))
        size = 0 if empty else int(rec.manifest["layers"][layers]["size"])
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
    """``docker system df -v``: a layer is shared when images with different ids have it."""
    users: dict[str, set[str]] = {}
    sizes: dict[str, int] = {}
    for rec in recs:
        for desc in rec.manifest.get("layers") or ():
            users.setdefault(desc["digest"], set()).add(rec.id)
            sizes[desc["digest"]] = int(desc["size"])
    rows = []
    for rec in recs:
        digests = {d["digest"] for d in rec.manifest.get("layers") or ()}
        shared = sum(sizes[d] for d in digests if len(users[d]) > 1)
        size = sum(sizes[d] for d in digests)
        rows.append(
            ImageUsage(
                reference=ImageInfo.of(rec).reference,
                id=rec.id,
                created=rec.created,
                size=size,
                shared_size=shared,
                unique_size=size - shared,
                containers=containers(rec.id),
            )
        )
    rows.sort(key=lambda u: (-u.created, u.reference))
    return DiskUsage(images=rows, total=sum(sizes.values()), layers=len(sizes), on_disk=on_disk)
