"""Pure logic of the registry client: deterministic gzip, messages, manifests, the metadata."""

from __future__ import annotations

import functools
import gzip
import io
import json
import os
import tempfile
import threading

import pytest

from pycont.fsutil import remove_tree
from pycont.images import oci
from pycont.images._parallel import run_parallel
from pycont.images.blobs import sha256_of
from pycont.images.distribution import (
    GzipStream,
    Metadata,
    corrupt_message,
    cut_off_message,
    docker_manifest,
    local_manifest,
)
from pycont.images.progress import Progress, RecordingProgress


def _gzip(data: bytes, workers: int = 2, read: int = 7000) -> bytes:
    stream = GzipStream(io.BytesIO(data), workers)
    out = b""
    while part := stream.read(read):
        out += part
    return out


def test_gzip_is_deterministic_and_round_trips() -> None:
    data = os.urandom(300_000) + b"\0" * 2_000_000
    a, b = _gzip(data), _gzip(data, workers=1, read=1 << 20)
    assert a == b  # the same bytes whatever the read sizes and the workers
    assert gzip.decompress(a) == data
    # RFC 1952 header: magic, deflate, no FNAME/FCOMMENT flag, MTIME 0
    assert a[:4] == b"\x1f\x8b\x08\x00" and a[4:8] == b"\0\0\0\0"
    assert len(a) < len(data) // 3


def test_gzip_of_nothing_is_a_valid_member() -> None:
    assert gzip.decompress(_gzip(b"")) == b""


def test_messages_tell_cut_off_from_corrupt() -> None:
    d = "sha256:" + "ab" * 32
    assert cut_off_message(d, 20_100_000, 216_000_000) == (
        f"blob {d}: the connection closed after 20.1MB of 216MB (the registry went away?); "
        "pull again to retry"
    )
    assert corrupt_message(d, "sha256:" + "cd" * 32, 1234) == (
        f"blob {d} is corrupt: all 1.23kB arrived but they hash to sha256:{'cd' * 32}"
        "; the registry's copy is damaged (pulling again will not help)"
    )


def test_docker_manifest_names_gzip_layers() -> None:
    cfg = {"digest": "sha256:" + "1" * 64, "size": 10}
    layers = [{"digest": "sha256:" + "2" * 64, "size": 20}]
    data, media = docker_manifest(cfg, layers)
    assert media == oci.DOCKER_MANIFEST
    assert json.loads(data) == {
        "schemaVersion": 2,
        "mediaType": oci.DOCKER_MANIFEST,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": cfg["digest"],
            "size": 10,
        },
        "layers": [{"mediaType": oci.DOCKER_LAYER_GZIP, "digest": layers[0]["digest"], "size": 20}],
    }
    assert docker_manifest(cfg, layers)[0] == data  # one form, one digest


def test_local_manifest_is_oci_with_the_stores_layers() -> None:
    data, _ = docker_manifest({"digest": "sha256:" + "1" * 64, "size": 10}, [])
    mixed = [
        {"mediaType": oci.LAYER, "digest": "sha256:" + "3" * 64, "size": 5},
        {"mediaType": oci.DOCKER_LAYER_GZIP, "digest": "sha256:" + "4" * 64, "size": 6},
    ]
    doc = json.loads(local_manifest(json.loads(data), mixed))
    assert doc["mediaType"] == oci.MANIFEST and doc["config"]["mediaType"] == oci.CONFIG
    assert [d["mediaType"] for d in doc["layers"]] == [oci.LAYER, oci.LAYER_GZIP]


def test_metadata_records_and_replaces() -> None:
    root = tempfile.mkdtemp(prefix="pc-regx-meta-")
    try:
        meta = Metadata(root)
        diff, gz = "sha256:" + "5" * 64, "sha256:" + "6" * 64
        meta.record(gzip={diff: (gz, 42)}, blobs=[gz], repository="h:1/a", image_id="i",
                    repo_digest="h:1/a@sha256:" + "7" * 64)  # fmt: skip
        meta.record(blobs=[gz], repository="h:1/b", image_id="i",
                    repo_digest="h:1/a@" + sha256_of(b"x"))  # fmt: skip
        assert meta.gzip_of(diff) == (gz, 42) and meta.gzip_of(gz) is None
        assert meta.where(gz) == ["h:1/a", "h:1/b"]
        assert meta.read()["repo_digests"]["i"] == ["h:1/a@" + sha256_of(b"x")]  # moved on
        with open(meta.path, "w") as f:
            f.write("{not json")
        assert meta.gzip_of(diff) is None  # a damaged cache starts again, it does not fail
    finally:
        remove_tree(root)


class _ThreadRecording(RecordingProgress):
    def __init__(self) -> None:
        super().__init__()
        self.threads: set[int] = set()

    def advance(self, layer: str, n: int) -> None:
        self.threads.add(threading.get_ident())
        super().advance(layer, n)


def test_layers_move_side_by_side_and_only_the_caller_draws() -> None:
    barrier = threading.Barrier(3, timeout=30)  # passes only if three jobs run at once
    workers: set[int] = set()

    def job(name: str, progress: Progress) -> str:
        workers.add(threading.get_ident())
        barrier.wait()
        progress.advance(name, 1)
        progress.done(name, "Pull complete")
        return name

    rec = _ThreadRecording()
    jobs = [functools.partial(job, n) for n in ("a", "b", "c")]
    assert run_parallel(jobs, 3, rec) == ["a", "b", "c"]
    assert len(workers) == 3 and threading.get_ident() not in workers
    assert rec.threads == {threading.get_ident()}
    assert rec.statuses == {"a": "Pull complete", "b": "Pull complete", "c": "Pull complete"}


def test_the_first_failure_stops_the_others() -> None:
    started = threading.Event()

    def fails(progress: Progress) -> None:
        started.wait(30)
        raise RuntimeError("layer 1 broke")

    def long(progress: Progress) -> None:
        started.set()
        while True:  # stops at its next report once the other failed
            progress.advance("x", 1)

    with pytest.raises(RuntimeError, match="layer 1 broke"):
        run_parallel([fails, long], 2, Progress())


def test_the_failure_raised_is_the_first_in_time_not_in_order() -> None:
    """The registry dies under layer 2 (cut off); layer 1 then cannot connect. The cut-off is
    the cause, whatever the order of the layers."""
    cut = threading.Event()

    def refused(progress: Progress) -> None:
        cut.wait(30)
        raise ConnectionRefusedError("connection refused")

    def cut_off(progress: Progress) -> None:
        try:
            raise EOFError("the connection closed after 5MB of 24MB")
        finally:
            cut.set()

    for _ in range(20):
        cut.clear()
        with pytest.raises(EOFError, match="closed after"):
            run_parallel([refused, cut_off], 2, Progress())
