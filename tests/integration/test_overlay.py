"""OverlayFS for real: copy-up, whiteouts, opaque dirs, docker diff, and layers made from them.

Every mount happens in a child process with its own mount namespace (``unshare -m``, or
``unshare -U -r -m`` for the userxattr case, as the runtime mounts inside a user namespace);
the pytest process never unshares, and the mounts vanish with the child. The upper dir is a
plain directory, so the test reads it from the host afterwards, as ``pycont diff`` will.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import pycont
from pycont.images import whiteouts as wh
from pycont.images.layers import apply_layer, unpack_layer, write_layer
from pycont.images.store import Store
from pycont.overlay import Change, Stack, changes
from tests.helpers import requires

pytestmark = requires("root", "overlay")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Runs in the child: mount the stack through pycont.overlay (the kernel seam), run the ops
# against the merged dir `m`, record what they saw in `out`, unmount, print `out` as JSON.
CHILD = r"""
import json, os, sys
from pycont.overlay import Stack
spec = json.loads(sys.argv[1])
stack = Stack(tuple(spec["lowers"]), spec["upper"], spec["work"], spec["merged"], spec["userxattr"])
stack.mount()
m, out = spec["merged"], {}
try:
    exec(spec["ops"])
finally:
    stack.unmount()
print(json.dumps(out))
"""


def in_mount_ns(stack: Stack, ops: str) -> dict[str, object]:
    """Mount ``stack`` in a fresh mount namespace (a child), run ``ops``, return ``out``."""
    spec = {
        "lowers": list(stack.lowers),
        "upper": stack.upper,
        "work": stack.work,
        "merged": stack.merged,
        "userxattr": stack.userxattr,
        "ops": ops,
    }
    # A user namespace (mapping root to root) for userxattr, as the runtime's containers have.
    unshare = ["unshare", "-U", "-r", "-m"] if stack.userxattr else ["unshare", "-m"]
    res = subprocess.run(
        [*unshare, "--propagation", "private", sys.executable, "-c", CHILD, json.dumps(spec)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    out: dict[str, object] = json.loads(res.stdout)
    return out


def make_lower(path: Path) -> None:
    """A layer as the store makes them: unpacked from a tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in [
            ("etc/hostname", b"lower\n"),
            ("etc/motd", b"welcome\n"),
            ("home/u/notes", b"mine\n"),
            ("data/keep", b"keep\n"),
        ]:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    path.mkdir()
    apply_layer(io.BytesIO(buf.getvalue()), str(path))


OPS = r"""
with open(f"{m}/etc/hostname", "w") as f:      # copy-up
    f.write("changed\n")
os.unlink(f"{m}/etc/motd")                      # whiteout
os.makedirs(f"{m}/new")                         # added
with open(f"{m}/new/file", "w") as f:
    f.write("added\n")
import shutil
shutil.rmtree(f"{m}/home")                      # deleted, then made again: opaque
os.mkdir(f"{m}/home")
open(f"{m}/home/fresh", "w").close()
out["home"] = sorted(os.listdir(f"{m}/home"))
out["motd"] = os.path.exists(f"{m}/etc/motd")
out["root"] = sorted(os.listdir(m))
"""

EXPECTED = [
    Change("C", "/etc"),
    Change("C", "/etc/hostname"),
    Change("D", "/etc/motd"),
    Change("C", "/home"),
    Change("A", "/home/fresh"),
    Change("D", "/home/u"),
    Change("A", "/new"),
    Change("A", "/new/file"),
]


@pytest.fixture
def lower(tmp_path: Path) -> Path:
    path = tmp_path / "lower"
    make_lower(path)
    return path


def stack_in(tmp_path: Path, lowers: tuple[str, ...], userxattr: bool) -> Stack:
    s = Stack(
        lowers, str(tmp_path / "upper"), str(tmp_path / "work"), str(tmp_path / "merged"), userxattr
    )
    s.prepare()
    return s


@pytest.mark.parametrize("userxattr", [True, False], ids=["userxattr", "trusted"])
def test_copy_up_whiteouts_and_changes(tmp_path: Path, lower: Path, userxattr: bool) -> None:
    stack = stack_in(tmp_path, (str(lower),), userxattr)
    seen = in_mount_ns(stack, OPS)
    assert seen == {"home": ["fresh"], "motd": False, "root": ["data", "etc", "home", "new"]}

    upper = Path(str(stack.upper))
    # Copy-up: the changed file is in upper, the lower one is untouched.
    assert (upper / "etc" / "hostname").read_text() == "changed\n"
    assert (lower / "etc" / "hostname").read_text() == "lower\n"
    assert (lower / "etc" / "motd").read_text() == "welcome\n"
    assert not (upper / "data").exists()  # never touched: never copied
    # The deletion is a whiteout: a character device 0/0.
    st = os.lstat(upper / "etc" / "motd")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 0 and os.minor(st.st_rdev) == 0
    # The re-made directory is opaque, in the xattr namespace of the mount.
    assert wh.is_opaque(str(upper / "home"), userxattr)
    assert changes(str(upper), (str(lower),), userxattr=userxattr) == EXPECTED
    assert stack.changes() == EXPECTED


