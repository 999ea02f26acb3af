"""Networks on the real kernel: bridges, veths, addresses, names, published ports.

Traffic goes only between containers these tests made (on their bridges) and from the host's
loopback to published ports. Every network is named ``t-net-…`` and removed by the fixture.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import pycont
from pycont.builder.progress import Quiet
from pycont.errors import NetworkError, NetworkNotFound, UsageError
from pycont.fsutil import remove_tree
from pycont.images import Store
from pycont.kernel import LinuxKernel
from pycont.net import attach, netlink, networks, proxy, shaping
from tests.helpers import cli, requires, wait_for

pytestmark = requires("root", "overlay")


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


@pytest.fixture
def net() -> Iterator[Callable[..., networks.Network]]:
    """Make networks named t-net-…; remove them (and their bridges) at the end."""
    made: list[str] = []

    def make(**kwargs: Any) -> networks.Network:
        n = networks.create(f"t-net-{uuid.uuid4().hex[:8]}", **kwargs)
        made.append(n.name)
        return n

    yield make
    for c in pycont.containers(all=True):
        if any(a.network in made for a in c.config.network.networks):
            c.remove(force=True)
    for name in made:
        with contextlib.suppress(NetworkNotFound):
            networks.remove(name)


def sh(script: str, **options: Any) -> pycont.Container:
    options.setdefault("rm", True)
    return pycont.run("busybox", ["sh", "-c", script], timeout=30, **options)


def server(name: str, network: str, command: str, **options: Any) -> pycont.Container:
    return pycont.run(
        "busybox", ["sh", "-c", command], name=name, network=network, detach=True, **options
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_default_bridge_gives_eth0_an_address_and_a_route(name: str) -> None:
    c = sh("ip -o -4 addr show eth0; ip route; cat /etc/hostname", name=name, rm=False)
    out = c.output
    cfg = c.config.network
    att = cfg.networks[0]
    assert cfg.mode == "bridge" and att.network == "bridge"
    assert f"inet {att.ip}/{att.prefixlen}" in out
    assert f"default via {att.gateway} dev eth0" in out
    assert att.mac == "02:42:" + ":".join(f"{int(o):02x}" for o in att.ip.split("."))
    bridge = networks.get("bridge").bridge
    assert bridge in links()  # the container still exists: its lease holds the bridge
    c.remove()
    assert attach.veth_name(c.id, 0) not in links()
    assert bridge in links()  # idle, and up for the next one, as docker0


def test_the_default_bridge_stays_for_the_next_container_until_system_prune() -> None:
    """As docker0: deleting a bridge costs the kernel 30-70 ms, which every lone container's
    start would pay again to make it."""
    first = sh("true", rm=False)
    net = networks.get("bridge")
    index = read(f"/sys/class/net/{net.bridge}/ifindex")
    first.remove()
    assert net.bridge in links()
    second = sh("true", rm=False)
    assert read(f"/sys/class/net/{net.bridge}/ifindex") == index  # the same device, taken over
    again = second.config.network.networks[0]
    assert (again.gateway, again.prefixlen) == (net.gateway, net.prefixlen)
    assert networks.remove_idle_default() is None  # a container holds an address on it
    assert net.bridge in links()
    second.remove()
    r = cli("system", "prune", "-f")
    assert r.returncode == 0, r.stderr
    assert f"Deleted Bridge: {net.bridge}" in r.stdout
    assert net.bridge not in links()
    assert networks.remove_idle_default() is None  # nothing left to delete
    sh("true")  # the next container makes it again
    assert net.bridge in links()
    assert networks.remove_idle_default() == net.bridge
    assert net.bridge not in links()


def test_network_none_is_loopback_only() -> None:
    out = sh("ls /sys/class/net", network="none").output
    assert out.split() == ["lo"]


def test_two_containers_talk_by_name_and_alias(net: Any, name: str) -> None:
    n = net()
    db = server(name, n.name, "nc -ll -p 6379 -e cat", network_aliases=["cache"])
    hosts_before = read(os.path.join(db.dir, "hosts"))
    for target in (name, "cache", db.config.network.networks[0].ip):
        out = sh(f"echo hi-{target} | nc -w 5 {target} 6379", network=n.name).output
        assert out.strip() == f"hi-{target}"
    # db's own /etc/hosts was rewritten (in place) for each client, and back once it left
    assert read(os.path.join(db.dir, "hosts")) == hosts_before
    assert db.exec(["cat", "/etc/hosts"]).output == hosts_before


def test_no_names_on_the_default_bridge(name: str) -> None:
    server(name, "bridge", "sleep 30")
    out = sh(f"ping -c 1 -W 1 {name} 2>&1; echo rc=$?").output
    assert "rc=0" not in out  # docker: names only on user-defined networks


def test_published_port_reaches_the_container_and_rm_frees_everything(name: str) -> None:
    port = free_port()
    web = server(
        name,
        "bridge",
        "mkdir -p /www && echo hello-web > /www/index.html && httpd -f -p 3000 -h /www",
        publish=[f"127.0.0.1:{port}:3000"],
    )
    wait_for(lambda: _get(port) is not None, timeout=10, what="the published port")
    assert _get(port) == "hello-web\n"
    assert [str(b) for b in web.ports()] == [f"3000/tcp -> 127.0.0.1:{port}"]
    ns = web.inspect()["NetworkSettings"]
    assert ns["Ports"] == {"3000/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    assert len(proxy.find_proxies()) >= 1
    veth = attach.veth_name(web.id, 0)
    assert veth in links()
    web.remove(force=True)
    assert veth not in links()
    with socket.socket() as s:  # the port is free again (for a server: TIME_WAIT remains)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
    assert _get(port) is None


def _get(port: int, path: str = "/") -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return str(r.read().decode())
    except OSError:
        return None


def test_random_host_port_is_recorded(name: str) -> None:
    web = server(name, "bridge", "httpd -f -p 80 -h /etc", publish=["127.0.0.1::80"])
    bound = web.ports()
    assert len(bound) == 1 and bound[0].host_port > 0
    port = bound[0].host_port
    wait_for(lambda: _get(port, "/hostname") is not None, timeout=10, what="the random port")
    assert _get(port, "/hostname") == web.config.hostname + "\n"


def test_taken_host_port_creates_nothing(name: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        before = {c.id for c in pycont.containers(all=True)}
        with pytest.raises(UsageError, match="port is already allocated"):
            pycont.create("busybox", ["true"], name=name, publish=[f"127.0.0.1:{port}:80"])
        assert {c.id for c in pycont.containers(all=True)} == before
        assert "bridge" not in [n.name for n in networks.ls()]  # no lease left behind


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"network": "t-net-nosuch"}, "network t-net-nosuch not found"),
        ({"publish": ["99999:1"]}, "ports are 1-65535"),
        ({"publish": ["abc"]}, "expected [IP:][HOSTPORT:]CONTAINERPORT"),
        ({"network": "host", "publish": ["80"]}, "published ports need a bridge network"),
        ({"network_aliases": ["x"]}, "only on user-defined networks"),
        ({"network_rate": "fast"}, "invalid rate"),
        ({"network": "none", "network_rate": "1mbit"}, "need a bridge network, not none"),
        ({"add_host": ["nohost"]}, "expected NAME:IP"),
    ],
)
def test_bad_network_input_is_refused_and_creates_nothing(
    options: dict[str, Any], message: str
) -> None:
    before = {c.id for c in pycont.containers(all=True)}
    with pytest.raises(pycont.PycontError, match=message.replace("[", r"\[")):
        pycont.create("busybox", ["true"], **options)
    assert {c.id for c in pycont.containers(all=True)} == before
    assert networks.ls() == []


def test_cli_exit_125_and_one_line() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "pycont", "run", "--rm", "-p", "99999:1", "busybox", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 125
    assert r.stderr.count("\n") == 1 and "ports are 1-65535" in r.stderr


def test_network_create_rm_and_refusals(net: Any, name: str) -> None:
    n = net(subnet="10.213.0.0/24")
    assert n.gateway == "10.213.0.1" and n.bridge in links()
    with pytest.raises(UsageError, match="overlaps"):
        net(subnet="10.213.0.0/16")
    with pytest.raises(NetworkError, match="already exists"):
        networks.create(n.name)
    with pytest.raises(NetworkError, match="pre-defined"):
        networks.remove("bridge")
    c = pycont.create("busybox", ["true"], name=name, network=n.name)
    assert c.config.network.networks[0].ip == "10.213.0.2"
    with pytest.raises(NetworkError, match=f"in use by container {name}"):
        networks.remove(n.name)
    c.remove()
    assert networks.remove(n.name) == n.name
    assert n.bridge not in links()
    with pytest.raises(NetworkNotFound):
        networks.get(n.name)


def test_leases_of_vanished_containers_are_collected(net: Any, name: str) -> None:
    n = net(subnet="10.214.0.0/29")  # 6 hosts: the gateway and 5 containers
    cs = [pycont.create("busybox", ["true"], network=n.name) for _ in range(5)]
    with pytest.raises(NetworkError, match="no free address"):
        pycont.create("busybox", ["true"], network=n.name)
    # a crash: the container's folder is gone but its lease was never given back
    lost = cs[0].config.network.networks[0].ip
    remove_tree(cs[0].dir)
    c = pycont.create("busybox", ["true"], name=name, network=n.name)
    assert c.config.network.networks[0].ip == lost
    for x in (*cs[1:], c):
        x.remove()


def test_connect_and_disconnect_a_running_container(net: Any, name: str) -> None:
    a, b = net(), net()
    c = server(name, a.name, "sleep 60")
    c.connect(b.name, aliases=["second"])
    att = c.config.network.networks[1]
    out = c.exec(["ip", "-o", "-4", "addr", "show", "eth1"]).output
    assert f"inet {att.ip}/" in out
    assert sh("ping -c 1 -W 2 second", network=b.name).exit_code == 0
    c.disconnect(b.name)
    assert "eth1" not in c.exec(["ls", "/sys/class/net"]).output
    assert c.id not in networks.get(b.name).leases


def test_container_network_mode_shares_the_namespace(name: str) -> None:
    host = server(name, "none", "sleep 60")
    guest = sh(
        "readlink /proc/self/ns/net", network=f"container:{name}", name=f"{name}-g"
    ).output.strip()
    assert guest == os.readlink(f"/proc/{host.pid}/ns/net")


def test_network_rate_puts_a_token_bucket_on_both_ends(net: Any, name: str) -> None:
    n = net()
    c = server(name, n.name, "sleep 60", network_rate="1mbit")
    with netlink.host() as ipr:
        idx = netlink.index(ipr, attach.veth_name(c.id, 0))
        assert shaping.read(ipr, idx).rate == 1_000_000
    with netlink.inside(LinuxKernel(), c.pid) as inner:
        assert shaping.read(inner, netlink.index(inner, "eth0")).rate == 1_000_000


def test_stats_count_the_bytes_of_eth0(net: Any, name: str) -> None:
    n = net()
    db = server(name, n.name, "nc -ll -p 7000 -e cat")
    before = db.net_io()
    sh(
        f"dd if=/dev/zero bs=1k count=200 2>/dev/null | nc -w 3 {name} 7000 >/dev/null",
        network=n.name,
    )
    after = db.net_io()
    assert after[0] - before[0] >= 200 * 1024  # received


def test_cli_network_verbs_port_and_ps(name: str) -> None:
    net_name = f"t-net-{uuid.uuid4().hex[:8]}"
    try:
        r = cli("network", "create", "--subnet", "10.215.0.0/24", "--label", "k=v", net_name)
        assert r.returncode == 0, r.stderr
        ls = cli("network", "ls").stdout.splitlines()
        assert ls[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
        assert [row.split()[1] for row in ls[1:]] == ["bridge", "host", "none", net_name]
        doc = json.loads(cli("network", "inspect", net_name).stdout)[0]
        assert doc["IPAM"]["Config"] == [{"Subnet": "10.215.0.0/24", "Gateway": "10.215.0.1"}]
        assert doc["Labels"] == {"k": "v"}
        r = cli(
            "run", "-d", "--name", name, "--network", net_name, "-p", "127.0.0.1::3000",
            "busybox", "httpd", "-f", "-p", "3000", "-h", "/etc",
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        (line,) = cli("port", name).stdout.splitlines()
        assert line.startswith("3000/tcp -> 127.0.0.1:")
        port = line.rsplit(":", 1)[1]
        assert cli("port", name, "3000").stdout == f"127.0.0.1:{port}\n"
        missing = cli("port", name, "80/udp")
        assert missing.returncode == 1 and "No public port '80/udp'" in missing.stderr
        ps = cli("ps").stdout.splitlines()
        assert "PORTS" in ps[0]
        assert any(f"127.0.0.1:{port}->3000/tcp" in row and name in row for row in ps[1:])
        doc = json.loads(cli("network", "inspect", net_name).stdout)[0]
        assert [c["Name"] for c in doc["Containers"].values()] == [name]
        r = cli("network", "rm", net_name)
        assert r.returncode == 125 and "is in use by container" in r.stderr
        assert cli("rm", "-f", name).returncode == 0
        assert cli("network", "rm", net_name).stdout == f"{net_name}\n"
    finally:
        cli("rm", "-f", name)
        cli("network", "rm", net_name)


def test_publish_all_publishes_what_the_image_exposes(name: str, tmp_path: Any) -> None:
    tag = f"t-expose-{uuid.uuid4().hex[:8]}"
    (tmp_path / "Dockerfile").write_text("FROM busybox\nEXPOSE 3000 4000/udp\n")
    pycont.build(str(tmp_path), [tag], progress=Quiet())
    try:
        c = pycont.run(tag, ["sleep", "30"], name=name, detach=True, publish_all=True)
        got = sorted((b.container_port, b.proto, b.host_port > 0) for b in c.ports())
        assert got == [(3000, "tcp", True), (4000, "udp", True)]
        assert c.inspect()["Config"]["ExposedPorts"] == {"3000/tcp": {}, "4000/udp": {}}
        assert c.inspect()["HostConfig"]["PortBindings"] == {
            "3000/tcp": [{"HostIp": "", "HostPort": ""}],
            "4000/udp": [{"HostIp": "", "HostPort": ""}],
        }
        c.remove(force=True)
    finally:
        Store().remove(tag)


@pytest.mark.skipif(not shutil.which("slirp4netns"), reason="needs slirp4netns (bootstrap dev)")
def test_slirp4netns_network_publishes_and_reaches_nothing_else(name: str) -> None:
    """The rootless stack, run here as root (the mechanism is the same; only the tun device's
    permissions decide whether a user may have it)."""
    web = server(
        name,
        "slirp4netns",
        "httpd -f -p 80 -h /etc",
        publish=["127.0.0.1::80"],
    )
    (b,) = web.ports()
    wait_for(lambda: _get(b.host_port, "/hostname") is not None, timeout=10, what="slirp port")
    assert _get(b.host_port, "/hostname") == web.config.hostname + "\n"
    inside = web.exec(["sh", "-c", "ip -o -4 addr show tap0; ip route"]).output
    assert "inet 10.0.2.100/24" in inside
    assert "default" not in inside  # no route out: only the published ports' clients
    slirps = [p for p in _pids_with("pycont-slirp-") if p]
    assert slirps
    web.remove(force=True)
    wait_for(lambda: not _pids_with("pycont-slirp-"), timeout=10, what="slirp4netns to exit")


def _pids_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(entry))
    return found


def test_two_networks_are_apart_and_bridges_never_forward(net: Any, name: str) -> None:
    a, b = net(), net()
    for n in (a, b):
        assert read(f"/proc/sys/net/ipv4/conf/{n.bridge}/forwarding").strip() == "0"
    target = server(name, b.name, "sleep 60")
    ip = target.config.network.networks[0].ip
    assert sh(f"ping -c 1 -W 1 {ip}", network=a.name).exit_code != 0
    assert sh(f"ping -c 1 -W 1 {ip}", network=b.name).exit_code == 0
