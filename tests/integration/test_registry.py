"""Pull and push against a real registry: distribution's ``registry serve`` on 127.0.0.1.

Two pycont roots stand for two machines: busybox is built (offline) in the first, pushed,
pulled into the second and run there. The registry's access log shows what travelled: a
second push sends no blob, a new image version sends only its own layer. Failures (an unknown
tag, a registry that sends a corrupted blob) leave the receiving store exactly as it was.
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from pycont.fsutil import remove_tree
from pycont.images import oci
from pycont.images.blobs import canonical_json, sha256_of
from pycont.images.busybox import build_busybox
from pycont.images.distribution import docker_manifest, repo_digests
from pycont.images.progress import RecordingProgress
from pycont.images.registry import ACCEPT, RegistryError, pull, push
from pycont.images.store import Store
from tests.helpers import cli, register_root, remove_root, requires
from tests.registry_server import FakeRegistry, RegistryServer, install_registry

Log = list[tuple[str, str, int]]


@pytest.fixture(scope="session")
def registry_server() -> Iterator[RegistryServer]:
    reason = install_registry()
    if reason:
        pytest.skip(reason)
    server = RegistryServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        alive = [pid for pid in server.pids if os.path.exists(f"/proc/{pid}")]
        assert not alive, f"registry processes left: {alive}"
        assert not os.path.exists(server.dir), f"{server.dir} left behind"


@dataclass
class Machines:
    """Two pycont roots: ``a`` builds and pushes, ``b`` pulls and runs."""

    host: str
    a: Store
    b: Store
    b_root: str


@pytest.fixture(scope="module")
def machines(registry_server: RegistryServer) -> Iterator[Machines]:
    roots = [register_root(tempfile.mkdtemp(prefix="pycont-registry-root-")) for _ in range(2)]
    try:
        a, b = (Store(os.path.join(r, "images")) for r in roots)
        build_busybox(a, "busybox:latest")
        a.tag("busybox", f"{registry_server.host}/busybox:1")
        yield Machines(registry_server.host, a, b, roots[1])
    finally:
        for r in roots:
            remove_root(r)


def _push(server: RegistryServer, ref: str, store: Store) -> tuple[str, RecordingProgress, Log]:
    """Push; return the digest, the progress calls and the requests the registry logged."""
    before = len(server.requests())
    rec = RecordingProgress()
    digest = push(ref, store, rec)
    server.wait_logged(
        lambda log: any(m == "PUT" and "/manifests/" in p for m, p, _ in log[before:])
    )
    return digest, rec, server.requests()[before:]


def _uploads(log: Log) -> list[str]:
    """The digests of the blobs uploaded (monolithic PUTs that the registry took: 201)."""
    return [
        p.rsplit("digest=", 1)[1].replace("%3A", ":")
        for m, p, status in log
        if m == "PUT" and "/blobs/uploads/" in p and status == 201
    ]


@pytest.fixture(scope="module")
def pushed(
    machines: Machines, registry_server: RegistryServer
) -> tuple[str, RecordingProgress, Log]:
    return _push(registry_server, f"{machines.host}/busybox:1", machines.a)


@pytest.fixture(scope="module")
def pulled(machines: Machines, pushed: object) -> tuple[str, RecordingProgress]:
    rec = RecordingProgress()
    return pull(f"{machines.host}/busybox:1", machines.b, rec), rec


@pytest.fixture(scope="module")
def version2(machines: Machines) -> str:
    """``docker commit`` of busybox with one new file: an image sharing busybox's layer."""
    upper = tempfile.mkdtemp(prefix="pycont-registry-upper-")
    try:
        with open(os.path.join(upper, "hello.txt"), "w") as f:
            f.write("version 2\n")
        ref = f"{machines.host}/busybox:2"
        machines.a.commit_layer(upper, f"{machines.host}/busybox:1", ref, message="v2")
    finally:
        remove_tree(upper)
    return ref


def _snapshot(store: Store) -> tuple[bytes, list[str], list[str], list[str]]:
    with open(store.index_path, "rb") as f:
        index = f.read()
    return (
        index,
        store.blobs.digests(),
        sorted(os.listdir(store.root)),
        [i.reference for i in store.images()],
    )


def _served(host: str, repo: str, digest: str) -> bytes:
    """A blob (or ``../manifests/<tag>``) as the registry serves it."""
    url = f"http://{host}/v2/{repo}/blobs/{digest}"
    req = urllib.request.Request(url, headers={"Accept": ACCEPT})  # else schema 1
    with urllib.request.urlopen(req, timeout=10) as r:
        return bytes(r.read())


