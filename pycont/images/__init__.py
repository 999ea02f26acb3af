"""Images: a name that resolves to the read-only layers of a container's root.

For now an image is a plain directory under the store (``<root>/images/<name>/rootfs``) plus
its config; the only built-in one is ``busybox``, made offline from Debian's busybox-static.
Everything that turns an IMAGE argument into layers goes through :func:`resolve`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from pycont import paths
from pycont.errors import ImageNotFound, UsageError
from pycont.images.busybox import build_busybox

__all__ = ["Image", "resolve", "build_busybox"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_BUILTIN = {"busybox": build_busybox}


@dataclass(frozen=True)
class Image:
    """An image ready to run: its layers (top first) and its default config."""

    name: str
    layers: tuple[str, ...]
    cmd: tuple[str, ...] = ("sh",)
    env: tuple[str, ...] = (f"PATH={DEFAULT_PATH}",)
    workdir: str = "/"
    labels: dict[str, str] = field(default_factory=dict)


def _normalize(ref: str) -> tuple[str, str]:
    if not ref or ref != ref.strip() or any(c.isspace() for c in ref):
        raise UsageError(f"invalid image reference {ref!r}: expected NAME[:TAG], e.g. busybox")
    name, _, tag = ref.partition(":")
    name = name.removeprefix("docker.io/library/").removeprefix("library/")
    return name, tag or "latest"


def resolve(ref: str) -> Image:
    """The image called ``ref``; built-in images are built on first use."""
    name, tag = _normalize(ref)
    base = os.path.join(paths.images_dir(), name, tag)
    rootfs = os.path.join(base, "rootfs")
    if not os.path.isdir(rootfs):
        builder = _BUILTIN.get(name)
        if builder is None or tag != "latest":
            raise ImageNotFound(
                f"unable to find image '{ref}': no such image in {paths.images_dir()} "
                f"(built in: {', '.join(sorted(_BUILTIN))})"
            )
        builder(base)
    with open(os.path.join(base, "config.json")) as f:
        cfg = json.load(f)
    return Image(
        name=f"{name}:{tag}",
        layers=(rootfs,),
        cmd=tuple(cfg.get("Cmd") or ("sh",)),
        env=tuple(cfg.get("Env") or (f"PATH={DEFAULT_PATH}",)),
        workdir=cfg.get("WorkingDir") or "/",
    )
