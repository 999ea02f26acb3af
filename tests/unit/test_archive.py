"""Image archives: save and load round trips, and loads that fail leave the store as it was."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from pycont import images
from pycont.errors import ImageNotFound, PycontError, UsageError
from pycont.images import archive, oci
from pycont.images.archive import ArchiveError
from pycont.images.blobs import canonical_json
from pycont.images.layers import Entry, write_tar
from pycont.images.report import ImageRecord
from pycont.images.store import Store

FORMATS = archive.FORMATS


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "src" / "images"))


@pytest.fixture
def dest(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "dest" / "images"))


def layer_tar(files: dict[str, bytes], extra: tuple[Entry, ...] = ()) -> bytes:
    """An uncompressed layer tar with these files (and their parent directories)."""
    entries: dict[str, Entry] = {}
    for name, data in files.items():
        parent = os.path.dirname(name)
        while parent:
            entries[parent] = Entry(parent, tarfile.DIRTYPE, 0o755, mtime=1)
            parent = os.path.dirname(parent)
        entries[name] = Entry(name, tarfile.REGTYPE, 0o644, mtime=1, data=data)
    for e in extra:
        entries[e.name] = e
    out = io.BytesIO()
    write_tar(sorted(entries.values(), key=lambda e: e.name.split("/")), out)
    return out.getvalue()


def add_image(
    store: Store, ref: str | None, layers: list[bytes], gzipped: bool = False
) -> ImageRecord:
    """An image of these layer tars (bottom first), stored as they are or gzip-compressed."""
    config = oci.new_config(created=1e9, cmd=["sh"])
    descs = []
    for i, tar in enumerate(layers):
        blob = gzip.compress(tar, mtime=0) if gzipped else tar
        digest = store.put_blob(blob)
        descs.append(oci.descriptor(oci.LAYER_GZIP if gzipped else oci.LAYER, digest, len(blob)))
        diff_id = "sha256:" + hashlib.sha256(tar).hexdigest()
        oci.add_layer(config, diff_id, created=1e9 + i, created_by=f"step {i}")
    return store.add_image(ref, config, descs)


BASE = layer_tar({"bin/tool": b"#!/bin/sh\necho tool\n", "etc/gone": b"x", "data/old": b"old\n"})
TOP = layer_tar(
    {"hi": b"hi\n", "data/new": b"new\n"},
    extra=(
        Entry("etc/.wh.gone", tarfile.REGTYPE, 0o644, mtime=1, data=b""),
        Entry("data/.wh..wh..opq", tarfile.REGTYPE, 0o644, mtime=1, data=b""),
    ),
)


@pytest.fixture
def app(store: Store) -> ImageRecord:
    add_image(store, "example.com/base:1", [BASE])
    return add_image(store, "example.com/app:1", [BASE, TOP])


def saved(store: Store, refs: list[str], fmt: str) -> bytes:
    out = io.BytesIO()
    archive.save(refs, out, format=fmt, store=store)
    return out.getvalue()


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar}


def read_member(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


Change = Callable[[tarfile.TarInfo, bytes], tuple[tarfile.TarInfo, bytes]]


def rewrite(data: bytes, change: Change, extra: dict[str, bytes] | None = None) -> bytes:
    """The archive with each member passed through ``change`` (our own archives: trusted),
    plus ``extra`` files at the end."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for m in src:
            f = src.extractfile(m)
            content = f.read() if f else b""
            m, content = change(m, content)
            m.size = len(content)
            dst.addfile(m, io.BytesIO(content) if m.isreg() else None)
        for name, content in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            dst.addfile(info, io.BytesIO(content))
    return out.getvalue()


