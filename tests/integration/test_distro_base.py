"""A real distribution base: Debian bookworm by mmdebstrap, imported and saved by podman.

pycont loads it in both of podman's archive formats, runs python3 and apt-get in it, and
unpacks the same tree podman shows for the image (``podman image mount``): paths, types, modes,
owners, times, contents, hard links, symlink targets, device numbers, file capabilities. As
uid 1000 the load succeeds too, and warns, naming the device nodes mknod(2) refused.
The base is built once and cached (tests/distro.py).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pytest

from pycont.images._tarwrite import keep_xattr
from pycont.images.store import Store
from tests import distro, peers
from tests.helpers import check_store, cli, register_root, remove_root, requires
from tests.integration.test_rootless import (
    UID,
    Rootless,
    _readable_copy_of_the_package,
    skip_if_the_kernel_refused,
)

pytestmark = requires("root", "overlay")

FORMATS = ("docker-archive", "oci-archive")


class Node(NamedTuple):
    """What ``ls -ln`` and ``getfattr`` show of one entry; hard links are compared apart."""

    kind: int  # S_IFMT
    mode: int
    uid: int
    gid: int
    mtime: int | None
    extra: object  # symlink target, (major, minor), or (size, sha256) of a file
    xattrs: tuple[tuple[str, bytes], ...]


Tree = dict[str, Node]


@dataclass
class Loaded:
    fmt: str
    root: str  # the PYCONT_ROOT it was loaded into
    stdout: str
    stderr: str

    def cli(self, *args: str) -> tuple[int, str, str]:
        r = cli(*args, env={"PYCONT_ROOT": self.root}, timeout=300)
        return r.returncode, r.stdout, r.stderr


@pytest.fixture(scope="module")
def base() -> distro.DebianBase:
    return distro.debian_base()


@pytest.fixture(scope="module", params=FORMATS)
def loaded(request: pytest.FixtureRequest, base: distro.DebianBase) -> Iterator[Loaded]:
    fmt = request.param
    root = register_root(tempfile.mkdtemp(prefix=f"pc-distro-{fmt}-"))
    try:
        archive = base.docker_archive if fmt == "docker-archive" else base.oci_archive
        r = cli("load", "-i", os.fspath(archive), env={"PYCONT_ROOT": root}, timeout=600)
        assert r.returncode == 0, r.stderr
        yield Loaded(fmt, root, r.stdout, r.stderr)
    finally:
        remove_root(root)


def walk(top: str) -> tuple[Tree, set[frozenset[str]]]:
    """Every entry below ``top`` (lstat, never followed) and the hard-link groups."""
    tree: Tree = {}
    inodes: dict[tuple[int, int], set[str]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, top)
            st = os.lstat(path)
            kind = stat.S_IFMT(st.st_mode)
            extra: object = None
            if stat.S_ISLNK(st.st_mode):
                extra = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                extra = (os.major(st.st_rdev), os.minor(st.st_rdev))
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    extra = (st.st_size, hashlib.file_digest(f, "sha256").hexdigest())
                if st.st_nlink > 1:
                    inodes.setdefault((st.st_dev, st.st_ino), set()).add(rel)
            xattrs = tuple(
                sorted(
                    (n, os.getxattr(path, n, follow_symlinks=False))
                    for n in os.listxattr(path, follow_symlinks=False)
                    if keep_xattr(n)
                )
            )
            mtime = None if stat.S_ISDIR(st.st_mode) and rel == "." else int(st.st_mtime)
            tree[rel] = Node(
                kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, mtime, extra, xattrs
            )
    return tree, {frozenset(g) for g in inodes.values() if len(g) > 1}


@pytest.fixture(scope="module")
def podman_view(base: distro.DebianBase) -> Iterator[tuple[Tree, set[frozenset[str]]]]:
    """The image as podman unpacks it (its own storage root), walked at ``podman image mount``."""
    peers.ensure_tools({"podman": "podman"})
    with (
        peers.scratch(Path(tempfile.mkdtemp(prefix="pc-distro-podman-"))) as work,
        peers.podman(work) as podman,
    ):
        podman("load", "-i", base.oci_archive)
        mounted = podman("image", "mount", base.reference).stdout.strip()
        try:
            yield walk(mounted)
        finally:
            podman("image", "unmount", base.reference, check=False)


def test_the_base_loads_as_root_without_a_warning(loaded: Loaded, base: distro.DebianBase) -> None:
    assert loaded.stdout == f"Loaded image: {base.reference}\n"
    assert loaded.stderr == ""


def test_python3_and_apt_get_run_in_it(loaded: Loaded, base: distro.DebianBase) -> None:
    assert loaded.cli("run", "--rm", base.reference, "python3", "-c", "print(1)") == (0, "1\n", "")
    rc, out, err = loaded.cli("run", "--rm", base.reference, "apt-get", "--version")
    assert (rc, err) == (0, "") and out.startswith("apt 2."), out


def test_the_tree_is_podmans(
    loaded: Loaded, base: distro.DebianBase, podman_view: tuple[Tree, set[frozenset[str]]]
) -> None:
    rec = Store(os.path.join(loaded.root, "images")).get(base.reference)
    assert len(rec.layers) == 1  # podman import makes one layer: its folder is the tree
    ours, our_links = walk(rec.layers[0])
    theirs, their_links = podman_view
    assert sorted(set(ours) ^ set(theirs)) == []
    differ = {p: (ours[p], theirs[p]) for p in ours if ours[p] != theirs[p]}
    assert differ == {}
    assert our_links == their_links
    # What the comparison covered, so that an empty base cannot pass for equal.
    kinds = [v.kind for v in ours.values()]
    assert kinds.count(stat.S_IFCHR) >= 6 and "dev/console" in ours
    assert ours["dev/null"].extra == (1, 3)
    assert len(our_links) >= 1 and kinds.count(stat.S_IFLNK) > 100
    caps = [p for p, v in ours.items() if any(n == "security.capability" for n, _ in v.xattrs)]
    assert caps == ["usr/bin/ping"]


@pytest.fixture(scope="module")
def rootless(base: distro.DebianBase) -> Iterator[Rootless]:
    """uid 1000 with its own PYCONT_ROOT, as tests/integration/test_rootless.py runs it."""
    try:
        pwd.getpwuid(UID)
    except KeyError:
        pytest.skip(f"needs a user with uid {UID}")
    pkg = _readable_copy_of_the_package()
    home = tempfile.mkdtemp(prefix="pc-distro-rootless-")
    os.chown(home, UID, UID)
    os.chmod(home, 0o755)
    env = Rootless(home=home, root=register_root(os.path.join(home, "pycont")), pkg=pkg)
    try:
        yield env
    finally:
        left = env.containers()
        check_store(env.root)
        shutil.rmtree(home)
        shutil.rmtree(pkg)
        assert left == [], f"rootless containers left: {left}"


def test_rootless_load_warns_naming_the_skipped_nodes(
    rootless: Rootless, base: distro.DebianBase
) -> None:
    r = rootless.cli("load", "-i", os.fspath(base.oci_archive), timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"Loaded image: {base.reference}\n"
    nodes = "dev/console, dev/full, dev/null, dev/ptmx, dev/random, dev/tty, dev/urandom, dev/zero"
    lines = r.stderr.splitlines()
    assert re.fullmatch(
        r"warning: layer sha256:[0-9a-f]{12}…: skipped 8 device nodes \(mknod\(2\) needs "
        r"CAP_MKNOD; rootless, as podman\): " + re.escape(nodes),
        lines[0],
    ), lines
    # ping's file capability: setxattr(2) of security.capability needs CAP_SETFCAP
    assert lines[1:] == [lines[0].split(": skipped")[0] + ": skipped 1 xattr: usr/bin/ping: "
                         "security.capability (Operation not permitted)"]  # fmt: skip
    run = rootless.cli("run", "--rm", base.reference, "python3", "-c", "print(1)")
    skip_if_the_kernel_refused(run)
    assert (run.returncode, run.stdout, run.stderr) == (0, "1\n", "")
