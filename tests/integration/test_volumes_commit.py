"""Volumes, bind mounts, commit, diff and the image verbs, through the CLI.

What a container writes to a volume is on the host and outlives it; a read-only bind mount is
read-only in the kernel's mount table; a mount target never leads out of the container's
root. ``commit`` makes one new layer on top of the image's, shared and not copied: checked in
the image config, in ``system df`` and in the bytes the store takes on disk.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import pycont
from pycont.images import Store
from pycont.stats_table import decimal_size
from tests.helpers import cli, mountinfo_lines, requires

pytestmark = requires("root", "overlay")

# What the committed container changes: a file added, one changed, one deleted.
CHANGES = "echo hi > /new; echo 'x:x:9:9::/:/bin/sh' >> /etc/passwd; rm /bin/true"
LAYER_FILE = 256 * 1024  # a file of random bytes that makes the new layer's size known


def ok(*args: str) -> str:
    proc = cli(*args)
    assert proc.returncode == 0, f"pycont {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, f"expected one line, got {lines!r}"
    return lines[0]


def image_id(ref: str) -> str:
    return ok("image", "inspect", "-f", "{{.Id}}", ref).strip()


def layers_of(ref: str) -> list[str]:
    text = ok("image", "inspect", "-f", "{{.RootFS.Layers}}", ref).strip()
    assert text.startswith("[") and text.endswith("]"), text
    return text[1:-1].split()


def du_bytes(path: str) -> int:
    """What the folder takes on disk, by du(1) (hard links counted once)."""
    out = subprocess.run(["du", "-s", "--block-size=1", path], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[0])


def table(text: str, first: str) -> list[list[str]]:
    """A CLI table's rows as cells (split on runs of 2+ spaces), from the header ``first``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    rows = []
    for line in lines[start:]:
        if not line.strip():
            break
        rows.append([c for c in line.split("   ") if c.strip()])
    return [[c.strip() for c in r] for r in rows]


def etc_mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if line.split()[4] == "/etc"]


def remove_images(*refs: str) -> None:
    for ref in refs:
        cli("rmi", "-f", ref)


# -- volumes ---------------------------------------------------------------------------------
def test_named_volume_outlives_its_container(name: str, pycont_root: str) -> None:
    vol = f"{name}-vol"
    ok("run", "--rm", "-v", f"{vol}:/data", "busybox", "sh", "-c", "echo kept > /data/f")
    host = Path(pycont_root, "volumes", vol, "_data", "f")
    assert host.read_text() == "kept\n"  # on the host, outside any container layer
    assert json.loads(ok("volume", "inspect", vol))[0]["Mountpoint"] == str(host.parent)
    assert ok("run", "--rm", "-v", f"{vol}:/data", "busybox", "cat", "/data/f") == "kept\n"
    assert vol in ok("volume", "ls").split()
    assert ok("volume", "rm", vol) == f"{vol}\n"
    assert not host.parent.parent.exists()


def test_volume_is_a_bind_mount_in_the_containers_mount_table(name: str) -> None:
    vol = f"{name}-vol"
    ok("run", "-d", "--name", name, "-v", f"{vol}:/data", "busybox", "sleep", "1000")
    pid = int(ok("inspect", "-f", "{{.State.Pid}}", name))
    (line,) = [m for m in mountinfo_lines("/data", pid) if m.split()[4] == "/data"]
    assert line.split()[3].endswith(f"/volumes/{vol}/_data")  # the root of the bind mount
    ok("rm", "-f", name)
    ok("volume", "rm", vol)


@pytest.mark.parametrize("mode", ["ro", "rw"])
def test_bind_mount_read_only_or_read_write(name: str, tmp_path: Path, mode: str) -> None:
    ok("run", "-d", "--name", name, "-v", f"{tmp_path}:/b:{mode}", "busybox", "sleep", "1000")
    pid = int(ok("inspect", "-f", "{{.State.Pid}}", name))
    (line,) = [m for m in mountinfo_lines("/b", pid) if m.split()[4] == "/b"]
    assert mode in line.split()[5].split(",")  # the per-mount options the kernel shows

    proc = cli("exec", name, "sh", "-c", "echo x > /b/y")
    if mode == "ro":
        assert proc.returncode == 1
        assert "Read-only file system" in proc.stderr
        assert not (tmp_path / "y").exists()
    else:
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / "y").read_text() == "x\n"


