"""A container's read/write layer: what it changed, and making an image of it.

Under overlayfs the container writes only to its own ``upper`` folder; the image's layers below
stay read-only and shared. ``docker diff`` lists that folder's changes, ``docker commit`` turns
it into a new image layer.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from pycont import failpoints
from pycont.errors import UsageError
from pycont.net.config import INIT_LAYER
from pycont.runtime._facts import ContainerFacts
from pycont.runtime.state import Status


class ReadWriteLayer(ContainerFacts):
    """What :class:`~pycont.runtime.container.Container` does with its read/write layer."""

    @property
    def userxattr(self) -> bool:
        """Its overlay was mounted with userxattr: it has its own user namespace."""
        return self.config.namespaces.get("user", "private") != "host"

    def storage_driver(self) -> str:
        """``overlay``, or ``vfs: <why>`` when the layers had to be copied."""
        try:
            with open(os.path.join(self.dir, "driver")) as f:
                return f.read().strip()
        except FileNotFoundError:
            return self.config.storage_driver

    def diff(self) -> list[tuple[str, str]]:
        """docker diff: (A|C|D, path) for what the container changed in its read/write layer."""
        from pycont import overlay

        cfg = self.config
        # The init layer (the network files' mount points) is below the container's changes,
        # as the image's layers are: docker diff shows neither.
        init = os.path.join(self.dir, INIT_LAYER)
        lowers = ((init,) if os.path.isdir(init) else ()) + tuple(cfg.layers)
        if self.storage_driver().startswith("vfs"):
            merged = os.path.join(self.dir, "merged")
            stack = overlay.CopyStack(lowers, merged, self.userxattr)
            return [(ch.kind, ch.path) for ch in stack.changes()]
        upper = os.path.join(self.dir, "upper")
        return [
            (ch.kind, ch.path) for ch in overlay.changes(upper, lowers, userxattr=self.userxattr)
        ]

    def commit(
        self,
        reference: str | None = None,
        *,
        message: str = "",
        author: str = "",
        changes: Sequence[str] = (),
        pause: bool = True,
    ) -> str:
        """docker commit: the read/write layer becomes a new image layer on top of the
        container's image, sharing every layer below. Returns the new image id."""
        from pycont.images import Store

        cfg = self.config
        if self.storage_driver().startswith("vfs"):
            raise UsageError(
                f"commit {cfg.name}: needs the overlay driver (its read/write layer); this "
                f"container's layers were copied ({self.storage_driver()})"
            )
        # A consistent snapshot: nothing writes while the layer is read. Thawed after, only
        # if this commit froze it; if the commit dies, the next look at the container thaws
        # it (pycont.runtime.resources).
        froze = pause and cfg.cgroup and self.status == Status.RUNNING
        froze = froze and self._freeze_for_commit()
        try:
            image_id = Store().commit_layer(
                os.path.join(self.dir, "upper"),
                cfg.image_id or cfg.image,
                reference,
                message=message,
                changes=changes,
                created_by=" ".join(cfg.args),
                author=author,
                userxattr=self.userxattr,
            )
            failpoints.hit("commit.layer-written")
            return image_id
        finally:
            if froze:
                self._thaw_after_commit()
