"""Both cgroup drivers against a fake cgroupfs: folders and files in tmp_path, no root.

A real cgroupfs fills a new folder with its control files; the fake tree has them written in
advance, with the contents the kernel shows. Every write the driver makes is recorded (file,
value, in order) and also lands in the file, so a test can check both the sequence and the end.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycont import cgroups, kernel
from pycont.cgroups import Limits, V1Cgroup, V2Cgroup
from pycont.cgroups.units import DeviceRate
from pycont.errors import KernelError, Unsupported, UsageError
from pycont.kernel import LinuxKernel
from pycont.kernel.probe import cgroup_layout

MiB = 1 << 20
NAME = "web"
V1_UNLIMITED = "9223372036854771712\n"
SDA = DeviceRate("/dev/sda", 8, 0, MiB)
SDB = DeviceRate("/dev/sdb", 8, 16, 2 * MiB)

# What a fresh v1 child cgroup shows, per controller (kernel 6.x).
V1_FILES: dict[str, dict[str, str]] = {
    "memory": {
        "memory.limit_in_bytes": V1_UNLIMITED,
        "memory.memsw.limit_in_bytes": V1_UNLIMITED,
        "memory.soft_limit_in_bytes": V1_UNLIMITED,
        "memory.usage_in_bytes": "0\n",
        "memory.max_usage_in_bytes": "0\n",
        "memory.memsw.usage_in_bytes": "0\n",
        "memory.failcnt": "0\n",
        "memory.memsw.failcnt": "0\n",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
    },
    "cpu": {
        "cpu.cfs_period_us": "100000\n",
        "cpu.cfs_quota_us": "-1\n",
        "cpu.shares": "1024\n",
        "cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\nnr_bursts 0\nburst_time 0\n",
    },
    "cpuacct": {"cpuacct.usage": "0\n"},
    "cpuset": {"cpuset.cpus": "\n", "cpuset.mems": "\n"},
    "pids": {"pids.max": "max\n", "pids.current": "0\n"},
    "blkio": {
        "blkio.throttle.read_bps_device": "",
        "blkio.throttle.write_bps_device": "",
        "blkio.bfq.weight": "default 100\n",
        "blkio.throttle.io_service_bytes": "Total 0\n",
    },
    "freezer": {"freezer.state": "THAWED\n"},
}

V2_FILES: dict[str, str] = {
    "cgroup.procs": "",
    "cgroup.controllers": "cpuset cpu io memory pids\n",
    "cgroup.subtree_control": "\n",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cgroup.freeze": "0\n",
    "cgroup.kill": "",
    "memory.max": "max\n",
    "memory.swap.max": "max\n",
    "memory.low": "0\n",
    "memory.current": "0\n",
    "memory.peak": "0\n",
    "memory.swap.current": "0\n",
    "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
    "cpu.max": "max 100000\n",
    "cpu.weight": "100\n",
    "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\n"
    "throttled_usec 0\nnr_bursts 0\nburst_usec 0\n",
    "cpuset.cpus": "\n",
    "pids.max": "max\n",
    "pids.current": "0\n",
    "io.max": "",
    "io.weight": "default 100\n",
    "io.stat": "",
}


def fill(folder: Path, files: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)


def fake_v1(root: Path, omit: tuple[str, ...] = (), drop: tuple[str, ...] = ()) -> Path:
    """root/<controller>/pycont/web, as on the v1 hybrid machines; ``omit`` controllers are not
    mounted, ``drop`` files are not there (e.g. memsw without swap accounting)."""
    for ctrl, files in V1_FILES.items():
        if ctrl in omit:
            continue
        top = root / ctrl
        procs = {"cgroup.procs": ""}
        # cpuset: the root has CPUs and memory nodes; a new cgroup starts with neither.
        cpus = {"cpuset.cpus": "0-3\n", "cpuset.mems": "0\n"} if ctrl == "cpuset" else {}
        empty = {"cpuset.cpus": "\n", "cpuset.mems": "\n"} if ctrl == "cpuset" else {}
        fill(top, {**procs, **cpus})
        fill(top / "pycont", {**procs, **empty})
        fill(top / "pycont" / NAME, {**procs, **files})
        for name in drop:
            (top / "pycont" / NAME / name).unlink(missing_ok=True)
    return root


def fake_v2(root: Path, offered: str = "cpuset cpu io memory hugetlb pids rdma misc") -> Path:
    fill(root, {"cgroup.controllers": offered + "\n", "cgroup.subtree_control": "\n"})
    fill(
        root / "pycont",
        {
            "cgroup.controllers": "cpuset cpu io memory pids\n",
            "cgroup.subtree_control": "\n",
            "cgroup.procs": "",
        },
    )
    fill(root / "pycont" / NAME, V2_FILES)
    return root


class Writes(list[tuple[str, str]]):
    """(path relative to the fake root, value) of every write, in order."""

    root: Path
    fail: dict[str, int]

    def of(self, name: str) -> list[str]:
        return [value for path, value in self if path.endswith("/" + name) or path == name]


class WritingKernel(LinuxKernel):
    """The real file operations, with every write logged (and refused where ``fail`` says)."""

    def __init__(self, log: Writes) -> None:
        self.log = log

    def write_file(self, path: str, data: str) -> None:
        rel = os.path.relpath(path, self.log.root)
        if rel in self.log.fail:  # the fake kernel refuses this write
            raise KernelError(f'write "{data}" to', self.log.fail[rel], path)
        self.log.append((rel, data))
        super().write_file(path, data)


@pytest.fixture
def writes(tmp_path: Path) -> Iterator[Writes]:
    log = Writes()
    log.root = tmp_path
    log.fail = {}
    # A cgroup made without a kernel uses the one in use: this one, for the test.
    with kernel.use(WritingKernel(log)):
        yield log


def text(path: Path) -> str:
    return path.read_text()


# ---- v1 ---------------------------------------------------------------------------------------


def test_v1_folders_are_per_controller_under_pycont(tmp_path: Path) -> None:
    cg = V1Cgroup(NAME, root=str(fake_v1(tmp_path)))
    assert cg.paths() == {c: str(tmp_path / c / "pycont" / NAME) for c in V1_FILES}
    assert cg.path == str(tmp_path / "memory" / "pycont" / NAME)
    assert all("pycont" in p for p in cg.paths().values())
    assert cg.files()["memory"] == "memory.limit_in_bytes"
    assert cg.version == "v1"


def test_v1_create_makes_every_folder(tmp_path: Path) -> None:
    for ctrl in ("memory", "cpu", "pids"):
        (tmp_path / ctrl).mkdir()
    (tmp_path / "unified").mkdir()  # the hybrid's cgroup2 mount: not a v1 controller
    cg = V1Cgroup(NAME, root=str(tmp_path))
    cg.create()
    cg.create()  # idempotent
    assert sorted(cg.paths()) == ["cpu", "memory", "pids"]
    assert all(os.path.isdir(p) for p in cg.paths().values())
    cg.destroy()
    cg.destroy()  # idempotent
    assert sorted(os.listdir(tmp_path)) == ["cpu", "memory", "pids", "unified"]
    assert not any(os.listdir(tmp_path / c) for c in ("cpu", "memory", "pids"))


def test_v1_cpu_and_cpuacct_mounted_together_share_one_folder(tmp_path: Path) -> None:
    (tmp_path / "cpu,cpuacct").mkdir()
    (tmp_path / "memory").mkdir()
    cg = V1Cgroup(NAME, root=str(tmp_path))
    cg.create()
    assert cg.paths()["cpu"] == cg.paths()["cpuacct"] == str(tmp_path / "cpu,cpuacct/pycont/web")
    (tmp_path / "cpu,cpuacct/pycont/web/cgroup.procs").write_text("")
    (tmp_path / "memory/pycont/web/cgroup.procs").write_text("")
    cg.add_pid(4242)
    assert text(tmp_path / "cpu,cpuacct/pycont/web/cgroup.procs") == "4242"


def test_v1_create_copies_cpuset_from_the_parent(tmp_path: Path, writes: Writes) -> None:
    cg = V1Cgroup(NAME, root=str(fake_v1(tmp_path)))
    cg.create()
    assert writes == [
        ("cpuset/pycont/cpuset.cpus", "0-3"),
        ("cpuset/pycont/cpuset.mems", "0"),
        ("cpuset/pycont/web/cpuset.cpus", "0-3"),
        ("cpuset/pycont/web/cpuset.mems", "0"),
    ]


def test_v1_apply_writes_each_limit_to_its_file(tmp_path: Path, writes: Writes) -> None:
    cg = V1Cgroup(NAME, root=str(fake_v1(tmp_path)))
    limits = Limits(
        memory=64 * MiB,
        memory_swap=0,  # docker's default: memsw = twice memory
        memory_reservation=32 * MiB,
        nano_cpus=500_000_000,
        cpu_shares=512,
        cpuset_cpus="0-1",
        pids_limit=64,
        device_read_bps=(SDA,),
        device_write_bps=(SDA, SDB),
        blkio_weight=300,
    )
    cg.apply(limits)
    assert writes == [
        ("memory/pycont/web/memory.limit_in_bytes", "67108864"),  # memory first: it grows
        ("memory/pycont/web/memory.memsw.limit_in_bytes", "134217728"),
        ("memory/pycont/web/memory.soft_limit_in_bytes", "33554432"),
        ("cpu/pycont/web/cpu.cfs_period_us", "100000"),
        ("cpu/pycont/web/cpu.cfs_quota_us", "50000"),
        ("cpu/pycont/web/cpu.shares", "512"),
        ("cpuset/pycont/web/cpuset.cpus", "0-1"),
        ("pids/pycont/web/pids.max", "64"),
        ("blkio/pycont/web/blkio.throttle.read_bps_device", "8:0 1048576"),
        ("blkio/pycont/web/blkio.throttle.write_bps_device", "8:0 1048576"),
        ("blkio/pycont/web/blkio.throttle.write_bps_device", "8:16 2097152"),
        ("blkio/pycont/web/blkio.bfq.weight", "300"),  # no blkio.weight: BFQ's file
    ]
    assert text(tmp_path / "memory/pycont/web/memory.limit_in_bytes") == "67108864"


def test_v1_update_changes_only_given_fields(tmp_path: Path, writes: Writes) -> None:
    cg = V1Cgroup(NAME, root=str(fake_v1(tmp_path)))
    cg.apply(Limits(pids_limit=-1, nano_cpus=0, cpu_shares=1))
    assert writes == [
        ("cpu/pycont/web/cpu.cfs_period_us", "100000"),
        ("cpu/pycont/web/cpu.cfs_quota_us", "-1"),  # --cpus 0: no limit
        ("cpu/pycont/web/cpu.shares", "2"),  # clamped as the kernel would
        ("pids/pycont/web/pids.max", "max"),
    ]


def test_v1_blkio_weight_prefers_cfq_file(tmp_path: Path, writes: Writes) -> None:
    fake_v1(tmp_path)
    (tmp_path / "blkio/pycont/web/blkio.weight").write_text("500\n")
    V1Cgroup(NAME, root=str(tmp_path)).apply(Limits(blkio_weight=10))
    assert writes == [("blkio/pycont/web/blkio.weight", "10")]


def test_v1_blkio_weight_without_any_weight_file(tmp_path: Path, writes: Writes) -> None:
    cg = V1Cgroup(NAME, root=str(fake_v1(tmp_path, drop=("blkio.bfq.weight",))))
    with pytest.raises(Unsupported, match="BFQ"):
        cg.apply(Limits(memory=64 * MiB, blkio_weight=300))
    assert writes == []  # refused before anything was written


def test_v1_growing_memory_raises_memsw_first(tmp_path: Path, writes: Writes) -> None:
    fake_v1(tmp_path)
    (tmp_path / "memory/pycont/web/memory.limit_in_bytes").write_text("67108864\n")
    (tmp_path / "memory/pycont/web/memory.memsw.limit_in_bytes").write_text("134217728\n")
    cg = V1Cgroup(NAME, root=str(tmp_path))
    cg.apply(Limits(memory=256 * MiB, memory_swap=512 * MiB))
    assert writes == [
        ("memory/pycont/web/memory.memsw.limit_in_bytes", "536870912"),
        ("memory/pycont/web/memory.limit_in_bytes", "268435456"),
    ]
    writes.clear()
    cg.apply(Limits(memory=32 * MiB, memory_swap=-1))
    assert writes.of("memory.memsw.limit_in_bytes") == ["-1"]
    assert writes[0][1] == "-1"  # unlimited swap first, then the smaller memory


def test_v1_memory_above_current_memsw_is_docker_s_error(tmp_path: Path, writes: Writes) -> None:
    fake_v1(tmp_path)
    (tmp_path / "memory/pycont/web/memory.memsw.limit_in_bytes").write_text("134217728\n")
    cg = V1Cgroup(NAME, root=str(tmp_path))
    with pytest.raises(UsageError, match="update the memoryswap at the same time"):
        cg.apply(Limits(memory=256 * MiB))
    assert writes == []


def test_v1_without_swap_accounting(tmp_path: Path, writes: Writes) -> None:
    cg = V1Cgroup(NAME, root=str(fake_v1(tmp_path, drop=("memory.memsw.limit_in_bytes",))))
    with pytest.raises(Unsupported) as exc:
        cg.apply(Limits(memory=64 * MiB, memory_swap=128 * MiB))
    msg = str(exc.value)
    assert "--memory-swap" in msg and "memory.memsw.limit_in_bytes" in msg
    assert "does not account swap" in msg and "\n" not in msg
    assert writes == []
    cg.apply(Limits(memory=64 * MiB, memory_swap=0))  # docker's default: silently no swap limit
    cg.apply(Limits(memory=64 * MiB, memory_swap=-1))
    assert writes.of("memory.memsw.limit_in_bytes") == []
    assert writes.of("memory.limit_in_bytes") == ["67108864", "67108864"]


def test_v1_missing_controller_is_refused_before_any_write(tmp_path: Path, writes: Writes) -> None:
    cg = V1Cgroup(NAME, root=str(fake_v1(tmp_path, omit=("pids",))))
    with pytest.raises(Unsupported, match="no v1 pids controller is mounted"):
        cg.apply(Limits(memory=64 * MiB, pids_limit=10))
    assert writes == []


def test_v1_add_pid_writes_every_controller(tmp_path: Path, writes: Writes) -> None:
    cg = V1Cgroup(NAME, root=str(fake_v1(tmp_path)))
    cg.add_pid(4242)
    assert sorted(path for path, _ in writes) == sorted(
        f"{c}/pycont/web/cgroup.procs" for c in V1_FILES
    )
    assert {value for _, value in writes} == {"4242"}
    (tmp_path / "pids/pycont/web/cgroup.procs").write_text("4242\n4300\n")
    assert cg.pids() == [4242, 4300]


def test_v1_write_error_names_the_file_and_value(tmp_path: Path, writes: Writes) -> None:
    cg = V1Cgroup(NAME, root=str(fake_v1(tmp_path)))
    writes.fail["memory/pycont/web/memory.limit_in_bytes"] = errno.EBUSY
    with pytest.raises(KernelError) as exc:
        cg.apply(Limits(memory=64 * MiB))
    assert exc.value.errno == errno.EBUSY
    assert str(exc.value) == (
        f'write "67108864" to {tmp_path}/memory/pycont/web/memory.limit_in_bytes: '
        "Device or resource busy [EBUSY]"
    )


def test_real_write_error_names_file_and_value(tmp_path: Path) -> None:
    with pytest.raises(KernelError) as exc:
        LinuxKernel().write_file(str(tmp_path / "nope"), "64")
    assert str(exc.value) == f'write "64" to {tmp_path}/nope: No such file or directory [ENOENT]'


def test_v1_stats_from_sample_files(tmp_path: Path) -> None:
    fake_v1(tmp_path)
    d = tmp_path
    samples = {
        "memory/pycont/web/memory.usage_in_bytes": "1048576\n",
        "memory/pycont/web/memory.max_usage_in_bytes": "2097152\n",
        "memory/pycont/web/memory.memsw.usage_in_bytes": "1572864\n",
        "memory/pycont/web/memory.limit_in_bytes": "67108864\n",
        "memory/pycont/web/memory.failcnt": "3\n",
        "memory/pycont/web/memory.memsw.failcnt": "2\n",
        "memory/pycont/web/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        "cpuacct/pycont/web/cpuacct.usage": "123456789\n",
        "cpu/pycont/web/cpu.stat": "nr_periods 10\nnr_throttled 4\nthrottled_time 5000000\n"
        "nr_bursts 0\nburst_time 0\n",
        "pids/pycont/web/pids.current": "5\n",
        "pids/pycont/web/pids.max": "64\n",
        "blkio/pycont/web/blkio.throttle.io_service_bytes": "8:0 Read 4096\n8:0 Write 8192\n"
        "8:0 Sync 12288\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 12288\n8:16 Read 1000\n"
        "8:16 Write 0\n8:16 Sync 0\n8:16 Async 1000\n8:16 Discard 0\n8:16 Total 1000\n"
        "Total 13288\n",
    }
    for rel, content in samples.items():
        (d / rel).write_text(content)
    cg = V1Cgroup(NAME, root=str(tmp_path))
    s = cg.stats()
    assert (s.cpu_usage_ns, s.cpu_nr_periods, s.cpu_nr_throttled) == (123456789, 10, 4)
    assert s.cpu_throttled_ns == 5_000_000
    assert (s.memory_current, s.memory_peak, s.memory_limit) == (MiB, 2 * MiB, 64 * MiB)
    assert s.swap_current == MiB // 2
    assert (s.oom_events, s.oom_kills, s.memory_limit_hits) == (None, 2, 5)
    assert (s.pids_current, s.pids_limit) == (5, 64)
    assert (s.io_read_bytes, s.io_write_bytes) == (5096, 8192)
    assert s.version == "v1"
    assert cg.oom_killed()
    assert cg.memory_peak() == s.memory_peak  # what a container's end records, read alone


def test_v1_stats_unlimited_and_missing(tmp_path: Path) -> None:
    cg = V1Cgroup(NAME, root=str(fake_v1(tmp_path, omit=("blkio",))))
    s = cg.stats()
    assert (s.memory_limit, s.pids_limit) == (None, None)  # 9223372036854771712 and "max"
    assert (s.io_read_bytes, s.io_write_bytes) == (None, None)  # no blkio controller
    assert s.cpu_usage_ns == 0 and not cg.oom_killed()


def test_v1_freeze_and_thaw(tmp_path: Path, writes: Writes) -> None:
    cg = V1Cgroup(NAME, root=str(fake_v1(tmp_path)))
    assert not cg.frozen()
    cg.freeze(timeout=0.1)  # the fake "kernel" reports FROZEN at once
    assert cg.frozen()
    cg.thaw()
    assert not cg.frozen()
    assert writes.of("freezer.state") == ["FROZEN", "THAWED"]


def test_v1_kill_all_of_an_empty_cgroup_returns(tmp_path: Path, writes: Writes) -> None:
    V1Cgroup(NAME, root=str(fake_v1(tmp_path))).kill_all(timeout=0.1)
    assert writes == []


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".hidden", "-x", "x" * 256, "wéb", "a b"])
def test_cgroup_names_are_checked(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError, match="invalid cgroup name"):
        V1Cgroup(name, root=str(tmp_path))
    with pytest.raises(UsageError, match="invalid cgroup name"):
        V2Cgroup(name, root=str(tmp_path))


# ---- v2 ---------------------------------------------------------------------------------------


def test_v2_one_folder_under_pycont(tmp_path: Path) -> None:
    cg = V2Cgroup(NAME, root=str(fake_v2(tmp_path)))
    assert cg.paths() == {"unified": str(tmp_path / "pycont" / NAME)}
    assert cg.files()["memory"] == "memory.max"
    assert cg.version == "v2"


def test_v2_create_enables_controllers_top_down(tmp_path: Path, writes: Writes) -> None:
    cg = V2Cgroup(NAME, root=str(fake_v2(tmp_path, offered="cpu memory hugetlb pids")))
    cg.create()
    assert writes == [
        ("cgroup.subtree_control", "+cpu"),  # only what the root offers
        ("cgroup.subtree_control", "+memory"),
        ("cgroup.subtree_control", "+pids"),
        ("pycont/cgroup.subtree_control", "+cpu"),
        ("pycont/cgroup.subtree_control", "+cpuset"),
        ("pycont/cgroup.subtree_control", "+io"),
        ("pycont/cgroup.subtree_control", "+memory"),
        ("pycont/cgroup.subtree_control", "+pids"),
    ]


def test_v2_create_skips_enabled_controllers(tmp_path: Path, writes: Writes) -> None:
    fake_v2(tmp_path, offered="cpu memory")
    (tmp_path / "cgroup.subtree_control").write_text("cpu memory\n")
    (tmp_path / "pycont/cgroup.subtree_control").write_text("cpuset cpu io memory pids\n")
    V2Cgroup(NAME, root=str(tmp_path)).create()
    assert writes == []


def test_v2_no_internal_processes_is_explained(tmp_path: Path, writes: Writes) -> None:
    cg = V2Cgroup(NAME, root=str(fake_v2(tmp_path)))
    writes.fail["cgroup.subtree_control"] = errno.EBUSY
    with pytest.raises(KernelError) as exc:
        cg.create()
    msg = str(exc.value)
    assert msg.startswith(f'write "+cpu" to {tmp_path}/cgroup.subtree_control: ')
    assert "[EBUSY]" in msg and "no internal processes" in msg


def test_v2_apply_writes_each_limit_to_its_file(tmp_path: Path, writes: Writes) -> None:
    cg = V2Cgroup(NAME, root=str(fake_v2(tmp_path)))
    cg.apply(
        Limits(
            memory=64 * MiB,
            memory_swap=192 * MiB,  # docker's memory + swap: 128m of swap
            memory_reservation=32 * MiB,
            nano_cpus=500_000_000,
            cpu_shares=512,
            cpuset_cpus="0-1",
            pids_limit=64,
            device_read_bps=(SDA,),
            device_write_bps=(SDA, SDB),
            blkio_weight=300,
        )
    )
    assert writes == [
        ("pycont/web/memory.max", "67108864"),
        ("pycont/web/memory.swap.max", "134217728"),
        ("pycont/web/memory.low", "33554432"),
        ("pycont/web/cpu.max", "50000 100000"),
        ("pycont/web/cpu.weight", "20"),
        ("pycont/web/cpuset.cpus", "0-1"),
        ("pycont/web/pids.max", "64"),
        ("pycont/web/io.max", "8:0 rbps=1048576 wbps=1048576"),
        ("pycont/web/io.max", "8:16 wbps=2097152"),
        ("pycont/web/io.weight", "default 2930"),  # no io.bfq.weight: converted
    ]


def test_v2_unlimited_values(tmp_path: Path, writes: Writes) -> None:
    cg = V2Cgroup(NAME, root=str(fake_v2(tmp_path)))
    cg.apply(
        Limits(
            memory_swap=-1,
            nano_cpus=0,
            pids_limit=-1,
            device_read_bps=(DeviceRate("/dev/sda", 8, 0, 0),),
        )
    )
    assert writes == [
        ("pycont/web/memory.swap.max", "max"),
        ("pycont/web/cpu.max", "max 100000"),
        ("pycont/web/pids.max", "max"),
        ("pycont/web/io.max", "8:0 rbps=max"),
    ]


def test_v2_docker_default_swap_equals_memory(tmp_path: Path, writes: Writes) -> None:
    cg = V2Cgroup(NAME, root=str(fake_v2(tmp_path)))
    cg.apply(Limits.from_options(memory="64m"))
    assert writes == [
        ("pycont/web/memory.max", "67108864"),
        ("pycont/web/memory.swap.max", "67108864"),
    ]


def test_v2_swap_update_uses_the_current_memory_max(tmp_path: Path, writes: Writes) -> None:
    cg = V2Cgroup(NAME, root=str(fake_v2(tmp_path)))
    with pytest.raises(UsageError, match="set --memory too"):
        cg.apply(Limits(memory_swap=128 * MiB))  # memory.max is "max"
    cg.apply(Limits(memory_swap=0))  # docker's "unset": nothing to write
    (tmp_path / "pycont/web/memory.max").write_text("67108864\n")
    cg.apply(Limits(memory_swap=96 * MiB))
    assert writes == [("pycont/web/memory.swap.max", str(32 * MiB))]


def test_v2_without_swap_accounting(tmp_path: Path, writes: Writes) -> None:
    fake_v2(tmp_path)
    (tmp_path / "pycont/web/memory.swap.max").unlink()
    cg = V2Cgroup(NAME, root=str(tmp_path))
    with pytest.raises(Unsupported, match="does not account swap"):
        cg.apply(Limits(memory=64 * MiB, memory_swap=128 * MiB))
    assert writes == []
    cg.apply(Limits(memory=64 * MiB, memory_swap=0))
    assert writes == [("pycont/web/memory.max", "67108864")]


def test_v2_bfq_weight_is_docker_s_range(tmp_path: Path, writes: Writes) -> None:
    fake_v2(tmp_path)
    (tmp_path / "pycont/web/io.bfq.weight").write_text("default 100\n")
    V2Cgroup(NAME, root=str(tmp_path)).apply(Limits(blkio_weight=300))
    assert writes == [("pycont/web/io.bfq.weight", "300")]


def test_v2_controller_not_enabled(tmp_path: Path, writes: Writes) -> None:
    fake_v2(tmp_path)
    (tmp_path / "pycont/web/pids.max").unlink()
    with pytest.raises(Unsupported) as exc:
        V2Cgroup(NAME, root=str(tmp_path)).apply(Limits(memory=64 * MiB, pids_limit=10))
    assert "no pids.max in" in str(exc.value) and "pids controller is not enabled" in str(exc.value)
    assert writes == []


def test_v2_stats_from_sample_files(tmp_path: Path) -> None:
    fake_v2(tmp_path)
    d = tmp_path / "pycont/web"
    (d / "cpu.stat").write_text(
        "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 4\n"
        "throttled_usec 2500\nnr_bursts 0\nburst_usec 0\n"
    )
    (d / "memory.current").write_text("1048576\n")
    (d / "memory.peak").write_text("2097152\n")
    (d / "memory.max").write_text("67108864\n")
    (d / "memory.swap.current").write_text("4096\n")
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 7\noom 2\noom_kill 1\noom_group_kill 0\n")
    (d / "pids.current").write_text("3\n")
    (d / "io.stat").write_text(
        "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n"
        "8:16 rbytes=100 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n"
    )
    cg = V2Cgroup(NAME, root=str(tmp_path))
    s = cg.stats()
    assert (s.cpu_usage_ns, s.cpu_nr_periods, s.cpu_nr_throttled) == (1_500_000, 10, 4)
    assert s.cpu_throttled_ns == 2_500_000
    assert (s.memory_current, s.memory_peak, s.memory_limit) == (MiB, 2 * MiB, 64 * MiB)
    assert (s.swap_current, s.oom_events, s.oom_kills, s.memory_limit_hits) == (4096, 2, 1, 7)
    assert (s.pids_current, s.pids_limit) == (3, None)
    assert (s.io_read_bytes, s.io_write_bytes) == (4196, 8192)
    assert s.version == "v2"
    assert cg.oom_killed()


def test_v2_peak_is_tracked_without_memory_peak(tmp_path: Path) -> None:
    fake_v2(tmp_path)
    d = tmp_path / "pycont/web"
    (d / "memory.peak").unlink()  # Linux < 5.19
    cg = V2Cgroup(NAME, root=str(tmp_path))
    seen = []
    for current in (MiB, 3 * MiB, 2 * MiB):
        (d / "memory.current").write_text(f"{current}\n")
        seen.append(cg.stats().memory_peak)
    assert seen == [MiB, 3 * MiB, 3 * MiB]
    assert cg.memory_peak() == 3 * MiB  # without memory.peak, the highest current seen


def test_v2_memory_peak_reads_memory_peak(tmp_path: Path) -> None:
    cg = V2Cgroup(NAME, root=str(fake_v2(tmp_path)))
    (tmp_path / "pycont/web/memory.peak").write_text("5242880\n")
    assert cg.memory_peak() == 5 * MiB


def test_v2_freeze_waits_for_cgroup_events(tmp_path: Path, writes: Writes) -> None:
    cg = V2Cgroup(NAME, root=str(fake_v2(tmp_path)))
    with pytest.raises(KernelError, match=r"wait for frozen 1 in .*cgroup.events.*ETIMEDOUT"):
        cg.freeze(timeout=0.05)  # the fake never reports "frozen 1"
    (tmp_path / "pycont/web/cgroup.events").write_text("populated 1\nfrozen 1\n")
    cg.freeze(timeout=0.05)
    assert cg.frozen()
    cg.thaw()
    assert writes.of("cgroup.freeze") == ["1", "1", "0"]


def test_v2_add_pid_and_pids(tmp_path: Path, writes: Writes) -> None:
    cg = V2Cgroup(NAME, root=str(fake_v2(tmp_path)))
    cg.add_pid(77)
    assert writes == [("pycont/web/cgroup.procs", "77")]
    assert cg.pids() == [77]


def test_destroy_removes_the_folder_and_the_empty_parent(tmp_path: Path) -> None:
    # A real cgroupfs takes a folder's control files away with it; a plain fs needs them gone.
    cg = V2Cgroup(NAME, root=str(tmp_path))
    (tmp_path / "pycont/web").mkdir(parents=True)
    (tmp_path / "pycont/other").mkdir()
    cg.destroy()
    assert sorted(os.listdir(tmp_path / "pycont")) == ["other"]  # another container's: kept
    V2Cgroup("other", root=str(tmp_path)).destroy()
    assert not (tmp_path / "pycont").exists()
    cg.destroy()  # idempotent


def test_destroy_error_names_the_folder(tmp_path: Path) -> None:
    fake_v2(tmp_path)  # files in the folder: rmdir fails as it would with a process inside
    with pytest.raises(KernelError) as exc:
        V2Cgroup(NAME, root=str(tmp_path)).destroy()
    assert str(exc.value).startswith(f"rmdir {tmp_path}/pycont/web: ")


# ---- choosing a driver ------------------------------------------------------------------------


def mountinfo(root: Path, v1_ctrls: tuple[str, ...] = (), v2: str | None = None) -> str:
    lines = ["22 1 254:0 / / rw,relatime - ext4 /dev/vda rw"]
    for i, ctrl in enumerate(v1_ctrls):
        lines.append(f"{32 + i} 31 0:{29 + i} / {root}/{ctrl} rw - cgroup cgroup rw,{ctrl}")
    if v2 is not None:
        lines.append(f"41 31 0:38 / {v2} rw - cgroup2 cgroup2 rw")
    return "\n".join(lines) + "\n"


def test_detect_hybrid_is_v1_and_ignores_the_hugetlb_mount(tmp_path: Path) -> None:
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified/cgroup.controllers").write_text("hugetlb\n")
    info = mountinfo(tmp_path, ("memory", "cpu", "pids"), v2=f"{tmp_path}/unified")
    layout = cgroup_layout(info)
    assert layout.mode == "hybrid"
    assert cgroups.detect(layout) == "v1"
    cg = cgroups.for_container(NAME, layout)
    assert isinstance(cg, V1Cgroup)
    assert cg.paths()["memory"] == f"{tmp_path}/memory/pycont/web"
    assert "unified" not in str(cg.paths())


def test_detect_v2_and_none(tmp_path: Path) -> None:
    fake_v2(tmp_path)
    layout = cgroup_layout(mountinfo(tmp_path, v2=str(tmp_path)))
    assert cgroups.detect(layout) == "v2"
    cg = cgroups.for_container(NAME, layout)
    assert isinstance(cg, V2Cgroup) and cg.path == f"{tmp_path}/pycont/web"
    none = cgroup_layout(mountinfo(tmp_path))
    assert cgroups.detect(none) == "none"
    with pytest.raises(Unsupported, match="no cgroup filesystem is mounted"):
        cgroups.for_container(NAME, none)


def test_available_says_why_not(tmp_path: Path) -> None:
    none = cgroups.available(cgroup_layout(mountinfo(tmp_path)))
    assert not none.ok and "WITHOUT resource limits" in none.reason
    # A v1 mount point that is not there: mkdir fails, and the answer quotes it.
    broken = cgroups.available(cgroup_layout(mountinfo(tmp_path, ("memory",))))
    assert not broken.ok
    assert broken.reason.startswith(f"cannot create a cgroup: mkdir {tmp_path}/memory/pycont: ")
    assert broken.reason.endswith("containers run WITHOUT resource limits")


def test_available_creates_and_removes_a_check_cgroup(tmp_path: Path) -> None:
    for ctrl in ("memory", "cpu", "cpuacct", "pids", "freezer"):
        (tmp_path / ctrl).mkdir()
    answer = cgroups.available(
        cgroup_layout(mountinfo(tmp_path, ("memory", "cpu", "cpuacct", "pids", "freezer")))
    )
    assert answer.ok, answer
    assert answer.reason.startswith("cgroup v1: each container gets <controller>/pycont/<name>")
    assert all(not os.listdir(tmp_path / c) for c in os.listdir(tmp_path))  # nothing left
    partial = cgroups.available(cgroup_layout(mountinfo(tmp_path, ("memory", "cpu"))))
    assert not partial.ok and "missing cpuacct, pids, freezer" in partial.reason
