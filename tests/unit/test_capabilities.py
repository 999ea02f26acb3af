"""Capabilities as pure logic: names, Docker's --cap-add/--cap-drop/--privileged rules, masks,
and the order in which apply() asks the kernel (a recording kernel: no root needed)."""

from __future__ import annotations

import pytest

from pycont.errors import UsageError
from pycont.kernel import NarratingKernel, RecordingKernel
from pycont.security import capabilities as caps

DOCKER_MASK = 0xA80425FB


def test_the_table_is_numbered_as_linux_capability_h() -> None:
    assert caps.ALL[0] == "CAP_CHOWN"
    assert caps.ALL[21] == "CAP_SYS_ADMIN"
    assert caps.ALL[40] == "CAP_CHECKPOINT_RESTORE"
    assert len(set(caps.ALL)) == len(caps.ALL) == 41


def test_dockers_fourteen_make_its_mask() -> None:
    assert len(caps.DOCKER_DEFAULT) == 14
    assert caps.to_mask(caps.DOCKER_DEFAULT) == DOCKER_MASK


@pytest.mark.parametrize("typed", ["net_admin", "NET_ADMIN", "CAP_NET_ADMIN", "cap_Net_Admin"])
def test_parse_takes_any_case_with_or_without_the_prefix(typed: str) -> None:
    assert caps.parse(typed) == "CAP_NET_ADMIN"


def test_parse_knows_all() -> None:
    assert caps.parse("all") == caps.parse("ALL") == "ALL"


@pytest.mark.parametrize("typed", ["FOO", "CAP_", "", "CAP_ALL", "NET ADMIN"])
def test_an_unknown_name_is_one_line_saying_what_is_accepted(typed: str) -> None:
    with pytest.raises(UsageError) as err:
        caps.parse(typed)
    text = str(err.value)
    assert "\n" not in text
    assert f"unknown capability {typed!r}" in text
    assert "CAP_NET_ADMIN" in text and "ALL" in text


@pytest.fixture
def kernel_knows_40(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(caps, "last_cap", lambda: 40)


@pytest.mark.usefixtures("kernel_knows_40")
class TestResolve:
    def test_nothing_asked_is_dockers_default(self) -> None:
        assert caps.resolve([], []) == caps.DOCKER_DEFAULT

    def test_add_and_drop(self) -> None:
        got = caps.resolve(["net_admin"], ["CAP_CHOWN", "mknod"])
        assert got == (caps.DOCKER_DEFAULT - {"CAP_CHOWN", "CAP_MKNOD"}) | {"CAP_NET_ADMIN"}

    def test_a_name_dropped_and_added_is_kept(self) -> None:
        assert "CAP_KILL" in caps.resolve(["KILL"], ["KILL"])

    def test_drop_all_keeps_only_the_adds(self) -> None:
        assert caps.resolve(["NET_BIND_SERVICE"], ["ALL"]) == {"CAP_NET_BIND_SERVICE"}
        assert caps.resolve([], ["all"]) == frozenset()

    def test_add_all_keeps_every_capability_but_the_drops(self) -> None:
        got = caps.resolve(["ALL"], ["SYS_ADMIN"])
        assert got == set(caps.ALL) - {"CAP_SYS_ADMIN"}

    def test_privileged_keeps_everything_whatever_is_dropped(self) -> None:
        assert caps.resolve([], ["ALL"], privileged=True) == set(caps.ALL)

    def test_an_unknown_name_is_refused_even_with_privileged(self) -> None:
        with pytest.raises(UsageError, match="unknown capability 'BOGUS'"):
            caps.resolve(["BOGUS"], [], privileged=True)


def test_all_means_what_the_running_kernel_knows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(caps, "last_cap", lambda: 37)  # a 5.4 kernel: no PERFMON, BPF, ...
    assert caps.resolve([], [], privileged=True) == set(caps.ALL[:38])
    assert "CAP_BPF" not in caps.resolve(["ALL"], [])


def test_to_mask_and_decode_round_trip() -> None:
    assert caps.decode(DOCKER_MASK) == sorted(caps.DOCKER_DEFAULT, key=caps.ALL.index)
    assert caps.decode(0) == []
    full = (1 << len(caps.ALL)) - 1
    assert caps.decode(full) == list(caps.ALL)
    assert caps.to_mask(caps.decode(full)) == full
    assert caps.decode(1 << 41) == ["41"]  # a bit newer than the table: its number


def test_to_mask_refuses_all() -> None:
    with pytest.raises(UsageError, match="ALL"):
        caps.to_mask(["ALL"])


def test_of_process_reads_the_five_sets() -> None:
    sets = caps.of_process()
    assert set(sets) == {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}
    with open("/proc/self/status") as f:
        bnd = next(line for line in f if line.startswith("CapBnd:"))
    assert sets["CapBnd"] == int(bnd.split()[1], 16)


def test_last_cap_reads_the_kernel() -> None:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        assert caps.last_cap() == int(f.read())


@pytest.mark.usefixtures("kernel_knows_40")
def test_apply_clears_ambient_then_drops_bounding_then_capsets() -> None:
    k = RecordingKernel()
    caps.apply(k, caps.DOCKER_DEFAULT)
    assert k.calls[0].args == ("PR_CAP_AMBIENT_CLEAR_ALL",)
    drops = [c.args[1] for c in k.calls[1:-1]]
    assert all(c.args[0] == "PR_CAPBSET_DROP" for c in k.calls[1:-1])
    assert drops == [n for n in range(41) if not DOCKER_MASK >> n & 1]
    assert k.calls[-1].name == "capset"
    assert k.calls[-1].args == (DOCKER_MASK, DOCKER_MASK, 0)


def test_apply_skips_what_the_kernel_does_not_know(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(caps, "last_cap", lambda: 37)
    k = RecordingKernel()
    caps.apply(k, frozenset({"CAP_BPF", "CAP_KILL"}))
    drops = [c.args[1] for c in k.calls if c.args[:1] == ("PR_CAPBSET_DROP",)]
    assert 37 in drops and 38 not in drops and 39 not in drops and 5 not in drops
    assert k.calls[-1].args == (1 << 5, 1 << 5, 0)


@pytest.mark.usefixtures("kernel_knows_40")
def test_narration_names_each_capability() -> None:
    lines: list[str] = []
    caps.apply(NarratingKernel(RecordingKernel(), lines.append), frozenset({"CAP_KILL"}))
    assert lines[0] == "prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL) = 0"
    assert "prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN) = 0" in lines
    assert lines[-1] == "capset(eff=0x20, prm=0x20, inh=0x0) = 0"


def test_the_seccomp_load_is_narrated_like_any_call() -> None:
    lines: list[str] = []
    k = RecordingKernel()
    NarratingKernel(k, lines.append).load_seccomp(b"\0" * 8 * 3, 0)
    assert lines == ["seccomp(SECCOMP_SET_MODE_FILTER, 0, {3 BPF instructions}) = 0"]
    assert k.calls[-1].args == ("SECCOMP_SET_MODE_FILTER", 0, 3)
