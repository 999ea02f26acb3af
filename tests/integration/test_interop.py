"""pycont's image archives against the real tools: skopeo and umoci read what pycont saves, runc
and podman run it, and pycont loads and runs what podman saves (layers, order and whiteouts).

Needs root and skopeo, umoci, podman and runc (installed with apt-get when missing; skipped with
the reason when that fails). podman runs as these machines need it (/work/shared/peers/lib.sh):
runtime runc, cgroupfs, rlimits below the hard limits, private storage in a temporary folder.
Afterwards nothing is left: no podman image or container, no mount below that folder, no
libpod cgroup that was not there before, no runc container, no folder podman made for itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycont import images
from pycont.images import archive
from pycont.images.busybox import build_busybox
from pycont.images.report import ImageRecord
from pycont.images.store import Store
from tests import peers
from tests.helpers import cli, register_root, remove_root, requires
from tests.peers import BUSYBOX, ULIMITS, Run, ensure_tools, run, scratch

pytestmark = [requires("root"), pytest.mark.timeout(900)]

TOOLS = {"skopeo": "skopeo", "umoci": "umoci", "podman": "podman", "runc": "runc"}  # binary: pkg
BASE = "localhost/pycont-interop-base:latest"
DERIVED = "localhost/pycont-interop-derived:latest"


@pytest.fixture(scope="session")
def tools() -> None:
    """skopeo, umoci, podman and runc, installed from Debian when missing."""
    ensure_tools(TOOLS)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder for this module; its mounts are undone and it is removed at the end."""
    with scratch(tmp_path_factory.mktemp("interop")) as path:
        yield path


@pytest.fixture(scope="module")
def podman(tools: None, work: Path) -> Iterator[Run]:
    """``podman ARGS`` on runc with private storage under ``work``."""
    with peers.podman(work) as podman_run:
        yield podman_run


@pytest.fixture(scope="module")
def pycont_busybox(work: Path) -> tuple[Store, ImageRecord, dict[str, Path]]:
    """pycont's busybox image in a store of its own, saved in both formats."""
    root = work / "pycont-saved"
    store = Store(register_root(os.fspath(root)) + "/images")
    rec = build_busybox(store, BUSYBOX)
    saved = {}
    for fmt in archive.FORMATS:
        saved[fmt] = work / f"busybox.{fmt}.tar"
        archive.save([BUSYBOX], saved[fmt], format=fmt, store=store)
    return store, rec, saved


def tool_env(work: Path) -> dict[str, str]:
    return {**os.environ, "TMPDIR": os.fspath(work)}  # skopeo unpacks oci-archives into TMPDIR


# -- what pycont saves, the others read and run -----------------------------------------------
def test_skopeo_inspects_both_formats(
    tools: None, work: Path, pycont_busybox: tuple[Store, ImageRecord, dict[str, Path]]
) -> None:
    _store, rec, saved = pycont_busybox
    seen = {}
    for fmt, path in saved.items():
        info = json.loads(run("skopeo", "inspect", f"{fmt}:{path}", env=tool_env(work)).stdout)
        config = json.loads(
            run("skopeo", "inspect", "--config", f"{fmt}:{path}", env=tool_env(work)).stdout
        )
        assert info["Os"] == "linux" and info["Architecture"] == rec.config["architecture"]
        assert config["rootfs"]["diff_ids"] == list(rec.diff_ids)
        seen[fmt] = info["Layers"]
    # busybox's one layer is stored uncompressed: its digest is its diff_id in both formats
    assert seen["docker-archive"] == seen["oci-archive"] == list(rec.diff_ids)
    oci_info = json.loads(
        run("skopeo", "inspect", f"oci-archive:{saved['oci-archive']}", env=tool_env(work)).stdout
    )
    assert oci_info["Digest"] == rec.digest  # the OCI archive carries pycont's own manifest


def test_skopeo_copy_of_a_pycont_archive_loads_back(
    tools: None, work: Path, pycont_busybox: tuple[Store, ImageRecord, dict[str, Path]]
) -> None:
    """skopeo rewrites the archive its own way (layers at the top, symlinked from the legacy
    layer folders): pycont reads that back to the same image."""
    _store, rec, saved = pycont_busybox
    copy = work / "skopeo-copy.tar"
    src = f"oci-archive:{saved['oci-archive']}"
    run("skopeo", "copy", src, f"docker-archive:{copy}:{BUSYBOX}", env=tool_env(work))
    store = Store(os.fspath(work / "skopeo-load" / "images"))
    assert archive.load(copy, store=store) == ["busybox:latest"]
    assert store.get(BUSYBOX).id == rec.id


