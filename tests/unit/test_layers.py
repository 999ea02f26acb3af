"""Layer tars: unpacked without trusting them; whiteouts translated between OCI and overlay.

The malicious archives are real tar files made with tarfile, unpacked into a tmp dir that sits
next to an "outside" dir: after a refused archive, nothing outside may have changed.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from pycont.images import whiteouts as wh
from pycont.images.layers import (
    Entry,
    LayerError,
    apply_layer,
    diff_entries,
    unpack_layer,
    write_layer,
    write_tar,
)
from tests.helpers import requires

Member = tuple[tarfile.TarInfo, bytes | None]


def reg(name: str, data: bytes = b"", mode: int = 0o644, **kw: int) -> Member:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    for k, v in kw.items():
        setattr(info, k, v)
    return info, data


def typed(name: str, kind: bytes, linkname: str = "", mode: int = 0o755, **kw: int) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, mode
    for k, v in kw.items():
        setattr(info, k, v)
    return info, None


def tar_bytes(*members: Member, pax: dict[str, dict[str, str]] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if pax and info.name in pax:
                info.pax_headers = pax[info.name]
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def apply(data: bytes, dest: Path) -> None:
    apply_layer(io.BytesIO(data), str(dest))


@pytest.fixture
def box(tmp_path: Path) -> tuple[Path, Path]:
    """(root, outside): the layer root, and a sibling dir an escape would write into."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret").write_text("keep me\n")
    return root, outside


def snapshot(path: Path) -> dict[str, tuple[int, bytes]]:
    out = {}
    for p in sorted(path.rglob("*")):
        st = p.lstat()
        out[str(p)] = (st.st_mode, p.read_bytes() if p.is_file() and not p.is_symlink() else b"")
    return out


# -- malicious archives ----------------------------------------------------------------------
def test_dotdot_is_refused(box: tuple[Path, Path]) -> None:
    root, outside = box
    before = snapshot(root.parent)
    with pytest.raises(LayerError, match=r"'\.\./outside/x'.*leaves the layer root"):
        apply(tar_bytes(reg("../outside/x", b"pwned")), root)
    assert snapshot(root.parent) == before


def test_dotdot_in_the_middle_is_refused(box: tuple[Path, Path]) -> None:
    root, outside = box
    with pytest.raises(LayerError, match="leaves the layer root"):
        apply(tar_bytes(reg("a/../../outside/x", b"pwned")), root)
    assert not (outside / "x").exists()


def test_absolute_path_is_refused(box: tuple[Path, Path]) -> None:
    root, _ = box
    target = f"/etc/pycont-test-{os.getpid()}"
    with pytest.raises(LayerError, match="absolute path") as info:
        apply(tar_bytes(reg(target, b"pwned")), root)
    assert "\n" not in str(info.value)
    assert not os.path.exists(target)
    assert list(root.iterdir()) == []


@pytest.mark.parametrize("link", ["ABS", "../outside", "sub/../../outside"])
def test_write_through_a_symlinked_dir_is_refused(box: tuple[Path, Path], link: str) -> None:
    root, outside = box
    link = str(outside) if link == "ABS" else link
    evil = tar_bytes(typed("evil", tarfile.SYMTYPE, link), reg("evil/pwned", b"pwned"))
    with pytest.raises(LayerError, match="goes through the symlink 'evil'"):
        apply(evil, root)
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]


def test_symlink_chain_in_parents_is_refused(box: tuple[Path, Path]) -> None:
    root, outside = box
    evil = tar_bytes(
        typed("d", tarfile.DIRTYPE),
        typed("d/up", tarfile.SYMTYPE, str(outside)),
        reg("d/up/secret", b"pwned"),
    )
    with pytest.raises(LayerError, match="symlink 'd/up'"):
        apply(evil, root)
    assert (outside / "secret").read_text() == "keep me\n"


def test_file_over_a_symlink_replaces_the_link(box: tuple[Path, Path]) -> None:
    # "link -> outside/secret", then a regular file "link": tar replaces the name, it does not
    # write through it (O_EXCL|O_NOFOLLOW after unlink).
    root, outside = box
    apply(
        tar_bytes(typed("link", tarfile.SYMTYPE, str(outside / "secret")), reg("link", b"new")),
        root,
    )
    assert (outside / "secret").read_text() == "keep me\n"
    assert not (root / "link").is_symlink()
    assert (root / "link").read_bytes() == b"new"


