"""pycont-oci driven directly, as a container manager would: a bundle in, the lifecycle of
runtime.md out (create -> created, start -> running, kill -> stopped, delete -> gone), and
every error leaving the machine as it was: no state directory, cgroup, process or mount.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pycont.images.busybox import _find_static_busybox, busybox_entries
from pycont.images.layers import write_tar
from tests.helpers import cgroup_dirs, process_gone, requires, wait_for

# cgroup_v2: the v2 VM (tests/vm/run_v2.py) runs these too: the OCI face on a pure v2 tree.
pytestmark = [pytest.mark.cgroup_v2, requires("root")]

OCI = [sys.executable, "-m", "pycont.oci.cli"]
DOCKER_CAPS = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
]


def busybox_tar(path: str) -> str:
    """A root filesystem of busybox-static (the same files as pycont's busybox image)."""
    with open(path, "wb") as f:
        write_tar(busybox_entries(_find_static_busybox()), f)
    return path


@pytest.fixture(scope="module")
def rootfs_tar(tmp_path_factory: pytest.TempPathFactory) -> str:
    return busybox_tar(str(tmp_path_factory.mktemp("bb") / "rootfs.tar"))


def config(args: list[str], cid: str, **linux: Any) -> dict[str, Any]:
    """A config.json as podman writes one (busybox-sized): new pid/net/ipc/uts/mount
    namespaces, Docker's masked and read-only paths, the container's cgroup at cgroupsPath."""
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        },
    ]
    return {
        "ociVersion": "1.0.2",
        "process": {
            "args": args,
            "env": ["PATH=/bin:/sbin:/usr/bin", "TERM=xterm"],
            "cwd": "/",
            "user": {"uid": 0, "gid": 0},
            "capabilities": {s: DOCKER_CAPS for s in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        },
        "root": {"path": "rootfs"},
        "hostname": "pc-oci-test",
        "mounts": mounts,
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "cgroupsPath": f"/pycont-oci-test/{cid}",
            "resources": {"memory": {"limit": 64 << 20}, "pids": {"limit": 64}},
            "maskedPaths": ["/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"],
            **linux,
        },
    }


