"""Rootless: an unprivileged user (uid 1000) runs containers through a user namespace.

Root is needed only to become that user (setpriv). The package is copied where uid 1000 can
read it (a CI checkout may sit under /root, mode 700) and run by Debian's world-readable
/usr/bin/python3, with HOME and PYCONT_ROOT in a folder uid 1000 owns.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.helpers import (
    REPO,
    check_store,
    mountinfo_lines,
    pids_in_pid_namespace,
    process_gone,
    register_root,
    requires,
    wait_for,
)

pytestmark = requires("root", "userns", "overlay")

UID = 1000
PYTHON = "/usr/bin/python3"


@dataclass
class Rootless:
    home: str
    root: str
    pkg: str

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``python3 -m pycont ARGS`` as uid 1000."""
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": self.home,
            "PYCONT_ROOT": self.root,
            "PYTHONPATH": self.pkg,
            "PYTHONDONTWRITEBYTECODE": "1",
            "LANG": "C.UTF-8",
            # its command server in this home (not /tmp/pycont-1000), stopped at the end
            "PYCONT_CLI_SERVER_DIR": os.path.join(self.home, "cli"),
        }
        return subprocess.run(
            ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", PYTHON, "-m",
             "pycont", *args],
            env=env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )  # fmt: skip

    def containers(self) -> list[str]:
        d = os.path.join(self.root, "containers")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []


def _readable_copy_of_the_package() -> str:
    pkg = tempfile.mkdtemp(prefix="pycont-rootless-pkg-")
    shutil.copytree(
        os.path.join(REPO, "pycont"),
        os.path.join(pkg, "pycont"),
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    # and the one dependency the container's start needs (pyseccomp, a single module): the
    # install a user would have made with pip.
    import pyseccomp

    shutil.copy(pyseccomp.__file__, pkg)
    for dirpath, _dirnames, filenames in os.walk(pkg):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o644)
    return pkg


@pytest.fixture(scope="module")
def rootless() -> Iterator[Rootless]:
    try:
        pwd.getpwuid(UID)
    except KeyError:
        pytest.skip(f"needs a user with uid {UID}")
    for tool in ("setpriv", PYTHON):
        if not shutil.which(tool):
            pytest.skip(f"needs {tool}")
    pkg = _readable_copy_of_the_package()
    home = tempfile.mkdtemp(prefix="pycont-rootless-home-")
    os.chown(home, UID, UID)
    env = Rootless(home=home, root=register_root(os.path.join(home, "pycont")), pkg=pkg)
    try:
        yield env
    finally:
        # remove what the tests left, as its owner would; then check nothing is left
        left = env.containers()
        if left:
            env.cli("rm", "-f", *left)
        check_store(env.root)
        env.cli("system", "server", "stop")
        shutil.rmtree(home)
        shutil.rmtree(pkg)
        assert left == [], f"rootless containers left by a test: {left}"


def skip_if_the_kernel_refused(r: subprocess.CompletedProcess[str]) -> None:
    """pycont names the syscall and errno when the kernel refuses a user namespace."""
    if r.returncode == 125 and re.search(
        r"(unshare|clone)\(.*CLONE_NEWUSER.*\[E[A-Z]+\]", r.stderr
    ):
        pytest.skip(f"the kernel refused a user namespace to uid {UID}: {r.stderr.strip()}")


def test_rootless_run(rootless: Rootless) -> None:
    r = rootless.cli("run", "--rm", "busybox", "sh", "-c", "id -u; cat /proc/self/uid_map; echo $$")
    skip_if_the_kernel_refused(r)
    assert r.returncode == 0, r.stderr
    uid, uid_map, pid = r.stdout.splitlines()
    assert uid == "0"  # root inside ...
    assert uid_map.split() == ["0", str(UID), "1"]  # ... is uid 1000 outside, and only it
    assert pid == "1"
    assert r.stderr == ""
    assert rootless.containers() == []


def test_rootless_detached_exec_and_rm(rootless: Rootless) -> None:
    name = "rootless-sleeper"
    r = rootless.cli("run", "-d", "--name", name, "busybox", "sleep", "1000")
    skip_if_the_kernel_refused(r)
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    pid = int(rootless.cli("inspect", "-f", "{{.State.Pid}}", name).stdout)
    assert pid > 0
    # on the host, the container's root is uid 1000
    with open(f"/proc/{pid}/status") as f:
        uids = next(ln for ln in f if ln.startswith("Uid:")).split()[1:]
    assert uids == [str(UID)] * 4
    for ns in ("user", "pid", "mnt"):
        assert os.stat(f"/proc/{pid}/ns/{ns}").st_ino != os.stat(f"/proc/self/ns/{ns}").st_ino
    pid_ns = os.stat(f"/proc/{pid}/ns/pid").st_ino
    with open(os.path.join(rootless.root, "containers", cid, "state.json")) as f:
        shim = json.load(f)["shim_pid"]
    assert shim > 0 and not process_gone(shim)

    r = rootless.cli("exec", name, "sh", "-c", "id -u; readlink /proc/self/ns/pid; touch /made")
    assert r.returncode == 0, r.stderr
    uid, link = r.stdout.split()
    assert uid == "0"
    assert link == os.readlink(f"/proc/{pid}/ns/pid")
    upper = rootless.cli("inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", name).stdout.strip()
    assert os.stat(os.path.join(upper, "made")).st_uid == UID  # made by "root" inside

    processes = pids_in_pid_namespace(pid_ns)
    assert pid in processes
    r = rootless.cli("rm", "-f", name)
    assert (r.returncode, r.stdout, r.stderr) == (0, f"{name}\n", "")
    assert rootless.containers() == []
    for p in processes:
        wait_for(lambda p=p: process_gone(p), timeout=15, what=f"process {p} to end")
    assert pids_in_pid_namespace(pid_ns) == []
    assert mountinfo_lines(cid) == []
    wait_for(lambda: process_gone(shim), timeout=15, what="the shim to exit")


def test_rootless_network_is_slirp4netns_or_says_why_not(rootless: Rootless) -> None:
    """Without root no veth can reach a host bridge: slirp4netns where this user can open
    /dev/net/tun, else loopback only, with the reason in inspect."""
    tun = os.stat("/dev/net/tun") if os.path.exists("/dev/net/tun") else None
    usable = bool(shutil.which("slirp4netns")) and tun is not None and tun.st_mode & 0o006 == 0o006
    r = rootless.cli("run", "-d", "--name", "rootless-net", "busybox", "sleep", "60")
    skip_if_the_kernel_refused(r)
    assert r.returncode == 0, r.stderr
    try:
        doc = json.loads(rootless.cli("inspect", "rootless-net").stdout)[0]
        links = rootless.cli("exec", "rootless-net", "ls", "/sys/class/net").stdout.split()
        if usable:
            assert doc["HostConfig"]["NetworkMode"] == "slirp4netns"
            assert sorted(links) == ["lo", "tap0"]
        else:
            assert doc["HostConfig"]["NetworkMode"] == "none"
            assert links == ["lo"]
            note = doc["NetworkSettings"]["Pycont"]["Note"]
            assert note.startswith("rootless: loopback only (") and "slirp4netns" in note
        refused = rootless.cli("run", "--rm", "-p", "8080:80", "busybox", "true")
        assert (refused.returncode == 0) == usable
    finally:
        rootless.cli("rm", "-f", "rootless-net")