def test_absolute_symlink_entries_are_fine(box: tuple[Path, Path]) -> None:
    root, _ = box
    apply(
        tar_bytes(
            typed("bin", tarfile.DIRTYPE),
            reg("bin/busybox", b"\x7fELF", 0o755),
            typed("bin/sh", tarfile.SYMTYPE, "/bin/busybox"),
        ),
        root,
    )
    assert os.readlink(root / "bin" / "sh") == "/bin/busybox"


@pytest.mark.parametrize("target", ["/etc/passwd", "../../../../etc/passwd", "../outside/secret"])
def test_hardlink_out_of_the_layer_is_refused(box: tuple[Path, Path], target: str) -> None:
    root, outside = box
    passwd = os.stat("/etc/passwd")
    with pytest.raises(LayerError, match="refusing entry 'h'"):
        apply(tar_bytes(typed("h", tarfile.LNKTYPE, target)), root)
    assert os.stat("/etc/passwd").st_nlink == passwd.st_nlink
    assert not (root / "h").exists()
    assert (outside / "secret").stat().st_nlink == 1


def test_hardlink_through_a_symlink_is_refused(box: tuple[Path, Path]) -> None:
    root, outside = box
    evil = tar_bytes(
        typed("o", tarfile.SYMTYPE, str(outside)), typed("h", tarfile.LNKTYPE, "o/secret")
    )
    with pytest.raises(LayerError, match="symlink 'o'"):
        apply(evil, root)
    assert (outside / "secret").stat().st_nlink == 1


def test_hardlink_to_a_symlink_links_the_symlink_itself(box: tuple[Path, Path]) -> None:
    root, _ = box
    apply(
        tar_bytes(typed("s", tarfile.SYMTYPE, "/etc/passwd"), typed("h", tarfile.LNKTYPE, "s")),
        root,
    )
    assert os.readlink(root / "h") == "/etc/passwd"
    assert os.stat("/etc/passwd").st_nlink == 1


def test_hardlink_inside_the_layer(box: tuple[Path, Path]) -> None:
    root, _ = box
    apply(tar_bytes(reg("a", b"data"), typed("b", tarfile.LNKTYPE, "a")), root)
    assert (root / "a").stat().st_ino == (root / "b").stat().st_ino


def test_not_a_tar(box: tuple[Path, Path]) -> None:
    root, _ = box
    with pytest.raises(LayerError, match="not a valid tar archive"):
        apply(b"this is not a tar archive at all" * 40, root)


def test_unpack_is_atomic(tmp_path: Path) -> None:
    dest = tmp_path / "layers" / "abc"
    evil = tar_bytes(reg("fine", b"ok"), reg("../x", b"pwned"))
    with pytest.raises(LayerError):
        unpack_layer(io.BytesIO(evil), str(dest))
    assert not dest.exists()
    assert os.listdir(tmp_path / "layers") == []  # no temporary left either
    assert unpack_layer(io.BytesIO(tar_bytes(reg("fine", b"ok"))), str(dest)) is not None
    assert (dest / "fine").read_bytes() == b"ok"
    # Someone else made it first: theirs stays, ours is dropped.
    assert unpack_layer(io.BytesIO(tar_bytes(reg("other"))), str(dest)) is None
    assert os.listdir(dest) == ["fine"]


def test_a_failing_check_leaves_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "l"

    def check() -> None:
        raise LayerError("digest mismatch")

    with pytest.raises(LayerError, match="digest mismatch"):
        unpack_layer(io.BytesIO(tar_bytes(reg("f", b"x"))), str(dest), check=check)
    assert os.listdir(tmp_path) == []


