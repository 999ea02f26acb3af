"""Create and remove survive a SIGKILL at every step; a broken container breaks no listing.

Each test kills ``pycont run -d`` or ``pycont rm -f`` at one of its failpoints
(``PYCONT_FAILPOINTS=step=kill``), then checks what a user sees next: ``ps -a`` works, and
``rm -f`` plus ``system prune -f`` leave no folder, cgroup, mount or process naming the
container, and its name is free again. Then the same for folders damaged by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from pycont import failpoints
from tests.helpers import (
    cgroup_dirs,
    cli,
    containers_dir,
    mountinfo_lines,
    register_root,
    remove_root,
    requires,
    take_back_cgroups,
    wait_for,
)

pytestmark = requires("root", "overlay")


@pytest.fixture(scope="module", autouse=True)
def own_root() -> Iterator[str]:
    """A store of this module's own: its prunes must not take other tests' containers."""
    previous = os.environ["PYCONT_ROOT"]
    root = register_root(tempfile.mkdtemp(prefix="pc-crash-root-"))
    os.environ["PYCONT_ROOT"] = root
    try:
        yield root
    finally:
        os.environ["PYCONT_ROOT"] = previous
        remove_root(root)


CREATE_STEPS = sorted(s for s in failpoints.STEPS if s.startswith("create."))
RM_STEPS = sorted(s for s in failpoints.STEPS if s.startswith("rm."))


def killed_at(step: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``pycont ARGS`` SIGKILLed at ``step``: the failpoint must have been reached."""
    r = cli(*args, env={failpoints.ENV: f"{step}=kill"})
    assert r.returncode == -9, f"{step} not reached: exit {r.returncode}, {r.stderr}"
    return r


def entries() -> list[str]:
    """Everything in the containers folder, the folders set aside included."""
    base = containers_dir()
    found = []
    for e in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        found.append(e)
        if e.startswith(".") and os.path.isdir(os.path.join(base, e)):
            found += [f"{e}/{sub}" for sub in sorted(os.listdir(os.path.join(base, e)))]
    return found


