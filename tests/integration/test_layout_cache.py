"""The cgroup layout is read once and kept until the mount table changes (proc(5): POLLPRI)."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO, requires

pytestmark = requires("root")

SCRIPT = """
import os, subprocess
from pycont import cgroups
first = cgroups.current_layout()
assert cgroups.current_layout() is first  # kept: nothing changed
subprocess.run(["mount", "-t", "tmpfs", "pycont-test-layout", "/sys/fs/cgroup"], check=True)
after = cgroups.current_layout()
assert after is not first and after != first, (first, after)  # read again
assert cgroups.current_layout() is after
pid = os.fork()
if pid == 0:  # a forked child reads its own, and leaves its parent's descriptor alone
    child = cgroups.current_layout()
    os._exit(0 if child == after and child is not after else 1)
assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
assert cgroups.current_layout() is after
print("ok")
"""


def test_the_layout_is_read_again_only_after_a_mount() -> None:
    # In a mount namespace of its own: the tmpfs over /sys/fs/cgroup never reaches the host.
    r = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", SCRIPT],
        cwd=REPO,
        env={"PYTHONPATH": REPO, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and r.stdout == "ok\n", r.stderr
