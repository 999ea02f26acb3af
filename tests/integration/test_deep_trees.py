"""Trees thousands of folders deep: every store operation walks them without recursion.

Python 3.11's os.walk and shutil.rmtree recurse once per level (RecursionError near 1,000),
and a path below ~2,000 levels of ``d/`` is longer than PATH_MAX. A layer nested that deep
once broke ``rmi`` for every image: it died in the size walk after deleting blobs. Here trees
3,000 deep are made on disk with openat(2) (no long path is ever used), in a store's layer
folder and by a container, and then walked, sized, diffed, committed and removed.
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from collections.abc import Iterator

import pytest

from pycont.builder.context import Context
from pycont.fsutil import remove_tree, tree_size, walk_tree
from pycont.images import diff, gc
from pycont.images.busybox import build_busybox
from pycont.images.store import Store
from tests.helpers import cli, register_root, remove_root, requires
from tests.hostile.wrap import docker_archive

PREFIX = "pc-deep-"
DEPTH = 3000


def make_deep(top: str, depth: int = DEPTH, name: str = "d") -> None:
    """``top/d/d/.../d`` ``depth`` levels deep, a 5-byte file in each, through openat(2)."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
            with open(os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as f:
                f.write(b"hello")
    finally:
        os.close(fd)


@pytest.fixture
def top() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix=PREFIX)
    try:
        yield path
    finally:
        remove_tree(path)


def test_walks_sizes_and_removal_at_3000_levels(top: str) -> None:
    tree = os.path.join(top, "tree")
    os.mkdir(tree)
    make_deep(tree)
    entries = list(walk_tree(tree))
    assert len(entries) == 2 * DEPTH
    assert max(len(e.rel) for e in entries) > 4096  # longer than PATH_MAX: reached by fd
    assert [e.rel for e in entries[:3]] == ["d", "d/d", "d/d/d"]  # parents first, sorted
    assert tree_size(tree) == gc.dir_size(tree) == 5 * DEPTH
    assert sum(1 for _ in diff.walk(tree)) == 2 * DEPTH
    remove_tree(tree)
    assert os.listdir(top) == []


def test_the_builders_copy_walk_goes_past_the_recursion_limit(top: str) -> None:
    # 1,050 levels: past Python's 1,000 frames; the context's own lookups cost O(depth) per
    # entry (each path is checked against .dockerignore and opened from the top), so not 3,000
    make_deep(top, 1050)
    assert sum(1 for _ in Context(top).walk("d")) == 2 * 1050


def test_removal_never_follows_symlinks_and_gets_through_locked_folders(top: str) -> None:
    canary = os.path.join(top, "canary")
    os.mkdir(canary)
    with open(os.path.join(canary, "keep"), "w") as f:
        f.write("keep")
    tree = os.path.join(top, "tree")
    os.mkdir(tree)
    make_deep(tree, 50)
    fd = os.open(tree, os.O_RDONLY)
    for _ in range(50):  # a symlink to the canary at every level, and folders locked 000
        os.symlink(canary, "link", dir_fd=fd)
        child = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.chmod(fd, 0)
        os.close(fd)
        fd = child
    os.close(fd)
    os.symlink(canary, os.path.join(top, "top-link"))
    remove_tree(os.path.join(top, "top-link"))  # the link goes, not what it points to
    remove_tree(tree)
    assert sorted(os.listdir(top)) == ["canary"]
    assert os.listdir(canary) == ["keep"]
    remove_tree(os.path.join(top, "missing"))  # nothing there: fine


@requires("root")  # to hand the tree to another user
def test_a_user_walks_sizes_and_removes_its_own_tree_of_unsearchable_folders(top: str) -> None:
    """Root searches any folder; a rootless store's owner does not. A folder of mode 0444 can
    be listed but neither entered nor left by "..": the walks skip it, rm -rf makes it its
    own first (a gc that failed here would fail at every rmi after)."""
    tree = os.path.join(top, "tree")
    for sub in ("a/b/c", "z"):
        os.makedirs(os.path.join(tree, sub))
        with open(os.path.join(tree, sub, "f"), "w") as f:
            f.write("12345")
    uid = 65534  # nobody
    for dirpath, dirnames, filenames in os.walk(top):
        for n in (dirpath, *(os.path.join(dirpath, x) for x in dirnames + filenames)):
            os.lchown(n, uid, uid)
    os.chmod(os.path.join(tree, "a", "b"), 0o000)
    os.chmod(os.path.join(tree, "a"), 0o444)
    pid = os.fork()
    if pid == 0:  # the store's owner: no CAP_DAC_OVERRIDE
        code = 1
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            sized = tree_size(tree) == 5 and [e.rel for e in walk_tree(tree, skip_denied=True)]
            remove_tree(tree)
            code = 0 if sized == ["a", "z", "z/f"] and not os.path.exists(tree) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert os.listdir(top) == []


