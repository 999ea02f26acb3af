"""ELF DT_NEEDED parsing (pycont.images.elf): checked against the host's binaries, ``readelf``
and ``ldd``, and against small ELF files built here (32-bit, big-endian, RUNPATH $ORIGIN)."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from pycont.images.elf import ElfError, LibraryResolver, elf_info, elf_needed, is_elf, ld_so_conf

HOST_BINARIES = [
    p
    for p in ("/usr/bin/node", "/usr/bin/ls", "/usr/bin/ssh", os.path.realpath(sys.executable))
    if os.path.isfile(p) and is_elf(p) and elf_info(p).interpreter
]


def _readelf_needed(path: str) -> list[str]:
    out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=True)
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out.stdout)


def _ldd(path: str) -> dict[str, str]:
    """ldd's answer: library name -> real path (the loader under its own name)."""
    out = subprocess.run(["ldd", path], capture_output=True, text=True, check=True).stdout
    libs = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\S+) => (\S+) \(", line) or re.match(r"\s*(/\S+) \(", line)
        if m and "vdso" not in line:
            name = os.path.basename(m.group(1))
            libs[name] = os.path.realpath(m.group(m.lastindex or 1))
    return libs


@pytest.mark.skipif(not shutil.which("readelf"), reason="needs readelf (binutils)")
@pytest.mark.parametrize("path", HOST_BINARIES)
def test_needed_matches_readelf(path: str) -> None:
    assert elf_needed(path) == _readelf_needed(path)


@pytest.mark.skipif(not shutil.which("ldd"), reason="needs ldd (libc-bin)")
@pytest.mark.parametrize("path", HOST_BINARIES)
def test_closure_matches_ldd(path: str) -> None:
    resolver = LibraryResolver()
    found, missing = resolver.closure([path])
    ours = {n: os.path.realpath(p) for n, p in found.items()}
    interp = elf_info(path).interpreter
    ours.setdefault(os.path.basename(interp), os.path.realpath(interp))  # ldd lists the loader
    assert missing == []
    assert ours == _ldd(path)


def test_node_interpreter_and_libraries() -> None:
    if not os.path.isfile("/usr/bin/node"):
        pytest.skip("needs /usr/bin/node (Debian package nodejs)")
    info = elf_info("/usr/bin/node")
    assert info.interpreter == "/lib64/ld-linux-x86-64.so.2"
    assert (info.elf_class, info.machine) == (2, 62)
    assert {"libc.so.6", "libstdc++.so.6"} <= set(info.needed)
    libc = LibraryResolver().closure(["/usr/bin/node"])[0]["libc.so.6"]
    assert elf_info(libc).soname == "libc.so.6"


def test_not_elf(tmp_path: Path) -> None:
    text = tmp_path / "script"
    text.write_text("#!/bin/sh\necho hi\n")
    assert not is_elf(str(text))
    with pytest.raises(ElfError, match="not an ELF file"):
        elf_info(str(text))
    (tmp_path / "short").write_bytes(b"\x7fELF\x02\x01")
    with pytest.raises(ElfError):
        elf_info(str(tmp_path / "short"))


# -- small ELF files made here --------------------------------------------------------------
def make_elf(
    path: Path,
    *,
    bits: int = 64,
    big: bool = False,
    machine: int = 62,
    needed: tuple[str, ...] = (),
    runpath: str = "",
    soname: str = "",
    interp: str = "",
) -> None:
    """A minimal ELF: header, PT_LOAD (all of it, at vaddr 0x400000), PT_INTERP, PT_DYNAMIC."""
    e = ">" if big else "<"
    strtab = b"\0"
    offsets = {}
    for s in (*needed, runpath, soname):
        if s and s not in offsets:
            offsets[s] = len(strtab)
            strtab += s.encode() + b"\0"
    dyn = [(1, offsets[n]) for n in needed]
    if runpath:
        dyn.append((29, offsets[runpath]))
    if soname:
        dyn.append((14, offsets[soname]))
    ehsize, phentsize = (64, 56) if bits == 64 else (52, 32)
    phoff = ehsize
    interp_off = phoff + 3 * phentsize
    interp_b = interp.encode() + b"\0" if interp else b""
    str_off = interp_off + len(interp_b)
    dyn_off = str_off + len(strtab)
    base = 0x400000
    dyn.insert(0, (5, base + str_off))  # DT_STRTAB: a virtual address
    dyn.append((0, 0))
    dfmt = e + ("qQ" if bits == 64 else "iI")
    dyn_b = b"".join(struct.pack(dfmt, t, v) for t, v in dyn)
    total = dyn_off + len(dyn_b)

    def ph(p_type: int, off: int, size: int) -> bytes:
        if bits == 64:
            return struct.pack(e + "IIQQQQQQ", p_type, 4, off, base + off, 0, size, size, 8)
        return struct.pack(e + "IIIIIIII", p_type, off, base + off, 0, size, size, 4, 4)

    phdrs = ph(1, 0, total) + ph(3, interp_off, len(interp_b)) + ph(2, dyn_off, len(dyn_b))
    ident = b"\x7fELF" + bytes([2 if bits == 64 else 1, 2 if big else 1, 1]) + b"\0" * 9
    if bits == 64:
        rest = struct.pack(
            e + "HHIQQQIHHHHHH", 3, machine, 1, 0, phoff, 0, 0, ehsize, 56, 3, 0, 0, 0
        )
    else:
        rest = struct.pack(
            e + "HHIIIIIHHHHHH", 3, machine, 1, 0, phoff, 0, 0, ehsize, 32, 3, 0, 0, 0
        )
    path.write_bytes(ident + rest + phdrs + interp_b + strtab + dyn_b)


@pytest.mark.parametrize(("bits", "big"), [(64, False), (32, False), (32, True), (64, True)])
def test_parse_made_elf(tmp_path: Path, bits: int, big: bool) -> None:
    f = tmp_path / "prog"
    make_elf(
        f,
        bits=bits,
        big=big,
        machine=3 if bits == 32 else 62,
        needed=("liba.so.1", "libb.so.2"),
        runpath="$ORIGIN/lib:/opt/x",
        soname="libprog.so.0",
        interp="/lib/ld-test.so",
    )
    info = elf_info(str(f))
    assert info.elf_class == (2 if bits == 64 else 1)
    assert info.needed == ("liba.so.1", "libb.so.2")
    assert info.runpath == ("$ORIGIN/lib", "/opt/x")
    assert info.soname == "libprog.so.0"
    assert info.interpreter == "/lib/ld-test.so"


def test_resolver_runpath_origin_and_class(tmp_path: Path) -> None:
    """$ORIGIN is the needing file's folder; a library of another ELF class is skipped, as
    ld.so skips it; transitive needs are followed; what is nowhere is reported missing."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib32").mkdir()
    make_elf(tmp_path / "prog", needed=("liba.so.1",), runpath="$ORIGIN/lib32:$ORIGIN/lib")
    make_elf(tmp_path / "lib32" / "liba.so.1", bits=32, machine=3, soname="liba.so.1")
    make_elf(tmp_path / "lib" / "liba.so.1", needed=("libb.so.2", "libnone.so.9"))
    make_elf(tmp_path / "libb.so.2")
    resolver = LibraryResolver(search=[str(tmp_path)])
    found, missing = resolver.closure([str(tmp_path / "prog")])
    assert found == {
        "liba.so.1": str(tmp_path / "lib" / "liba.so.1"),
        "libb.so.2": str(tmp_path / "libb.so.2"),
    }
    assert missing == ["libnone.so.9"]


def test_ld_so_conf_includes(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "b.conf").write_text("/b\n# comment\n/a\n")
    (tmp_path / "conf.d" / "a.conf").write_text("/first  # trailing\n")
    main = tmp_path / "ld.so.conf"
    main.write_text("include conf.d/*.conf\n/last\n/a\n")
    assert ld_so_conf(str(main)) == ["/first", "/b", "/a", "/last"]
    assert ld_so_conf(str(tmp_path / "absent")) == []
