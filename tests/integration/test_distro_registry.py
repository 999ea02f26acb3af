"""The real Debian base through a real registry, with skopeo and podman on the other side.

pycont pushes the base (its layer a plain tar in the store, gzip on the wire); skopeo reads the
manifest and podman pulls the image and runs python3 in it, with the same image id. podman
pushes the same base to another repository; pycont pulls it and runs python3. A second push of
the base to a new repository sends no layer byte (a cross-repository mount). The registry is
Debian's ``docker-registry`` on 127.0.0.1; podman keeps its storage under the module's folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pycont.images.push import PushStats
from pycont.images.registry import push
from pycont.images.store import Store
from tests import distro, peers
from tests.helpers import cli, register_root, remove_root, requires
from tests.registry_server import RegistryServer, install_registry

pytestmark = [requires("root", "overlay"), pytest.mark.timeout(900)]

TOOLS = {"skopeo": "skopeo", "podman": "podman", "runc": "runc"}


@dataclass
class Setup:
    base: distro.DebianBase
    server: RegistryServer
    root: str  # the PYCONT_ROOT the base is loaded in
    image_id: str
    podman: peers.Run

    def cli(self, *args: str, root: str | None = None) -> subprocess.CompletedProcess[str]:
        return cli(*args, env={"PYCONT_ROOT": root or self.root}, timeout=600)


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    peers.ensure_tools(TOOLS)
    reason = install_registry()
    if reason:
        pytest.skip(reason)
    base = distro.debian_base()
    server = RegistryServer()
    root = register_root(tempfile.mkdtemp(prefix="pc-distreg-root-"))
    with peers.scratch(Path(tempfile.mkdtemp(prefix="pc-distreg-"))) as work:
        try:
            server.start()
            r = cli("load", "-i", os.fspath(base.docker_archive), env={"PYCONT_ROOT": root})
            assert r.returncode == 0, r.stderr
            image_id = Store(os.path.join(root, "images")).lookup(base.reference).id
            with peers.podman(work) as podman:
                yield Setup(base, server, root, image_id, podman)
        finally:
            server.stop()
            remove_root(root)


def test_podman_pulls_and_runs_what_pycont_pushed(setup: Setup) -> None:
    ref = f"{setup.server.host}/pc-distreg/debian:bookworm"
    assert setup.cli("tag", setup.base.reference, ref).returncode == 0
    r = setup.cli("push", "-q", ref)
    assert r.returncode == 0, r.stderr
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
        capture_output=True,
        text=True,
        check=True,
    )
    manifest = json.loads(raw.stdout)
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert {d["mediaType"] for d in manifest["layers"]} == {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    }
    assert manifest["config"]["digest"] == setup.image_id
    setup.podman("pull", "-q", "--tls-verify=false", ref)
    inspect = json.loads(setup.podman("image", "inspect", ref).stdout)[0]
    assert "sha256:" + inspect["Id"] == setup.image_id
    r = setup.podman(
        *("run", "--rm", "--pull", "never", "--network", "none", *peers.ULIMITS),
        *(ref, "python3", "-c", "print(1)"),
    )
    assert r.stdout == "1\n"


def test_pycont_pulls_and_runs_what_podman_pushed(setup: Setup) -> None:
    ref = f"{setup.server.host}/pc-distreg/from-podman:bookworm"
    setup.podman("load", "-q", "-i", setup.base.docker_archive)
    setup.podman("push", "-q", "--tls-verify=false", setup.base.reference, ref)
    root = register_root(tempfile.mkdtemp(prefix="pc-distreg-pull-"))
    try:
        r = setup.cli("pull", ref, root=root)
        assert r.returncode == 0, r.stderr
        assert "Pull complete" in r.stdout
        assert Store(os.path.join(root, "images")).lookup(ref).id == setup.image_id
        r = setup.cli(
            "run", "--rm", "--network", "none", ref, "python3", "-c", "print(1)", root=root
        )
        assert (r.returncode, r.stdout) == (0, "1\n"), r.stderr
        # The same layer, pulled into the store that loaded it from an archive (a plain tar):
        # recognised by its diff_id, not downloaded again.
        r = setup.cli("pull", ref)
        assert r.returncode == 0, r.stderr
        assert "Already exists" in r.stdout and "Pull complete" not in r.stdout
    finally:
        remove_root(root)


def test_a_second_push_to_a_new_repository_sends_no_layer(setup: Setup) -> None:
    store = Store(os.path.join(setup.root, "images"))
    first, second = (f"{setup.server.host}/pc-distreg/{n}:1" for n in ("one", "two"))
    store.tag(setup.base.reference, first)
    store.tag(setup.base.reference, second)
    sent_first, sent_second = PushStats(), PushStats()
    push(first, store, stats=sent_first)
    before = len(setup.server.requests())
    push(second, store, stats=sent_second)
    layers = store.lookup(first).manifest["layers"]
    # (The first push may mount too: an earlier test pushed the base to another repository.)
    assert len(sent_second.mounted) == len(layers) and not set(sent_second.uploaded) - {
        store.lookup(first).id
    }
    assert sent_second.bytes_sent == store.lookup(first).manifest["config"]["size"]
    log = setup.server.requests()[before:]
    assert [p for m, p, s in log if m == "POST" and "mount=" in p and s == 201]
    print(
        f"\nfirst push: {sent_first.bytes_sent / 1e6:.1f} MB, {len(sent_first.mounted)} mounted; "
        f"to a new repository: "
        f"{sent_second.bytes_sent} bytes ({len(sent_second.mounted)} layer mounted)"
    )
