"""``system df`` adds up on a real family of images, made with the CLI in a private root.

busybox; ``app`` committed on it with two tags; ``child`` committed on ``app``; one stopped
container of ``app:latest``. Then the same image saved as a docker-archive (plain layers) and
as an oci-archive with gzip layers, each loaded into a root of its own: one SIZE for both.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pycont.format import decimal_size
from pycont.images.store import Store
from tests.helpers import cli, register_root, remove_root, requires

pytestmark = requires("root", "overlay")

P = "pc-acct"
APP, CHILD = f"{P}-app", f"{P}-child"


@dataclass
class Family:
    env: dict[str, str]
    store: Store
    user: str  # the container that uses app:latest


def ok(env: dict[str, str], *args: str) -> str:
    proc = cli(*args, env=env)
    assert proc.returncode == 0, f"pycont {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def new_root() -> str:
    return register_root(tempfile.mkdtemp(prefix=f"{P}-root-"))


@pytest.fixture(scope="module")
def family() -> Iterator[Family]:
    root = new_root()
    env = {"PYCONT_ROOT": root}
    names = [f"{P}-{n}-{os.getpid()}" for n in ("a", "b", "user")]
    try:
        ok(env, "run", "--name", names[0], "busybox", "sh", "-c", "head -c 300000 /dev/zero >/a")
        ok(env, "commit", names[0], f"{APP}:v1")
        ok(env, "rm", names[0])
        ok(env, "tag", f"{APP}:v1", f"{APP}:latest")
        ok(env, "run", "--name", names[1], f"{APP}:v1", "sh", "-c", "echo b > /b")
        ok(env, "commit", names[1], f"{CHILD}:1")
        ok(env, "rm", names[1])
        ok(env, "run", "--name", names[2], f"{APP}:latest", "true")  # stays: it uses app
        yield Family(env, Store(os.path.join(root, "images")), names[2])
    finally:
        for n in names:
            cli("rm", "-f", n, env=env)  # those a failure left
        remove_root(root)


def rows_of(text: str, first: str) -> list[list[str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    out = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        out.append([c.strip() for c in re.split(r"\s{3,}", line.strip())])
    return out


def test_df_adds_up_on_a_real_family(family: Family) -> None:
    app = family.store.lookup(f"{APP}:v1")
    du = family.store.disk_usage(in_use=lambda i: [family.user] if i == app.id else [])
    rows = {u.reference: u for u in du.images}
    busybox, child = rows["busybox:latest"], rows[f"{CHILD}:1"]
    assert set(rows) == {"busybox:latest", f"{APP}:v1", f"{APP}:latest", f"{CHILD}:1"}
    assert du.count == 3 and du.active == 1 and du.layers == 3
    for u in du.images:
        assert u.size == u.shared_size + u.unique_size
    # two tags of one image: the same numbers; what they share is with the other ids
    assert rows[f"{APP}:v1"] == dataclasses.replace(rows[f"{APP}:latest"], reference=f"{APP}:v1")
    own = app.layer_sizes[-1]  # app's layer: child has it too
    top = child.size - rows[f"{APP}:v1"].size
    assert 300_000 < own < 320_000 and 0 < top <= 20_480  # tars of /a and /b (10 kB records)
    assert (busybox.shared_size, busybox.unique_size) == (busybox.size, 0)
    assert rows[f"{APP}:v1"].shared_size == busybox.size + own
    assert (child.shared_size, child.unique_size) == (busybox.size + own, top)
    assert du.total == busybox.size + own + top == child.size
    assert du.reclaimable == top  # app's container needs busybox's layer and app's

    # the CLI prints the same numbers
    v = ok(family.env, "system", "df", "-v")
    for cells in rows_of(v, "REPOSITORY"):
        u = rows[f"{cells[0]}:{cells[1]}"]
        assert cells[4:8] == [
            decimal_size(u.size),
            decimal_size(u.shared_size),
            decimal_size(u.unique_size),
            "1" if u.id == app.id else "0",
        ]
    assert f"Total: {decimal_size(du.total)} in 3 distinct layers" in v
    (images,) = [r for r in rows_of(ok(family.env, "system", "df"), "TYPE") if r[0] == "Images"]
    share = 100 * du.reclaimable // du.total
    assert images[1:] == ["3", "1", decimal_size(du.total), f"{decimal_size(top)} ({share}%)"]


def test_inspect_lists_every_tag(family: Family) -> None:
    doc = json.loads(ok(family.env, "image", "inspect", f"{APP}:v1"))[0]
    assert doc["RepoTags"] == [f"{APP}:latest", f"{APP}:v1"]
    assert doc["RepoDigests"] == []  # made here: no registry has given it a digest
    assert doc["Size"] == family.store.lookup(f"{APP}:v1").size


def gzip_oci_layers(path: Path) -> None:
    """Rewrite an oci-archive so that its layers are gzip (pycont saves them as stored)."""
    with tarfile.open(path) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]

    def blob(digest: str) -> str:
        return f"blobs/sha256/{digest[7:]}"

    def put(data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        files[blob(digest)] = data
        return digest

    index = json.loads(files["index.json"])
    for entry in index["manifests"]:
        manifest = json.loads(files[blob(entry["digest"])])
        for layer in manifest["layers"]:
            data = gzip.compress(files.pop(blob(layer["digest"])), mtime=0)
            layer.update(mediaType=layer["mediaType"] + "+gzip", digest=put(data), size=len(data))
        doc = json.dumps(manifest).encode()
        entry.update(digest=put(doc), size=len(doc))
    files["index.json"] = json.dumps(index).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_one_size_from_a_docker_archive_and_a_gzip_oci_archive(
    family: Family, tmp_path: Path
) -> None:
    sizes = {}
    for fmt in ("docker-archive", "oci-archive"):
        path = tmp_path / f"{P}-{fmt}.tar"
        ok(family.env, "save", "--format", fmt, "-o", str(path), f"{CHILD}:1")
        if fmt == "oci-archive":
            gzip_oci_layers(path)
        root = new_root()
        try:
            env = {"PYCONT_ROOT": root}
            ok(env, "load", "-i", str(path))
            store = Store(os.path.join(root, "images"))
            rec = store.lookup(f"{CHILD}:1")
            gz = [d["mediaType"].endswith("gzip") for d in rec.manifest["layers"]]
            assert gz == [fmt == "oci-archive"] * 3  # the compression did differ
            (row,) = rows_of(ok(env, "images"), "REPOSITORY")
            history = [h.size for h in store.history(rec.id)]
            sizes[fmt] = (rec.id, rec.size, row[4], history)
        finally:
            remove_root(root)
    expected = family.store.lookup(f"{CHILD}:1")
    assert sizes["docker-archive"] == sizes["oci-archive"]
    assert sizes["docker-archive"][:3] == (expected.id, expected.size, decimal_size(expected.size))
