"""pycont build against the real tools: podman runs what pycont builds, and ``buildah bud`` and
pycont build the same Dockerfile into the same files and the same config.

Needs root, podman and buildah (installed from Debian when missing; skipped with the reason
when that fails). Both run with private storage in a temporary folder that is unmounted and
removed afterwards (tests/peers.py).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import pycont
from pycont.builder.build import build
from pycont.builder.progress import Quiet
from pycont.images import Store
from tests import peers
from tests.helpers import cli, requires
from tests.peers import ULIMITS, Run, ensure_tools, run, scratch

pytestmark = [requires("root", "overlay"), pytest.mark.timeout(900)]

DOCKERFILE = """\
FROM busybox
LABEL org.example.chapter=06
ENV APP_HOME=/app
WORKDIR $APP_HOME
COPY src/ ./src/
COPY --chmod=755 run.sh /usr/local/bin/run
RUN mkdir -p data && echo generated > data/gen.txt && rm src/drop.txt
EXPOSE 3000
USER 1000:1000
ENTRYPOINT ["/usr/local/bin/run"]
CMD ["--port", "3000"]
"""
FILES = {
    "src/index.js": "console.log('hi')\n",
    "src/drop.txt": "removed by RUN\n",
    "src/lib/util.js": "module.exports = 1\n",
    "run.sh": '#!/bin/sh\necho run "$@"\n',
}
# What the image config must agree on (buildah adds its own labels and history fields).
CONFIG_KEYS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "ExposedPorts", "User")
TREE = "find /app /usr/local/bin/run -exec stat -c '%n %F %a %u:%g %s' {} + | sort"


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    ensure_tools({"podman": "podman", "buildah": "buildah", "runc": "runc"})
    # A short path: podman refuses a runroot longer than 50 characters.
    with scratch(Path(tempfile.mkdtemp(prefix="pc-bi-"))) as path:
        yield path


@pytest.fixture(scope="module")
def ctx(work: Path) -> Path:
    ctx = work / "ctx"
    for name, text in {"Dockerfile": DOCKERFILE, **FILES}.items():
        (ctx / name).parent.mkdir(parents=True, exist_ok=True)
        (ctx / name).write_text(text)
    return ctx


@pytest.fixture(scope="module")
def busybox_archive(work: Path) -> Path:
    path = work / "busybox.tar"
    proc = cli("save", "-o", str(path), "busybox")
    assert proc.returncode == 0, proc.stderr
    return path


def test_podman_runs_what_pycont_builds(work: Path, ctx: Path) -> None:
    build(str(ctx), "localhost/pc-build-interop:pycont", progress=Quiet())
    archive = work / "pycont-built.tar"
    assert cli("save", "-o", str(archive), "localhost/pc-build-interop:pycont").returncode == 0
    with peers.podman(work) as podman:
        podman("load", "-i", archive)
        out = podman(
            "run", "--rm", *ULIMITS, "--network", "none", "localhost/pc-build-interop:pycont"
        )  # fmt: skip
        assert out.stdout == "run --port 3000\n"
        inspect = json.loads(podman("image", "inspect", "localhost/pc-build-interop:pycont").stdout)
        assert inspect[0]["Config"]["WorkingDir"] == "/app"


def _buildah(work: Path) -> Run:
    base = work / "buildah"
    cmd = ("buildah", "--root", base / "root", "--runroot", base / "run")

    def buildah_run(*args: object, check: bool = True, timeout: float = 600) -> object:
        return run(*cmd, *args, check=check, timeout=timeout)

    return buildah_run  # type: ignore[return-value]


def test_buildah_and_pycont_build_the_same_image(
    work: Path, ctx: Path, busybox_archive: Path
) -> None:
    buildah = _buildah(work)
    try:
        buildah("pull", f"docker-archive:{busybox_archive}")
        buildah(
            "bud", "--isolation", "chroot", "--pull=never", "--layers",
            "-t", "localhost/pc-build-interop:buildah", ctx,
        )  # fmt: skip
        theirs = work / "buildah-built.tar"
        buildah("push", "localhost/pc-build-interop:buildah", f"docker-archive:{theirs}")
    finally:
        buildah("rmi", "-af", check=False)
        peers.unmount_below(work / "buildah")
    assert cli("load", "-i", str(theirs)).returncode == 0
    build(str(ctx), "localhost/pc-build-interop:pycont", progress=Quiet())
    store = Store()
    mine = store.get("localhost/pc-build-interop:pycont").config["config"]
    other = store.get("localhost/pc-build-interop:buildah").config["config"]
    for key in CONFIG_KEYS:
        assert mine.get(key) == other.get(key), key
    assert mine["Labels"]["org.example.chapter"] == other["Labels"]["org.example.chapter"]
    trees = []
    for tag in ("pycont", "buildah"):
        c = pycont.run(f"localhost/pc-build-interop:{tag}", ["sh", "-c", TREE], rm=True, user="0")
        assert c.exit_code == 0, c.output
        trees.append(c.output)
    assert trees[0] == trees[1]
    assert "/app/src/drop.txt" not in trees[0]
