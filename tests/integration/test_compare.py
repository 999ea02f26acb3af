"""Container vs VM for real: each measurement once, with tiny bounds, on this machine's kernel
and qemu (TCG here). Asserts what the kernel and qemu show (cgroup charge, smaps_rollup, the
guest's /proc) and that nothing is left: the autouse fixtures check containers and VMs."""

from __future__ import annotations

import os

import pytest

from pycont import compare
from pycont.compare._measure import container_charge, idle_container, idle_vm, qemu_memory
from pycont.errors import CommandNotFound, UsageError
from tests.helpers import requires

pytestmark = [pytest.mark.vm, requires("root")]
MIB = 1 << 20


@pytest.fixture(scope="module", autouse=True)
def _needs_a_vm() -> None:
    ok, why = compare.available()
    if not ok:
        pytest.skip(f"no VM on this machine: {why}")


def _provenance_is_live(p: compare.Provenance) -> None:
    assert p.accel in ("tcg", "kvm") and p.accel_reason
    assert p.guest_kernel and p.host_kernel == os.uname().release
    assert p.machine.cores == os.cpu_count() and p.machine.ram > 0
    assert not p.recorded and p.image == "busybox"


def test_start_times_one_shot_echo_in_both(name: str) -> None:
    r = compare.measure_start("busybox", ["echo", "hi"], warmup=False, prefix=name)
    for ph in (r.container, r.vm):
        assert 0 < ph.ready <= ph.first_output <= ph.exit
    # a VM boots a kernel first: slower than a container on any accelerator
    assert r.vm.ready > r.container.ready
    assert r.ratios["exit vm/container"] == pytest.approx(r.vm.exit / r.container.exit)
    _provenance_is_live(r.provenance)


def test_memory_of_an_idle_sleep(name: str) -> None:
    m = compare.measure_memory("busybox", memory="128m", prefix=name)
    assert m.guest_ram == 128 * MIB
    assert 0 < m.guest_mem_total < m.guest_ram and m.kernel_reserved > 0
    assert 0 < m.guest_used < m.guest_mem_total
    assert 0 < m.container_charge < m.vm_pss <= m.vm_rss <= m.vm_peak
    _provenance_is_live(m.provenance)


def test_the_readings_agree_with_the_kernel_files(name: str) -> None:
    with idle_container("busybox", f"{name}-c") as c:
        charge = container_charge(c)
        current = c.cgroup().stats().memory_current
        # the same cgroup file read twice by two paths; an idle sleep barely moves it
        assert current is not None and abs(charge - current) < MIB
    with idle_vm("busybox", f"{name}-v") as v:
        rss, pss, _ = qemu_memory(v)
        with open(f"/proc/{v.pid}/smaps_rollup") as f:
            kib = {k: int(x.split()[0]) for k, _, x in (ln.partition(":") for ln in f) if x}
        # qemu keeps running between the two reads: close, not identical
        assert abs(rss // 1024 - kib["Rss"]) < 16 * 1024
        assert abs(pss // 1024 - kib["Pss"]) < 16 * 1024 and pss <= rss


def test_cpu_same_work_everywhere_with_small_sizes(name: str) -> None:
    r = compare.measure_cpu(
        "busybox", sizes={"loop": 5000, "syscalls": 5000}, rounds=1, prefix=name
    )
    assert [t.name for t in r.tasks] == ["loop", "syscalls"]
    for t in r.tasks:
        assert t.size == 5000 and "5000" in t.script
        assert t.host >= 0 and t.container >= 0 and t.vm > 0
    assert r.resolution == 0.01 and r.rounds == 1
    assert not [f for f in os.listdir("/dev/shm") if f.startswith(name)]
    _provenance_is_live(r.provenance)


def test_density_with_tiny_bounds_removes_everything(name: str) -> None:
    d = compare.measure_density(
        "busybox", budget="300m", max_containers=3, max_vms=2, time_limit=120, prefix=name
    )
    assert d.budget == 300 * MIB
    c, v = d.container, d.vm
    assert (c.fitted, c.started, c.stopped_by) == (3, 3, "count bound (3)")
    assert c.per_unit == c.total // 3 > 0 and c.estimate == d.budget // c.per_unit
    # a qemu under TCG costs ~240 MiB: the first fits in 300m, the second does not
    assert 1 <= v.started <= 2 and v.fitted <= v.started
    assert v.stopped_by in ("budget", "count bound (2)")
    if v.fitted:
        assert v.per_unit > c.per_unit and v.estimate == d.budget // v.per_unit
    assert compare.recorded_path().name == "vm_recorded.json"
    import pycont
    import pycont.vm as vm

    assert not [x for x in vm.vms() if x.name.startswith(name)]
    assert not [x for x in pycont.containers(all=True) if x.name.startswith(name)]


def test_sizes_of_the_image_and_the_vm_artefacts(name: str) -> None:
    from pycont.vm.launch import boot_kernel

    s = compare.measure_sizes("busybox", prefix=name)
    assert 0 < s.image_bytes < s.initrd_bytes  # the initrd holds the image and pycont's files
    assert s.kernel_bytes == os.path.getsize(boot_kernel().vmlinux)
    assert s.ratios["vm artefacts/image"] > 1


def test_bad_input_is_refused_before_anything_starts(name: str) -> None:
    import pycont

    for call in (
        lambda: compare.measure_memory("busybox", memory="64m", prefix=name),
        lambda: compare.measure_density("busybox", memory="64m", prefix=name),
    ):
        with pytest.raises(UsageError, match="at least 128m"):
            call()
    with pytest.raises(UsageError, match="invalid density max_vms 0"):
        compare.run_all("busybox", max_vms=0, prefix=name)
    assert not [x for x in pycont.containers(all=True) if x.name.startswith(name)]


def test_a_command_that_does_not_start_leaves_nothing(name: str) -> None:
    import pycont

    with pytest.raises(CommandNotFound):
        compare.measure_start("busybox", ["no-such-command"], warmup=False, prefix=name)
    assert not [x for x in pycont.containers(all=True) if x.name.startswith(name)]


def test_density_interrupted_removes_what_it_started(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pycont
    from pycont.compare import _density

    reads: list[int] = []
    real = _density.container_charge

    def charge_then_ctrl_c(c: pycont.Container) -> int:
        reads.append(1)
        if len(reads) == 2:  # the first reading after the second container started
            raise KeyboardInterrupt
        return real(c)

    monkeypatch.setattr(_density, "container_charge", charge_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        compare.measure_density("busybox", budget="300m", max_containers=5, prefix=name)
    assert len(reads) == 2
    assert not [x for x in pycont.containers(all=True) if x.name.startswith(name)]
