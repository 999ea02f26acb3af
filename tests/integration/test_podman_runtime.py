"""podman drives pycont's OCI runtime: ``podman --runtime <pycont-oci> run/exec/stop/rm``.

podman (through conmon) calls ``pycont-oci create/start/exec/kill/delete`` as it calls runc.
podman runs as these machines need it (tests/peers.py): cgroupfs, rlimits below the hard
limits, private storage in a temporary folder, no network. The image is busybox-static imported
from a tar (no registry here). Afterwards nothing of the containers is left: no process, no
cgroup, no mount, no state directory under the runtime's --root.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import peers
from tests.helpers import cgroup_dirs, process_gone, requires, wait_for
from tests.integration.test_oci_runtime import busybox_tar
from tests.peers import ULIMITS, Run, ensure_tools, scratch

pytestmark = [requires("root"), pytest.mark.timeout(600)]

IMAGE = "localhost/pycont-oci-busybox:latest"
RUN = ("run", "--network", "none", *ULIMITS)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    ensure_tools({"podman": "podman", "conmon": "conmon"})
    # a short name: podman refuses a runroot longer than 50 characters
    with scratch(tmp_path_factory.mktemp("pod")) as path:
        yield path


@pytest.fixture(scope="module")
def state_root(work: Path) -> Path:
    return work / "oci-state"


@pytest.fixture(scope="module")
def runtime(work: Path, state_root: Path) -> str:
    """pycont-oci with its state under ``work``: a two-line wrapper, as podman takes a path."""
    entry = Path(sys.executable).with_name("pycont-oci")
    cmd = f'"{entry}"' if entry.exists() else f'"{sys.executable}" -m pycont.oci.cli'
    wrapper = work / "pycont-oci"
    pycont_root = os.environ.get("PYCONT_ROOT", "")
    wrapper.write_text(
        f'#!/bin/sh\nexport PYCONT_ROOT=\'{pycont_root}\'\nexec {cmd} --root "{state_root}" "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return os.fspath(wrapper)


@pytest.fixture(scope="module")
def podman(work: Path, runtime: str) -> Iterator[Run]:
    with peers.podman(work, runtime=runtime) as podman_run:
        podman_run("import", busybox_tar(os.fspath(work / "busybox.tar")), IMAGE)
        yield podman_run


def left_of(cid: str, state_root: Path) -> list[str]:
    """What of container ``cid`` is still on the machine."""
    found = [f"state dir {p}" for p in [state_root / cid] if p.exists()]
    found += [f"cgroup {d}" for d in cgroup_dirs(f"libpod-{cid}")]
    with open("/proc/self/mountinfo") as f:
        found += [f"mount {line.split()[4]}" for line in f if cid in line]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read()
                if cid.encode() in cmdline:
                    args = cmdline.replace(b"\0", b" ").decode(errors="replace")
                    found.append(f"process {entry}: {args[:150]}")
            except OSError:
                continue
    return found


def assert_nothing_left(cid: str, state_root: Path) -> None:
    # conmon's exit command (podman container cleanup CID) may still be finishing
    wait_for(lambda: not left_of(cid, state_root), timeout=30, what=f"the end of {cid[:12]}")


def test_run_rm_echo(podman: Run, state_root: Path) -> None:
    done = podman(*RUN, "--rm", IMAGE, "echo", "hi")
    assert done.stdout == "hi\n"
    assert os.listdir(state_root) == []


def test_run_sees_the_security_defaults(podman: Run) -> None:
    script = "grep -E '^(CapBnd|Seccomp):' /proc/self/status; wc -c < /proc/keys; hostname"
    done = podman(*RUN, "--rm", "--hostname", "pc-oci", IMAGE, "sh", "-c", script)
    lines = done.stdout.split("\n")
    # podman's default capabilities (11 of Docker's 14: no MKNOD, NET_RAW, AUDIT_WRITE)
    assert lines[0] == "CapBnd:\t00000000800405fb"
    assert lines[1:4] == ["Seccomp:\t2", "0", "pc-oci"]


def test_terminal_user_and_user_namespace(podman: Run) -> None:
    # -t: the pty's master goes to conmon over its console socket (SCM_RIGHTS)
    tty = podman(*RUN, "--rm", "-t", IMAGE, "sh", "-c", "tty; ls -l /dev/console")
    assert tty.stdout.split()[0] == "/dev/pts/0" and "136," in tty.stdout
    user = podman(*RUN, "--rm", "--user", "65534:65534", IMAGE, "sh", "-c", "id -u; id -g")
    assert user.stdout.split() == ["65534", "65534"]
    remap = ("--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536")
    userns = podman(*RUN, "--rm", *remap, IMAGE, "sh", "-c", "id -u; cat /proc/self/uid_map")
    assert userns.stdout.split() == ["0", "0", "100000", "65536"]


def test_exit_code_and_missing_command(podman: Run) -> None:
    assert podman(*RUN, "--rm", IMAGE, "sh", "-c", "exit 3", check=False).returncode == 3
    missing = podman(*RUN, "--rm", IMAGE, "no-such-command", check=False)
    assert missing.returncode == 127
    assert "executable file not found" in missing.stderr


def test_detached_exec_stop_rm_leave_nothing(podman: Run, state_root: Path) -> None:
    cid = podman(*RUN, "-d", IMAGE, "sleep", "100").stdout.strip()
    pid = int(podman("inspect", "--format", "{{.State.Pid}}", cid).stdout)
    assert (state_root / cid).is_dir()
    assert podman("exec", cid, "echo", "in").stdout == "in\n"
    assert podman("exec", "-t", cid, "tty").stdout.strip() == "/dev/pts/0"
    # exec joins the container: it sees the container's PID 1 and is in its cgroup
    ps = podman("exec", cid, "sh", "-c", "cat /proc/1/cmdline; echo; cat /proc/self/cgroup")
    assert ps.stdout.startswith("sleep\x00100\x00\n") and f"libpod-{cid}" in ps.stdout
    podman("stop", "-t", "1", cid)
    wait_for(lambda: process_gone(pid), what="the container's init to exit")
    podman("rm", "-f", cid)
    assert_nothing_left(cid, state_root)


def test_pause_unpause_and_rm_of_a_paused_container(podman: Run, state_root: Path) -> None:
    cid = podman(*RUN, "-d", IMAGE, "sleep", "100").stdout.strip()
    podman("pause", cid)
    assert podman("inspect", "--format", "{{.State.Status}}", cid).stdout.strip() == "paused"
    podman("unpause", cid)
    assert podman("exec", cid, "echo", "thawed").stdout == "thawed\n"
    podman("pause", cid)
    podman("rm", "-f", "-t", "0", cid)
    assert_nothing_left(cid, state_root)


def test_join_the_namespaces_of_another_container(podman: Run, state_root: Path) -> None:
    """--network/--pid container:X: config.json names X's namespaces by path (setns(2))."""
    first = podman(*RUN, "-d", IMAGE, "sleep", "100").stdout.strip()
    shared = ("--network", f"container:{first}", "--pid", f"container:{first}")
    done = podman("run", *ULIMITS, "--rm", *shared, IMAGE, "cat", "/proc/1/cmdline")
    assert done.stdout == "sleep\x00100\x00"
    podman("rm", "-f", "-t", "0", first)
    assert_nothing_left(first, state_root)


def test_rm_force_of_a_running_container(podman: Run, state_root: Path) -> None:
    cid = podman(*RUN, "-d", IMAGE, "sleep", "100").stdout.strip()
    pid = int(podman("inspect", "--format", "{{.State.Pid}}", cid).stdout)
    podman("rm", "-f", "-t", "0", cid)
    assert process_gone(pid)
    assert_nothing_left(cid, state_root)
