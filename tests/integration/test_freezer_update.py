"""The freezer and the limits are transactional: pause, unpause, update, commit, stop, kill, exec.

Each check reads the kernel's own files (``freezer.state`` in v1, ``cgroup.events`` in v2;
``pids.max``, ``memory.limit_in_bytes``...) next to what ``ps -a``, ``inspect`` and
``config.json`` say: after a command is SIGKILLed at one of its steps (PYCONT_FAILPOINTS), the
two must agree, and ``stop``/``rm -f`` must still work. A paused container is stopped, killed and
removed (docker thaws it after the signal) and refuses exec with docker's words. Concurrent
``update``s of different limits must all stay, in the config and in the cgroup.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
from collections.abc import Iterator

import pytest

from pycont.runtime import state as st
from tests.helpers import cli, requires, wait_for

pytestmark = requires("root", "overlay")

LOOP = "while :; do sleep 1; done"  # as PID 1, sh ignores SIGTERM: stop needs its SIGKILL
MiB = 1 << 20
CLI_ROUNDS = 20  # 4 CLI processes each: ~1 s a round on this 2-CPU machine
API_ROUNDS = 100


def ok(*args: str, timeout: float = 60) -> str:
    proc = cli(*args, timeout=timeout)
    assert proc.returncode == 0, (args, proc.stderr)
    assert proc.stderr == "", proc.stderr  # no traceback, no warning
    return proc.stdout


def run_detached(name: str, script: str = LOOP) -> str:
    return ok("run", "-d", "--name", name, "busybox", "sh", "-c", script).strip()


def inspect(name: str) -> dict:
    (doc,) = json.loads(ok("inspect", name))
    return doc


def status(name: str) -> str:
    """The STATUS column of ``ps -a`` for ``name`` (ps -a must work whatever happened)."""
    out = ok("ps", "-a")
    (row,) = [r for r in out.splitlines()[1:] if r.split()[-1] == name]
    if "(Paused)" in row:
        return "paused"
    return "running" if " Up " in row else "exited" if "Exited" in row else row


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def frozen(dirs: dict[str, str]) -> bool:
    """What the kernel says: v1 freezer.state, v2 cgroup.events "frozen 1"."""
    if "unified" in dirs:
        return "frozen 1" in read(os.path.join(dirs["unified"], "cgroup.events"))
    return read(os.path.join(dirs["freezer"], "freezer.state")) == "FROZEN"


def kernel_limits(dirs: dict[str, str]) -> dict[str, int]:
    """memory, CFS quota (µs a 100 ms period), pids.max and the CPU weight, from the kernel."""
    if "unified" in dirs:
        d = dirs["unified"]
        return {
            "memory": int(read(f"{d}/memory.max")),
            "quota": int(read(f"{d}/cpu.max").split()[0]),
            "pids": int(read(f"{d}/pids.max")),
            "weight": int(read(f"{d}/cpu.weight")),
        }
    return {
        "memory": int(read(f"{dirs['memory']}/memory.limit_in_bytes")),
        "quota": int(read(f"{dirs['cpu']}/cpu.cfs_quota_us")),
        "pids": int(read(f"{dirs['pids']}/pids.max")),
        "weight": int(read(f"{dirs['cpu']}/cpu.shares")),
    }


def wanted(r: int, v2: bool) -> dict[str, int]:
    """What round ``r`` sets: a different value of each limit every round."""
    from pycont.cgroups.units import shares_to_weight

    shares = 512 + r
    return {
        "memory": (64 + r) * MiB,
        "quota": (50 + r) * 1000,  # --cpus (50 + r) / 100 of a 100000 µs period
        "pids": 100 + r,
        "weight": shares_to_weight(shares) if v2 else shares,
    }


def flags(r: int) -> list[list[str]]:
    return [
        ["--memory", f"{64 + r}m"],
        ["--cpus", f"{(50 + r) / 100}"],
        ["--pids-limit", str(100 + r)],
        ["--cpu-shares", str(512 + r)],
    ]


def config_limits(cid: str, v2: bool) -> dict[str, int]:
    """What config.json holds, in the kernel's units (as kernel_limits)."""
    from pycont.cgroups.units import cpus_to_quota, shares_to_weight

    lim = st.load_config(st.container_dir(cid)).limits
    shares = lim.cpu_shares or 0
    return {
        "memory": lim.memory or 0,
        "quota": cpus_to_quota(lim.nano_cpus or 0),
        "pids": lim.pids_limit or 0,
        "weight": shares_to_weight(shares) if v2 else shares,
    }


