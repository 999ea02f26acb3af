"""The failpoint sweep: SIGKILL at every named step, three times, and nothing is lost.

For each step declared in :data:`pycont.failpoints.STEPS`, a command that reaches it runs with
``PYCONT_FAILPOINTS=<step>=kill`` in a store of its own. The point must fire (its log says so: a
step never reached tests nothing). Then, as a user would after a crash:

- ``pycont ps -a`` and ``pycont images`` exit 0, and every container they list can be inspected,
  a running one with a live process;
- ``rm -f`` of every container and ``system prune -f`` leave no state folder, cgroup, mount,
  process, temporary file or staging folder, and ``system check`` finds nothing;
- the same command, run again without the failpoint, succeeds (the name is free again, the image
  can be loaded again).

Each step runs three rounds in the same store: the second and third meet what the first one's
clean-up left, had it left anything.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from pycont import failpoints
from pycont.fsutil import remove_tree
from tests.helpers import cgroup_dirs, cli, register_root, remove_root, requires, wait_for
from tests.registry_server import RegistryServer, install_registry

pytestmark = requires("root")

ROUNDS = 3
_ID = re.compile(r"[0-9a-f]{64}")
# What a killed writer may leave: write_atomic's "<file>.tmp.<pid>", the store's staging and
# the containers' half-made or half-removed folders.
_LEFTOVER = re.compile(r"\.tmp\.\d+$|^\.(stage|pull|creating|removing)(-|$)")


@dataclasses.dataclass(frozen=True)
class Scenario:
    """How to reach a step: ``setup`` commands, then ``command`` (with the failpoint)."""

    command: tuple[str, ...]
    setup: tuple[tuple[str, ...], ...] = ()
    needs: str = ""  # "archive", "registry", "context": made once for the module


RUN_D = ("run", "-d", "--name", "{name}", "busybox", "sleep", "100")
SCENARIOS = {
    "create": Scenario(RUN_D),
    "start": Scenario(RUN_D),
    "exec": Scenario(("exec", "{name}", "true"), setup=(RUN_D,)),
    "stop": Scenario(("stop", "-t", "1", "{name}"), setup=(RUN_D,)),
    "kill": Scenario(("kill", "{name}"), setup=(RUN_D,)),
    "rm": Scenario(("rm", "-f", "{name}"), setup=(RUN_D,)),
    "pause": Scenario(("pause", "{name}"), setup=(RUN_D,)),
    "unpause": Scenario(("unpause", "{name}"), setup=(RUN_D, ("pause", "{name}"))),
    "update": Scenario(("update", "--memory", "64m", "{name}"), setup=(RUN_D,)),
    "commit": Scenario(("commit", "{name}", "pc-sweep-commit:{name}"), setup=(RUN_D,)),
    "load": Scenario(("load", "-i", "{archive}"), needs="archive"),
    "pull": Scenario(("pull", "{registry}/pc-sweep/busybox:1"), needs="registry"),
    "build": Scenario(("build", "-t", "pc-sweep-build:{name}", "{context}"), needs="context"),
    "rmi": Scenario(
        ("rmi", "pc-sweep-rmi:{name}"),
        setup=(
            RUN_D,
            ("exec", "{name}", "sh", "-c", "echo {name} > /own"),
            ("commit", "{name}", "pc-sweep-rmi:{name}"),
            ("rm", "-f", "{name}"),
        ),
    ),
    "prune": Scenario(  # image prune of a dangling image: the tag moved to a newer commit
        ("image", "prune", "-f"),
        setup=(
            RUN_D,
            ("exec", "{name}", "sh", "-c", "echo 1 > /own"),
            ("commit", "{name}", "pc-sweep-prune:{name}"),
            ("exec", "{name}", "sh", "-c", "echo 2 > /own"),
            ("commit", "{name}", "pc-sweep-prune:{name}"),
            ("rm", "-f", "{name}"),
        ),
    ),
}


def scenario_for(step: str) -> Scenario:
    block = step.split(".", 1)[0]
    if block not in SCENARIOS:
        pytest.fail(f"step {step}: no scenario reaches block {block!r}; add one to SCENARIOS")
    return SCENARIOS[block]


@dataclasses.dataclass
class Shared:
    archive: str = ""
    registry: str = ""
    context: str = ""


@pytest.fixture(scope="module")
def shared() -> Iterator[Shared]:
    """A busybox archive, a registry holding busybox, and a build context; made once."""
    work = tempfile.mkdtemp(prefix="pc-sweep-")
    root = register_root(os.path.join(work, "root"))
    env = {"PYCONT_ROOT": root}
    out = Shared(archive=os.path.join(work, "busybox.tar"), context=os.path.join(work, "ctx"))
    server = None
    try:
        _ok(cli("save", "-o", out.archive, "busybox", env=env))
        os.makedirs(out.context)
        with open(os.path.join(out.context, "Dockerfile"), "w") as f:
            f.write("FROM busybox\nRUN echo built > /built\n")
        if install_registry() is None:
            server = RegistryServer()
            server.start()
            out.registry = server.host
            _ok(cli("tag", "busybox", f"{server.host}/pc-sweep/busybox:1", env=env))
            _ok(cli("push", f"{server.host}/pc-sweep/busybox:1", env=env))
        yield out
    finally:
        if server is not None:
            server.stop()
        remove_root(root)
        remove_tree(work)


def _ok(proc: Any) -> Any:
    assert proc.returncode == 0, f"{proc.args[3:]} exited {proc.returncode}: {proc.stderr}"
    return proc


def _fill(args: tuple[str, ...], values: dict[str, str]) -> list[str]:
    return [a.format(**values) for a in args]


def _ids_in(root: str) -> set[str]:
    """Container ids named anywhere under ``root/containers`` (also half-made folders)."""
    base = os.path.join(root, "containers")
    return {m for e in (os.listdir(base) if os.path.isdir(base) else []) for m in _ID.findall(e)}


def _processes_of(root: str, ids: set[str]) -> list[str]:
    """Host processes that belong to this store: a shim (its command line names the store) or
    a container's process (its cgroup names the container)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/cgroup") as f:
                cgroup = f.read()
            with open(f"/proc/{pid}/stat") as f:
                zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            continue
        if not zombie and (root in cmdline or any(i in cgroup for i in ids)):
            found.append(f"{pid}: {cmdline.strip()}")
    return found


