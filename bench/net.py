#!/usr/bin/env python3
"""Container networking: pycont's bridge + veth against loopback, podman and bare kernel objects.

Four contestants carry the same traffic between two network namespaces (loopback: within the
host's own) in one run, rounds interleaved (a Williams design, as in ``start_latency.py``):

  loopback  127.0.0.1 in the host's namespace: the floor, no device but ``lo``
  pycont    two busybox containers on a user network made by ``pycont network create``
  podman    two busybox containers on a podman (CNI) network whose conflist holds only the
            ``bridge`` plugin (no gateway, no masquerade; no portmap, firewall, tuning), so no
            firewall rule and no sysctl is touched: checked with iptables-save before/after
  bare      two namespaces, two veths and a bridge made with ``ip``: the same kernel objects
            as pycont's, with no runtime around them

The containers only sleep; the measuring processes join a container's network namespace alone
(``nsenter --net``, setns(2)), so tool and binary are the same for every contestant and only
the path between the two sockets differs. Measured: TCP throughput (a Python sender/sink with
1 MiB buffers; busybox nc too, which is CPU-bound at ~0.3 GB/s here), TCP ping-pong round trip
(1 byte, TCP_NODELAY) and ICMP ping (busybox ping -i 0.2). Then the set-up cost added to
``run``: ``pycont run --rm --network none|bridge|<user net> busybox true`` (and podman's
none/bridge, runc's default spec as the floor), interleaved, medians.

Run as root:  python3 bench/net.py [--rounds 5] [--mib 1024] [--runs 15] [--pin] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import start_latency as sl  # noqa: E402  (round_orders, build_rootfs, spawn_wait, facts)

PYCONT_ROOT = "/tmp/pch5-root"
WORK = "/tmp/pch5-net"
NET = "pch5-net"  # pycont's user network
PNET = "pch5-pod"  # podman's network
BARE_NS = ("pycont-pcbench-a", "pycont-pcbench-b")  # named netns start with pycont
BARE_BR, BARE_SUBNET, POD_SUBNET = "pcbench-br", "10.199.6", "10.199.5.0/24"
PACKAGES = ("busybox-static", "podman", "runc", "containernetworking-plugins", "iptables")
TIMEOUT = 120.0
BUF = 1 << 20


# -- the measuring tools (run inside a namespace by nsenter) ----------------------------------
def serve(host: str) -> None:
    """One connection at a time: first byte ``P`` = echo each byte (ping-pong); anything else =
    sink: count the bytes and answer the count (8 bytes) at EOF."""
    ls = socket.socket()
    ls.bind((host, 0))
    ls.listen(4)
    print(ls.getsockname()[1], flush=True)
    buf = bytearray(BUF)
    while True:
        c, _ = ls.accept()
        with c:
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            first = c.recv(1)
            if first == b"P":
                while b := c.recv(1):
                    c.sendall(b)
                continue
            n = len(first)
            while k := c.recv_into(buf):
                n += k
            with contextlib.suppress(OSError):
                c.sendall(struct.pack("!Q", n))


def client(host: str, port: int, mode: str, amount: int) -> None:
    """``send``: ``amount`` MiB of zeros, time until the sink's count comes back (GB/s);
    ``pingpong``: ``amount`` 1-byte round trips, median and mean in microseconds."""
    c = socket.create_connection((host, port), timeout=TIMEOUT)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if mode == "send":
        chunk = bytes(BUF)
        t0 = time.perf_counter()
        for _ in range(amount):
            c.sendall(chunk)
        c.shutdown(socket.SHUT_WR)
        (n,) = struct.unpack("!Q", c.recv(8, socket.MSG_WAITALL))
        dt = time.perf_counter() - t0
        out = {"bytes": n, "s": dt, "gbps": n / dt / 1e9}
    else:
        c.sendall(b"P")
        rtts = []
        for _ in range(amount):
            t0 = time.perf_counter()
            c.sendall(b"x")
            c.recv(1)
            rtts.append(time.perf_counter() - t0)
        out = {"median_us": statistics.median(rtts) * 1e6, "mean_us": statistics.mean(rtts) * 1e6}
    c.close()
    print(json.dumps(out))


# -- helpers ----------------------------------------------------------------------------------
def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def sh(argv: list[str], check: bool = True) -> str:
    r = subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT
    )
    if check and r.returncode:
        err = (r.stderr or r.stdout)[-500:]
        raise RuntimeError(f"{' '.join(argv)}: exit {r.returncode}: {err}")
    return r.stdout


PIN: dict[str, str] = {}  # --pin: {"client": "0", "server": "1"}


def netns_prefix(ns: str | None, role: str = "") -> list[str]:
    """Enter ``ns`` (setns(2) on its net namespace only); with ``--pin`` each side on its own
    CPU. Unpinned, the scheduler puts both on one CPU in some samples and not in others (one
    path jumps between ~2 and ~4 GB/s); pinned, a job of someone else on CPU 1 slows every
    sample: on a shared machine neither is clean, so pinning is a choice, recorded in the JSON."""
    pin = ["taskset", "-c", PIN[role]] if role in PIN else []
    return [*pin, *(["nsenter", f"--net={ns}"] if ns else [])]


def firewall_state() -> str:
    """Every rule and chain of both families, and forwarding: must be equal before and after."""
    fw = sh(["iptables-save"], check=False) + sh(["ip6tables-save"], check=False)
    fw = "\n".join(ln for ln in fw.splitlines() if not ln.startswith("#"))  # timestamps
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        return fw + f"\nip_forward={f.read().strip()}"


class Pair:
    """Two namespaces (client side ``a``, server side ``b``) and the server's address."""

    def __init__(self, name: str, ns_a: str | None, ns_b: str | None, ip_b: str) -> None:
        self.name, self.ns_a, self.ns_b, self.ip_b = name, ns_a, ns_b, ip_b
        self.server: subprocess.Popen[str] | None = None
        self.port = 0

    def start_server(self) -> None:
        host = "127.0.0.1" if self.ns_b is None else "0.0.0.0"
        argv = [*netns_prefix(self.ns_b, "server"), sys.executable, __file__, "--serve", host]
        self.server = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert self.server.stdout is not None
        self.port = int(self.server.stdout.readline())

    def stop_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.kill()  # by its own pid: nsenter exec'd python
            self.server.wait()

    def measure(self, mode: str, amount: int) -> dict:
        argv = [*netns_prefix(self.ns_a, "client"), sys.executable, __file__, "--client", self.ip_b]
        return json.loads(sh([*argv, str(self.port), mode, str(amount)]))

    def nc(self, mib: int) -> float:
        """busybox nc's GB/s into the same sink (its own copy loop is the limit)."""
        cmd = f"dd if=/dev/zero bs=1M count={mib} 2>/dev/null | busybox nc {self.ip_b} {self.port}"
        t0 = time.perf_counter()
        sh([*netns_prefix(self.ns_a, "client"), "sh", "-c", cmd])
        return mib * BUF / (time.perf_counter() - t0) / 1e9

    def ping(self, count: int) -> float:
        """busybox ping's average round trip in microseconds."""
        argv = [*netns_prefix(self.ns_a, "client"), "busybox", "ping", "-q", "-c", str(count)]
        out = sh([*argv, "-i", "0.2", self.ip_b])
        m = re.search(r"min/avg/max = [\d.]+/([\d.]+)/", out)
        if not m:
            raise RuntimeError(f"ping: no round-trip line in {out!r}")
        return float(m.group(1)) * 1000