def same(m: tarfile.TarInfo, content: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return m, content


def snapshot(store: Store) -> bytes | None:
    try:
        return Path(store.index_path).read_bytes()
    except FileNotFoundError:
        return None


def unpacked(rec: ImageRecord) -> dict[str, str]:
    """What each unpacked layer holds: relative path -> file content or kind."""
    out = {}
    for top in rec.layers:
        for dirpath, dirs, files in os.walk(top):
            for name in dirs + files:
                p = os.path.join(dirpath, name)
                rel = f"{os.path.basename(top)[:8]}/{os.path.relpath(p, top)}"
                out[rel] = Path(p).read_text() if os.path.isfile(p) else str(os.lstat(p).st_mode)
    return out


# -- round trips --------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_keeps_the_image_id_and_layers(
    store: Store, dest: Store, app: ImageRecord, fmt: str
) -> None:
    data = saved(store, ["example.com/app:1"], fmt)
    assert archive.load(io.BytesIO(data), store=dest) == ["example.com/app:1"]
    got = dest.get("example.com/app:1")
    assert got.id == app.id
    assert got.digest == app.digest  # same manifest too: pycont writes it canonically
    assert got.diff_ids == app.diff_ids
    assert [d["digest"] for d in got.manifest["layers"]] == [
        d["digest"] for d in app.manifest["layers"]
    ]
    assert unpacked(got) == unpacked(store.get("example.com/app:1"))
    # layers top first, as overlay stacks them; the whiteouts came through
    assert got.layers == tuple(dest.layer_dir(d) for d in reversed(app.diff_ids))
    top = got.layers[0]
    assert os.stat(os.path.join(top, "etc", "gone"), follow_symlinks=False).st_rdev == 0
    assert os.getxattr(os.path.join(top, "data"), "user.overlay.opaque") == b"y"
    # and what the CLI runs resolves to the same thing
    img = images.resolve("example.com/app:1", store=dest)
    assert img.id == app.id and img.layers == got.layers


@pytest.mark.parametrize("fmt", FORMATS)
def test_saving_is_deterministic(store: Store, dest: Store, app: ImageRecord, fmt: str) -> None:
    first = saved(store, ["example.com/app:1", "example.com/base:1"], fmt)
    assert saved(store, ["example.com/app:1", "example.com/base:1"], fmt) == first
    archive.load(io.BytesIO(first), store=dest)
    # the same images in another store give the same bytes: nothing of the machine leaks in
    assert saved(dest, ["example.com/app:1", "example.com/base:1"], fmt) == first
    for m in members(first).values():
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "")


def test_docker_archive_layout(store: Store, app: ImageRecord) -> None:
    add_image(store, "example.com/other:2", [BASE])  # another name, the same image as base:1
    data = saved(
        store, ["example.com/app:1", "example.com/base:1", "example.com/other:2"], "docker-archive"
    )
    names = members(data)
    manifest = json.loads(read_member(data, "manifest.json"))
    assert [m["RepoTags"] for m in manifest] == [
        ["example.com/app:1"],
        ["example.com/base:1", "example.com/other:2"],  # one entry per image, all its names
    ]
    app_entry, base_entry = manifest
    assert app_entry["Config"] == app.id[7:] + ".json"
    assert read_member(data, app_entry["Config"]) == store.blobs.read(app.id)  # exact bytes
    # the base layer is shared: one directory for both images
    assert base_entry["Layers"] == app_entry["Layers"][:1]
    for path, diff_id in zip(app_entry["Layers"], app.diff_ids, strict=True):
        assert "sha256:" + hashlib.sha256(read_member(data, path)).hexdigest() == diff_id
        assert read_member(data, os.path.dirname(path) + "/VERSION") == b"1.0"
        legacy = json.loads(read_member(data, os.path.dirname(path) + "/json"))
        assert legacy["id"] == os.path.dirname(path)
    top = os.path.dirname(app_entry["Layers"][-1])
    assert json.loads(read_member(data, f"{top}/json"))["parent"] == os.path.dirname(
        app_entry["Layers"][0]
    )
    repos = json.loads(read_member(data, "repositories"))
    assert repos["example.com/app"] == {"1": top}
    assert names[top].isdir()


def test_repo_tags_are_fully_qualified(store: Store, dest: Store, app: ImageRecord) -> None:
    """podman reads a short RepoTag such as "app:1" as localhost/app:1; docker reads both."""
    store.tag("example.com/app:1", "app:1")
    data = saved(store, ["app:1"], "docker-archive")
    (entry,) = json.loads(read_member(data, "manifest.json"))
    assert entry["RepoTags"] == ["docker.io/library/app:1"]
    assert json.loads(read_member(data, "repositories")) == {
        "docker.io/library/app": {"1": os.path.dirname(entry["Layers"][-1])}
    }
    assert archive.load(io.BytesIO(data), store=dest) == ["app:1"]


