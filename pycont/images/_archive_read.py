"""Reading an image archive: every member once, in one pass, nothing extracted to disk.

Small members stay in memory, large ones go straight into the load's staging
(:mod:`pycont.images.staging`) under the hash of their content; a member name that could
leave the archive, a duplicate, a device or a cut-off tar is refused with the member's name.
Loading (:mod:`pycont.images._archive_load`) then checks the members against the digests the
archive's documents name.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import posixpath
import tarfile
import zlib
from dataclasses import dataclass
from typing import IO, Any, cast

from pycont.errors import ArchiveError
from pycont.images import jsonlimits
from pycont.images._archive_common import CHUNK, hex_of
from pycont.images._tarstream import StrictHeader, garbage_after_end, show
from pycont.images.blobs import DIGEST_RE, sha256_of
from pycont.images.limits import MAX_ENTRIES, how_to_raise, max_layer_size
from pycont.images.staging import StagedBlobs

__all__ = ["ArchiveReader", "Member"]

_IN_MEMORY = 1 << 20  # members up to this size are kept in memory while the archive is read...
_MEMORY_BUDGET = 64 << 20  # ...until they add up to this; the rest goes to the staging


@dataclass(frozen=True)
class Member:
    """A member of the archive read: in memory, or stored as the blob ``digest``."""

    member: str
    digest: str
    size: int
    head: bytes  # its first bytes: what compression it has
    data: bytes | None = None


class ArchiveReader:
    """The members of an archive, read in one pass without extracting anything. Large
    members are written to ``blobs``: a staging's, which finds the store's blobs too."""

    def __init__(self, name: str, blobs: StagedBlobs) -> None:
        self.name = name
        self.blobs = blobs
        self.files: dict[str, Member] = {}
        self.links: dict[str, str] = {}  # member -> the member it links to
        self.in_memory = 0
        self.members = 0
        self.trailer = 0  # bytes read after the end-of-archive block
        # No member may be larger than a layer may (a layer member is one, and a config or
        # manifest is far smaller): a compressed archive's bomb stops on its header.
        self.max_member = max_layer_size()

    def error(self, what: str) -> ArchiveError:
        return ArchiveError(f"{self.name}: {what}")

    # -- reading the outer tar ----------------------------------------------------------
    def read(self, f: IO[bytes]) -> None:
        try:
            with tarfile.open(fileobj=f, mode="r|*", tarinfo=StrictHeader) as tar:
                while (m := tar.next()) is not None:
                    getattr(tar, "members").clear()  # noqa: B009 (else a stream keeps all)
                    self.add(tar, m)
                at = garbage_after_end(tar, self.count_trailer)
                if at is not None:
                    raise self.error(f"data after the end of the archive (at byte {at})")
        except tarfile.ReadError as err:
            text = str(err)
            if text == "empty file":
                raise self.error("empty file, not an image archive") from None
            if text.startswith(("truncated", "broken")) or "end of data" in text:
                raise self.error(f"truncated or broken archive: {text}") from None
            raise self.error(f"not a tar archive ({text})") from None
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
            raise self.error(f"truncated or broken archive: {err}") from None
        except (ValueError, OverflowError, RecursionError) as err:  # a header tarfile chokes on
            raise self.error(f"broken archive: {type(err).__name__}: {err}") from None

    def count_trailer(self, n: int) -> None:
        self.trailer += n
        if self.max_member and self.trailer > self.max_member:
            raise self.error(f"more than {self.max_member} bytes after the end of the archive")

    def path(self, name: str, member: str) -> str:
        """A member name made relative and normal; refused if it could leave the archive."""
        if name.startswith("/") or "\0" in name:
            raise self.error(f"refusing member {show(member)}: absolute path or NUL byte")
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise self.error(f"refusing member {show(member)}: {show(name)} leaves the archive")
        return "/".join(parts)

    def add(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        self.members += 1
        if self.members > MAX_ENTRIES:
            raise self.error(f"more than {MAX_ENTRIES} members: not an image archive")
        if self.max_member and m.size > self.max_member:
            raise self.error(
                f"refusing member {show(m.name)}: {m.size} bytes, more than a layer may hold "
                f"({self.max_member}; {how_to_raise()})"
            )
        path = self.path(m.name, m.name)
        if m.isdir():
            return
        if path in self.files or path in self.links:
            raise self.error(f"refusing member {show(m.name)}: it appears twice")
        if m.issym():  # podman's docker-archive: <layer id>/layer.tar -> ../<diff_id>.tar
            target = posixpath.normpath(posixpath.join(posixpath.dirname(path), m.linkname))
            self.links[path] = self.path(target, m.name)
        elif m.islnk():
            self.links[path] = self.path(m.linkname, m.name)
        elif m.isreg():
            self.files[path] = self.content(tar, m, path)
        else:
            raise self.error(
                f"refusing member {show(m.name)}: an image archive holds only files and links"
            )

    def content(self, tar: tarfile.TarFile, m: tarfile.TarInfo, path: str) -> Member:
        src = tar.extractfile(m)
        assert src is not None
        parts = path.split("/")
        named = f"sha256:{parts[2]}" if len(parts) == 3 and parts[:2] == ["blobs", "sha256"] else ""
        if named and not DIGEST_RE.fullmatch(named):
            raise self.error(f"refusing member {show(m.name)}: not a sha256 blob name")
        if not named and m.size <= _IN_MEMORY and self.in_memory + m.size <= _MEMORY_BUDGET:
            data = src.read()
            self.in_memory += len(data)
            return Member(path, sha256_of(data), len(data), data[:8], data)
        head, size, h = b"", 0, hashlib.sha256()
        # An OCI blob already in the store is hashed, not written again.
        writer = None if named and self.blobs.exists(named) else self.blobs.writer()
        try:
            while chunk := src.read(CHUNK):
                head = head or chunk[:8]
                size += len(chunk)
                h.update(chunk)
                if writer is not None:
                    writer.write(chunk)
            digest = "sha256:" + h.hexdigest()
            if named and digest != named:
                raise self.error(f"blob {show(m.name)} is corrupt: its content hashes to {digest}")
            if writer is not None:
                writer.commit()
        finally:
            if writer is not None and not writer.digest:
                writer.abort()
        return Member(path, digest, size, head)

    # -- finding and using members ------------------------------------------------------
    def get(self, path: str, what: str) -> Member:
        seen: list[str] = []
        while path in self.links and path not in seen and len(seen) < 16:
            seen.append(path)
            path = self.links[path]
        found = self.files.get(path)
        if found is None:
            raise self.error(f"{what} {path!r} is missing from the archive")
        return found

    def read_bytes(self, item: Member) -> bytes:
        if item.data is not None:
            return item.data
        return self.blobs.read(item.digest)

    def json(self, item: Member, what: str) -> Any:
        try:
            return jsonlimits.loads(self.read_bytes(item))  # size and depth limits
        except ValueError as err:
            raise self.error(f"{what} {item.member!r} is not valid JSON: {err}") from None

    def blob(self, desc: Any, what: str) -> Member:
        """The blob an OCI descriptor names, its size checked (its digest was, on reading)."""
        digest = desc.get("digest") if isinstance(desc, dict) else None
        if not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest):
            raise self.error(f"{what}: invalid descriptor {desc!r}")
        item = self.get(f"blobs/sha256/{hex_of(digest)}", f"{what} {digest}:")
        if desc.get("size") != item.size:
            raise self.error(
                f"{what} {digest}: {item.size} bytes, its descriptor says {desc.get('size')}"
            )
        return item

    def stored(self, item: Member) -> str:
        """Put a member kept in memory into the staging; its digest."""
        if item.data is not None and not self.blobs.exists(item.digest):
            self.blobs.put(item.data, item.digest)
        return item.digest

    def diff_id(self, item: Member, gzipped: bool, what: str) -> str:
        """The digest of the layer's uncompressed tar: what an image config lists."""
        if not gzipped:
            return item.digest
        h = hashlib.sha256()
        try:
            source = (
                io.BytesIO(item.data) if item.data is not None else self.blobs.open(item.digest)
            )
            with source, gzip.GzipFile(fileobj=cast(IO[bytes], source), mode="rb") as z:
                size = 0
                while chunk := z.read(CHUNK):
                    h.update(chunk)
                    size += len(chunk)
                    if self.max_member and size > self.max_member:  # a gzip bomb
                        raise self.error(
                            f"{what} {show(item.member)}: more than {self.max_member} bytes "
                            f"uncompressed ({how_to_raise()})"
                        )
        except (OSError, EOFError, zlib.error) as err:
            raise self.error(f"{what} {item.member!r} is not valid gzip: {err}") from None
        return "sha256:" + h.hexdigest()
