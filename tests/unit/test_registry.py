"""Registries without a registry: where a reference goes, what is asked for, the dir: transport.

The HTTP client is exercised against :class:`tests.registry_server.FakeRegistry`, a few lines
of http.server on 127.0.0.1 (relative upload Locations, docker schema2 lists, a token
challenge); the real registry is in tests/integration/test_registry.py.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import threading
from pathlib import Path

import pytest

from pycont.errors import UsageError
from pycont.format import decimal_size
from pycont.images import oci, progress, registry
from pycont.images._registry_dir import DirRegistry
from pycont.images._registry_http import Http, HttpRegistry
from pycont.images.busybox import build_busybox
from pycont.images.layers import Entry, write_tar
from pycont.images.progress import AnsiProgress, PlainProgress, RecordingProgress
from pycont.images.registry import RegistryError, locate, pull, push
from pycont.images.store import Store
from tests.registry_server import FakeRegistry


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def busybox(tmp_path: Path) -> Store:
    store = Store(str(tmp_path / "a" / "images"))
    build_busybox(store, "busybox:latest")
    return store


@pytest.fixture
def empty(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "b" / "images"))


# -- where a reference goes ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("ref", "base", "path"),
    [
        ("localhost:5000/busybox:1", "http://localhost:5000", "/v2/busybox/manifests/1"),
        ("127.0.0.1:5000/a/b:2", "http://127.0.0.1:5000", "/v2/a/b/manifests/2"),
        ("[::1]:5000/x", "http://[::1]:5000", "/v2/x/manifests/latest"),
        ("ghcr.io/user/app:v1", "https://ghcr.io", "/v2/user/app/manifests/v1"),
        ("registry.example:443/app", "https://registry.example:443", "/v2/app/manifests/latest"),
    ],
)
def test_reference_to_url(ref: str, base: str, path: str) -> None:
    t, name = locate(ref, "pull")
    assert isinstance(t, HttpRegistry)
    assert t.where == base
    assert t.url("manifests", name.tag or "") == path


def test_plain_http_is_for_loopback_only() -> None:
    assert registry.is_loopback("127.0.0.1:5000") and registry.is_loopback("localhost")
    assert registry.is_loopback("[::1]:80") and registry.is_loopback("127.8.9.1")
    assert not registry.is_loopback("10.0.0.1:5000") and not registry.is_loopback("ghcr.io")
    with pytest.raises(RegistryError, match="plain http is for loopback only"):
        Http("ghcr.io")._conn("http", "ghcr.io")


def test_docker_hub_without_a_network_names_the_alternatives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(registry.REGISTRY_DIR_ENV, raising=False)
    with pytest.raises(RegistryError) as info:
        pull("busybox:1.36")
    msg = str(info.value)
    assert msg.startswith("pull busybox:1.36: Docker Hub (docker.io) cannot be reached")
    assert "localhost:5000/busybox" in msg and "dir:/path:busybox:1.36" in msg
    assert registry.REGISTRY_DIR_ENV in msg and "\n" not in msg


def test_registry_dir_serves_docker_hub_references(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(registry.REGISTRY_DIR_ENV, str(tmp_path))
    t, name = locate("busybox", "pull")
    assert isinstance(t, DirRegistry)
    assert (t.path, name.canonical) == (str(tmp_path), "docker.io/library/busybox:latest")
    # A registry named in the reference is still spoken to over HTTP.
    assert isinstance(locate("localhost:5000/busybox", "pull")[0], HttpRegistry)


def test_dir_references() -> None:
    t, name = locate("dir:/srv/images:user/app:2", "push")
    assert isinstance(t, DirRegistry)
    assert (t.path, str(name), t.name) == ("/srv/images", "user/app:2", "docker.io/user/app")
    with pytest.raises(UsageError, match="expected dir:PATH:IMAGE"):
        locate("dir:/srv/images", "pull")


# -- Location headers, Accept, media types ---------------------------------------------------
@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/v2/x/blobs/uploads/u1", "http://h:1/v2/x/blobs/uploads/u1?digest=sha256%3Aab"),
        ("u1?_state=s", "http://h:1/v2/x/blobs/uploads/u1?_state=s&digest=sha256%3Aab"),
        (
            "http://other:2/up/u1?_state=s%3D",
            "http://other:2/up/u1?_state=s%3D&digest=sha256%3Aab",
        ),
    ],
)
def test_upload_location(location: str, expected: str) -> None:
    assert registry.upload_url("http://h:1/v2/x/blobs/uploads/", location, "sha256:ab") == expected


def test_accept_names_oci_and_docker_manifests_and_lists() -> None:
    accepted = [a.strip() for a in registry.ACCEPT.split(",")]
    assert accepted == [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]


@pytest.mark.parametrize(
    ("content_type", "doc", "expected"),
    [
        (registry.DOCKER_MANIFEST, {}, registry.DOCKER_MANIFEST),
        (oci.INDEX + "; charset=utf-8", {}, oci.INDEX),
        ("application/json", {"mediaType": registry.DOCKER_LIST}, registry.DOCKER_LIST),
        (None, {"schemaVersion": 2, "manifests": []}, oci.INDEX),
        (None, {"schemaVersion": 2, "config": {}, "layers": []}, oci.MANIFEST),
        ("text/plain", {"schemaVersion": 1, "fsLayers": []}, registry.DOCKER_SCHEMA1),
    ],
)
def test_media_type(content_type: str | None, doc: dict[str, object], expected: str) -> None:
    assert registry.media_type(content_type, json.dumps(doc).encode()) == expected


def test_choose_platform() -> None:
    index = {
        "manifests": [
            {"digest": "sha256:1", "platform": {"os": "linux", "architecture": "arm64"}},
            {"digest": "sha256:2", "platform": {"os": "linux", "architecture": "amd64"}},
            {"digest": "sha256:3", "platform": {"os": "unknown", "architecture": "unknown"}},
        ]
    }
    assert registry.choose_platform(index, "amd64")["digest"] == "sha256:2"
    with pytest.raises(RegistryError, match=r"no manifest for linux/s390x .*linux/arm64"):
        registry.choose_platform(index, "s390x")


# -- the dir: transport ----------------------------------------------------------------------
def test_dir_round_trip(busybox: Store, empty: Store, tmp_path: Path) -> None:
    src = busybox.lookup("busybox")
    folder = tmp_path / "registry"
    rec = RecordingProgress()
    digest = push(f"dir:{folder}:busybox:latest", busybox, rec)
    assert digest == src.digest
    assert rec.with_status("Pushed") == [d["digest"] for d in src.manifest["layers"]]
    index = json.loads((folder / "index.json").read_text())
    assert [e["annotations"][oci.REF_NAME] for e in index["manifests"]] == [
        "docker.io/library/busybox:latest"
    ]
    assert json.loads((folder / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}

    rec = RecordingProgress()
    image_id = pull(f"dir:{folder}:busybox:latest", empty, rec)
    got = empty.get("busybox")
    assert (image_id, got.digest, got.diff_ids) == (src.id, src.digest, src.diff_ids)
    assert os.path.isfile(os.path.join(got.layers[0], "bin", "busybox"))
    assert rec.with_status("Pull complete") == [d["digest"] for d in src.manifest["layers"]]
    assert rec.notes[-2:] == [
        "Status: Downloaded newer image for busybox:latest",
        "docker.io/library/busybox:latest",
    ]
    assert registry.local_name(f"dir:{folder}:busybox").canonical == rec.notes[-1]

    # Again: nothing travels either way.
    rec = RecordingProgress()
    push(f"dir:{folder}:busybox:latest", busybox, rec)
    assert set(rec.statuses.values()) == {"Layer already exists"}
    assert not [e for e in rec.events if e[0] == "advance"]
    rec = RecordingProgress()
    pull(f"dir:{folder}:busybox:latest", empty, rec)
    assert set(rec.statuses.values()) == {"Already exists"}
    assert rec.notes[-2] == "Status: Image is up to date for busybox:latest"
    assert not [n for n in os.listdir(empty.root) if n.startswith(".pull-")]


def test_registry_dir_round_trip(
    busybox: Store, empty: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(registry.REGISTRY_DIR_ENV, str(tmp_path / "hub"))
    digest = push("busybox", busybox)
    pull("busybox", empty)
    assert empty.lookup("busybox:latest").digest == digest
    pull(f"busybox@{digest}", empty)  # by digest: found, nothing new to name
    assert empty.lookup(f"busybox@{digest}").digest == digest


def test_dir_pull_of_a_layout_named_by_tag_only(busybox: Store, tmp_path: Path) -> None:
    """skopeo copy ... oci:PATH:TAG names the manifest by its tag alone."""
    folder = tmp_path / "skopeo"
    push(f"dir:{folder}:busybox:latest", busybox)
    index = json.loads((folder / "index.json").read_text())
    index["manifests"][0]["annotations"][oci.REF_NAME] = "v1"
    (folder / "index.json").write_text(json.dumps(index))
    store = Store(str(tmp_path / "c" / "images"))
    assert pull(f"dir:{folder}:anything:v1", store) == busybox.lookup("busybox").id
    assert store.lookup("anything:v1").digest == busybox.lookup("busybox").digest


def test_dir_pull_of_an_unknown_tag(busybox: Store, empty: Store, tmp_path: Path) -> None:
    push(f"dir:{tmp_path}/r:busybox:latest", busybox)
    with pytest.raises(RegistryError) as info:
        pull(f"dir:{tmp_path}/r:busybox:nope", empty)
    assert str(info.value) == (
        f"pull dir:{tmp_path}/r:busybox:nope: manifest unknown: "
        f"no docker.io/library/busybox:nope in dir:{tmp_path}/r"
    )
    assert not os.path.exists(empty.index_path)


def test_push_of_an_image_that_is_not_there(empty: Store, tmp_path: Path) -> None:
    from pycont.errors import ImageNotFound

    with pytest.raises(ImageNotFound, match="does not exist locally with the tag busybox:2"):
        push(f"dir:{tmp_path}:busybox:2", empty)


# -- HTTP, against a fake on loopback ----------------------------------------------------------
def test_push_follows_a_relative_location(busybox: Store) -> None:
    src = busybox.lookup("busybox")
    with FakeRegistry() as fake:
        ref = f"{fake.host}/busybox:1"
        busybox.tag("busybox", ref)
        digest = push(ref, busybox)
    layer = src.manifest["layers"][0]["digest"]
    sent = json.loads(fake.manifests["busybox:1"][0])
    assert fake.manifests["busybox:1"][1] == oci.DOCKER_MANIFEST and digest != src.digest
    gz = sent["layers"][0]["digest"]
    patches = [p for m, p in fake.requests if m == "PATCH"]
    puts = [p for m, p in fake.requests if m == "PUT" and "/blobs/uploads/" in p]
    assert len(puts) == 2 and all(p.startswith("/v2/busybox/blobs/uploads/") for p in puts)
    assert patches and all(p.endswith("?state=1") for p in patches)  # relative, followed
    assert f"?state=1&digest={gz.replace(':', '%3A')}" in puts[0]
    assert gzip.decompress(fake.blobs[gz]) == busybox.blobs.read(layer)


def test_a_token_challenge_is_one_line(busybox: Store) -> None:
    bearer = 'Bearer realm="https://auth.example/token",service="registry.example"'
    with FakeRegistry(challenge=bearer) as fake:
        with pytest.raises(RegistryError) as info:
            pull(f"{fake.host}/app:1", Store("/nonexistent/never-made"))
        assert str(info.value) == (
            f"pull {fake.host}/app:1: the registry wants a token (HTTP 401, WWW-Authenticate: "
            f"{bearer}); pycont pulls and pushes anonymously only"
        )
        busybox.tag("busybox", f"{fake.host}/app:1")
        with pytest.raises(RegistryError, match=rf"^push {fake.host}/app:1: the registry wants"):
            push(f"{fake.host}/app:1", busybox)
    assert not os.path.exists("/nonexistent/never-made")


def _docker_image() -> tuple[dict[str, tuple[bytes, str]], dict[str, bytes], str, str]:
    """A docker schema2 image (gzip layer) behind a manifest list with two platforms."""
    tar = io.BytesIO()
    entries = [
        Entry("etc", tarfile.DIRTYPE, 0o755, mtime=1),
        Entry("etc/hello", tarfile.REGTYPE, 0o644, mtime=1, data=b"hi\n"),
    ]
    write_tar(entries, tar)
    gz = gzip.compress(tar.getvalue(), mtime=0)
    config = oci.new_config(created=1, cmd=["cat", "/etc/hello"])
    oci.add_layer(config, sha(tar.getvalue()), created=1, created_by="test")
    cfg = json.dumps(config).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": registry.DOCKER_MANIFEST,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": sha(cfg),
                "size": len(cfg),
            },
            "layers": [{"mediaType": oci.DOCKER_LAYER_GZIP, "digest": sha(gz), "size": len(gz)}],
        },
        indent=3,  # not pycont's canonical form: the digest must survive as sent
    ).encode()
    other = {"mediaType": registry.DOCKER_MANIFEST, "digest": sha(b"x"), "size": 1}
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": registry.DOCKER_LIST,
            "manifests": [
                {**other, "platform": {"os": "linux", "architecture": "arm64"}},
                {
                    "mediaType": registry.DOCKER_MANIFEST,
                    "digest": sha(manifest),
                    "size": len(manifest),
                    "platform": {"os": "linux", "architecture": oci.architecture()},
                },
            ],
        }
    ).encode()
    manifests = {
        "app:1": (index, registry.DOCKER_LIST),
        sha(manifest): (manifest, registry.DOCKER_MANIFEST),
    }
    return manifests, {sha(cfg): cfg, sha(gz): gz}, sha(manifest), sha(cfg)


def test_pull_of_a_docker_manifest_list(empty: Store) -> None:
    manifests, blobs, man_digest, image_id = _docker_image()
    with FakeRegistry(manifests, blobs) as fake:
        ref = f"{fake.host}/app:1"
        assert pull(ref, empty) == image_id
    rec = empty.get(ref)
    assert rec.digest == man_digest and rec.descriptor["mediaType"] == registry.DOCKER_MANIFEST
    assert rec.cmd == ("cat", "/etc/hello")
    with open(os.path.join(rec.layers[0], "etc", "hello")) as f:
        assert f.read() == "hi\n"
    assert empty.blobs.read(man_digest) == manifests[man_digest][0]  # byte for byte


def test_a_layer_whose_content_is_not_its_diff_id(empty: Store) -> None:
    manifests, blobs, _, cfg_digest = _docker_image()
    config = json.loads(blobs[cfg_digest])
    config["rootfs"]["diff_ids"] = [sha(b"something else")]
    # A new config means a new manifest: rewrite both, keeping the layer.
    cfg = json.dumps(config).encode()
    man_digest = next(k for k in manifests if k.startswith("sha256:"))
    manifest = json.loads(manifests[man_digest][0])
    manifest["config"].update(digest=sha(cfg), size=len(cfg))
    data = json.dumps(manifest).encode()
    manifests = {"app:1": (data, registry.DOCKER_MANIFEST)}
    blobs[sha(cfg)] = cfg
    with FakeRegistry(manifests, blobs) as fake, pytest.raises(RegistryError) as info:
        pull(f"{fake.host}/app:1", empty)
    assert "its content unpacks to sha256:" in str(info.value)
    assert f"the config says {sha(b'something else')}" in str(info.value)
    assert not os.path.exists(empty.index_path) and empty.blobs.digests() == []


# -- progress --------------------------------------------------------------------------------
class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_progress_lines() -> None:
    out = io.StringIO()
    p = progress.auto("pull", out)
    assert isinstance(p, PlainProgress)
    p.start("sha256:" + "a" * 64, 3_400_000)
    p.advance("sha256:" + "a" * 64, 1_200_000)
    p.done("sha256:" + "a" * 64, "Pull complete")
    p.note("Digest: sha256:x")
    assert out.getvalue().splitlines() == [
        "aaaaaaaaaaaa: Pulling fs layer",
        "aaaaaaaaaaaa: Pull complete",
        "Digest: sha256:x",
    ]


def test_ansi_progress_redraws_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "_REDRAW_EVERY", 0.0)  # else bars redraw 10 times a second
    out = _Tty()
    p = progress.auto("push", out)
    assert isinstance(p, AnsiProgress)
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    p.start(a, 3_400_000)
    p.start(b, 10)
    p.advance(a, 1_200_000)
    p.done(b, "Layer already exists")
    text = out.getvalue()
    assert "aaaaaaaaaaaa: Preparing\nbbbbbbbbbbbb: Preparing\n" in text
    assert "\x1b[2A\r\x1b[2Kaaaaaaaaaaaa: Pushing [" in text and "] 1.2MB/3.4MB" in text
    assert text.endswith("\x1b[1A\r\x1b[2Kbbbbbbbbbbbb: Layer already exists\x1b[1B\r")


def test_a_background_thread_never_prints() -> None:
    out = io.StringIO()
    p = PlainProgress("pull", out)

    def elsewhere() -> None:
        p.start("sha256:" + "c" * 64, 1)
        p.note("x")

    t = threading.Thread(target=elsewhere)
    t.start()
    t.join(5)
    assert out.getvalue() == ""
    assert "sha256:" + "c" * 64 in p.layers  # recorded, for the owner thread to show


def test_progress_sizes_are_docker_s() -> None:
    """The progress bars print sizes with pycont.format.decimal_size (docker's HumanSize)."""
    sizes = (527, 999_999, 1_200_000, 3_400_000, 2_139_000_000)
    assert [decimal_size(n) for n in sizes] == [
        "527B",
        "1MB",
        "1.2MB",
        "3.4MB",
        "2.14GB",
    ]


def test_notebook_progress_leaves_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ipywidgets")
    p = progress.NotebookProgress("pull")
    layer = "sha256:" + "d" * 64
    p.note("1: Pulling from busybox")
    p.start(layer, 2000)
    p.advance(layer, 1000)
    bar, label = p._bars[layer]
    assert (bar.value, bar.max, bar.description, label.value) == (
        1000,
        2000,
        "dddddddddddd",
        "Downloading 1kB/2kB",
    )
    p.done(layer, "Pull complete")
    p.note("Digest: sha256:x")
    p.close()  # outside a kernel display() prints; the summary follows, as plain lines
    assert capsys.readouterr().out.splitlines()[-3:] == [
        "1: Pulling from busybox",
        "dddddddddddd: Pull complete",
        "Digest: sha256:x",
    ]


def test_a_killed_pull_s_staging_folder_is_removed(busybox: Store, tmp_path: Path) -> None:
    push(f"dir:{tmp_path}/r:busybox:latest", busybox)
    store = Store(str(tmp_path / "c" / "images"))
    dead = tmp_path / "c" / "images" / ".pull-999999999-x"  # no such pid
    (dead / "blobs").mkdir(parents=True)
    pull(f"dir:{tmp_path}/r:busybox:latest", store)
    assert not dead.exists() and not [n for n in os.listdir(store.root) if n.startswith(".pull")]
