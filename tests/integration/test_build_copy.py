"""COPY and ADD as layers: each layer is unpacked with ``apply_layer`` and the tree checked.

Real files in tmp dirs, as root (owners in the tar are only restored by root). The lower
layers are made the way the store makes them (a tar through ``apply_layer``), so whiteouts
and opaque directories are the real overlay ones.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from pycont.builder.context import Context
from pycont.builder.copy import (
    CopySource,
    check_add_sources,
    copy_layer,
    from_context,
    from_layers,
    parse_chmod,
    parse_chown,
    resolve_in_image,
)
from pycont.errors import UsageError
from pycont.images._tarwrite import Entry, write_tar
from pycont.images.layers import apply_layer
from tests.helpers import requires

pytestmark = requires("root")

D, F, L = tarfile.DIRTYPE, tarfile.REGTYPE, tarfile.SYMTYPE
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1001::/home/node:/bin/sh\n"
GROUP = "root:x:0:\nnode:x:1001:\nstaff:x:50:\n"


def write(path: Path, data: str = "x", mode: int = 0o644, mtime: int = 1_600_000_000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)
    path.chmod(mode)
    os.utime(path, (mtime, mtime))
    return path


class Build:
    """Makes lower layers and runs COPY, each result unpacked into a fresh directory."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.n = 0
        self.ctx_dir = tmp / "pc-h2-ctx"
        self.ctx_dir.mkdir()

    def fresh(self, what: str) -> Path:
        self.n += 1
        path = self.tmp / f"pc-h2-{what}-{self.n}"
        path.mkdir()
        return path

    def layer(self, *entries: Entry) -> str:
        buf = io.BytesIO()
        write_tar(entries, buf)
        dest = self.fresh("lower")
        apply_layer(io.BytesIO(buf.getvalue()), str(dest))
        return str(dest)

    def copy(
        self, sources: Sequence[str], dest: str, *, src: CopySource | None = None, **kw: Any
    ) -> Path:
        buf = io.BytesIO()
        src = src or from_context(Context(str(self.ctx_dir)))
        kw.setdefault("lowers", [])
        copy_layer(buf, sources, dest, src=src, **kw)
        self.tar = buf.getvalue()
        out = self.fresh("out")
        apply_layer(io.BytesIO(self.tar), str(out))  # refuses anything unsafe
        return out

    def members(self) -> dict[str, tarfile.TarInfo]:
        with tarfile.open(fileobj=io.BytesIO(self.tar)) as tar:
            return {m.name: m for m in tar.getmembers()}


@pytest.fixture
def b(tmp_path: Path) -> Build:
    return Build(tmp_path)


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_a_file_to_a_new_path(b: Build) -> None:
    f = write(b.ctx_dir / "a.txt", "hello", 0o640)
    os.chown(f, 1234, 1234)  # the host's owner never reaches the image
    out = b.copy(["a.txt"], "/app/conf/x.txt")
    assert tree(out) == ["app", "app/conf", "app/conf/x.txt"]
    st = os.lstat(out / "app/conf/x.txt")
    assert (out / "app/conf/x.txt").read_text() == "hello"
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, 0)
    assert st.st_mtime == 1_600_000_000  # the source's mtime, as docker
    dst = os.lstat(out / "app")
    assert (stat.S_IMODE(dst.st_mode), dst.st_uid, dst.st_gid) == (0o755, 0, 0)


def test_a_file_into_a_directory(b: Build) -> None:
    write(b.ctx_dir / "a.txt")
    assert tree(b.copy(["a.txt"], "/app/")) == ["app", "app/a.txt"]
    etc = b.layer(Entry("etc", D, 0o750, 5, 6, 1234))
    out = b.copy(["a.txt"], "/etc", lowers=[etc])  # an existing directory: the file goes in
    assert tree(out) == ["etc", "etc/a.txt"]
    m = b.members()["etc"]  # repeated with the image's own metadata, so the layer keeps it
    assert (m.mode, m.uid, m.gid, m.mtime) == (0o750, 5, 6, 1234)
    st = os.lstat(out / "etc")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o750, 5, 6)


def test_relative_dest_is_under_workdir(b: Build) -> None:
    write(b.ctx_dir / "a.txt")
    assert tree(b.copy(["a.txt"], "rel/", workdir="/work")) == [
        "work",
        "work/rel",
        "work/rel/a.txt",
    ]
    assert tree(b.copy(["a.txt"], ".", workdir="/w")) == ["w", "w/a.txt"]


