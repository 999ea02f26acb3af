"""Parallel gzip: a layer cut into fixed blocks, each deflated on its own core, one gzip member.

Deflate (RFC 1951) is a sequence of blocks; a block ended with ``Z_SYNC_FLUSH`` stops on a byte
boundary without the "final" bit, so raw deflate streams compressed separately and concatenated
are one valid stream, provided only the last one is ended with ``Z_FINISH``. Each block is primed
with the last 32 KiB of the input before it (``deflateSetDictionary``, the window deflate may
refer back into), so the ratio stays close to one-thread zlib: pigz's scheme, which podman's
``pgzip`` also follows. The gzip wrapper (RFC 1952) is written here: its CRC-32 runs over the
input in order, on the reading thread, while the workers compress.

The blocks have a fixed size, not one that depends on the number of cores, so a layer gives the
same bytes (the same digest) on every machine. zlib releases the GIL while it compresses, so
threads suffice. The input is read on the caller's thread only (its reads may report progress,
which draws on that thread); the workers only compress, and stop with :meth:`ParallelGzip.close`
or once the input is exhausted.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from pycont.images.blobs import Readable

__all__ = ["BLOCK", "MAX_WORKERS", "ParallelGzip", "default_workers"]

BLOCK = 1 << 20  # input bytes per deflate block: pigz's default is 128 KiB, pgzip's 1 MiB
MAX_WORKERS = 4  # beyond that a single upload connection, not zlib, is the bottleneck
_WINDOW = 32 << 10  # deflate's window (RFC 1951 section 2.2): the most a block refers back
_OS_UNKNOWN = 255  # RFC 1952 "OS" byte: fixed, so the bytes do not depend on the machine


def default_workers() -> int:
    """The CPUs this process may run on (sched_getaffinity(2), as Go's runtime.NumCPU that
    podman's pgzip sizes itself by), at most ``MAX_WORKERS``."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cpus or 1, MAX_WORKERS))


def gzip_header(level: int) -> bytes:
    """RFC 1952 member header: magic, CM=8 (deflate), no flags (no name, no comment), MTIME 0,
    XFL as zlib writes it (2: level 9, "maximum compression"; 4: level 1, "fastest")."""
    xfl = 2 if level == 9 else 4 if level == 1 else 0
    return b"\x1f\x8b\x08\x00" + struct.pack("<IBB", 0, xfl, _OS_UNKNOWN)


def deflate_block(data: bytes, primer: bytes, level: int, last: bool) -> bytes:
    """One block as raw deflate (wbits -15: no zlib header), primed with the input before it."""
    if primer:
        z = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, zdict=primer)
    else:  # the first block: zdict=b"" is refused by zlib
        z = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return z.compress(data) + z.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


class ParallelGzip:
    """``inner`` read as one gzip member, compressed by ``workers`` threads, ``BLOCK`` at a time.

    At most ``2 x workers`` blocks are in flight (read, not yet returned), so memory stays about
    ``workers x 2 x block``. A worker's error is raised by :meth:`read`. Threads start at the first
    read and are gone when the input is exhausted or :meth:`close` is called (at most the blocks
    being compressed finish first: a few milliseconds each)."""

    def __init__(
        self, inner: Readable, level: int, workers: int | None = None, block: int = BLOCK
    ) -> None:
        if block < 1:
            raise ValueError(f"gzip block size {block}: must be at least 1 byte")
        self.inner, self.level, self.block = inner, level, block
        self.workers = workers if workers is not None else default_workers()
        if self.workers < 1:
            raise ValueError(f"gzip workers {self.workers}: must be at least 1")
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[Future[bytes]] = deque()
        self._out = bytearray(gzip_header(level))
        self._next: bytes | None = None  # the block read ahead (to know which one is last)
        self._primer = b""
        self._crc, self._size = 0, 0
        self._read_all = False  # the last block is submitted
        self._done = False  # the trailer is in _out
        self._closed = False

    def read(self, n: int = -1) -> bytes:
        if self._closed:
            raise ValueError("read of a closed gzip stream")
        want = n if n >= 0 else 1 << 62
        try:
            while len(self._out) < want and not self._done:
                self._fill()
                if self._pending:
                    self._out += self._pending.popleft().result()
                elif self._read_all:
                    self._out += struct.pack("<II", self._crc, self._size & 0xFFFFFFFF)
                    self._done = True
                    self._stop()
            self._fill()  # keep the workers busy while the caller sends what it got
        except BaseException:
            self.close()
            raise
        out = bytes(self._out[:want])
        del self._out[:want]
        return out

    def close(self) -> None:
        """Stop: blocks not yet started are dropped, the threads are joined."""
        self._closed = True
        self._stop()
        self._pending.clear()
        self._out.clear()

    def __enter__(self) -> ParallelGzip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fill(self) -> None:
        """Read and submit blocks until ``2 x workers`` are in flight or the input ends."""
        while not self._read_all and len(self._pending) < 2 * self.workers:
            data = self._next if self._next is not None else self._read_block()
            self._next = self._read_block() if data else b""
            last = not self._next
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="pycont-gzip")
            self._pending.append(
                self._pool.submit(deflate_block, data, self._primer, self.level, last)
            )
            # the next block's dictionary: the last 32 KiB of the input so far
            self._primer = (
                data[-_WINDOW:] if len(data) >= _WINDOW else (self._primer + data)[-_WINDOW:]
            )
            self._read_all = last

    def _read_block(self) -> bytes:
        """The next ``block`` bytes of the input (fewer only at its end), with CRC and size."""
        parts, got = [], 0
        while got < self.block:
            part = self.inner.read(self.block - got)
            if not part:
                break
            parts.append(part)
            got += len(part)
        data = b"".join(parts)
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        return data

    def _stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
