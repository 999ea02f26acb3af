"""docker's -p grammar, -P, and how a published port prints and is stored (pure logic)."""

from __future__ import annotations

import json

import pytest

from pycont.errors import UsageError
from pycont.net.ports import (
    PortBinding,
    PortInUse,
    parse,
    parse_all,
    parse_exposed,
    publish_all,
)

B = PortBinding


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("80", [B(80)]),
        ("8080:80", [B(80, host_port=8080)]),
        ("127.0.0.1:8080:80", [B(80, host_ip="127.0.0.1", host_port=8080)]),
        ("127.0.0.1::80", [B(80, host_ip="127.0.0.1")]),
        ("8080:80/udp", [B(80, "udp", host_port=8080)]),
        ("8080:80/TCP", [B(80, "tcp", host_port=8080)]),
        ("53/udp", [B(53, "udp")]),
        ("0:80", [B(80)]),  # host port 0: a random one
        ("[::1]:8080:80", [B(80, host_ip="::1", host_port=8080)]),
        ("[::1]::80/udp", [B(80, "udp", host_ip="::1")]),
        ("[2001:db8::1]:443:443", [B(443, host_ip="2001:db8::1", host_port=443)]),
        ("::1:8080:80", [B(80, host_ip="::1", host_port=8080)]),  # docker splits from the right
        ("0.0.0.0:1:65535", [B(65535, host_ip="0.0.0.0", host_port=1)]),
        (
            "8000-8002:3000-3002",
            [B(3000, host_port=8000), B(3001, host_port=8001), B(3002, host_port=8002)],
        ),
        ("3000-3002", [B(3000), B(3001), B(3002)]),
        (
            "127.0.0.1:8000-8001:3000-3001/udp",
            [B(3000, "udp", "127.0.0.1", 8000), B(3001, "udp", "127.0.0.1", 8001)],
        ),
        ("8000-8010:80", [B(80, host_port=8000, host_port_end=8010)]),
        ("8000-8000:80", [B(80, host_port=8000)]),
        ("3000-3000", [B(3000)]),
    ],
)
def test_parse_good(spec: str, want: list[PortBinding]) -> None:
    assert parse(spec) == want


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("abc", 'invalid publish spec "abc": expected [IP:][HOSTPORT:]CONTAINERPORT[/tcp|udp]'),
        ("", 'invalid publish spec "": expected [IP:][HOSTPORT:]CONTAINERPORT[/tcp|udp]'),
        ("8080:", "expected [IP:][HOSTPORT:]CONTAINERPORT[/tcp|udp]"),
        ("127.0.0.1:80", "expected [IP:][HOSTPORT:]CONTAINERPORT[/tcp|udp]"),
        ("-80", "expected [IP:][HOSTPORT:]CONTAINERPORT[/tcp|udp]"),
        ("+80", "expected [IP:][HOSTPORT:]CONTAINERPORT[/tcp|udp]"),
        ("8²", "expected [IP:][HOSTPORT:]CONTAINERPORT[/tcp|udp]"),
        ("99999:1", 'invalid port 99999 in "99999:1": ports are 1-65535'),
        ("1:99999", 'invalid port 99999 in "1:99999": ports are 1-65535'),
        ("0", 'invalid port 0 in "0": ports are 1-65535'),
        ("8080:0", "ports are 1-65535"),
        ("0-10:80", "invalid port 0"),
        ("65535-65536:80", "invalid port 65536"),
        ("3002-3000", 'invalid range "3002-3000" in "3002-3000": expected START-END, START <= END'),
        ("8000-8001:3000-3002", "must have the same length"),
        ("8080:3000-3002", "must have the same length"),
        ("80/sctp", 'invalid publish spec "80/sctp": sctp is not supported, only tcp or udp'),
        ("80/icmp", 'invalid protocol "icmp" in "80/icmp": expected tcp or udp'),
        ("80/", "expected tcp or udp"),
        ("1.2.3:80:80", 'invalid IP address "1.2.3" in "1.2.3:80:80": expected an IPv4'),
        ("localhost:80:80", "expected an IPv4 address or [IPv6]"),
        ("[::1:80:80", "expected an IPv4 address or [IPv6]"),
    ],
)
def test_parse_bad(spec: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse(spec)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_parse_all_joins_specs() -> None:
    assert parse_all(["80", "8080:81", "53/udp"]) == (B(80), B(81, host_port=8080), B(53, "udp"))
    assert parse_all([]) == ()


@pytest.mark.parametrize(
    "specs",
    [
        ["8080:80", "8080:81"],
        ["0.0.0.0:8080:80", "8080:81"],  # "" is 0.0.0.0
        ["8000-8002:3000-3002", "8001:81"],
        ["[::1]:8080:80", "[::1]:8080:81"],
    ],
)
def test_parse_all_duplicate(specs: list[str]) -> None:
    with pytest.raises(UsageError, match="published twice") as info:
        parse_all(specs)
    assert "each host port can be published once" in str(info.value)


@pytest.mark.parametrize(
    "specs",
    [
        ["8080:80", "8080:80/udp"],  # another protocol
        ["127.0.0.1:8080:80", "127.0.0.2:8080:80"],  # another address
        ["80", "80"],  # random host ports do not clash
        ["8000-8010:80", "8000-8010:81"],  # ranges are pools: bind takes a free port of each
    ],
)
def test_parse_all_not_duplicate(specs: list[str]) -> None:
    assert len(parse_all(specs)) == 2


@pytest.mark.parametrize(
    ("binding", "line"),
    [
        (B(3000, host_port=8080), "3000/tcp -> 0.0.0.0:8080"),
        (B(53, "udp", "127.0.0.1", 5353), "53/udp -> 127.0.0.1:5353"),
        (B(80, host_ip="::1", host_port=8080), "80/tcp -> [::1]:8080"),
        (B(80, host_port=8000, host_port_end=8010), "80/tcp -> 0.0.0.0:8000-8010"),
        (B(80), "80/tcp -> 0.0.0.0:0"),
    ],
)
def test_str_is_docker_port_line(binding: PortBinding, line: str) -> None:
    assert str(binding) == line


@pytest.mark.parametrize(
    "binding",
    [B(80), B(53, "udp", "::1", 5353), B(80, "tcp", "127.0.0.1", 8000, 8010)],
)
def test_json_round_trip(binding: PortBinding) -> None:
    data = json.loads(json.dumps(binding.to_json()))
    assert PortBinding.from_json(data) == binding


def test_json_defaults() -> None:
    assert PortBinding.from_json({"container_port": 80}) == B(80)
    assert B(80).to_json() == {
        "container_port": 80,
        "proto": "tcp",
        "host_ip": "",
        "host_port": 0,
        "host_port_end": 0,
    }


def test_parse_exposed() -> None:
    assert parse_exposed("3000/tcp") == (3000, "tcp")
    assert parse_exposed("53/udp") == (53, "udp")
    assert parse_exposed("8080") == (8080, "tcp")


@pytest.mark.parametrize("item", ["3000/sctp", "x/tcp", "0/tcp", "70000", "3000-3002/tcp", ""])
def test_parse_exposed_bad(item: str) -> None:
    with pytest.raises(UsageError, match=r"expected PORT\[/tcp\|udp\], PORT 1-65535"):
        parse_exposed(item)


def test_publish_all() -> None:
    got = publish_all(["8080/tcp", "53/udp", "80/tcp", "80"])
    assert got == [B(80), B(8080), B(53, "udp")]  # sorted, each once, random host ports
    assert publish_all([]) == []


def test_port_in_use_is_a_usage_error() -> None:
    assert issubclass(PortInUse, UsageError)