def test_paths_with_commas_colons_and_backslashes_mount(tmp_path: Path) -> None:
    """The kernel reads the escaped options back as the paths they name (overlayfs.rst)."""
    odd = tmp_path / "a,b:c\\d"
    odd.mkdir()
    lower = odd / "lower"
    make_lower(lower)
    s = Stack((str(lower),), str(odd / "up:per"), str(odd / "wo,rk"), str(odd / "merged"))
    s.prepare()
    ops = 'out["hostname"] = open(f"{m}/etc/hostname").read(); open(f"{m}/new", "w").close()'
    assert in_mount_ns(s, ops) == {"hostname": "lower\n"}
    assert (odd / "up:per" / "new").exists()


@pytest.mark.parametrize("userxattr", [True, False], ids=["userxattr", "trusted"])
def test_a_layer_made_from_upper_replays_the_changes(
    tmp_path: Path, lower: Path, userxattr: bool
) -> None:
    stack = stack_in(tmp_path, (str(lower),), userxattr)
    in_mount_ns(stack, OPS)
    buf = io.BytesIO()
    write_layer(str(stack.upper), buf, userxattr=userxattr)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        names = tar.getnames()
    assert "etc/.wh.motd" in names and "home/.wh..wh..opq" in names
    layer = tmp_path / "layer2"
    unpack_layer(io.BytesIO(buf.getvalue()), str(layer))

    # The new layer over the old one, with or without userxattr (a layer serves both).
    for mode in (True, False):
        ro = Stack((str(layer), str(lower)), None, None, str(tmp_path / "merged"), mode)
        seen = in_mount_ns(
            ro,
            'out["motd"] = os.path.exists(f"{m}/etc/motd")\n'
            'out["hostname"] = open(f"{m}/etc/hostname").read()\n'
            'out["home"] = sorted(os.listdir(f"{m}/home"))\n'
            'out["new"] = open(f"{m}/new/file").read()\n'
            'out["keep"] = open(f"{m}/data/keep").read()\n',
        )
        assert seen == {
            "motd": False,
            "hostname": "changed\n",
            "home": ["fresh"],
            "new": "added\n",
            "keep": "keep\n",
        }, f"userxattr={mode}"


def test_a_copied_up_user_opaque_xattr_is_not_opaque_in_trusted_mode(
    tmp_path: Path, lower: Path
) -> None:
    # An opaque lower dir carries user.overlay.opaque (for userxattr mounts); a mount without
    # userxattr copies that xattr up like any other. changes() must not read it as opaque.
    layer = tmp_path / "opaque-layer"
    (layer / "home").mkdir(parents=True)
    os.setxattr(layer / "home", "user.overlay.opaque", b"y")
    os.setxattr(layer / "home", "trusted.overlay.opaque", b"y")
    stack = stack_in(tmp_path, (str(layer), str(lower)), userxattr=False)
    in_mount_ns(stack, 'open(f"{m}/home/x", "w").close()\nout["home"] = os.listdir(f"{m}/home")')
    upper = Path(str(stack.upper))
    assert os.getxattr(upper / "home", "user.overlay.opaque") == b"y"  # copied up...
    assert not wh.is_opaque(str(upper / "home"), userxattr=False)  # ...but not opaque here
    assert stack.changes() == [Change("C", "/home"), Change("A", "/home/x")]


@contextlib.contextmanager
def container(image: str, script: str) -> Iterator[pycont.Container]:
    c = pycont.run(image, ["sh", "-c", script], timeout=60)
    try:
        yield c
    finally:
        c.remove(force=True)


def test_commit_a_real_container(tmp_path: Path) -> None:
    """The runtime's container (user namespace, userxattr) → commit → a new image that shares
    busybox's layer and shows the deletions."""
    store = Store()
    script = "rm /bin/vi && echo hi > /etc/motd && rm -rf /home && mkdir /home && touch /home/x"
    with container("busybox", script) as c:
        assert c.exit_code == 0, c.output
        upper = os.path.join(c.dir, "upper")
        assert changes(upper, tuple(c.config.layers)) == [
            Change("C", "/bin"),
            Change("D", "/bin/vi"),
            Change("C", "/etc"),
            Change("A", "/etc/motd"),
            Change("C", "/home"),
            Change("A", "/home/x"),
        ]
        new_id = store.commit_layer(
            upper, "busybox", "pycont-test/committed:1", created_by=script, userxattr=True
        )
    base = store.get("busybox")
    rec = store.get("pycont-test/committed:1")
    try:
        assert rec.id == new_id and rec.layers[1:] == base.layers
        check = "ls /bin/vi; cat /etc/motd; ls -a /home; ls /bin/sh"
        with container("pycont-test/committed:1", check) as c2:
            out = c2.output
        assert "ls: /bin/vi: No such file or directory" in out
        assert "hi\n" in out and "x\n" in out and "/bin/sh\n" in out
    finally:
        store.remove("pycont-test/committed:1")
    assert store.get("busybox").layers == base.layers  # removing v2 kept the shared layer
