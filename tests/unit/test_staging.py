"""The store's folder namespace: what is a container, what is a job in progress, what is a
leftover of a crash, and what a damaged container reports (no root, a private store)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pycont import procfs
from pycont.runtime import removal, staging
from pycont.runtime import state as st
from pycont.runtime.state import Status


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PYCONT_ROOT", str(tmp_path))
    os.makedirs(tmp_path / "containers")
    return str(tmp_path / "containers")


def make_container(cid: str, name: str) -> str:
    cfg = st.ContainerConfig(
        id=cid,
        name=name,
        image="busybox:latest",
        layers=[],
        args=["sh"],
        env=[],
        workdir="/",
        hostname=name,
        namespaces={},
    )
    folder = staging.begin_create(cid)
    st.save_config(cfg, folder)
    st.save_state(folder, st.ContainerState())
    return staging.publish(folder, cid)


def dead_pid() -> tuple[int, int]:
    """(pid, start time) of a process that has ended."""
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    owner = (p.pid, procfs.start_time(p.pid))
    p.kill()
    p.wait()
    return owner


@pytest.mark.parametrize(
    ("text", "owner"),
    [
        ("12 345\n", (12, 345)),
        ("12 345", (12, 345)),
        ("", None),
        ("12", None),  # cut short by the crash
        ("0 5", None),
        ("-1 5", None),
        ("a b", None),
        ("1 2 3", None),
    ],
)
def test_parse_owner(text: str, owner: tuple[int, int] | None) -> None:
    assert staging.parse_owner(text) == owner


def test_entries_starting_with_a_dot_are_not_containers() -> None:
    assert st.is_container_entry("ab" * 32)
    assert not st.is_container_entry(staging.CREATING)
    assert not st.is_container_entry(staging.REMOVING)


def test_a_folder_being_built_is_not_listed_until_published(store: str) -> None:
    folder = staging.begin_create("ab" * 32)
    assert st.ids_and_names() == {}
    assert os.path.basename(folder) == "ab" * 32  # its files name it by its id already
    st.save_config(
        st.ContainerConfig("ab" * 32, "web", "i", [], ["sh"], [], "/", "web", {}), folder
    )
    st.save_state(folder, st.ContainerState())
    assert st.ids_and_names() == {}
    staging.publish(folder, "ab" * 32)
    assert st.ids_and_names() == {"ab" * 32: "web"}
    assert sorted(os.listdir(store)) == ["ab" * 32]  # .creating went with its last folder
    assert not os.path.exists(os.path.join(store, "ab" * 32, staging.OWNER))


def test_a_removed_folder_leaves_the_namespace_at_once(store: str) -> None:
    cdir = make_container("cd" * 32, "web")
    moved = staging.begin_remove(cdir)
    assert st.ids_and_names() == {}
    assert [(x.kind, x.cid) for x in staging.leftovers()] == [(staging.REMOVING, "cd" * 32)]
    assert staging.leftovers()[0].in_progress()  # owned by this live process
    staging.finish(moved)
    assert os.listdir(store) == []


def test_reap_finishes_leftovers_of_dead_owners_only(store: str) -> None:
    live = staging.begin_create("11" * 32)  # ours: a creation in progress
    dead = staging.begin_create("22" * 32)
    pid, start = dead_pid()
    with open(os.path.join(dead, staging.OWNER), "w") as f:
        f.write(f"{pid} {start}\n")
    unowned = os.path.join(store, staging.REMOVING, "33" * 32)
    os.makedirs(unowned)  # killed before it wrote its owner file
    assert sorted(removal.reap(block=True)) == ["22" * 32, "33" * 32]
    assert os.path.isdir(live)
    assert sorted(os.listdir(store)) == [staging.CREATING]
    staging.finish(live)
    assert os.listdir(store) == []


def test_reap_waits_for_nobody_when_the_lock_is_taken(store: str) -> None:
    left = os.path.join(store, staging.CREATING, "44" * 32)
    os.makedirs(left)
    with st.store_lock():
        assert removal.reap() == []  # a listing during a creation: leaves it alone
    assert os.path.isdir(left)
    assert removal.reap() == ["44" * 32]


def test_a_damaged_container_is_listed_with_its_name_if_known(store: str) -> None:
    ok = make_container("aa" * 32, "ok")
    no_state = make_container("bb" * 32, "nostate")
    os.unlink(os.path.join(no_state, "state.json"))
    no_config = make_container("cc" * 32, "noconfig")
    os.unlink(os.path.join(no_config, "config.json"))
    os.makedirs(os.path.join(store, "dd" * 32))
    assert st.ids_and_names() == {
        "aa" * 32: "ok",
        "bb" * 32: "nostate",
        "cc" * 32: "",
        "dd" * 32: "",
    }
    assert st.damage(ok) == ""
    assert st.damage(no_state) == "state.json is missing"
    assert st.damage(no_config) == "config.json is missing"
    assert st.damage(os.path.join(store, "dd" * 32)) == "config.json and state.json are missing"


def test_damage_names_the_file_and_what_is_wrong(store: str) -> None:
    cdir = make_container("ee" * 32, "web")
    with open(os.path.join(cdir, "state.json"), "w") as f:
        f.write("{")
    assert st.damage(cdir) == "state.json is not valid JSON"
    with open(os.path.join(cdir, "state.json"), "w") as f:
        json.dump({"status": "sleeping"}, f)
    assert st.damage(cdir).startswith("state.json holds an invalid value: ")
    with open(os.path.join(cdir, "config.json"), "w") as f:
        json.dump({"id": "x"}, f)  # fields missing
    assert st.damage(cdir).startswith("config.json cannot be read: ")


def test_a_dead_container_can_only_be_removed() -> None:
    dead = Status.DEAD
    assert not (dead.can_start() or dead.can_exec() or dead.can_kill())
    assert dead.can_remove(force=False)
    rec = st.dead_state("/nonexistent", "state.json is missing")
    assert (rec.status, rec.error, rec.created) == (dead, "state.json is missing", 0.0)


def test_the_container_shows_dead_and_its_reason(store: str) -> None:
    from pycont.errors import InvalidState
    from pycont.runtime._container import Container

    cdir = make_container("ff" * 32, "web")
    os.unlink(os.path.join(cdir, "config.json"))
    c = Container("ff" * 32)
    rec = c.state()
    assert (rec.status, rec.error) == (Status.DEAD, "config.json is missing")
    with pytest.raises(InvalidState, match="is dead .*config.json is missing.*rm -f"):
        c.config  # noqa: B018
    assert (c.name, repr(c)) == ("", f"<Container ? {'ff' * 6} dead>")
    assert c.inspect()["State"]["Dead"] is True


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("python shim.py run {base}/{cid} 5", True),
        ("{base}/{cid}/ctr.log", True),
        ("{base}/.removing/{cid}/ctr.log", True),
        ("{base}/.creating/{cid}", True),
        ("{base}/{cid}0/ctr.log", False),  # another id that starts with this one
        ("/elsewhere/{cid}/ctr.log", False),
    ],
)
def test_helpers_and_mounts_are_found_by_the_folder_they_name(
    store: str, text: str, found: bool
) -> None:
    cid = "ab" * 32
    assert removal._names(text.format(base=store, cid=cid), cid) is found


def test_a_half_made_v1_cgroup_exists_and_is_destroyed(tmp_path: Path) -> None:
    """A shim killed while create() made the folders one by one: cpu and cpuset made, memory
    not. exists() sees them (it once looked at the memory folder only) and destroy() takes
    every one back."""
    from pycont.cgroups import V1Cgroup

    for ctrl in ("memory", "cpu", "cpuacct", "cpuset", "pids"):
        (tmp_path / ctrl).mkdir()
    cg = V1Cgroup("ab" * 32, root=str(tmp_path))
    assert not cg.exists()
    for ctrl in ("cpu", "cpuset"):
        os.makedirs(cg.dirs[ctrl])
    assert not os.path.isdir(cg.path)  # the memory folder
    assert cg.exists()
    cg.destroy()
    assert not cg.exists()
    assert not any(os.listdir(tmp_path / c) for c in ("memory", "cpu", "cpuacct", "cpuset"))


def test_removing_any_container_reaps_leftovers(store: str) -> None:
    """What the test fixtures do with every new entry of the containers folder: removing the
    aside folder's "container" is a no-op that still finishes the crash's leftover."""
    from pycont.runtime._container import Container

    os.makedirs(os.path.join(store, staging.CREATING, "55" * 32))
    Container(staging.CREATING).remove(force=True)
    assert os.listdir(store) == []


@pytest.mark.parametrize(
    ("file", "text", "reason"),
    [
        ("state.json", "[" * 100_000 + "]" * 100_000, "state.json cannot be read: "),
        ("state.json", '"running"', "state.json cannot be read: "),
        ("config.json", "null", "config.json cannot be read: "),
    ],
)
def test_any_damage_makes_a_dead_container_never_an_error(
    store: str, file: str, text: str, reason: str
) -> None:
    from pycont.runtime._container import Container

    cdir = make_container("99" * 32, "web")
    with open(os.path.join(cdir, file), "w") as f:
        f.write(text)
    assert st.damage(cdir).startswith(reason)
    rec = Container("99" * 32).state()
    assert rec.status is Status.DEAD and rec.error.startswith(reason)
    assert "99" * 32 in st.ids_and_names()
