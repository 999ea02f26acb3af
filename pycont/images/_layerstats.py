"""What unpacking a layer found and what it left out: counts, skipped device nodes and xattrs,
and the one-line warnings ``pycont load``/``pull`` print about them."""

from __future__ import annotations

from dataclasses import dataclass, field

from pycont.images._tarwrite import TarStats

__all__ = ["LayerStats", "layer_warnings"]


@dataclass
class LayerStats(TarStats):
    """What a layer holds; ``skipped_xattrs`` lists the xattrs not applied, and why;
    ``skipped_devices`` the device nodes not created (``dev/console (c 5:1)``): mknod(2)
    needs CAP_MKNOD in the initial user namespace, which a rootless store has not."""

    devices: int = 0
    skipped_xattrs: list[str] = field(default_factory=list)
    skipped_devices: list[str] = field(default_factory=list)


def layer_warnings(digest: str, stats: LayerStats, show: int = 8) -> list[str]:
    """One-line warnings for what unpacking the layer ``digest`` left out (empty if nothing)."""
    short = f"{digest[:19]}…"

    def names(items: list[str]) -> str:
        return ", ".join(items[:show]) + (", …" if len(items) > show else "")

    out = []
    if stats.skipped_devices:
        n = len(stats.skipped_devices)
        nodes = [d.split(" (", 1)[0] for d in stats.skipped_devices]
        out.append(
            f"layer {short}: skipped {n} device node{'s' if n != 1 else ''} "
            f"(mknod(2) needs CAP_MKNOD; rootless, as podman): {names(nodes)}"
        )
    if stats.skipped_xattrs:
        n = len(stats.skipped_xattrs)
        out.append(
            f"layer {short}: skipped {n} xattr{'s' if n != 1 else ''}: "
            + names(stats.skipped_xattrs)
        )
    return out