def processes_naming(cid: str) -> list[str]:
    """Processes whose arguments or cgroup name the container."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/cgroup") as f:
                cgroup = f.read()
        except OSError:
            continue
        if cid in cmdline or cid in cgroup:
            found.append(f"{pid} {cmdline}")
    return found


def ps_all() -> str:
    r = cli("ps", "-a")
    assert r.returncode == 0, r.stderr
    return r.stdout


def assert_nothing_left(cid: str, name: str) -> None:
    assert not [e for e in entries() if cid in e or e.startswith(".")], entries()
    assert take_back_cgroups(cid) == [], f"cgroups of {cid[:12]} left"
    assert mountinfo_lines(cid) == []
    assert processes_naming(cid) == []
    assert name not in ps_all()
    # the name is free again
    r = cli("run", "--rm", "--name", name, "busybox", "true")
    assert r.returncode == 0, r.stderr


def clean_up(name: str) -> None:
    """What a user does after a crash: rm -f (it may be gone already), then prune."""
    r = cli("rm", "-f", name)
    assert r.returncode in (0, 1), r.stderr
    r = cli("system", "prune", "-f")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("step", CREATE_STEPS)
def test_run_killed_while_creating(step: str, name: str) -> None:
    before = set(entries())
    killed_at(step, "run", "-d", "--name", name, "busybox", "sleep", "100")
    made = sorted(set(entries()) - before)
    assert len(made) >= 1, "the killed creation left nothing to find: was the step reached?"
    cid = made[-1].rsplit("/", 1)[-1]
    out = ps_all()  # never fails; a half-made folder is not a container
    if step == "create.published":
        assert name in out and "Created" in out
    else:
        assert name not in out
        # the listing finished the leftover: nothing set aside stays
        assert not [e for e in entries() if e.startswith(".")], entries()
    clean_up(name)
    assert_nothing_left(cid, name)


@pytest.mark.parametrize("step", RM_STEPS)
def test_rm_killed_while_removing(step: str, name: str) -> None:
    r = cli("run", "-d", "--name", name, "-p", "127.0.0.1::80", "busybox", "sleep", "100")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    killed_at(step, "rm", "-f", name)
    out = ps_all()
    if step == "rm.killed":  # still in place, its processes gone: an exited container
        assert name in out and "Exited" in out
    else:  # renamed aside: it no longer exists, and the listing finished the job
        assert name not in out
    clean_up(name)
    assert_nothing_left(cid, name)


def test_rm_finds_cgroup_folders_without_the_memory_one(name: str) -> None:
    """A shim killed while making its cgroup folders leaves some controllers' folders: rm -f
    removes them all (exists() once looked at the memory folder only)."""
    from pycont import cgroups

    r = cli("run", "-d", "--name", name, "busybox", "true")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    # Its shim removes the cgroup once `true` has ended: let it finish first.
    wait_for(lambda: not processes_naming(cid), what=f"the shim of {name} to end")
    cg = cgroups.for_container(cid)
    if not isinstance(cg, cgroups.V1Cgroup):
        pytest.skip("cgroup v2: one folder per container")
    half = [d for c, d in cg.dirs.items() if c in ("cpu", "cpuacct", "cpuset")]
    for d in half:
        os.makedirs(d, exist_ok=True)
    assert cgroup_dirs(cid) and not os.path.isdir(cg.dirs["memory"])
    assert cli("rm", "-f", name).returncode == 0
    assert_nothing_left(cid, name)


# -- folders damaged by hand (or by a pycont before the transactional create) ---------------
DAMAGE = {
    "config without state": lambda d: os.unlink(os.path.join(d, "state.json")),
    "state without config": lambda d: os.unlink(os.path.join(d, "config.json")),
    "unreadable state": lambda d: _write(os.path.join(d, "state.json"), "{not json"),
    "unreadable config": lambda d: _write(os.path.join(d, "config.json"), "[1, 2"),
    "empty folder": lambda d: _empty(d),
}


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _empty(folder: str) -> None:
    from pycont.fsutil import remove_tree

    for e in os.listdir(folder):
        remove_tree(os.path.join(folder, e))


def broken(name: str, damage: str) -> str:
    r = cli("run", "-d", "--name", name, "busybox", "true")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    assert cli("wait", name).returncode == 0
    DAMAGE[damage](os.path.join(containers_dir(), cid))
    return cid


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_broken_container_is_dead_and_removable(damage: str, name: str) -> None:
    cid = broken(name, damage)
    out = ps_all()
    row = next(line for line in out.splitlines() if line.startswith(cid[:12]))
    assert "Dead (" in row
    r = cli("inspect", cid)
    assert r.returncode == 0, r.stderr
    state = json.loads(r.stdout)[0]["State"]
    assert state["Status"] == "dead" and state["Dead"] is True and state["Error"]
    assert cli("start", cid).returncode != 0  # refused in one line, no traceback
    r = cli("rm", "-f", cid[:12])
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    assert_nothing_left(cid, name)


@pytest.mark.parametrize("damage", ["config without state", "empty folder"])
@pytest.mark.parametrize("prune", [("container", "prune", "-f"), ("system", "prune", "-f")])
def test_prune_removes_dead_containers(damage: str, prune: tuple[str, ...], name: str) -> None:
    cid = broken(name, damage)
    r = cli(*prune)
    assert r.returncode == 0, r.stderr
    assert cid in r.stdout
    assert_nothing_left(cid, name)


def test_rm_by_name_of_a_container_without_state_frees_the_name(name: str) -> None:
    cid = broken(name, "config without state")
    r = cli("run", "-d", "--name", name, "busybox", "true")
    assert r.returncode == 125 and "already in use" in r.stderr  # it holds its name
    r = cli("rm", "-f", name)
    assert (r.returncode, r.stdout) == (0, f"{name}\n"), r.stderr
    assert_nothing_left(cid, name)


def test_a_dead_record_with_live_processes_is_removed_only_by_force(name: str) -> None:
    """A config pycont cannot read (written by a newer one, say) makes the container dead, but
    its processes run: rm and prune leave it, rm -f kills and removes it."""
    r = cli("run", "-d", "--name", name, "busybox", "sleep", "100")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    path = os.path.join(containers_dir(), cid, "config.json")
    with open(path) as f:
        doc = json.load(f)
    _write(path, json.dumps({**doc, "a_field_from_the_future": 1}))
    assert "Dead (" in next(x for x in ps_all().splitlines() if x.startswith(cid[:12]))
    r = cli("rm", cid)
    assert r.returncode == 1 and "its processes run; use force (rm -f)" in r.stderr, r.stderr
    assert cid not in cli("container", "prune", "-f").stdout
    assert processes_naming(cid)  # still running
    assert cli("rm", "-f", cid).returncode == 0
    assert_nothing_left(cid, name)
