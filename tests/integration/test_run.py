"""``pycont.run``: a real container on the real kernel, checked from inside and from the host.

Each claim is checked on what the kernel shows: /proc/<pid>/ns/* inodes, NSpid, the
container's own mountinfo, and what a shell inside can see and do.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

import pycont
from pycont.namespaces import Namespace, nspid
from tests.helpers import cli, container_ids, requires

pytestmark = requires("root", "overlay")

SEVEN = [ns.procname for ns in Namespace]
# run()'s keyword for each namespace, and its name under /proc/<pid>/ns
HOST_MODES = [
    ("pid", "pid"),
    ("network", "net"),
    ("ipc", "ipc"),
    ("uts", "uts"),
    ("userns", "user"),
    ("cgroupns", "cgroup"),
]


def sh(script: str, **options: object) -> pycont.Container:
    """Run a shell script in busybox, wait for it, return the container (output in .output)."""
    options.setdefault("rm", True)
    return pycont.run("busybox", ["sh", "-c", script], timeout=30, **options)


def host_ns(ns: str) -> int:
    return os.stat(f"/proc/self/ns/{ns}").st_ino


def ctr_ns(pid: int, ns: str) -> int:
    return os.stat(f"/proc/{pid}/ns/{ns}").st_ino


def mounts_of(pid: int) -> dict[str, tuple[str, set[str]]]:
    """Mount point -> (fstype, options) as the container's process sees its mount table."""
    out = {}
    with open(f"/proc/{pid}/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            out[fields[4]] = (fields[sep + 1], set(fields[5].split(",")))
    return out


@pytest.fixture
def sleeper(name: str) -> Iterator[pycont.Container]:
    """A detached container whose PID 1 is `sleep 1000`."""
    c = pycont.run("busybox", ["sleep", "1000"], detach=True, name=name)
    yield c
    c.remove(force=True)


# -- the first process, its pid and its host name ------------------------------------------
@pytest.mark.parametrize("how", ["forkserver", "spawn", "fork"])
def test_pid_1_and_hostname(how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCONT_LAUNCH", how)
    c = sh("echo $$; hostname")
    assert c.output.splitlines() == ["1", c.id[:12]]


def test_given_hostname() -> None:
    c = sh("hostname; cat /proc/sys/kernel/hostname", hostname="web1")
    assert c.output.splitlines() == ["web1", "web1"]
    assert os.uname().nodename != "web1"


def test_exit_code_propagates() -> None:
    c = sh("exit 3", rm=False)
    assert c.exit_code == 3
    assert c.wait(timeout=30) == 3
    assert c.status == "exited"
    assert c.inspect()["State"]["ExitCode"] == 3
    c.remove()


def test_exit_code_propagates_with_rm() -> None:
    before = container_ids()
    c = sh("exit 3", rm=True)
    assert c.exit_code == 3
    assert c.wait(timeout=30) == 3
    assert container_ids() == before


def test_killed_by_a_signal_is_128_plus_n(sleeper: pycont.Container) -> None:
    # PID 1 of a namespace gets only SIGKILL and SIGSTOP from outside unless it has a handler
    sleeper.kill(signal.SIGKILL)
    assert sleeper.wait(timeout=30) == 128 + signal.SIGKILL
    assert sleeper.status == "exited"


def test_a_process_killed_by_sigterm_is_143() -> None:
    # Not PID 1 of its own namespace: SIGTERM without a handler kills it.
    c = sh("kill -TERM $$; sleep 5", pid="host", userns="host")
    assert c.exit_code == 128 + signal.SIGTERM


# -- namespaces ------------------------------------------------------------------------------
# As root, Docker's default is no user namespace: one that maps every id to itself would
# isolate nothing (test_security.py checks what holds the container in instead).
DEFAULT_SHARED = ["user"] if os.geteuid() == 0 else []


@pytest.mark.parametrize("ns", SEVEN)
def test_each_namespace_is_the_containers_own(sleeper: pycont.Container, ns: str) -> None:
    if ns in DEFAULT_SHARED:
        assert ctr_ns(sleeper.pid, ns) == host_ns(ns)
    else:
        assert ctr_ns(sleeper.pid, ns) != host_ns(ns)


def test_userns_private_as_root_is_the_identity_map(name: str) -> None:
    c = pycont.run("busybox", ["sleep", "1000"], detach=True, name=name, userns="private")
    try:
        assert ctr_ns(c.pid, "user") != host_ns("user")
        with open(f"/proc/{c.pid}/uid_map") as f:
            assert f.read().split() == (
                ["0", "0", "4294967295"] if os.geteuid() == 0 else ["0", str(os.geteuid()), "1"]
            )
    finally:
        c.remove(force=True)


@pytest.mark.parametrize(("option", "ns"), HOST_MODES)
def test_host_mode_shares_that_namespace_only(name: str, option: str, ns: str) -> None:
    c = pycont.run("busybox", ["sleep", "1000"], detach=True, name=name, **{option: "host"})
    try:
        shared = [n for n in SEVEN if ctr_ns(c.pid, n) == host_ns(n)]
        assert sorted(shared) == sorted({ns, *DEFAULT_SHARED})
        assert c.inspect()["Config"]["Cmd"] == ["sleep", "1000"]
        # and the container still works: exec joins what is private, not what is shared
        assert c.exec(["sh", "-c", "echo ok"]).output == "ok\n"
    finally:
        c.remove(force=True)


@pytest.mark.parametrize("how", ["forkserver", "spawn", "fork"])
def test_only_stdio_is_passed_in(how: str, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # OCI runtime spec, like docker: the process gets stdin, stdout and stderr, no other fd
    # of whoever started it (a host fd inside would be a way out of the container's root).
    monkeypatch.setenv("PYCONT_LAUNCH", how)
    fds = "ls /proc/$$/fd; true"  # `; true`: sh forks ls instead of becoming it
    assert sh(fds).output.split() == ["0", "1", "2"]
    c = pycont.run("busybox", ["sleep", "1000"], detach=True, name=name)
    try:
        assert sorted(os.listdir(f"/proc/{c.pid}/fd")) == ["0", "1", "2"]
        assert c.exec(["sh", "-c", fds]).output.split() == ["0", "1", "2"]
    finally:
        c.remove(force=True)


def test_nspid_ends_with_1(sleeper: pycont.Container) -> None:
    ids = nspid(sleeper.pid)
    assert ids[0] == sleeper.pid
    assert ids[-1] == 1
    with open(f"/proc/{sleeper.pid}/status") as f:
        line = next(ln for ln in f if ln.startswith("NSpid:"))
    assert line.split()[-1] == "1"


def test_ps_shows_only_the_containers_processes() -> None:
    c = sh("ps; true")
    rows = [line.split() for line in c.output.splitlines()[1:]]
    assert sorted(int(r[0]) for r in rows) == [1, 2], c.output
    # busybox runs the applet in the forked shell: `{ps} sh -c ps; true`
    assert all("sh -c ps; true" in " ".join(r[2:]) for r in rows), c.output


def test_proc_is_fresh(sleeper: pycont.Container) -> None:
    out = sleeper.exec(["sh", "-c", "cat /proc/1/comm; ls /proc | grep -c '^[0-9]*$'"]).output
    comm, count = out.split()
    assert comm == "sleep"
    assert int(count) <= 4  # sleep, the exec'd sh, grep, ls: not the host's hundreds
    fstype, opts = mounts_of(sleeper.pid)["/proc"]
    assert fstype == "proc"
    inside = sleeper.exec(["readlink", "/proc/self/ns/pid"]).output.strip()
    assert inside == os.readlink(f"/proc/{sleeper.pid}/ns/pid")


def test_sys_is_read_only(sleeper: pycont.Container) -> None:
    r = sleeper.exec(["touch", "/sys/x"])
    assert r.exit_code != 0
    assert "Read-only file system" in r.output
    fstype, opts = mounts_of(sleeper.pid)["/sys"]
    assert fstype == "sysfs" and "ro" in opts


def test_dev_has_the_standard_devices(sleeper: pycont.Container) -> None:
    names = set(sleeper.exec(["ls", "/dev"]).output.split())
    assert {"null", "zero", "urandom", "tty", "pts", "shm"} <= names
    r = sleeper.exec(["sh", "-c", "echo x > /dev/null && head -c 16 /dev/urandom | wc -c"])
    assert (r.exit_code, r.output.strip()) == (0, "16")
    mounts = mounts_of(sleeper.pid)
    assert mounts["/dev"][0] == "tmpfs"
    assert mounts["/dev/pts"][0] == "devpts"
    assert mounts["/dev/shm"][0] == "tmpfs"
    assert mounts["/"][0] == "overlay"


def test_the_host_root_is_not_reachable(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    marker.write_text("host")
    c = sh(f"test -e {marker} && echo visible || echo hidden; test -e /work && echo work || true")
    assert c.output.splitlines() == ["hidden"]


def test_writes_stay_in_the_containers_layer(name: str) -> None:
    c = sh("echo hi > /etc/x && cat /etc/x", rm=False, name=name)
    assert c.output == "hi\n"
    data = c.inspect()["GraphDriver"]["Data"]
    lower = data["LowerDir"].split(":")[-1]
    assert os.path.isdir(os.path.join(lower, "etc"))
    assert not os.path.exists(os.path.join(lower, "etc", "x"))
    assert Path(data["UpperDir"], "etc", "x").read_text() == "hi\n"
    # another container of the same image does not see it
    assert sh("test -e /etc/x && echo seen || echo unseen").output == "unseen\n"
    c.remove()


def test_env_and_workdir() -> None:
    c = sh('echo "$K"; pwd; echo "$HOSTNAME"', env=["K=V w"], workdir="/tmp")
    assert c.output.splitlines() == ["V w", "/tmp", c.id[:12]]


def test_workdir_is_created_when_missing() -> None:
    assert sh("pwd", workdir="/new/dir").output == "/new/dir\n"


def test_env_without_value_passes_the_callers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCONT_TEST_FROM_HOST", "from host")
    monkeypatch.delenv("PYCONT_TEST_UNSET", raising=False)
    c = sh(
        'echo "$PYCONT_TEST_FROM_HOST"; echo "${PYCONT_TEST_UNSET-unset}"',
        env=["PYCONT_TEST_FROM_HOST", "PYCONT_TEST_UNSET"],
    )
    assert c.output.splitlines() == ["from host", "unset"]


def test_cli_env_without_value_passes_the_callers() -> None:
    r = cli(
        "run", "--rm", "-e", "PYCONT_TEST_FROM_HOST", "busybox", "sh", "-c",
        'echo "$PYCONT_TEST_FROM_HOST"',
        env={"PYCONT_TEST_FROM_HOST": "cli value"},
    )  # fmt: skip
    assert (r.returncode, r.stdout, r.stderr) == (0, "cli value\n", "")


# -- errors before the command runs ---------------------------------------------------------
def test_command_not_found_with_rm_leaves_nothing() -> None:
    before = container_ids()
    with pytest.raises(pycont.CommandNotFound) as info:
        pycont.run("busybox", ["nosuchcommand"], rm=True)
    assert info.value.exit_code == 127
    assert "nosuchcommand" in str(info.value)
    assert container_ids() == before


def test_command_not_found_without_rm_keeps_an_exited_container(name: str) -> None:
    # docker: the container stays, with exit code 127, until removed
    with pytest.raises(pycont.CommandNotFound):
        pycont.run("busybox", ["nosuchcommand"], name=name)
    c = pycont.get(name)
    assert c.status == "exited"
    assert c.exit_code == 127
    c.remove()


def test_command_not_executable() -> None:
    before = container_ids()
    with pytest.raises(pycont.CommandNotExecutable) as info:
        pycont.run("busybox", ["/etc"], rm=True)
    assert info.value.exit_code == 126
    assert "/etc" in str(info.value)
    assert container_ids() == before


def test_unknown_image_creates_nothing() -> None:
    before = container_ids()
    with pytest.raises(pycont.ImageNotFound) as info:
        pycont.run("nosuchimage", ["true"])
    assert "nosuchimage" in str(info.value)
    assert container_ids() == before


def test_duplicate_name_leaves_the_first_untouched(sleeper: pycont.Container) -> None:
    pid, before = sleeper.pid, container_ids()
    with pytest.raises(pycont.NameConflict) as info:
        pycont.run("busybox", ["true"], name=sleeper.name)
    assert sleeper.name in str(info.value)
    assert container_ids() == before
    assert sleeper.status == "running" and sleeper.pid == pid
    assert pycont.get(sleeper.name).id == sleeper.id
    assert sleeper.exec(["true"]).exit_code == 0


@pytest.mark.parametrize("bad", ["!", "a", "-x", "web app", "web/1"])
def test_invalid_name(bad: str) -> None:
    before = container_ids()
    with pytest.raises(pycont.UsageError) as info:
        pycont.run("busybox", ["true"], name=bad)
    assert repr(bad) in str(info.value)
    assert container_ids() == before


def test_hostname_in_the_output_is_the_id_prefix() -> None:
    c = sh("hostname")
    assert re.fullmatch(r"[0-9a-f]{12}\n", c.output)
