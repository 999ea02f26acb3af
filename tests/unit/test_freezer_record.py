"""The record follows the kernel: pause, unpause, update and commit's freeze over a fake v2 tree.

A container's folder in a tmp store, its cgroup a fake cgroupfs (tests.unit.test_cgroups_fake)
whose ``cgroup.events`` reports frozen as soon as ``cgroup.freeze`` is written, as the kernel
does for a cgroup with no process stuck in the kernel. The container's "PID 1" is this test's
own process, so the record is not taken for an orphan. The same code runs on v1 in
tests/integration/test_freezer_update.py, with real containers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycont import failpoints, procfs
from pycont.cgroups import V2Cgroup
from pycont.errors import ContainerNotFound, InvalidState, KernelError
from pycont.runtime import state as st
from pycont.runtime.container import Container
from pycont.runtime.resources import COMMIT_FREEZE, PENDING_UPDATE
from pycont.runtime.state import Status
from tests.unit.test_cgroups_fake import V2_FILES, fill

CID = "ef" * 32
MiB = 1 << 20


class FakeV2(V2Cgroup):
    """A v2 cgroup over plain files; writing cgroup.freeze also updates cgroup.events."""

    def _write(self, path: str, value: str) -> None:
        super()._write(path, value)
        if os.path.basename(path) == "cgroup.freeze":
            with open(self._f("cgroup.events"), "w") as f:
                f.write(f"populated 1\nfrozen {value}\n")


@pytest.fixture
def ctr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Container]:
    monkeypatch.setenv("PYCONT_ROOT", str(tmp_path / "root"))
    fill(tmp_path / "cg" / "pycont" / CID, V2_FILES)
    cfg = st.ContainerConfig(
        id=CID,
        name="web",
        image="busybox:latest",
        layers=[],
        args=["sh"],
        env=[],
        workdir="/",
        hostname="web",
        namespaces={},
        cgroup=True,
    )
    os.makedirs(st.container_dir(CID))
    st.save_config(cfg)
    me = os.getpid()
    rec = st.ContainerState(status=Status.RUNNING, pid=me, pid_start=procfs.start_time(me))
    st.save_state(st.container_dir(CID), rec)
    yield fresh(tmp_path)


def fresh(tmp_path: Path) -> Container:
    """A new Container object (as a new CLI process makes), on the fake cgroup."""
    c = Container(CID)
    c.__dict__["_cgroup"] = FakeV2(CID, root=str(tmp_path / "cg"))
    return c


def cg_file(tmp_path: Path, name: str) -> str:
    return (tmp_path / "cg" / "pycont" / CID / name).read_text().strip()


def recorded(c: Container) -> Status:
    return st.load_state(c.dir).status


@pytest.fixture
def fail_at(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Failpoints on (an error at the step given to point())."""
    monkeypatch.setattr(failpoints, "_seen", {})
    yield


