"""The layer limits (pycont.images.limits) as the tar applier enforces them: each bound exactly
at its edge, times clamped as containerd clamps them, the size knob read from the environment,
and a refusal that names the entry, the limit and how to raise it."""

from __future__ import annotations

import io
import os
import re
import tarfile
import tempfile
from collections.abc import Iterator

import pytest

from pycont.errors import LayerError, UsageError
from pycont.images import limits
from pycont.images.layers import apply_layer
from pycont.images.limits import LayerLimits
from tests.helpers import requires

KB = 1024


def tar(*entries: tuple[str, bytes, dict[str, str]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data, pax in entries:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.pax_headers = len(data), 1_700_000_000, pax
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def dest() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="pc-limits-") as d:
        yield d


def test_out_of_range_mtimes_become_the_epoch(dest: str) -> None:
    apply_layer(
        io.BytesIO(tar(("far", b"", {"mtime": "1e30"}), ("old", b"", {"mtime": "-9"}))), dest
    )
    assert os.lstat(os.path.join(dest, "far")).st_mtime == 0
    assert os.lstat(os.path.join(dest, "old")).st_mtime == 0


def test_a_time_that_is_not_a_number_is_refused(dest: str) -> None:
    with pytest.raises(LayerError, match=r"refusing entry 'x': mtime nan"):
        apply_layer(io.BytesIO(tar(("x", b"", {"mtime": "nan"}))), dest)


@requires("root")  # chown(2) to any uid
def test_the_largest_uid_is_kept_and_one_more_is_refused(dest: str) -> None:
    apply_layer(io.BytesIO(tar(("u", b"", {"uid": str(2**32 - 2)}))), dest)
    assert os.lstat(os.path.join(dest, "u")).st_uid == 2**32 - 2
    with pytest.raises(LayerError, match=r"uid 4294967295 \(accepted: 0 to 4294967294\)"):
        apply_layer(io.BytesIO(tar(("v", b"", {"uid": str(2**32 - 1)}))), dest)


def test_limits_are_exact_at_their_edge(dest: str) -> None:
    small = LayerLimits(name_max=8, path_max=20, depth=2, entries=3)
    apply_layer(
        io.BytesIO(tar(("a" * 8, b"", {}), ("b/c/" + "d" * 8, b"", {}))), dest, limits=small
    )
    for name, why in (
        ("a" * 9, "a name of 9 bytes in the path (at most 8, NAME_MAX)"),
        ("b/c/d/e", "3 directory levels (at most 2)"),
        ("p/" * 10 + "q", "path of 21 bytes (at most 20, PATH_MAX)"),
    ):
        with pytest.raises(LayerError, match=f"refusing entry .*: {re.escape(why)}"):
            apply_layer(io.BytesIO(tar((name, b"", {}))), dest, limits=small)
    four = tar(*[(f"f{i}", b"", {}) for i in range(4)])
    with pytest.raises(LayerError, match="refusing entry 'f3': more than 3 entries"):
        apply_layer(io.BytesIO(four), dest, limits=small)


def test_the_size_limit_comes_from_the_environment(
    dest: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = tar(("big", b"x" * (3 * KB), {}))
    monkeypatch.setenv(limits.MAX_LAYER_SIZE_ENV, "2k")
    with pytest.raises(LayerError) as err:
        apply_layer(io.BytesIO(layer), dest)
    assert "refusing entry 'big': the layer passes 2KiB uncompressed" in str(err.value)
    assert "--max-layer-size or PYCONT_MAX_LAYER_SIZE" in str(err.value)
    monkeypatch.setenv(limits.MAX_LAYER_SIZE_ENV, "0")  # no limit
    assert apply_layer(io.BytesIO(layer), dest).files == 1
    monkeypatch.setenv(limits.MAX_LAYER_SIZE_ENV, "lots")
    with pytest.raises(UsageError, match="PYCONT_MAX_LAYER_SIZE"):
        limits.max_layer_size()
    monkeypatch.delenv(limits.MAX_LAYER_SIZE_ENV)
    assert limits.max_layer_size() == limits.DEFAULT_MAX_LAYER_SIZE == 8 << 30


def test_the_flag_is_checked_then_exported(monkeypatch: pytest.MonkeyPatch) -> None:
    # setenv first: delenv of an unset variable records nothing to restore (pytest's monkeypatch)
    monkeypatch.setenv(limits.MAX_LAYER_SIZE_ENV, "1")
    monkeypatch.delenv(limits.MAX_LAYER_SIZE_ENV)
    with pytest.raises(UsageError, match="--max-layer-size"):
        limits.set_max_layer_size("ten")
    assert limits.MAX_LAYER_SIZE_ENV not in os.environ
    limits.set_max_layer_size("32g")
    assert limits.max_layer_size() == 32 << 30


def test_zeros_after_the_end_are_padding_anything_else_is_refused(dest: str) -> None:
    layer = tar(("a", b"hi", {}))
    apply_layer(io.BytesIO(layer + bytes(4 * KB)), dest)
    with pytest.raises(
        LayerError, match=rf"data after the end of the archive \(at byte {len(layer) + 7}\)"
    ):
        apply_layer(io.BytesIO(layer + bytes(7) + b"!"), dest)


def test_padding_counts_against_the_size_limit(dest: str) -> None:
    layer = tar(("a", b"hi", {})) + bytes(64 * KB)
    with pytest.raises(LayerError, match="the layer passes 32KiB uncompressed"):
        apply_layer(io.BytesIO(layer), dest, limits=LayerLimits(size=32 * KB))


def _gnu_sparse_tar() -> bytes:
    """A GNU old-format sparse member (typeflag S), which tarfile cannot write: a GNU header
    with its type changed and its checksum made again (tar(5))."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        ti = tarfile.TarInfo("holes")
        ti.size = 0
        t.addfile(ti)
    raw = bytearray(buf.getvalue())
    raw[156:157] = b"S"
    raw[148:156] = b" " * 8
    raw[148:156] = b"%06o\0 " % sum(raw[:512])
    return bytes(raw)


def test_sparse_files_are_refused_in_every_format(dest: str) -> None:
    # tarfile reads a sparse map before any check could run, without a bound: refused.
    with pytest.raises(LayerError, match=r"'holes': a sparse file \(GNU tar\) is not accepted"):
        apply_layer(io.BytesIO(_gnu_sparse_tar()), dest)
    pax = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "holes"}
    with pytest.raises(LayerError, match=r"a sparse file \(PAX\) is not accepted"):
        apply_layer(io.BytesIO(tar(("x", b"", pax))), dest)
    pax = {"GNU.sparse.offset": "0", "GNU.sparse.numbytes": "0", "GNU.sparse.size": "9"}
    with pytest.raises(LayerError, match=r"a sparse file \(PAX\) is not accepted"):
        apply_layer(io.BytesIO(tar(("y", b"", pax))), dest)
    assert os.listdir(dest) == []
