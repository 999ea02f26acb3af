"""Hostile layers, continued: long names, deep trees, bombs, and streams that are not whole.

The size cases assume the test's lowered limit, ``PYCONT_MAX_LAYER_SIZE=16m``
(:data:`LIMIT`): a bomb is refused at 16 MiB while it streams, whatever it would expand to.
"""

from __future__ import annotations

import tarfile

from tests.hostile.layers import C, LayerCase, R, _t
from tests.hostile.tarbits import END, d, f, gz, padded, pax, raw, sym, tar_of, zeros_tar_gz

LIMIT = 16 << 20
TOO_LARGE = "uncompressed"
SPARSE = "a sparse file .* is not accepted"


def names() -> list[LayerCase]:
    c = "long-name"
    deep255 = "/".join(["n" * 255] * 15)  # 3,839 bytes, each name at NAME_MAX
    return [
        LayerCase("name-255", c, C, _t(f("n" * 255))),
        LayerCase("name-256", c, R, _t(f("n" * 256)), "a name of 256 bytes"),
        LayerCase("name-300", c, R, _t(f("n" * 300)), "a name of 300 bytes"),
        LayerCase("name-300-dir", c, R, _t(d("n" * 300)), "a name of 300 bytes"),
        LayerCase("name-300-utf8", c, R, _t(f("é" * 150)), "a name of 300 bytes"),
        LayerCase("path-3839", c, C, _t(f(deep255))),
        LayerCase("path-4096", c, R, _t(f("/".join(["p" * 200] * 20) + "/" + "q" * 77)), "path of"),
        LayerCase("path-100k", c, R, _t(f("/".join(["p" * 99] * 1000))), "path of"),
        LayerCase(
            "gnu-longname-300",
            c,
            R,
            tar_of(f("g" * 300), fmt=tarfile.GNU_FORMAT),
            "a name of 300 bytes",
        ),
        LayerCase(
            "gnu-longlink-5000",
            c,
            R,
            tar_of(sym("l", "t" * 5000), fmt=tarfile.GNU_FORMAT),
            "link target of 5000",
        ),
        LayerCase(
            "gnu-longname-2mib",
            c,
            R,
            raw("././@LongLink", 2 << 20, b"L") + END,
            "long-name record",
        ),
        LayerCase(
            "gnu-longname-chain",
            c,
            R,
            b"".join(raw("././@LongLink", 4, b"L") + padded(b"aaa\0") for _ in range(40)) + END,
            "in a row",
        ),
        LayerCase(
            "pax-global-chain-3000",
            c,
            R,
            b"".join(raw("g", 12, b"g") + padded(b"12 comment=\n") for _ in range(3000)) + END,
            "in a row",
        ),
    ]


def depth() -> list[LayerCase]:
    c = "deep-nesting"
    return [
        LayerCase("depth-200", c, C, _t(f("d/" * 200 + "x"))),
        LayerCase("depth-512-dirs", c, C, _t(d("d/" * 512))),
        LayerCase("depth-513-dirs", c, R, _t(d("d/" * 513)), "513 directory levels"),
        LayerCase("depth-1100-dirs", c, R, _t(*[d("d/" * i) for i in range(1, 1101)]), "levels"),
        LayerCase("depth-1100-file", c, R, _t(f("d/" * 1100 + "x")), "1100 directory levels"),
        LayerCase(
            "depth-2000-dots", c, R, _t(f("./" * 1000 + "d/" * 600 + "x")), "600 directory levels"
        ),
    ]


def bombs() -> list[LayerCase]:
    c = "bomb"
    big, _ = zeros_tar_gz("zero", 64 << 20)
    many = gz(_t(*[f(f"f{i}", bytes(1 << 20)) for i in range(20)]))
    trailing = gz(_t(f("a")) + bytes(32 << 20))
    double = gz(gz(_t(f("z", bytes(32 << 20)))))
    sparse_map = b"".join(f"{v:011o}\0".encode() for v in (0, 512, 0, 0, 0, 0, 0, 0))
    sparse_real = f"{1 << 30:011o}\0".encode()
    sparse = raw("sparse", 512, b"S", extra={386: sparse_map, 483: sparse_real})
    # "isextended" (byte 482): a chain of extension blocks follows, here cut by the end
    sparse_cut = raw("sparse", 512, b"S", extra={386: sparse_map, 482: b"\1", 483: sparse_real})
    pax_sparse = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "p"}
    return [
        LayerCase("gzip-64mib-file", c, R, big, TOO_LARGE, gzip=True),
        LayerCase("gzip-20-files", c, R, many, TOO_LARGE, gzip=True),
        LayerCase("gzip-trailing-zeros", c, R, trailing, TOO_LARGE, gzip=True),
        LayerCase("gzip-in-gzip", c, R, double, TOO_LARGE, gzip=True),
        # Sparse members: tarfile reads their maps before any check, unbounded; all refused.
        LayerCase("gnu-sparse-1gib", c, R, sparse + padded(b"s") + END, SPARSE),
        LayerCase("gnu-sparse-chain-cut", c, R, sparse_cut, SPARSE),
        LayerCase("pax-sparse-1.0-huge-map", c, R, _t(pax("p", pax_sparse)), SPARSE),
        LayerCase("gzip-small-ok", c, C, gz(_t(f("z", bytes(1 << 20)))), gzip=True),
    ]


def streams() -> list[LayerCase]:
    c = "broken-stream"
    one = _t(f("a", b"hello"))
    return [
        LayerCase(
            "garbage-after-first", c, R, one[:1024] + b"garbage!" * 128 + END, "broken header"
        ),
        LayerCase("garbage-after-end", c, R, one + b"junk", "after the end of the archive"),
        LayerCase("second-tar-after-end", c, R, one + _t(f("b")), "after the end"),
        LayerCase("one-zero-block-then-garbage", c, R, one[:1024] + bytes(512) + b"x" * 512, ""),
        LayerCase("zeros-after-end", c, C, one + bytes(20480)),
        LayerCase("no-end-blocks", c, R, one[:1024], "truncated"),
        LayerCase("cut-in-data", c, R, _t(f("a", b"x" * 4000))[:2048], ""),
        LayerCase("cut-in-header", c, R, one[:1024] + one[512:700], ""),
        LayerCase(
            "bad-checksum", c, R, one[:1024] + raw("b", 0, extra={148: b"0000000\0"}) + END, ""
        ),
        LayerCase("zero-length", c, R, b"", ""),
        LayerCase("only-end-blocks", c, C, END),
        LayerCase("not-a-tar", c, R, b"this is not a tar archive\n" * 40, ""),
        LayerCase("zip-file", c, R, b"PK\x03\x04" + bytes(600), ""),
        LayerCase("gzip-cut", c, R, gz(one)[:30], "", gzip=True),
        LayerCase("gzip-garbage", c, R, b"\x1f\x8b\x08\x00" + b"\xff" * 600, "", gzip=True),
        LayerCase("duplicate-file", c, C, _t(f("a", b"1"), f("a", b"2"))),
        LayerCase("file-then-dir", c, C, _t(f("a"), d("a"), f("a/b"))),
        LayerCase("dir-then-file", c, C, _t(d("a"), f("a/b"), f("a"))),
        LayerCase("deep-dir-then-file", c, C, _t(f("a/" + "d/" * 300 + "x"), f("a"))),
        LayerCase("many-entries", c, C, _t(*[d(f"d{i}") for i in range(3000)])),
    ]
