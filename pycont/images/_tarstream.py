"""Reading an untrusted tar stream strictly: each header within the limits, the end where tar(5)
puts it, nothing after it.

Python's tarfile is lenient where an unpacker must not be: it takes garbage where a header
should be for the end of the archive, reads a PAX or GNU long-name record of any size into
memory, follows a chain of them by recursion, and hands back uids, times and sizes as large as
the fields can hold. :class:`StrictHeader` (given to ``tarfile.open(tarinfo=...)``) and
:class:`EntryCheck` close those gaps; the limits are :mod:`pycont.images.limits`.
"""

from __future__ import annotations

import math
import tarfile
from collections.abc import Callable
from tarfile import HeaderError, ReadError
from typing import Self, cast

from pycont.format import binary_size
from pycont.images.limits import MAX_SPECIAL, LayerLimits, how_to_raise

__all__ = ["EntryCheck", "StrictHeader", "garbage_after_end", "show"]

# tarfile's header errors, not in typeshed: which one says why a header could not be read
_EOF_HEADER = cast(type[Exception], getattr(tarfile, "EOFHeaderError"))  # noqa: B009
_EMPTY_HEADER = cast(type[Exception], getattr(tarfile, "EmptyHeaderError"))  # noqa: B009
# records that describe the next header, not a member (tar(5) "pax Interchange Format", GNU)
_SPECIAL = {tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE}
_SPECIAL |= {tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK}
_MAX_CHAIN = 16  # special records in a row before a member: real archives have one or two
_BLOCK = tarfile.BLOCKSIZE


def show(name: str, width: int = 80) -> str:
    """An entry's name for a one-line message: quoted, escaped, and cut if long."""
    text = repr(name)
    return text if len(text) <= width else f"{text[: width - 12]}…' ({len(name)} chars)"


class StrictHeader(tarfile.TarInfo):
    """Tells a whole archive from a cut one, and bounds what a header makes tarfile read.

    tarfile takes the end of the data, or garbage, where a header should be for the end of the
    archive; a tar ends with zero blocks (tar(5)), and anything else after the first member is
    an error here."""

    @classmethod
    def fromtarfile(cls, tarfile: tarfile.TarFile) -> Self:
        try:
            return super().fromtarfile(tarfile)
        except HeaderError as err:
            if tarfile.offset == 0 or isinstance(err, _EOF_HEADER):  # zero blocks: the end
                raise
            if isinstance(err, _EMPTY_HEADER):
                raise ReadError("truncated: it ends without the end-of-archive blocks") from None
            raise ReadError(f"broken header at byte {tarfile.offset}: {err}") from None

    # Sparse files (GNU type S, PAX GNU.sparse.*): tarfile reads their maps without a bound
    # before any check runs, and no image builder writes them. Refused, whatever the format.
    def _proc_sparse(self, tarfile: tarfile.TarFile) -> Self:
        raise ReadError(f"entry {self.name!r}: a sparse file (GNU tar) is not accepted in a layer")

    def _proc_gnusparse_00(self, *_args: object) -> None:
        raise ReadError(f"entry {self.name!r}: a sparse file (PAX) is not accepted in a layer")

    _proc_gnusparse_01 = _proc_gnusparse_10 = _proc_gnusparse_00

    def _proc_member(self, tarfile: tarfile.TarFile) -> Self:
        # tarfile reads a special record whole, then the header it describes by recursion.
        if self.size < 0:
            raise ReadError(f"broken header at byte {self.offset}: negative size {self.size}")
        if self.type not in _SPECIAL:
            return cast(Self, super()._proc_member(tarfile))  # type: ignore[misc]
        if self.size > MAX_SPECIAL:
            raise ReadError(
                f"broken header at byte {self.offset}: a PAX or long-name record of {self.size} "
                f"bytes (at most {MAX_SPECIAL})"
            )
        chain = getattr(tarfile, "_pycont_chain", 0) + 1
        if chain > _MAX_CHAIN:
            raise ReadError(
                f"broken header at byte {self.offset}: more than {_MAX_CHAIN} PAX or long-name "
                "records in a row"
            )
        setattr(tarfile, "_pycont_chain", chain)  # noqa: B010
        try:
            return cast(Self, super()._proc_member(tarfile))  # type: ignore[misc]
        finally:
            setattr(tarfile, "_pycont_chain", chain - 1)  # noqa: B010


