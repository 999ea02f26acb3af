"""What the cgroup driver tests share: processes held until they are inside a cgroup, a
cgroup fixture body that always takes back what a test made, and small /proc readers."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from typing import TypeVar

import pytest

from pycont.cgroups import Cgroup
from pycont.errors import KernelError

Procs = list[subprocess.Popen[bytes]]
G = TypeVar("G", bound=Cgroup)

MiB = 1 << 20
# Allocates and touches 1 MiB at a time until something stops it. RLIMIT_AS is a safety net:
# were the cgroup not enforced, the hog would stop at 2 GiB (MemoryError) instead of eating
# the machine, and the test would fail on its exit code.
HOG = (
    "import resource\n"
    "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
    "x = []\n"
    "while True:\n"
    "    x.append(b'a' * (1 << 20))\n"
)
SPIN = "while True: pass"


@pytest.fixture
def procs() -> Iterator[Procs]:
    started: Procs = []
    try:
        yield started
    finally:
        reap(started)


def reap(started: Procs) -> None:
    for p in started:
        if p.poll() is None:
            p.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=10)
        if p.stdin is not None:
            with contextlib.suppress(OSError):
                p.stdin.close()


def owned(group: G, procs: Procs) -> Iterator[G]:
    """Create ``group``; afterwards thaw it, kill all in it, reap ``procs``, destroy it."""
    group.create()
    try:
        yield group
    finally:
        try:
            with contextlib.suppress(KernelError):
                group.thaw()
            group.kill_all(timeout=20)
            reap(procs)
        finally:
            group.destroy()


def held(procs: Procs, *argv: str) -> subprocess.Popen[bytes]:
    """``argv`` started behind a ``read``: it runs only once release() writes a line."""
    p = subprocess.Popen(
        ["sh", "-c", 'read _; exec "$0" "$@"', *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    procs.append(p)
    return p


def release(p: subprocess.Popen[bytes]) -> None:
    assert p.stdin is not None
    p.stdin.write(b"go\n")
    p.stdin.close()


def a_block_device() -> tuple[str, str]:
    for name in sorted(os.listdir("/sys/block")):
        path = f"/dev/{name}"
        with contextlib.suppress(OSError):
            st = os.stat(path)
            if not name.startswith(("loop", "ram", "zram")) and os.major(st.st_rdev):
                return path, f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    pytest.skip("no disk under /sys/block with a node in /dev")


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks (proc(5), /proc/<pid>/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])
