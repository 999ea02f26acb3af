"""Nothing escapes: Docker's security defaults in a pycont container, tried from inside.

Each check is what a learner types in ``pycont run --rm -m 64m --pids-limit 64 busybox sh``:
the capabilities, the seccomp mode, the masked and read-only paths, the attempts to lift the
container's own limits, and the mounts pycont refuses. Marked cgroup_v2: the v2 VM runs them too
(tests/vm/run_v2.py). The same checks against podman on runc are in test_security_peers.py.
"""

from __future__ import annotations

import os
import tempfile

import pytest

import pycont
from pycont import cgroups
from pycont.images.store import Store
from pycont.security import capabilities
from tests.helpers import cli, requires

pytestmark = [pytest.mark.cgroup_v2, requires("root")]

DOCKER_MASK = 0xA80425FB  # Docker's 14 default capabilities, as /proc/self/status shows them
LIMITED = {"memory": "64m", "pids_limit": 64}


def sh(script: str, **options: object) -> pycont.Container:
    return pycont.run("busybox", ["sh", "-c", script], timeout=60, **options)


def status_field(output: str, name: str) -> str:
    for line in output.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {name} line in {output!r}")


def test_capabilities_are_dockers_default_fourteen() -> None:
    out = sh("cat /proc/self/status", rm=True).output
    assert capabilities.to_mask(capabilities.DOCKER_DEFAULT) == DOCKER_MASK
    for name in ("CapEff", "CapPrm", "CapBnd"):
        assert int(status_field(out, name), 16) == DOCKER_MASK, name
    # Docker and podman leave the inheritable set empty (CVE-2022-24769), ambient too.
    assert int(status_field(out, "CapInh"), 16) == 0
    assert int(status_field(out, "CapAmb"), 16) == 0


def test_cap_add_and_cap_drop_change_the_sets() -> None:
    out = sh("cat /proc/self/status", rm=True, cap_drop=["ALL"], cap_add=["NET_ADMIN"]).output
    assert capabilities.decode(int(status_field(out, "CapEff"), 16)) == ["CAP_NET_ADMIN"]
    out = sh("cat /proc/self/status", rm=True, cap_drop=["chown", "CAP_KILL"]).output
    kept = capabilities.decode(int(status_field(out, "CapEff"), 16))
    assert "CAP_CHOWN" not in kept and "CAP_KILL" not in kept and len(kept) == 12


def test_seccomp_filter_is_loaded_and_refuses_what_docker_refuses() -> None:
    # busybox's unshare(1) calls unshare(2) with CLONE_NEWUSER: Docker's profile allows that
    # only with CAP_SYS_ADMIN; swapoff(2) needs CAP_SYS_ADMIN; add_key via keyctl is refused.
    c = sh(
        "grep Seccomp: /proc/self/status; unshare -U true; echo unshare=$?; "
        "swapoff /nonexistent; echo swapoff=$?",
        rm=True,
    )
    assert "Seccomp:\t2" in c.output
    assert "unshare=0" not in c.output and "swapoff=0" not in c.output
    assert "Operation not permitted" in c.output
    unconfined = sh("grep Seccomp: /proc/self/status", rm=True, security_opt=["seccomp=unconfined"])
    assert "Seccomp:\t0" in unconfined.output


def test_no_new_privileges_is_set_when_asked() -> None:
    assert "NoNewPrivs:\t0" in sh("grep NoNewPrivs /proc/self/status", rm=True).output
    c = sh("grep NoNewPrivs /proc/self/status", rm=True, security_opt=["no-new-privileges"])
    assert "NoNewPrivs:\t1" in c.output


def test_masked_paths_read_empty_and_proc_sys_is_read_only() -> None:
    c = sh(
        "wc -c < /proc/keys; wc -c < /proc/timer_list; ls /sys/firmware | wc -l; "
        "cat /proc/sys/vm/overcommit_ratio > /proc/sys/vm/overcommit_ratio; echo write=$?; "
        "grep -E ' /proc/(sys|sysrq-trigger|irq|bus|fs) ' /proc/self/mountinfo",
        rm=True,
    )
    lines = c.output.splitlines()
    assert lines[:3] == ["0", "0", "0"], c.output
    # The value written back is the one read: harmless had the write gone through.
    assert "write=1" in c.output and "Read-only file system" in c.output
    ro_mounts = [line for line in lines if " - " in line]
    assert len(ro_mounts) >= 3 and all(" ro," in line for line in ro_mounts), ro_mounts


def test_a_container_cannot_lift_its_own_limits(name: str) -> None:
    c = pycont.run("busybox", ["sleep", "1000"], detach=True, name=name, **LIMITED)
    try:
        attempts = (
            "mount -t tmpfs none /tmp",
            "mount -t cgroup2 none /tmp",
            "mount -t cgroup -o memory none /tmp",
            "echo max > /sys/fs/cgroup/memory.max",
            "echo max > /sys/fs/cgroup/pids.max",
            "echo -1 > /sys/fs/cgroup/memory/memory.limit_in_bytes",
            "echo max > /sys/fs/cgroup/pids/pids.max",
            "umount /sys/fs/cgroup",
            "umount /proc",
            "mount -o remount,rw /sys/fs/cgroup",
        )
        for attempt in attempts:
            r = c.exec(["sh", "-c", attempt])
            assert r.exit_code != 0, f"{attempt!r} succeeded inside the container"
        cg = cgroups.for_container(c.id)
        stats = cg.stats()
        assert stats.memory_limit == 64 * 1024 * 1024
        assert stats.pids_limit == 64
    finally:
        c.remove(force=True)


