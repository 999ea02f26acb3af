"""Limits and types for an image's JSON documents: manifests, indexes and configs.

An image archive or a registry hands us JSON that a stranger wrote. It is read with explicit
limits (size, nesting depth) and every field the runtime uses is checked for its type before
anything enters the store: a config ``Cmd`` that is a string would otherwise run as its first
letter, an ``Env`` entry with a NUL would make every ``run`` fail. Each refusal is one line
that names the field and what is accepted; the caller adds the file or blob.

=====================  ===========  ==================================================
limit                  value        why
=====================  ===========  ==================================================
manifest, index size   4 MiB        what registries accept (distribution, ORAS, Pulp)
config size            4 MiB        the same; a config with 1,000 history rows is ~200 KB
nesting depth          64           an OCI document nests 5 deep; json recurses per level
=====================  ===========  ==================================================
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "MAX_DEPTH",
    "MAX_DOCUMENT",
    "JSONRefused",
    "check_config",
    "check_index",
    "check_manifest",
    "depth",
    "loads",
]

MAX_DOCUMENT = 4 << 20  # bytes of one manifest, index or config
MAX_DEPTH = 64  # levels of arrays and objects
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")  # as blobs.DIGEST_RE (which imports this)


class JSONRefused(ValueError):
    """A document over a limit or with a field of the wrong type (the message says which)."""


def depth(doc: Any) -> int:
    """How deeply ``doc`` nests arrays and objects (a scalar: 0), without recursion."""
    deepest = 0
    todo: list[tuple[Any, int]] = [(doc, 0)]
    while todo:
        value, level = todo.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            level += 1
            deepest = max(deepest, level)
            if deepest > MAX_DEPTH:
                return deepest  # enough to refuse it
            todo.extend((v, level) for v in value)
    return deepest


def loads(data: bytes | str, *, max_size: int | None = MAX_DOCUMENT) -> Any:
    """Parse one JSON document within the limits; JSONRefused (a ValueError) otherwise.

    ``json.loads`` recurses in C once per level and raises RecursionError on a document
    nested ~100,000 deep: that is refused as too deep, as is anything past MAX_DEPTH."""
    if max_size is not None and len(data) > max_size:
        raise JSONRefused(f"{len(data)} bytes is over the limit of {max_size} bytes")
    try:
        doc = json.loads(data)
    except RecursionError:
        raise JSONRefused(f"nested deeper than the limit of {MAX_DEPTH} levels") from None
    except UnicodeDecodeError as err:
        raise JSONRefused(f"not UTF-8: {err.reason} at byte {err.start}") from None
    if depth(doc) > MAX_DEPTH:
        raise JSONRefused(f"nested deeper than the limit of {MAX_DEPTH} levels")
    return doc


# -- types ---------------------------------------------------------------------------------------
def _kind(value: Any) -> str:
    names = {str: "a string", list: "a list", dict: "an object", bool: "a boolean"}
    names.update({int: "a number", float: "a number", type(None): "null"})
    return names.get(type(value), type(value).__name__)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise JSONRefused(f"{where} must be a string, got {_kind(value)}")
    if "\0" in value:
        raise JSONRefused(f"{where} must not contain a NUL byte")
    return value


def _strings(value: Any, where: str) -> list[str]:
    """A list of strings without NUL (an exec argument cannot hold one), or null."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise JSONRefused(f"{where} must be a list of strings, got {_kind(value)}")
    for i, item in enumerate(value):
        _text(item, f"{where}[{i}]")
    return value


def _object(value: Any, where: str, *, str_values: bool = False) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise JSONRefused(f"{where} must be an object, got {_kind(value)}")
    for key, item in value.items():
        _text(key, f"{where} key")
        if str_values:
            _text(item, f"{where}[{key!r}]")
    return value


def env_list(value: Any, where: str = "config Env") -> list[str]:
    """``Env``: a list of ``KEY=VALUE`` strings, no NUL, a key before the ``=``."""
    for i, item in enumerate(_strings(value, where)):
        key, eq, _ = item.partition("=")
        if not eq or not key:
            raise JSONRefused(f"{where}[{i}] must be KEY=VALUE, got {item[:40]!r}")
    return _strings(value, where)