def test_push_sends_every_blob_gzip(
    machines: Machines, pushed: tuple[str, RecordingProgress, Log]
) -> None:
    digest, rec, log = pushed
    src = machines.a.lookup(f"{machines.host}/busybox:1")
    local = [d["digest"] for d in src.manifest["layers"]]
    assert {d["mediaType"] for d in src.manifest["layers"]} == {oci.LAYER}  # stored plain
    assert rec.with_status("Pushed") == local
    data = _served(machines.host, "busybox", "../manifests/1")  # GET /v2/busybox/manifests/1
    assert sha256_of(data) == digest != src.digest
    sent = json.loads(data)
    assert sent["mediaType"] == oci.DOCKER_MANIFEST
    assert sent["config"] == {
        "mediaType": "application/vnd.docker.container.image.v1+json",
        "digest": src.id,
        "size": src.manifest["config"]["size"],
    }
    assert {d["mediaType"] for d in sent["layers"]} == {oci.DOCKER_LAYER_GZIP}
    gz = [d["digest"] for d in sent["layers"]]
    assert sorted(_uploads(log)) == sorted([*gz, src.id])
    for d in sent["layers"]:
        blob = _served(machines.host, "busybox", d["digest"])
        assert blob[:2] == b"\x1f\x8b" and len(blob) == d["size"]  # gzip (RFC 1952)
        assert blob[4:8] == b"\0\0\0\0"  # mtime 0: the same layer, the same bytes
    assert ("PUT", "/v2/busybox/manifests/1", 201) in log
    assert repo_digests(machines.a, src.id) == [f"{machines.host}/busybox@{digest}"]


def test_pull_gives_the_same_image(
    machines: Machines, pulled: tuple[str, RecordingProgress], pushed: tuple[str, object, object]
) -> None:
    image_id, rec = pulled
    src = machines.a.lookup(f"{machines.host}/busybox:1")
    got = machines.b.get(f"{machines.host}/busybox:1")
    assert (image_id, got.digest) == (src.id, pushed[0])
    assert got.diff_ids == src.diff_ids
    assert machines.b.blobs.read(got.id) == machines.a.blobs.read(src.id)
    assert rec.with_status("Pull complete") == [d["digest"] for d in got.manifest["layers"]]
    assert rec.notes[-3:] == [
        f"Digest: {got.digest}",
        f"Status: Downloaded newer image for {machines.host}/busybox:1",
        f"{machines.host}/busybox:1",
    ]
    assert repo_digests(machines.b, got.id) == [f"{machines.host}/busybox@{got.digest}"]


def test_push_again_sends_nothing(
    machines: Machines, registry_server: RegistryServer, pushed: object
) -> None:
    digest, rec, log = _push(registry_server, f"{machines.host}/busybox:1", machines.a)
    assert digest == pushed[0]  # type: ignore[index]
    assert set(rec.statuses.values()) == {"Layer already exists"} and rec.statuses
    assert [e for e in rec.events if e[0] == "advance"] == []
    assert _uploads(log) == []
    assert [m for m, p, _ in log if m == "POST"] == []


def test_a_new_version_sends_only_its_layer(
    machines: Machines,
    registry_server: RegistryServer,
    pushed: object,
    pulled: object,
    version2: str,
) -> None:
    v1 = machines.a.lookup(f"{machines.host}/busybox:1")
    v2 = machines.a.lookup(version2)
    base, new = v1.manifest["layers"][0]["digest"], v2.manifest["layers"][-1]["digest"]
    assert [d["digest"] for d in v2.manifest["layers"]] == [base, new]

    digest, rec, log = _push(registry_server, version2, machines.a)
    assert rec.statuses == {base: "Layer already exists", new: "Pushed"}
    sent = json.loads(_served(machines.host, "busybox", f"../manifests/{digest}"))
    gz_base, gz_new = (d["digest"] for d in sent["layers"])
    assert sorted(_uploads(log)) == sorted([gz_new, v2.id])  # the new layer and the config

    # The other way: the machine that has busybox:1 downloads only the new layer.
    rec = RecordingProgress()
    assert pull(version2, machines.b, rec) == v2.id
    base, new = gz_base, gz_new
    assert rec.statuses == {base: "Already exists", new: "Pull complete"}
    assert [e[1] for e in rec.events if e[0] == "advance"] == [new] * len(
        [e for e in rec.events if e[0] == "advance"]
    )
    assert machines.b.get(version2).diff_ids == v2.diff_ids
    machines.b.remove(version2)