@pytest.fixture
def box(name: str) -> Iterator[tuple[str, str, dict[str, str]]]:
    """A detached container: (name, id, its cgroup folders)."""
    cid = run_detached(name)
    yield name, cid, inspect(name)["Pycont"]["Cgroup"]


# -- a paused container ------------------------------------------------------------------------
def test_stop_thaws_a_paused_container_so_it_takes_sigterm(name: str) -> None:
    run_detached(name, f'trap "exit 3" TERM; {LOOP.replace("sleep 1", "sleep 0.1")}')
    ok("pause", name)
    assert ok("stop", "-t", "20", name) == f"{name}\n"
    assert inspect(name)["State"]["ExitCode"] == 3  # its trap ran: the SIGTERM was delivered


def test_stop_t1_on_a_paused_container_kills_it_within_its_timeout(box: tuple) -> None:
    name, _, dirs = box
    ok("pause", name)
    assert frozen(dirs)
    assert ok("stop", "-t", "1", name) == f"{name}\n"  # SIGTERM ignored by PID 1, then SIGKILL
    assert (status(name), inspect(name)["State"]["ExitCode"]) == ("exited", 137)


def test_kill_thaws_a_paused_container_and_it_dies(box: tuple) -> None:
    name, _, _ = box
    ok("pause", name)
    ok("kill", name)
    wait_for(lambda: status(name) == "exited", what=f"{name} to exit after kill")
    assert inspect(name)["State"]["ExitCode"] == 137


def test_a_non_ending_signal_waits_for_unpause_as_in_docker(box: tuple) -> None:
    name, _, dirs = box
    ok("pause", name)
    ok("kill", "-s", "USR1", name)  # pending: the freezer holds it
    assert (status(name), frozen(dirs)) == ("paused", True)


def test_exec_into_a_paused_container_refuses_in_one_line(box: tuple) -> None:
    name, _, _ = box
    ok("pause", name)
    proc = cli("exec", name, "true", timeout=30)
    assert proc.returncode == 125
    assert proc.stderr.splitlines() == [
        f"pycont: container {name} is paused, unpause the container before exec"
    ]
    ok("unpause", name)
    assert ok("exec", name, "echo", "hi") == "hi\n"


def test_rm_f_removes_a_paused_container(box: tuple) -> None:
    name, _, dirs = box
    ok("pause", name)
    assert ok("rm", "-f", name) == f"{name}\n"
    assert not os.path.exists(dirs["freezer" if "freezer" in dirs else "unified"])


# -- a command killed at one of its steps ---------------------------------------------------------
CASES = {
    # step: (what the container has been through before, the command killed at the step)
    "pause.frozen": ([], ["pause"]),
    "unpause.thawed": (["pause"], ["unpause"]),
    "update.journal-written": ([], ["update", "--pids-limit", "77"]),
    "update.kernel-set": ([], ["update", "--pids-limit", "77"]),
    "stop.signalled": (["pause"], ["stop", "-t", "1"]),
    "stop.killed": (["pause"], ["stop", "-t", "1"]),
    "kill.signalled": (["pause"], ["kill"]),
    "commit.frozen": ([], ["commit"]),
    "commit.layer-written": ([], ["commit"]),
}


