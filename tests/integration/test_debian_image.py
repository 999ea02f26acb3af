"""``pycont image import-debian nodejs``: the host's Node.js as an image, run in containers.

The module imports nodejs once into its own PYCONT_ROOT (a fresh temporary folder) and runs
node, npm and busybox's shell from it, with no network but loopback."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pycont
from pycont.errors import UsageError
from pycont.images.debian import (
    DebianImport,
    PackageNotInstalled,
    import_debian,
    installed_package,
)
from pycont.images.store import Store
from tests.helpers import cli, register_root, remove_root, requires

pytestmark = requires("root", "overlay")
PREFIX = "pc-h4-"


@pytest.fixture(scope="module")
def node() -> Iterator[DebianImport]:
    """nodejs imported into a private store; PYCONT_ROOT points there for the module."""
    try:
        pkg = installed_package("nodejs")
    except PackageNotInstalled:
        pytest.skip("needs the Debian package nodejs installed on the host")
    previous = os.environ.get("PYCONT_ROOT")
    root = register_root(tempfile.mkdtemp(prefix=PREFIX + "root-"))
    os.environ["PYCONT_ROOT"] = root
    try:
        done = import_debian(["nodejs"])
        print(
            f"\nimported {done.record.reference} ({pkg.version}): {done.record.size / 1e6:.1f} MB "
            f"in {done.seconds:.1f} s, {len(done.libraries)} libraries"
        )
        yield done
    finally:
        if previous is None:
            del os.environ["PYCONT_ROOT"]
        else:
            os.environ["PYCONT_ROOT"] = previous
        remove_root(root)


def run(image: DebianImport, command: list[str], **options: Any) -> pycont.Container:
    """Run ``command`` in the imported image, by its name (node:20), and wait for it."""
    name = f"{PREFIX}{os.urandom(3).hex()}"
    ref = image.record.reference or image.record.id
    return pycont.run(ref, command, rm=True, name=name, timeout=120, **options)


def test_image_layers_config_history(node: DebianImport) -> None:
    pkg = installed_package("nodejs")
    rec = node.record
    assert rec.reference == f"node:{pkg.major}"
    busybox = Store().lookup("busybox:latest")
    assert len(rec.diff_ids) == 2 and rec.diff_ids[0] == busybox.diff_ids[0]
    cfg = rec.config["config"]
    assert cfg["Cmd"] == ["node"]
    assert f"NODE_VERSION={pkg.upstream}" in cfg["Env"]
    assert cfg["Env"][0].startswith("PATH=")
    by = rec.config["history"][-1]["created_by"]
    assert by == (
        f"pycont image import-debian nodejs ({pkg.version}) + {len(node.libraries)} libraries"
    )
    # node's DT_NEEDED (libc, libstdc++, libm, libgcc_s, ...) and the loader, no more.
    names = {os.path.basename(p) for p in node.libraries}
    assert "ld-linux-x86-64.so.2" in names and "libc.so.6" in names
    assert len(node.libraries) < 15
    assert 20e6 < rec.size < 400e6, f"image size {rec.size / 1e6:.1f} MB"


def test_usrmerge_layout(node: DebianImport) -> None:
    """/lib and /lib64 are symlinks into /usr as on Debian 12; busybox's /bin stays a dir."""
    top = node.record.layers[0]
    assert os.readlink(os.path.join(top, "lib")) == "usr/lib"
    assert os.readlink(os.path.join(top, "lib64")) == "usr/lib64"
    assert not os.path.lexists(os.path.join(top, "bin"))
    assert not os.path.lexists(os.path.join(top, "usr/share/doc"))
    assert os.stat(os.path.join(top, "tmp")).st_mode & 0o7777 == 0o1777
    c = run(node, ["sh", "-c", "readlink /lib64; test -d /bin && test -x /bin/sh && echo ok"])
    assert c.output.split() == ["usr/lib64", "ok"]


def test_node_runs(node: DebianImport) -> None:
    c = run(node, ["node", "-e", "console.log(1+1)"])
    assert (c.exit_code, c.output.strip()) == (0, "2")


def test_npm_version(node: DebianImport) -> None:
    host = subprocess.run(["npm", "--version"], capture_output=True, text=True, check=False)
    c = run(node, ["npm", "--version"])
    assert c.exit_code == 0, c.output
    assert c.output.strip() == host.stdout.strip()


def test_node_user(node: DebianImport) -> None:
    c = run(node, ["sh", "-c", "id node; stat -c %u:%g:%a /home/node"])
    assert c.output.splitlines() == [
        "uid=1000(node) gid=1000(node) groups=1000(node)",
        "1000:1000:755",
    ]
    c = run(node, ["node", "-e", "console.log(require('os').userInfo().username)"])
    assert c.output.strip() == "root"


def test_npm_install_offline(node: DebianImport, tmp_path: Path) -> None:
    """npm install of a package.json with no dependencies: the container has only lo."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text('{"name":"app","version":"1.0.0"}')
    start = time.monotonic()
    c = run(
        node,
        ["sh", "-c", "cd /app && npm install --no-audit --no-fund --offline"],
        volumes=[f"{app}:/app"],
    )
    took = time.monotonic() - start
    print(f"\nnpm install --offline: {took:.2f} s, {c.output.strip()!r}")
    assert c.exit_code == 0, c.output
    assert (app / "package-lock.json").is_file()


def test_second_import_is_a_no_op(node: DebianImport) -> None:
    again = import_debian(["nodejs"])
    assert again.up_to_date
    assert again.record.id == node.record.id
    r = cli("image", "import-debian", "nodejs")
    assert r.returncode == 0, r.stderr
    pkg = installed_package("nodejs")
    assert r.stdout.strip() == f"node:{pkg.major} is up to date (nodejs {pkg.version})"


def test_same_files_same_layer(node: DebianImport) -> None:
    """Another name, built again from the same host files: the same layer digest."""
    other = import_debian(["nodejs"], ref=f"{PREFIX}node:again")
    try:
        assert not other.up_to_date
        assert other.record.diff_ids == node.record.diff_ids
    finally:
        Store().remove(f"{PREFIX}node:again")


def test_unknown_package() -> None:
    name = f"{PREFIX}no-such-package"
    with pytest.raises(UsageError):
        installed_package(name)
    r = cli("image", "import-debian", name)
    assert r.returncode == 125
    assert r.stderr.strip().splitlines() == [
        f"pycont: package '{name}' is not installed on this host: install it with apt-get "
        f"install {name} (pycont import-debian copies installed packages; it downloads nothing)"
    ]
