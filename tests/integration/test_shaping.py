"""Shaping on a real kernel: qdiscs on a veth pair inside a network namespace of the test's own,
read back through netlink (RTM_GETQDISC), never through our own bookkeeping.

Both ends of the veth live in the test's namespace: no host device is ever shaped."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from pycont.net.shaping import NETEM_MISSING, Shaping, ShapingError, apply, netem_available, read
from tests.helpers import requires

pytestmark = requires("root")
pyroute2 = pytest.importorskip("pyroute2")

TC_H_ROOT = 0xFFFFFFFF


@pytest.fixture
def veth() -> Iterator[tuple[Any, int]]:
    """(IPRoute in a fresh netns pycont-h3-<random>, ifindex of pch3a), all removed after."""
    from pyroute2 import IPRoute, netns

    name = f"pycont-h3-{secrets.token_hex(4)}"
    netns.create(name)
    try:
        with IPRoute(netns=name) as ipr:
            ipr.link("add", ifname="pch3a", kind="veth", peer={"ifname": "pch3b"})
            (index,) = ipr.link_lookup(ifname="pch3a")
            ipr.link("set", index=index, state="up")
            yield ipr, index
    finally:
        netns.remove(name)  # the veth pair and its qdiscs go with it
    assert not os.path.exists(f"/run/netns/{name}")


def root_qdiscs(ipr: Any, index: int) -> list[Any]:
    return [q for q in ipr.get_qdiscs(index=index) if q["parent"] == TC_H_ROOT]


def test_rate_is_a_tbf_the_kernel_holds(veth: tuple[Any, int]) -> None:
    ipr, index = veth
    apply(ipr, index, Shaping(rate=1_000_000))
    (root,) = root_qdiscs(ipr, index)
    assert root.get_attr("TCA_KIND") == "tbf"
    parms = root.get_attr("TCA_OPTIONS").get_attr("TCA_TBF_PARMS")
    assert parms["rate"] == 125_000  # tbf counts bytes per second
    # the queue bound: 50 ms worth of the rate on top of the 16 KiB bucket (tc-tbf(8) limit)
    assert parms["limit"] == 125_000 * 50 // 1000 + 16 * 1024
    assert read(ipr, index) == Shaping(rate=1_000_000)


def test_apply_again_replaces(veth: tuple[Any, int]) -> None:
    ipr, index = veth
    apply(ipr, index, Shaping(rate=1_000_000))
    apply(ipr, index, Shaping(rate=1_000_000))  # idempotent: no EEXIST
    assert [q.get_attr("TCA_KIND") for q in root_qdiscs(ipr, index)] == ["tbf"]
    apply(ipr, index, Shaping(rate=2_000_000))
    assert read(ipr, index) == Shaping(rate=2_000_000)
    assert len(ipr.get_qdiscs(index=index)) == 1
    apply(ipr, index, Shaping())  # back to the veth's default
    assert [q.get_attr("TCA_KIND") for q in root_qdiscs(ipr, index)] == ["noqueue"]
    assert read(ipr, index) == Shaping()
    apply(ipr, index, Shaping())  # nothing to delete: no error either


def test_the_peer_is_not_shaped(veth: tuple[Any, int]) -> None:
    ipr, index = veth
    apply(ipr, index, Shaping(rate=1_000_000))
    (peer,) = ipr.link_lookup(ifname="pch3b")
    assert read(ipr, peer) == Shaping()


@pytest.mark.parametrize(
    "shaping", [Shaping(latency=0.05), Shaping(rate=1_000_000, latency=0.05)], ids=str
)
def test_latency_works_or_says_netem_is_missing(veth: tuple[Any, int], shaping: Shaping) -> None:
    ipr, index = veth
    apply(ipr, index, Shaping(rate=4_000_000))
    ok, why = netem_available()
    if ok:
        apply(ipr, index, shaping)
        assert read(ipr, index) == shaping
        kinds = {q.get_attr("TCA_KIND") for q in ipr.get_qdiscs(index=index)}
        assert kinds == ({"netem", "tbf"} if shaping.rate else {"netem"})
    else:
        assert why == NETEM_MISSING
        with pytest.raises(ShapingError) as info:
            apply(ipr, index, shaping)
        assert str(info.value) == NETEM_MISSING
        assert isinstance(info.value, OSError) and info.value.errno == 2  # ENOENT
        # the old tbf was taken off to make room: the device is left unshaped, not half-shaped
        assert read(ipr, index) == Shaping()


def test_netem_probe_is_cached_and_leaves_nothing() -> None:
    first = netem_available()
    assert isinstance(first[0], bool)
    assert netem_available() is first
    assert not os.path.exists(f"/run/netns/pycont-probe-{os.getpid()}")
