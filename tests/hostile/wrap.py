"""Image archives around layers: what ``pycont load`` reads (docker-archive, oci-archive).

A layer is wrapped as ``docker save`` writes it (``<n>/layer.tar``, ``<hex>.json``,
``manifest.json``) or as an OCI image layout (``oci-layout``, ``index.json``, ``blobs/``), with
digests that match, so that what is refused is the layer, not the wrapping.
"""

from __future__ import annotations

import json

from tests.hostile.tarbits import E, f, gz, sha, tar_of

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"
LAYER_GZIP = LAYER + "+gzip"


def config(diff_ids: list[str]) -> bytes:
    doc = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    return json.dumps(doc).encode()


def docker_archive(
    layers: list[bytes],
    tag: str,
    diff_ids: list[str] | None = None,
    *,
    extra: list[E] | None = None,
    manifest: object = None,
) -> bytes:
    """``docker save``'s layout; ``diff_ids`` default to the layers' digests (plain tars)."""
    cfg = config(diff_ids if diff_ids is not None else [sha(x) for x in layers])
    names = [f"{i}/layer.tar" for i in range(len(layers))]
    doc = (
        manifest
        if manifest is not None
        else [{"Config": f"{sha(cfg)[7:]}.json", "RepoTags": [tag], "Layers": names}]
    )
    members = [f(n, data) for n, data in zip(names, layers, strict=True)]
    members += [f(f"{sha(cfg)[7:]}.json", cfg), *(extra or [])]
    text = doc if isinstance(doc, str) else json.dumps(doc)  # a str: the JSON text as is
    members.append(f("manifest.json", text.encode()))
    return tar_of(*members)


def oci_archive(layers: list[bytes], tag: str, diff_ids: list[str], gzipped: bool) -> bytes:
    """An OCI image layout in a tar; the layers as given (gzip'd or not)."""
    cfg = config(diff_ids)
    media = LAYER_GZIP if gzipped else LAYER
    man = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": sha(cfg), "size": len(cfg)},
        "layers": [{"mediaType": media, "digest": sha(x), "size": len(x)} for x in layers],
    }
    mbytes = json.dumps(man).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": MANIFEST,
                "digest": sha(mbytes),
                "size": len(mbytes),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    blobs = {sha(x): x for x in [*layers, cfg, mbytes]}
    members = [f("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')]
    members += [f(f"blobs/sha256/{k[7:]}", v) for k, v in blobs.items()]
    members.append(f("index.json", json.dumps(index).encode()))
    return tar_of(*members)


def as_oci(layer: bytes, tag: str) -> bytes:
    """A plain layer as a gzip'd OCI layer: the path ``pull`` takes (unpack while gunzipping)."""
    return oci_archive([gz(layer)], tag, [sha(layer)], gzipped=True)
