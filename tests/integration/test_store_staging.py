"""A refused load, commit or build step leaves the image store exactly as it was.

New blobs and layers wait in a staging folder (``pycont.images.staging``) and enter the store
only with the index change that names them. Each test compares a walk of the store (every
name and size) and ``du -sb`` before and after a write that fails half-way: a layer refused
after two were unpacked, a layer whose content does not match its diff_id, an index.json or a
build cache that cannot be written (``chattr +i``: the kernel refuses the rename, after the
blobs and layers were moved in, so the undo is what is tested).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator

import pytest

from pycont.errors import ArchiveError, LayerError, PycontError
from pycont.images import archive, fsck, oci
from pycont.images.busybox import build_busybox
from pycont.images.store import Store
from tests.helpers import register_root, requires

PREFIX = "pc-stage-"
BIG = 3 << 19  # 1.5 MB: above what the archive reader keeps in memory, so it is staged


@pytest.fixture
def store() -> Iterator[Store]:
    """A private store holding busybox (so the locks and the layout exist before a test)."""
    root = register_root(tempfile.mkdtemp(prefix=PREFIX + "root-"))
    s = Store(os.path.join(root, "images"))
    build_busybox(s, "busybox:latest")
    try:
        yield s
        report = fsck.check(Store(s.root))
        assert report.clean, "\n".join(report.lines())
    finally:
        subprocess.run(["chattr", "-R", "-i", root], capture_output=True, check=False)
        subprocess.run(["rm", "-rf", root], check=True)


def tree(root: str) -> list[tuple[str, int]]:
    """Every entry below ``root`` with its size (directories: 0): what must not change."""
    out = []
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            out.append((os.path.relpath(path, root), 0 if os.path.isdir(path) else st.st_size))
    return sorted(out)


def du_sb(path: str) -> int:
    out = subprocess.run(["du", "-sb", path], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


@contextlib.contextmanager
def unchanged(store: Store) -> Iterator[None]:
    before, size = tree(store.root), du_sb(store.root)
    yield
    assert tree(store.root) == before
    assert du_sb(store.root) == size
    assert [n for n in os.listdir(store.root) if n.startswith(".stage-")] == []


def layer(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def docker_archive(path: str, layers: list[bytes], diff_ids: list[str], tag: str) -> None:
    """A docker-archive by hand: ``<n>/layer.tar``, the config, manifest.json."""
    config = oci.new_config(created=0, cmd=["sh"])
    config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    cfg = json.dumps(config).encode()
    members = {f"{i}/layer.tar": data for i, data in enumerate(layers)}
    members[f"{sha(cfg)[7:]}.json"] = cfg
    members["manifest.json"] = json.dumps(
        [{"Config": f"{sha(cfg)[7:]}.json", "RepoTags": [tag], "Layers": list(members)[:-1]}]
    ).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def three_layers() -> list[bytes]:
    return [layer({f"f{i}": os.urandom(BIG)}) for i in range(3)]


def test_load_refused_at_a_layer_that_breaks_the_rules(store: Store) -> None:
    """The 3rd layer holds ``../x``: refused on unpacking, after the first two were."""
    layers = three_layers()
    layers[2] = layer({"ok": os.urandom(BIG), "../x": b"out"})
    path = os.path.join(os.path.dirname(store.root), "bad.tar")
    docker_archive(path, layers, [sha(x) for x in layers], PREFIX + "bad:1")
    with unchanged(store), pytest.raises(ArchiveError, match=r"\.\./x"):
        archive.load(path, store)


def test_load_refused_at_a_corrupt_layer(store: Store) -> None:
    """The 2nd of 3 layers does not hash to its diff_id: every staged blob goes again."""
    layers = three_layers()
    diff_ids = [sha(x) for x in layers]
    diff_ids[1] = sha(b"something else")
    path = os.path.join(os.path.dirname(store.root), "bad.tar")
    docker_archive(path, layers, diff_ids, PREFIX + "bad:1")
    with unchanged(store), pytest.raises(ArchiveError, match="is corrupt"):
        archive.load(path, store)
    # The same archive, whole, loads: its three layers are unpacked in the store.
    docker_archive(path, layers, [sha(x) for x in layers], PREFIX + "good:1")
    assert archive.load(path, store) == [f"{PREFIX}good:1"]
    rec = store.get(PREFIX + "good:1")
    assert all(os.path.isdir(d) and d.startswith(store.layers_dir) for d in rec.layers)


def test_load_undone_when_the_index_cannot_be_written(store: Store) -> None:
    """index.json immutable: rename(2) over it fails (EPERM) after the layers moved in."""
    layers = three_layers()
    path = os.path.join(os.path.dirname(store.root), "good.tar")
    docker_archive(path, layers, [sha(x) for x in layers], PREFIX + "good:1")
    subprocess.run(["chattr", "+i", store.index_path], check=True)
    try:
        with unchanged(store), pytest.raises((PycontError, OSError)):
            archive.load(path, store)
    finally:
        subprocess.run(["chattr", "-i", store.index_path], check=True)


def test_a_dead_writers_staging_is_removed_by_the_next_load(store: Store) -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    stale = os.path.join(store.root, f".stage-{proc.pid}-{PREFIX}x")
    os.makedirs(os.path.join(stale, "blobs", "sha256"))
    with open(os.path.join(stale, "blobs", "sha256", "half"), "wb") as f:
        f.write(os.urandom(4096))
    report = fsck.check(Store(store.root))
    assert [f.kind for f in report.problems] == ["stale staging"]
    layers = three_layers()[:1]
    path = os.path.join(os.path.dirname(store.root), "good.tar")
    docker_archive(path, layers, [sha(x) for x in layers], PREFIX + "good:1")
    archive.load(path, store)
    assert not os.path.exists(stale)


def _upper(store: Store, bad: bool) -> str:
    """An overlay upper dir by hand: a big file, then (``bad``) a renamed lower directory,
    which commit refuses after it wrote the big file into the layer."""
    upper = tempfile.mkdtemp(prefix=PREFIX + "upper-", dir=os.path.dirname(store.root))
    with open(os.path.join(upper, "a-big"), "wb") as f:
        f.write(os.urandom(BIG))
    if bad:
        os.mkdir(os.path.join(upper, "z"))
        os.setxattr(os.path.join(upper, "z"), "user.overlay.redirect", b"/y")
    return upper


@requires("root")
def test_commit_refused_half_way_leaves_the_store(store: Store) -> None:
    upper = _upper(store, bad=True)
    with unchanged(store), pytest.raises(LayerError, match="redirect_dir"):
        store.commit_layer(upper, "busybox:latest", PREFIX + "c:1")


@requires("root")
def test_commit_undone_when_the_index_cannot_be_written(store: Store) -> None:
    upper = _upper(store, bad=False)
    subprocess.run(["chattr", "+i", store.index_path], check=True)
    try:
        with unchanged(store), pytest.raises((PycontError, OSError)):
            store.commit_layer(upper, "busybox:latest", PREFIX + "c:1")
    finally:
        subprocess.run(["chattr", "-i", store.index_path], check=True)
    image_id = store.commit_layer(upper, "busybox:latest", PREFIX + "c:1")
    assert store.get(PREFIX + "c:1").id == image_id


@requires("root", "overlay")
def test_build_step_undone_when_its_cache_entry_cannot_be_written(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step's layer enters the store with the cache entry that names it, or not at all."""
    from pycont.builder.build import build

    monkeypatch.setenv("PYCONT_ROOT", os.path.dirname(store.root))
    first = "FROM busybox\nRUN echo one > /one\n"
    build(text=first, tags=PREFIX + "b:1", context=os.path.dirname(store.root))
    cache_dir = os.path.join(store.root, "build-cache")
    assert os.listdir(cache_dir)
    subprocess.run(["chattr", "+i", cache_dir], check=True)
    try:
        with unchanged(store), pytest.raises(OSError, match="build-cache"):
            build(
                text=first + "RUN dd if=/dev/urandom of=/big bs=1M count=2\n",
                tags=PREFIX + "b:2",
                context=os.path.dirname(store.root),
            )
    finally:
        subprocess.run(["chattr", "-i", cache_dir], check=True)
