"""The image index: index.json, the one file that says which names point at which images.

An OCI image layout names its images in ``index.json`` (image-spec, image-layout.md): a list of
manifest descriptors, each named by its ``org.opencontainers.image.ref.name`` annotation, or by
nothing (an untagged image). Changes are read-modify-write under a file lock, and the new index
replaces the old one atomically and durably: readers see one or the other, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

from pycont.errors import CorruptBlob, ImageNotFound, UsageError
from pycont.fsutil import write_json
from pycont.images import jsonlimits, oci
from pycont.images._locks import file_lock
from pycont.images.reference import Reference

__all__ = ["Entry", "editing", "find", "point", "read_entries", "ref_name"]

Entry = dict[str, Any]  # one descriptor of index.json's "manifests"
ID_RE = re.compile(r"(?:sha256:)?([0-9a-f]{1,64})")


def ref_name(entry: Entry) -> str | None:
    """The name an entry gives its image (``docker.io/library/busybox:latest``), if any."""
    return (entry.get("annotations") or {}).get(oci.REF_NAME)


def read_entries(path: str) -> list[Entry]:
    """The entries of the index at ``path``; none if there is no index yet."""
    try:
        with open(path, "rb") as f:
            doc = jsonlimits.loads(f.read(), max_size=None)
    except FileNotFoundError:
        return []
    except ValueError as err:
        raise CorruptBlob(f"{path} is not valid JSON: {err}") from None
    entries = (doc.get("manifests") or []) if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("digest"), str) for e in entries
    ):
        raise CorruptBlob(f"{path}: 'manifests' must be a list of descriptors")
    return list(entries)


@contextlib.contextmanager
def editing(path: str) -> Iterator[list[Entry]]:
    """Read, modify and write the index at ``path`` under its lock: safe across processes.
    It is written only if the entries changed."""
    with file_lock(os.path.join(os.path.dirname(path), "index.lock")):
        entries = read_entries(path)
        before = json.dumps(entries)
        yield entries
        if json.dumps(entries) != before:
            doc = {"schemaVersion": 2, "mediaType": oci.INDEX, "manifests": entries}
            # fsync'ed: the index is the one file that names every image.
            write_json(path, doc, indent=2, durable=True)


def find(
    text: str, entries: list[Entry], image_id: Callable[[Entry], str]
) -> tuple[Reference | None, list[Entry]]:
    """The entries ``text`` names: a reference first, then an image id (prefix), which
    ``image_id`` reads from an entry's manifest."""
    ref = None
    try:
        ref = Reference.parse(text)
    except UsageError:
        if not ID_RE.fullmatch(text):
            raise
    if ref is not None:
        if ref.digest:
            found = [e for e in entries if e["digest"] == ref.digest]
            same_repo = [e for e in found if (ref_name(e) or "").startswith(ref.name + ":")]
            found = same_repo or found
        else:
            found = [e for e in entries if ref_name(e) == ref.canonical]
        if found:
            return ref, found[:1]
    m = ID_RE.fullmatch(text)
    if m:
        ids = {image_id(e) for e in entries}
        hits = sorted(i for i in ids if i.split(":", 1)[1].startswith(m.group(1)))
        if len(hits) > 1:
            raise UsageError(f"image id prefix {text!r} is ambiguous: it matches {len(hits)}")
        if hits:
            return None, [e for e in entries if image_id(e) == hits[0]]
    raise ImageNotFound(f"no such image: {text}")


def point(entries: list[Entry], ref: Reference | None, desc: Entry) -> None:
    """Make ``ref`` name ``desc``; an image that loses its last name stays, untagged."""
    if ref is None:
        if not any(e["digest"] == desc["digest"] for e in entries):
            entries.append(dict(desc))
        return
    for old in [e for e in entries if ref_name(e) == ref.canonical]:
        entries.remove(old)
        if old["digest"] != desc["digest"] and not any(
            e["digest"] == old["digest"] for e in entries
        ):
            entries.append({k: old[k] for k in ("mediaType", "digest", "size")})
    entries[:] = [e for e in entries if e["digest"] != desc["digest"] or ref_name(e)]
    entries.append({**desc, "annotations": {oci.REF_NAME: ref.canonical}})
