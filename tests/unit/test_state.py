"""The container's status machine and its record on disk: one transition function, checked
against one table, writing under the container's lock."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from pycont import procfs, volumes
from pycont.cgroups.base import Limits
from pycont.errors import InvalidState, UsageError
from pycont.runtime import spec as sp
from pycont.runtime import state as st
from pycont.runtime.state import Status

ALLOWED = {
    (Status.CREATED, Status.RUNNING),
    (Status.CREATED, Status.EXITED),
    (Status.RUNNING, Status.PAUSED),
    (Status.RUNNING, Status.EXITED),
    (Status.PAUSED, Status.RUNNING),
    (Status.PAUSED, Status.EXITED),
    (Status.EXITED, Status.CREATED),  # docker start of a stopped container, through CREATED
}


@pytest.mark.parametrize("current", list(Status))
@pytest.mark.parametrize("new", list(Status))
def test_transitions(current: Status, new: Status) -> None:
    if (current, new) in ALLOWED:
        st.check_transition(current, new, "web")
        return
    with pytest.raises(InvalidState) as info:
        st.check_transition(current, new, "web")
    msg = str(info.value)
    assert "web" in msg
    assert f"is {current.value}" in msg  # the current status, as STYLE.md asks
    assert new.value in msg


def test_what_each_status_allows() -> None:
    assert [s for s in Status if s.can_start()] == [Status.CREATED, Status.EXITED]
    assert [s for s in Status if s.can_exec()] == [Status.RUNNING]
    assert {s for s in Status if s.can_kill()} == {Status.RUNNING, Status.PAUSED}
    # dead: a record that cannot be read (shown, never written), which rm removes
    assert {s for s in Status if s.can_remove(force=False)} == {
        Status.CREATED,
        Status.EXITED,
        Status.DEAD,
    }
    assert all(s.can_remove(force=True) for s in Status)


@pytest.mark.parametrize("name", ["ab", "web", "web-1", "my_app.v2", "A1", "0abc", "x" * 128])
def test_valid_names(name: str) -> None:
    sp.validate_name(name)


@pytest.mark.parametrize(
    "name", ["", "a", "-web", "_web", ".web", "web app", "web/1", "wéb", "web:1", "web\n"]
)
def test_invalid_names(name: str) -> None:
    # docker: [a-zA-Z0-9][a-zA-Z0-9_.-]+
    with pytest.raises(UsageError) as info:
        sp.validate_name(name)
    assert repr(name) in str(info.value)
    assert "[a-zA-Z0-9][a-zA-Z0-9_.-]" in str(info.value)


def test_config_and_state_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCONT_ROOT", str(tmp_path))
    cfg = st.ContainerConfig(
        id="ab" * 32,
        name="web",
        image="busybox:latest",
        layers=["/l"],
        args=["sh"],
        env=["PATH=/bin"],
        workdir="/",
        hostname="abababababab",
        namespaces={"pid": "private"},
    )
    cdir = st.container_dir(cfg.id)
    assert cdir == os.path.join(str(tmp_path), "containers", cfg.id)
    os.makedirs(cdir)
    st.save_config(cfg)
    rec = st.ContainerState(status="running", pid=7, exit_code=None)
    st.save_state(cdir, rec)
    assert st.load_config(cdir) == cfg
    assert st.load_state(cdir) == rec
    with open(os.path.join(cdir, "state.json")) as f:
        assert json.load(f)["status"] == "running"


# -- the transition function -------------------------------------------------------------------
@pytest.fixture
def cdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A container folder with a config and a fresh (created) state, in a private store."""
    monkeypatch.setenv("PYCONT_ROOT", str(tmp_path))
    cfg = st.ContainerConfig(
        id="cd" * 32,
        name="web",
        image="busybox:latest",
        layers=["/l"],
        args=["sh"],
        env=[],
        workdir="/",
        hostname="web",
        namespaces={},
    )
    path = st.container_dir(cfg.id)
    os.makedirs(path)
    st.save_config(cfg)
    st.save_state(path, st.ContainerState())
    return path


def test_transition_checks_sets_fields_and_writes(cdir: str) -> None:
    rec = st.transition(cdir, Status.RUNNING, pid=42, started_at=1.5)
    assert rec.status is Status.RUNNING and rec.pid == 42 and rec.started_at == 1.5
    assert st.load_state(cdir) == rec
    with open(os.path.join(cdir, "state.json")) as f:
        assert json.load(f)["status"] == "running"  # the string value on disk
    assert sorted(os.listdir(cdir)) == ["config.json", "lock", "state.json"]  # no temporary