# -- the contestants' objects ----------------------------------------------------------------
def pycont_cli() -> list[str]:
    venv = os.path.join(REPO, ".venv", "bin", "pycont")
    return [venv] if os.path.exists(venv) else [sys.executable, "-m", "pycont"]


def podman_base() -> list[str]:
    p = os.path.join(WORK, "podman")
    return (
        f"podman --root {p}/root --runroot {p}/run --tmpdir {p}/tmp --network-config-dir {p}/net "
        "--storage-driver overlay --cgroup-manager=cgroupfs --events-backend=file "
        "--runtime runc".split()
    )


# podman's default rlimits exceed a process's hard limits here (see shared/peers)
PODMAN_RUN = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]


def setup_pycont(pc: list[str]) -> Pair:
    sh([*pc, "network", "create", NET])
    pids, ip = [], ""
    for side in ("a", "b"):
        name = f"pch5-{side}"
        sh([*pc, "run", "-d", "--name", name, "--network", NET, "busybox", "sleep", "3600"])
        doc = json.loads(sh([*pc, "inspect", f"pch5-{side}"]))
        doc = doc[0] if isinstance(doc, list) else doc
        pids.append(doc["State"]["Pid"])
        ip = doc["NetworkSettings"]["Networks"][NET]["IPAddress"]
    return Pair("pycont", f"/proc/{pids[0]}/ns/net", f"/proc/{pids[1]}/ns/net", ip)