def _leftovers(root: str) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            if _LEFTOVER.search(n):
                found.append(os.path.join(dirpath, n))
    return found


def _check_consistent(env: dict[str, str]) -> None:
    """What ``ps -a`` lists can be inspected, and a running container has a live process."""
    ps = _ok(cli("ps", "-a", "-q", env=env))
    _ok(cli("images", env=env))
    for cid in ps.stdout.split():
        doc = json.loads(_ok(cli("inspect", cid, env=env)).stdout)[0]
        state = doc["State"]
        if state.get("Running") and not state.get("Paused"):
            assert os.path.exists(f"/proc/{state['Pid']}"), f"{cid[:12]} running without a pid"


def _clean_up(env: dict[str, str]) -> None:
    ps = _ok(cli("ps", "-a", "-q", env=env))
    for cid in ps.stdout.split():
        _ok(cli("rm", "-f", cid, env=env))
    _ok(cli("system", "prune", "-a", "-f", env=env))


def _check_nothing_left(root: str, ids: set[str]) -> None:
    base = os.path.join(root, "containers")
    assert not (os.listdir(base) if os.path.isdir(base) else []), "container folders left"
    for cid in ids:
        assert cgroup_dirs(cid) == [], f"cgroups of {cid[:12]} left"
    with open("/proc/self/mountinfo") as f:
        assert not [line for line in f if root in line or any(i in line for i in ids)]
    wait_for(lambda: not _processes_of(root, ids), timeout=10, what="the store's processes")
    assert _leftovers(root) == []
    check = cli("system", "check", env={"PYCONT_ROOT": root})
    assert check.returncode == 0, check.stdout + check.stderr


STEP_NAMES = sorted(failpoints.STEPS)


def test_every_block_has_steps() -> None:
    """A sweep over nothing passes: each command the issue names marks its steps."""
    blocks = {s.split(".", 1)[0] for s in STEP_NAMES}
    wanted = {"create", "start", "exec", "stop", "kill", "rm", "pause", "unpause", "update"}
    wanted |= {"commit", "load", "pull", "build", "rmi", "prune"}
    assert wanted <= blocks, f"no failpoint in {sorted(wanted - blocks)}"


@pytest.mark.parametrize("step", STEP_NAMES)
def test_sigkill_at_step_loses_nothing(step: str, shared: Shared, tmp_path: Any) -> None:
    sc = scenario_for(step)
    if sc.needs == "registry" and not shared.registry:
        pytest.skip(f"no registry program: {install_registry()}")
    root = register_root(str(tmp_path / "root"))
    log = str(tmp_path / "fired")
    env = {"PYCONT_ROOT": root}
    seen: set[str] = set()
    try:
        for round_ in range(ROUNDS):
            values = {
                "name": f"pc-sweep-{os.getpid()}-{round_}",
                "archive": shared.archive,
                "registry": shared.registry,
                "context": shared.context,
            }
            for args in sc.setup:
                _ok(cli(*_fill(args, values), env=env))
            seen |= _ids_in(root)
            fault = {**env, failpoints.ENV: f"{step}=kill", failpoints.LOG_ENV: log}
            cli(*_fill(sc.command, values), env=fault, timeout=120)
            with open(log) as f:
                fired = f.read().splitlines()
            assert len(fired) == round_ + 1, f"{step} was not reached in round {round_ + 1}"
            seen |= _ids_in(root)
            _check_consistent(env)
            seen |= _ids_in(root)
            _clean_up(env)
            _check_nothing_left(root, seen)
            # Again, without the failpoint: it works (the name is free, the image loads).
            for args in sc.setup:
                _ok(cli(*_fill(args, values), env=env))
            seen |= _ids_in(root)
            _ok(cli(*_fill(sc.command, values), env=env, timeout=120))
            seen |= _ids_in(root)
            _clean_up(env)
            _check_nothing_left(root, seen)
    finally:
        for cid in _ids_in(root):
            cli("rm", "-f", cid, env=env)
        remove_root(root)
