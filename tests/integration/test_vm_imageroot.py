"""pycont.vm.imageroot against the kernel: the flattened layers must list exactly what
overlayfs shows for the same layers, and the cpio must unpack (GNU cpio) to that same listing.

The overlay is mounted read-only in a child's own mount namespace (``unshare -m``), as in
test_overlay.py: the mount ends with the child, also when a test fails."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import pycont
import pycont.images as images
from pycont.images import whiteouts as wh
from pycont.vm import imageroot
from pycont.vm.errors import VMError
from tests.helpers import requires

pytestmark = requires("root", "overlay")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

Listing = dict[str, tuple[str, int, int, int, int, str]]

# Runs in the child: mount the layers read-only (lowerdirs only), list the merged dir with
# lstat, unmount, print the listing as JSON.
CHILD = r"""
import json, os, stat, sys
from pycont.overlay import Stack
from pycont.vm.imageroot import _KINDS
lowers, merged = json.loads(sys.argv[1]), sys.argv[2]
stack = Stack(tuple(lowers), None, None, merged)
stack.mount()
out = {}
try:
    for top, dirs, files in os.walk(merged):
        for name in dirs + files:
            p = os.path.join(top, name)
            st = os.lstat(p)
            kind = _KINDS[stat.S_IFMT(st.st_mode)]
            out[os.path.relpath(p, merged)] = [
                kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                st.st_size if kind == "file" else 0,
                os.readlink(p) if kind == "symlink" else "",
            ]
finally:
    stack.unmount()
print(json.dumps(out))
"""


def overlay_view(layers: tuple[str, ...], scratch: Path) -> Listing:
    """What overlayfs shows for ``layers`` (top first). An empty lowest layer is added: an
    overlay without upperdir wants two lowerdirs on older kernels, and adds nothing."""
    empty, merged = scratch / "empty", scratch / "merged"
    empty.mkdir()
    merged.mkdir()
    res = subprocess.run(
        ["unshare", "-m", "--propagation", "private", sys.executable, "-c", CHILD]
        + [json.dumps([*layers, str(empty)]), str(merged)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    return {k: tuple(v) for k, v in json.loads(res.stdout).items()}  # type: ignore[misc]


def unpacked_view(archive: Path, out: Path) -> Listing:
    """The archive unpacked by GNU cpio (owners and times kept: we are root), listed."""
    out.mkdir()
    with open(archive, "rb") as f:
        res = subprocess.run(
            ["cpio", "-idm", "--no-absolute-filenames", "--quiet"],
            stdin=f,
            cwd=out,
            capture_output=True,
            preexec_fn=lambda: os.umask(0),  # modes exactly as the archive says
        )
    assert res.returncode == 0, res.stderr
    listing: Listing = {}
    for top, dirs, files in os.walk(out):
        for name in dirs + files:
            p = os.path.join(top, name)
            st = os.lstat(p)
            kind = imageroot._KINDS[stat.S_IFMT(st.st_mode)]
            listing[os.path.relpath(p, out)] = (
                kind,
                stat.S_IMODE(st.st_mode),
                st.st_uid,
                st.st_gid,
                st.st_size if kind == "file" else 0,
                os.readlink(p) if kind == "symlink" else "",
            )
    return listing


needs_cpio = pytest.mark.skipif(shutil.which("cpio") is None, reason="needs GNU cpio")


def check_image(img: images.Image, scratch: Path) -> Path:
    """tree == overlay's view == the unpacked archive (with file data and file mtimes)."""
    listing = imageroot.tree(img)
    assert listing == overlay_view(img.layers, scratch)
    archive = imageroot.guest_root(img)
    unpacked = scratch / "unpacked"
    assert unpacked_view(archive, unpacked) == listing
    for e in imageroot.flatten(img.layers):
        if e.kind == "file":
            got = unpacked / e.path
            assert got.read_bytes() == Path(e.source).read_bytes(), e.path
            assert int(os.lstat(got).st_mtime) == e.mtime, e.path
    return archive