def setup_podman(pc: list[str]) -> tuple[Pair, str]:
    """Loads pycont's busybox into a private podman store; the network is a hand-written
    conflist: podman's own ``network create`` (even ``--internal``) always adds the CNI
    ``firewall`` plugin, whose iptables chains this machine must not get."""
    P = podman_base()
    for d in ("root", "run", "tmp", "net", "ipam"):
        os.makedirs(os.path.join(WORK, "podman", d), exist_ok=True)
    archive = os.path.join(WORK, "busybox.tar")
    sh([*pc, "save", "busybox", "-o", archive])
    image = sh([*P, "load", "-q", "-i", archive]).strip().rsplit(" ", 1)[-1]
    bridge = {
        "type": "bridge",
        "bridge": "pcbench-pod",
        "isGateway": False,  # no address on the host, no ip_forward (bridge.go: only if IsGW)
        "ipMasq": False,  # no MASQUERADE rule
        "hairpinMode": True,
        "ipam": {
            "type": "host-local",
            "dataDir": os.path.join(WORK, "podman", "ipam"),
            "ranges": [[{"subnet": POD_SUBNET}]],
        },
    }
    conf = {"cniVersion": "0.4.0", "name": PNET, "plugins": [bridge]}
    with open(os.path.join(WORK, "podman", "net", f"{PNET}.conflist"), "w") as f:
        json.dump(conf, f, indent=1)
    pids = []
    for side in ("a", "b"):
        run = [*P, "run", "-d", *PODMAN_RUN, "--name", f"pch5-pod-{side}", "--network", PNET]
        sh([*run, image, "sleep", "3600"])
        pids.append(int(sh([*P, "inspect", "-f", "{{.State.Pid}}", f"pch5-pod-{side}"])))
    ns_b = f"/proc/{pids[1]}/ns/net"
    addr = sh(["nsenter", f"--net={ns_b}", "ip", "-4", "-o", "addr", "show", "dev", "eth0"])
    ip = addr.split("inet ", 1)[1].split("/", 1)[0]
    return Pair("podman", f"/proc/{pids[0]}/ns/net", ns_b, ip), image


def setup_bare() -> Pair:
    """What pycont's attach.join makes, by hand: a bridge, a veth per namespace (MTU 1500)."""
    sh(["ip", "link", "add", BARE_BR, "type", "bridge"])
    sh(["ip", "link", "set", BARE_BR, "up"])
    for i, ns in enumerate(BARE_NS):
        host_end = f"pcbench-v{i}"
        sh(["ip", "netns", "add", ns])
        # the peer is made directly in the namespace (the host has an eth0 of its own)
        peer = ["peer", "name", "eth0", "netns", ns]
        sh(["ip", "link", "add", host_end, "mtu", "1500", "type", "veth", *peer])
        sh(["ip", "link", "set", host_end, "master", BARE_BR, "up"])
        sh(["ip", "-n", ns, "addr", "add", f"{BARE_SUBNET}.{i + 2}/24", "dev", "eth0"])
        sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
        sh(["ip", "-n", ns, "link", "set", "lo", "up"])
    return Pair("bare", f"/run/netns/{BARE_NS[0]}", f"/run/netns/{BARE_NS[1]}", f"{BARE_SUBNET}.3")