# The fields of a config's "config" object the runtime reads, and their check.
_CONFIG_FIELDS = {
    "Cmd": lambda v: _strings(v, "config Cmd"),
    "Entrypoint": lambda v: _strings(v, "config Entrypoint"),
    "Env": env_list,
    "WorkingDir": lambda v: v is None or _text(v, "config WorkingDir"),
    "User": lambda v: v is None or _text(v, "config User"),
    "StopSignal": lambda v: v is None or _text(v, "config StopSignal"),
    "Labels": lambda v: _object(v, "config Labels", str_values=True),
    "ExposedPorts": lambda v: _object(v, "config ExposedPorts"),
    "Volumes": lambda v: _object(v, "config Volumes"),
    "Shell": lambda v: _strings(v, "config Shell"),
    "OnBuild": lambda v: _strings(v, "config OnBuild"),
    "Healthcheck": lambda v: _strings(
        _object(v, "config Healthcheck").get("Test"), "config Healthcheck Test"
    ),
}


def check_config(doc: Any) -> None:
    """An image config (image-spec config.md) whose every field the runtime uses has its
    type: ``Cmd``/``Entrypoint`` lists of strings or null, ``Env`` ``KEY=VALUE`` strings,
    ``Labels`` strings to strings, ``rootfs.diff_ids`` digests..."""
    if not isinstance(doc, dict):
        raise JSONRefused(f"an image config must be an object, got {_kind(doc)}")
    cfg = _object(doc.get("config"), "config")
    for name, check in _CONFIG_FIELDS.items():
        if name in cfg:
            check(cfg[name])
    rootfs = doc.get("rootfs")
    if not isinstance(rootfs, dict):
        raise JSONRefused(f"rootfs must be an object, got {_kind(rootfs)}")
    diff_ids = _strings(rootfs.get("diff_ids"), "rootfs diff_ids")
    for i, d in enumerate(diff_ids):
        _digest(d, f"rootfs diff_ids[{i}]")
    for key in ("created", "architecture", "os", "author"):
        if doc.get(key) is not None:
            _text(doc[key], key)
    history = doc.get("history")
    if history is not None and not (
        isinstance(history, list) and all(isinstance(h, dict) for h in history)
    ):
        raise JSONRefused(f"history must be a list of objects, got {_kind(history)}")
    for i, row in enumerate(history or ()):
        for key in ("created", "created_by", "author", "comment"):
            if row.get(key) is not None:
                _text(row[key], f"history[{i}] {key}")
        if not isinstance(row.get("empty_layer", False), bool):
            raise JSONRefused(f"history[{i}] empty_layer must be true or false")
    layered = sum(1 for row in history or () if not row.get("empty_layer"))
    if history and layered > len(diff_ids):
        raise JSONRefused(
            f"history has {layered} rows with a layer for {len(diff_ids)} layers in rootfs"
        )


def _digest(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _DIGEST_RE.fullmatch(value):
        shown = repr(value)[:80] if isinstance(value, str) else _kind(value)
        raise JSONRefused(f"{where} must be a sha256:<64 hex digits> digest, got {shown}")
    return value


def _descriptor(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise JSONRefused(f"{where} must be a descriptor object, got {_kind(value)}")
    _digest(value.get("digest"), f"{where} digest")
    size = value.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise JSONRefused(f"{where} size must be a number of bytes, got {size!r}"[:120])
    if "mediaType" in value:
        _text(value["mediaType"], f"{where} mediaType")
    _object(value.get("annotations"), f"{where} annotations", str_values=True)
    return value


def check_manifest(doc: Any) -> None:
    """An image manifest: a config descriptor and a list of layer descriptors."""
    if not isinstance(doc, dict):
        raise JSONRefused(f"a manifest must be an object, got {_kind(doc)}")
    _descriptor(doc.get("config"), "manifest config")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise JSONRefused(f"manifest layers must be a list, got {_kind(layers)}")
    for i, layer in enumerate(layers):
        _descriptor(layer, f"manifest layers[{i}]")


def check_index(doc: Any) -> None:
    """An image index (or docker manifest list): a list of manifest descriptors, each with
    an optional ``platform`` object."""
    if not isinstance(doc, dict):
        raise JSONRefused(f"an image index must be an object, got {_kind(doc)}")
    entries = doc.get("manifests")
    if not isinstance(entries, list):
        raise JSONRefused(f"index manifests must be a list, got {_kind(entries)}")
    for i, desc in enumerate(entries):
        _descriptor(desc, f"index manifests[{i}]")
        platform = _object(desc.get("platform"), f"index manifests[{i}] platform")
        for key in ("os", "architecture", "variant"):
            if platform.get(key) is not None:
                _text(platform[key], f"index manifests[{i}] platform {key}")
