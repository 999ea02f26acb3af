"""What both archive formats share: their names, the media types docker uses, small helpers.

:mod:`pycont.images.archive` is the public face (``save``, ``load``); this module holds the
pieces its save and load halves both need, so neither imports the other.
"""

from __future__ import annotations

import os
from typing import IO

DOCKER_ARCHIVE = "docker-archive"
OCI_ARCHIVE = "oci-archive"
FORMATS = (DOCKER_ARCHIVE, OCI_ARCHIVE)
CONTAINERD_NAME = "io.containerd.image.name"  # docker 25+ and containerd name images with it
CHUNK = 1 << 20

PathOrFile = str | os.PathLike[str] | IO[bytes]


def describe(f: PathOrFile) -> str:
    """A path, or a stream's name, for error messages."""
    if isinstance(f, str | os.PathLike):
        return os.fspath(f)
    return str(getattr(f, "name", "<stream>"))


def hex_of(digest: str) -> str:
    return digest.split(":", 1)[1]