@pytest.fixture
def root() -> Iterator[str]:
    path = register_root(tempfile.mkdtemp(prefix=PREFIX + "root-"))
    try:
        yield path
    finally:
        remove_root(path)


def ok(root: str, *args: str) -> str:
    proc = cli(*args, env={"PYCONT_ROOT": root}, timeout=600)
    assert proc.returncode == 0, f"pycont {' '.join(args)}: {proc.stdout}{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc.stdout


def test_a_deep_layer_in_the_store_can_be_listed_sized_and_removed(root: str) -> None:
    """The layer that broke the store: in an image's unpacked layer folder (as a load before
    the depth limit left it), 3,000 deep. ``images``, ``system df`` and ``rmi`` go through."""
    store = Store(os.path.join(root, "images"))
    build_busybox(store, "busybox:latest")
    ok(root, "tag", "busybox:latest", f"{PREFIX}keep:1")
    layer = store.lookup("busybox:latest").diff_ids[0]
    make_deep(store.layer_dir(layer))
    assert "busybox" in ok(root, "images")
    assert "Images" in ok(root, "system", "df")
    ok(root, "rmi", f"{PREFIX}keep:1")  # an untag: nothing deleted
    ok(root, "rmi", "busybox:latest")  # the deep layer folder goes
    assert not os.path.exists(store.layer_dir(layer))
    assert ok(root, "images").splitlines()[1:] == []
    ok(root, "system", "check")


def deep_layer_tar(depth: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for i in range(1, depth + 1):
            info = tarfile.TarInfo("/".join(["d"] * i))
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
    return out.getvalue()


def test_a_deep_layer_loaded_from_an_archive_is_refused(root: str) -> None:
    """The issue's archive: a layer 1,100 deep. The layer limits refuse it in one line,
    nothing is stored, and ``images`` works after."""
    archive = os.path.join(root, "deep.tar")
    with open(archive, "wb") as f:  # by hand: a store of ours would refuse to hold it
        f.write(docker_archive([deep_layer_tar(1100)], f"{PREFIX}hostile:1"))
    proc = cli("load", "-i", archive, env={"PYCONT_ROOT": root}, timeout=600)
    assert proc.returncode == 125 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "directory levels (at most 512)" in proc.stderr, proc.stderr
    assert ok(root, "images").splitlines()[1:] == []
    ok(root, "system", "check")


@requires("root")
def test_a_container_that_nests_folders_can_be_diffed_committed_and_removed(root: str) -> None:
    """A container makes /x nested 1,500 deep (with short paths only: mkdir, then mv the tree
    one level down); diff lists it, commit refuses it in one line (the layer limits, checked
    as the layer is applied), rm -f removes its read/write layer, and the store checks clean."""
    depth = 1500  # past the recursion limit; commit's unpack costs O(depth) per entry
    build_busybox(Store(os.path.join(root, "images")), "busybox:latest")
    name = f"{PREFIX}c"
    script = (
        f"mkdir /x && cd / && i=0 && while [ $i -lt {depth} ]; do "
        "mkdir y && mv x y/d && mv y x || exit 1; i=$((i+1)); done"
    )
    try:
        ok(root, "run", "--name", name, "busybox", "sh", "-c", script)
        changes = ok(root, "diff", name).splitlines()
        assert len(changes) == depth + 1 and changes[0] == "A /x"
        proc = cli("commit", name, f"{PREFIX}img:1", env={"PYCONT_ROOT": root}, timeout=600)
        assert proc.returncode == 125, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "directory levels (at most 512)" in proc.stderr, proc.stderr
    finally:
        cli("rm", "-f", name, env={"PYCONT_ROOT": root})  # its deep read/write layer goes
    assert ok(root, "ps", "-a", "-q") == ""
    assert [line.split()[0] for line in ok(root, "images").splitlines()[1:]] == ["busybox"]
    ok(root, "system", "check")
