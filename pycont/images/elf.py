"""ELF dynamic linking: which shared libraries a program needs, read from the file itself.

A dynamically linked executable names its loader in the ``PT_INTERP`` program header
(``/lib64/ld-linux-x86-64.so.2``) and the libraries it needs as ``DT_NEEDED`` entries of its
``PT_DYNAMIC`` segment; each library names its own, so the full set is a transitive walk
(elf(5), ld.so(8)). This is what ``ldd`` prints, found here without running the loader:
:func:`elf_needed` for one file, :class:`LibraryResolver` for the walk.
"""

from __future__ import annotations

import glob
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from pycont.errors import PycontError

__all__ = ["ElfError", "ElfInfo", "LibraryResolver", "elf_info", "elf_needed", "is_elf"]

MAGIC = b"\x7fELF"
PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_NEEDED, DT_STRTAB, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 5, 14, 15, 29
# Debian's ld.so searches these after ld.so.cache (glibc's SYSTEM_DIRS with multiarch).
TRUSTED_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib")


class ElfError(PycontError):
    """A file that is not a readable ELF object."""


@dataclass(frozen=True)
class ElfInfo:
    """What the dynamic loader reads from one ELF file."""

    elf_class: int  # 1: 32-bit, 2: 64-bit (e_ident[EI_CLASS])
    machine: int  # e_machine: 62 is x86-64
    interpreter: str  # PT_INTERP, "" for a library or a static program
    needed: tuple[str, ...]  # DT_NEEDED, in order
    soname: str
    rpath: tuple[str, ...]  # DT_RPATH: searched before LD_LIBRARY_PATH (deprecated)
    runpath: tuple[str, ...]  # DT_RUNPATH: searched after it


def is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == MAGIC
    except OSError:
        return False


