"""A store command SIGKILLed at any of its steps leaves a store every command can still use.

Each test runs an ordinary CLI command (``load``, ``pull``, ``rmi``, ``image prune``,
``commit``, ``build``) with ``PYCONT_FAILPOINTS=<step>=kill`` in a store of its own, then checks
what a user would: the command died (SIGKILL), ``pycont images`` exits 0, ``system check``
passes (after ``--repair`` when the crash left orphans or a dead writer's staging folder: never a
referenced blob missing), and the same command, run again, succeeds.
"""

from __future__ import annotations

import io
import json
import os
import signal
import tarfile
import tempfile
from collections.abc import Iterator

import pytest

from pycont.fsutil import remove_tree
from pycont.images import oci
from pycont.images.blobs import canonical_json, sha256_of
from pycont.images.busybox import build_busybox
from pycont.images.distribution import docker_manifest
from pycont.images.registry import RegistryError, pull
from pycont.images.store import Store
from tests.helpers import cli, register_root, remove_root, requires
from tests.registry_server import FakeRegistry

PREFIX = "pc-crash-"
KILLED = -signal.SIGKILL


def run(root: str, *args: str, fail: str = "") -> tuple[int, str]:
    env = {"PYCONT_ROOT": root, "PYCONT_FAILPOINTS": fail}
    proc = cli(*args, env=env, timeout=180)
    return proc.returncode, proc.stdout + proc.stderr


def ok(root: str, *args: str) -> str:
    code, out = run(root, *args)
    assert code == 0, f"pycont {' '.join(args)}: exit {code}\n{out}"
    return out


def usable(root: str) -> None:
    """What must hold after any crash: images lists, the check passes (repair if needed)."""
    ok(root, "images")
    code, out = run(root, "system", "check")
    if code != 0:
        assert "missing" not in out and "corrupt" not in out, out  # only leftovers to remove
        ok(root, "system", "check", "--repair")
        ok(root, "system", "check")


@pytest.fixture
def root() -> Iterator[str]:
    path = register_root(tempfile.mkdtemp(prefix=PREFIX))
    try:
        yield path
    finally:
        remove_root(path)


@pytest.fixture(scope="module")
def source() -> Iterator[str]:
    """A root with busybox (a folder registry to pull from) and its saved archive."""
    path = register_root(tempfile.mkdtemp(prefix=PREFIX + "src-"))
    build_busybox(Store(os.path.join(path, "images")), "busybox:latest")
    ok(path, "save", "-o", os.path.join(path, "busybox.tar"), "busybox:latest")
    try:
        yield path
    finally:
        remove_root(path)


def images(root: str) -> list[str]:
    lines = ok(root, "images").splitlines()[1:]
    return sorted(":".join(line.split()[:2]) for line in lines)


def own_image(root: str, ref: str | None) -> str:
    """busybox plus a layer of its own (so removing it deletes blobs); returns its id."""
    store = Store(os.path.join(root, "images"))
    base = build_busybox(store, "busybox:latest")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = (ref or "untagged").encode()
        info = tarfile.TarInfo("etc/own")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    digest = store.put_blob(raw)
    config = dict(base.config)
    config["rootfs"] = {"type": "layers", "diff_ids": [*base.diff_ids, sha256_of(raw)]}
    layers = [*base.manifest["layers"], oci.descriptor(oci.LAYER, digest, len(raw))]
    return store.add_image(ref, config, layers).id


@pytest.mark.parametrize("step", ["load.blobs-staged", "load.published"])
def test_load_killed(root: str, source: str, step: str) -> None:
    archive = os.path.join(source, "busybox.tar")
    assert run(root, "load", "-i", archive, fail=f"{step}=kill")[0] == KILLED
    usable(root)
    assert images(root) == []
    ok(root, "load", "-i", archive)
    assert images(root) == ["busybox:latest"]


@pytest.mark.parametrize("step", ["pull.layer-staged", "pull.published"])
def test_pull_killed(root: str, source: str, step: str) -> None:
    ref = f"dir:{os.path.join(source, 'images')}:busybox:latest"
    assert run(root, "pull", "-q", ref, fail=f"{step}=kill")[0] == KILLED
    usable(root)
    ok(root, "pull", "-q", ref)
    assert images(root) == ["busybox:latest"]
    usable(root)


@pytest.mark.parametrize("step", ["rmi.index-written", "rmi.blobs-removed"])
def test_rmi_killed(root: str, step: str) -> None:
    own_image(root, f"{PREFIX}own:1")
    assert run(root, "rmi", f"{PREFIX}own:1", fail=f"{step}=kill")[0] == KILLED
    usable(root)  # index first: at worst orphans, which --repair removes
    assert images(root) == ["busybox:latest"]
    code, out = run(root, "rmi", f"{PREFIX}own:1")  # already gone: a plain "no such image"
    assert code != 0 and "no such image" in out, out
    own_image(root, f"{PREFIX}own:1")
    ok(root, "rmi", f"{PREFIX}own:1")
    assert images(root) == ["busybox:latest"]


