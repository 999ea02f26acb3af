"""The sampler's reader (Cgroup.reader()): the same figures as the cgroup files, from both drivers.

The fake trees of test_cgroups_fake hold the text the kernel shows; the test rewrites a file
(as the kernel would between two reads) and checks what the next pread sees.
"""

from __future__ import annotations

from pathlib import Path

from pycont.cgroups import Reading, V1Cgroup, V2Cgroup
from tests.unit.test_cgroups_fake import NAME, fake_v1, fake_v2

MiB = 1 << 20


def test_v1_reading_of_a_capped_container(tmp_path: Path) -> None:
    fake_v1(tmp_path)
    d = tmp_path
    (d / "cpuacct/pycont/web/cpuacct.usage").write_text("123456789\n")
    (d / "cpu/pycont/web/cpu.stat").write_text(
        "nr_periods 40\nnr_throttled 30\nthrottled_time 1500000000\nnr_bursts 0\nburst_time 0\n"
    )
    (d / "cpu/pycont/web/cpu.cfs_quota_us").write_text("50000\n")
    (d / "memory/pycont/web/memory.usage_in_bytes").write_text(f"{16 * MiB}\n")
    (d / "memory/pycont/web/memory.max_usage_in_bytes").write_text(f"{32 * MiB}\n")
    (d / "memory/pycont/web/memory.limit_in_bytes").write_text(f"{32 * MiB}\n")
    (d / "memory/pycont/web/memory.oom_control").write_text(
        "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n"
    )
    (d / "pids/pycont/web/pids.current").write_text("3\n")
    (d / "blkio/pycont/web/blkio.throttle.io_service_bytes").write_text(
        "8:0 Read 4096\n8:0 Write 8192\n8:0 Total 12288\nTotal 12288\n"
    )
    with V1Cgroup(NAME, root=str(d)).reader() as r:
        assert r.read() == Reading(
            cpu_usage_ns=123456789,
            cpu_nr_periods=40,
            cpu_nr_throttled=30,
            cpu_throttled_ns=1_500_000_000,
            memory=16 * MiB,
            memory_peak=32 * MiB,  # the kernel's high-water mark, not the usage now
            pids=3,
            memory_limit=32 * MiB,
            cpu_limit=0.5,
            oom_kills=1,
            io_read_bytes=4096,
            io_write_bytes=8192,
        )


def test_v1_no_limit_is_none(tmp_path: Path) -> None:
    # The fake's fresh cgroup: "9223372036854771712" memory, quota -1.
    with V1Cgroup(NAME, root=str(fake_v1(tmp_path))).reader() as r:
        reading = r.read()
    assert (reading.memory_limit, reading.cpu_limit) == (None, None)


def test_v2_reading_and_a_quick_read_repeats_the_slow_figures(tmp_path: Path) -> None:
    d = fake_v2(tmp_path) / "pycont" / NAME
    (d / "cpu.stat").write_text(
        "usage_usec 2000\nuser_usec 1500\nsystem_usec 500\nnr_periods 10\nnr_throttled 4\n"
        "throttled_usec 700\nnr_bursts 0\nburst_usec 0\n"
    )
    (d / "cpu.max").write_text("150000 100000\n")
    (d / "memory.current").write_text(f"{MiB}\n")
    (d / "memory.peak").write_text(f"{2 * MiB}\n")
    (d / "memory.max").write_text(f"{64 * MiB}\n")
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n")
    (d / "io.stat").write_text("8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n")
    with V2Cgroup(NAME, root=str(tmp_path)).reader() as r:
        first = r.read()
        assert first == Reading(
            2_000_000, 10, 4, 700_000, MiB, 2 * MiB, 0, 64 * MiB, 1.5, 1, 100, 200
        )
        (d / "memory.max").write_text("max\n")
        (d / "memory.current").write_text(f"{3 * MiB}\n")
        (d / "memory.peak").write_text(f"{3 * MiB}\n")
        quick = r.read(full=False)
        assert (quick.memory, quick.memory_limit) == (3 * MiB, 64 * MiB)  # limit not re-read
        assert r.read().memory_limit is None  # "max"


def test_v2_without_memory_peak_keeps_the_highest_seen(tmp_path: Path) -> None:
    d = fake_v2(tmp_path) / "pycont" / NAME
    (d / "memory.peak").unlink()  # Linux < 5.19
    seen = []
    with V2Cgroup(NAME, root=str(tmp_path)).reader() as r:
        for mib in (5, 9, 2):
            (d / "memory.current").write_text(f"{mib * MiB}\n")
            seen.append(r.read(full=False).memory_peak // MiB)
    assert seen == [5, 9, 9]


def test_a_missing_controller_reads_as_zero_and_no_cgroup_opens_nothing(tmp_path: Path) -> None:
    fake_v1(tmp_path, omit=("pids", "blkio"))
    with V1Cgroup(NAME, root=str(tmp_path)).reader() as r:
        assert r.opened()
        assert r.read().pids == 0
    with V2Cgroup("gone", root=str(tmp_path)).reader() as r:
        assert not r.opened()
