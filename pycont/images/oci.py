"""OCI documents: the manifest that lists an image's blobs, and the config that says how to run it.

An image is a manifest (application/vnd.oci.image.manifest.v1+json) pointing to one config
(application/vnd.oci.image.config.v1+json: Cmd, Env, the layers' uncompressed digests in
``rootfs.diff_ids``, one ``history`` entry per build step) and to its layer tars, bottom first
(OCI image-spec: manifest.md, config.md). The image's id is the digest of its config.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from typing import Any

from pycont.errors import UsageError

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
# What docker save / registries used before OCI: read the same way.
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
LAYER_TYPES = (LAYER, LAYER_GZIP, DOCKER_LAYER, DOCKER_LAYER_GZIP)
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
MANIFEST_TYPES = (MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (INDEX, DOCKER_LIST)
REF_NAME = "org.opencontainers.image.ref.name"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}
_CHANGES = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "STOPSIGNAL", "USER", "WORKDIR")


def architecture() -> str:
    """GOARCH spelling of this machine (config.md: "architecture")."""
    import platform

    machine = platform.machine()
    return _ARCH.get(machine, machine)


def rfc3339(ts: float) -> str:
    dt = datetime.datetime.fromtimestamp(int(ts), datetime.UTC)
    return dt.isoformat().replace("+00:00", "Z")


def parse_time(text: str | None) -> float:
    """Seconds since the epoch from an RFC 3339 time (0.0 when absent or unreadable)."""
    if not text:
        return 0.0
    try:
        # Go writes nanoseconds; fromisoformat takes at most microseconds.
        head, dot, frac = text.rstrip("Z").partition(".")
        zone = ""
        for sign in ("+", "-"):
            if sign in frac:
                frac, _, z = frac.partition(sign)
                zone = sign + z
        value = f"{head}.{frac[:6]}" if dot else head
        dt = datetime.datetime.fromisoformat(value + (zone or "+00:00"))
        return dt.timestamp()
    except ValueError:
        return 0.0


def descriptor(
    media_type: str, digest: str, size: int, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    d: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
    if annotations:
        d["annotations"] = dict(annotations)
    return d


def new_config(
    *,
    created: float,
    cmd: Sequence[str] = ("sh",),
    env: Sequence[str] = (f"PATH={DEFAULT_PATH}",),
    workdir: str = "/",
) -> dict[str, Any]:
    """An image config with no layers yet (``add_layer`` adds them)."""
    return {
        "created": rfc3339(created),
        "architecture": architecture(),
        "os": "linux",
        "config": {"Cmd": list(cmd), "Env": list(env), "WorkingDir": workdir},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    }


def add_layer(
    config: dict[str, Any],
    diff_id: str | None,
    *,
    created: float,
    created_by: str,
    comment: str = "",
    author: str = "",
) -> None:
    """Record one build step: a layer (``diff_id``) or a config-only change (None)."""
    entry: dict[str, Any] = {"created": rfc3339(created), "created_by": created_by}
    if comment:
        entry["comment"] = comment
    if author:
        entry["author"] = author
    if diff_id is None:
        entry["empty_layer"] = True
    else:
        config.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"].append(diff_id)
    config.setdefault("history", []).append(entry)
    config["created"] = rfc3339(created)


def manifest(config: dict[str, Any], layers: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": list(layers)}


def apply_changes(config: dict[str, Any], changes: Sequence[str]) -> None:
    """``docker commit --change``: Dockerfile instructions that edit the config, not the files."""
    cfg = config.setdefault("config", {})
    for change in changes:
        words = change.strip().split(None, 1)
        instr = words[0].upper() if words else ""
        arg = words[1].strip() if len(words) > 1 else ""
        if instr not in _CHANGES or not arg:
            raise UsageError(
                f"invalid change {change!r}: expected one of {', '.join(_CHANGES)} with a value"
            )
        if instr in ("CMD", "ENTRYPOINT"):
            cfg["Cmd" if instr == "CMD" else "Entrypoint"] = _command(change, arg)
        elif instr == "ENV":
            env = dict(e.split("=", 1) for e in cfg.get("Env") or [] if "=" in e)
            env.update(_pairs(change, arg, allow_space=True))
            cfg["Env"] = [f"{k}={v}" for k, v in env.items()]
        elif instr == "LABEL":
            cfg.setdefault("Labels", {}).update(_pairs(change, arg, allow_space=False))
        elif instr == "WORKDIR":
            if not arg.startswith("/"):
                raise UsageError(f"invalid change {change!r}: WORKDIR must be an absolute path")
            cfg["WorkingDir"] = arg
        elif instr == "USER":
            cfg["User"] = arg
        elif instr == "STOPSIGNAL":
            cfg["StopSignal"] = arg
        elif instr == "EXPOSE":
            ports = cfg.setdefault("ExposedPorts", {})
            for port in arg.split():
                ports[port if "/" in port else f"{port}/tcp"] = {}


def _command(change: str, arg: str) -> list[str]:
    if arg.startswith("["):  # exec form: a JSON array of strings
        try:
            value = json.loads(arg)
        except ValueError as err:
            raise UsageError(f"invalid change {change!r}: {err}") from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UsageError(f"invalid change {change!r}: expected a JSON array of strings")
        return value
    return ["/bin/sh", "-c", arg]  # shell form, as docker


def _pairs(change: str, arg: str, allow_space: bool) -> dict[str, str]:
    import shlex

    words = shlex.split(arg)
    if allow_space and len(words) >= 2 and "=" not in words[0]:  # "ENV KEY value with spaces"
        return {words[0]: arg.split(None, 1)[1]}
    out = {}
    for word in words:
        key, eq, value = word.partition("=")
        if not key or not eq:
            raise UsageError(f"invalid change {change!r}: expected KEY=VALUE, got {word!r}")
        out[key] = value
    return out


def media_type(content_type: str | None, data: bytes) -> str:
    """A manifest's media type: the Content-Type if it names one, else its ``mediaType``,
    else what its fields say (an index has ``manifests``, a manifest a ``config``)."""
    ctype = (content_type or "").split(";")[0].strip()
    if ctype in (*MANIFEST_TYPES, *INDEX_TYPES, DOCKER_SCHEMA1):
        return ctype
    from pycont.images.jsonlimits import loads

    try:
        doc = loads(data)
    except ValueError:  # also too big or too deep: refused when it is read as a manifest
        return ctype
    if not isinstance(doc, dict):
        return ctype
    if doc.get("mediaType"):
        return str(doc["mediaType"])
    if doc.get("schemaVersion") == 1:
        return DOCKER_SCHEMA1
    return INDEX if "manifests" in doc else MANIFEST