def test_oci_archive_layout(store: Store, app: ImageRecord) -> None:
    data = saved(store, ["example.com/app:1"], "oci-archive")
    assert json.loads(read_member(data, "oci-layout")) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(read_member(data, "index.json"))
    (entry,) = index["manifests"]
    assert entry["digest"] == app.digest
    assert entry["annotations"][oci.REF_NAME] == "example.com/app:1"
    wanted = {app.digest, app.id, *app.diff_ids}
    assert {n for n in members(data) if n.startswith("blobs/sha256/")} == {
        "blobs/sha256/" + d[7:] for d in wanted
    }
    for d in wanted:
        assert read_member(data, "blobs/sha256/" + d[7:]) == store.blobs.read(d)


def test_gzip_layers(store: Store, dest: Store, tmp_path: Path) -> None:
    rec = add_image(store, "zipped:1", [BASE, TOP], gzipped=True)
    # oci-archive keeps the blobs as they are: compressed
    oci_data = saved(store, ["zipped:1"], "oci-archive")
    assert archive.load(io.BytesIO(oci_data), store=dest) == ["zipped:1"]
    got = dest.get("zipped:1")
    assert got.digest == rec.digest and got.id == rec.id
    assert {d["mediaType"] for d in got.manifest["layers"]} == {oci.LAYER_GZIP}
    # docker-archive layers are plain tars: decompressed on the way out, diff_ids kept
    docker_data = saved(store, ["zipped:1"], "docker-archive")
    (entry,) = json.loads(read_member(docker_data, "manifest.json"))
    assert [read_member(docker_data, p) for p in entry["Layers"]] == [BASE, TOP]
    other = Store(str(tmp_path / "third" / "images"))
    archive.load(io.BytesIO(docker_data), store=other)
    again = other.get("zipped:1")
    assert again.id == rec.id and again.diff_ids == rec.diff_ids
    assert {d["mediaType"] for d in again.manifest["layers"]} == {oci.LAYER}


def test_a_gzip_layer_in_a_docker_archive_is_accepted(
    store: Store, dest: Store, app: ImageRecord
) -> None:
    data = saved(store, ["example.com/app:1"], "docker-archive")

    def squeeze(m: tarfile.TarInfo, content: bytes) -> tuple[tarfile.TarInfo, bytes]:
        return m, gzip.compress(content, mtime=0) if m.name.endswith("layer.tar") else content

    archive.load(io.BytesIO(rewrite(data, squeeze)), store=dest)
    got = dest.get("example.com/app:1")
    assert got.id == app.id
    assert {d["mediaType"] for d in got.manifest["layers"]} == {oci.LAYER_GZIP}


def test_files_streams_and_compressed_archives(
    store: Store, dest: Store, app: ImageRecord, tmp_path: Path
) -> None:
    path = tmp_path / "app.tar"
    archive.save(["example.com/app:1"], str(path), store=store)
    assert path.read_bytes() == saved(store, ["example.com/app:1"], "docker-archive")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left
    zipped = tmp_path / "app.tar.gz"
    zipped.write_bytes(gzip.compress(path.read_bytes()))  # docker save | gzip > app.tar.gz
    assert archive.load(zipped, store=dest) == ["example.com/app:1"]


def test_save_by_id_gives_an_unnamed_image(store: Store, dest: Store, app: ImageRecord) -> None:
    for fmt in FORMATS:
        data = saved(store, [app.id[7:19]], fmt)
        assert archive.load(io.BytesIO(data), store=dest) == [app.id]
        assert [i.reference for i in dest.images()] == ["<none>:<none>"]


