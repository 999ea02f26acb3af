"""A VM's initramfs, written in Python: an uncompressed "newc" cpio archive.

It holds busybox-static (with a symlink per applet in /bin), the kernel modules the guest
needs (decompressed, in insmod order, listed in /modules/order), a few device nodes (made in
the archive, so no root is needed to build it), extra files, and /init from the text given.

The newc format: per entry a 110-byte ASCII header ("070701" and 13 eight-digit hex fields),
the name with its NUL, padded to 4 bytes, then the data, padded to 4 bytes; a last entry named
"TRAILER!!!" ends the archive. The kernel unpacks it into its rootfs and runs /init.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import BinaryIO

from pycont.vm.apt import apt_install
from pycont.vm.errors import VMError
from pycont.vm.kernel import read_module

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")


# newc stores every number as 8 hex digits (man 5 cpio, "New ASCII Format").
NEWC_MAX = 0xFFFFFFFF
CHUNK = 1 << 20  # file data is copied in pieces of this size, never read whole


class HardLink:
    """Names that share one inode. newc gives them the same ino and nlink, and the data with
    the last name only (man 5 cpio); the kernel makes each later name a link to the first
    one it unpacked (init/initramfs.c, maybe_link) and appends the data that comes."""

    def __init__(self, ino: int, nlink: int) -> None:
        self.ino = ino
        self.nlink = nlink
        self.left = nlink  # names still to write; the data goes with the last


class CpioWriter:
    """Writes a newc archive entry by entry (directories before what they hold)."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._ino = 1
        self._names: set[str] = set()

    def _entry(
        self,
        name: str,
        mode: int,
        data: bytes = b"",
        rdev: tuple[int, int] = (0, 0),
        nlink: int = 1,
        *,
        uid: int = 0,
        gid: int = 0,
        mtime: int = 0,
        size: int | None = None,
        ino: int | None = None,
    ) -> None:
        """One header, then ``data``; with ``size``, the header alone: the caller writes that
        many bytes and the padding (:meth:`_copy`)."""
        name = name.lstrip("/") or "."
        if name in self._names:
            raise VMError(f"initramfs: {name} added twice")
        length = len(data) if size is None else size
        if length > NEWC_MAX:
            raise VMError(f"initramfs: {name} is {length} bytes; a newc cpio holds up to 4 GiB - 1")
        self._names.add(name)
        encoded = name.encode(errors="surrogateescape") + b"\0"
        if ino is None:
            ino = self.new_ino()
        fields = (
            ino,
            mode,
            uid,
            gid,
            nlink,
            min(max(0, mtime), NEWC_MAX),  # before 1970 or after 2106: the nearest it can say
            length,
            0,
            0,
            rdev[0],
            rdev[1],
            len(encoded),
            0,  # check: "SVR4 with no CRC" (magic 070701) leaves it 0
        )
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self._out.write(header + encoded + b"\0" * (-(len(header) + len(encoded)) % 4))
        if size is None:
            self._out.write(data + b"\0" * (-len(data) % 4))

    def new_ino(self) -> int:
        self._ino += 1
        return self._ino - 1

    def hardlink(self, nlink: int) -> HardLink:
        """An inode for ``nlink`` names: pass it to :meth:`entry` with each of them."""
        return HardLink(self.new_ino(), nlink)

    def entry(
        self,
        name: str,
        st: os.stat_result,
        source: str | None = None,
        *,
        link: HardLink | None = None,
    ) -> None:
        """An entry with the type, mode, owner and mtime of ``st`` (an lstat): a regular
        file's data streamed from ``source`` in chunks (the file must still have st's size), a
        symlink's target read from ``source``, a device's numbers from ``st``."""
        kind = stat.S_IFMT(st.st_mode)
        put = functools.partial(
            self._entry, name, st.st_mode, uid=st.st_uid, gid=st.st_gid, mtime=int(st.st_mtime)
        )
        if kind == stat.S_IFREG:
            if link is not None:
                link.left -= 1
                if link.left < 0:
                    raise VMError(f"initramfs: {name}: more names than the {link.nlink} announced")
                put = functools.partial(put, ino=link.ino, nlink=link.nlink)
                if link.left:  # not the last name: no data yet
                    put()
                    return
            if source is None:
                if st.st_size:
                    raise VMError(f"initramfs: {name}: {st.st_size} bytes and no file to read")
                put()
                return
            self._copy(source, st.st_size, put)
        elif kind == stat.S_IFLNK:
            if source is None:
                raise VMError(f"initramfs: symlink {name}: no file to read its target from")
            put(os.readlink(source).encode(errors="surrogateescape"))
        elif kind in (stat.S_IFCHR, stat.S_IFBLK):
            put(rdev=(os.major(st.st_rdev), os.minor(st.st_rdev)))
        else:  # directories, fifos, sockets: a header alone
            put(nlink=2 if kind == stat.S_IFDIR else 1)

    def _copy(self, source: str, size: int, header: Callable[..., None]) -> None:
        """``header(size=size)``, then ``size`` bytes of ``source`` read in chunks. The header
        says the size first, so a file that is not the one lstat saw (replaced by a symlink,
        grown or shrunk) is refused rather than written with a wrong length."""
        # O_NOFOLLOW: the image's symlinks are never followed on the host (open(2)).
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb", buffering=0) as f:
            now = os.fstat(fd)
            if not stat.S_ISREG(now.st_mode) or now.st_size != size:
                raise VMError(f"initramfs: {source} changed while the archive was written")
            header(size=size)
            left = size
            while left and (chunk := f.read(min(left, CHUNK))):
                self._out.write(chunk)
                left -= len(chunk)
            if left or f.read(1):
                raise VMError(f"initramfs: {source} changed size while it was copied")
        self._out.write(b"\0" * (-size % 4))

    def dir(
        self, name: str, perm: int = 0o755, *, uid: int = 0, gid: int = 0, mtime: int = 0
    ) -> None:
        self._entry(name, stat.S_IFDIR | perm, nlink=2, uid=uid, gid=gid, mtime=mtime)

    def file(
        self,
        name: str,
        data: bytes,
        perm: int = 0o644,
        *,
        uid: int = 0,
        gid: int = 0,
        mtime: int = 0,
    ) -> None:
        self._entry(name, stat.S_IFREG | perm, data, uid=uid, gid=gid, mtime=mtime)

    def symlink(
        self, name: str, target: str, *, uid: int = 0, gid: int = 0, mtime: int = 0
    ) -> None:
        self._entry(
            name,
            stat.S_IFLNK | 0o777,
            target.encode(errors="surrogateescape"),
            uid=uid,
            gid=gid,
            mtime=mtime,
        )

    def chardev(self, name: str, major: int, minor: int, perm: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | perm, rdev=(major, minor))

    def close(self) -> None:
        self._entry("TRAILER!!!", 0, ino=0)
        self._out.flush()


