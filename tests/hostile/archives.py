"""Hostile image archives: the wrapping, not the layer, is the attack.

Member names and manifest paths that leave the archive, symlinked or hard-linked members and
blobs, special files, duplicates, an outer archive that is cut, padded with garbage or
compressed into a bomb.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable

from tests.hostile.layers import C, LayerCase, R
from tests.hostile.tarbits import END, E, dev, f, fifo, gz, link, raw, sha, sym, tar_of
from tests.hostile.wrap import config, docker_archive, oci_archive


def _ok_layer() -> bytes:
    return tar_of(f("hello", b"hi"))


def archive_cases(canary: str) -> list[LayerCase]:
    """Whole archives (the ``tar`` field holds the archive, not a layer)."""
    c = "archive"
    layer = _ok_layer()

    def man(**over: object) -> list[dict[str, object]]:
        cfg = f"{sha(config([sha(layer)]))[7:]}.json"
        entry: dict[str, object] = {"Config": cfg, "RepoTags": ["hostile/x:1"]}
        entry["Layers"] = ["0/layer.tar"]
        entry.update(over)
        return [entry]

    def with_members(*members: E, manifest: object = None) -> bytes:
        return docker_archive([layer], "hostile/x:1", extra=list(members), manifest=manifest)

    oci = oci_archive([layer], "hostile/oci:1", [sha(layer)], gzipped=False)
    loop = [sym("a", "b"), sym("b", "a")]
    return [
        LayerCase(
            "manifest-layer-dotdot", c, R, with_members(manifest=man(Layers=["../x"])), "leaves"
        ),
        LayerCase(
            "manifest-config-dotdot",
            c,
            R,
            with_members(manifest=man(Config="../../etc/passwd")),
            "leaves",
        ),
        LayerCase(
            "manifest-config-absolute",
            c,
            R,
            with_members(manifest=man(Config=canary + "/canary.txt")),
            "absolute",
        ),
        LayerCase(
            "manifest-layer-is-config",
            c,
            R,
            with_members(f("c.json", b"{}"), manifest=man(Layers=["c.json"])),
            "",
        ),
        LayerCase("manifest-layer-dir", c, R, with_members(manifest=man(Layers=["0/"])), "missing"),
        LayerCase(
            "manifest-layer-twice",
            c,
            C,
            docker_archive([layer, layer], "hostile/twice:1"),
        ),
        LayerCase("member-dotdot", c, R, with_members(f("../evil")), "leaves the archive"),
        LayerCase("member-absolute", c, R, with_members(f(canary + "/m")), "absolute"),
        LayerCase(
            "member-symlink-abs", c, R, with_members(sym("s", canary + "/canary.txt")), "absolute"
        ),
        LayerCase("member-symlink-up", c, R, with_members(sym("s", "../../etc/passwd")), "leaves"),
        LayerCase(
            "member-symlink-loop",
            c,
            R,
            with_members(*loop, manifest=man(Layers=["a"])),
            "missing",
        ),
        LayerCase("member-hardlink-abs", c, R, with_members(link("h", "/etc/passwd")), "absolute"),
        LayerCase("member-device", c, R, with_members(dev("null")), "only files and links"),
        LayerCase("member-fifo", c, R, with_members(fifo("p")), "only files and links"),
        LayerCase("member-duplicate", c, R, with_members(f("0/layer.tar", layer)), "twice"),
        LayerCase("oci-ok", c, C, oci),
        LayerCase("oci-blob-dotdot", c, R, _oci_extra(oci, f("blobs/sha256/../../x")), "leaves"),
        LayerCase(
            "oci-blob-symlink-abs",
            c,
            R,
            _oci_replace_layer(oci, layer, lambda name: sym(name, "/etc/passwd")),
            "absolute",
        ),
        LayerCase(
            "oci-blob-symlink-other",
            c,
            R,
            _oci_replace_layer(oci, layer, lambda name: sym(name, "../../oci-layout")),
            "",
        ),
        LayerCase(
            "oci-index-digest-dotdot",
            c,
            R,
            _oci_index(oci, {"digest": "sha256:../../etc/passwd", "size": 1}),
            "digest must be a sha256:<64 hex digits> digest",
        ),
        LayerCase(
            "oci-blob-bad-name", c, R, _oci_extra(oci, f("blobs/sha256/zz")), "not a sha256 blob"
        ),
        LayerCase("outer-garbage-after-end", c, R, oci + b"garbage", "after the end"),
        LayerCase("outer-truncated", c, R, oci[: len(oci) // 2], "truncated"),
        LayerCase("outer-empty", c, R, b"", "empty"),
        LayerCase("outer-not-tar", c, R, b"\x7fELF" + bytes(2000), "not a tar"),
        LayerCase("outer-pax-2mib", c, R, raw("x", 2 << 20, b"x") + END, "PAX"),
        LayerCase(
            "outer-gzip-bomb",
            c,
            R,
            gz(tar_of(f("junk", bytes(64 << 20)))),
            "more than a layer may hold",
        ),
        LayerCase("outer-gzip", c, C, gz(docker_archive([layer], "hostile/gz:1"))),
        LayerCase(
            "manifest-json-deep",
            c,
            R,
            with_members(manifest=_deep_json(100_000)),
            "nested deeper than",
        ),
    ]


def _deep_json(depth: int) -> str:
    """JSON text nested ``depth`` arrays deep (given as text: json.dumps would recurse)."""
    return "[" * depth + "]" * depth


def _members(archive: bytes) -> list[E]:
    out = []
    with tarfile.open(fileobj=io.BytesIO(archive)) as t:
        for m in t:
            src = t.extractfile(m)
            out.append(E(m, src.read() if src else None))
    return out


def _oci_extra(archive: bytes, *extra: E) -> bytes:
    return tar_of(*_members(archive), *extra)


def _oci_replace_layer(archive: bytes, layer: bytes, make: Callable[[str], E]) -> bytes:
    name = f"blobs/sha256/{sha(layer)[7:]}"
    members = [m for m in _members(archive) if m.info.name != name]
    return tar_of(*members, make(name))


def _oci_index(archive: bytes, desc: dict[str, object]) -> bytes:
    members = [m for m in _members(archive) if m.info.name != "index.json"]
    entry = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **desc}
    index = {"schemaVersion": 2, "manifests": [entry]}
    return tar_of(*members, f("index.json", json.dumps(index).encode()))