def test_an_illegal_transition_raises_with_the_current_state_and_writes_nothing(
    cdir: str,
) -> None:
    st.transition(cdir, Status.RUNNING, pid=42)
    st.transition(cdir, Status.EXITED, exit_code=3)
    with pytest.raises(InvalidState) as info:
        st.transition(cdir, Status.PAUSED)
    assert str(info.value) == "container web is exited: cannot become paused"
    rec = st.load_state(cdir)
    assert rec.status is Status.EXITED and rec.exit_code == 3


def test_transition_of_a_removed_container_raises_file_not_found(cdir: str) -> None:
    os.unlink(os.path.join(cdir, "state.json"))
    with pytest.raises(FileNotFoundError):
        st.transition(cdir, Status.RUNNING)


def test_advanced_is_the_same_rule_without_the_disk() -> None:
    rec = st.ContainerState(status=Status.RUNNING, pid=7)
    done = st.advanced(rec, Status.EXITED, "web", exit_code=0)
    assert done.status is Status.EXITED and done.exit_code == 0 and rec.status is Status.RUNNING
    with pytest.raises(InvalidState, match="container web is exited: cannot become running"):
        st.advanced(done, Status.RUNNING, "web")


def test_status_is_the_enum_after_loading(cdir: str) -> None:
    assert st.load_state(cdir).status is Status.CREATED
    assert st.ContainerState(status="paused").status is Status.PAUSED
    with pytest.raises(ValueError):
        st.ContainerState(status="sleeping")


def test_a_state_written_by_the_previous_version_loads(cdir: str) -> None:
    # pycont 0.1 called the shim's pid monitor_pid.
    old = {"status": "running", "pid": 9, "monitor_pid": 8, "pid_start": 1, "created": 1.0}
    with open(os.path.join(cdir, "state.json"), "w") as f:
        json.dump(old, f)
    rec = st.load_state(cdir)
    assert rec.status is Status.RUNNING and rec.shim_pid == 8 and rec.pid == 9


def test_reconcile_records_a_container_whose_shim_died(cdir: str) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    st.transition(cdir, Status.RUNNING, pid=dead.pid, pid_start=12345, shim_pid=dead.pid)
    rec = st.reconcile(cdir)
    assert rec.status is Status.EXITED and rec.exit_code == 137
    assert "shim died" in rec.error
    assert st.load_state(cdir) == rec  # recorded, not only corrected in memory


def test_reconcile_leaves_the_end_to_a_live_shim(cdir: str) -> None:
    # The container's process is gone, but its shim lives: it is about to record the exit.
    me = os.getpid()
    st.transition(cdir, Status.RUNNING, pid=0, shim_pid=me, shim_start=procfs.start_time(me))
    assert st.reconcile(cdir).status is Status.RUNNING


# -- limits in config.json ----------------------------------------------------------------------
def test_config_keeps_limits_as_numbers(cdir: str) -> None:
    cfg = st.load_config(cdir)
    cfg.limits = Limits.from_options(memory="64m", cpus="0.5", pids_limit="10")
    st.save_config(cfg)
    with open(os.path.join(cdir, "config.json")) as f:
        stored = json.load(f)["limits"]
    assert stored == {
        "memory": 64 << 20,
        "memory_swap": 0,
        "nano_cpus": 500_000_000,
        "pids_limit": 10,
    }
    assert st.load_config(cdir).limits == cfg.limits


def test_config_keeps_mounts_typed_with_their_host_folder(cdir: str) -> None:
    cfg = st.load_config(cdir)
    cfg.mounts = [volumes.parse("data:/data").resolved(), volumes.parse("/etc:/s:ro").resolved()]
    st.save_config(cfg)
    loaded = st.load_config(cdir).mounts
    assert loaded == cfg.mounts
    assert all(isinstance(m, volumes.Mount) for m in loaded)
    # A volume's folder is fixed at create time: it does not move with a later PYCONT_ROOT.
    assert loaded[0].host == volumes.data_dir("data")
    assert (loaded[1].host, loaded[1].readonly) == ("/etc", True)


def test_config_written_by_the_previous_version_loads_its_docker_strings(cdir: str) -> None:
    path = os.path.join(cdir, "config.json")
    with open(path) as f:
        doc = json.load(f)
    doc["limits"] = {"memory": "67108864", "memory_swap": "0", "cpus": "0.5"}
    with open(path, "w") as f:
        json.dump(doc, f)
    lim = st.load_config(cdir).limits
    assert (lim.memory, lim.memory_swap, lim.nano_cpus) == (64 << 20, 0, 500_000_000)


def test_limits_json_round_trip_with_devices() -> None:
    from pycont.cgroups.units import DeviceRate

    lim = Limits(
        cpuset_cpus="0", device_read_bps=(DeviceRate("/dev/sda", 8, 0, 1 << 20),), nano_cpus=0
    )
    assert sp.limits_from_json(json.loads(json.dumps(sp.limits_to_json(lim)))) == lim
