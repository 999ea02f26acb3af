"""The container's status machine and its record on disk."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from pycont.errors import InvalidState, UsageError
from pycont.runtime import state as st
from pycont.runtime.state import Status

ALLOWED = {
    (Status.CREATED, Status.RUNNING),
    (Status.CREATED, Status.EXITED),
    (Status.RUNNING, Status.PAUSED),
    (Status.RUNNING, Status.EXITED),
    (Status.PAUSED, Status.RUNNING),
    (Status.PAUSED, Status.EXITED),
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
    assert [s for s in Status if s.can_start()] == [Status.CREATED]
    assert [s for s in Status if s.can_exec()] == [Status.RUNNING]
    assert {s for s in Status if s.can_kill()} == {Status.RUNNING, Status.PAUSED}
    assert {s for s in Status if s.can_remove(force=False)} == {Status.CREATED, Status.EXITED}
    assert all(s.can_remove(force=True) for s in Status)


@pytest.mark.parametrize("name", ["ab", "web", "web-1", "my_app.v2", "A1", "0abc", "x" * 128])
def test_valid_names(name: str) -> None:
    st.validate_name(name)


@pytest.mark.parametrize(
    "name", ["", "a", "-web", "_web", ".web", "web app", "web/1", "wéb", "web:1", "web\n"]
)
def test_invalid_names(name: str) -> None:
    # docker: [a-zA-Z0-9][a-zA-Z0-9_.-]+
    with pytest.raises(UsageError) as info:
        st.validate_name(name)
    assert repr(name) in str(info.value)
    assert "[a-zA-Z0-9][a-zA-Z0-9_.-]" in str(info.value)


def test_write_json_replaces_atomically_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
    st.write_json(path, {"status": "created"})
    st.write_json(path, {"status": "running", "pid": 42})
    assert st.read_json(path) == {"status": "running", "pid": 42}
    assert os.listdir(tmp_path) == ["state.json"]


def test_write_json_failure_keeps_the_old_record_and_no_temporary(tmp_path: Path) -> None:
    path = str(tmp_path / "state.json")
    st.write_json(path, {"status": "running"})
    with pytest.raises(TypeError):
        st.write_json(path, {"status": object()})  # not JSON: fails half way through
    assert st.read_json(path) == {"status": "running"}
    assert os.listdir(tmp_path) == ["state.json"]


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


def test_process_start_time_names_one_process() -> None:
    start = st.process_start_time(os.getpid())
    assert start > 0
    assert st.process_start_time(os.getpid()) == start
    assert st.alive(os.getpid(), start)
    assert not st.alive(os.getpid(), start + 1)
    assert not st.alive(0, start)


def test_process_start_time_of_no_process_is_zero() -> None:
    with open("/proc/sys/kernel/pid_max") as f:
        beyond = int(f.read()) + 1
    assert st.process_start_time(beyond) == 0


def test_process_start_time_with_a_hostile_command_name(tmp_path: Path) -> None:
    # proc(5): field 2 is "(comm)" and comm may hold spaces and ")"
    link = tmp_path / "a) b c"
    link.symlink_to("/bin/sleep")
    proc = subprocess.Popen([str(link), "30"])
    try:
        start = st.process_start_time(proc.pid)
        assert start >= st.process_start_time(os.getpid())
        assert st.alive(proc.pid, start)
    finally:
        proc.kill()
        proc.wait()
