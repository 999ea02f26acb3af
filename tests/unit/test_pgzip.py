"""Parallel gzip: one valid gzip member, the same bytes whatever the number of workers, bounded
memory, errors that reach the reader, no thread left behind."""

from __future__ import annotations

import gzip
import io
import os
import random
import struct
import subprocess
import tempfile
import threading
import zlib

import pytest

from pycont.images import _pgzip
from pycont.images._pgzip import BLOCK, ParallelGzip, deflate_block, gzip_header
from pycont.images.distribution import GZIP_LEVEL, GzipStream


def _mixed(size: int, seed: int) -> bytes:
    """Random and repetitive runs (as a tar of binaries and text), ``size`` bytes."""
    rng, out, got = random.Random(seed), [], 0
    while got < size:
        n = rng.randrange(1, 300_000)
        part = rng.randbytes(n) if rng.random() < 0.4 else (rng.randbytes(50) * (n // 50 + 1))[:n]
        out.append(part)
        got += n
    return b"".join(out)[:size]


def _compress(data: bytes, workers: int, read: int = 70_000) -> bytes:
    stream, out = ParallelGzip(io.BytesIO(data), GZIP_LEVEL, workers), []
    while part := stream.read(read):
        out.append(part)
    return b"".join(out)


def _threads(stream: ParallelGzip) -> set[threading.Thread]:
    assert stream._pool is not None
    return set(stream._pool._threads)


MIXED = _mixed(5_500_000, 14)


@pytest.mark.parametrize("size", [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, len(MIXED)])
def test_same_bytes_whatever_the_workers_and_a_valid_member(size: int) -> None:
    data = MIXED[:size]
    outs = {w: _compress(data, w) for w in (1, 2, 4)}
    assert outs[1] == outs[2] == outs[4]
    out = outs[1]
    assert gzip.decompress(out) == data
    # one member: header as specified, trailer = CRC-32 and ISIZE of the whole input
    assert out[:10] == b"\x1f\x8b\x08\x00\0\0\0\0\x04\xff" == gzip_header(GZIP_LEVEL)
    assert struct.unpack("<II", out[-8:]) == (zlib.crc32(data), size)
    d = zlib.decompressobj(-zlib.MAX_WBITS)
    assert d.decompress(out[10:-8]) == data and d.eof and d.unused_data == b""


def test_the_read_sizes_do_not_change_the_bytes() -> None:
    data = MIXED[: 3 * BLOCK + 5]
    assert _compress(data, 2, read=1) == _compress(data, 2, read=5_000_000)
    stream = GzipStream(io.BytesIO(data), workers=3)
    assert stream.read() == _compress(data, 1)  # read() with no size: everything


def test_the_system_gzip_reads_it() -> None:
    out = _compress(MIXED, 2)
    with tempfile.NamedTemporaryFile(prefix="pc-pgzip-", suffix=".gz") as f:
        f.write(out)
        f.flush()
        subprocess.run(["gzip", "-t", f.name], check=True)
        unzipped = subprocess.run(["zcat", f.name], check=True, capture_output=True).stdout
    assert unzipped == MIXED


def test_blocks_are_primed_with_the_input_before_them() -> None:
    """A block refers back into the one before it: priming keeps the ratio of one stream."""
    unit = os.urandom(20_000)
    data = unit * (2 * BLOCK // len(unit) + 1)
    second = data[BLOCK : 2 * BLOCK]
    primed = deflate_block(second, data[BLOCK - (32 << 10) : BLOCK], GZIP_LEVEL, False)
    assert len(primed) < len(deflate_block(second, b"", GZIP_LEVEL, False)) // 2
    assert len(_compress(data, 2)) < len(zlib.compress(data, GZIP_LEVEL)) * 1.05


class _Source:
    """A readable that counts what it gave."""

    def __init__(self, data: bytes) -> None:
        self.inner, self.given = io.BytesIO(data), 0

    def read(self, n: int = -1) -> bytes:
        part = self.inner.read(n)
        self.given += len(part)
        return part


def test_at_most_two_blocks_per_worker_are_in_flight() -> None:
    source = _Source(bytes(40 * BLOCK))
    stream = ParallelGzip(source, GZIP_LEVEL, workers=3)
    assert stream.read(1) == b"\x1f"
    # 2 x 3 in flight, plus the one read ahead (to know whether it is the last)
    assert source.given == (2 * 3 + 1) * BLOCK
    stream.read(100)
    assert source.given <= (2 * 3 + 2) * BLOCK
    stream.close()


def test_closing_early_joins_the_threads() -> None:
    stream = ParallelGzip(io.BytesIO(MIXED), GZIP_LEVEL, workers=4)
    stream.read(10_000)
    threads = _threads(stream)
    assert threads
    stream.close()
    assert not any(t.is_alive() for t in threads)
    with pytest.raises(ValueError, match="closed"):
        stream.read(1)


def test_the_threads_end_with_the_input() -> None:
    stream = ParallelGzip(io.BytesIO(MIXED[: 3 * BLOCK]), GZIP_LEVEL, workers=2)
    stream.read(1)
    threads = _threads(stream)
    while stream.read(1 << 20):
        pass
    assert not any(t.is_alive() for t in threads)


def test_a_workers_error_reaches_the_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def failing(data: bytes, primer: bytes, level: int, last: bool) -> bytes:
        calls.append(len(data))
        if len(calls) == 3:
            raise zlib.error("Error -2 while compressing data")
        return deflate_block(data, primer, level, last)

    monkeypatch.setattr(_pgzip, "deflate_block", failing)
    stream = ParallelGzip(io.BytesIO(MIXED), GZIP_LEVEL, workers=2)
    with pytest.raises(zlib.error, match="while compressing"):
        while stream.read(BLOCK):
            pass
    with pytest.raises(ValueError, match="closed"):  # it closed itself
        stream.read(1)


def test_a_source_error_reaches_the_reader_and_closes() -> None:
    class Broken:
        def read(self, n: int = -1) -> bytes:
            raise OSError(5, "Input/output error")

    stream = ParallelGzip(Broken(), GZIP_LEVEL, workers=2)
    with pytest.raises(OSError, match="Input/output"):
        stream.read(10)
    assert stream._pool is None


@pytest.mark.parametrize(("workers", "block"), [(0, BLOCK), (2, 0)])
def test_bad_settings_are_refused(workers: int, block: int) -> None:
    with pytest.raises(ValueError, match="must be at least 1"):
        ParallelGzip(io.BytesIO(b""), GZIP_LEVEL, workers, block)


def test_one_worker_per_cpu_this_process_may_use_at_most_four() -> None:
    assert _pgzip.default_workers() == min(len(os.sched_getaffinity(0)), 4)
    assert GzipStream(io.BytesIO(b"")).workers == _pgzip.default_workers()