# -- metadata ---------------------------------------------------------------------------------
@requires("root")
def test_numeric_owners_modes_and_times(tmp_path: Path) -> None:
    apply(
        tar_bytes(
            typed("ro", tarfile.DIRTYPE, mode=0o555, uid=7, gid=8, mtime=1_000_000),
            reg("ro/suid", b"#!", 0o4755, uid=1234, gid=5678, mtime=2_000_000),
            typed("ro/l", tarfile.SYMTYPE, "suid", uid=42, gid=43, mtime=3_000_000),
            typed("fifo", tarfile.FIFOTYPE, mode=0o600, uid=9, gid=9),
        ),
        tmp_path,
    )
    st = os.stat(tmp_path / "ro" / "suid")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o4755)
    assert st.st_mtime == 2_000_000
    d = os.stat(tmp_path / "ro")
    assert (d.st_uid, d.st_gid, stat.S_IMODE(d.st_mode), d.st_mtime) == (7, 8, 0o555, 1_000_000)
    ln = os.lstat(tmp_path / "ro" / "l")
    assert (ln.st_uid, ln.st_gid, ln.st_mtime) == (42, 43, 3_000_000)
    assert stat.S_ISFIFO(os.lstat(tmp_path / "fifo").st_mode)


def test_overlay_xattrs_in_a_tar_are_ignored(tmp_path: Path) -> None:
    # A layer must not smuggle overlay metadata (redirect/metacopy) into the lower dirs.
    data = tar_bytes(
        reg("f", b"x"),
        pax={
            "f": {"SCHILY.xattr.user.overlay.redirect": "/etc/shadow", "SCHILY.xattr.user.ok": "1"}
        },
    )
    stats = apply_layer(io.BytesIO(data), str(tmp_path))
    names = os.listxattr(tmp_path / "f")
    assert "user.overlay.redirect" not in names
    assert os.getxattr(tmp_path / "f", "user.ok") == b"1"
    assert stats.skipped_xattrs == ["f: user.overlay.redirect"]


# -- whiteouts, both ways ---------------------------------------------------------------------
@requires("root")  # mknod(2) of the 0/0 whiteout device (Linux >= 5.8 also allows it unprivileged)
def test_oci_whiteouts_become_overlay_whiteouts(tmp_path: Path) -> None:
    stats = apply_layer(
        io.BytesIO(
            tar_bytes(
                typed("etc", tarfile.DIRTYPE),
                reg("etc/.wh.motd"),
                typed("home", tarfile.DIRTYPE),
                reg("home/.wh..wh..opq"),
                reg("home/new", b"n"),
                reg("var/.wh..wh.plnk"),  # aufs metadata: skipped
                typed(".wh.dev", tarfile.CHRTYPE),  # the name decides: a whiteout of "dev"
                typed("x", tarfile.CHRTYPE),  # char 0/0 is overlay's own whiteout: allowed
            )
        ),
        str(tmp_path),
    )
    st = os.lstat(tmp_path / "etc" / "motd")
    assert wh.is_whiteout(st) and stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert not (tmp_path / "etc" / ".wh.motd").exists()
    assert os.getxattr(tmp_path / "home", "user.overlay.opaque") == b"y"
    assert os.getxattr(tmp_path / "home", "trusted.overlay.opaque") == b"y"
    assert not (tmp_path / "home" / ".wh..wh..opq").exists()
    assert (tmp_path / "home" / "new").read_bytes() == b"n"
    assert not (tmp_path / "var" / ".wh..wh.plnk").exists()
    assert wh.is_whiteout(os.lstat(tmp_path / "dev"))
    assert wh.is_whiteout(os.lstat(tmp_path / "x"))
    assert (stats.whiteouts, stats.opaque) == (3, 1)


def test_whiteout_names_are_checked(tmp_path: Path) -> None:
    with pytest.raises(LayerError, match="leaves the layer root"):
        apply(tar_bytes(reg("../.wh.x")), tmp_path)
    with pytest.raises(LayerError, match="a whiteout must name a file"):
        apply(tar_bytes(reg("a/.wh.")), tmp_path)


def _members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


