"""Shaping's pure logic: tc's rate and time units, the one-line description, the JSON record."""

from __future__ import annotations

from typing import Any

import pytest

from pycont.errors import UsageError
from pycont.net.shaping import MAX_RATE, Shaping, apply, parse_latency, parse_rate, read


@pytest.mark.parametrize(
    ("text", "bits"),
    [
        ("1mbit", 1_000_000),
        ("1Mbit", 1_000_000),
        ("1.5mbit", 1_500_000),
        ("512kbit", 512_000),
        ("512kibit", 512 * 1024),
        ("2mibit", 2 * 1024 * 1024),
        ("1gbit", 10**9),
        ("800bit", 800),
        ("800", 800),  # a bare number is bit/s, as in tc(8)
        ("100bps", 800),  # tc's "bps" is BYTES per second
        ("100kbps", 800_000),
        ("1mbps", 8_000_000),
        ("34gbit", 34 * 10**9),
    ],
)
def test_parse_rate(text: str, bits: int) -> None:
    assert parse_rate(text) == bits


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("fast", "expected a number and a unit (bit, kbit, mbit, gbit; bps, kbps, mbps = bytes/s)"),
        ("", "expected a number and a unit"),
        ("1 mbit/s", "expected a number and a unit"),
        ("10mb", "expected a number and a unit"),  # tc has no "mb" rate: say so, do not guess
        ("-1mbit", "expected a number and a unit"),
        ("0", "at least 8bit"),
        ("0mbit", "at least 8bit"),
        ("7bit", "at least 8bit"),
        ("35gbit", "at most 34gbit"),
        ("1tbit", "at most 34gbit"),
    ],
)
def test_parse_rate_rejects(text: str, why: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_rate(text)
    message = str(info.value)
    assert message.startswith(f'invalid rate "{text}": ')
    assert why in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("50ms", 0.05), ("200us", 0.0002), ("1.5s", 1.5), ("2S", 2.0), ("0.5ms", 0.0005)],
)
def test_parse_latency(text: str, seconds: float) -> None:
    assert parse_latency(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("50", "expected a number and a unit (us, ms, s)"),  # no silent default unit
        ("slow", "expected a number and a unit"),
        ("-5ms", "expected a number and a unit"),
        ("5min", "expected a number and a unit"),
        ("0ms", "at least 1us"),
        ("0.1us", "at least 1us"),
        ("61s", "at most 60s"),
    ],
)
def test_parse_latency_rejects(text: str, why: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_latency(text)
    assert str(info.value).startswith(f'invalid latency "{text}": ')
    assert why in str(info.value)


@pytest.mark.parametrize(
    ("shaping", "text"),
    [
        (Shaping(rate=1_000_000, latency=0.05), "1mbit, +50ms"),
        (Shaping(rate=1_500_000), "1500kbit"),
        (Shaping(rate=524_288), "524288bit"),
        (Shaping(latency=0.0002), "+200us"),
        (Shaping(latency=2.0), "+2s"),
        (Shaping(), "unshaped"),
    ],
)
def test_describe(shaping: Shaping, text: str) -> None:
    assert shaping.describe() == text


@pytest.mark.parametrize(
    "shaping",
    [
        Shaping(),
        Shaping(rate=1_000_000),
        Shaping(latency=0.05),
        Shaping(rate=MAX_RATE, latency=1.5),
    ],
)
def test_json_round_trip(shaping: Shaping) -> None:
    assert Shaping.from_json(shaping.to_json()) == shaping


def test_json_holds_only_what_is_set() -> None:
    assert Shaping().to_json() == {}
    assert Shaping(rate=8000).to_json() == {"rate": 8000}
    assert Shaping.from_json(None) == Shaping()
    assert not Shaping()
    assert Shaping(latency=0.001)


def test_parsed_values_describe_as_typed() -> None:
    s = Shaping(rate=parse_rate("1mbit"), latency=parse_latency("50ms"))
    assert s.describe() == "1mbit, +50ms"


@pytest.mark.parametrize("kwargs", [{"rate": -1}, {"rate": MAX_RATE + 1}, {"latency": -0.1}])
def test_shaping_rejects_out_of_range(kwargs: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        Shaping(**kwargs)  # type: ignore[arg-type]


# netem is missing on the development machine: what apply() sends and how read() decodes a
# netem tree are checked here against pyroute2's own encoder and decoder, with a recording fake.
class RecordingIPRoute:
    """Records tc() calls; get_qdiscs() answers with netlink messages encoded then decoded."""

    def __init__(self, qdiscs: list[tuple[str, int, int, dict[str, Any]]]) -> None:
        self.qdiscs = qdiscs
        self.calls: list[tuple[str, str | None, dict[str, Any]]] = []

    def get_qdiscs(self, index: int) -> list[Any]:
        from pyroute2.netlink.rtnl.tcmsg import plugins, tcmsg

        out = []
        for kind, parent, handle, options in self.qdiscs:
            msg = tcmsg()
            msg["index"], msg["parent"], msg["handle"] = index, parent, handle
            msg["attrs"] = [["TCA_KIND", kind]]
            if options:
                msg["attrs"].append(["TCA_OPTIONS", plugins[kind].get_parameters(options)])
            msg.encode()
            decoded = tcmsg(msg.data)
            decoded.decode()
            out.append(decoded)
        return out

    def tc(self, command: str, kind: str | None = None, index: int = 0, **kw: Any) -> None:
        self.calls.append((command, kind, kw))


def test_read_decodes_netem_with_a_tbf_child() -> None:
    pytest.importorskip("pyroute2")
    tbf = {"rate": 125_000, "burst": 16384, "latency": 50_000}
    ipr = RecordingIPRoute(
        [("netem", 0xFFFFFFFF, 0x10000, {"delay": 50_000}), ("tbf", 0x10001, 0x100000, tbf)]
    )
    assert read(ipr, 3) == Shaping(rate=1_000_000, latency=0.05)


def test_apply_puts_netem_at_the_root_and_tbf_under_it() -> None:
    pytest.importorskip("pyroute2")
    ipr = RecordingIPRoute([("noqueue", 0xFFFFFFFF, 0, {})])
    apply(ipr, 3, Shaping(rate=1_000_000, latency=0.05))
    assert [(c, k, kw["parent"], kw["handle"]) for c, k, kw in ipr.calls] == [
        ("replace", "netem", 0xFFFFFFFF, 0x10000),
        ("replace", "tbf", 0x10001, 0x100000),
    ]
    assert ipr.calls[0][2]["delay"] == 50_000  # microseconds, as pyroute2 takes an int
    assert ipr.calls[1][2]["rate"] == 125_000  # bytes/s


def test_apply_takes_a_foreign_root_off_first() -> None:
    pytest.importorskip("pyroute2")
    ipr = RecordingIPRoute([("sfq", 0xFFFFFFFF, 0x80010000, {})])
    apply(ipr, 3, Shaping(rate=1_000_000))
    assert [(c, k) for c, k, _ in ipr.calls] == [("del", None), ("replace", "tbf")]
