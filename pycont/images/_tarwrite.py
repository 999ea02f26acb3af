"""Writing tar archives deterministically: the same entries give the same bytes everywhere.

Nothing from the machine leaks into the archive (no user names, no current time, no order of
directory listings), so a layer's digest depends on its content alone.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Protocol, cast

from pycont.images import whiteouts as wh

__all__ = ["XATTR_PAX", "Entry", "TarStats", "Writable", "keep_xattr", "write_tar"]

XATTR_PAX = "SCHILY.xattr."  # how GNU tar and docker store xattrs in PAX headers


def keep_xattr(name: str) -> bool:
    # File capabilities (ping's cap_net_raw) and user.* belong to the file; overlay's own
    # metadata never does (whiteouts.is_overlay_xattr), and other namespaces are host policy.
    return not wh.is_overlay_xattr(name) and (
        name == "security.capability" or name.startswith("user.")
    )


class Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


@dataclass
class TarStats:
    """What an archive holds (counted while it is written or unpacked)."""

    entries: int = 0
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    whiteouts: int = 0
    opaque: int = 0
    size: int = 0  # bytes of file content


@dataclass(frozen=True)
class Entry:
    """One member of a layer tar: its metadata and where its content comes from."""

    name: str
    type: bytes  # tarfile.REGTYPE, DIRTYPE, SYMTYPE, LNKTYPE, FIFOTYPE, CHRTYPE, BLKTYPE
    mode: int
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    linkname: str = ""
    data: bytes | None = None  # content of a regular file, or...
    source: str | None = None  # ...the path to read it from
    size: int = 0
    xattrs: tuple[tuple[str, bytes], ...] = ()
    rdev: int = 0  # a device node's number (st_rdev)


def write_tar(entries: Iterable[Entry], out: Writable) -> TarStats:
    """Write ``entries`` as a PAX tar, in the order given, with numeric owners only.

    Nothing from the machine leaks in (no user names, no current time), so the same entries
    give the same bytes, hence the same digest, on every machine."""
    stats = TarStats()
    with tarfile.open(fileobj=cast(IO[bytes], out), mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type = e.type
            info.mode = e.mode
            info.uid, info.gid = e.uid, e.gid
            info.uname = info.gname = ""
            info.mtime = e.mtime
            info.linkname = e.linkname
            if e.type in (tarfile.CHRTYPE, tarfile.BLKTYPE):
                info.devmajor, info.devminor = os.major(e.rdev), os.minor(e.rdev)
            if e.xattrs:
                info.pax_headers = {
                    XATTR_PAX + k: v.decode("utf-8", "surrogateescape") for k, v in e.xattrs
                }
            stats.entries += 1
            base = e.name.rpartition("/")[2]
            if base == wh.OPAQUE_MARKER:
                stats.opaque += 1
            elif base.startswith(wh.WHITEOUT_PREFIX):
                stats.whiteouts += 1
            elif e.type == tarfile.REGTYPE:
                stats.files += 1
            if e.type == tarfile.REGTYPE:
                if e.source is not None:
                    info.size = e.size
                    with open(e.source, "rb") as f:
                        tar.addfile(info, f)
                else:
                    data = e.data or b""
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                stats.size += info.size
                continue
            stats.dirs += e.type == tarfile.DIRTYPE
            stats.symlinks += e.type == tarfile.SYMTYPE
            stats.hardlinks += e.type == tarfile.LNKTYPE
            tar.addfile(info)
    return stats