def test_bind_mount_ro_through_run(tmp_path: Path) -> None:
    proc = cli("run", "--rm", "-v", f"{tmp_path}:/b:ro", "busybox", "sh", "-c", "echo x > /b/y")
    assert proc.returncode == 1
    assert "Read-only file system" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_volume_rm_is_refused_while_a_container_uses_it(name: str, pycont_root: str) -> None:
    vol = f"{name}-vol"
    ok("run", "-d", "--name", name, "-v", f"{vol}:/data", "busybox", "sleep", "1000")
    ok("exec", name, "sh", "-c", "echo mine > /data/f")
    proc = cli("volume", "rm", vol)
    assert proc.returncode == 1
    assert name in one_line(proc.stderr) and "in use" in proc.stderr
    assert Path(pycont_root, "volumes", vol, "_data", "f").read_text() == "mine\n"
    ok("stop", "-t", "0", name)
    proc = cli("volume", "rm", vol)  # an exited container still uses it (docker)
    assert proc.returncode == 1, proc.stdout
    ok("rm", name)
    assert ok("volume", "rm", vol) == f"{vol}\n"


def test_a_mount_target_through_a_symlink_is_refused(name: str, pycont_root: str) -> None:
    # An image whose /data is a symlink to /etc: following it from the host would mount the
    # volume over the host's /etc.
    image, vol = f"{name}-sym", f"{name}-vol"
    ok("run", "--name", name, "busybox", "ln", "-s", "/etc", "/data")
    ok("commit", name, image)
    ok("rm", name)
    before = etc_mounts()
    try:
        with pytest.raises(pycont.StartError) as caught:
            pycont.run(image, ["true"], volumes=[f"{vol}:/data"], name=name)
        message = str(caught.value)
        assert "\n" not in message
        assert "/data" in message and "symlink" in message
        assert etc_mounts() == before
        assert mountinfo_lines(os.path.join(pycont_root, "volumes", vol)) == []
        pycont.get(name).remove()

        proc = cli("run", "--rm", "-v", f"{vol}:/data", image, "true")
        assert proc.returncode == 125
        assert "symlink" in one_line(proc.stderr)
        assert etc_mounts() == before
    finally:
        remove_images(image)
        cli("volume", "rm", vol)


# -- diff and commit -------------------------------------------------------------------------
def test_diff_lists_added_changed_and_deleted(name: str) -> None:
    ok("run", "--name", name, "busybox", "sh", "-c", CHANGES)
    assert ok("diff", name).splitlines() == [
        "C /bin",
        "D /bin/true",
        "C /etc",
        "C /etc/passwd",
        "A /new",
    ]


def test_commit_makes_one_layer_on_top_of_the_shared_ones(name: str) -> None:
    image = f"{name}-img"
    ok("run", "--name", name, "busybox", "sh", "-c", CHANGES)
    try:
        new_id = one_line(ok("commit", name, image))
        assert new_id == image_id(image) and new_id.startswith("sha256:")

        base, new = layers_of("busybox"), layers_of(image)
        assert new[:-1] == base and len(new) == len(base) + 1  # every busybox layer, shared
        history = table(ok("history", image), "IMAGE")[1:]
        assert len(history) == len(table(ok("history", "busybox"), "IMAGE")[1:]) + 1
        assert history[0][0] == new_id.split(":")[1][:12]
        assert history[0][2].startswith("sh -c echo hi")  # what made the layer

        # The new image is what the container left: run it.
        script = "cat /new; grep -c '^x:' /etc/passwd; test -e /bin/true || echo gone"
        assert ok("run", "--rm", image, "sh", "-c", script) == "hi\n1\ngone\n"
    finally:
        ok("rm", name)
        remove_images(image)


