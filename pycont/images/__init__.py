"""Images: a name that resolves to the read-only layers of a container's root.

An image is a stack of read-only layers plus a config (command, environment). The store is an
OCI image layout under ``<root>/images`` (:mod:`pycont.images.store`); each layer is unpacked
once and shared by every image that has it. The built-in ``busybox`` image is built offline
from Debian's busybox-static on first use. Everything that turns an IMAGE argument into layers
goes through :func:`resolve`.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pycont.errors import ImageNotFound, PycontError
from pycont.images.oci import DEFAULT_PATH
from pycont.images.reference import Reference

__all__ = [
    "DEFAULT_PATH",
    "CorruptBlob",
    "DiskUsage",
    "HistoryEntry",
    "Image",
    "ImageInUse",
    "ImageInfo",
    "ImageRecord",
    "ImageUsage",
    "InUse",
    "LayerError",
    "Reference",
    "Store",
    "build_busybox",
    "resolve",
    "set_in_use_hook",
]

# Imported on first use: `pycont run` needs resolve() and the store, not tar or busybox code,
# and a container's init, which stacks the layers (pycont.overlay, pycont.images.whiteouts),
# needs not even the store.
_LAZY = {
    "ImageInUse": "pycont.images.store",
    "InUse": "pycont.images.store",
    "Store": "pycont.images.store",
    "set_in_use_hook": "pycont.images.store",
    "CorruptBlob": "pycont.images.blobs",
    "DiskUsage": "pycont.images.report",
    "HistoryEntry": "pycont.images.report",
    "ImageInfo": "pycont.images.report",
    "ImageRecord": "pycont.images.report",
    "ImageUsage": "pycont.images.report",
    "LayerError": "pycont.images.layers",
    "build_busybox": "pycont.images.busybox",
}

if TYPE_CHECKING:
    from pycont.images.blobs import CorruptBlob
    from pycont.images.busybox import build_busybox
    from pycont.images.layers import LayerError
    from pycont.images.report import DiskUsage, HistoryEntry, ImageInfo, ImageRecord, ImageUsage
    from pycont.images.store import ImageInUse, InUse, Store, set_in_use_hook


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pycont.images' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


# Images pycont can make without a network: canonical reference -> module with build().
_BUILTIN = {"docker.io/library/busybox:latest": "pycont.images.busybox"}


@dataclass(frozen=True)
class Image:
    """An image ready to run: its layers (top first: overlay's lowerdir order) and its config."""

    name: str  # "busybox:latest" (docker's familiar form), or the short id when untagged
    layers: tuple[str, ...]
    cmd: tuple[str, ...] = ("sh",)
    env: tuple[str, ...] = (f"PATH={DEFAULT_PATH}",)
    workdir: str = "/"
    labels: dict[str, str] = field(default_factory=dict)
    id: str = ""  # "sha256:..." of the config: what rmi's in-use check compares
    digest: str = ""  # "sha256:..." of the manifest
    ref: str = ""  # the canonical reference it was found by: "docker.io/library/busybox:latest"
    entrypoint: tuple[str, ...] = ()
    user: str = ""
    exposed_ports: tuple[str, ...] = ()  # "3000/tcp": what EXPOSE declared


# Set by the lab VM (pycont.vm.lab): the host's image store, read-only under the guest's own.
ENV_HOST_IMAGES = "PYCONT_LAB_HOST_IMAGES"


def _from_host_store(name: Reference, store: Store) -> bool:
    """In the lab VM: copy image ``name`` from the host's store when the host has it."""
    host = os.environ.get(ENV_HOST_IMAGES)
    if not host or not os.path.isfile(os.path.join(host, "index.json")):
        return False
    if os.path.realpath(host) == os.path.realpath(store.root):
        return False
    from pycont.images.registry import pull

    try:
        pull(f"dir:{host}:{name}", store)
    except PycontError:
        return False  # not there, or unreadable: the usual "no such image" follows
    return True


def resolve(ref: str, store: Store | None = None) -> Image:
    """The image called ``ref`` (a reference or an image id prefix); built-ins are built on
    first use. ImageNotFound (one line) when there is no such image."""
    from pycont.images.store import Store

    store = store or Store()
    try:
        rec = store.get(ref)
    except ImageNotFound:
        parsed = Reference.parse(ref)
        if _from_host_store(parsed, store):
            return resolve(ref, store)
        builder = _BUILTIN.get(parsed.canonical)
        if builder is None:
            raise ImageNotFound(
                f"unable to find image '{parsed}': no such image in {store.root} "
                f"(pycont builds {', '.join(sorted(_familiar(r) for r in _BUILTIN))} offline; "
                "others come from pycont build, commit or load)"
            ) from None
        importlib.import_module(builder).build(store, parsed.canonical)
        rec = store.get(ref)
    name = rec.reference or rec.short_id
    return Image(
        name=name,
        layers=rec.layers,
        cmd=rec.cmd,
        env=rec.env or (f"PATH={DEFAULT_PATH}",),
        workdir=rec.workdir,
        labels=rec.labels,
        id=rec.id,
        digest=rec.digest,
        ref=Reference.parse(rec.reference).canonical if rec.reference else "",
        entrypoint=rec.entrypoint,
        user=rec.user,
        exposed_ports=rec.exposed_ports,
    )


def _familiar(canonical: str) -> str:
    return str(Reference.parse(canonical))
