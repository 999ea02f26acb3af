"""``pycont.run``'s captured output is capped, and ``timeout=`` holds while it is captured.

A container writing 100 MB must not cost the caller 100 MB (a notebook kernel would be
OOM-killed): the caller keeps the first bytes and the last few and counts the rest. Memory is
measured in a child process (ru_maxrss is a process's peak, and this one has run other tests).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import pycont
from pycont.format import decimal_size
from pycont.runtime.output import MAX_OUTPUT
from pycont.runtime.state import Status
from tests.helpers import REPO, cgroup_dirs, container_ids, process_gone, requires

pytestmark = requires("root", "overlay")

FLOOD = 100_000_000
FLOOD_SCRIPT = f"head -c {FLOOD} /dev/zero | tr '\\0' a"

# The child warms up (imports, one container) before it measures, so that the growth is the
# capture's, not the runtime's first use.
CHILD = """
import json, resource, sys
import pycont
pycont.run("busybox", ["true"], rm=True)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
c = pycont.run("busybox", ["sh", "-c", sys.argv[1]], rm=True, timeout=120)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_kib": after - before, "code": c.exit_code, "output": c.output}))
"""


def test_100_mb_of_output_is_drained_counted_and_not_kept() -> None:
    env = {**os.environ, "PYTHONPATH": REPO}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, FLOOD_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    got = json.loads(done.stdout)
    out: str = got["output"]
    assert got["code"] == 0  # the container wrote everything: it never blocked on the pipe
    head, notice, tail = out.partition("\n[pycont] output throttled: ")
    assert notice, "no line says the output was cut"
    kept = len(head) + len(tail.split("\n", 1)[1])
    assert kept <= MAX_OUTPUT
    dropped = FLOOD - kept
    assert f"{dropped:,} more bytes ({decimal_size(dropped)}) were not kept (max_output=" in out
    assert set(head) == {"a"} and out.endswith("a" * 4096)
    # The whole output held in memory (as bytes, then str) cost 230 MB before the cap.
    assert got["growth_kib"] < 50 * 1024, f"peak RSS grew by {got['growth_kib']} KiB"


def test_max_output_keeps_the_first_and_the_last_bytes() -> None:
    script = "for i in $(seq 1 2000); do echo line$i; done"
    c = pycont.run("busybox", ["sh", "-c", script], rm=True, timeout=60, max_output=1000)
    head, _, rest = c.output.partition("\n[pycont] output throttled: ")
    assert head.startswith("line1\nline2\n") and rest.endswith("line1999\nline2000\n")
    assert len(head) + len(rest.split("\n", 1)[1]) == 1000
    whole = pycont.run("busybox", ["sh", "-c", script], rm=True, timeout=60, max_output=None)
    assert whole.output.splitlines() == [f"line{i}" for i in range(1, 2001)]


@pytest.mark.parametrize("stdout", [subprocess.PIPE, None], ids=["captured", "not"])
def test_timeout_kills_the_container_and_leaves_no_process(name: str, stdout: object) -> None:
    with pytest.raises(pycont.ContainerTimeout) as info:
        pycont.run(
            "busybox",
            ["sh", "-c", "echo ready; exec sleep 100"],
            name=name,
            timeout=5,  # a margin for "ready" to be written on a loaded machine
            stdout=stdout,
        )
    err = info.value
    assert isinstance(err, TimeoutError)
    assert f"container {name} still running after timeout=5s: killed it (exit code 137)" == str(err)
    if stdout is not None:
        assert err.output == "ready\n"  # what it wrote before the deadline is kept
    c = pycont.get(name)
    rec = c.state()
    assert (rec.status, rec.exit_code) == (Status.EXITED, 137)
    assert rec.pid and process_gone(rec.pid)
    assert cgroup_dirs(c.id) == []
    c.remove()


def test_timeout_with_rm_leaves_no_container(name: str) -> None:
    before = container_ids()
    with pytest.raises(pycont.ContainerTimeout) as info:
        pycont.run("busybox", ["sleep", "100"], name=name, timeout=1, rm=True)
    assert info.value.output == ""
    assert container_ids() == before
    assert cgroup_dirs(info.value.container.id) == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("bad", [{"timeout": -1}, {"timeout": "1"}, {"max_output": -5}])
def test_bad_limits_are_refused_before_anything_is_made(bad: dict[str, object]) -> None:
    before = container_ids()
    with pytest.raises(pycont.UsageError, match=r"^invalid (timeout|max_output) .*: expected"):
        pycont.run("busybox", ["true"], **bad)  # type: ignore[arg-type]
    assert container_ids() == before
