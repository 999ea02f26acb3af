"""pycont.compare without a VM: result units and labels, ratios, rendering, the density loop
with fake units, the timing parser, bad input, and the recorded figures read back."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from pycont import compare
from pycont.compare._density import Fill, check_bounds, fill, side
from pycont.compare._measure import MARK, elapsed, script
from pycont.compare._record import from_json, record, to_json
from pycont.errors import UsageError
from pycont.vm.errors import VMError

PROV = compare.Provenance(
    accel="tcg",
    accel_reason="no /dev/kvm",
    guest_kernel="6.1.0-57-amd64",
    host_kernel="6.18.0",
    machine=compare.Machine(cpu_model="Test CPU", cores=2, ram=8 << 30),
    date="2026-12-06T12:00:00+00:00",
    image="busybox",
)
MIB = 1 << 20


def comparison() -> compare.Comparison:
    start = compare.StartResult(
        command=("echo", "hi"),
        container=compare.Phases(ready=0.02, first_output=0.025, exit=0.03),
        vm=compare.Phases(ready=3.5, first_output=3.6, exit=3.7),
        provenance=PROV,
    )
    memory = compare.MemoryResult(
        container_charge=400 * 1024,
        vm_rss=240 * MIB,
        vm_pss=238 * MIB,
        vm_peak=241 * MIB,
        guest_ram=128 * MIB,
        guest_mem_total=80 * MIB,
        guest_mem_available=45 * MIB,
        provenance=PROV,
    )
    cpu = compare.CpuResult(
        tasks=(
            compare.CpuTask("loop", "i=0...", 89000, host=0.25, container=0.26, vm=4.3),
            compare.CpuTask("syscalls", "dd ...", 200000, host=0.3, container=0.33, vm=2.5),
        ),
        rounds=3,
        resolution=0.01,
        provenance=PROV,
    )
    dens = compare.DensityResult(
        budget=1 << 30,
        container=side("container", "cgroup charge", Fill([], 50, 50, 50 * 230 * 1024), 1 << 30),
        vm=side("vm", "qemu PSS", Fill([], 5, 6, 5 * 180 * MIB, "budget"), 1 << 30),
        provenance=PROV,
    )
    sizes = compare.SizesResult(
        image_bytes=2 * MIB, kernel_bytes=63 * MIB, initrd_bytes=4 * MIB, provenance=PROV
    )
    return compare.Comparison(start, memory, cpu, dens, sizes, PROV, seconds=70.0)


def test_units_are_ints_for_bytes_and_floats_for_seconds() -> None:
    c = comparison()
    m = c.memory
    assert m.kernel_reserved == 48 * MIB and m.guest_used == 35 * MIB
    for f in dataclasses.fields(m):
        if f.name != "provenance":
            assert isinstance(getattr(m, f.name), int), f.name
    for phase in (c.start.container, c.start.vm):
        assert all(isinstance(getattr(phase, f.name), float) for f in dataclasses.fields(phase))
    d = c.density
    assert d.vm.per_unit == 180 * MIB and d.vm.estimate == (1 << 30) // (180 * MIB) == 5
    assert d.container.per_unit == 230 * 1024
    assert isinstance(d.container.per_unit, int) and isinstance(d.container.estimate, int)


def test_ratios_follow_from_the_figures() -> None:
    c = comparison()
    assert c.start.ratios["exit vm/container"] == pytest.approx(3.7 / 0.03)
    assert c.memory.ratios["vm pss/container charge"] == pytest.approx(238 * 1024 / 400)
    assert c.cpu.ratios["loop vm/container"] == pytest.approx(4.3 / 0.26)
    assert c.cpu.ratios["syscalls container/host"] == pytest.approx(0.33 / 0.3)
    assert c.density.ratios["per unit vm/container"] == pytest.approx(180 * 1024 / 230)
    assert c.sizes.ratios["vm artefacts/image"] == pytest.approx(67 / 2)
    # the combined view carries every part's ratios, prefixed by the part
    assert c.ratios["cpu: loop vm/container"] == c.cpu.ratios["loop vm/container"]
    assert len(c.ratios) == sum(len(r.ratios) for r in c.results())


def test_text_and_html_tables_name_the_accelerator_and_the_machine() -> None:
    c = comparison()
    for r in c.results():
        text, page = str(r), r._repr_html_()
        assert r.title in text and "accel tcg (no /dev/kvm)" in text and "Test CPU" in text
        assert page.startswith("<table>") and "accel tcg" in page and "<td>" in page
        assert "measured 2026-12-06" in text and "recorded" not in text
    assert "238MiB" in str(c.memory) and "48MiB" in str(c.memory)
    assert "count bound" not in str(c.density) and "budget" in str(c.density)
    assert str(c).count("accel tcg") == 5


def test_fill_stops_at_the_budget_and_counts_only_what_fitted() -> None:
    costs = [100, 100, 100, 100]
    f: Fill[int] = Fill([])
    fill(f, lambda i: i, lambda i: costs[i], budget=250, max_count=10, time_limit=60)
    assert (f.fitted, f.started, f.total, f.stopped_by) == (2, 3, 200, "budget")
    assert f.units == [0, 1, 2]  # the caller removes all three


def test_fill_rereads_every_cost_as_units_share_pages() -> None:
    # PSS: each unit costs 120 alone, 2 x 60 once a second shares its pages
    f: Fill[int] = Fill([])
    fill(f, lambda i: i, lambda i: 120 // len(f.units), budget=150, max_count=5, time_limit=60)
    assert (f.fitted, f.total, f.stopped_by) == (5, 120, "count bound (5)")


def test_fill_stops_at_the_time_bound() -> None:
    ticks = iter(range(100))
    f: Fill[int] = Fill([])
    fill(
        f,
        lambda i: i,
        lambda i: 1,
        budget=1000,
        max_count=50,
        time_limit=3,
        clock=lambda: float(next(ticks)),
    )
    assert f.stopped_by == "time bound (3 s)" and f.fitted == f.started == 2


def test_fill_leaves_started_units_for_cleanup_when_start_fails() -> None:
    def start(i: int) -> int:
        if i == 2:
            raise VMError("boom")
        return i

    f: Fill[int] = Fill([])
    with pytest.raises(VMError):
        fill(f, start, lambda i: 1, budget=100, max_count=5, time_limit=60)
    assert f.units == [0, 1]


@pytest.mark.parametrize(
    ("budget", "containers", "vms", "limit", "message"),
    [
        ("0", 1, 1, 1.0, "invalid density budget"),
        ("lots", 1, 1, 1.0, "budget"),
        ("1g", 0, 1, 1.0, "invalid density max_containers 0"),
        ("1g", 1, -2, 1.0, "invalid density max_vms -2"),
        ("1g", 1, 1, 0.0, "invalid density time_limit"),
    ],
)
def test_bad_density_bounds_are_refused_in_one_line(
    budget: str, containers: int, vms: int, limit: float, message: str
) -> None:
    with pytest.raises(UsageError, match=message) as err:
        check_bounds(budget, containers, vms, limit)
    assert "\n" not in str(err.value)


def test_bad_cpu_input_is_refused() -> None:
    with pytest.raises(UsageError, match="invalid CPU task"):
        compare.measure_cpu(sizes={"nosuch": 1})
    with pytest.raises(UsageError, match="invalid rounds 0"):
        compare.measure_cpu(rounds=0)


def test_the_timed_script_and_its_parser() -> None:
    line = script("loop", 1000, "/dev/shm/x")
    assert line.startswith("read t0 _ </proc/uptime;") and "-lt 1000" in line
    assert "dd if=/dev/zero of=/dev/shm/x" in script("syscalls", 5, "/dev/shm/x")
    assert elapsed(f"noise\n{MARK} 10.25 13.50\n") == pytest.approx(3.25)
    with pytest.raises(Exception, match="no timing line"):
        elapsed("nothing")


def test_recorded_figures_round_trip_marked_recorded(tmp_path: Path) -> None:
    c = comparison()
    path = record(c, "python -m pycont.compare --record", tmp_path / "rec.json")
    back = compare.recorded(path)
    assert back.cpu.tasks[0].vm == 4.3 and back.density.vm.stopped_by == "budget"
    assert isinstance(back.cpu.tasks, tuple) and isinstance(back.start.command, tuple)
    for r in [back, *back.results()]:
        assert r.provenance.recorded and r.provenance.command == "python -m pycont.compare --record"
    assert back.ratios == c.ratios
    assert "recorded 2026-12-06" in str(back.memory)
    with pytest.raises(VMError, match="recorded already"):
        record(back, "again", tmp_path / "again.json")


def test_missing_or_broken_records_say_so(tmp_path: Path) -> None:
    with pytest.raises(VMError, match="no recorded figures at .*--record"):
        compare.recorded(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text(json.dumps({"format": 1, "command": "x", "comparison": {}}))
    with pytest.raises(VMError, match="cannot read them back"):
        compare.recorded(tmp_path / "bad.json")
    doc = to_json(comparison(), "")
    with pytest.raises(VMError, match="with its command"):
        from_json(doc)


def test_the_shipped_record_is_a_real_run_with_its_provenance() -> None:
    path = compare.recorded_path()
    if not path.exists():
        pytest.skip(f"no {path} yet (python -m pycont.compare --record writes it)")
    r = compare.recorded()
    p = r.provenance
    assert p.recorded and p.command.startswith("python -m pycont.compare")
    assert p.accel in ("tcg", "kvm") and p.accel_reason and p.machine.cores >= 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT.*", p.date)
    assert r.memory.vm_pss > r.memory.container_charge > 0
    assert r.start.vm.exit > r.start.container.exit > 0


def test_public_names() -> None:
    assert sorted(compare.__all__) == compare.__all__
    for name in compare.__all__:
        assert hasattr(compare, name), name
