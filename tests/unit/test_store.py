"""The image store: atomic, verified blobs; an OCI layout; layers shared between image versions."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from pycont import images
from pycont.errors import ImageNotFound
from pycont.images import oci
from pycont.images.blobs import CorruptBlob
from pycont.images.busybox import build_busybox
from pycont.images.layers import Entry, LayerError, write_tar
from pycont.images.report import ImageRecord
from pycont.images.store import ImageInUse, Store
from tests.helpers import requires

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "images"))


def layer(store: Store, files: dict[str, bytes]) -> dict[str, object]:
    """A layer tar with these files (and their parent dirs), stored; its descriptor."""
    entries: dict[str, Entry] = {}
    for name, data in files.items():
        parent = os.path.dirname(name)
        while parent:
            entries[parent] = Entry(parent, tarfile.DIRTYPE, 0o755, mtime=1)
            parent = os.path.dirname(parent)
        entries[name] = Entry(name, tarfile.REGTYPE, 0o644, mtime=1, data=data)
    with store.writing(), store.blobs.writer() as w:
        write_tar(sorted(entries.values(), key=lambda e: e.name.split("/")), w)
    return oci.descriptor(oci.LAYER, w.digest, w.size)


def image(
    store: Store, ref: str | None, layers: list[dict[str, object]], created: float = 1e9
) -> ImageRecord:
    config = oci.new_config(created=created, cmd=["sh"])
    for i, desc in enumerate(layers):
        oci.add_layer(config, str(desc["digest"]), created=created + i, created_by=f"step {i}")
    return store.add_image(ref, config, layers)


def tree_size(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


# -- blobs --------------------------------------------------------------------------------------
def test_put_blob_is_content_addressed(store: Store) -> None:
    digest = store.put_blob(b"hello layers\n")
    assert digest == "sha256:" + hashlib.sha256(b"hello layers\n").hexdigest()
    path = Path(store.blobs.path(digest))
    assert path.read_bytes() == b"hello layers\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert store.put_blob(io.BytesIO(b"hello layers\n")) == digest  # streams too; idempotent
    assert os.listdir(store.blobs.dir) == [digest[7:]]  # no temporary file left


def test_a_failed_write_leaves_no_blob(store: Store) -> None:
    class Broken(io.RawIOBase):
        sent = False

        def read(self, n: int = -1) -> bytes:
            if not self.sent:
                self.sent = True
                return b"x" * 1000
            raise OSError(5, "Input/output error")

    with pytest.raises(OSError, match="Input/output"):
        store.put_blob(Broken())  # type: ignore[arg-type]
    assert os.listdir(store.blobs.dir) == []


def test_put_blob_with_the_wrong_expected_digest(store: Store) -> None:
    with pytest.raises(CorruptBlob, match="does not match"):
        store.put_blob(b"abc", expected="sha256:" + "0" * 64)
    assert os.listdir(store.blobs.dir) == []


def test_a_corrupt_blob_is_detected_on_read(store: Store) -> None:
    digest = store.put_blob(b"original content")
    path = store.blobs.path(digest)
    os.chmod(path, 0o644)
    Path(path).write_bytes(b"tampered content")
    with store.open_blob(digest) as r, pytest.raises(CorruptBlob) as info:
        r.read()
        r.read()
    msg = str(info.value)
    assert msg.startswith(f"blob {digest} is corrupt: its content hashes to sha256:")
    assert "\n" not in msg
    with pytest.raises(CorruptBlob, match="is corrupt"):
        store.blobs.read(digest)
    os.unlink(path)
    with pytest.raises(CorruptBlob, match=f"blob {digest} is missing"):
        store.open_blob(digest)
    assert store.put_blob(b"original content") == digest  # putting it again heals the store


# -- the layout ---------------------------------------------------------------------------------
def test_oci_layout_on_disk(store: Store) -> None:
    rec = image(store, "app:1", [layer(store, {"etc/os-release": b"pycont\n"})])
    root = Path(store.root)
    assert json.loads((root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((root / "index.json").read_text())
    assert index["schemaVersion"] == 2 and index["mediaType"] == oci.INDEX
    [entry] = index["manifests"]
    assert entry["mediaType"] == oci.MANIFEST and entry["digest"] == rec.digest
    assert entry["annotations"] == {oci.REF_NAME: "docker.io/library/app:1"}
    manifest = json.loads((root / "blobs" / "sha256" / rec.digest[7:]).read_bytes())
    assert manifest["config"]["mediaType"] == oci.CONFIG
    assert manifest["config"]["digest"] == rec.id
    config = json.loads((root / "blobs" / "sha256" / rec.id[7:]).read_bytes())
    assert config["rootfs"] == {"type": "layers", "diff_ids": [manifest["layers"][0]["digest"]]}
    assert config["history"] == [{"created": "2001-09-09T01:46:40Z", "created_by": "step 0"}]
    assert config["os"] == "linux" and config["config"]["Cmd"] == ["sh"]
    assert (Path(rec.layers[0]) / "etc" / "os-release").read_text() == "pycont\n"
    assert Path(rec.layers[0]).parent == root / "layers"
    assert stat.S_IMODE((root / "layers").stat().st_mode) == 0o700


def test_layers_are_shared_between_image_versions(store: Store) -> None:
    base = layer(store, {"usr/lib/big": os.urandom(300_000)})
    v1 = image(store, "app:v1", [base])
    blobs_before = tree_size(Path(store.blobs.dir))
    layers_before = sorted(os.listdir(store.layers_dir))
    top = layer(store, {"app/run.sh": b"echo v2\n"})
    v2 = image(store, "app:v2", [base, top])

    assert v2.layers[1:] == v1.layers  # top first: v1's layer dir is v2's bottom lowerdir
    assert os.stat(v2.layers[1]).st_ino == os.stat(v1.layers[0]).st_ino
    # The store grew by the new layer (plus two small JSON documents), not by a copy of v1.
    grown = tree_size(Path(store.blobs.dir)) - blobs_before
    small_docs = store.blobs.size(v2.id) + store.blobs.size(v2.digest)
    assert grown == int(str(top["size"])) + small_docs
    assert sorted(os.listdir(store.layers_dir)) == sorted([*layers_before, v2.diff_ids[1][7:]])

    df = store.disk_usage()
    rows = {u.reference: u for u in df.images}
    a, b = int(str(base["size"])), int(str(top["size"]))
    assert (rows["app:v1"].size, rows["app:v1"].shared_size, rows["app:v1"].unique_size) == (
        a,
        a,
        0,
    )
    assert (rows["app:v2"].size, rows["app:v2"].shared_size, rows["app:v2"].unique_size) == (
        a + b,
        a,
        b,
    )
    assert df.total == a + b  # the shared layer is counted once...
    assert df.naive_total == 2 * a + b  # ...where adding up the images counts it twice
    assert df.layers == 2


def test_images_list(store: Store) -> None:
    base = layer(store, {"f": b"1"})
    image(store, "app:v1", [base], created=1e9)
    image(store, "ghcr.io/x/y:2", [base, layer(store, {"g": b"2"})], created=2e9)
    infos = store.images()
    assert [i.reference for i in infos] == ["ghcr.io/x/y:2", "app:v1"]  # newest first
    assert (infos[1].repository, infos[1].tag) == ("app", "v1")
    assert infos[0].size == sum(
        int(d["size"]) for d in store.get("ghcr.io/x/y:2").manifest["layers"]
    )


def test_lookup_by_reference_id_and_digest(store: Store) -> None:
    rec = image(store, "app:v1", [layer(store, {"f": b"1"})])
    assert store.get("app:v1").id == rec.id
    assert store.get("docker.io/library/app:v1").id == rec.id
    assert store.get(rec.id).id == rec.id
    assert store.get(rec.id[7:19]).id == rec.id
    assert store.get(f"app@{rec.digest}").id == rec.id
    with pytest.raises(ImageNotFound, match="^no such image: app:v2$"):
        store.get("app:v2")
    with pytest.raises(ImageNotFound):
        store.get("0" * 12)


def test_history_like_docker_history(store: Store) -> None:
    base = layer(store, {"f": b"1" * 1000})
    v1 = image(store, "app:v1", [base])
    top = layer(store, {"g": b"2"})
    v2 = image(store, "app:v2", [base, top])
    rows = store.history("app:v2")
    assert [r.created_by for r in rows] == ["step 1", "step 0"]  # newest first
    assert [r.id for r in rows] == [v2.id, v1.id]  # v1 is in the store: its id shows
    assert [r.size for r in rows] == [top["size"], base["size"]]
    store.remove("app:v1")
    assert [r.id for r in store.history("app:v2")] == [v2.id, "<missing>"]


# -- tag, rmi, prune ----------------------------------------------------------------------------
def test_tag_and_untag(store: Store) -> None:
    rec = image(store, "app:v1", [layer(store, {"f": b"1"})])
    blobs = sorted(os.listdir(store.blobs.dir))
    store.tag("app:v1", "mirror.io/team/app:stable")
    assert sorted(i.reference for i in store.images()) == ["app:v1", "mirror.io/team/app:stable"]
    assert store.get("mirror.io/team/app:stable").id == rec.id
    assert sorted(os.listdir(store.blobs.dir)) == blobs  # a tag copies nothing
    assert store.remove("app:v1") == ["Untagged: app:v1"]  # another name keeps the image
    assert sorted(os.listdir(store.blobs.dir)) == blobs
    lines = store.remove("mirror.io/team/app:stable")
    assert lines[:2] == ["Untagged: mirror.io/team/app:stable", f"Deleted: {rec.id}"]
    assert store.images() == []
    assert os.listdir(store.blobs.dir) == [] and os.listdir(store.layers_dir) == []


def test_remove_is_refused_while_a_container_uses_the_image(store: Store) -> None:
    rec = image(store, "app:v1", [layer(store, {"f": b"1"})])

    def in_use(image_id: str) -> list[str]:
        return ["web", "brave_curie"] if image_id == rec.id else []

    with pytest.raises(ImageInUse) as info:
        store.remove("app:v1", in_use=in_use)
    assert str(info.value) == (
        'conflict: unable to remove image "app:v1" (must force): in use by containers '
        "brave_curie, web"
    )
    assert [i.reference for i in store.images()] == ["app:v1"]
    # Forced: the name goes, the image stays (untagged) for the containers that run on it.
    assert store.remove("app:v1", force=True, in_use=in_use) == ["Untagged: app:v1"]
    assert [i.reference for i in store.images()] == ["<none>:<none>"]
    assert os.path.isdir(rec.layers[0])
    assert store.prune(in_use=in_use) == 0  # still in use: nothing to reclaim
    assert os.path.isdir(rec.layers[0])
    assert store.prune(in_use=lambda _id: []) > 0  # the containers are gone
    assert store.images() == [] and os.listdir(store.layers_dir) == []


def test_remove_deletes_only_the_layers_no_other_image_has(store: Store) -> None:
    base = layer(store, {"f": b"1" * 5000})
    top = layer(store, {"g": b"2"})
    v1 = image(store, "app:v1", [base])
    image(store, "app:v2", [base, top])
    lines = store.remove("app:v2")
    assert f"Deleted: {top['digest']}" in lines
    assert f"Deleted: {base['digest']}" not in lines
    assert store.blobs.exists(str(base["digest"])) and not store.blobs.exists(str(top["digest"]))
    assert os.listdir(store.layers_dir) == [v1.diff_ids[0][7:]]
    assert store.get("app:v1").layers == v1.layers


def test_remove_by_id_with_several_names_needs_force(store: Store) -> None:
    rec = image(store, "app:v1", [layer(store, {"f": b"1"})])
    store.tag("app:v1", "app:latest")
    with pytest.raises(ImageInUse, match="referenced by app:v1, app:latest"):
        store.remove(rec.id[7:19])
    lines = store.remove(rec.id[7:19], force=True)
    assert sorted(lines[:2]) == ["Untagged: app:latest", "Untagged: app:v1"]
    assert store.images() == []


def test_a_moved_tag_leaves_the_old_image_untagged(store: Store) -> None:
    old = image(store, "app:1", [layer(store, {"f": b"old"})])
    new = image(store, "app:1", [layer(store, {"f": b"new"})])
    assert {(i.reference, i.id) for i in store.images()} == {
        ("app:1", new.id),
        ("<none>:<none>", old.id),
    }
    freed = store.prune()
    assert freed > 0
    assert [i.id for i in store.images()] == [new.id]


def test_prune_collects_what_nothing_references(store: Store) -> None:
    rec = image(store, "app:v1", [layer(store, {"f": b"1"})])
    orphan = store.put_blob(b"x" * 1234)
    stale = Path(store.blobs.dir) / ".tmp-crashed"
    stale.write_bytes(b"y" * 100)
    leftover = Path(store.layers_dir) / ("e" * 64)
    leftover.mkdir()
    (leftover / "file").write_bytes(b"z" * 10)
    half = Path(store.layers_dir) / ".tmp-half"
    half.mkdir()
    (half / "part").write_bytes(b"w" * 7)
    assert store.prune() == 1234 + 100 + 10 + 7
    assert not store.blobs.exists(orphan)
    assert sorted(os.listdir(store.layers_dir)) == [rec.diff_ids[0][7:]]
    assert store.get("app:v1").id == rec.id
    assert store.prune() == 0


# -- layers from blobs --------------------------------------------------------------------------
def test_a_corrupt_layer_blob_is_never_unpacked(store: Store) -> None:
    desc = layer(store, {"f": b"content"})
    rec = image(store, "app:v1", [desc])
    os.rename(rec.layers[0], rec.layers[0] + ".moved")  # as if never unpacked
    path = store.blobs.path(str(desc["digest"]))
    os.chmod(path, 0o644)
    data = bytearray(Path(path).read_bytes())
    data[600] ^= 0xFF  # inside the file's content: still a valid tar
    Path(path).write_bytes(bytes(data))
    with pytest.raises(CorruptBlob, match=f"blob {desc['digest']} is corrupt"):
        store.get("app:v1")
    assert sorted(os.listdir(store.layers_dir)) == [os.path.basename(rec.layers[0]) + ".moved"]


def test_gzip_layers_are_checked_against_their_diff_id(store: Store) -> None:
    raw = io.BytesIO()
    write_tar([Entry("hello", tarfile.REGTYPE, 0o644, data=b"hi\n")], raw)
    diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
    packed = gzip.compress(raw.getvalue(), mtime=0)
    digest = store.put_blob(packed)
    config = oci.new_config(created=1e9)
    oci.add_layer(config, diff_id, created=1e9, created_by="gz")
    desc = oci.descriptor(oci.LAYER_GZIP, digest, len(packed))
    rec = store.add_image("gz:1", config, [desc])
    assert (Path(rec.layers[0]) / "hello").read_text() == "hi\n"
    assert os.path.basename(rec.layers[0]) == diff_id[7:]
    bad = oci.new_config(created=1e9)
    oci.add_layer(bad, "sha256:" + "1" * 64, created=1e9, created_by="gz")
    with pytest.raises(CorruptBlob, match="the image config says sha256:1111"):
        store.add_image("gz:bad", bad, [desc])
    assert not os.path.exists(store.layer_dir("sha256:" + "1" * 64))


def test_a_malicious_layer_changes_nothing(store: Store, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../../escaped")
        tar.addfile(info, io.BytesIO(b""))
    digest = store.put_blob(buf.getvalue())
    config = oci.new_config(created=1e9)
    oci.add_layer(config, digest, created=1e9, created_by="evil")
    with pytest.raises(LayerError, match=r"layer sha256:\w+: refusing entry '../../escaped'"):
        store.add_image("evil:1", config, [oci.descriptor(oci.LAYER, digest, len(buf.getvalue()))])
    assert store.images() == []
    assert os.listdir(store.layers_dir) == []
    assert not (tmp_path / "escaped").exists()


def test_concurrent_writers_lose_no_index_entry(store: Store) -> None:
    image(store, "app:v1", [layer(store, {"f": b"1"})])
    code = (
        "import sys; from pycont.images.store import Store\n"
        "Store(sys.argv[1]).tag('app:v1', f'app:t{sys.argv[2]}')\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, store.root, str(i)], cwd=ROOT)
        for i in range(8)
    ]
    assert [p.wait(60) for p in procs] == [0] * 8
    refs = sorted(i.reference for i in store.images())
    assert refs == sorted(["app:v1", *(f"app:t{i}" for i in range(8))])
    assert not [n for n in os.listdir(store.root) if ".tmp" in n]


def test_concurrent_first_use_builds_busybox_once(tmp_path: Path) -> None:
    code = "import sys; from pycont import images; print(images.resolve('busybox').id)\n"
    env = {**os.environ, "PYCONT_ROOT": str(tmp_path)}
    procs = [
        subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE)
        for _ in range(4)
    ]
    ids = {p.communicate(timeout=60)[0] for p in procs}
    assert [p.returncode for p in procs] == [0] * 4
    assert len(ids) == 1  # the same image, whoever built it
    store = Store(str(tmp_path / "images"))
    assert [i.reference for i in store.images()] == ["busybox:latest"]
    assert len(os.listdir(store.layers_dir)) == 1
    assert not [n for n in os.listdir(store.blobs.dir) if n.startswith(".tmp-")]


def test_the_in_use_hook_protects_images(store: Store) -> None:
    rec = image(store, "app:v1", [layer(store, {"f": b"1"})])
    images.set_in_use_hook(lambda image_id: ["web"] if image_id == rec.id else [])
    try:
        with pytest.raises(ImageInUse, match="in use by container web"):
            Store(store.root).remove("app:v1")
        assert store.disk_usage().images[0].containers == 1
    finally:
        images.set_in_use_hook(None)
    assert store.remove("app:v1")[0] == "Untagged: app:v1"


# -- commit -------------------------------------------------------------------------------------
@requires("root")  # the upper dir's whiteout is a 0/0 char device
def test_commit_layer_puts_a_new_layer_on_the_parent(store: Store, tmp_path: Path) -> None:
    parent = image(store, "app:v1", [layer(store, {"etc/motd": b"hi", "home/u/x": b"x"})])
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "new.conf").write_text("n\n")
    os.mknod(upper / "etc" / "motd", stat.S_IFCHR, os.makedev(0, 0))
    (upper / "home").mkdir()
    os.setxattr(upper / "home", "user.overlay.opaque", b"y")
    image_id = store.commit_layer(
        str(upper),
        "app:v1",
        "app:v2",
        message="removed motd",
        changes=["CMD echo hi", "ENV MODE=prod", "WORKDIR /srv"],
        created_by="sh -c rm /etc/motd",
    )
    rec = store.get("app:v2")
    assert rec.id == image_id
    assert rec.layers[1:] == parent.layers  # the parent's layers are shared, not copied
    new = Path(rec.layers[0])
    assert (new / "etc" / "new.conf").read_text() == "n\n"
    assert stat.S_ISCHR(os.lstat(new / "etc" / "motd").st_mode)
    assert os.getxattr(new / "home", "user.overlay.opaque") == b"y"
    assert rec.cmd == ("/bin/sh", "-c", "echo hi")
    assert "MODE=prod" in rec.env and rec.workdir == "/srv"
    top = store.history("app:v2")[0]
    assert (top.created_by, top.comment, top.id) == ("sh -c rm /etc/motd", "removed motd", rec.id)


# -- busybox and resolve ------------------------------------------------------------------------
def test_busybox_is_built_deterministically(tmp_path: Path) -> None:
    one = build_busybox(Store(str(tmp_path / "a")))
    two = build_busybox(Store(str(tmp_path / "b")))
    assert (one.id, one.digest, one.diff_ids) == (two.id, two.digest, two.diff_ids)
    assert one.cmd == ("sh",) and one.env[0].startswith("PATH=")
    [step] = one.config["history"]
    assert step["created_by"].startswith("pycont: busybox-static ")
    assert step["created_by"].endswith(" (offline)")
    root = Path(one.layers[0])
    assert os.readlink(root / "bin" / "sh") == "/bin/busybox"
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777


def test_resolve_builds_busybox_on_first_use(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PYCONT_ROOT", str(tmp_path))
    img = images.resolve("busybox")
    assert img.name == "busybox:latest"
    assert img.ref == "docker.io/library/busybox:latest"
    assert img.id.startswith("sha256:") and img.digest.startswith("sha256:")
    assert img.cmd == ("sh",) and img.workdir == "/"
    assert [os.path.dirname(p) for p in img.layers] == [str(tmp_path / "images" / "layers")]
    assert images.resolve("docker.io/library/busybox:latest") == img
    assert images.resolve(img.id[7:19]).layers == img.layers


def test_resolve_unknown_image(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYCONT_ROOT", str(tmp_path))
    with pytest.raises(ImageNotFound) as info:
        images.resolve("nosuch:1")
    msg = str(info.value)
    assert msg.startswith("unable to find image 'nosuch:1': no such image in ")
    assert "busybox:latest" in msg and "\n" not in msg
    with pytest.raises(ImageNotFound):
        images.resolve("busybox:1.0")  # only busybox:latest is built in