@pytest.mark.parametrize("layout", ["store", "archive"])
def test_umoci_unpacks_and_runc_runs(
    tools: None, work: Path, pycont_busybox: tuple[Store, ImageRecord, dict[str, Path]], layout: str
) -> None:
    """umoci unpacks pycont's image, from the oci-archive or straight from the store (which is
    an OCI image layout itself), into a bundle that runc runs."""
    store, _rec, saved = pycont_busybox
    if layout == "store":
        oci_dir = Path(store.root)
    else:
        oci_dir = work / "oci-layout"
        oci_dir.mkdir(exist_ok=True)
        run("tar", "-C", oci_dir, "-xf", saved["oci-archive"])
    index_before = (oci_dir / "index.json").read_bytes()
    bundle = work / f"bundle-{layout}"
    cid = f"pycont-interop-{uuid.uuid4().hex[:12]}"
    try:
        run("umoci", "unpack", "--image", f"{oci_dir}:{BUSYBOX}", bundle, env=tool_env(work))
        assert (bundle / "rootfs" / "bin" / "busybox").is_file()
        config_path = bundle / "config.json"
        config = json.loads(config_path.read_text())
        config["process"]["args"] = ["/bin/sh", "-c", "echo hi-from-runc"]
        config["process"]["terminal"] = False
        config_path.write_text(json.dumps(config))
        r = run("runc", "run", "--bundle", bundle, cid, stdin=subprocess.DEVNULL, timeout=120)
        assert r.stdout == "hi-from-runc\n"
    finally:
        run("runc", "delete", "-f", cid, check=False)
        run("rm", "-rf", "--one-file-system", bundle, check=False)
    assert (oci_dir / "index.json").read_bytes() == index_before  # umoci only read the layout
    assert cid not in run("runc", "list", "-q").stdout


@pytest.mark.parametrize("fmt", archive.FORMATS)
def test_podman_loads_and_runs_what_pycont_saves(
    podman: Run, pycont_busybox: tuple[Store, ImageRecord, dict[str, Path]], fmt: str
) -> None:
    _store, rec, saved = pycont_busybox
    r = podman("load", "-i", saved[fmt])
    assert f"Loaded image: {BUSYBOX}" in r.stdout + r.stderr  # not localhost/busybox
    inspect = json.loads(podman("image", "inspect", BUSYBOX).stdout)[0]
    assert "sha256:" + inspect["Id"] == rec.id
    assert inspect["RootFS"]["Layers"] == list(rec.diff_ids)
    r = podman(
        *("run", "--rm", "--pull", "never", "--network", "none", *ULIMITS),
        *(BUSYBOX, "/bin/sh", "-c", "echo hi-from-podman"),
    )
    assert r.stdout == "hi-from-podman\n"
    podman("rmi", BUSYBOX)


# -- what podman saves, pycont loads and runs -------------------------------------------------
@pytest.fixture(scope="module")
def podman_image(podman: Run, work: Path) -> dict[str, object]:
    """An image of two layers made by podman: a busybox root (imported, as lib.sh does) and a
    build step that adds /hi, deletes /etc/group (a whiteout) and replaces /root (an opaque
    directory)."""
    rootfs = work / "podman-rootfs"
    for d in ("bin", "etc", "root", "tmp", "proc", "sys", "dev"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2("/bin/busybox", rootfs / "bin" / "busybox")
    applets = run("/bin/busybox", "--list-full").stdout.split()
    for applet in applets:
        link = rootfs / applet
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to("/bin/busybox")
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\n")
    (rootfs / "root" / "old").write_text("old\n")
    base_tar = work / "podman-base.tar"
    with tarfile.open(base_tar, "w") as tar:
        tar.add(rootfs, arcname=".")
    podman("import", base_tar, BASE)
    ctx = work / "podman-context"
    ctx.mkdir()
    (ctx / "Containerfile").write_text(
        f"FROM {BASE}\n"
        "RUN echo hi > /hi && rm /etc/group && rm -rf /root && mkdir /root"
        " && echo new > /root/new\n"
    )
    podman("build", "--pull=never", "--network", "none", *ULIMITS, "-t", DERIVED, ctx)
    inspect = json.loads(podman("image", "inspect", DERIVED).stdout)[0]
    return {"id": "sha256:" + inspect["Id"], "diff_ids": inspect["RootFS"]["Layers"]}


@pytest.mark.parametrize("fmt", archive.FORMATS)
def test_pycont_loads_and_runs_what_podman_saves(
    podman: Run, podman_image: dict[str, object], work: Path, tmp_path: Path, fmt: str
) -> None:
    path = work / f"podman-derived.{fmt}.tar"
    podman("save", "--format", fmt, "-o", path, DERIVED)
    root = register_root(os.fspath(tmp_path / "pycont"))
    try:
        check_load_and_run(path, root, podman_image)
    finally:
        remove_root(root)  # its unpacked layers: megabytes


def check_load_and_run(path: Path, root: str, podman_image: dict[str, object]) -> None:
    store = Store(os.path.join(root, "images"))
    assert archive.load(path, store=store) == [DERIVED]
    rec = store.get(DERIVED)
    assert rec.id == podman_image["id"]  # the same config, byte for byte
    assert list(rec.diff_ids) == podman_image["diff_ids"]
    # what `pycont run` resolves: the layers top first, as overlay's lowerdir wants them
    img = images.resolve(DERIVED, store=store)
    assert img.layers == tuple(store.layer_dir(d) for d in reversed(rec.diff_ids))
    env = {"PYCONT_ROOT": root}
    r = cli("run", "--rm", DERIVED, "cat", "/hi", env=env)
    assert (r.returncode, r.stdout, r.stderr) == (0, "hi\n", "")
    script = (
        "ls -A /root; test -e /root/old || echo old-hidden; "
        "test -e /etc/group || echo group-deleted; cat /etc/passwd"
    )
    r = cli("run", "--rm", DERIVED, "sh", "-c", script, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "new",  # /root is opaque in the top layer: the base's /root/old is hidden...
        "old-hidden",
        "group-deleted",  # ...and /etc/group has a whiteout
        "root:x:0:0:root:/root:/bin/sh",  # the base layer shows through everywhere else
    ]
    assert not os.listdir(os.path.join(root, "containers"))  # --rm removed them