def test_the_container_sees_its_own_limits_read_only() -> None:
    script = (
        "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max 2>/dev/null || "
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; "
        "grep ' /sys/fs/cgroup' /proc/self/mountinfo"
    )
    c = sh(script, rm=True, **LIMITED)
    lines = c.output.splitlines()
    assert lines[:2] == [str(64 * 1024 * 1024), "64"], c.output
    mounts = [line for line in lines if "/sys/fs/cgroup" in line]
    assert mounts and all(line.split()[5].startswith("ro") for line in mounts), mounts


def test_privileged_keeps_every_capability_and_no_filter() -> None:
    out = sh("cat /proc/self/status; grep ' /sys ' /proc/self/mountinfo", rm=True, privileged=True)
    assert out.exit_code == 0
    # Every capability the caller has: root here may lack some (CAP_SYS_RESOURCE on these
    # machines), and no runtime can give more than its own bounding set.
    everything = capabilities.of_process("self")["CapBnd"]
    assert int(status_field(out.output, "CapEff"), 16) == everything
    assert status_field(out.output, "Seccomp") == "0"
    sys_line = next(line for line in out.output.splitlines() if " /sys " in line)
    assert sys_line.split()[5].startswith("rw")


def test_read_only_root_refuses_writes_but_volumes_stay_writable() -> None:
    with tempfile.TemporaryDirectory(prefix="pycont-test-ro-") as host:
        c = sh(
            "touch /x; echo root=$?; touch /data/y; echo vol=$?",
            rm=True,
            read_only=True,
            volumes=[f"{host}:/data"],
        )
        assert "root=1" in c.output and "vol=0" in c.output, c.output
        assert os.path.exists(os.path.join(host, "y"))


@pytest.mark.parametrize("target", ["/proc", "/sys", "/dev", "/proc/sys", "/sys/fs/cgroup"])
def test_a_volume_onto_the_runtimes_own_mounts_is_refused(target: str) -> None:
    r = cli("run", "--rm", "-v", f"/tmp:{target}", "busybox", "true")
    assert r.returncode == 125
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "the runtime's own mounts" in r.stderr


def test_an_image_whose_proc_is_a_symlink_is_refused(name: str) -> None:
    store = Store()
    ref = f"pycont-test-proclink-{name}:latest"
    with tempfile.TemporaryDirectory(prefix="pycont-test-upper-") as upper:
        os.symlink("/tmp", os.path.join(upper, "proc"))
        store.commit_layer(upper, "busybox", ref, userxattr=False)
    try:
        r = cli("run", "--rm", ref, "true")
        assert r.returncode == 125, r
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "/proc is a symlink" in r.stderr
    finally:
        store.remove(ref, force=True)


def test_no_host_fd_reaches_the_container_on_run_or_exec(name: str) -> None:
    fds = "ls /proc/self/fd"
    assert sh(fds, rm=True).output.split() == ["0", "1", "2", "3"]  # 3: ls's own listing
    c = pycont.run("busybox", ["sleep", "1000"], detach=True, name=name)
    try:
        assert c.exec(["sh", "-c", fds]).output.split() == ["0", "1", "2", "3"]
        assert c.exec(["sh", "-c", "readlink /proc/self/cwd"], workdir="/tmp").output == "/tmp\n"
    finally:
        c.remove(force=True)


def test_no_pycont_helper_is_readable_from_inside_over_100_execs(name: str) -> None:
    # Inside: a loop that lists every process's comm and exe as fast as it can, while the
    # host runs 100 execs. The exec helper is a host python until its execve(2): a readable
    # /proc/<pid>/exe of it would be the CVE-2019-5736 door.
    watch = (
        "while [ ! -e /tmp/stop ]; do for p in /proc/[0-9]*; do "
        'e=$(readlink $p/exe 2>/dev/null) && echo "$(cat $p/comm 2>/dev/null) $e"; '
        "done; done > /tmp/seen; sleep 1000"
    )
    c = pycont.run("busybox", ["sh", "-c", watch], detach=True, name=name)
    try:
        for _ in range(100):
            assert c.exec(["true"]).exit_code == 0
        c.exec(["touch", "/tmp/stop"])
        seen = c.exec(["cat", "/tmp/seen"]).output.splitlines()
        assert seen, "the watcher saw nothing: it did not run"
        assert any("busybox" in line for line in seen)
        readable = sorted({line for line in seen if "python" in line or "pycont" in line})
        assert not readable, f"pycont helpers readable from inside: {readable[:5]}"
    finally:
        c.remove(force=True)


def test_exec_into_a_missing_or_unreachable_workdir_fails_with_one_line(name: str) -> None:
    c = pycont.run("busybox", ["sleep", "1000"], detach=True, name=name)
    try:
        r = cli("exec", "-w", "/proc/self/fd/0", name, "true")
        assert r.returncode == 125 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    finally:
        c.remove(force=True)
