"""The store check (``pycont system check``): does the store hold exactly what it names?

Every blob must hash to its name and have the size its descriptors give; every index entry
must lead to a manifest, a config and layers that are there; every unpacked layer folder must
be one an image or the build cache needs. What nothing references is an orphan (a failed
write of an older pycont, a crash); temporaries and staging folders of dead writers are
stale. ``repair`` removes orphans and stale leftovers and unpacks missing layer folders from
their blobs; it never removes a referenced blob. Docker has no such verb (``git fsck`` is the
model); the check runs under the store's gc lock, so no writer is half-way meanwhile.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

from pycont.errors import PycontError
from pycont.fsutil import remove_tree
from pycont.images import buildcache, index, layer_sizes, staging
from pycont.images.gc import dir_size
from pycont.images.store import Store

__all__ = ["Finding", "Report", "check"]

_CHUNK = 1 << 20


@dataclass
class Finding:
    """One problem: ``kind`` (``orphan blob``, ``corrupt blob``, ``missing layer``...), the
    object (a digest or a path), its size on disk, why, and whether ``repair`` fixed it."""

    kind: str
    name: str
    size: int
    detail: str
    repaired: bool = False

    @property
    def orphan(self) -> bool:
        return self.kind.startswith(("orphan", "stale"))

    def line(self) -> str:
        from pycont.format import decimal_size

        done = " [repaired]" if self.repaired else ""
        return f"{self.kind:<15} {self.name}  {decimal_size(self.size)}  {self.detail}{done}"


@dataclass
class Report:
    """What :func:`check` found. ``clean``: nothing is left to fix."""

    images: int = 0
    cache_entries: int = 0
    blobs: int = 0
    layers: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if not f.repaired]

    @property
    def orphans(self) -> list[Finding]:
        return [f for f in self.problems if f.orphan]

    @property
    def clean(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        out = [f.line() for f in self.findings]
        fixed = len(self.findings) - len(self.problems)
        out.append(
            f"Checked {self.images} images, {self.cache_entries} build cache entries, "
            f"{self.blobs} blobs, {self.layers} layers: {len(self.problems)} problems"
            + (f" ({fixed} repaired)" if fixed else "")
        )
        return out


@dataclass
class _Refs:
    blobs: dict[str, tuple[str, int]] = field(default_factory=dict)  # digest -> (who, size)
    layers: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)  # diff_id ->
    complete: bool = True  # False: a manifest or config could not be read


def check(store: Store | None = None, repair: bool = False) -> Report:
    """Check the store (``repair``: and fix what can be fixed). Holds the gc lock."""
    store = store or Store()
    report = Report()
    if not os.path.isdir(store.root):
        return report
    with store.gc_lock():
        refs = _references(store, report)
        _check_blobs(store, refs, report)
        _check_layers(store, refs, report)
        for path in staging.stale(store.root):
            report.findings.append(
                Finding("stale staging", path, dir_size(path), "its writer is gone")
            )
        if repair:
            _repair(store, refs, report)
    if not refs.complete:
        note = "(maybe not one: an image's manifest or config could not be read; fix that first)"
        for f in report.findings:
            if f.orphan and not f.repaired and f.kind != "stale temporary":
                f.detail += f" {note}"
    return report


def _references(store: Store, report: Report) -> _Refs:
    refs = _Refs()
    try:
        entries = index.read_entries(store.index_path)
    except PycontError as err:
        report.findings.append(Finding("corrupt index", store.index_path, 0, str(err)))
        refs.complete = False
        return refs
    cache = buildcache.entries(store.root)
    report.images, report.cache_entries = len(entries), len(cache)
    for c in cache:
        who = f"build cache entry {c.key[:12]}"
        diff_ids = c.config.get("rootfs", {}).get("diff_ids") or ()
        for desc, diff_id in zip(c.layers, diff_ids, strict=False):
            refs.blobs.setdefault(desc["digest"], (who, int(desc.get("size", -1))))
            refs.layers.setdefault(diff_id, (who, desc))
    for e in entries:
        who = f"image {index.ref_name(e) or e['digest']}"
        refs.blobs[e["digest"]] = (f"manifest of {who}", int(e.get("size", -1)))
        try:
            man = store.document(e["digest"])
            cfg = man["config"]
            refs.blobs[cfg["digest"]] = (f"config of {who}", int(cfg.get("size", -1)))
            layers = list(man.get("layers") or ())
            for d in layers:
                refs.blobs[d["digest"]] = (f"layer of {who}", int(d.get("size", -1)))
            diff_ids = store.document(cfg["digest"])["rootfs"]["diff_ids"]
        except (PycontError, KeyError, TypeError, ValueError):
            refs.complete = False  # reported as a missing or corrupt blob below
            continue
        for desc, diff_id in zip(layers, diff_ids, strict=False):
            refs.layers[diff_id] = (who, desc)
    return refs


def _hash(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _check_blobs(store: Store, refs: _Refs, report: Report) -> None:
    present = store.blobs.digests()
    report.blobs = len(present)
    for digest in present:
        path = store.blobs.path(digest)
        size = os.path.getsize(path)
        actual = _hash(path)
        who, want = refs.blobs.get(digest, ("", -1))
        if not who:
            bad = f" (and corrupt: it hashes to {actual})" if actual != digest else ""
            report.findings.append(Finding("orphan blob", digest, size, "nothing names it" + bad))
        elif actual != digest:
            what = f"{who}: it hashes to {actual}; remove the image and pull or load it again"
            report.findings.append(Finding("corrupt blob", digest, size, what))
        elif want >= 0 and size != want:
            detail = f"{who}: {size} bytes, its descriptor says {want}"
            report.findings.append(Finding("corrupt blob", digest, size, detail))
    for digest, (who, _size) in sorted(refs.blobs.items()):
        if digest not in present:
            report.findings.append(Finding("missing blob", digest, 0, who))
    for tmp in store.blobs.temporaries():
        size = os.path.getsize(tmp)
        report.findings.append(Finding("stale temporary", tmp, size, "a blob never finished"))


def _check_layers(store: Store, refs: _Refs, report: Report) -> None:
    names = sorted(os.listdir(store.layers_dir)) if os.path.isdir(store.layers_dir) else []
    report.layers = len([n for n in names if not n.startswith(".")])
    for name in names:
        path = os.path.join(store.layers_dir, name)
        if name.startswith(".tmp-"):
            report.findings.append(
                Finding("stale temporary", path, dir_size(path), "a layer never finished")
            )
        elif f"sha256:{name}" not in refs.layers:
            report.findings.append(
                Finding("orphan layer", f"sha256:{name}", dir_size(path), "nothing needs it")
            )
    sizes = os.path.join(store.root, layer_sizes.SIZES_DIR)
    for name in sorted(os.listdir(sizes)) if os.path.isdir(sizes) else []:
        if f"sha256:{name}" not in refs.layers:  # a count kept beside a layer that is gone
            path = os.path.join(sizes, name)
            report.findings.append(
                Finding("orphan size", path, os.path.getsize(path), "no such layer is needed")
            )
    for diff_id, (who, _desc) in sorted(refs.layers.items()):
        if not os.path.isdir(store.layer_dir(diff_id)):
            report.findings.append(Finding("missing layer", diff_id, 0, f"unpacked layer of {who}"))


def _repair(store: Store, refs: _Refs, report: Report) -> None:
    """Remove orphans and stale leftovers, unpack missing layers. Orphans are removed only
    when every reference could be read: otherwise an unreadable manifest's blobs would look
    like orphans."""
    for f in report.findings:
        if f.kind in ("stale temporary", "stale staging") or (
            f.kind == "orphan size" and refs.complete
        ):
            if os.path.isdir(f.name):
                remove_tree(f.name)
            else:
                os.unlink(f.name)
            f.repaired = True
        elif f.kind == "orphan blob" and refs.complete:
            os.unlink(store.blobs.path(f.name))
            f.repaired = True
        elif f.kind == "orphan layer" and refs.complete:
            remove_tree(store.layer_dir(f.name))
            f.repaired = True
        elif f.kind == "missing layer":
            desc = refs.layers[f.name][1]
            with contextlib.suppress(PycontError):  # its blob is missing or corrupt: reported
                store.unpack(desc, f.name)
                f.repaired = True
