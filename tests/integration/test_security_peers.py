"""pycont's security defaults against podman on runc, differentially: the same probe script in
the same busybox image, run by both, must print the same lines.

The probe reads the capability sets and the seccomp mode, whether the masked files hold data,
the flags of the read-only mounts (READS), and tries what must be refused (ATTEMPTS: a /proc/sys
write of the value it read, tmpfs and cgroup mounts, umount, a user namespace). podman keeps 11
capabilities where Docker keeps 14 (it drops MKNOD, NET_RAW and AUDIT_WRITE): the probe adds
those three to podman's run, so both should hold Docker's set.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import pycont
from pycont.images import archive
from pycont.images.busybox import build_busybox
from pycont.images.store import Store
from tests import peers
from tests.helpers import register_root, requires
from tests.peers import BUSYBOX, ULIMITS, Run

pytestmark = [requires("root"), pytest.mark.timeout(600)]

# What the container can read: its capability sets and seccomp mode, the masked files, the
# flags of the read-only mounts.
READS = r"""
grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|Seccomp|NoNewPrivs):' /proc/self/status
for f in /proc/keys /proc/timer_list /proc/kcore /proc/sched_debug /proc/latency_stats \
         /proc/timer_stats /proc/acpi /proc/scsi; do
    if [ -d $f ]; then echo "$f dir $(ls $f | wc -l)"
    elif [ -s $f ]; then echo "$f file with data"
    elif [ -e $f ]; then echo "$f file empty"
    else echo "$f absent"; fi
done
echo "/sys/firmware $(ls /sys/firmware | wc -l)"
for m in /proc/sys /proc/irq /proc/bus /proc/fs /proc/sysrq-trigger /sys; do
    awk -v m=$m '$5 == m { split($6, o, ","); print m, o[1] }' /proc/self/mountinfo
done
"""
# What it must not be able to do. Each is harmless had it gone through: the /proc/sys write
# puts back the value it read, the mounts land in the container's own mount namespace. (Never
# run under --privileged: there nothing stops a write from reaching the host.)
ATTEMPTS = r"""
cat /proc/sys/vm/overcommit_ratio 2>/dev/null >/proc/sys/vm/overcommit_ratio; echo "procsys=$?"
mount -t tmpfs none /tmp 2>/dev/null; echo "tmpfs=$?"
mount -t cgroup2 none /tmp 2>/dev/null; echo "cgroup2=$?"
mount -t cgroup -o memory none /tmp 2>/dev/null; echo "cgroup=$?"
umount /proc 2>/dev/null; echo "umount=$?"
unshare -U true 2>/dev/null; echo "unshare=$?"
"""
# No network: podman's default bridge would set up a CNI bridge, firewall chains and
# ip_forward on the host, none of which a test may touch.
RUN = ("--rm", "--network", "none", *ULIMITS)
# podman's default set is Docker's less these three (containers.conf).
PODMAN_CAP_ADD = ("--cap-add", "MKNOD,NET_RAW,AUDIT_WRITE")


@pytest.fixture(scope="module")
def podman_busybox() -> Iterator[Run]:
    """podman on runc, with pycont's busybox image loaded into its private store (a short
    path: podman refuses a runroot longer than 50 characters)."""
    peers.ensure_tools({"podman": "podman", "runc": "runc"})
    with peers.scratch(Path(tempfile.mkdtemp(prefix="pycont-sp-"))) as work:
        store = Store(register_root(os.fspath(work / "pycont")) + "/images")
        build_busybox(store, BUSYBOX)
        tar = Path(work) / "busybox.tar"
        archive.save([BUSYBOX], tar, format="docker-archive", store=store)
        with peers.podman(work) as podman:
            podman("load", "-i", tar)
            yield podman


def pycont_probe(script: str, **options: object) -> list[str]:
    c = pycont.run(
        "busybox", ["sh", "-c", script], rm=True, timeout=60, stderr=subprocess.DEVNULL, **options
    )
    assert c.exit_code == 0, c.output
    return c.output.splitlines()


def podman_probe(podman: Run, script: str, *flags: str) -> list[str]:
    r = podman("run", *RUN, *flags, BUSYBOX, "sh", "-c", script)
    return r.stdout.splitlines()


def test_the_defaults_are_podmans_on_runc(podman_busybox: Run) -> None:
    ours = pycont_probe(READS + ATTEMPTS)
    theirs = podman_probe(podman_busybox, READS + ATTEMPTS, *PODMAN_CAP_ADD)
    # One known difference: podman's seccomp profile (containers/common) lets unshare(2) make
    # a user namespace; Docker's, pycont's reference, allows unshare only with CAP_SYS_ADMIN.
    assert "unshare=1" in ours and "unshare=0" in theirs
    assert [x for x in ours if "unshare" not in x] == [x for x in theirs if "unshare" not in x]
    # and what they agree on is the refusal, not a shared hole
    assert "CapEff:\t00000000a80425fb" in ours and "Seccomp:\t2" in ours
    for attempt in ("procsys", "tmpfs", "cgroup2", "cgroup", "umount", "unshare"):
        assert f"{attempt}=0" not in ours, attempt


def test_with_limits_the_lift_attempts_fail_in_both(podman_busybox: Run) -> None:
    lift = (
        "for f in /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes "
        "/sys/fs/cgroup/pids.max /sys/fs/cgroup/pids/pids.max; do "
        '[ -e $f ] || continue; echo max > $f 2>/dev/null && echo "lifted $f"; done; echo done'
    )
    ours = pycont.run(
        "busybox",
        ["sh", "-c", lift],
        rm=True,
        timeout=60,
        stderr=subprocess.DEVNULL,
        memory="64m",
        pids_limit=64,
    ).output
    theirs = podman_busybox(
        "run", *RUN, "-m", "64m", "--pids-limit", "64", BUSYBOX, "sh", "-c", lift
    ).stdout
    assert ours == theirs == "done\n"


def test_privileged_gives_up_the_same_in_both(podman_busybox: Run) -> None:
    ours = pycont_probe(READS, privileged=True)
    theirs = podman_probe(podman_busybox, READS, "--privileged")
    pick = ("CapEff:", "CapBnd:", "Seccomp:", "/proc/keys", "/proc/timer_list", "/sys ")
    assert [line for line in ours if line.startswith(pick)] == [
        line for line in theirs if line.startswith(pick)
    ]