@requires("root")  # the upper dir's whiteout is a 0/0 char device, as overlay makes it
@pytest.mark.parametrize("userxattr", [True, False])
def test_upper_dir_becomes_oci_layer_and_back(tmp_path: Path, userxattr: bool) -> None:
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "hostname").write_text("box\n")
    os.mknod(upper / "etc" / "motd", stat.S_IFCHR, os.makedev(0, 0))
    (upper / "home").mkdir()
    os.setxattr(upper / "home", wh.opaque_xattr(userxattr), b"y")
    (upper / "home" / "kept").write_text("k")
    os.link(upper / "home" / "kept", upper / "home" / "alias")
    os.symlink("/etc/hostname", upper / "name")
    os.mkfifo(upper / "pipe")
    # overlay hard-links its whiteouts to one shared inode: not a tar hard link.
    os.link(upper / "etc" / "motd", upper / "gone")

    buf = io.BytesIO()
    stats = write_layer(str(upper), buf, userxattr=userxattr)
    m = _members(buf.getvalue())
    assert sorted(m) == [
        ".wh.gone",
        "etc",
        "etc/.wh.motd",
        "etc/hostname",
        "home",
        "home/.wh..wh..opq",
        "home/alias",
        "home/kept",
        "name",
        "pipe",
    ]
    assert m["etc/.wh.motd"].isreg() and m["etc/.wh.motd"].size == 0
    assert m[".wh.gone"].isreg()
    assert m["home/kept"].islnk() and m["home/kept"].linkname == "home/alias"
    assert m["name"].issym() and m["name"].linkname == "/etc/hostname"
    assert m["pipe"].isfifo()
    assert m["etc/hostname"].uname == "" and m["etc/hostname"].uid == 0
    assert (stats.whiteouts, stats.opaque) == (2, 1)

    back = tmp_path / "back"
    back.mkdir()
    apply_layer(io.BytesIO(buf.getvalue()), str(back))
    assert wh.is_whiteout(os.lstat(back / "etc" / "motd"))
    assert wh.is_whiteout(os.lstat(back / "gone"))
    assert wh.is_opaque(str(back / "home"), userxattr=True)
    assert wh.is_opaque(str(back / "home"), userxattr=False)
    assert (back / "home" / "alias").stat().st_ino == (back / "home" / "kept").stat().st_ino
    assert (back / "etc" / "hostname").read_text() == "box\n"


def test_copied_up_user_opaque_is_not_opaque_without_userxattr(tmp_path: Path) -> None:
    # An overlay mounted without userxattr copies a lower dir's user.overlay.opaque up like any
    # xattr: only trusted.overlay.opaque means opaque there (checked on a real mount too).
    (tmp_path / "d").mkdir()
    os.setxattr(tmp_path / "d", "user.overlay.opaque", b"y")
    names = [e.name for e in diff_entries(str(tmp_path), userxattr=False)]
    assert names == ["d"]
    names = [e.name for e in diff_entries(str(tmp_path), userxattr=True)]
    assert names == ["d", "d/.wh..wh..opq"]


@requires("root")
def test_devices_in_an_upper_dir_are_committed_as_docker_does(tmp_path: Path) -> None:
    os.mknod(tmp_path / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(tmp_path / "sdx", stat.S_IFBLK | 0o660, os.makedev(8, 16))
    os.chmod(tmp_path / "sdx", 0o660)  # mknod(2) applies the umask
    out = io.BytesIO()
    write_layer(str(tmp_path), out)
    m = _members(out.getvalue())
    assert m["null"].ischr() and (m["null"].devmajor, m["null"].devminor) == (1, 3)
    assert m["sdx"].isblk() and (m["sdx"].devmajor, m["sdx"].devminor) == (8, 16)
    assert m["sdx"].mode == 0o660


def test_write_tar_is_deterministic(tmp_path: Path) -> None:
    src = tmp_path / "big"
    src.write_bytes(os.urandom(4096))
    entries = [
        Entry("bin", tarfile.DIRTYPE, 0o755, mtime=5),
        Entry("bin/big", tarfile.REGTYPE, 0o755, mtime=5, source=str(src), size=4096),
        Entry("bin/sh", tarfile.SYMTYPE, 0o777, mtime=5, linkname="/bin/big"),
        Entry("etc/passwd", tarfile.REGTYPE, 0o644, 0, 0, 5, data=b"root:x:0:0::/:/bin/sh\n"),
    ]
    one, two = io.BytesIO(), io.BytesIO()
    write_tar(entries, one)
    os.utime(src, (1, 1))  # the source's own metadata does not leak in
    write_tar(entries, two)
    assert one.getvalue() == two.getvalue()
    m = _members(one.getvalue())
    assert m["bin/big"].mtime == 5 and m["bin/big"].uname == ""
