"""Device nodes: an image may carry them, a container may not use them (but --privileged).

A layer's nodes are unpacked as docker does (``ls -l`` shows them), yet opening one fails with
EACCES: the container's root, /dev tmpfs and volumes are mounted nodev (pycont/rootfs.py), the
rule docker enforces with the devices cgroup. The same for a node made inside with mknod(2)
(CAP_MKNOD is one of docker's default capabilities). The runtime's own /dev/null, /dev/zero,
/dev/urandom and the terminal keep working. The nodes used are real: /dev/zero's number and the
first disk in /proc/partitions (one byte is read), so an open that succeeded would show it; a
--privileged container reads /dev/zero's, the control.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator

import pytest

from tests.helpers import REPO, cli, register_root, remove_root, requires

pytestmark = requires("root", "overlay")


def first_disk() -> tuple[int, int]:
    with open("/proc/partitions") as f:
        for line in f.read().splitlines()[2:]:
            major, minor, _blocks, _name = line.split()
            return int(major), int(minor)
    pytest.skip("no block device in /proc/partitions to make a node of")


@pytest.fixture
def root() -> Iterator[str]:
    path = register_root(tempfile.mkdtemp(prefix="pc-distro-devnodes-"))
    try:
        yield path
    finally:
        remove_root(path)


def pc(root: str, *args: str) -> subprocess.CompletedProcess[str]:
    return cli(*args, env={"PYCONT_ROOT": root}, timeout=120)


def ok(root: str, *args: str) -> str:
    r = pc(root, *args)
    assert r.returncode == 0, f"pycont {' '.join(args)}: {r.stderr}"
    return r.stdout


@pytest.fixture
def image_with_nodes(root: str) -> str:
    """An image whose top layer holds disk/sdx (the first disk) and tmp/zero (c 1:5): made by
    mknod in a container, committed, saved, removed and loaded back from the archive."""
    major, minor = first_disk()
    name, ref = f"pc-distro-{uuid.uuid4().hex[:8]}", "pc-distro-devnodes:1"
    script = f"mkdir /disk && mknod -m 640 /disk/sdx b {major} {minor} && mknod /tmp/zero c 1 5"
    ok(root, "run", "--name", name, "busybox", "sh", "-c", script)
    ok(root, "commit", name, ref)
    ok(root, "rm", name)
    archive = os.path.join(root, "devnodes.tar")
    ok(root, "save", "-o", archive, ref)
    ok(root, "rmi", ref)
    assert ok(root, "load", "-i", archive) == f"Loaded image: {ref}\n"
    return ref


def test_nodes_from_a_layer_exist_but_cannot_be_opened(root: str, image_with_nodes: str) -> None:
    major, minor = first_disk()
    script = (
        "ls -ln /disk/sdx /tmp/zero; "
        "head -c1 /disk/sdx >/dev/null; echo sdx=$?; head -c1 /tmp/zero >/dev/null; echo zero=$?"
    )
    r = pc(root, "run", "--rm", image_with_nodes, "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    sdx, zero, *rest = r.stdout.splitlines()
    assert sdx.startswith("brw-r-----") and f"{major}, {minor:>3}" in sdx, sdx
    assert zero.startswith("crw-") and "1,   5" in zero, zero
    assert rest == ["sdx=1", "zero=1"]
    assert r.stderr.count("Permission denied") == 2, r.stderr
    assert "/disk/sdx: Permission denied" in r.stderr  # EACCES: nodev (open(2))
    # The control: --privileged (docker's too) may use them, so they are real nodes. The host
    # itself may forbid its disks (EPERM from its own devices cgroup: a CI sandbox); never EACCES.
    r = pc(root, "run", "--rm", "--privileged", image_with_nodes, "sh", "-c", script)
    assert r.stdout.splitlines()[3] == "zero=0", r.stderr
    assert "Permission denied" not in r.stderr


def test_a_node_made_inside_cannot_be_opened_anywhere(root: str, tmp_path: object) -> None:
    vol = tempfile.mkdtemp(prefix="pc-distro-vol-")
    try:
        script = "; ".join(
            f"mknod {d}/z c 1 5 && head -c1 {d}/z >/dev/null; echo {d}=$?"
            for d in ("/tmp", "/dev", "/v")
        )
        r = pc(root, "run", "--rm", "-v", f"{vol}:/v", "busybox", "sh", "-c", script)
        assert r.stdout.splitlines() == ["/tmp=1", "/dev=1", "/v=1"], r.stderr
        assert r.stderr.count("Permission denied") == 3, r.stderr
        assert os.path.exists(os.path.join(vol, "z"))  # made, just not usable
    finally:
        shutil.rmtree(vol)


def test_the_runtimes_devices_still_work(root: str) -> None:
    script = (
        "echo x > /dev/null && head -c4 /dev/zero | wc -c && head -c4 /dev/urandom | wc -c "
        "&& head -c4 /dev/full | wc -c && ls /dev/pts/ptmx"
    )
    r = pc(root, "run", "--rm", "busybox", "sh", "-c", script)
    assert (r.returncode, r.stdout.split(), r.stderr) == (0, ["4", "4", "4", "/dev/pts/ptmx"], "")


def test_the_terminal_works(root: str) -> None:
    """pycont has no -t: the container shares the caller's terminal, and /dev/tty (a bind of
    the host's 5:0, which names the caller's controlling terminal) must still open."""
    if not shutil.which("script"):
        pytest.skip("needs script(1) (util-linux) for a terminal")
    cmd = [sys.executable, "-m", "pycont", "run", "--rm", "busybox", "sh", "-c",
           "echo hello > /dev/tty && echo tty=$?"]  # fmt: skip
    env = {**os.environ, "PYCONT_ROOT": root, "PYTHONPATH": REPO}
    # script(1) runs the CLI in a new session whose controlling terminal is a pty.
    r = subprocess.run(
        ["script", "-qefc", shlex.join(cmd), "/dev/null"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert [line.strip() for line in r.stdout.splitlines()] == ["hello", "tty=0"]