def elf_info(path: str) -> ElfInfo:
    """Parse the ELF header, program headers and dynamic section of ``path``."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != MAGIC or len(data) < 52 or data[4] not in (1, 2) or data[5] not in (1, 2):
        raise ElfError(f"read ELF header of {path}: not an ELF file")
    cls, end = data[4], "<" if data[5] == 1 else ">"
    try:
        if cls == 2:
            (machine,) = struct.unpack_from(end + "H", data, 18)
            (phoff,) = struct.unpack_from(end + "Q", data, 32)
            phentsize, phnum = struct.unpack_from(end + "HH", data, 54)
            ph_fmt, dyn_fmt = end + "IIQQQQQQ", end + "qQ"
        else:
            (machine,) = struct.unpack_from(end + "H", data, 18)
            (phoff,) = struct.unpack_from(end + "I", data, 28)
            phentsize, phnum = struct.unpack_from(end + "HH", data, 42)
            ph_fmt, dyn_fmt = end + "IIIIIIII", end + "iI"
        loads, dynamic, interp = [], None, ""
        for i in range(phnum):
            fields = struct.unpack_from(ph_fmt, data, phoff + i * phentsize)
            if cls == 2:
                p_type, _flags, off, vaddr, _pa, filesz, _memsz, _align = fields
            else:
                p_type, off, vaddr, _pa, filesz, _memsz, _flags, _align = fields
            if p_type == PT_LOAD:
                loads.append((vaddr, off, filesz))
            elif p_type == PT_DYNAMIC:
                dynamic = (off, filesz)
            elif p_type == PT_INTERP:
                interp = data[off : off + filesz].split(b"\0", 1)[0].decode()
        tags: list[tuple[int, int]] = []
        if dynamic is not None:
            size = struct.calcsize(dyn_fmt)
            for pos in range(dynamic[0], dynamic[0] + dynamic[1] - size + 1, size):
                tag, val = struct.unpack_from(dyn_fmt, data, pos)
                if tag == DT_NULL:
                    break
                tags.append((tag, val))
    except struct.error as err:
        raise ElfError(f"read program headers of {path}: truncated ELF file ({err})") from None
    strtab = next((v for t, v in tags if t == DT_STRTAB), None)

    def string(offset: int) -> str:
        # DT_STRTAB holds a virtual address: the PT_LOAD segment that maps it gives the offset.
        assert strtab is not None
        for vaddr, off, filesz in loads:
            if vaddr <= strtab < vaddr + filesz:
                start = strtab - vaddr + off + offset
                return data[start : data.index(b"\0", start)].decode("utf-8", "replace")
        raise ElfError(f"read dynamic section of {path}: DT_STRTAB {strtab:#x} is not mapped")

    def strings(tag: int) -> list[str]:
        return [string(v) for t, v in tags if t == tag] if strtab is not None else []

    def paths(tag: int) -> tuple[str, ...]:
        return tuple(p for s in strings(tag) for p in s.split(":") if p)

    sonames = strings(DT_SONAME)
    return ElfInfo(
        elf_class=cls,
        machine=machine,
        interpreter=interp,
        needed=tuple(strings(DT_NEEDED)),
        soname=sonames[0] if sonames else "",
        rpath=paths(DT_RPATH),
        runpath=paths(DT_RUNPATH),
    )


def elf_needed(path: str) -> list[str]:
    """The DT_NEEDED names of one ELF file (``readelf -d``'s "Shared library" lines)."""
    return list(elf_info(path).needed)


def ld_so_conf(path: str = "/etc/ld.so.conf") -> list[str]:
    """The directories ldconfig(8) reads, in order, with ``include`` globs expanded."""
    out: list[str] = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line.startswith("include "):
            pattern = line.split(None, 1)[1]
            if not pattern.startswith("/"):
                pattern = os.path.join(os.path.dirname(path), pattern)
            for conf in sorted(glob.glob(pattern)):
                out.extend(d for d in ld_so_conf(conf) if d not in out)
        elif line and line not in out:
            out.append(line)
    return out


class LibraryResolver:
    """Finds libraries as ld.so(8) does: DT_RPATH (if no DT_RUNPATH), DT_RUNPATH, the
    ld.so.conf directories, the trusted directories; only objects of the same ELF class
    and machine match (a 32-bit libc is skipped for a 64-bit program)."""

    def __init__(self, search: Iterable[str] | None = None) -> None:
        dirs = list(search) if search is not None else ld_so_conf()
        self.search = dirs + [d for d in TRUSTED_DIRS if d not in dirs]
        self._info: dict[str, ElfInfo] = {}

    def info(self, path: str) -> ElfInfo:
        real = os.path.realpath(path)
        if real not in self._info:
            self._info[real] = elf_info(real)
        return self._info[real]

    def find(self, name: str, needer: str, rpath: tuple[str, ...] = ()) -> str | None:
        """The path ld.so would load for DT_NEEDED ``name`` of ``needer``; None if absent."""
        me = self.info(needer)
        if "/" in name:
            return name if os.path.isfile(name) else None
        origin = os.path.dirname(os.path.realpath(needer))
        dirs = [*(rpath if not me.runpath else ()), *me.runpath, *self.search]
        for d in dirs:
            d = d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin)
            cand = os.path.join(d, name)
            if not os.path.isfile(cand):
                continue
            try:
                other = self.info(cand)
            except (OSError, ElfError):
                continue
            if (other.elf_class, other.machine) == (me.elf_class, me.machine):
                return os.path.normpath(cand)
        return None

    def closure(self, paths: Iterable[str]) -> tuple[dict[str, str], list[str]]:
        """Every library ``paths`` need, transitively: (name -> path found, names missing).

        Breadth first, as ld.so loads them; a name is resolved once (the first object that
        needs it decides), so the result matches ``ldd``'s list."""
        found: dict[str, str] = {}
        missing: list[str] = []
        # DT_RPATH of the executable applies to the libraries it loads (ld.so(8)).
        queue = [(p, self.info(p).rpath) for p in paths]
        while queue:
            obj, rpath = queue.pop(0)
            for name in self.info(obj).needed:
                if name in found or name in missing:
                    continue
                lib = self.find(name, obj, rpath)
                if lib is None:
                    missing.append(name)
                    continue
                found[name] = lib
                queue.append((lib, rpath + self.info(lib).rpath))
        return found, missing