def test_podman_style_symlinked_layers(store: Store, dest: Store, app: ImageRecord) -> None:
    """podman and skopeo write <diff_id>.tar at the top, and <layer id>/layer.tar as symlinks."""
    data = saved(store, ["example.com/app:1"], "docker-archive")
    manifest = json.loads(read_member(data, "manifest.json"))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        with tarfile.open(fileobj=io.BytesIO(data)) as src:
            for m in src:
                f = src.extractfile(m)
                if m.name.endswith("/layer.tar"):
                    diff_id = hashlib.sha256(content := f.read() if f else b"").hexdigest()
                    top = tarfile.TarInfo(f"{diff_id}.tar")
                    top.size = len(content)
                    tar.addfile(top, io.BytesIO(content))
                    link = tarfile.TarInfo(m.name)
                    link.type, link.linkname = tarfile.SYMTYPE, f"../{diff_id}.tar"
                    tar.addfile(link)
                elif m.name != "manifest.json":
                    tar.addfile(m, f)
        # manifest.json names <layer id>/layer.tar, now symlinks: they must be followed
        body = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    assert archive.load(io.BytesIO(out.getvalue()), store=dest) == ["example.com/app:1"]
    assert dest.get("example.com/app:1").id == app.id


# -- OCI names and indexes ------------------------------------------------------------------
def with_index(data: bytes, change: Callable[[dict], None]) -> bytes:
    def edit(m: tarfile.TarInfo, content: bytes) -> tuple[tarfile.TarInfo, bytes]:
        if m.name == "index.json":
            doc = json.loads(content)
            change(doc)
            content = json.dumps(doc).encode()
        return m, content

    return rewrite(data, edit)


@pytest.mark.parametrize(
    ("annotations", "loaded"),
    [
        ({oci.REF_NAME: "localhost/x:latest"}, "localhost/x:latest"),  # podman, skopeo
        ({oci.REF_NAME: "latest", archive.CONTAINERD_NAME: "docker.io/library/x:2"}, "x:2"),
        ({oci.REF_NAME: "latest"}, None),  # a tag without a repository: unnamed
        ({}, None),
    ],
)
def test_oci_names(
    store: Store, dest: Store, app: ImageRecord, annotations: dict[str, str], loaded: str | None
) -> None:
    def name(doc: dict) -> None:
        doc["manifests"][0]["annotations"] = annotations

    data = with_index(saved(store, ["example.com/app:1"], "oci-archive"), name)
    assert archive.load(io.BytesIO(data), store=dest) == [loaded or app.id]


def test_a_multi_platform_index_loads_this_machines_image(
    store: Store, dest: Store, app: ImageRecord
) -> None:
    other = oci.descriptor(oci.MANIFEST, app.digest, app.descriptor["size"])
    mine = {**other, "platform": {"os": "linux", "architecture": oci.architecture()}}
    nested = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": oci.INDEX,
            "manifests": [{**other, "platform": {"os": "linux", "architecture": "s390x"}}, mine],
        }
    )
    digest = "sha256:" + hashlib.sha256(nested).hexdigest()
    data = saved(store, ["example.com/app:1"], "oci-archive")
    data = rewrite(data, same, extra={f"blobs/sha256/{digest[7:]}": nested})

    def point(doc: dict) -> None:
        doc["manifests"] = [
            {
                **oci.descriptor(oci.INDEX, digest, len(nested)),
                "annotations": {oci.REF_NAME: "example.com/multi:1"},
            }
        ]

    data = with_index(data, point)
    assert archive.load(io.BytesIO(data), store=dest) == ["example.com/multi:1"]
    assert dest.get("example.com/multi:1").digest == app.digest


# -- failures leave the store as it was --------------------------------------------------------
@pytest.fixture
def populated(dest: Store) -> bytes | None:
    """The destination holds an image already: its index.json must not change."""
    add_image(dest, "example.com/already:here", [layer_tar({"a": b"a"})])
    before = snapshot(dest)
    assert before is not None
    return before


def flip_last_byte_of(pred: Callable[[str], bool]):
    def change(m: tarfile.TarInfo, content: bytes) -> tuple[tarfile.TarInfo, bytes]:
        if pred(m.name) and content:
            content = content[:-1] + bytes([content[-1] ^ 1])
        return m, content

    return change


