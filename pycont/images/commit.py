"""``docker commit``: a container's overlay upper dir becomes one new layer of a new image.

The layer tar is written into a staging folder (:mod:`pycont.images.staging`) from a walk of the
upper dir (:mod:`pycont.images.diff`, without recursion: a container may nest folders
thousands deep); the image's config and manifest follow, and everything enters the store with
the one index write that names the image.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Sequence
from typing import Any, Protocol

from pycont import failpoints
from pycont.images import oci
from pycont.images.reference import Reference
from pycont.images.report import ImageRecord
from pycont.images.staging import Staging


class Store(Protocol):
    """What a commit needs of a :class:`pycont.images.store.Store` (not imported: it imports
    this module)."""

    def get(self, ref: str) -> ImageRecord: ...
    def stage(self) -> contextlib.AbstractContextManager[Staging]: ...
    def add_image(
        self,
        ref: str | Reference | None,
        config: dict[str, Any],
        layers: Sequence[dict[str, Any]],
        staging: Staging | None = None,
        step: str = "",
    ) -> ImageRecord: ...


__all__ = ["commit_layer"]


def commit_layer(
    store: Store,
    upper_dir: str,
    parent_ref: str | None,
    new_ref: str | None,
    *,
    message: str = "",
    changes: Sequence[str] = (),
    created_by: str = "",
    author: str = "",
    userxattr: bool = True,
) -> str:
    """The new image's id. ``userxattr``: whether the container's overlay was mounted with it
    (it was if the container had a user namespace), which decides the xattr that marks
    opaque dirs."""
    from pycont.images.diff import write_layer

    parent = store.get(parent_ref) if parent_ref else None
    target = Reference.parse(new_ref) if new_ref else None
    now = time.time()
    if parent is not None:
        config = copy.deepcopy(parent.config)
    else:
        config = oci.new_config(created=now, cmd=())
    oci.apply_changes(config, changes)
    with store.stage() as stage:
        with stage.blobs.writer() as w:
            write_layer(upper_dir, w, userxattr=userxattr)
        failpoints.hit("commit.blobs-staged")  # the layer tar is in the staging folder
        oci.add_layer(
            config,
            w.digest,  # an uncompressed tar: its digest is its diff_id
            created=now,
            created_by=created_by or "pycont commit",
            comment=message,
            author=author,
        )
        layers = list(parent.manifest["layers"]) if parent else []
        layers.append(oci.descriptor(oci.LAYER, w.digest, w.size))
        rec = store.add_image(target, config, layers, staging=stage, step="commit.published")
        return rec.id