def setup_runc() -> str:
    """runc's default spec (a new network namespace with only ``lo``): the floor of ``run``."""
    bundle = os.path.join(WORK, "bundle")
    os.makedirs(bundle)
    sl.build_rootfs(os.path.join(bundle, "rootfs"))
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    with open(os.path.join(bundle, "config.json")) as f:
        c = json.load(f)
    c["process"]["terminal"], c["process"]["args"] = False, ["/bin/true"]
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(c, f)
    return bundle


# -- measuring ---------------------------------------------------------------------------------
MEASURES = (  # key, label, unit, higher is better
    ("tcp_gbps", "TCP throughput, Python 1 MiB", "GB/s", True),
    ("nc_gbps", "TCP throughput, busybox nc", "GB/s", True),
    ("pingpong_us", "TCP ping-pong RTT (median)", "us", False),
    ("ping_us", "ICMP ping RTT (busybox, avg)", "us", False),
)


def traffic_rounds(pairs: list[Pair], a: argparse.Namespace) -> list[dict]:
    by_name = {p.name: p for p in pairs}
    orders = sl.round_orders(list(by_name))
    for p in pairs:  # untimed: caches, ARP/neighbour entries, TCP metrics
        p.measure("send", min(a.mib, 128))
        p.measure("pingpong", 100)
    rows = []
    for r in range(a.rounds):
        order = orders[r % len(orders)]
        row: dict = {"round": r, "order": order}
        for key in ("tcp_gbps", "nc_gbps", "pingpong_us", "ping_us"):
            row[key] = {}
        for name in order:
            p = by_name[name]
            row["tcp_gbps"][name] = p.measure("send", a.mib)["gbps"]
            row["nc_gbps"][name] = p.nc(a.nc_mib)
            row["pingpong_us"][name] = p.measure("pingpong", a.pingpongs)["median_us"]
            row["ping_us"][name] = p.ping(a.pings)
        rows.append(row)
        tp = ", ".join(f"{n} {row['tcp_gbps'][n]:.2f}" for n in order)
        log(f"traffic round {r + 1}/{a.rounds}: GB/s {tp}")
    return rows


def setup_rounds(cmds: dict[str, list[str]], runs: int) -> list[dict]:
    orders = sl.round_orders(list(cmds))
    for argv in cmds.values():  # untimed warm-up, and a check that each one works
        dt, rc = sl.spawn_wait(argv)
        if rc:
            raise RuntimeError(f"{' '.join(argv)}: exit {rc}")
    rows = []
    for r in range(runs):
        order = orders[r % len(orders)]
        row: dict = {"round": r, "order": order, "ms": {}, "rc": {}}
        for name in order:
            dt, rc = sl.spawn_wait(cmds[name])
            row["ms"][name], row["rc"][name] = dt * 1000, rc
        rows.append(row)
    log(f"set-up cost: {runs} rounds of {', '.join(cmds)}")
    return rows


def ratio(a: list[float], b: list[float]) -> str:
    paired = [x / y for x, y in zip(a, b, strict=True) if y]
    p = statistics.quantiles(paired, n=10) if len(paired) > 1 else [paired[0]] * 9
    of_med = statistics.median(a) / statistics.median(b)
    return f"{of_med:6.2f}x  paired {statistics.median(paired):5.2f}x [{p[0]:.2f}..{p[-1]:.2f}]"