def test_pull_of_an_unknown_tag_changes_nothing(machines: Machines, pulled: object) -> None:
    before = _snapshot(machines.b)
    with pytest.raises(RegistryError) as info:
        pull(f"{machines.host}/busybox:nope", machines.b)
    assert str(info.value) == f"pull {machines.host}/busybox:nope: manifest unknown (HTTP 404)"
    assert _snapshot(machines.b) == before


def test_a_corrupted_blob_changes_nothing(
    machines: Machines, pulled: object, version2: str
) -> None:
    v2 = machines.a.lookup(version2)
    new = v2.manifest["layers"][-1]["digest"]
    blobs = {
        d: machines.a.blobs.read(d) for d in [v2.id, *(x["digest"] for x in v2.manifest["layers"])]
    }
    flipped = bytearray(blobs[new])
    flipped[len(flipped) // 2] ^= 0x01  # one bit, in the middle of the layer
    blobs[new] = bytes(flipped)
    manifests = {"busybox:2": (machines.a.blobs.read(v2.digest), v2.descriptor["mediaType"])}
    before = _snapshot(machines.b)
    with FakeRegistry(manifests, blobs) as fake:
        ref = f"{fake.host}/busybox:2"
        with pytest.raises(RegistryError) as info:
            pull(ref, machines.b)
    assert str(info.value).startswith(f"pull {ref}: blob {new} is corrupt: all ")
    assert str(info.value).endswith(
        "; the registry's copy is damaged (pulling again will not help)"
    )
    assert "\n" not in str(info.value)
    assert _snapshot(machines.b) == before  # index.json byte for byte, no blob, no image


@requires("root", "overlay")
def test_run_the_pulled_image(machines: Machines, pulled: object) -> None:
    out = cli(
        "run", "--rm", f"{machines.host}/busybox:1", "echo", "pulled-ok",
        env={"PYCONT_ROOT": machines.b_root},
    )  # fmt: skip
    assert (out.returncode, out.stdout, out.stderr) == (0, "pulled-ok\n", "")


def test_pull_skips_layers_the_store_has_by_diff_id(machines: Machines, pulled: object) -> None:
    """Machine a holds busybox as a plain tar; an image on another registry has the same
    layer gzip'ed (machine b's copy) under a new config: nothing of the layer is fetched."""
    v1 = machines.a.lookup(f"{machines.host}/busybox:1")
    gz = machines.b.lookup(f"{machines.host}/busybox:1")
    config = {**v1.config, "config": {**v1.config["config"], "Labels": {"pc-regx": "skip"}}}
    cfg = canonical_json(config)
    cfg_desc = {"digest": sha256_of(cfg), "size": len(cfg)}
    data, media = docker_manifest(cfg_desc, gz.manifest["layers"])
    blobs = {sha256_of(cfg): cfg, **{d["digest"]: b"" for d in gz.manifest["layers"]}}
    manifests = {"label:1": (data, media), sha256_of(data): (data, media)}
    with FakeRegistry(manifests, blobs) as fake:
        ref = f"{fake.host}/label:1"
        rec = RecordingProgress()
        assert pull(ref, machines.a, rec) == sha256_of(cfg)
        assert set(rec.statuses.values()) == {"Already exists"}
        assert [p for m, p in fake.requests if m == "GET" and "/blobs/" in p] == [
            f"/v2/label/blobs/{sha256_of(cfg)}"
        ]
        got = machines.a.get(ref)  # complete: its layers unpack from the store's own blobs
        assert got.manifest["layers"] == v1.manifest["layers"]
        assert repo_digests(machines.a, got.id) == [f"{fake.host}/label@{sha256_of(data)}"]
        for again in (ref, f"{fake.host}/label@{sha256_of(data)}"):
            rec = RecordingProgress()
            pull(again, machines.a, rec)
            assert rec.notes[-2] == f"Status: Image is up to date for {again}"
    machines.a.remove(ref)
    # The image this store pushed, pulled back: the same image, nothing fetched.
    rec = RecordingProgress()
    assert pull(f"{machines.host}/busybox:1", machines.a, rec) == v1.id
    assert set(rec.statuses.values()) == {"Already exists"}
    assert rec.notes[-2] == f"Status: Image is up to date for {machines.host}/busybox:1"
