"""A layer's size is its uncompressed tar's length, whatever compression brought it.

Counted while the store unpacks it, kept in ``<images root>/layer-sizes/``, dropped with the
layer, measured once from the blob for a layer unpacked before sizes were recorded. Then a
random family of images in a real store: ``disk_usage`` against a direct count of its
``layers/`` folder.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import tarfile
from pathlib import Path

import pytest

from pycont.images import layer_sizes, oci
from pycont.images.layers import Entry, write_tar
from pycont.images.report import ImageRecord
from pycont.images.store import Store


def tar_of(files: dict[str, bytes]) -> bytes:
    entries = [Entry(n, tarfile.REGTYPE, 0o644, mtime=1, data=d) for n, d in sorted(files.items())]
    buf = io.BytesIO()
    write_tar(entries, buf)
    return buf.getvalue()


def add(
    store: Store, ref: str | None, tars: list[bytes], *, gzipped: bool, created: float = 1e9
) -> ImageRecord:
    """An image of these layer tars (bottom first), stored plain or gzip."""
    config = oci.new_config(created=created, cmd=["sh"])
    descs = []
    for i, tar in enumerate(tars):
        diff_id = "sha256:" + hashlib.sha256(tar).hexdigest()
        oci.add_layer(config, diff_id, created=created + i, created_by=f"step {i}")
        blob = gzip.compress(tar, mtime=0) if gzipped else tar
        digest = store.put_blob(blob)
        descs.append(oci.descriptor(oci.LAYER_GZIP if gzipped else oci.LAYER, digest, len(blob)))
    return store.add_image(ref, config, descs)


# Text compresses well: a gzip blob is a fraction of the tar, which is the point of the test.
BIG = {"usr/share/words": b"the quick brown fox jumps over the lazy dog\n" * 20_000}
SMALL = {"etc/motd": b"hello\n"}


def test_the_same_image_has_one_size_plain_or_gzip(tmp_path: Path) -> None:
    tars = [tar_of(BIG), tar_of(SMALL)]
    plain = add(Store(str(tmp_path / "a")), "app:1", tars, gzipped=False)
    zipped_store = Store(str(tmp_path / "b"))
    zipped = add(zipped_store, "app:1", tars, gzipped=True)
    assert plain.id == zipped.id  # the same config: the same image
    assert sum(int(d["size"]) for d in zipped.manifest["layers"]) < len(tars[0]) // 10
    assert plain.size == zipped.size == sum(map(len, tars))
    assert [i.size for i in zipped_store.images()] == [sum(map(len, tars))]
    assert [h.size for h in zipped_store.history("app:1")] == [len(tars[1]), len(tars[0])]
    (row,) = zipped_store.disk_usage().images
    assert (row.size, row.unique_size, row.shared_size) == (plain.size, plain.size, 0)


def test_the_size_is_kept_beside_the_layer_and_pruned_with_it(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "images"))
    tar = tar_of(BIG)
    rec = add(store, "app:1", [tar], gzipped=True)
    hexdigest = rec.diff_ids[0][7:]
    kept = tmp_path / "images" / layer_sizes.SIZES_DIR / hexdigest
    assert kept.read_text() == f"{len(tar)}\n"
    assert os.listdir(store.layers_dir) == [hexdigest]  # not mistaken for a layer
    store.remove("app:1")
    assert not kept.exists() and os.listdir(store.layers_dir) == []


def test_a_layer_unpacked_without_a_size_is_measured_once(tmp_path: Path) -> None:
    root = str(tmp_path / "images")
    tar = tar_of(BIG)
    rec = add(Store(root), "app:1", [tar], gzipped=True)
    kept = Path(root, layer_sizes.SIZES_DIR, rec.diff_ids[0][7:])
    kept.unlink()  # as a store written before sizes were recorded
    assert Store(root).get("app:1").size == len(tar)  # counted from the gzip blob
    assert kept.read_text() == f"{len(tar)}\n"
    kept.write_text("cut sho")  # a torn write is measured again, not believed
    assert Store(root).lookup("app:1").size == len(tar)


def test_prune_keeps_the_sizes_of_kept_layers(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "images"))
    base, top = tar_of(BIG), tar_of(SMALL)
    add(store, "base:1", [base], gzipped=True)
    child = add(store, None, [base, top], gzipped=False, created=2e9)  # dangling
    store.prune()
    names = os.listdir(os.path.join(store.root, layer_sizes.SIZES_DIR))
    assert names == [child.diff_ids[0][7:]]


@pytest.mark.parametrize("seed", range(8))
def test_df_of_a_real_store_matches_its_layers_folder(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    store = Store(str(tmp_path / "images"))
    tars = [tar_of({f"f{i}": os.urandom(rng.randrange(0, 40_000))}) for i in range(6)]
    stacks: list[list[bytes]] = []
    for n in range(rng.randint(2, 6)):
        if stacks and rng.random() < 0.6:
            stack = rng.choice(stacks) + rng.sample(tars, rng.randint(0, 1))
        else:
            stack = rng.sample(tars, rng.randint(1, 3))
        stacks.append(stack)
        for t in range(rng.randint(1, 2)):
            add(store, f"img{n}:t{t}", stack, gzipped=rng.random() < 0.5, created=1e9 + n)
    in_use = {rec.id for rec in (store.lookup(f"img{n}:t0") for n in range(len(stacks)))}
    used = set(rng.sample(sorted(in_use), rng.randint(0, len(in_use))))
    du = store.disk_usage(in_use=lambda i: ["c"] if i in used else [])

    on_disk = {"sha256:" + name for name in os.listdir(store.layers_dir)}
    size = {"sha256:" + hashlib.sha256(t).hexdigest(): len(t) for t in tars}
    assert du.layers == len(on_disk)
    assert du.total == sum(size[d] for d in on_disk)
    needed = {d for i in used for d in store.lookup(i).diff_ids}
    assert du.reclaimable == sum(size[d] for d in on_disk - needed) <= du.total
    for u in du.images:
        assert u.size == u.shared_size + u.unique_size == store.lookup(u.reference).size
    unique = sum({u.id: u.unique_size for u in du.images}.values())
    owners = {d: {u.id for u in du.images if d in store.lookup(u.id).diff_ids} for d in on_disk}
    assert du.total == unique + sum(size[d] for d in on_disk if len(owners[d]) > 1)