class Runtime:
    """pycont-oci with a private --root, and what the tests need to look at."""

    def __init__(self, root: str, tmp: str, rootfs_tar: str) -> None:
        self.root, self.tmp, self.rootfs_tar = root, tmp, rootfs_tar
        self.ids: list[str] = []
        self.pids: list[int] = []

    def __call__(
        self, *args: str, check: bool = True, stdout: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a verb. Output goes to files, never pipes: the container's processes inherit
        them and would hold a pipe open long after pycont-oci has exited."""
        with tempfile.TemporaryFile("w+") as err, tempfile.TemporaryFile("w+") as out:
            code = subprocess.run(
                [*OCI, "--root", self.root, *args],
                stdin=subprocess.DEVNULL,
                stdout=open(stdout, "w") if stdout else out,  # noqa: SIM115
                stderr=err,
                timeout=60,
                check=False,
            ).returncode
            err.seek(0)
            out.seek(0)
            done = subprocess.CompletedProcess(args, code, out.read(), err.read())
        if check and code != 0:
            pytest.fail(f"pycont-oci {' '.join(args)}: exit {code}: {done.stderr}")
        return done

    def bundle(self, cid: str, args: list[str], **linux: Any) -> str:
        path = os.path.join(self.tmp, f"bundle-{cid}")
        os.makedirs(os.path.join(path, "rootfs"))
        with tarfile.open(self.rootfs_tar) as tar:
            tar.extractall(os.path.join(path, "rootfs"))  # noqa: S202 - our own busybox tar
        self.write_config(path, config(args, cid, **linux))
        self.ids.append(cid)
        return path

    @staticmethod
    def write_config(path: str, doc: dict[str, Any]) -> None:
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(doc, f)

    def create(self, cid: str, bundle: str, out: str | None = None) -> int:
        pid_file = os.path.join(self.tmp, f"{cid}.pid")
        self("create", "--bundle", bundle, "--pid-file", pid_file, cid, stdout=out or os.devnull)
        with open(pid_file) as f:
            pid = int(f.read())
        self.pids.append(pid)
        return pid

    def state(self, cid: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self("state", cid).stdout)
        return doc

    def left(self, cid: str) -> list[str]:
        """What of container ``cid`` is still on the machine."""
        found = [f"state dir {d}" for d in [os.path.join(self.root, cid)] if os.path.exists(d)]
        found += [f"cgroup {d}" for d in cgroup_dirs(cid)]
        with open("/proc/self/mountinfo") as f:
            found += [f"mount {line.split()[4]}" for line in f if f"bundle-{cid}" in line]
        return found


@pytest.fixture
def oci(tmp_path: Any, rootfs_tar: str) -> Iterator[Runtime]:
    rt = Runtime(str(tmp_path / "state"), str(tmp_path), rootfs_tar)
    yield rt
    for cid in rt.ids:
        rt("delete", "--force", cid, check=False)
    # An init whose create has exited is the orphan of whoever reaps orphans here (PID 1, as
    # conmon would for podman): wait until it has been reaped, not only killed.
    wait_for(
        lambda: not any(os.path.exists(f"/proc/{pid}") for pid in rt.pids),
        timeout=30,
        what=f"the inits {rt.pids} to be reaped",
    )
    assert [leak for cid in rt.ids for leak in rt.left(cid)] == []


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def test_lifecycle_created_running_stopped_deleted(oci: Runtime, name: str) -> None:
    bundle = oci.bundle(name, ["sleep", "100"])
    pid = oci.create(name, bundle)
    st = oci.state(name)
    assert (st["id"], st["status"], st["pid"], st["bundle"]) == (name, "created", pid, bundle)
    # The init is in its own PID namespace and in the cgroup the config names, limits set.
    assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    cgroup_text = read(f"/proc/{pid}/cgroup")
    assert f"/pycont-oci-test/{name}" in cgroup_text
    assert "sleep" not in read(f"/proc/{pid}/cmdline")  # waiting for start, not exec'd yet

    oci("start", name)
    assert oci.state(name)["status"] == "running"
    wait_for(lambda: "sleep" in read(f"/proc/{pid}/cmdline"), what="the exec")

    refused = oci("delete", name, check=False)
    assert refused.returncode == 1
    assert refused.stderr.startswith("pycont-oci: ") and "running" in refused.stderr
    assert not process_gone(pid)

    oci("kill", name, "KILL")
    wait_for(lambda: oci.state(name)["status"] == "stopped", what="status stopped")
    oci("delete", name)
    assert oci.left(name) == []
    assert (
        oci("state", name, check=False).stderr == f"pycont-oci: container {name} does not exist\n"
    )


def test_container_sees_its_config(oci: Runtime, name: str, tmp_path: Any) -> None:
    script = (
        "hostname; id -u; grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status; "
        "wc -c < /proc/keys; echo 1 > /proc/sys/vm/drop_caches || echo sys-ro; "
        "mkdir /tmp/d || echo mkdir-denied; ulimit -n"
    )
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    }
    bundle = oci.bundle(name, ["sh", "-c", script], seccomp=profile)
    out = str(tmp_path / "out")
    pid = oci.create(name, bundle, out)
    oci("start", name)
    wait_for(lambda: process_gone(pid), what="the container to exit")
    lines = read(out).split("\n")
    assert lines[0:2] == ["pc-oci-test", "0"]
    assert lines[2] == f"CapEff:\t{_mask(DOCKER_CAPS):016x}"
    assert lines[3:5] == ["NoNewPrivs:\t0", "Seccomp:\t2"]
    assert lines[5:8] == ["0", "sys-ro", "mkdir-denied"]
    assert lines[8] == "1024"
    oci("delete", name)


def _mask(caps: list[str]) -> int:
    from pycont.security.capabilities import to_mask

    return to_mask(caps)


def test_limits_and_read_only_cgroup_view(oci: Runtime, name: str, tmp_path: Any) -> None:
    from pycont.cgroups import current_layout, detect

    v2 = detect(current_layout()) == "v2"
    mem, pids = (
        ("memory.max", "pids.max") if v2 else ("memory/memory.limit_in_bytes", "pids/pids.max")
    )
    script = f"cat /sys/fs/cgroup/{mem} /sys/fs/cgroup/{pids}; "
    script += f"echo max > /sys/fs/cgroup/{pids} || echo ro"
    bundle = oci.bundle(name, ["sh", "-c", script])
    out = str(tmp_path / "out")
    pid = oci.create(name, bundle, out)
    host = [d for d in cgroup_dirs(name) if os.path.exists(os.path.join(d, "pids.max"))]
    assert host and read(os.path.join(host[0], "pids.max")).strip() == "64"
    oci("start", name)
    wait_for(lambda: process_gone(pid), what="the container to exit")
    assert read(out).split() == [str(64 << 20), "64", "ro"]
    assert read(os.path.join(host[0], "pids.max")).strip() == "64"
    oci("delete", name)


def test_exec_joins_the_container(oci: Runtime, name: str, tmp_path: Any) -> None:
    bundle = oci.bundle(name, ["sleep", "100"])
    pid = oci.create(name, bundle)
    oci("start", name)
    proc = {
        "args": ["sh", "-c", "hostname; cat /proc/1/cmdline; echo; grep CapEff /proc/self/status"],
        "env": ["PATH=/bin"],
        "cwd": "/tmp",
        "capabilities": {"bounding": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
    }
    pf = tmp_path / "proc.json"
    pf.write_text(json.dumps(proc))
    done = oci("exec", "--process", str(pf), name)
    assert done.stdout.split("\n")[:3] == [
        "pc-oci-test",
        "sleep\x00100\x00",
        "CapEff:\t0000000000000020",
    ]
    # detached, as conmon asks: the pid file names a process in the container's namespaces
    pid_file = tmp_path / "exec.pid"
    proc["args"] = ["sleep", "30"]
    pf.write_text(json.dumps(proc))
    oci("exec", "--detach", "--pid-file", str(pid_file), "--process", str(pf), name)
    epid = int(pid_file.read_text())
    for ns in ("pid", "mnt", "net", "uts", "ipc"):
        assert os.readlink(f"/proc/{epid}/ns/{ns}") == os.readlink(f"/proc/{pid}/ns/{ns}")
    assert read(f"/proc/{epid}/cgroup") == read(f"/proc/{pid}/cgroup")
    missing = oci("exec", name, "no-such-command", check=False)
    assert missing.returncode != 0 and "executable file not found" in missing.stderr
    oci("delete", "--force", name)
    assert process_gone(epid) and process_gone(pid)


def test_hooks_get_the_state(oci: Runtime, name: str, tmp_path: Any) -> None:
    def hook(kind: str, folder: str) -> dict[str, Any]:
        return {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {folder}/{kind}.json"]}

    host = ("prestart", "createRuntime", "createContainer", "poststart", "poststop")
    bundle = oci.bundle(name, ["sleep", "100"])  # still running when poststart runs
    doc = json.loads(read(os.path.join(bundle, "config.json")))
    doc["hooks"] = {k: [hook(k, str(tmp_path))] for k in host}
    # startContainer runs in the container, after pivot_root: its /tmp is the bundle's
    doc["hooks"]["startContainer"] = [hook("startContainer", "/tmp")]
    oci.write_config(bundle, doc)
    pid = oci.create(name, bundle)
    assert not (tmp_path / "poststart.json").exists()
    oci("start", name)
    oci("kill", name, "KILL")
    wait_for(lambda: process_gone(pid), what="the container to exit")
    oci("delete", name)
    states = {k: json.loads((tmp_path / f"{k}.json").read_text()) for k in host}
    states["startContainer"] = json.loads(read(f"{bundle}/rootfs/tmp/startContainer.json"))
    for kind, st in states.items():
        assert (st["id"], st["bundle"]) == (name, bundle), kind
        assert st["pid"] == (0 if kind == "poststop" else pid), kind
    assert states["createRuntime"]["status"] == "creating"
    assert (states["poststart"]["status"], states["poststop"]["status"]) == ("running", "stopped")


def test_join_a_namespace_by_path(oci: Runtime, name: str) -> None:
    first = oci.bundle(name, ["sleep", "100"])
    pid = oci.create(name, first)
    second_id = f"{name}-b"
    ns = [{"type": "network", "path": f"/proc/{pid}/ns/net"}]
    ns += [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    second = oci.bundle(second_id, ["sleep", "100"], namespaces=ns)
    pid2 = oci.create(second_id, second)
    assert os.readlink(f"/proc/{pid2}/ns/net") == os.readlink(f"/proc/{pid}/ns/net")
    assert os.readlink(f"/proc/{pid2}/ns/uts") != os.readlink(f"/proc/{pid}/ns/uts")
    oci("delete", "--force", second_id)
    oci("delete", "--force", name)


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda c: c["process"].update(args=["no-such-command"]), "executable file not found"),
        (lambda c: c["linux"].update(namespaces=[{"type": "pid"}]), "mount namespace"),
        (lambda c: c["mounts"].append({"destination": "/x", "type": "nofs"}), "/x"),
        (lambda c: c["process"]["rlimits"].append({"type": "RLIMIT_BOGUS"}), "RLIMIT_BOGUS"),
        (
            lambda c: c["mounts"].append({"destination": "/proc", "source": "/", "type": "bind"}),
            "only proc may be mounted on /proc",
        ),
        (lambda c: c.update(ociVersion="2.0"), "ociVersion"),
    ],
)
def test_a_failed_create_leaves_nothing(
    oci: Runtime, name: str, breakage: Callable[[dict[str, Any]], None], message: str
) -> None:
    bundle = oci.bundle(name, ["true"])
    doc = json.loads(read(os.path.join(bundle, "config.json")))
    breakage(doc)
    oci.write_config(bundle, doc)
    done = oci("create", "--bundle", bundle, name, check=False)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("pycont-oci: ")
    assert message in done.stderr
    assert oci.left(name) == []


def test_bad_bundle_and_unknown_id(oci: Runtime, name: str, tmp_path: Any) -> None:
    done = oci("create", "--bundle", str(tmp_path / "nothing"), name, check=False)
    assert (done.returncode, done.stderr.count("\n")) == (1, 1)
    assert "config.json" in done.stderr
    assert not os.path.exists(os.path.join(oci.root, name))
    for verb in (["start"], ["kill"], ["delete"], ["state"]):
        done = oci(*verb, name, check=False)
        assert (done.returncode, done.stderr) == (
            1,
            f"pycont-oci: container {name} does not exist\n",
        )


def test_duplicate_id_is_refused_and_the_first_kept(oci: Runtime, name: str) -> None:
    bundle = oci.bundle(name, ["sleep", "100"])
    pid = oci.create(name, bundle)
    done = oci("create", "--bundle", bundle, name, check=False)
    assert done.returncode == 1 and "already exists" in done.stderr
    assert oci.state(name)["status"] == "created" and not process_gone(pid)
    oci("kill", name, str(int(signal.SIGKILL)))
    oci("delete", "--force", name)


def test_features() -> None:
    done = subprocess.run([*OCI, "features"], capture_output=True, text=True, check=True)
    doc = json.loads(done.stdout)
    assert doc["ociVersionMin"] <= doc["ociVersionMax"]
    assert "createRuntime" in doc["hooks"] and "rbind" in doc["mountOptions"]
    assert {"pid", "network", "mount", "user", "cgroup"} <= set(doc["linux"]["namespaces"])
    assert doc["linux"]["seccomp"]["enabled"] is True