def test_a_directory_copies_its_content(b: Build) -> None:
    write(b.ctx_dir / "src/f.txt", "f")
    write(b.ctx_dir / "src/sub/g.txt", "g", 0o600)
    os.symlink("f.txt", b.ctx_dir / "src/link")
    (b.ctx_dir / "src").chmod(0o700)
    out = b.copy(["src"], "/app")
    assert tree(out) == ["app", "app/f.txt", "app/link", "app/sub", "app/sub/g.txt"]
    assert os.readlink(out / "app/link") == "f.txt"
    assert stat.S_IMODE(os.lstat(out / "app").st_mode) == 0o700  # made from the source dir
    assert stat.S_IMODE(os.lstat(out / "app/sub/g.txt").st_mode) == 0o600


def test_several_sources_or_a_glob_make_dest_a_directory(b: Build) -> None:
    write(b.ctx_dir / "a.txt", "a")
    write(b.ctx_dir / "b.txt", "b")
    write(b.ctx_dir / "d/c.txt", "c")
    out = b.copy(["a.txt", "b.txt", "d"], "/dst")
    assert tree(out) == ["dst", "dst/a.txt", "dst/b.txt", "dst/c.txt"]
    assert tree(b.copy(["*.txt"], "/g")) == ["g", "g/a.txt", "g/b.txt"]
    write(b.ctx_dir / "e/c.txt", "e")  # two directories into one new one: the last wins
    out = b.copy(["d", "e"], "/m/")
    assert tree(out) == ["m", "m/c.txt"] and (out / "m/c.txt").read_text() == "e"


def test_dockerignore_applies_to_copy_dot(b: Build) -> None:
    write(b.ctx_dir / "Dockerfile", "FROM scratch\n")
    write(b.ctx_dir / "app.py")
    write(b.ctx_dir / "secret.key")
    write(b.ctx_dir / ".dockerignore", "*.key\nDockerfile\n")
    out = b.copy(["."], "/app/")
    assert tree(out) == ["app", "app/.dockerignore", "app/app.py"]


def test_chown_and_chmod(b: Build) -> None:
    etc = b.layer(
        Entry("etc", D, 0o755),
        Entry("etc/passwd", F, 0o644, data=PASSWD.encode()),
        Entry("etc/group", F, 0o644, data=GROUP.encode()),
    )
    assert parse_chown("node", [etc]) == (1000, 1001)  # the user's primary group
    assert parse_chown("node:staff", [etc]) == (1000, 50)
    assert parse_chown("1000", [etc]) == (1000, 1000)
    assert parse_chown("7:8", []) == (7, 8)
    with pytest.raises(UsageError) as err:
        parse_chown("nobody", [etc])
    assert str(err.value) == "unable to find user nobody: no matching entries in passwd file"
    with pytest.raises(UsageError, match="unable to find group wheel"):
        parse_chown("node:wheel", [etc])
    assert parse_chmod("755") == 0o755 and parse_chmod("0640") == 0o640
    for bad in ("u+x", "8", "", "77777"):
        with pytest.raises(UsageError, match="octal"):
            parse_chmod(bad)
    write(b.ctx_dir / "d/f.txt")
    out = b.copy(["d"], "/opt/app/", lowers=[etc], chown=(1000, 1001), chmod=0o750)
    for rel in ("opt", "opt/app", "opt/app/f.txt"):
        st = os.lstat(out / rel)
        assert (st.st_uid, st.st_gid) == (1000, 1001), rel
    assert stat.S_IMODE(os.lstat(out / "opt/app/f.txt").st_mode) == 0o750


def test_copy_from_layers_sees_whiteouts_and_opaque_dirs(b: Build) -> None:
    bottom = b.layer(
        Entry("app", D, 0o755),
        Entry("app/a", F, 0o644, data=b"a"),
        Entry("app/b", F, 0o644, data=b"b"),
        Entry("app/old", D, 0o755),
        Entry("app/old/gone", F, 0o644, data=b"gone"),
    )
    top = b.layer(
        Entry("app", D, 0o755),
        Entry("app/.wh.b", F, 0o644, data=b""),
        Entry("app/c", F, 0o644, data=b"c"),
        Entry("app/old", D, 0o755),
        Entry("app/old/.wh..wh..opq", F, 0o644, data=b""),
        Entry("app/old/new", F, 0o644, data=b"new"),
    )
    out = b.copy(["/app"], "/dst", src=from_layers([top, bottom]))
    assert tree(out) == ["dst", "dst/a", "dst/c", "dst/old", "dst/old/new"]
    assert (out / "dst/c").read_text() == "c"
    with pytest.raises(UsageError, match="not found in the --from image: /app/b"):
        b.copy(["/app/b"], "/x", src=from_layers([top, bottom]))
    # a path through a symlink of the source image is resolved inside that image
    usr = b.layer(
        Entry("usr/lib", D, 0o755),
        Entry("usr/lib/libx.so", F, 0o755, data=b"elf"),
        Entry("lib", L, 0o777, linkname="usr/lib"),
    )
    out = b.copy(["/lib/libx.so"], "/opt/", src=from_layers([usr]))
    assert (out / "opt/libx.so").read_text() == "elf"