def test_prune_killed(root: str) -> None:
    own_image(root, None)
    assert len(images(root)) == 2
    assert run(root, "image", "prune", "-f", fail="prune.index-written=kill")[0] == KILLED
    usable(root)
    assert images(root) == ["busybox:latest"]
    own_image(root, None)
    ok(root, "image", "prune", "-f")
    assert images(root) == ["busybox:latest"]
    ok(root, "system", "check")


@requires("root")
@pytest.mark.parametrize("step", ["commit.blobs-staged", "commit.published"])
def test_commit_killed(root: str, step: str) -> None:
    build_busybox(Store(os.path.join(root, "images")), "busybox:latest")
    name = f"{PREFIX}c"
    ok(root, "run", "--name", name, "busybox", "sh", "-c", "echo hi > /made")
    try:
        assert run(root, "commit", name, f"{PREFIX}img:1", fail=f"{step}=kill")[0] == KILLED
        usable(root)
        assert images(root) == ["busybox:latest"]
        ok(root, "commit", name, f"{PREFIX}img:1")
        assert images(root) == ["busybox:latest", f"{PREFIX}img:1"]
    finally:
        run(root, "rm", "-f", name)
    ok(root, "rmi", f"{PREFIX}img:1")
    usable(root)


@pytest.mark.parametrize("step", ["build.step-committed", "build.published"])
def test_build_killed(root: str, step: str) -> None:
    build_busybox(Store(os.path.join(root, "images")), "busybox:latest")
    ctx = os.path.join(root, "ctx")
    os.mkdir(ctx)
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write("FROM busybox\nCOPY hello /hello\n")
    with open(os.path.join(ctx, "hello"), "w") as f:
        f.write("hello\n")
    args = ("build", "-q", "-t", f"{PREFIX}b:1", ctx)
    assert run(root, *args, fail=f"{step}=kill")[0] == KILLED
    usable(root)
    assert images(root) == ["busybox:latest"]
    ok(root, *args)
    assert images(root) == ["busybox:latest", f"{PREFIX}b:1"]
    ok(root, "rmi", f"{PREFIX}b:1")
    ok(root, "builder", "prune", "-f")
    remove_tree(ctx)
    usable(root)


def test_a_broken_image_does_not_break_the_others(root: str) -> None:
    """A store broken by an older pycont (a referenced blob gone): ``images`` lists every
    image and warns about the broken one; ``rmi`` removes it; then the store checks clean."""
    store = Store(os.path.join(root, "images"))
    own_id = own_image(root, f"{PREFIX}own:1")
    rec = store.lookup(f"{PREFIX}own:1")
    os.unlink(store.blobs.path(rec.manifest["layers"][-1]["digest"]))
    os.unlink(store.blobs.path(own_id))  # its config too: its id is unknown now
    code, out = run(root, "images")
    assert code == 0, out
    assert "busybox" in out and f"{PREFIX}own" in out
    assert "warning: image" in out and "is missing from the store" in out
    ok(root, "rmi", "busybox:latest")  # the others still work
    ok(root, "rmi", f"{PREFIX}own:1")
    assert images(root) == []
    usable(root)


# -- hostile registry documents: refused in one line, nothing stored ---------------------------
def test_a_pull_of_hostile_documents_stores_nothing(root: str, source: str) -> None:
    src = Store(os.path.join(source, "images")).lookup("busybox:latest")
    stored = Store(os.path.join(source, "images")).blobs
    blobs = {d["digest"]: stored.read(d["digest"]) for d in src.manifest["layers"]}

    def image(config: dict[str, object]) -> tuple[bytes, str]:
        cfg = canonical_json(config)
        blobs[sha256_of(cfg)] = cfg
        return docker_manifest({"digest": sha256_of(cfg), "size": len(cfg)}, src.manifest["layers"])

    bad_cmd = image({**src.config, "config": {**src.config["config"], "Cmd": "sh"}})
    bad_env = image({**src.config, "config": {**src.config["config"], "Env": ["A=\0"]}})
    deep = (b"[" * 100_000 + b"]" * 100_000, oci.DOCKER_MANIFEST)
    entry = {"digest": sha256_of(b"x"), "size": 1, "platform": "linux"}
    index = (json.dumps({"manifests": [entry]}).encode(), oci.DOCKER_LIST)
    manifests = {"cmd:1": bad_cmd, "env:1": bad_env, "deep:1": deep, "index:1": index}
    expected = {
        "cmd:1": ": config Cmd must be a list of strings, got a string",
        "env:1": r": config Env\[0\] must not contain a NUL byte",
        "deep:1": "is not valid JSON: nested deeper than the limit of 64 levels",
        "index:1": r": index manifests\[0\] platform must be an object, got a string",
    }
    store = Store(os.path.join(root, "images"))
    with FakeRegistry(manifests, blobs) as fake:
        for tag, message in expected.items():
            with pytest.raises(RegistryError, match=message) as info:
                pull(f"{fake.host}/{tag}", store)
            assert "\n" not in str(info.value)
    assert store.images() == []
    assert not os.path.isdir(store.blobs.dir) or os.listdir(store.blobs.dir) == []