def report(traffic: list[dict], names: list[str], setup: list[dict], cmds: list[str]) -> dict:
    out: dict = {"traffic_medians": {}, "setup_medians_ms": {}}
    print(f"\n{'median over rounds':<32}" + "".join(f"{n:>11}" for n in names))
    for key, label, unit, _ in MEASURES:
        meds = {n: statistics.median(row[key][n] for row in traffic) for n in names}
        out["traffic_medians"][key] = meds
        print(f"{label + ' (' + unit + ')':<32}" + "".join(f"{meds[n]:>11.2f}" for n in names))
    print("\nratios (of medians, and paired: median over rounds [p10..p90])")
    for key, label, _, higher in MEASURES:
        for x, y in (("pycont", "loopback"), ("pycont", "podman"), ("pycont", "bare")):
            if x in names and y in names:
                col = [[row[key][n] for row in traffic] for n in (x, y)]
                word = "faster" if higher else "slower"
                print(f"  {label:<30} {x}/{y:<9} {ratio(*col)}   (> 1: {x} {word})")
    print(f"\n{'run --rm busybox true':<24}{'median ms':>10}{'p90 ms':>9}{'fails':>6}")
    ms = {n: [row["ms"][n] for row in setup] for n in cmds}
    for n in cmds:
        fails = sum(1 for row in setup if row["rc"][n])
        p90 = statistics.quantiles(ms[n], n=10)[-1] if len(ms[n]) > 1 else ms[n][0]
        med = statistics.median(ms[n])
        out["setup_medians_ms"][n] = med
        print(f"{n:<24}{med:>10.1f}{p90:>9.1f}{fails:>6}")
    print("added by the network (median of paired differences, ms; ratio)")
    for x, y in (
        ("pycont-bridge", "pycont-none"),
        ("pycont-user", "pycont-none"),
        ("podman-net", "podman-none"),
        ("pycont-none", "runc"),
        ("pycont-user", "podman-net"),
    ):
        if x in ms and y in ms:
            diff = statistics.median(a - b for a, b in zip(ms[x], ms[y], strict=True))
            print(f"  {x} - {y:<14} {diff:+8.1f} ms   {x}/{y} {ratio(ms[x], ms[y])}")
    return out


# -- clean-up -----------------------------------------------------------------------------------
def libpod_cgroups() -> set[str]:
    found = subprocess.run(
        ["find", "/sys/fs/cgroup", "-mindepth", "1", "-maxdepth", "3", "-type", "d"]
        + ["-name", "libpod_parent"],
        capture_output=True,
        text=True,
    ).stdout
    return set(found.split())