class EntryCheck:
    """Checks each member of a layer against :class:`LayerLimits` before anything is made.

    ``refuse(entry, why)`` builds the error to raise. Counts the layer's uncompressed size:
    headers and data as they stream, a sparse file at its full size (what it unpacks to)."""

    def __init__(self, limits: LayerLimits, refuse: Callable[[str, str], Exception]) -> None:
        self.limits = limits
        self.refuse = refuse
        self.entries = 0
        self.size = 0

    def check(self, m: tarfile.TarInfo) -> None:
        lim, name = self.limits, m.name
        self.entries += 1
        if self.entries > lim.entries:
            raise self.refuse(name, f"more than {lim.entries} entries in the layer")
        if m.size < 0:
            raise self.refuse(name, f"negative size {m.size}")
        self.size = max(self.size, m.offset_data) + m.size
        if lim.size and self.size > lim.size:
            raise self.refuse(name, self.too_large())
        self.path(name, m.isdir())
        if m.issym() or m.islnk():
            n = len(m.linkname.encode("utf-8", "surrogateescape"))
            if n > lim.link_target_max:
                why = f"link target of {n} bytes (at most {lim.link_target_max}, PATH_MAX)"
                raise self.refuse(name, why)
            if m.islnk():
                self.path(m.linkname, False, name)
        for what, value in (("uid", m.uid), ("gid", m.gid)):
            if not 0 <= value <= lim.max_id:
                raise self.refuse(name, f"{what} {value} (accepted: 0 to {lim.max_id})")
        for what, value in (("device major", m.devmajor), ("device minor", m.devminor)):
            if not 0 <= value <= 0xFFFFFFFF:
                raise self.refuse(name, f"{what} {value} (accepted: 0 to {0xFFFFFFFF})")
        if not isinstance(m.mtime, int | float) or not math.isfinite(m.mtime):
            raise self.refuse(name, f"mtime {m.mtime!r} is not a number of seconds")
        if not 0 <= m.mtime <= lim.max_mtime:
            m.mtime = 0  # as containerd's boundTime: out of range is the epoch

    def path(self, path: str, isdir: bool, entry: str | None = None) -> None:
        lim, entry = self.limits, entry or path
        raw = path.encode("utf-8", "surrogateescape")
        if len(raw) > lim.path_max:
            raise self.refuse(entry, f"path of {len(raw)} bytes (at most {lim.path_max}, PATH_MAX)")
        parts = [p for p in raw.split(b"/") if p not in (b"", b".")]
        for part in parts:
            if len(part) > lim.name_max:
                why = f"a name of {len(part)} bytes in the path (at most {lim.name_max}, NAME_MAX)"
                raise self.refuse(entry, why)
        depth = len(parts) - (0 if isdir else 1)
        if depth > lim.depth:
            raise self.refuse(entry, f"{depth} directory levels (at most {lim.depth})")

    def too_large(self) -> str:
        return (
            f"the layer passes {binary_size(self.limits.size)} uncompressed "
            f"(limit {self.limits.size} bytes; {how_to_raise()})"
        )

    def trailer(self, tar: tarfile.TarFile) -> None:
        """After the end-of-archive block: only zeros until the end of the stream, counted
        against the size limit too."""

        def count(n: int) -> None:
            self.size += n
            if self.limits.size and self.size > self.limits.size:
                raise self.refuse("", self.too_large())

        at = garbage_after_end(tar, count)
        if at is not None:
            raise self.refuse("", f"data after the end of the archive (at byte {at})")


def garbage_after_end(tar: tarfile.TarFile, count: Callable[[int], None]) -> int | None:
    """The offset of the first non-zero byte after a tar's end-of-archive block, None if there
    is none. tar(1) pads an archive with zeros to its record size (tar(5)); anything else
    there (a second archive, garbage) is not part of the layer and would go unread.
    ``count(n)`` sees each chunk's length: it may raise to stop an endless stream."""
    pos = tar.offset + _BLOCK  # tarfile stopped on the first zero block, read whole
    assert tar.fileobj is not None
    while chunk := tar.fileobj.read(1 << 16):
        count(len(chunk))
        if chunk.count(0) != len(chunk):
            return pos + next(i for i, b in enumerate(chunk) if b)
        pos += len(chunk)
    return None
