"""``pycont system check``: every blob hashed, every reference followed, orphans found.

A store is damaged by hand the ways a crash or a disk could damage it: a blob nothing names,
a byte flipped in a referenced blob, an unpacked layer folder gone, a half-written temporary,
the staging folder of a dead writer. The check names each on one line and exits 1;
``--repair`` removes what nothing references and unpacks the missing layer, never a
referenced blob; once the damaged image is removed the store checks clean (exit 0).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from pycont.fsutil import remove_tree
from pycont.images.busybox import build_busybox
from pycont.images.store import Store
from tests.helpers import cli, register_root

PREFIX = "pc-stage-"


@pytest.fixture
def root() -> Iterator[str]:
    path = register_root(tempfile.mkdtemp(prefix=PREFIX + "check-"))
    try:
        yield path
    finally:
        subprocess.run(["rm", "-rf", path], check=True)


def check(root: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return cli("system", "check", *flags, env={"PYCONT_ROOT": root})


def kinds(out: str) -> list[tuple[str, str]]:
    """(kind, object) of each finding line; the summary line is left out."""
    rows = []
    for line in out.splitlines()[:-1]:
        words = line.split()
        kind = " ".join(words[:2])
        rows.append((kind, words[2]))
    return sorted(rows)


def test_check_finds_and_repairs(root: str) -> None:
    store = Store(os.path.join(root, "images"))
    build_busybox(store, "busybox:latest")
    damaged = build_busybox(store, PREFIX + "damaged:1")  # the same image: shares busybox
    proc = check(root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1].endswith(": 0 problems")

    orphan = store.put_blob(os.urandom(5000))
    (diff_id,) = damaged.diff_ids
    remove_tree(store.layer_dir(diff_id))
    tmp = os.path.join(store.blobs.dir, ".tmp-" + PREFIX + "half")
    with open(tmp, "wb") as f:
        f.write(b"half a blob")
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = os.path.join(store.root, f".stage-{dead.pid}-{PREFIX}x")
    os.makedirs(os.path.join(stale, "layers"))
    proc = check(root)
    assert proc.returncode == 1
    assert kinds(proc.stdout) == sorted(
        [
            ("orphan blob", orphan),
            ("missing layer", diff_id),
            ("stale temporary", tmp),
            ("stale staging", stale),
        ]
    ), proc.stdout

    proc = check(root, "--repair")
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.count("[repaired]") == 4 and "4 repaired" in proc.stdout
    assert not os.path.exists(store.blobs.path(orphan))
    assert not os.path.exists(tmp) and not os.path.exists(stale)
    assert os.path.isdir(store.layer_dir(diff_id))  # unpacked again from its blob
    assert check(root).returncode == 0

    # A flipped byte in the (shared) layer blob: corrupt, referenced, never removed.
    (desc,) = damaged.manifest["layers"]
    blob = store.blobs.path(desc["digest"])
    os.chmod(blob, 0o644)
    with open(blob, "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 1]))
    for flags in ((), ("--repair",)):
        proc = check(root, *flags)
        assert proc.returncode == 1, proc.stdout
        assert kinds(proc.stdout) == [("corrupt blob", desc["digest"])], proc.stdout
        assert "it hashes to sha256:" in proc.stdout
    assert os.path.getsize(blob) == desc["size"]

    # Put the byte back: the store checks clean.
    with open(blob, "r+b") as f:
        f.seek(1000)
        f.write(byte)
    proc = check(root)
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.strip() == (
        "Checked 2 images, 0 build cache entries, 3 blobs, 1 layers: 0 problems"
    )


def test_repair_removes_nothing_while_a_reference_cannot_be_read(root: str) -> None:
    """A corrupt config hides which layers its image needs: nothing may look like an orphan."""
    store = Store(os.path.join(root, "images"))
    rec = build_busybox(store, "busybox:latest")
    orphan = store.put_blob(os.urandom(100))
    config = store.blobs.path(rec.id)
    os.chmod(config, 0o644)
    with open(config, "ab") as f:
        f.write(b" ")
    proc = check(root, "--repair")
    assert proc.returncode == 1
    layer = rec.diff_ids[0]
    size_file = os.path.join(store.root, "layer-sizes", layer.split(":", 1)[1])
    assert kinds(proc.stdout) == sorted(
        [
            ("orphan blob", orphan),
            ("orphan layer", layer),
            ("orphan size", size_file),
            ("corrupt blob", rec.id),
        ]
    )
    assert proc.stdout.count("maybe not one: an image's manifest or config") == 3
    assert os.path.exists(size_file)
    assert os.path.exists(store.blobs.path(orphan))
    assert os.path.isdir(store.layer_dir(rec.diff_ids[0]))