def cleanup(pairs: list[Pair], pc: list[str], cg_before: set[str]) -> list[str]:
    """Remove everything this run made; return what is still there."""
    for p in pairs:
        p.stop_server()
    names = ["pch5-a", "pch5-b"]
    subprocess.run([*pc, "rm", "-f", *names], capture_output=True)
    subprocess.run([*pc, "network", "rm", NET], capture_output=True)
    # the store's default bridge stays up after its last container, as docker0: this run's goes
    subprocess.run([*pc, "system", "prune", "-f"], capture_output=True)
    if os.path.isdir(os.path.join(WORK, "podman")):
        P = podman_base()
        subprocess.run([*P, "rm", "-af", "-t", "0"], capture_output=True)
        subprocess.run([*P, "rmi", "-af"], capture_output=True)
    subprocess.run(["runc", "delete", "-f", "pch5-runc"], capture_output=True)
    for ns in BARE_NS:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    for link in (BARE_BR, "pcbench-pod"):
        subprocess.run(["ip", "link", "del", link], capture_output=True)
    for d in libpod_cgroups() - cg_before:
        subprocess.run(["find", d, "-depth", "-type", "d", "-delete"], capture_output=True)
    ours = (WORK, PYCONT_ROOT)
    with open("/proc/self/mountinfo") as f:
        mounts = [ln.split()[4] for ln in f]
    for m in sorted((m for m in mounts if m.startswith(ours)), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)
    for d in ours:
        shutil.rmtree(d, ignore_errors=True)
    links = sh(["ip", "-o", "link"], check=False)
    netns = sh(["ip", "netns", "list"], check=False)
    sys.path.insert(0, REPO)
    from pycont.net.networks import default_bridge

    bridge = default_bridge(PYCONT_ROOT)
    left = re.findall(rf"^\d+: (pcbench[^:@]*|{bridge})", links, re.M)
    left += [ln.split()[0] for ln in netns.splitlines() if ln.startswith("pycont-pcbench")]
    return left + [m for m in mounts if m.startswith(ours) and os.path.ismount(m)]


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="traffic rounds (each contestant once)")
    ap.add_argument("--mib", type=int, default=1024, help="MiB per Python throughput sample")
    ap.add_argument("--nc-mib", type=int, default=128, help="MiB per busybox nc sample")
    ap.add_argument("--pingpongs", type=int, default=5000, help="TCP round trips per sample")
    ap.add_argument("--pings", type=int, default=10, help="ICMP echoes per sample (-i 0.2)")
    ap.add_argument("--runs", type=int, default=15, help="set-up rounds (each command once)")
    ap.add_argument("--no-podman", action="store_true")
    ap.add_argument("--pin", action="store_true", help="client on CPU 0, server on CPU 1")
    ap.add_argument("--json", help="where to write the samples (default bench/results/...)")
    ap.add_argument("--serve", metavar="HOST", help=argparse.SUPPRESS)
    ap.add_argument("--client", nargs=4, metavar="X", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        serve(a.serve)
        return 0
    if a.client:
        host, port, mode, amount = a.client
        client(host, int(port), mode, int(amount))
        return 0
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    missing = [p for p in PACKAGES if sl.pkg_version(p) == "not installed"]
    if missing:
        raise SystemExit(f"missing packages: apt-get install -y {' '.join(missing)}")
    for d in (WORK, PYCONT_ROOT):
        if os.path.exists(d):
            raise SystemExit(f"{d} exists (a previous run?): remove it first")
    os.environ["PYCONT_ROOT"] = PYCONT_ROOT
    if a.pin and (os.cpu_count() or 1) >= 2:
        PIN.update(client="0", server="1")
    pc = pycont_cli()
    meta: dict[str, Any] = dict(sl.machine_facts())
    meta["packages"] = {p: sl.pkg_version(p) for p in PACKAGES}
    meta["loadavg_before"] = os.getloadavg()
    meta["pinned_cpus"] = dict(PIN)
    fw_before, cg_before = firewall_state(), libpod_cgroups()
    pairs: list[Pair] = []
    left: list[str] = []
    try:
        os.makedirs(WORK)
        pairs.append(Pair("loopback", None, None, "127.0.0.1"))
        pairs.append(setup_pycont(pc))
        image = ""
        if not a.no_podman:
            pod, image = setup_podman(pc)
            pairs.append(pod)
        pairs.append(setup_bare())
        for p in pairs:
            p.start_server()
        print(f"# container networking; {meta['date']}; {meta['cpu_model']}; {meta['kernel']}")
        print("packages: " + ", ".join(f"{k} {v}" for k, v in meta["packages"].items()))
        print("pairs: " + "; ".join(f"{p.name} -> {p.ip_b}:{p.port}" for p in pairs))
        traffic = traffic_rounds(pairs, a)
        # No container is kept on the default network: pycont-bridge is a lone container's
        # cost, the bridge made by the first run staying up after it, as docker0.
        run = [*pc, "run", "--rm", "--network"]
        cmds = {
            "pycont-none": [*run, "none", "busybox", "true"],
            "pycont-bridge": [*run, "bridge", "busybox", "true"],
            "pycont-user": [*run, NET, "busybox", "true"],
            "runc": ["runc", "run", "--bundle", setup_runc(), "pch5-runc"],
        }
        if image:
            prun = [*podman_base(), "run", "--rm", *PODMAN_RUN, "--network"]
            cmds["podman-none"] = [*prun, "none", image, "true"]
            cmds["podman-net"] = [*prun, PNET, image, "true"]
        setup = setup_rounds(cmds, a.runs)
        res = report(traffic, [p.name for p in pairs], setup, list(cmds))
    finally:
        left = cleanup(pairs, pc, cg_before)
    fw_after = firewall_state()
    fw_same = fw_after == fw_before
    print(f"firewall rules and ip_forward unchanged: {'yes' if fw_same else 'NO'}")
    if not fw_same:
        print(f"before:\n{fw_before}\nafter:\n{fw_after}")
    if left:
        print(f"LEFT OVER: {left}")
    stamp = datetime.datetime.now().strftime("%Y-%m-%dT%H%M%S")
    path = a.json or os.path.join(HERE, "results", f"net-{stamp}.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        doc = {"meta": meta, "args": vars(a), "traffic": traffic, "setup": setup, **res}
        json.dump(doc | {"firewall_unchanged": fw_same, "left_over": left}, f, indent=1)
    print(f"samples: {path}")
    return 0 if fw_same and not left else 1


if __name__ == "__main__":
    sys.exit(main())