def test_a_symlink_pointing_out_of_the_context_is_copied_as_a_link(
    b: Build, tmp_path: Path
) -> None:
    secret = write(tmp_path / "pc-h2-secret", "TOP-SECRET-CONTENT")
    os.symlink(str(secret), b.ctx_dir / "link")
    os.symlink(str(tmp_path), b.ctx_dir / "dirlink")
    out = b.copy(["link", "dirlink"], "/x/")
    assert os.readlink(out / "x/link") == str(secret)
    assert os.readlink(out / "x/dirlink") == str(tmp_path)
    assert b"TOP-SECRET-CONTENT" not in b.tar
    with pytest.raises(UsageError, match="file not found"):
        b.copy(["dirlink/pc-h2-secret"], "/y")


def test_dest_through_a_symlink_in_the_image_stays_inside(b: Build, tmp_path: Path) -> None:
    write(b.ctx_dir / "a.txt", "a")
    escape = tmp_path / "pc-h2-escape"
    lower = b.layer(
        Entry("data", L, 0o777, linkname=str(escape)),  # absolute: from the image's root
        Entry("up", L, 0o777, linkname="../../../.."),  # clamped at the image's root
        Entry("etc", D, 0o755),
        Entry("etc/file", F, 0o644, data=b"old"),
        Entry("etc/flink", L, 0o777, linkname="file"),
    )
    out = b.copy(["a.txt"], "/data/", lowers=[lower])
    rel = str(escape).lstrip("/") + "/a.txt"
    assert (out / rel).read_text() == "a"
    assert not escape.exists()
    assert resolve_in_image([lower], "/up/etc/file") == "etc/file"
    out = b.copy(["a.txt"], "/up/up/new.txt", lowers=[lower])
    assert tree(out) == ["new.txt"]
    out = b.copy(["a.txt"], "/etc/flink", lowers=[lower])  # a file replaces the link itself
    assert b.members()["etc/flink"].isreg() and (out / "etc/flink").read_text() == "a"
    with pytest.raises(UsageError, match="/etc/file is not a directory"):
        b.copy(["a.txt"], "/etc/file/x", lowers=[lower])


def tar_file(path: Path, mode: str, members: list[tuple[str, bytes | None]]) -> None:
    with tarfile.open(path, mode) as tar:  # type: ignore[call-overload]
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode, info.uid = len(data), 0o644, 42
                tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("mode", ["w:gz", "w:bz2", "w:xz", "w"])
def test_add_unpacks_local_archives(b: Build, mode: str) -> None:
    tar_file(b.ctx_dir / "x.tar.gz", mode, [("./", None), ("pkg/", None), ("pkg/f", b"data")])
    out = b.copy(["x.tar.gz"], "/opt", extract_archives=True)
    assert tree(out) == ["opt", "opt/pkg", "opt/pkg/f"]
    assert (out / "opt/pkg/f").read_text() == "data"
    assert os.lstat(out / "opt/pkg/f").st_uid == 42  # the archive's owner, as docker
    out = b.copy(["x.tar.gz"], "/opt/", extract_archives=False)  # COPY does not unpack
    assert tree(out) == ["opt", "opt/x.tar.gz"]


def test_add_of_a_plain_file_is_copy(b: Build) -> None:
    write(b.ctx_dir / "notes.gz", "not really gzip")
    out = b.copy(["notes.gz"], "/n", extract_archives=True)
    assert (out / "n").read_text() == "not really gzip"


@pytest.mark.parametrize(
    ("name", "why"),
    [("../evil", "leaves the destination"), ("/abs", "absolute"), ("d/.wh.x", "whiteout")],
)
def test_add_refuses_unsafe_archive_entries(b: Build, name: str, why: str) -> None:
    tar_file(b.ctx_dir / "bad.tar", "w", [(name, b"x")])
    with pytest.raises(UsageError, match=why):
        b.copy(["bad.tar"], "/opt/", extract_archives=True)


def test_add_of_a_url_is_refused() -> None:
    with pytest.raises(UsageError, match="URL sources need the network"):
        check_add_sources(["https://example.org/x.tar.gz"])
    check_add_sources(["x.tar.gz"])


def test_heredoc_copy(b: Build) -> None:
    out = b.copy(["<<EOF"], "/usr/local/bin/hi.sh", heredocs={"EOF": "echo hi\n"}, chmod=0o755)
    assert (out / "usr/local/bin/hi.sh").read_text() == "echo hi\n"
    assert stat.S_IMODE(os.lstat(out / "usr/local/bin/hi.sh").st_mode) == 0o755
    out = b.copy([], "/etc/", heredocs={"one": "1\n", "two": "2\n"})
    assert tree(out) == ["etc", "etc/one", "etc/two"]
    assert stat.S_IMODE(os.lstat(out / "etc/one").st_mode) == 0o644
