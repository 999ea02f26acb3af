"""Blobs: content-addressed files, each named by the sha256 of its bytes.

An OCI image is a few JSON documents and tar archives, stored as ``blobs/sha256/<hex>``. The
name is the hash of the content, so every read can be verified, and a layer used by ten
images is stored once. A blob appears under its name only when it is complete: it is written
to a temporary file in the same directory, hashed while written, fsync'ed, then renamed
(rename(2) is atomic), so a crash or a full disk never leaves half a blob behind a real name.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from types import TracebackType
from typing import IO, Any, Protocol

from pycont.errors import CorruptBlob, UsageError
from pycont.fsutil import fsync_dir

__all__ = [
    "BlobReader",
    "BlobStore",
    "BlobWriter",
    "CorruptBlob",
    "Readable",
    "check_digest",
    "sha256_of",
]


class Readable(Protocol):
    """A stream of bytes: a blob, an HTTP response, a gzip reader, a layer being hashed."""

    def read(self, n: int = -1, /) -> bytes: ...


DIGEST_RE = re.compile(r"sha256:([0-9a-f]{64})")
_CHUNK = 1 << 20


def check_digest(digest: str) -> str:
    """The hex part of a ``sha256:<hex>`` digest; UsageError for anything else."""
    m = DIGEST_RE.fullmatch(digest)
    if not m:
        raise UsageError(f"invalid digest {digest!r}: expected sha256:<64 hex digits>")
    return m.group(1)


class BlobWriter:
    """A file being written into the store; hashed as it goes. Use as a context manager:
    the blob is committed (``.digest`` set) when the block ends, discarded on an exception."""

    def __init__(self, directory: str, expected: str | None = None) -> None:
        self._dir = directory
        self._expected = expected
        fd, self._tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
        self._file: IO[bytes] | None = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0
        self.digest = ""

    def write(self, data: bytes | bytearray | memoryview) -> int:
        assert self._file is not None, "blob already committed"
        self._hash.update(data)
        self._file.write(data)
        n = len(data)
        self.size += n
        return n

    def flush(self) -> None:
        pass

    def commit(self) -> str:
        assert self._file is not None, "blob already committed"
        self._file.flush()
        os.fsync(self._file.fileno())  # the data on disk before its name is
        self._file.close()
        self._file = None
        digest = "sha256:" + self._hash.hexdigest()
        if self._expected is not None and digest != self._expected:
            os.unlink(self._tmp)
            raise CorruptBlob(
                f"content does not match its digest {self._expected}: it hashes to {digest}"
            )
        os.chmod(self._tmp, 0o444)
        # Replacing an existing blob is harmless (same name, same bytes) and heals one that was
        # corrupted on disk.
        os.replace(self._tmp, os.path.join(self._dir, digest.split(":", 1)[1]))
        fsync_dir(self._dir)
        self.digest = digest
        return digest

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if typ is None:
            self.commit()
        else:
            self.abort()


class BlobReader:
    """A blob opened for reading: hashed as it is read, checked when the end is reached."""

    def __init__(self, path: str, digest: str, size: int | None = None) -> None:
        self.digest = digest
        self.path = path
        self._expected_size = size
        try:
            self._file: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed by close()
        except FileNotFoundError:
            raise CorruptBlob(f"blob {digest} is missing from the store ({path})") from None
        self._hash = hashlib.sha256()
        self._size = 0
        self.verified = False

    def read(self, n: int = -1) -> bytes:
        data = self._file.read(n)
        if data:
            self._hash.update(data)
            self._size += len(data)
        elif n != 0:
            self._check()
        return data

    def _check(self) -> None:
        if self.verified:
            return
        actual = "sha256:" + self._hash.hexdigest()
        if actual != self.digest:
            raise CorruptBlob(
                f"blob {self.digest} is corrupt: its content hashes to {actual} "
                f"({self.path}); remove the image and build or pull it again"
            )
        if self._expected_size is not None and self._size != self._expected_size:
            raise CorruptBlob(
                f"blob {self.digest} has {self._size} bytes, its descriptor says "
                f"{self._expected_size}"
            )
        self.verified = True

    def verify(self) -> None:
        """Read what is left and check the digest: call it when a reader stopped early."""
        while self.read(_CHUNK):
            pass
        self._check()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BlobStore:
    """The ``blobs/sha256`` directory of an OCI image layout."""

    def __init__(self, root: str) -> None:
        self.dir = os.path.join(root, "blobs", "sha256")

    def path(self, digest: str) -> str:
        return os.path.join(self.dir, check_digest(digest))

    def exists(self, digest: str) -> bool:
        return os.path.isfile(self.path(digest))

    def size(self, digest: str) -> int:
        return os.path.getsize(self.path(digest))

    def writer(self, expected: str | None = None) -> BlobWriter:
        os.makedirs(self.dir, exist_ok=True)
        return BlobWriter(self.dir, expected)

    def put(self, data: bytes | IO[bytes], expected: str | None = None) -> str:
        """Store ``data`` (bytes or a readable stream); return its digest."""
        with self.writer(expected) as w:
            if isinstance(data, bytes | bytearray | memoryview):
                w.write(data)
            else:
                while chunk := data.read(_CHUNK):
                    w.write(chunk)
        return w.digest

    def open(self, digest: str, size: int | None = None) -> BlobReader:
        """Open a blob; reading it to the end verifies it (CorruptBlob if it does not match)."""
        return BlobReader(self.path(digest), digest, size)

    def read(self, digest: str) -> bytes:
        with self.open(digest) as r:
            data = r.read()
            r.verify()
        return data

    def read_json(self, digest: str) -> dict[str, Any]:
        from pycont.images.jsonlimits import loads

        try:
            doc = loads(self.read(digest))  # within the size and depth limits
        except ValueError as err:
            raise CorruptBlob(f"blob {digest} is not valid JSON: {err}") from None
        if not isinstance(doc, dict):
            raise CorruptBlob(f"blob {digest} is not a JSON object")
        return doc

    def put_json(self, doc: dict[str, Any]) -> tuple[str, int]:
        data = canonical_json(doc)
        return self.put(data), len(data)

    def digests(self) -> list[str]:
        if not os.path.isdir(self.dir):
            return []
        names = (f"sha256:{n}" for n in os.listdir(self.dir))
        return sorted(d for d in names if DIGEST_RE.fullmatch(d))

    def temporaries(self) -> list[str]:
        if not os.path.isdir(self.dir):
            return []
        return [os.path.join(self.dir, n) for n in os.listdir(self.dir) if n.startswith(".tmp-")]


def sha256_of(data: bytes) -> str:
    """The digest of ``data`` as OCI writes it: ``sha256:<64 hex digits>``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(doc: dict[str, Any]) -> bytes:
    """One byte form per document (sorted keys, no spaces): the same config, the same digest."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