def is_layer(fmt: str, diff_ids: tuple[str, ...]) -> Callable[[str], bool]:
    if fmt == "docker-archive":
        return lambda n: n.endswith("layer.tar")
    return lambda n: n[len("blobs/sha256/") :] in {d[7:] for d in diff_ids}


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_corrupt_layer_adds_nothing(
    store: Store, dest: Store, app: ImageRecord, populated: bytes, fmt: str
) -> None:
    data = rewrite(
        saved(store, ["example.com/app:1"], fmt), flip_last_byte_of(is_layer(fmt, app.diff_ids))
    )
    with pytest.raises(ArchiveError, match="corrupt") as err:
        archive.load(io.BytesIO(data), store=dest)
    assert "\n" not in str(err.value) and str(err.value).startswith("<stream>: ")
    assert snapshot(dest) == populated
    assert [i.reference for i in dest.images()] == ["example.com/already:here"]
    dest.prune()  # what was written is garbage that prune takes back
    assert len(dest.blobs.digests()) == 3


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_corrupt_config_adds_nothing(
    store: Store, dest: Store, app: ImageRecord, populated: bytes, fmt: str
) -> None:
    def change(m: tarfile.TarInfo, content: bytes) -> tuple[tarfile.TarInfo, bytes]:
        if app.id[7:] in m.name:
            content = content.replace(b'"sh"', b'"ls"')
        return m, content

    data = rewrite(saved(store, ["example.com/app:1"], fmt), change)
    with pytest.raises(ArchiveError, match=f"{app.id[7:]}.*(corrupt|hashes)"):
        archive.load(io.BytesIO(data), store=dest)
    assert snapshot(dest) == populated


def test_a_second_image_that_fails_takes_the_first_one_with_it(
    store: Store, dest: Store, app: ImageRecord, populated: bytes
) -> None:
    other = add_image(store, "example.com/other:1", [layer_tar({"z": b"z"})])
    data = saved(store, ["example.com/app:1", "example.com/other:1"], "docker-archive")
    manifest = json.loads(read_member(data, "manifest.json"))
    assert manifest[1]["RepoTags"] == ["example.com/other:1"]
    (broken,) = manifest[1]["Layers"]  # the second image's only layer: the first one loads
    assert read_member(data, broken) == store.blobs.read(other.diff_ids[0])
    data = rewrite(data, flip_last_byte_of(lambda n: n == broken))
    with pytest.raises(ArchiveError):
        archive.load(io.BytesIO(data), store=dest)
    assert snapshot(dest) == populated