# -- layers made by hand: each overlay rule once ----------------------------------------------
def hand_made(tmp_path: Path) -> images.Image:
    base, mid, top = (tmp_path / n for n in ("base", "mid", "top"))
    for d in (base, mid, top):
        d.mkdir(parents=True)
    for rel, data in [
        ("etc/passwd", "root\n"),
        ("etc/keep", "keep\n"),
        ("opaque/old", "hidden\n"),
        ("becomes-file/inner", "hidden\n"),
        ("becomes-dir", "file\n"),
        ("gone-dir/x", "x\n"),
        ("links/a", "linked\n"),
    ]:
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_text(data)
    os.link(base / "links/a", base / "links/b")
    os.link(base / "links/a", base / "links/c")
    os.mknod(base / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a real device node
    os.mkfifo(base / "fifo", 0o620)
    os.symlink("/etc/passwd", base / "abs-link")
    # mid: deletes, an opaque dir, a file over a dir, a dir over a file, new owners and modes
    (mid / "etc").mkdir()
    os.mknod(mid / "etc/passwd", stat.S_IFCHR, wh.WHITEOUT_DEV)  # whiteout
    (mid / "opaque").mkdir()
    (mid / "opaque/new").write_text("new\n")
    fd = os.open(mid / "opaque", os.O_RDONLY | os.O_DIRECTORY)
    try:
        wh.mark_opaque(fd)
    finally:
        os.close(fd)
    (mid / "becomes-file").write_text("now a file\n")
    (mid / "becomes-dir").mkdir(mode=0o700)
    (mid / "becomes-dir/child").write_text("c\n")
    os.mknod(mid / "gone-dir", stat.S_IFCHR, wh.WHITEOUT_DEV)
    (mid / "links").mkdir()
    os.mknod(mid / "links/c", stat.S_IFCHR, wh.WHITEOUT_DEV)  # 2 of the 3 names still show
    (mid / "owned").write_text("owned\n")
    os.chown(mid / "owned", 1000, 1001)
    os.chmod(mid / "owned", 0o4750)
    # top: a name whited out in mid comes back; a dir over mid's dir merges
    (top / "etc").mkdir()
    (top / "etc/passwd").write_text("again\n")
    (top / "becomes-dir").mkdir(mode=0o750)
    return images.Image(
        name="hand", layers=(str(top), str(mid), str(base)), id="sha256:" + "ab" * 32
    )


@needs_cpio
def test_hand_made_layers_flatten_as_overlay_merges_them(tmp_path: Path) -> None:
    img = hand_made(tmp_path / "layers")
    listing = imageroot.tree(img)
    # The rules, spelled out (the comparison with overlay below is the proof).
    assert "etc/keep" in listing and listing["etc/passwd"][4] == len("again\n")
    assert "opaque/new" in listing and "opaque/old" not in listing
    assert listing["becomes-file"][0] == "file" and "becomes-file/inner" not in listing
    assert listing["becomes-dir"][:2] == ("dir", 0o750) and "becomes-dir/child" in listing
    assert not any(p.startswith("gone-dir") for p in listing)
    assert "links/c" not in listing and listing["owned"][1:4] == (0o4750, 1000, 1001)
    assert listing["null"][0] == "char" and listing["fifo"][0] == "fifo"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    archive = check_image(img, scratch)
    # The two names that still show of one inode stay one inode, holding the data once.
    a, b = (os.lstat(scratch / "unpacked/links" / n) for n in "ab")
    assert a.st_ino == b.st_ino and a.st_nlink == 2
    assert archive.read_bytes().count(b"linked\n") == 1
    assert os.major(os.lstat(scratch / "unpacked/null").st_rdev) == 1


def test_find_command_resolves_inside_the_image_only(tmp_path: Path) -> None:
    img = hand_made(tmp_path)
    top = Path(img.layers[0])
    (top / "bin").mkdir()
    (top / "bin/tool").write_text("#!/bin/sh\n")
    os.chmod(top / "bin/tool", 0o755)
    os.symlink("tool", top / "bin/rel")
    os.symlink("/bin/tool", top / "bin/abs")
    os.symlink("../../../../../bin/tool", top / "bin/up")  # ".." stops at the image's root
    os.symlink("/bin/loop", top / "bin/loop")
    os.symlink(sys.executable, top / "bin/host")  # a host path: not in the image
    for argv0 in ("tool", "rel", "abs", "up", "/bin/abs", "/etc/../bin/rel", "./bin/tool"):
        assert imageroot.find_command(img, argv0, "/nope:/bin") == "/bin/tool", argv0
    for argv0 in ("loop", "host", "nosuch", "/etc/keep", "/bin", "/bin/tool/.", ""):
        assert imageroot.find_command(img, argv0, "/bin") is None, argv0
    assert imageroot.find_command(img, "tool", "/usr/bin") is None  # not on that PATH


@needs_cpio
def test_busybox_flattens_as_the_container_sees_it(tmp_path: Path) -> None:
    img = images.resolve("busybox")
    check_image(img, tmp_path)
    assert imageroot.find_command(img, "sh", PATH) == "/bin/busybox"
    assert imageroot.find_command(img, "nosuch", PATH) is None


# What two committed containers change on top of busybox: a hard link, an owner, a fifo, then
# a deleted file (whiteout), a re-made folder (opaque), a folder replaced by a file and back.
STEP1 = (
    "set -e; mkdir -p /srv/data/sub /opt; echo one > /srv/data/a; echo two > /srv/data/sub/b; "
    "echo h > /opt/h1; ln /opt/h1 /opt/h2; ln /opt/h1 /opt/h3; chown 12:34 /opt/h2; "
    "chmod 2750 /srv/data/sub; mkfifo /srv/fifo; ln -s ../srv/data /var/data-link"
)
STEP2 = (
    "set -e; rm /etc/passwd /opt/h3 /bin/ls; rm -rf /srv/data; mkdir /srv/data; "
    "echo new > /srv/data/c; rm -rf /home; echo file > /home; rm /etc/hostname; "
    "mkdir /etc/hostname; chmod 600 /etc/group"
)


@needs_cpio
def test_committed_layers_flatten_as_the_container_sees_them(tmp_path: Path, name: str) -> None:
    refs = [f"{name}-img:1", f"{name}-img:2"]
    try:
        base = "busybox"
        for i, script in enumerate((STEP1, STEP2)):
            # the host's network: no /etc/hostname bound over the image's, so the script
            # may replace it with a folder (a bind mount point cannot be removed: EBUSY)
            c = pycont.run(base, ["sh", "-c", script], name=f"{name}-{i}", network="host")
            assert c.exit_code == 0, c.output
            c.commit(refs[i])
            c.remove()
            base = refs[i]
        img = images.resolve(refs[1])
        assert len(img.layers) == 3
        listing = imageroot.tree(img)
        assert "etc/passwd" not in listing and "bin/ls" not in listing
        assert "srv/data/c" in listing and "srv/data/a" not in listing
        assert listing["home"][0] == "file" and listing["etc/hostname"][0] == "dir"
        assert {"opt/h1", "opt/h2"} <= set(listing) and "opt/h3" not in listing
        assert listing["etc/group"][1] == 0o600 and listing["srv/fifo"][0] == "fifo"
        check_image(img, tmp_path)
        assert imageroot.find_command(img, "ls", PATH) is None
        assert imageroot.find_command(img, "cat", PATH) == "/bin/busybox"
    finally:
        for ref in refs:
            subprocess.run(
                [sys.executable, "-m", "pycont", "rmi", "-f", ref], cwd=ROOT, check=False
            )


def test_the_archive_is_cached_by_image_id(tmp_path: Path) -> None:
    img = images.resolve("busybox")
    first = imageroot.guest_root(img)
    assert first == imageroot.cache_path(img)
    assert first.name == f"root-{img.id.split(':')[1]}.cpio"
    before = os.stat(first)
    again = imageroot.guest_root(img)
    after = os.stat(again)
    assert again == first
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert not [p for p in first.parent.iterdir() if p.name.endswith(".tmp")]  # no temp left


def test_a_failed_build_leaves_no_file(tmp_path: Path) -> None:
    layer = tmp_path / "layer"
    layer.mkdir()
    (layer / "a-small").write_text("written before the failure\n")
    with open(layer / "z-huge", "wb") as f:
        f.truncate(1 << 32)  # sparse; newc cannot hold it: the build fails half-way
    img = images.Image(name="huge", layers=(str(layer),), id="sha256:" + "cd" * 32)
    out = imageroot.cache_path(img)
    with pytest.raises(VMError, match="4 GiB"):
        imageroot.guest_root(img)
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]  # temp removed


def test_a_bad_image_id_is_refused_in_one_line(tmp_path: Path) -> None:
    img = images.Image(name="odd", layers=(str(tmp_path),), id="")
    with pytest.raises(VMError, match=r"its id '' is not sha256:<64 hex>"):
        imageroot.guest_root(img)
