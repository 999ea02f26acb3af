"""Device nodes in layer tars: made by root with mknod(2), skipped and counted without it.

Real base images carry ``dev/console`` and friends; docker and podman create them as root and
skip them rootless. The hostile-layer rules hold for them as for files: never outside the
root, never through a symlink. The unprivileged case is a real uid 1000 (a forked child that
drops to it), where mknod(2) fails with EPERM.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycont.images.layers import LayerError, LayerStats, apply_layer, layer_warnings
from tests.helpers import requires
from tests.unit.test_layers import Member, apply, reg, snapshot, tar_bytes, typed

UID = 1000


def dev(name: str, kind: bytes, major: int, minor: int, mode: int = 0o620, **kw: int) -> Member:
    return typed(name, kind, "", mode, devmajor=major, devminor=minor, **kw)


@pytest.fixture
def box() -> Iterator[tuple[Path, Path]]:
    """(root, outside): the layer root, and a sibling an escape would write into; in a folder
    uid 1000 can reach (pytest's tmp_path is root's, mode 0700)."""
    top = Path(tempfile.mkdtemp(prefix="pc-distro-layers-"))
    os.chmod(top, 0o755)
    root, outside = top / "root", top / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret").write_text("keep me\n")
    try:
        yield root, outside
    finally:
        shutil.rmtree(top)


NODES = tar_bytes(
    typed("dev", tarfile.DIRTYPE, mode=0o755),
    dev("dev/console", tarfile.CHRTYPE, 5, 1, mode=0o600, uid=0, gid=5, mtime=1_700_000_000),
    dev("dev/null", tarfile.CHRTYPE, 1, 3, mode=0o666),
    dev("dev/sdx", tarfile.BLKTYPE, 8, 16, mode=0o660, gid=6),
    typed("dev/null-again", tarfile.LNKTYPE, "dev/null"),
    typed("run/initctl", tarfile.FIFOTYPE, mode=0o600),
    reg("etc/motd", b"hi\n"),
)


@requires("root")
def test_root_makes_character_and_block_nodes_with_their_metadata(box: tuple[Path, Path]) -> None:
    root, _ = box
    stats = apply_layer(_io(NODES), str(root))
    console = os.lstat(root / "dev/console")
    assert stat.S_ISCHR(console.st_mode) and console.st_rdev == os.makedev(5, 1)
    assert stat.S_IMODE(console.st_mode) == 0o600 and console.st_gid == 5
    assert console.st_mtime == 1_700_000_000
    sdx = os.lstat(root / "dev/sdx")
    assert stat.S_ISBLK(sdx.st_mode) and sdx.st_rdev == os.makedev(8, 16)
    assert (stat.S_IMODE(sdx.st_mode), sdx.st_gid) == (0o660, 6)
    assert os.lstat(root / "dev/null-again").st_ino == os.lstat(root / "dev/null").st_ino
    assert stat.S_ISFIFO(os.lstat(root / "run/initctl").st_mode)
    assert (stats.devices, stats.skipped_devices, stats.hardlinks) == (3, [], 1)
    assert layer_warnings("sha256:" + "a" * 64, stats) == []


@requires("root")
@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE])
def test_a_node_through_a_symlink_is_refused(box: tuple[Path, Path], kind: bytes) -> None:
    root, outside = box
    before = snapshot(outside)
    evil = tar_bytes(
        typed("d", tarfile.SYMTYPE, str(outside)), dev("d/mem", kind, 1, 1, mode=0o666)
    )
    with pytest.raises(LayerError, match="'d/mem': it goes through the symlink 'd'"):
        apply(evil, root)
    assert snapshot(outside) == before


@requires("root")
@pytest.mark.parametrize("name", ["../mem", "dev/../../mem", "/dev/mem"])
def test_a_node_out_of_the_root_is_refused(box: tuple[Path, Path], name: str) -> None:
    root, outside = box
    before = snapshot(outside)
    with pytest.raises(LayerError, match="refusing entry"):
        apply(tar_bytes(dev(name, tarfile.CHRTYPE, 1, 1, mode=0o666)), root)
    assert snapshot(outside) == before
    assert not (root.parent / "mem").exists()


@requires("root")
def test_a_zero_zero_node_stays_a_whiteout(box: tuple[Path, Path]) -> None:
    root, _ = box
    stats = apply_layer(_io(tar_bytes(dev("gone", tarfile.CHRTYPE, 0, 0))), str(root))
    assert (stats.whiteouts, stats.devices) == (1, 0)


def _as_uid_1000(root: Path, data: bytes) -> dict[str, object]:
    """apply_layer run by a real unprivileged process (uid 1000, no capabilities)."""
    os.chown(root, UID, UID)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to uid 1000, unpack, report the stats as JSON
        code = 0
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(UID, UID, UID)
            os.setresuid(UID, UID, UID)
            stats = apply_layer(_io(data), str(root))
            out = {"devices": stats.devices, "skipped": stats.skipped_devices, "files": stats.files}
        except BaseException as err:  # noqa: BLE001 - reported to the parent
            out, code = {"error": repr(err)}, 1
        os.write(w, json.dumps(out).encode())
        os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        report: dict[str, object] = json.loads(f.read())
    os.waitpid(pid, 0)
    return report


@requires("root")  # to become uid 1000
def test_unprivileged_skips_the_nodes_and_counts_them(box: tuple[Path, Path]) -> None:
    root, _ = box
    report = _as_uid_1000(root, NODES)
    assert "error" not in report, report
    assert report["devices"] == 0 and report["files"] == 1
    assert report["skipped"] == [
        "dev/console (c 5:1)",
        "dev/null (c 1:3)",
        "dev/sdx (b 8:16)",
        "dev/null-again (c 1:3)",  # the hard link to a skipped node goes with it
    ]
    assert sorted(os.listdir(root / "dev")) == []
    assert (root / "etc/motd").read_text() == "hi\n"
    assert stat.S_ISFIFO(os.lstat(root / "run/initctl").st_mode)  # mkfifo(3) needs no privilege


def test_the_warning_names_the_skipped_nodes() -> None:
    stats = LayerStats(skipped_devices=[f"dev/n{i} (c 1:{i})" for i in range(10)])
    (line,) = layer_warnings("sha256:" + "ab" * 32, stats, show=3)
    assert line == (
        "layer sha256:abababababab…: skipped 10 device nodes (mknod(2) needs CAP_MKNOD; "
        "rootless, as podman): dev/n0, dev/n1, dev/n2, …"
    )
    one = LayerStats(skipped_devices=["dev/console (c 5:1)"])
    assert layer_warnings("sha256:" + "ab" * 32, one)[0].endswith("skipped 1 device node "
        "(mknod(2) needs CAP_MKNOD; rootless, as podman): dev/console")  # fmt: skip


def _io(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)


@requires("root")
def test_the_vfs_copy_keeps_the_nodes(box: tuple[Path, Path]) -> None:
    from pycont.overlay import CopyStack

    layer, _ = box
    apply_layer(_io(NODES), str(layer))
    merged = layer.parent / "merged"
    CopyStack((str(layer),), str(merged)).mount()
    sdx = os.lstat(merged / "dev/sdx")
    assert stat.S_ISBLK(sdx.st_mode) and sdx.st_rdev == os.makedev(8, 16)
    assert (stat.S_IMODE(sdx.st_mode), sdx.st_gid) == (0o660, 6)
