"""The corpus: every hostile layer wrapped as an image archive, plus the hostile archives.

Each layer case becomes a docker-archive (the layer as ``0/layer.tar``, gzip'd or plain as the
case has it, with a config whose diff_id matches); the path-escape classes are also wrapped as
a gzip'd OCI layout, the path ``pull`` takes (the layer gunzipped while it unpacks).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import zlib
from dataclasses import dataclass

from tests.hostile.archives import archive_cases
from tests.hostile.layers import (
    LayerCase,
    hardlinks,
    nodes,
    numbers,
    symlinks,
    traversal,
    whiteouts,
)
from tests.hostile.streams import LIMIT, bombs, depth, names, streams
from tests.hostile.tarbits import sha, zeros_tar_gz
from tests.hostile.wrap import as_oci, docker_archive

__all__ = ["LIMIT", "Case", "build"]

_ALSO_OCI = {"traversal", "symlink", "hardlink", "whiteout"}


@dataclass(frozen=True)
class Case:
    id: str
    cls: str
    expect: str  # "refused" or "contained"
    data: bytes  # the archive given to pycont load
    match: str = ""


def _diff_id(c: LayerCase) -> str:
    if not c.gzip:
        return sha(c.tar)
    if c.id == "gzip-64mib-file":
        return zeros_tar_gz("zero", 64 << 20)[1]
    h = hashlib.sha256()
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(c.tar)) as z:
            while chunk := z.read(1 << 20):
                h.update(chunk)
    except (OSError, EOFError, zlib.error):
        return sha(b"not gzip")  # refused before the digest matters
    return "sha256:" + h.hexdigest()


def build(canary: str) -> list[Case]:
    """The whole corpus; ``canary`` is the absolute directory the attacks aim at."""
    layer_cases = [
        *traversal(canary),
        *symlinks(canary),
        *hardlinks(canary),
        *whiteouts(canary),
        *nodes(),
        *numbers(),
        *names(),
        *depth(),
        *bombs(),
        *streams(),
    ]
    out = []
    for c in layer_cases:
        tag = f"hostile/{c.id}:1"
        out.append(
            Case(c.id, c.cls, c.expect, docker_archive([c.tar], tag, [_diff_id(c)]), c.match)
        )
        if c.cls in _ALSO_OCI:
            out.append(
                Case(
                    f"oci-{c.id}", c.cls, c.expect, as_oci(c.tar, f"hostile/oci-{c.id}:1"), c.match
                )
            )
    out += [Case(c.id, c.cls, c.expect, c.tar, c.match) for c in archive_cases(canary)]
    ids = [c.id for c in out]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    return out
