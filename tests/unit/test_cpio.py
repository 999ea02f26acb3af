"""pycont.vm.initramfs.CpioWriter: newc archives read back with a small reader (and with GNU
cpio, where Debian's cpio package is installed). No root needed."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pycont.vm import initramfs
from pycont.vm.errors import VMError
from pycont.vm.initramfs import CpioWriter

FIELDS = ("ino", "mode", "uid", "gid", "nlink", "mtime", "size", "devmajor", "devminor")
FIELDS += ("rdevmajor", "rdevminor", "namesize", "check")


def read_newc(raw: bytes) -> list[dict[str, Any]]:
    """Entries of a newc archive (man 5 cpio), checking the magic and the 4-byte padding."""
    out, pos = [], 0
    while True:
        assert pos % 4 == 0, f"header at {pos} is not 4-byte aligned"
        assert raw[pos : pos + 6] == b"070701", f"bad magic at {pos}: {raw[pos : pos + 6]!r}"
        nums = [int(raw[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        e: dict[str, Any] = dict(zip(FIELDS, nums, strict=True))
        name_end = pos + 110 + e["namesize"]
        assert raw[name_end - 1] == 0, "name not NUL-terminated"
        e["name"] = raw[pos + 110 : name_end - 1].decode()
        data_at = name_end + (-name_end % 4)
        assert raw[name_end:data_at] == b"\0" * (data_at - name_end), "name padding not NULs"
        e["data"] = raw[data_at : data_at + e["size"]]
        pos = data_at + e["size"]
        pad = -pos % 4
        assert raw[pos : pos + pad] == b"\0" * pad, f"data padding of {e['name']} not NULs"
        pos += pad
        if e["name"] == "TRAILER!!!":
            assert pos == len(raw), "bytes after the trailer"
            return out
        out.append(e)


def by_name(raw: bytes) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in read_newc(raw)}


def test_helpers_carry_type_mode_owner_time_and_data() -> None:
    buf = io.BytesIO()
    cpio = CpioWriter(buf)
    cpio.dir("/etc", 0o750, uid=7, gid=8, mtime=1_700_000_000)
    cpio.file("etc/motd", b"hello", 0o640, uid=1000, gid=1001, mtime=1_600_000_000)
    cpio.symlink("etc/link", "/etc/motd", uid=3, gid=4)
    cpio.chardev("dev-null", 1, 3, 0o666)
    cpio.close()
    got = by_name(buf.getvalue())
    assert list(got) == ["etc", "etc/motd", "etc/link", "dev-null"]  # order kept, "/" stripped
    etc, motd, link, null = got.values()
    assert (etc["mode"], etc["uid"], etc["gid"], etc["mtime"], etc["nlink"]) == (
        stat.S_IFDIR | 0o750,
        7,
        8,
        1_700_000_000,
        2,
    )
    assert (motd["mode"], motd["uid"], motd["gid"], motd["mtime"], motd["data"]) == (
        stat.S_IFREG | 0o640,
        1000,
        1001,
        1_600_000_000,
        b"hello",
    )
    assert (link["mode"], link["data"], link["uid"], link["gid"]) == (
        stat.S_IFLNK | 0o777,
        b"/etc/motd",
        3,
        4,
    )
    assert (null["mode"], null["rdevmajor"], null["rdevminor"]) == (stat.S_IFCHR | 0o666, 1, 3)
    assert len({e["ino"] for e in got.values()}) == 4  # one inode each


def test_entry_streams_a_file_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(initramfs, "CHUNK", 7)  # many reads for a small file
    data = bytes(range(256)) * 3 + b"xyz"  # 771 bytes: needs 1 byte of padding
    src = tmp_path / "f"
    src.write_bytes(data)
    os.chmod(src, 0o4751)
    os.utime(src, (1_234_567_890, 1_234_567_890))
    buf = io.BytesIO()
    cpio = CpioWriter(buf)
    cpio.entry("usr/bin/f", os.lstat(src), str(src))
    cpio.close()
    (e,) = read_newc(buf.getvalue())
    st = os.lstat(src)
    assert (e["name"], e["mode"], e["uid"], e["gid"]) == (
        "usr/bin/f",
        st.st_mode,
        st.st_uid,
        st.st_gid,
    )
    assert (e["mtime"], e["size"], e["data"]) == (1_234_567_890, len(data), data)


def test_entry_of_a_symlink_a_fifo_and_a_directory(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir(mode=0o710)
    os.symlink("../nowhere", tmp_path / "l")
    os.mkfifo(tmp_path / "p", 0o640)
    buf = io.BytesIO()
    cpio = CpioWriter(buf)
    for name in ("d", "l", "p"):
        cpio.entry(name, os.lstat(tmp_path / name), str(tmp_path / name))
    cpio.close()
    got = by_name(buf.getvalue())
    assert got["d"]["mode"] == stat.S_IFDIR | 0o710 and got["d"]["size"] == 0
    assert got["l"]["mode"] == stat.S_IFLNK | 0o777 and got["l"]["data"] == b"../nowhere"
    assert got["p"]["mode"] == stat.S_IFIFO | 0o640 and got["p"]["size"] == 0


def test_hard_links_share_an_inode_and_the_data_comes_last(tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"shared data")
    buf = io.BytesIO()
    cpio = CpioWriter(buf)
    cpio.file("other", b"x")
    link = cpio.hardlink(3)
    for name in ("a", "b", "c"):
        cpio.entry(name, os.lstat(src), str(src), link=link)
    with pytest.raises(VMError, match="more names than the 3"):
        cpio.entry("d", os.lstat(src), str(src), link=link)
    cpio.close()
    got = by_name(buf.getvalue())
    inos = {got[n]["ino"] for n in "abc"}
    assert len(inos) == 1 and inos != {got["other"]["ino"]}
    assert [got[n]["nlink"] for n in "abc"] == [3, 3, 3]
    assert [got[n]["data"] for n in "abc"] == [b"", b"", b"shared data"]


def test_a_file_that_changed_since_lstat_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"12345")
    st = os.lstat(src)
    src.write_bytes(b"1234567")
    buf = io.BytesIO()
    with pytest.raises(VMError, match="changed while the archive was written"):
        CpioWriter(buf).entry("f", st, str(src))
    assert buf.getvalue() == b""  # refused before its header


def test_a_symlink_is_never_followed_as_file_data(tmp_path: Path) -> None:
    (tmp_path / "real").write_bytes(b"12345")
    st = os.lstat(tmp_path / "real")
    os.symlink(tmp_path / "real", tmp_path / "l")
    with pytest.raises(OSError):  # ELOOP from O_NOFOLLOW (open(2))
        CpioWriter(io.BytesIO()).entry("l", st, str(tmp_path / "l"))


def test_a_file_past_newc_size_limit_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(1 << 32)  # sparse: 4 GiB of holes, nothing on disk
    with pytest.raises(VMError, match="4 GiB"):
        CpioWriter(io.BytesIO()).entry("big", os.lstat(big), str(big))


def test_names_twice_are_refused_and_times_are_clamped() -> None:
    buf = io.BytesIO()
    cpio = CpioWriter(buf)
    cpio.file("a", b"", mtime=-5)
    with pytest.raises(VMError, match="a added twice"):
        cpio.file("/a", b"")
    cpio.file("b", b"", mtime=1 << 40)
    cpio.close()
    got = by_name(buf.getvalue())
    assert (got["a"]["mtime"], got["b"]["mtime"]) == (0, 0xFFFFFFFF)


@pytest.mark.skipif(shutil.which("cpio") is None, reason="needs GNU cpio (apt-get install cpio)")
def test_gnu_cpio_reads_it_back(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"linked\n")
    buf = io.BytesIO()
    cpio = CpioWriter(buf)
    cpio.dir("d", 0o755, mtime=1_000_000_000)
    cpio.file("d/f", b"data\n" * 1000, 0o600, mtime=1_000_000_000)
    cpio.symlink("d/l", "f")
    link = cpio.hardlink(2)
    cpio.entry("h1", os.lstat(src), str(src), link=link)
    cpio.entry("h2", os.lstat(src), str(src), link=link)
    cpio.close()
    out = tmp_path / "out"
    out.mkdir()
    listing = subprocess.run(["cpio", "-it"], input=buf.getvalue(), capture_output=True)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.decode().split() == ["d", "d/f", "d/l", "h1", "h2"]
    res = subprocess.run(
        ["cpio", "-idm", "--no-absolute-filenames"],
        input=buf.getvalue(),
        cwd=out,
        capture_output=True,
    )
    assert res.returncode == 0, res.stderr
    assert (out / "d/f").read_bytes() == b"data\n" * 1000
    assert stat.S_IMODE(os.lstat(out / "d/f").st_mode) == 0o600
    assert os.lstat(out / "d/f").st_mtime == 1_000_000_000
    assert os.readlink(out / "d/l") == "f"
    assert (out / "h1").read_bytes() == (out / "h2").read_bytes() == b"linked\n"
    assert os.lstat(out / "h1").st_ino == os.lstat(out / "h2").st_ino
