"""Limits on images: the longest names, the deepest trees, the largest layers pycont accepts.

An image is untrusted input that root unpacks: every number a layer can carry is bounded here,
in one place, so that a hostile archive is refused with one line before it can fill the disk,
the memory, or the recursion of the code that walks the tree later. README.md, "Limits on
images", lists them; each refusal names the entry, the limit and (if it has one) the knob.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = [
    "DEFAULT_MAX_LAYER_SIZE",
    "LINK_TARGET_MAX",
    "MAX_DEPTH",
    "MAX_ENTRIES",
    "MAX_ID",
    "MAX_LAYER_SIZE_ENV",
    "MAX_LAYER_SIZE_FLAG",
    "MAX_MTIME",
    "MAX_SPECIAL",
    "NAME_MAX",
    "PATH_MAX",
    "LayerLimits",
    "how_to_raise",
    "max_layer_size",
    "set_max_layer_size",
]

# -- layers (tar streams) ---------------------------------------------------------------------
NAME_MAX = 255
"""Bytes in one path component: NAME_MAX of limits.h, what ext4, xfs and btrfs store."""

PATH_MAX = 4095
"""Bytes in a path inside the layer: PATH_MAX (4096) less its NUL (path_resolution(7))."""

LINK_TARGET_MAX = 4095
"""Bytes in a symlink's or hard link's target: symlink(2) fails with ENAMETOOLONG beyond."""

MAX_DEPTH = 512
"""Directory levels below the layer root. A path of PATH_MAX could nest 2,048 (``a/a/...``);
real images stay under 50; code that walks a tree (removal, sizes, diff) stays far from
Python's recursion limit (1,000) and from the fds and memory a deep walk takes."""

MAX_ID = 2**32 - 2
"""Largest uid or gid: uid_t is 32 bits and -1 (2**32-1) means "leave unchanged" to
chown(2); tar's base-256 and PAX fields can hold far more."""

MAX_MTIME = (2**63 - 1) // 1_000_000_000
"""Latest mtime kept, in seconds (year 2262: nanoseconds in an int64, as utimensat(2) callers
hold them). As containerd and docker (archive.boundTime), a time before 1970 or after this
is set to the epoch; a time that is not a number (PAX ``inf``, ``nan``) is refused."""

MAX_ENTRIES = 1_000_000
"""Entries in one layer: a large distribution layer holds ~100,000."""

MAX_SPECIAL = 1 << 20
"""Bytes of one PAX extended header or GNU long name/link record, read whole into memory
(Go's archive/tar has the same bound, maxSpecialFileSize)."""

DEFAULT_MAX_LAYER_SIZE = 8 << 30
"""Uncompressed bytes in one layer (headers, data, sparse files at their full size), counted
while it streams: a gzip bomb (1 MB -> 1 GiB) stops here, never written out first. 8 GiB
holds the largest common layers (CUDA, PyTorch) and is far below a learner's free disk."""

MAX_LAYER_SIZE_ENV = "PYCONT_MAX_LAYER_SIZE"
MAX_LAYER_SIZE_FLAG = "--max-layer-size"


def max_layer_size() -> int:
    """The uncompressed layer size limit: ``$PYCONT_MAX_LAYER_SIZE`` (``16g``, ``512m``, 0 for
    none), else :data:`DEFAULT_MAX_LAYER_SIZE`. ``pycont load``/``pull --max-layer-size``
    set the variable for the command."""
    from pycont.cgroups.units import parse_bytes

    text = os.environ.get(MAX_LAYER_SIZE_ENV, "").strip()
    return parse_bytes(MAX_LAYER_SIZE_ENV, text) if text else DEFAULT_MAX_LAYER_SIZE


def set_max_layer_size(text: str | None) -> None:
    """``--max-layer-size SIZE`` of ``pycont load``/``pull``: checked (UsageError), then put in
    this command's environment, where every unpack (and helper process) reads it."""
    from pycont.cgroups.units import parse_bytes

    if text is not None:
        parse_bytes(MAX_LAYER_SIZE_FLAG, text)
        os.environ[MAX_LAYER_SIZE_ENV] = text


def how_to_raise() -> str:
    """What a refusal for size says to do."""
    return f"raise it with {MAX_LAYER_SIZE_FLAG} or {MAX_LAYER_SIZE_ENV}=SIZE (0 for none)"


@dataclass(frozen=True)
class LayerLimits:
    """The limits one tar applier enforces; :meth:`current` reads the size from the
    environment. Tests pass a smaller one rather than change the module's constants."""

    name_max: int = NAME_MAX
    path_max: int = PATH_MAX
    link_target_max: int = LINK_TARGET_MAX
    depth: int = MAX_DEPTH
    max_id: int = MAX_ID
    max_mtime: int = MAX_MTIME
    entries: int = MAX_ENTRIES
    special: int = MAX_SPECIAL
    size: int = DEFAULT_MAX_LAYER_SIZE  # 0: no limit

    @classmethod
    def current(cls) -> LayerLimits:
        return cls(size=max_layer_size())


# -- image documents (JSON): added by the manifest/config checks ------------------------------