def test_commit_stores_only_the_new_layer(name: str, pycont_root: str) -> None:
    image = f"{name}-img"
    script = f"head -c {LAYER_FILE} /dev/urandom > /big"
    ok("run", "--name", name, "busybox", "sh", "-c", script)
    store = Store()
    images_dir = os.path.join(pycont_root, "images")
    before, disk_before = store.disk_usage(), du_bytes(images_dir)
    try:
        ok("commit", name, image)
        after, disk_after = store.disk_usage(), du_bytes(images_dir)
        rows = {u.reference: u for u in after.images}
        base, new = rows["busybox:latest"], rows[f"{image}:latest"]
        layer = new.unique_size
        assert LAYER_FILE <= layer <= LAYER_FILE + 64 * 1024  # a tar of /big
        assert new.shared_size == base.size == base.shared_size  # the busybox layer, shared
        assert new.size == base.size + layer
        # counted once in the total; the sum of sizes counts it twice
        assert after.layers == before.layers + 1
        assert after.total == before.total + layer
        assert after.naive_total == before.naive_total + base.size + layer

        # On disk: the layer's blob and its unpacked copy, and a little metadata; busybox's
        # layer (about 2 MB) is not copied.
        grown = disk_after - disk_before
        assert layer <= grown <= 2 * layer + 256 * 1024, (grown, layer)
        assert grown < base.size

        text = ok("system", "df", "-v")
        header, *cells = table(text, "REPOSITORY")
        assert header[:8] == [
            "REPOSITORY",
            "TAG",
            "IMAGE ID",
            "CREATED",
            "SIZE",
            "SHARED SIZE",
            "UNIQUE SIZE",
            "CONTAINERS",
        ]
        (row,) = [c for c in cells if c[0] == image]
        assert row[5] == decimal_size(base.size) and row[6] == decimal_size(layer)
        total = f"Total: {decimal_size(after.total)} in {after.layers} distinct layers"
        assert total in text
    finally:
        ok("rm", name)
        remove_images(image)


# -- image verbs -----------------------------------------------------------------------------
def test_tag_names_the_same_image(name: str) -> None:
    tag = f"{name}:v1"
    assert ok("tag", "busybox", tag) == ""
    try:
        assert image_id(tag) == image_id("busybox")
        rows = table(ok("images"), "REPOSITORY")[1:]
        ids = {(r[0], r[1]): r[2] for r in rows}
        assert ids[(name, "v1")] == ids[("busybox", "latest")]
        assert ok("run", "--rm", tag, "echo", "tagged") == "tagged\n"
    finally:
        # the image has another name: rmi only takes this one away
        assert ok("rmi", tag) == f"Untagged: {tag}\n"
    assert image_id("busybox").startswith("sha256:")


def test_image_inspect_layers_are_the_containers_overlay(name: str) -> None:
    layers = layers_of("busybox")
    assert layers and all(d.startswith("sha256:") for d in layers)
    ok("run", "-d", "--name", name, "busybox", "sleep", "1000")
    pid = int(ok("inspect", "-f", "{{.State.Pid}}", name))
    (root,) = [m for m in mountinfo_lines("overlay", pid) if m.split()[4] == "/"]
    options = root.split(" - ")[1].split()[2].split(",")
    lower = next(o for o in options if o.startswith("lowerdir=")).removeprefix("lowerdir=")
    # overlay's lowerdir lists the top layer first; the config lists the bottom one first.
    # On top of the image's layers: the container's init layer (the network files' mount
    # points, as docker's -init layer), which inspect's LowerDir shows too.
    init, *image_layers = lower.split(":")
    assert image_layers == [Store().layer_dir(d) for d in reversed(layers)]
    assert sorted(os.listdir(os.path.join(init, "etc"))) == ["hostname", "hosts", "resolv.conf"]
    assert ok("inspect", "-f", "{{.GraphDriver.Data.LowerDir}}", name).strip() == lower


def test_rmi_is_refused_while_a_container_uses_the_image(name: str) -> None:
    ok("run", "--name", name, "busybox", "true")
    busybox_id = image_id("busybox")
    proc = cli("rmi", "busybox")
    assert proc.returncode == 1
    line = one_line(proc.stderr)
    assert "busybox" in line and name in line
    assert image_id("busybox") == busybox_id

    ok("rm", name)
    lines = ok("rmi", "busybox").splitlines()
    assert lines[0] == "Untagged: busybox:latest"
    assert f"Deleted: {busybox_id}" in lines
    assert "busybox" not in [r[0] for r in table(ok("images"), "REPOSITORY")[1:]]
    # built again, offline, on first use: the tests after this one still have it
    assert ok("run", "--rm", "busybox", "true") == ""
    assert image_id("busybox") == busybox_id