def test_an_unsafe_layer_adds_nothing(store: Store, dest: Store, populated: bytes) -> None:
    evil = layer_tar({}, extra=(Entry("../escape", tarfile.REGTYPE, 0o644, data=b"x"),))
    config = oci.new_config(created=0)
    oci.add_layer(config, "sha256:" + hashlib.sha256(evil).hexdigest(), created=0, created_by="x")
    cfg = canonical_json(config)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        files = {
            "c.json": cfg,
            "l/layer.tar": evil,
            "manifest.json": json.dumps(
                [{"Config": "c.json", "RepoTags": ["evil:1"], "Layers": ["l/layer.tar"]}]
            ).encode(),
        }
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    with pytest.raises(ArchiveError, match="leaves the layer root"):
        archive.load(io.BytesIO(out.getvalue()), store=dest)
    assert snapshot(dest) == populated
    assert not os.path.exists(os.path.join(os.path.dirname(dest.layers_dir), "escape"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_truncated_archive_adds_nothing(
    store: Store, dest: Store, app: ImageRecord, populated: bytes, fmt: str
) -> None:
    data = saved(store, ["example.com/app:1"], fmt)
    last = list(members(data).values())[-1]
    end = last.offset_data + last.size  # the last member's content ends here
    padded = end + (-end % tarfile.BLOCKSIZE)  # where the end-of-archive blocks begin
    for cut in (100, len(data) // 3 + 7, len(data) // 2 + 300, end - 5, padded):
        with pytest.raises(ArchiveError, match="truncated"):
            archive.load(io.BytesIO(data[:cut]), store=dest)
        assert snapshot(dest) == populated


def test_a_truncated_compressed_archive(store: Store, dest: Store, app: ImageRecord) -> None:
    data = gzip.compress(saved(store, ["example.com/app:1"], "docker-archive"))
    with pytest.raises(ArchiveError, match="truncated"):
        archive.load(io.BytesIO(data[: len(data) // 2]), store=dest)
    assert snapshot(dest) is None  # an empty store stays without an index


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_missing_file_adds_nothing(
    store: Store, dest: Store, app: ImageRecord, populated: bytes, fmt: str
) -> None:
    layers = is_layer(fmt, app.diff_ids)
    data = saved(store, ["example.com/app:1"], fmt)
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for m in src:
            if not layers(m.name):
                dst.addfile(m, src.extractfile(m))
    with pytest.raises(ArchiveError, match="is missing from the archive"):
        archive.load(io.BytesIO(out.getvalue()), store=dest)
    assert snapshot(dest) == populated


@pytest.mark.parametrize(
    ("name", "linkname", "why"),
    [
        ("../evil", "", "leaves the archive"),
        ("/etc/evil", "", "absolute path"),
        ("x/layer.tar", "../../etc/passwd", "leaves the archive"),
        ("y/layer.tar", "/etc/passwd", "absolute path"),
    ],
)
def test_unsafe_member_names_are_refused(
    dest: Store, populated: bytes, tmp_path: Path, name: str, linkname: str, why: str
) -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        if linkname:
            info.type, info.linkname = tarfile.SYMTYPE, linkname
            tar.addfile(info)
        else:
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
    path = tmp_path / "evil.tar"
    path.write_bytes(out.getvalue())
    with pytest.raises(ArchiveError, match=f"^{path}: refusing member .*{why}"):
        archive.load(path, store=dest)
    assert snapshot(dest) == populated


def test_devices_are_refused(dest: Store) -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("dev/sda")
        info.type, info.devmajor = tarfile.BLKTYPE, 8
        tar.addfile(info)
    with pytest.raises(ArchiveError, match="holds only files and links"):
        archive.load(io.BytesIO(out.getvalue()), store=dest)


# -- what is not an image archive ------------------------------------------------------------
def test_unknown_formats(dest: Store, tmp_path: Path, populated: bytes) -> None:
    plain = tmp_path / "plain.tar"
    with tarfile.open(plain, "w") as tar:
        info = tarfile.TarInfo("README")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(ArchiveError, match=f"^{plain}: not an image archive: no manifest.json"):
        archive.load(plain, store=dest)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(ArchiveError, match=f"^{junk}: not a tar archive"):
        archive.load(junk, store=dest)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(ArchiveError, match="empty"):
        archive.load(empty, store=dest)
    with pytest.raises(ArchiveError, match="nothere.tar: cannot open: No such file"):
        archive.load(tmp_path / "nothere.tar", store=dest)
    assert snapshot(dest) == populated


def test_save_errors(store: Store, app: ImageRecord, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown archive format 'tar'"):
        archive.save(["example.com/app:1"], io.BytesIO(), format="tar", store=store)
    with pytest.raises(UsageError, match="at least one image"):
        archive.save([], io.BytesIO(), store=store)
    with pytest.raises(ImageNotFound, match="example.com/nothere:1"):
        archive.save(["example.com/nothere:1"], tmp_path / "x.tar", store=store)
    assert not (tmp_path / "x.tar").exists()


def test_a_corrupt_blob_in_the_store_fails_save_and_leaves_no_file(
    store: Store, app: ImageRecord, tmp_path: Path
) -> None:
    path = store.blobs.path(app.diff_ids[1])
    os.chmod(path, 0o644)
    content = Path(path).read_bytes()
    Path(path).write_bytes(content[:-1] + bytes([content[-1] ^ 1]))
    out = tmp_path / "out.tar"
    with pytest.raises(PycontError, match="corrupt"):
        archive.save(["example.com/app:1"], out, store=store)
    assert not out.exists()
    assert [p for p in os.listdir(tmp_path) if p.startswith(".out.tar")] == []


def test_archive_error_is_a_pycont_error() -> None:
    assert issubclass(ArchiveError, PycontError)
    assert ArchiveError("x").exit_code == 125
