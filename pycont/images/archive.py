"""Image archives: ``docker save`` and ``docker load``, images as one tar file to carry around.

Two formats exist. A *docker-archive* (what ``docker save`` wrote before docker 25, and what
skopeo and podman read and write) holds ``manifest.json`` (per image: its config file, its
names, its layer files), the config as ``<image id>.json`` and each layer as an uncompressed
``<layer id>/layer.tar``. An *oci-archive* is a tar of an OCI image layout (image-spec:
image-layout.md): ``oci-layout``, ``index.json`` naming the manifests, ``blobs/sha256/<hex>``,
the same layout as pycont's own store.

Loading never extracts the archive to disk: each member is read once, into memory or into a
staging folder beside the store under the hash of its content, and only then checked against
the digests the documents name. Blobs and layers enter the store, and the image its index,
only when everything it refers to is there and verified; a broken archive leaves the store
as it was.

The work is done in private modules, one per concept: ``_archive_save`` (writing),
``_archive_read`` (one pass over a tar), ``_archive_load`` (checking and naming what was read),
``_archive_common`` (the format names both halves share).
"""

from __future__ import annotations

from pycont.errors import ArchiveError
from pycont.images._archive_common import (
    CONTAINERD_NAME,
    DOCKER_ARCHIVE,
    FORMATS,
    OCI_ARCHIVE,
    PathOrFile,
)
from pycont.images._archive_load import load
from pycont.images._archive_save import save

__all__ = [
    "CONTAINERD_NAME",
    "DOCKER_ARCHIVE",
    "FORMATS",
    "OCI_ARCHIVE",
    "ArchiveError",
    "PathOrFile",
    "load",
    "save",
]
