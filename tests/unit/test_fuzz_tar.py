"""Property-based tests of the tar applier (pycont.images.layers.apply_layer), with hypothesis.

Random tar streams, built from random entries (names with ``..``, ``/``, ``.wh.`` markers and
over-long components; files, directories, symlinks aiming out of the root, hard links, fifos,
devices; odd owners, times and sizes), then sometimes cut, padded or corrupted, are applied
into a fresh directory that sits next to a canary. Whatever the stream, the applier returns or
raises LayerError (the documented refusal), and nothing outside its directory changes. The
number of examples is bounded so that the file runs in about 20 seconds.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pycont.errors import LayerError
from pycont.images.layers import apply_layer
from pycont.images.limits import LayerLimits
from tests.fuzz import EXAMPLES, FUZZ

# Fixed at import: the strategies aim absolute names and links at the canary.
SANDBOX = os.path.join(tempfile.gettempdir(), f"pc-fuzz-tar-{os.getpid()}")
CANARY = os.path.join(SANDBOX, "canary")
LIMITS = LayerLimits(size=1 << 20)  # a stream past 1 MiB must be refused while it streams

_COMPONENTS = st.sampled_from(
    ["a", "b", "c", "..", ".", "", "...", ".wh.a", ".wh..wh..opq", ".wh..", ".wh.", "n" * 256]
) | st.text(alphabet="abc./\\\0é", max_size=6)
_NAMES = st.lists(_COMPONENTS, min_size=1, max_size=5).map("/".join) | st.sampled_from(
    ["/etc/passwd", CANARY + "/canary.txt", CANARY + "/new", "../canary/new", "./"]
)
_TARGETS = _NAMES | st.sampled_from([CANARY, "../canary", "../../..", "/", "t" * 5000])
_KINDS = st.sampled_from(["file", "file", "dir", "sym", "sym", "link", "fifo", "chr", "blk"])


@st.composite
def _entry(draw: Any) -> tuple[tarfile.TarInfo, bytes | None]:
    kind = draw(_KINDS)
    ti = tarfile.TarInfo(draw(_NAMES))
    ti.mode = draw(st.sampled_from([0o644, 0o755, 0o4755, 0o000, 0o7777]))
    ti.uid = draw(st.sampled_from([0, 1000, 2**32 - 2]))
    ti.gid = draw(st.sampled_from([0, 1000, 65534]))
    ti.mtime = draw(st.sampled_from([0, 1_700_000_000, 2**33]))
    records = draw(
        st.dictionaries(
            st.sampled_from(["uid", "gid", "mtime", "size", "path", "linkpath"]),
            st.sampled_from(["-1", "inf", "nan", "1e30", str(2**40), "../x", "a\0b", "0"]),
            max_size=2,
        )
    )
    ti.pax_headers = records
    data: bytes | None = None
    if kind == "file":
        data = b"x" * draw(st.sampled_from([0, 1, 600, 3 << 19]))
        ti.size = len(data)
    elif kind == "dir":
        ti.type = tarfile.DIRTYPE
    elif kind in ("sym", "link"):
        ti.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
        ti.linkname = draw(_TARGETS)
    elif kind == "fifo":
        ti.type = tarfile.FIFOTYPE
    else:
        ti.type = tarfile.CHRTYPE if kind == "chr" else tarfile.BLKTYPE
        ti.devmajor, ti.devminor = draw(st.sampled_from([(0, 0), (1, 3), (8, 0)]))
    return ti, data


def _tar(entries: list[tuple[tarfile.TarInfo, bytes | None]], fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for ti, data in entries:
            try:
                t.addfile(ti, io.BytesIO(data) if data is not None else None)
            except (ValueError, UnicodeError):
                continue  # tarfile will not write it (a NUL in a ustar field...): leave it out
    return buf.getvalue()


@st.composite
def _streams(draw: Any) -> bytes:
    entries = draw(st.lists(_entry(), max_size=8))
    fmt = draw(st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT]))
    data = _tar(entries, fmt)
    damage = draw(st.sampled_from(["none", "none", "cut", "tail", "flip"]))
    if damage == "cut" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif damage == "tail":
        data += draw(st.binary(min_size=1, max_size=600))
    elif damage == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    return data


def _snapshot() -> dict[str, tuple[int, int, int]]:
    out = {}
    for top, dirs, files in os.walk(SANDBOX):
        dirs[:] = [d for d in dirs if not (top == SANDBOX and d.startswith("root"))]
        for name in dirs + files:
            st_ = os.lstat(os.path.join(top, name))
            out[os.path.join(top, name)] = (st_.st_mode, st_.st_size, st_.st_mtime_ns)
    return out


def _fresh_sandbox() -> None:
    """The sandbox as new for each example: a failure is not carried into the next one."""
    shutil.rmtree(SANDBOX, ignore_errors=True)
    os.makedirs(os.path.join(CANARY, "dir"))
    with open(os.path.join(CANARY, "canary.txt"), "w") as f:
        f.write("canary\n")


@pytest.fixture(scope="module", autouse=True)
def sandbox() -> Iterator[None]:
    yield
    shutil.rmtree(SANDBOX, ignore_errors=True)


def _apply(data: bytes) -> None:
    _fresh_sandbox()
    before = _snapshot()
    dest = tempfile.mkdtemp(prefix="root-", dir=SANDBOX)
    try:
        try:
            apply_layer(io.BytesIO(data), dest, limits=LIMITS)
        except LayerError as err:
            assert "\n" not in str(err)  # one line
        assert _snapshot() == before
        assert not os.path.lexists("/etc/pycont-fuzz")
        with open(os.path.join(CANARY, "canary.txt")) as f:
            assert f.read() == "canary\n"
    finally:
        shutil.rmtree(dest)


@settings(FUZZ, max_examples=max(EXAMPLES, 250))
@given(_streams())
def test_random_tar_streams_stay_inside_or_are_refused(data: bytes) -> None:
    _apply(data)


@settings(FUZZ, max_examples=max(EXAMPLES, 100))
@given(st.binary(max_size=3000))
def test_random_bytes_are_refused_not_crashed_on(data: bytes) -> None:
    _apply(data)


@settings(FUZZ, max_examples=max(EXAMPLES, 100))
@given(st.lists(st.tuples(st.integers(0, 1535), st.integers(0, 255)), max_size=12))
def test_corrupted_headers_are_refused_not_crashed_on(flips: list[tuple[int, int]]) -> None:
    """Bytes of the first three headers (names, modes, sizes, checksums...) overwritten."""
    entries = [(_plain("dir/"), None), (_plain("dir/f", 700), b"y" * 700)]
    good = bytearray(_tar(entries, tarfile.GNU_FORMAT))
    for at, value in flips:
        good[at] = value
    _apply(bytes(good))


def _plain(name: str, size: int = 0) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE if name.endswith("/") else tarfile.REGTYPE
    ti.size = size
    return ti
