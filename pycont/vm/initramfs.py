"""A VM's initramfs, written in Python: an uncompressed "newc" cpio archive.

It holds busybox-static (with a symlink per applet in /bin), the kernel modules the guest
needs (decompressed, in insmod order, listed in /modules/order), a few device nodes (made in
the archive, so no root is needed to build it), extra files, and /init from the text given.

The newc format: per entry a 110-byte ASCII header ("070701" and 13 eight-digit hex fields),
the name with its NUL, padded to 4 bytes, then the data, padded to 4 bytes; a last entry named
"TRAILER!!!" ends the archive. The kernel unpacks it into its rootfs and runs /init.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import BinaryIO

from pycont.vm.apt import apt_install
from pycont.vm.errors import VMError
from pycont.vm.kernel import read_module

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")


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
    ) -> None:
        name = name.lstrip("/") or "."
        if name in self._names:
            raise VMError(f"initramfs: {name} added twice")
        self._names.add(name)
        encoded = name.encode() + b"\0"
        fields = (
            self._ino,
            mode,
            0,
            0,
            nlink,
            0,
            len(data),
            0,
            0,
            rdev[0],
            rdev[1],
            len(encoded),
            0,
        )
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self._ino += 1
        self._out.write(header + encoded + b"\0" * (-(len(header) + len(encoded)) % 4))
        self._out.write(data + b"\0" * (-len(data) % 4))

    def dir(self, name: str, perm: int = 0o755) -> None:
        self._entry(name, stat.S_IFDIR | perm, nlink=2)

    def file(self, name: str, data: bytes, perm: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | perm, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name: str, major: int, minor: int, perm: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | perm, rdev=(major, minor))

    def close(self) -> None:
        self._entry("TRAILER!!!", 0)
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
