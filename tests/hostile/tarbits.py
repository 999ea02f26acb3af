"""Building tar streams entry by entry, including the ones tarfile will not write.

``tar_of`` takes :class:`E` entries (a tarfile.TarInfo and its data); ``raw`` writes a ustar
header by hand (tar(5): 512-byte blocks, octal fields, a checksum), for sizes, types and
sparse maps tarfile refuses to produce. Everything is bytes in memory: nothing here touches
the disk.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from dataclasses import dataclass, field

BLOCK = 512
END = b"\0" * (2 * BLOCK)  # tar(5): the end of an archive is two zero blocks


@dataclass
class E:
    """One entry: a header and, for regular files, its data."""

    info: tarfile.TarInfo
    data: bytes | None = None
    pax: dict[str, str] = field(default_factory=dict)


def _info(name: str, kind: bytes, **attrs: object) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime = kind, 0o755 if kind == tarfile.DIRTYPE else 0o644, 1_700_000_000
    for k, v in attrs.items():
        setattr(ti, k, v)
    return ti


def f(name: str, data: bytes = b"x", **attrs: object) -> E:
    return E(_info(name, tarfile.REGTYPE, size=len(data), **attrs), data)


def d(name: str, **attrs: object) -> E:
    return E(_info(name, tarfile.DIRTYPE, **attrs))


def sym(name: str, target: str) -> E:
    return E(_info(name, tarfile.SYMTYPE, linkname=target))


def link(name: str, target: str) -> E:
    return E(_info(name, tarfile.LNKTYPE, linkname=target))


def dev(name: str, kind: bytes = tarfile.CHRTYPE, major: int = 1, minor: int = 3) -> E:
    return E(_info(name, kind, devmajor=major, devminor=minor))


def fifo(name: str) -> E:
    return E(_info(name, tarfile.FIFOTYPE))


def pax(name: str, records: dict[str, str], data: bytes = b"x") -> E:
    """A file whose PAX records override its header (uid, mtime, path...)."""
    e = f(name, data)
    e.info.pax_headers = dict(records)
    return e


def tar_of(*entries: E, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for e in entries:
            t.addfile(e.info, io.BytesIO(e.data) if e.data is not None else None)
    return buf.getvalue()


def _octal(value: int, width: int) -> bytes:
    return f"{value:0{width - 1}o}".encode() + b"\0"


def _b256(value: int, width: int) -> bytes:
    """GNU base-256: the high bit of the first byte set, two's complement big-endian."""
    raw = (value % (1 << (8 * width))).to_bytes(width, "big")
    return bytes([raw[0] | 0x80]) + raw[1:]


def raw(
    name: str | bytes,
    size: int = 0,
    kind: bytes = b"0",
    *,
    linkname: str = "",
    uid: int = 0,
    mode: int = 0o644,
    magic: bytes = b"ustar\x0000",
    extra: dict[int, bytes] | None = None,
) -> bytes:
    """One ustar header block, with any field as given: negative or huge numbers go in
    base-256, ``extra`` overwrites bytes at an offset (a GNU sparse map, a bad checksum)."""
    h = bytearray(BLOCK)
    bname = name.encode() if isinstance(name, str) else name
    h[0 : len(bname[:100])] = bname[:100]
    h[100:108] = _octal(mode, 8)
    h[108:116] = _octal(uid, 8) if 0 <= uid < 8**7 else _b256(uid, 8)
    h[116:124] = _octal(0, 8)
    h[124:136] = _octal(size, 12) if 0 <= size < 8**11 else _b256(size, 12)
    h[136:148] = _octal(1_700_000_000, 12)
    h[148:156] = b" " * 8
    h[156:157] = kind
    h[157 : 157 + len(linkname[:100])] = linkname[:100].encode()
    h[257:265] = magic
    for at, value in (extra or {}).items():
        h[at : at + len(value)] = value
    if not (extra and 148 in extra):
        h[148:156] = f"{sum(h):06o}".encode() + b"\0 "
    return bytes(h)


def padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % BLOCK)


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def zeros_tar_gz(name: str, size: int) -> tuple[bytes, str]:
    """A gzip'd tar holding one file of ``size`` zero bytes, made in 1 MiB pieces, and the
    digest of the uncompressed tar (its diff_id): a compression bomb, ~1000:1."""
    header = tarfile.TarInfo(name)
    header.size, header.mtime = size, 1_700_000_000
    h = hashlib.sha256()
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) as z:
        chunk = header.tobuf(tarfile.PAX_FORMAT)
        z.write(chunk)
        h.update(chunk)
        left, zero = size + (-size % BLOCK) + len(END), bytes(1 << 20)
        while left:
            piece = zero[: min(left, len(zero))]
            z.write(piece)
            h.update(piece)
            left -= len(piece)
    return out.getvalue(), "sha256:" + h.hexdigest()
