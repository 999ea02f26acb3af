"""Address management and the network files, as pure logic (pycont.net.ipam, .config)."""

from __future__ import annotations

import ipaddress

import pytest

from pycont.errors import NetworkError, UsageError
from pycont.net import ipam
from pycont.net.config import Attachment, NetConfig, hosts_text, resolv_text
from pycont.runtime.spec import RunSpec, parse_add_host, parse_labels, parse_network


def test_choose_subnet_skips_what_the_host_uses() -> None:
    assert str(ipam.choose_subnet([])) == "172.17.0.0/16"
    taken = [("172.17.0.1", 16), ("172.18.5.0", 24), ("10.0.0.0", 8)]
    assert str(ipam.choose_subnet(taken)) == "172.19.0.0/16"


def test_choose_subnet_ignores_the_default_route() -> None:
    assert str(ipam.choose_subnet([("0.0.0.0", 0)])) == "172.17.0.0/16"


def test_choose_subnet_moves_to_192_168_then_gives_up() -> None:
    every_172 = [("172.16.0.0", 12)]
    assert str(ipam.choose_subnet(every_172)) == "192.168.0.0/20"
    with pytest.raises(NetworkError, match="no free subnet"):
        ipam.choose_subnet([*every_172, ("192.168.0.0", 16)])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.0.0.1/24", "has host bits set"),
        ("nonsense", "expected an IPv4 CIDR"),
        ("10.0.0.0/31", "/8 to /30"),
        ("10.0.0.0/4", "expected an IPv4 CIDR"),
        ("fd00::/64", "expected an IPv4 CIDR"),
    ],
)
def test_bad_subnets(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ipam.parse_subnet(text)


def test_gateway_must_be_a_host_of_the_subnet() -> None:
    net = ipam.parse_subnet("10.1.0.0/24")
    assert ipam.parse_gateway("10.1.0.254", net) == "10.1.0.254"
    for bad in ("10.1.0.0", "10.1.0.255", "10.2.0.1"):
        with pytest.raises(UsageError, match="host address of 10.1.0.0/24"):
            ipam.parse_gateway(bad, net)
    with pytest.raises(UsageError, match="expected an IPv4 address"):
        ipam.parse_gateway("gw", net)


def test_overlapping_names_the_clash() -> None:
    net = ipaddress.IPv4Network("10.5.0.0/16")
    assert str(ipam.overlapping(net, [("192.0.2.0", 24), ("10.5.3.1", 24)])) == "10.5.3.0/24"
    assert ipam.overlapping(net, [("192.0.2.0", 24)]) is None


def test_allocate_fills_holes_and_skips_the_gateway() -> None:
    net = ipam.parse_subnet("10.9.0.0/29")  # hosts .1-.6
    assert ipam.allocate(net, "10.9.0.1", []) == "10.9.0.2"
    assert ipam.allocate(net, "10.9.0.1", ["10.9.0.2", "10.9.0.4"]) == "10.9.0.3"
    assert ipam.allocate(net, "10.9.0.6", []) == "10.9.0.1"
    with pytest.raises(NetworkError, match="no free address left in 10.9.0.0/29"):
        ipam.allocate(net, "10.9.0.1", [f"10.9.0.{i}" for i in range(2, 7)])


def test_mac_is_dockers() -> None:
    assert ipam.mac_for("172.17.0.2") == "02:42:ac:11:00:02"


def _att(**kw: object) -> Attachment:
    base: dict[str, object] = {
        "network": "appnet",
        "ip": "172.18.0.3",
        "mac": "02:42:ac:12:00:03",
        "prefixlen": 16,
        "gateway": "172.18.0.1",
        "bridge": "pcb12345678",
        "aliases": ["web"],
        "user_defined": True,
    }
    base.update(kw)
    return Attachment(**base)  # type: ignore[arg-type]


def test_hosts_lists_self_add_hosts_and_peers() -> None:
    cfg = NetConfig(mode="bridge", networks=[_att()], add_hosts=["db.local:10.0.0.9"])
    text = hosts_text(cfg, "abc123", [("172.18.0.2", "db", ["cache", "0123456789ab"])])
    lines = text.splitlines()
    assert lines[0] == "127.0.0.1\tlocalhost"
    assert "10.0.0.9\tdb.local" in lines
    assert "172.18.0.3\tabc123 web" in lines
    assert "172.18.0.2\tdb cache 0123456789ab" in lines
    assert any("127.0.0.11" in ln for ln in lines if ln.startswith("#"))


def test_hosts_on_the_default_bridge_has_no_aliases() -> None:
    cfg = NetConfig(mode="bridge", networks=[_att(network="bridge", user_defined=False)])
    assert "172.18.0.3\tabc123\n" in hosts_text(cfg, "abc123")


def test_resolv_names_only_the_servers_given() -> None:
    assert resolv_text(NetConfig(dns=["9.9.9.9", "10.1.1.1"])) == (
        "nameserver 9.9.9.9\nnameserver 10.1.1.1\n"
    )
    empty = resolv_text(NetConfig())
    assert "nameserver" not in empty.replace("# pycont", "")
    assert all(line.startswith("#") for line in empty.splitlines())


def test_netconfig_json_round_trip() -> None:
    cfg = NetConfig(mode="bridge", networks=[_att(index=1)], ports=[{"container_port": 80}])
    again = NetConfig.from_json(cfg.to_json())
    assert again == cfg and again.networks[0].ifname == "eth1"
    assert NetConfig.from_json(None) == NetConfig()  # a config.json from before networks


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        ("default", ""),
        ("private", "none"),
        ("bridge", "bridge"),
        ("container:db", "container:db"),
        ("my-net_1.x", "my-net_1.x"),
    ],
)
def test_parse_network(value: str | None, expected: str) -> None:
    assert parse_network(value) == expected


@pytest.mark.parametrize("value", ["container:", "-bad", "a b", "x" * 65])
def test_parse_network_refuses(value: str) -> None:
    with pytest.raises(UsageError, match="--network"):
        parse_network(value)


def test_add_host_and_labels() -> None:
    assert parse_add_host("db:10.0.0.2") == "db:10.0.0.2"
    assert parse_add_host("db=10.0.0.2") == "db:10.0.0.2"
    with pytest.raises(UsageError, match="expected an IP address"):
        parse_add_host("db:nowhere")
    assert parse_labels(["a=1", "b"]) == {"a": "1", "b": ""}
    assert parse_labels({"k": 1}) == {"k": "1"}  # type: ignore[dict-item]
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_labels(["=x"])


def test_spec_maps_network_to_the_namespace_mode() -> None:
    assert RunSpec.from_options("busybox").namespaces["net"] == "private"
    assert RunSpec.from_options("busybox", network="host").namespaces["net"] == "host"
    spec = RunSpec.from_options("busybox", network="container:db")
    assert spec.namespaces["net"] == "host"  # no new one: the shim joins db's
    spec = RunSpec.from_options("busybox", publish=["8080:80"], network_rate="1mbit")
    assert spec.publish[0].host_port == 8080 and spec.shaping == {"rate": 1_000_000}