def point(monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    monkeypatch.setattr(failpoints, "_points", {step: ("error", 1)})


def test_pause_and_unpause_write_the_freezer_then_the_record(
    ctr: Container, tmp_path: Path
) -> None:
    ctr.pause()
    assert cg_file(tmp_path, "cgroup.freeze") == "1"
    assert recorded(ctr) is Status.PAUSED
    ctr.unpause()
    assert cg_file(tmp_path, "cgroup.freeze") == "0"
    assert recorded(ctr) is Status.RUNNING


@pytest.mark.usefixtures("fail_at")
def test_a_pause_that_died_after_freezing_reads_as_paused(
    ctr: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point(monkeypatch, "pause.frozen")
    with pytest.raises(failpoints.FailpointError):
        ctr.pause()
    assert recorded(ctr) is Status.RUNNING  # the kernel is frozen, the record not yet
    assert fresh(tmp_path).status == Status.PAUSED
    assert recorded(ctr) is Status.PAUSED  # put right on disk, for every later reader


@pytest.mark.usefixtures("fail_at")
def test_an_unpause_that_died_after_thawing_reads_as_running(
    ctr: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctr.pause()
    point(monkeypatch, "unpause.thawed")
    with pytest.raises(failpoints.FailpointError):
        ctr.unpause()
    assert fresh(tmp_path).status == Status.RUNNING
    assert recorded(ctr) is Status.RUNNING


def test_a_freezer_frozen_by_a_dead_commit_is_thawed(ctr: Container, tmp_path: Path) -> None:
    dead = subprocess.Popen(["sleep", "60"])
    start = procfs.start_time(dead.pid)
    dead.kill()
    dead.wait()
    with open(os.path.join(ctr.dir, COMMIT_FREEZE), "w") as f:
        f.write(f"{dead.pid} {start}\n")
    ctr.cgroup().freeze()
    assert fresh(tmp_path).status == Status.RUNNING
    assert cg_file(tmp_path, "cgroup.freeze") == "0"
    assert not os.path.exists(os.path.join(ctr.dir, COMMIT_FREEZE))


def test_a_commit_freeze_by_a_live_process_stays(ctr: Container, tmp_path: Path) -> None:
    assert ctr._freeze_for_commit()
    assert fresh(tmp_path).status == Status.PAUSED  # this process is the committer: alive
    ctr._thaw_after_commit()
    assert (fresh(tmp_path).status, cg_file(tmp_path, "cgroup.freeze")) == (Status.RUNNING, "0")


def test_a_user_unpause_during_a_commit_is_not_undone(ctr: Container, tmp_path: Path) -> None:
    assert ctr._freeze_for_commit()
    fresh(tmp_path).unpause()
    fresh(tmp_path).pause()  # the user's own pause now: the commit must leave it
    ctr._thaw_after_commit()
    assert (recorded(ctr), cg_file(tmp_path, "cgroup.freeze")) == (Status.PAUSED, "1")


def test_exec_into_a_paused_container_refuses_with_dockers_words(ctr: Container) -> None:
    ctr.pause()
    with pytest.raises(InvalidState, match="^container web is paused, unpause the container"):
        ctr.exec(["true"])


def test_update_merges_into_the_config_on_disk(ctr: Container, tmp_path: Path) -> None:
    other = fresh(tmp_path)
    ctr.update(memory="64m")
    other.update(pids_limit=50)  # its own copy of the config predates the first update
    lim = st.load_config(ctr.dir).limits
    assert (lim.memory, lim.pids_limit) == (64 * MiB, 50)
    assert (cg_file(tmp_path, "memory.max"), cg_file(tmp_path, "pids.max")) == (
        str(64 * MiB),
        "50",
    )
    assert not os.path.exists(os.path.join(ctr.dir, PENDING_UPDATE))


@pytest.mark.usefixtures("fail_at")
@pytest.mark.parametrize("step", ["update.journal-written", "update.kernel-set"])
def test_an_update_that_died_is_rolled_forward(
    ctr: Container, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    point(monkeypatch, step)
    with pytest.raises(failpoints.FailpointError):
        ctr.update(memory="32m")
    assert st.load_config(ctr.dir).limits.memory is None
    assert fresh(tmp_path).status == Status.RUNNING  # reading the state finishes it
    assert st.load_config(ctr.dir).limits.memory == 32 * MiB
    assert cg_file(tmp_path, "memory.max") == str(32 * MiB)
    assert not os.path.exists(os.path.join(ctr.dir, PENDING_UPDATE))


def test_an_update_the_kernel_refuses_changes_nothing(ctr: Container, tmp_path: Path) -> None:
    os.unlink(tmp_path / "cg" / "pycont" / CID / "pids.max")  # no pids controller
    with pytest.raises(KernelError, match="pids.max"):
        ctr.update(pids_limit=10)
    assert st.load_config(ctr.dir).limits.pids_limit is None
    assert not os.path.exists(os.path.join(ctr.dir, PENDING_UPDATE))
    assert recorded(ctr) is Status.RUNNING


def test_a_container_removed_meanwhile_is_not_found_not_a_traceback(ctr: Container) -> None:
    assert ctr.config.name == "web"  # read before the removal, as a command does
    shutil.rmtree(ctr.dir)
    with pytest.raises(ContainerNotFound, match="removed"):
        ctr.update(memory="64m")
    ctr._thaw_after_commit()  # a commit whose container went: nothing to thaw, no error


def test_reading_the_state_under_the_containers_own_lock_does_not_wait_for_itself(
    ctr: Container, tmp_path: Path
) -> None:
    ctr.cgroup().freeze()  # the record says running: reading it wants the lock to fix it
    done: list[Status] = []
    with st.locked(ctr.dir):
        # a daemon: were the deadlock back, the session must fail here, not hang at its exit
        reader = threading.Thread(target=lambda: done.append(fresh(tmp_path).status), daemon=True)
        reader.start()
        reader.join(timeout=30)
    assert done == [Status.RUNNING]  # left as it was, not a deadlock
    assert fresh(tmp_path).status == Status.PAUSED  # put right once the lock is free
