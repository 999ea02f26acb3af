"""Registry transfers at scale: mounts, skopeo on the other side, cut-off pulls, resumed uploads.

A real ``docker-registry`` on loopback (its access log shows what travelled), skopeo as the
other client, a FakeRegistry for what a real registry will not do on purpose (a blob cut
short), and a loopback TCP proxy that drops an upload's connection once.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from pycont.fsutil import remove_tree
from pycont.images.busybox import build_busybox
from pycont.images.distribution import repo_digests
from pycont.images.progress import RecordingProgress
from pycont.images.push import PushStats
from pycont.images.registry import RegistryError, pull, push
from pycont.images.store import Store
from tests.helpers import cli, register_root, remove_root
from tests.registry_server import FakeRegistry, RegistryServer, install_registry

BIG = 24 << 20  # bytes of random data in the big layer: more than one upload chunk (16 MiB)


@dataclass
class Setup:
    server: RegistryServer
    a: Store  # builds and pushes
    b: Store  # pulls
    big: str  # a reference, in a, to busybox plus a layer of BIG random bytes


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    reason = install_registry()
    if reason:
        pytest.skip(reason)
    server = RegistryServer()
    roots = [register_root(tempfile.mkdtemp(prefix="pc-regx-root-")) for _ in range(2)]
    upper = tempfile.mkdtemp(prefix="pc-regx-upper-")
    try:
        server.start()
        a, b = (Store(os.path.join(r, "images")) for r in roots)
        build_busybox(a, "busybox:latest")
        with open(os.path.join(upper, "random.bin"), "wb") as f:
            f.write(os.urandom(BIG))
        big = f"{server.host}/big:1"
        a.commit_layer(upper, "busybox:latest", big, message="big")
        yield Setup(server, a, b, big)
    finally:
        server.stop()
        for r in roots:
            remove_root(r)
        remove_tree(upper)
        assert not [p for p in server.pids if os.path.exists(f"/proc/{p}")]


def _layer_bytes(rec: RecordingProgress) -> int:
    return sum(n for kind, _, n in rec.events if kind == "advance")


def test_second_push_to_a_new_repository_mounts_every_layer(setup: Setup) -> None:
    host = setup.server.host
    first, again, other = PushStats(), PushStats(), PushStats()
    rec = RecordingProgress()
    push(setup.big, setup.a, rec, first)
    layers = [d["digest"] for d in setup.a.lookup(setup.big).manifest["layers"]]
    # every layer's line first, in order (as docker draws them), then they move side by side
    moves = [e for e in rec.events if e[0] != "note"]
    assert [e[:2] for e in moves[: len(layers)]] == [("start", d) for d in layers]
    assert sorted(rec.with_status("Pushed")) == sorted(layers)  # finished in any order
    push(setup.big, setup.a, RecordingProgress(), again)
    setup.a.tag(setup.big, f"{host}/copy:1")
    before = len(setup.server.requests())
    rec = RecordingProgress()
    digest = push(f"{host}/copy:1", setup.a, rec, other)
    log = setup.server.requests()[before:]
    size = setup.a.lookup(setup.big).manifest["config"]["size"]
    assert first.bytes_sent > BIG  # random bytes do not compress
    assert again.bytes_sent == 0 and again.uploaded == again.mounted == []
    assert other.bytes_sent == size  # only the config (~1 kB), no layer byte
    assert _layer_bytes(rec) == 0
    assert set(rec.statuses.values()) == {"Mounted from big"}
    mounts = [p for m, p, s in log if m == "POST" and "mount=" in p and s == 201]
    assert len(mounts) == len(other.mounted) == 2
    assert repo_digests(setup.a, setup.a.lookup(setup.big).id) == sorted(
        [f"{host}/big@{digest}", f"{host}/copy@{digest}"]
    )
    print(f"bytes sent: first {first.bytes_sent}, again {again.bytes_sent}, new repo {size}")


def test_skopeo_reads_what_pycont_pushed(setup: Setup) -> None:
    ref = f"docker://{setup.server.host}/big:1"
    push(setup.big, setup.a)
    out = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", ref],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    manifest = json.loads(out.stdout)
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    dest = tempfile.mkdtemp(prefix="pc-regx-oci-")
    try:
        out = subprocess.run(
            ["skopeo", "copy", "-q", "--src-tls-verify=false", ref, f"oci:{dest}:big"],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        config = setup.a.lookup(setup.big).config
        for desc, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True):
            with open(os.path.join(dest, "blobs", "sha256", desc["digest"][7:]), "rb") as f:
                data = f.read()
            assert data[:2] == b"\x1f\x8b"  # gzip, as the registry served it to skopeo
            assert "sha256:" + hashlib.sha256(gzip.decompress(data)).hexdigest() == diff_id
    finally:
        remove_tree(dest)


def test_inspect_lists_the_registry_digest_and_finds_the_image_by_it(setup: Setup) -> None:
    """A gzip push keeps the store's own manifest: the registry's digest is a RepoDigest, and
    ``name@<that digest>`` names the image, as in docker."""
    host = setup.server.host
    digest = push(setup.big, setup.a)
    local = setup.a.lookup(setup.big)
    assert digest != local.digest  # the registry has the gzip form, the store the plain one
    env = {"PYCONT_ROOT": os.path.dirname(setup.a.root)}
    out = cli("image", "inspect", setup.big, env=env)
    assert out.returncode == 0, out.stderr
    (doc,) = json.loads(out.stdout)
    assert f"{host}/big@{digest}" in doc["RepoDigests"]
    assert setup.big in doc["RepoTags"]
    out = cli("image", "inspect", f"{host}/big@{digest}", env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["Id"] == local.id
    out = cli("image", "inspect", f"{host}/big@sha256:{'0' * 64}", env=env)
    assert out.returncode != 0 and "no such image" in out.stderr.lower()


def _snapshot(store: Store) -> tuple[list[str], list[str]]:
    return store.blobs.digests(), sorted(os.listdir(store.root)) if os.path.isdir(
        store.root
    ) else []


def test_a_blob_cut_short_is_not_called_corrupt(setup: Setup) -> None:
    rec = setup.a.lookup(setup.big)
    layer = rec.manifest["layers"][-1]["digest"]
    blobs = {
        d: setup.a.blobs.read(d) for d in [rec.id, *(x["digest"] for x in rec.manifest["layers"])]
    }
    manifests = {"big:1": (setup.a.blobs.read(rec.digest), rec.descriptor["mediaType"])}
    before = _snapshot(setup.b)
    with (
        FakeRegistry(manifests, blobs, cut={layer: 5_000_000}) as fake,
        pytest.raises(RegistryError) as info,
    ):
        pull(f"{fake.host}/big:1", setup.b)
    size = len(blobs[layer])
    assert str(info.value) == (
        f"pull {fake.host}/big:1: blob {layer}: the connection closed after 5MB of "
        f"{size / 1e6:.3g}MB (the registry went away?); pull again to retry"
    )
    assert _snapshot(setup.b) == before


def test_registry_killed_mid_pull(setup: Setup) -> None:
    push(setup.big, setup.a)
    server = setup.server
    before = _snapshot(setup.b)

    class Killer(RecordingProgress):
        def advance(self, layer: str, n: int) -> None:
            super().advance(layer, n)
            big = any(e[:2] == ("start", layer) and (e[2] or 0) > BIG // 2 for e in self.events)
            # the small layer is all in: only the big one is on the wire when the registry dies
            totals = {e[1]: e[2] for e in self.events if e[0] == "start" and e[1] != layer}
            got = {d: sum(e[2] for e in self.events if e[:2] == ("advance", d)) for d in totals}
            small_in = all(got[d] >= (totals[d] or 0) for d in totals)
            if big and small_in and server.proc and server.proc.poll() is None:
                server.proc.kill()  # mid-blob: the rest of it never comes
                server.proc.wait()

    with pytest.raises(RegistryError) as info:
        pull(setup.big, setup.b, Killer())
    assert "the connection closed after" in str(info.value)
    assert "(the registry went away?); pull again to retry" in str(info.value)
    assert _snapshot(setup.b) == before  # no blob, no staging folder left
    server.proc = None
    server.start()  # same storage, another port
    ref = f"{server.host}/big:1"
    image_id = pull(ref, setup.b)
    assert image_id == setup.a.lookup(setup.big).id
    setup.b.remove(ref)


class _CuttingProxy:
    """127.0.0.1:<port> -> the registry; the first connection that carries more than
    ``after`` bytes upstream is dropped there, once."""

    def __init__(self, target: str, after: int) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.after = after
        self.cut = False
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for src, dst, count in ((client, upstream, True), (upstream, client, False)):
                t = threading.Thread(target=self._pipe, args=(src, dst, count), daemon=True)
                t.start()
                self.threads.append(t)

    def _pipe(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        seen = 0
        try:
            while data := src.recv(1 << 16):
                seen += len(data)
                if count and not self.cut and seen > self.after:
                    self.cut = True
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.sock.close()
        for t in self.threads:
            t.join(10)


def test_an_upload_cut_once_is_resumed_where_it_stopped(setup: Setup) -> None:
    """A registry that keeps what a broken PATCH brought (the FakeRegistry): the upload goes
    on from the offset it reports."""
    with FakeRegistry() as fake:
        proxy = _CuttingProxy(fake.host, after=20 << 20)  # inside the second 16 MiB chunk
        try:
            ref = f"{proxy.host}/resumed:1"
            setup.a.tag(setup.big, ref)
            stats = PushStats()
            push(ref, setup.a, RecordingProgress(), stats)
            assert proxy.cut and (stats.resumed, stats.restarted) == (1, 0)
            assert stats.uploaded and all(
                hashlib.sha256(fake.blobs[d]).hexdigest() == d[7:] for d in stats.uploaded
            )
        finally:
            proxy.close()
            setup.a.remove(ref)


def test_an_upload_cut_once_is_sent_again(setup: Setup) -> None:
    """distribution cancels an upload whose PATCH broke off ("blob upload invalid"): the
    layer goes again from its start, compressed again to the same bytes."""
    proxy = _CuttingProxy(setup.server.host, after=20 << 20)
    try:
        ref = f"{proxy.host}/restarted:1"
        setup.a.tag(setup.big, ref)
        stats = PushStats()
        digest = push(ref, setup.a, RecordingProgress(), stats)
        assert proxy.cut and stats.restarted == 1
        # the gzip stream abandoned by the broken upload was closed: its threads are gone
        assert not [t for t in threading.enumerate() if t.name.startswith("pycont-gzip")]
        # What the registry holds is the image: another store pulls it whole.
        again = f"{setup.server.host}/restarted:1"
        assert pull(again, setup.b) == setup.a.lookup(ref).id
        image_id = setup.a.lookup(ref).id
        assert repo_digests(setup.b, image_id) == [f"{again.split(':1')[0]}@{digest}"]
        setup.b.remove(again)
    finally:
        proxy.close()
        setup.a.remove(ref)
