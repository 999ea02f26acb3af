"""Volumes: data that outlives the container.

A container's own writes land in its read/write layer, which is thrown away with it. A volume
is a directory outside that layer, bind-mounted into the container (mount(2) with MS_BIND): a
named volume lives under ``<root>/volumes/<name>/_data`` (docker's layout) and is made on first
use; a bind mount is any host directory. ``-v NAME:/path``, ``-v /host/dir:/path[:ro]``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from dataclasses import asdict, dataclass

from pycont import paths
from pycont.errors import InvalidState, UsageError, VolumeNotFound
from pycont.fsutil import read_json, remove_tree, write_json

NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
# The runtime's own mounts: a volume on or under them would replace what the kernel shows the
# container (-v /tmp:/proc hands it a host folder as its /proc), so they are refused, as runc
# refuses mounts onto /proc.
RESERVED = ("/proc", "/sys", "/dev")


@dataclass(frozen=True)
class Mount:
    """One ``-v`` of a container: where from, where to, read-only or not."""

    kind: str  # "volume" or "bind"
    source: str  # volume name or absolute host path
    target: str  # absolute path inside the container
    readonly: bool = False
    # The folder mounted, fixed when the container is created (a volume's _data folder).
    host: str = ""

    def host_path(self) -> str:
        if self.host:
            return self.host
        return data_dir(self.source) if self.kind == "volume" else self.source

    def resolved(self) -> Mount:
        """This mount with its host folder fixed: what a container's config keeps."""
        return dataclasses.replace(self, host=self.host_path())


def volumes_dir() -> str:
    return os.path.join(paths.root(), "volumes")


def data_dir(name: str) -> str:
    return os.path.join(volumes_dir(), name, "_data")


def parse(spec: str) -> Mount:
    """docker's ``-v`` syntax: ``NAME:/dst``, ``/src:/dst``, with an optional ``:ro``/``:rw``."""
    parts = spec.split(":")
    mode = ""
    if len(parts) == 3:
        mode = parts.pop()
    if len(parts) != 2 or mode not in ("", "ro", "rw"):
        raise UsageError(
            f"invalid volume {spec!r}: expected NAME:/path or /host/path:/path, optionally :ro"
        )
    source, target = parts
    if not target.startswith("/") or "\0" in target:
        raise UsageError(f"invalid volume {spec!r}: the container path must be absolute")
    if os.path.normpath(target) == "/":
        raise UsageError(f"invalid volume {spec!r}: cannot mount over the container's root")
    for reserved in RESERVED:
        if os.path.normpath(target) == reserved or target.startswith(reserved + "/"):
            raise UsageError(
                f"invalid volume {spec!r}: {reserved} and paths under it are the runtime's "
                "own mounts; choose another container path"
            )
    if source.startswith("/"):
        if not os.path.isdir(source) and not os.path.isfile(source):
            raise UsageError(f"invalid volume {spec!r}: bind source {source} does not exist")
        kind = "bind"
        source = os.path.realpath(source)
    else:
        if not NAME_RE.fullmatch(source):
            raise UsageError(
                f"invalid volume name {source!r}: [a-zA-Z0-9][a-zA-Z0-9_.-]*, or an absolute "
                "host path for a bind mount"
            )
        kind = "volume"
    return Mount(kind, source, os.path.normpath(target), mode == "ro")


def create(name: str) -> str:
    """Create a named volume (nothing happens if it exists); returns its name."""
    if not NAME_RE.fullmatch(name):
        raise UsageError(f"invalid volume name {name!r}: [a-zA-Z0-9][a-zA-Z0-9_.-]*")
    base = os.path.join(volumes_dir(), name)
    os.makedirs(os.path.join(base, "_data"), mode=0o755, exist_ok=True)
    meta = os.path.join(base, "volume.json")
    if not os.path.exists(meta):
        write_json(meta, {"Name": name, "CreatedAt": time.time()})
    return name


def names() -> list[str]:
    d = volumes_dir()
    return (
        sorted(n for n in os.listdir(d) if os.path.isdir(os.path.join(d, n)))
        if os.path.isdir(d)
        else []
    )


def inspect(name: str) -> dict[str, object]:
    base = os.path.join(volumes_dir(), name)
    try:
        meta = read_json(os.path.join(base, "volume.json"))
    except FileNotFoundError:
        raise VolumeNotFound(f"no such volume: {name}") from None
    return {
        "Name": name,
        "Driver": "local",
        "Mountpoint": data_dir(name),
        "CreatedAt": meta.get("CreatedAt"),
        "UsedBy": users(name),
    }


def users(name: str) -> list[str]:
    """Names of the containers that mount the volume. Read from each container's config.json
    (the runtime's record), so that volumes need not import the runtime above them."""
    base = paths.containers_dir()
    out = []
    for cid in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        try:
            cfg = read_json(os.path.join(base, cid, "config.json"))
        except (OSError, ValueError):
            continue  # being created or removed right now
        if any(
            m.get("kind") == "volume" and m.get("source") == name for m in cfg.get("mounts", [])
        ):
            out.append(str(cfg["name"]))
    return out


def remove(name: str, force: bool = False) -> None:
    """Remove a volume and its data; refused while a container uses it."""
    inspect(name)  # raises VolumeNotFound
    used = users(name)
    if used and not force:
        raise InvalidState(f"volume {name} is in use by {', '.join(used)}: remove them first")
    remove_tree(os.path.join(volumes_dir(), name))


def as_dicts(mounts: list[Mount]) -> list[dict[str, object]]:
    return [asdict(m) for m in mounts]
