"""Hostile layers: tar streams that try to write outside the layer, or to exhaust the machine.

Each case is a layer tar and what pycont must do with it: refuse it (one line, the store as it
was) or unpack it contained (inside the layer, nothing outside touched). ``canary`` is a
directory outside the store that absolute names and links aim at. The breakout cases follow
the scenarios of containerd's archive tests (symlinks and hard links up and out, whiteouts of
``..``), written again for a layer unpacked on its own into an empty directory.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass

from tests.hostile.tarbits import (
    END,
    E,
    d,
    dev,
    f,
    fifo,
    link,
    padded,
    pax,
    raw,
    sym,
    tar_of,
)

R, C = "refused", "contained"


@dataclass(frozen=True)
class LayerCase:
    id: str
    cls: str
    expect: str  # "refused" or "contained"
    tar: bytes  # the layer as stored: a plain tar, or gzip'd (gzip=True)
    match: str = ""  # a regular expression the refusal must contain
    gzip: bool = False


def _pax_link(name: str, target: str) -> E:
    """A symlink whose target is a PAX ``linkpath`` record (which may hold any byte)."""
    e = sym(name, "x")
    e.info.pax_headers = {"linkpath": target}
    return e


def _t(*entries: E) -> bytes:
    return tar_of(*entries)


def traversal(canary: str) -> list[LayerCase]:
    c = "traversal"
    return [
        LayerCase("dotdot", c, R, _t(f("../x")), r"leaves the layer root"),
        LayerCase("dotdot-deep", c, R, _t(f("../" * 12 + "etc/pycont-pwned")), "leaves"),
        LayerCase("dotdot-middle", c, R, _t(f("a/../../x")), "leaves"),
        LayerCase("dotdot-dot", c, R, _t(f("./../x")), "leaves"),
        LayerCase("dotdot-dir", c, R, _t(d("..")), "leaves"),
        LayerCase("dotdot-pax-path", c, R, _t(pax("ok", {"path": "../pax-out"})), "leaves"),
        LayerCase("absolute", c, R, _t(f("/etc/pycont-pwned")), "absolute"),
        LayerCase("absolute-canary", c, R, _t(f(f"{canary}/canary.txt", b"pwned")), "absolute"),
        LayerCase("absolute-dir", c, R, _t(d(canary + "/newdir")), "absolute"),
        LayerCase("root-as-file", c, R, _t(f("./", b"")), "root must be a directory"),
        LayerCase("three-dots", c, C, _t(d("..."), f(".../..x"), f("..x."))),
        LayerCase("dot-root-dir", c, C, _t(d("./"), f("./a"))),
        LayerCase("nul-in-pax-path", c, R, _t(pax("n", {"path": "a\0/../../x"})), ""),
    ]


def symlinks(canary: str) -> list[LayerCase]:
    c = "symlink"
    through = "goes through the symlink"
    return [
        LayerCase("sym-abs-then-file", c, R, _t(sym("e", canary), f("e/pwned")), through),
        LayerCase("sym-rel-then-file", c, R, _t(sym("e", "../" * 10), f("e/pwned")), through),
        LayerCase("sym-dot-loop", c, R, _t(sym("e", "."), f("e/e/x")), through),
        LayerCase("sym-self-loop", c, R, _t(sym("l", "l"), f("l/x")), through),
        LayerCase("sym-chain", c, R, _t(sym("a", "b"), sym("b", canary), f("a/pwned")), through),
        LayerCase("sym-then-dir", c, R, _t(sym("e", canary), d("e/sub")), through),
        LayerCase("sym-then-fifo", c, R, _t(sym("e", canary), fifo("e/p")), through),
        LayerCase("sym-then-symlink", c, R, _t(sym("e", canary), sym("e/l", "/")), through),
        LayerCase("sym-alone-abs", c, C, _t(sym("l", canary + "/canary.txt"))),
        LayerCase("sym-alone-up", c, C, _t(sym("l", "../../../../etc/shadow"))),
        LayerCase("sym-replaced-by-dir", c, C, _t(sym("e", canary), d("e"), f("e/x"))),
        LayerCase("sym-replaced-by-file", c, C, _t(sym("e", canary + "/canary.txt"), f("e"))),
        LayerCase("file-replaced-by-sym", c, C, _t(f("e"), sym("e", canary + "/canary.txt"))),
        LayerCase("sym-target-4095", c, C, _t(sym("l", "t" * 4095))),
        LayerCase("sym-target-4096", c, R, _t(sym("l", "t" * 4096)), "link target of 4096"),
        LayerCase("sym-target-5000", c, R, _t(sym("l", "t" * 5000)), "link target of 5000"),
        LayerCase("sym-target-nul", c, R, _t(_pax_link("l", "a\0b")), ""),
        LayerCase("sym-empty-name", c, R, _t(sym("", "/etc")), ""),
        # containerd: SymlinkAbsolute / SymlinkUpAndOut / SymlinkMultiple* / SymlinkEmptyFile
        LayerCase("cd-symlink-absolute", c, R, _t(d("etc"), sym("le", "/etc"), f("le/u")), ""),
        LayerCase(
            "cd-symlink-up-and-out",
            c,
            R,
            _t(d("etc"), d("dummy"), sym("le", "/dummy/../etc"), f("le/u")),
            through,
        ),
        LayerCase(
            "cd-symlink-multiple-absolute",
            c,
            R,
            _t(d("etc"), d("dummy"), sym("dummy/etc", "/etc"), f("dummy/etc/u")),
            through,
        ),
        LayerCase(
            "cd-symlink-empty-file",
            c,
            R,
            _t(d("etc"), f("etc/emptied", b"full"), sym("le", "/etc"), f("le/emptied", b"")),
            through,
        ),
        LayerCase("cd-symlink-parent-dir", c, R, _t(sym("..", "/etc/"), link("lp", "/etc/p")), ""),
        LayerCase(
            "cd-symlink-parent-relative",
            c,
            R,
            _t(sym("le/sub/..", "/etc/"), link("le/lp", "/etc/passwd")),
            "leaves",
        ),
        LayerCase(
            "cd-slash-ended-dir", c, C, _t(d("etc"), f("etc/p"), d("le/"), link("le/lp", "etc/p"))
        ),
    ]


def hardlinks(canary: str) -> list[LayerCase]:
    c = "hardlink"
    missing = "is not in the layer"
    return [
        LayerCase("hl-dotdot", c, R, _t(link("h", "../../etc/passwd")), "leaves"),
        LayerCase("hl-absolute", c, R, _t(link("h", "/etc/passwd")), "absolute"),
        LayerCase("hl-canary", c, R, _t(link("h", canary + "/canary.txt")), "absolute"),
        LayerCase("hl-later-entry", c, R, _t(link("h", "later"), f("later")), missing),
        LayerCase("hl-missing", c, R, _t(link("h", "nothing")), missing),
        LayerCase("hl-to-dir", c, R, _t(d("dir"), link("h", "dir")), "hard link to the directory"),
        LayerCase("hl-to-root", c, R, _t(link("h", ".")), "layer root"),
        LayerCase("hl-to-self", c, C, _t(f("a"), link("a", "a"))),
        LayerCase("hl-via-sym-dir", c, R, _t(sym("e", canary), link("h", "e/canary.txt")), "sym"),
        LayerCase("hl-to-sym-out", c, C, _t(sym("s", canary + "/canary.txt"), link("h", "s"))),
        LayerCase("hl-to-device", c, C, _t(dev("null"), link("n2", "null"))),
        LayerCase("hl-chain", c, C, _t(f("a"), link("b", "a"), link("c", "b"))),
        LayerCase("hl-target-long", c, R, _t(link("h", "t" * 5000)), "link target of 5000"),
        # containerd: HardlinkRelative / DownAndOut / Absolute / RelativeLong / Direct*
        LayerCase(
            "cd-hardlink-relative",
            c,
            R,
            _t(d("etc"), f("etc/p"), d("b"), sym("b/d1", "../../etc"), link("b/mp", "b/d1/p")),
            "sym",
        ),
        LayerCase(
            "cd-hardlink-down-and-out",
            c,
            R,
            _t(d("b"), d("dao"), sym("b/d1", "../dao/../../etc"), link("b/mp", "b/d1/passwd")),
            "sym",
        ),
        LayerCase(
            "cd-hardlink-absolute", c, R, _t(sym("le", "/etc"), link("lp", "le/passwd")), "sym"
        ),
        LayerCase(
            "cd-hardlink-relative-long",
            c,
            R,
            _t(sym("le", "../" * 7 + "etc"), link("lp", "le/passwd")),
            "sym",
        ),
        LayerCase("cd-hardlink-direct-relative", c, R, _t(link("lp", "../" * 5 + "etc/pw")), ""),
        LayerCase("cd-hardlink-direct-absolute", c, R, _t(link("lp", "/etc/passwd")), "absolute"),
        LayerCase(
            "cd-hardlink-symlink-before-target",
            c,
            C,
            _t(d("etc"), sym("lp", "/etc/passwd"), link("lp-dup", "lp"), f("etc/passwd")),
        ),
        LayerCase(
            "cd-hardlink-symlink-relative",
            c,
            C,
            _t(sym("pl", "../" * 5 + "etc/passwd"), link("lp", "pl")),
        ),
    ]


def whiteouts(canary: str) -> list[LayerCase]:
    c = "whiteout"
    return [
        LayerCase("wh-root-parent", c, R, _t(f(".wh...", b"")), "whiteout must name a file"),
        LayerCase("wh-parent", c, R, _t(d("etc"), f("etc/.wh...", b"")), "whiteout must name"),
        LayerCase("wh-root", c, R, _t(f(".wh..", b"")), "whiteout must name a file"),
        LayerCase("wh-empty", c, R, _t(f(".wh.", b"")), "whiteout must name a file"),
        LayerCase("wh-through-sym", c, R, _t(sym("e", canary), f("e/.wh.canary.txt")), "sym"),
        LayerCase("wh-opaque-through-sym", c, R, _t(sym("e", canary), f("e/.wh..wh..opq")), "sym"),
        LayerCase("wh-opaque-root", c, C, _t(f(".wh..wh..opq", b""))),
        LayerCase("wh-opaque-dir", c, C, _t(d("a"), f("a/.wh..wh..opq", b""), f("a/x"))),
        LayerCase("wh-aufs-meta", c, C, _t(d(".wh..wh.plnk"), f(".wh..wh.aufs", b""))),
        LayerCase("wh-of-earlier-file", c, C, _t(f("a"), f(".wh.a", b""))),
        LayerCase("wh-of-earlier-dir", c, C, _t(d("a"), f("a/b"), f(".wh.a", b""))),
        LayerCase("wh-with-data", c, C, _t(f(".wh.a", b"data" * 300))),
        LayerCase("wh-dirname", c, C, _t(f(".wh.etc/somefile", b"non-empty"))),
        LayerCase("wh-dot-dot-path", c, R, _t(f("dne/../.wh.etc", b"")), "leaves"),
        LayerCase("wh-char-0-0", c, C, _t(dev("gone", major=0, minor=0))),
        LayerCase("wh-sym-named", c, C, _t(sym(".wh.x", "/etc"))),
    ]


def nodes() -> list[LayerCase]:
    c = "special-file"
    return [
        LayerCase("dev-null", c, C, _t(d("dev"), dev("dev/null"))),
        LayerCase("dev-block", c, C, _t(dev("sda", tarfile.BLKTYPE, 8, 0))),
        LayerCase("dev-kmem", c, C, _t(dev("kmem", tarfile.CHRTYPE, 1, 2))),
        LayerCase("fifo", c, C, _t(fifo("p"))),
        LayerCase("fifo-then-file", c, C, _t(fifo("p"), f("p", b"replaced"))),
        LayerCase(
            "dev-major-huge",
            c,
            R,
            raw("dev", 0, b"3", extra={329: b"\x80" + b"\xff" * 7}) + END,
            "major",
        ),
        LayerCase("type-unknown", c, R, raw("u", 0, b"Z") + END, "unsupported tar entry type"),
        LayerCase("type-volume", c, R, raw("v", 0, b"V") + END, "unsupported"),
        LayerCase("type-contiguous", c, C, raw("c", 1, b"7") + padded(b"x") + END),
        LayerCase("setuid-file", c, C, _t(f("su", mode=0o4755))),
    ]


def numbers() -> list[LayerCase]:
    c = "pax-overflow"
    return [
        LayerCase("uid-2e40", c, R, _t(pax("u", {"uid": str(2**40)})), r"uid 1099511627776"),
        LayerCase("gid-2e40", c, R, _t(pax("g", {"gid": str(2**40)})), r"gid 1099511627776"),
        LayerCase("uid-minus-1", c, R, _t(pax("u", {"uid": str(2**32 - 1)})), "uid 4294967295"),
        LayerCase("uid-max", c, C, _t(pax("u", {"uid": str(2**32 - 2)}))),
        LayerCase("uid-base256-negative", c, R, raw("u", 0, uid=-5) + END, "uid -5"),
        LayerCase("mtime-inf", c, R, _t(pax("m", {"mtime": "inf"})), "mtime inf"),
        LayerCase("mtime-minus-inf", c, R, _t(pax("m", {"mtime": "-inf"})), "mtime -inf"),
        LayerCase("mtime-nan", c, R, _t(pax("m", {"mtime": "nan"})), "mtime nan"),
        LayerCase("mtime-1e30", c, C, _t(pax("m", {"mtime": "1e30"}))),
        LayerCase("mtime-negative", c, C, _t(pax("m", {"mtime": "-1e10"}))),
        LayerCase("mtime-dir-1e30", c, C, _t(d("d"), pax("d/m", {"mtime": "1e30"}))),
        LayerCase("size-pax-negative", c, R, _t(pax("s", {"size": "-1"})), ""),
        LayerCase("size-pax-huge", c, R, _t(pax("s", {"size": str(10**18)})), "uncompressed"),
        LayerCase("size-base256-negative", c, R, raw("s", -512) + END, "negative size"),
        LayerCase("size-header-100g", c, R, raw("s", 100 << 30) + b"\0" * 4096, "uncompressed"),
        LayerCase("pax-record-2mib", c, R, raw("././@PaxHeader", 2 << 20, b"x") + END, "PAX"),
        LayerCase(
            "pax-garbage-record", c, R, raw("h", 16, b"x") + padded(b"zz garbage\n") + END, ""
        ),
    ]
