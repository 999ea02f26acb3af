"""``system df``'s arithmetic, checked against a direct count over random families of images.

Each family has base images, children that keep their parent's layers and add some, images
that pick layers from anywhere, several names per image id (and untagged ones), and some
images used by containers. Layers are gzip in the manifests with made-up compressed sizes: the
numbers must come from the uncompressed sizes, never from the descriptors.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from dataclasses import dataclass

import pytest

from pycont.images import oci
from pycont.images.report import DiskUsage, ImageRecord, disk_usage, history_rows

SEEDS = range(300)


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Family:
    records: list[ImageRecord]  # one per name (an untagged image: one record, no name)
    sizes: dict[str, int]  # diff_id -> uncompressed bytes
    layers_of: dict[str, tuple[str, ...]]  # image id -> diff_ids, bottom first
    used: dict[str, int]  # image id -> containers


def _record(
    ref: str | None, diff_ids: tuple[str, ...], sizes: dict[str, int], created: int
) -> ImageRecord:
    config = oci.new_config(created=float(created), cmd=("sh",))
    for d in diff_ids:
        oci.add_layer(config, d, created=float(created), created_by=f"add {d[7:15]}")
    image_id = _digest(repr(config))
    layers = [
        oci.descriptor(oci.LAYER_GZIP, _digest("gz" + d), sizes[d] // 3 + 1) for d in diff_ids
    ]
    manifest = oci.manifest(oci.descriptor(oci.CONFIG, image_id, 1), layers)
    by_blob = {_digest("gz" + d): sizes[d] for d in diff_ids}
    return ImageRecord(
        reference=ref,
        id=image_id,
        digest=_digest(repr(manifest)),
        descriptor={},
        manifest=manifest,
        config=config,
        diff_ids=diff_ids,
        layers=tuple(f"/layers/{d[7:]}" for d in reversed(diff_ids)),
        sizer=lambda desc, _diff_id: by_blob[desc["digest"]],
    )


def random_family(seed: int) -> Family:
    rng = random.Random(seed)
    sizes: dict[str, int] = {}

    def new_layer() -> str:
        d = _digest(f"{seed}/{len(sizes)}")
        sizes[d] = rng.choice((0, 1024, rng.randrange(1, 10**8)))
        return d

    stacks: list[tuple[str, ...]] = []
    for _ in range(rng.randint(1, 8)):
        kind = rng.random()
        if not stacks or kind < 0.3:  # a base
            stack = tuple(new_layer() for _ in range(rng.randint(1, 3)))
        elif kind < 0.8:  # a child: its parent's layers and its own
            stack = rng.choice(stacks) + tuple(new_layer() for _ in range(rng.randint(0, 2)))
        else:  # layers picked from anywhere (the same diff_id made by two builds)
            stack = tuple(rng.sample(sorted(sizes), rng.randint(1, len(sizes))))
        stacks.append(stack)
    records, layers_of, used = [], {}, {}
    for n, stack in enumerate(stacks):
        names: list[str | None] = [f"img{seed}-{n}:t{t}" for t in range(rng.randint(0, 3))]
        recs = [_record(name, stack, sizes, created=n) for name in names or [None]]
        image_id = recs[0].id  # a child without layers of its own is still another image
        if image_id in layers_of:
            continue  # two identical stacks made at the same time: the same image
        layers_of[image_id] = stack
        used[image_id] = rng.choice((0, 0, 1, 2))
        records += recs
    rng.shuffle(records)
    return Family(records, sizes, layers_of, used)


def df_of(fam: Family) -> DiskUsage:
    return disk_usage(fam.records, lambda image_id: fam.used[image_id], on_disk=0)


@pytest.mark.parametrize("seed", SEEDS)
def test_df_adds_up(seed: int) -> None:
    fam = random_family(seed)
    du = df_of(fam)
    # The direct count: which image ids have each layer.
    owners: dict[str, set[str]] = {}
    for image_id, stack in fam.layers_of.items():
        for d in stack:
            owners.setdefault(d, set()).add(image_id)
    present = set(owners)

    assert du.layers == len(present)
    assert du.total == sum(fam.sizes[d] for d in present)
    assert du.count == len(fam.layers_of)
    assert du.active == sum(1 for n in fam.used.values() if n)
    rows_by_id: dict[str, list[tuple[int, int, int]]] = {}
    for u in du.images:
        assert u.size == u.shared_size + u.unique_size
        mine = set(fam.layers_of[u.id])
        assert u.size == sum(fam.sizes[d] for d in mine)
        assert u.unique_size == sum(fam.sizes[d] for d in mine if owners[d] == {u.id})
        assert u.containers == fam.used[u.id]
        rows_by_id.setdefault(u.id, []).append((u.size, u.shared_size, u.unique_size))
    # one row per name, the same numbers for every name of an image id
    names = {r.id: {x.reference for x in fam.records if x.id == r.id} for r in fam.records}
    for image_id, rows in rows_by_id.items():
        assert len(rows) == max(1, len(names[image_id] - {None}))
        assert len(set(rows)) == 1
    assert set(rows_by_id) == set(fam.layers_of)
    # the total: every image's unique bytes, plus each shared layer once
    unique = sum(rows[0][2] for rows in rows_by_id.values())
    shared_once = sum(fam.sizes[d] for d in present if len(owners[d]) > 1)
    assert du.total == unique + shared_once
    # reclaimable: the layers no container's image has
    needed = {d for i, stack in fam.layers_of.items() if fam.used[i] for d in stack}
    assert du.reclaimable == sum(fam.sizes[d] for d in present - needed)
    assert 0 <= du.reclaimable <= du.total
    assert du.naive_total == sum(sum(fam.sizes[d] for d in set(s)) for s in fam.layers_of.values())
    # docker images' SIZE is the df row's SIZE
    for rec in fam.records:
        assert rec.size == sum(fam.sizes[d] for d in set(rec.diff_ids))


def test_two_tags_of_one_image_share_nothing_between_them() -> None:
    sizes = {_digest("base"): 5000, _digest("top"): 700}
    stack = tuple(sizes)
    recs = [_record(f"app:{t}", stack, sizes, created=1) for t in ("v1", "latest")]
    du = disk_usage(recs, lambda _i: 0, on_disk=0)
    assert [u.reference for u in du.images] == ["app:latest", "app:v1"]
    for u in du.images:  # one image id: nothing is shared with another image
        assert (u.size, u.shared_size, u.unique_size) == (5700, 0, 5700)
    assert (du.count, du.total, du.naive_total, du.reclaimable) == (1, 5700, 5700, 5700)


def test_a_child_shares_its_base_and_a_container_keeps_both() -> None:
    sizes = {_digest("base"): 5000, _digest("top"): 700}
    base = _record("base:1", (_digest("base"),), sizes, created=1)
    child = _record("child:1", tuple(sizes), sizes, created=2)
    du = disk_usage([base, child], lambda i: 1 if i == child.id else 0, on_disk=0)
    rows = {u.reference: u for u in du.images}
    assert (rows["base:1"].shared_size, rows["base:1"].unique_size) == (5000, 0)
    assert (rows["child:1"].shared_size, rows["child:1"].unique_size) == (5000, 700)
    assert (du.total, du.naive_total, du.active) == (5700, 10700, 1)
    assert du.reclaimable == 0  # the child's container needs every layer, the base's too


def test_history_shows_uncompressed_sizes() -> None:
    sizes = {_digest("a"): 123456, _digest("b"): 789}
    rec = _record("app:1", tuple(sizes), sizes, created=1)
    assert [h.size for h in history_rows(rec, [rec])] == [789, 123456]  # newest first


def test_a_gzip_record_without_the_store_has_no_size() -> None:
    sizes = {_digest("a"): 10}
    rec = _record("app:1", tuple(sizes), sizes, created=1)
    bare = dataclasses.replace(rec, sizer=None)
    with pytest.raises(ValueError, match="is gzip: its size needs the store"):
        _ = bare.size