@pytest.mark.parametrize("step", sorted(CASES))
def test_a_command_killed_at_a_step_leaves_the_record_and_the_kernel_agreeing(
    box: tuple, step: str
) -> None:
    name, cid, dirs = box
    before, command = CASES[step]
    for verb in before:
        ok(verb, name)
    args = [*command, name] + ([f"pycont-h3-{step}:x"] if command == ["commit"] else [])
    proc = cli(*args, env={"PYCONT_FAILPOINTS": f"{step}=kill"}, timeout=60)
    assert proc.returncode == -9, (proc.returncode, proc.stderr)  # it died at the step
    shown = status(name)
    if shown in ("running", "paused"):
        assert shown == ("paused" if frozen(dirs) else "running"), (shown, step)
    if shown == "paused":  # exec refuses at once instead of joining a frozen cgroup
        refused = cli("exec", name, "true", timeout=30)
        assert (refused.returncode, refused.stderr.count("\n")) == (125, 1), refused.stderr
    if step.startswith("commit."):
        assert (shown, frozen(dirs)) == ("running", False)  # nobody asked for a pause
        made = cli("rmi", f"pycont-h3-{step}:x")  # the image is in the store once written
        assert made.returncode == (0 if step == "commit.layer-written" else 1), made.stderr
    if step.startswith("update."):
        assert inspect(name)["HostConfig"]["PidsLimit"] == 77  # rolled forward
        assert kernel_limits(dirs)["pids"] == 77
        assert not os.path.exists(os.path.join(st.container_dir(cid), "pending-update.json"))
    assert ok("stop", "-t", "1", name) == f"{name}\n"
    assert status(name) == "exited"
    assert ok("rm", "-f", name) == f"{name}\n"


# -- concurrent updates ----------------------------------------------------------------------------
def test_four_concurrent_cli_updates_lose_nothing(box: tuple) -> None:
    name, cid, dirs = box
    v2 = "unified" in dirs
    lost = []
    for r in range(CLI_ROUNDS):
        procs = [
            subprocess.Popen(
                [*cli_argv(), "update", *f, name],
                env=cli_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for f in flags(r)
        ]
        for p in procs:
            out, err = p.communicate(timeout=60)
            assert (p.returncode, err) == (0, ""), err
        want = wanted(r, v2)
        if config_limits(cid, v2) != want or kernel_limits(dirs) != want:
            lost.append((r, config_limits(cid, v2), kernel_limits(dirs)))
    assert lost == []
    host = inspect(name)["HostConfig"]
    last = CLI_ROUNDS - 1
    assert (host["Memory"], host["PidsLimit"], host["CpuShares"]) == (
        (64 + last) * MiB,
        100 + last,
        512 + last,
    )


def _updater(cid: str, field: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    from pycont.runtime.container import Container

    for r in range(API_ROUNDS):
        barrier.wait(timeout=60)
        value = {
            "memory": f"{64 + r}m",
            "cpus": (50 + r) / 100,
            "pids_limit": 100 + r,
            "cpu_shares": 512 + r,
        }[field]
        Container(cid).update(**{field: value})
        barrier.wait(timeout=60)


def test_four_concurrent_api_updates_lose_nothing_in_100_rounds(box: tuple) -> None:
    _, cid, dirs = box
    v2 = "unified" in dirs
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(5)
    workers = [
        ctx.Process(target=_updater, args=(cid, field, barrier))
        for field in ("memory", "cpus", "pids_limit", "cpu_shares")
    ]
    for w in workers:
        w.start()
    lost = []
    try:
        for r in range(API_ROUNDS):
            barrier.wait(timeout=60)  # go
            barrier.wait(timeout=60)  # all four done
            want = wanted(r, v2)
            if config_limits(cid, v2) != want or kernel_limits(dirs) != want:
                lost.append((r, config_limits(cid, v2), kernel_limits(dirs)))
    finally:
        for w in workers:
            w.join(timeout=60)
    assert [w.exitcode for w in workers] == [0] * 4
    assert lost == []


def cli_argv() -> list[str]:
    import sys

    return [sys.executable, "-m", "pycont"]


def cli_env() -> dict[str, str]:
    from tests.helpers import REPO

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    return env