def _is_static(path: str) -> bool:
    """True when the ELF file has no program interpreter (PT_INTERP), i.e. is static."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            return False
        phoff = int.from_bytes(head[0x20:0x28], "little")
        phentsize = int.from_bytes(head[0x36:0x38], "little")
        phnum = int.from_bytes(head[0x38:0x3A], "little")
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(
        int.from_bytes(table[i * phentsize : i * phentsize + 4], "little") != 3  # PT_INTERP
        for i in range(phnum)
    )


def find_busybox(install: bool = True) -> str:
    """A static busybox on the host; ``apt-get install busybox-static`` when there is none."""
    for path in (os.environ.get("PYCONT_VM_BUSYBOX"), *BUSYBOX_CANDIDATES):
        if path and os.path.isfile(path) and _is_static(path):
            return path
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        apt_install(["busybox-static"])
        return find_busybox(install=False)
    raise VMError("no static busybox: apt-get install busybox-static")


def busybox_applets(busybox: str) -> list[str]:
    out = subprocess.run([busybox, "--list-full"], capture_output=True, text=True, check=True)
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def build_initramfs(
    out: Path | str,
    init_script: str,
    *,
    modules: Iterable[Path] = (),
    files: Mapping[str, bytes | str] | None = None,
    busybox: str | None = None,
) -> Path:
    """Write the initramfs to ``out`` and return its path.

    ``init_script`` becomes /init (give it a ``#!/bin/sh`` line). ``modules`` are kernel
    module files in load order (``KernelFiles.modules()`` gives that order); they land
    decompressed in /modules with their names in /modules/order. ``files`` maps absolute
    paths in the guest to contents (text or bytes), all mode 0755 (scripts run as they are).
    """
    out = Path(out)
    busybox = busybox or find_busybox()
    if not _is_static(busybox):
        raise VMError(f"{busybox} is not statically linked")
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as f:
        cpio = CpioWriter(f)
        dirs = {
            "bin",
            "sbin",
            "usr",
            "usr/bin",
            "usr/sbin",
            "dev",
            "proc",
            "sys",
            "tmp",
            "mnt",
            "modules",
            "etc",
            "root",
            "run",
        }
        for d in sorted(dirs):
            cpio.dir(d, 0o1777 if d == "tmp" else 0o755)
        cpio.chardev("dev/console", 5, 1)
        cpio.chardev("dev/null", 1, 3, 0o666)
        cpio.chardev("dev/ttyS0", 4, 64)
        cpio.file("bin/busybox", Path(busybox).read_bytes(), 0o755)
        for applet in busybox_applets(busybox):
            rel = applet.lstrip("/")
            parent = os.path.dirname(rel)
            if parent not in dirs or rel == "bin/busybox":
                continue
            cpio.symlink(rel, "/bin/busybox")
        names = []
        for path in modules:
            name = path.name.split(".ko", 1)[0] + ".ko"
            cpio.file(f"modules/{name}", read_module(Path(path)))
            names.append(name)
        cpio.file("modules/order", "".join(n + "\n" for n in names).encode())
        cpio.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
        cpio.file("etc/group", b"root:x:0:\n")
        made = set(dirs)
        for guest_path, content in sorted((files or {}).items()):
            rel = guest_path.lstrip("/")
            parts = rel.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in made:
                    cpio.dir(d)
                    made.add(d)
            data = content.encode() if isinstance(content, str) else content
            cpio.file(rel, data, 0o755)
        cpio.file("init", init_script.encode(), 0o755)
        cpio.close()
    tmp.rename(out)
    return out
