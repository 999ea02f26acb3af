"""08 — networks: veth pairs, bridges, names, published ports, shaping, Compose."""

# ruff: noqa: E501  (markdown tables and links cannot be wrapped)

from skeleton import exercise

FILE = "08-networks.ipynb"

# fmt: off
GOAL = r"""
# 08 · Networks and Compose

> *"NET: Isola interfaces de rede — `ip a`"* — the NET namespace isolates network interfaces.
>
> *"Cgroup: Isola recursos de hardware dos containers — CPU, Memória, Disco, Rede."* — cgroups
> isolate the hardware resources of containers: CPU, memory, disk, **network**.
>
> *"`EXPOSE 3000`"* — the last line of the seed's Dockerfile.
>
> *"Docker Compose é uma ferramenta que permite a definição e execução de aplicações
> multi-container Docker."* — Compose defines and runs applications of several containers.

## Goal

Chapter 02 showed that a new network namespace holds nothing but `lo`. Here you connect
containers the way docker does, with the kernel's own objects, and look at each one:

- `ip a` **inside and outside** a container, and what `--network none` and `--network host` change;
- the **veth pair** that links a container to a **bridge** on the host, drawn from the names the
  kernel reports;
- two containers that **ping each other by address and by name** on a user-defined network — and
  not by name on the default one, as in docker;
- a **web server** in a container, reached from the notebook through a **published port**
  (`-p 3000`, the seed's `EXPOSE 3000`) and from another container by name;
- why the seed's *Rede* is not a cgroup controller: a container's bandwidth **shaped with a `tc`
  qdisc** to 1 Mbit/s, and measured before and after;
- an application of **two services** started, used and removed with `pycont compose`.
"""
ALLOWS = r"""
A container's network devices are made on the host (a bridge, a veth pair per container), which
needs root: rootless, pycont gives containers only `lo`, as `--network none`. The next cell
gives this run its own pycont root (its networks and their bridges belong to this session, and
the clean-up removes them), makes the network `ch08-net` the sections use, and removes what an
interrupted run of this chapter left.
"""
NEEDS = ("namespaces", "root")
SETUP = r"""
import json
import os
import subprocess
import sys
import time
import urllib.request

import matplotlib.pyplot as plt

import pycont
from pycont import degrade
from pycont.course import Chapter, wait_for
from pycont.images import Store
from pycont.net import networks, shaping

BLOB = 256 * 1024  # bytes fetched to measure a bandwidth (section 5)


def sh(c, script):
    # Run a shell script in the running container c; its output, stripped.
    return c.exec(["sh", "-c", script]).output.strip()


def host_links():
    # The host's network devices by index, as the kernel lists them (ip -j link: rtnetlink).
    out = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True)
    return {d["ifindex"]: d for d in json.loads(out.stdout)}


def wiring(c):
    # Where container c's eth0 is plugged in: (its address, the host end, that end's bridge).
    # /sys/class/net/eth0/iflink inside is the index of the veth's other end (veth(4)).
    peer = int(sh(c, "cat /sys/class/net/eth0/iflink"))
    end = host_links()[peer]
    return c.inspect()["NetworkSettings"]["IPAddress"], end["ifname"], end.get("master", "?")


def host_port(c, port):
    # The host port published for the container's `port`/tcp (docker port c port).
    return int(c.inspect()["NetworkSettings"]["Ports"][f"{port}/tcp"][0]["HostPort"])


def listening(c, port):
    # Whether a program in container c listens on TCP `port` (busybox's netstat, inside).
    return f":{port} " in sh(c, "netstat -ltn")


def fetch(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode().strip()


def ping(c, target):
    # One ping from container c; what it says in one line.
    r = c.exec(["ping", "-c", "1", "-W", "1", target])
    lines = r.output.strip().splitlines()
    return f"reached {target}" if r.exit_code == 0 else f"failed: {lines[0] if lines else r.exit_code}"


def rate_of(c):
    # The rate of the tbf qdisc on the host end of c's veth, as tc reads it from the kernel,
    # in bit/s (tc -j says bytes/s).
    _, end, _ = wiring(c)
    out = subprocess.run(["tc", "-j", "qdisc", "show", "dev", end], capture_output=True,
                         text=True, check=True)
    return sum(8 * q["options"]["rate"] for q in json.loads(out.stdout) if q["kind"] == "tbf")


def draw(rows, names):
    # A picture of the wiring: rows of (container, address, host end, bridge), as read above;
    # names: bridge -> the network's name.
    bridges = list(dict.fromkeys(b for *_, b in rows))
    fig, ax = plt.subplots(figsize=(10, 4.6))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 6)
    ax.axis("off")
    ax.add_patch(plt.Rectangle((0.1, 0.1), 9.8, 2.6, fill=False, lw=1.5))
    ax.text(0.25, 0.3, "the host's network namespace", fontsize=9, style="italic")
    xs = [10 * (i + 0.5) / len(rows) for i in range(len(rows))]
    bx = {b: sum(x for x, r in zip(xs, rows) if r[3] == b) / sum(r[3] == b for r in rows)
          for b in bridges}
    for b, x in bx.items():
        ax.add_patch(plt.Rectangle((x - 1.2, 0.6), 2.4, 0.6, color="#cfe2f3"))
        ax.text(x, 0.9, f"bridge {b}\nnetwork {names.get(b, '?')}", ha="center", va="center",
                fontsize=8)
    for x, (name, ip, end, bridge) in zip(xs, rows):
        ax.add_patch(plt.Rectangle((x - 1.45, 3.4), 2.9, 2.3, fill=False, ls="--"))
        ax.text(x, 5.35, f"container {name}", ha="center", fontsize=9, weight="bold")
        ax.text(x, 4.95, "its own network namespace", ha="center", fontsize=8, style="italic")
        ax.add_patch(plt.Rectangle((x - 0.9, 3.6), 1.8, 0.6, color="#d9ead3"))
        ax.text(x, 3.9, f"eth0 {ip}", ha="center", va="center", fontsize=8)
        ax.add_patch(plt.Rectangle((x - 0.9, 1.8), 1.8, 0.6, color="#fff2cc"))
        ax.text(x, 2.1, end, ha="center", va="center", fontsize=8)
        ax.plot([x, x], [2.4, 3.6], color="#b45f06", lw=3)
        ax.text(x + 0.08, 3.0, "veth pair", fontsize=7, color="#b45f06")
        ax.plot([x, bx[bridge]], [1.8, 1.2], color="gray", lw=1.5)
    ax.set_title("veth pairs and bridges, as the kernel names them", fontsize=10)
    plt.show()
"""
START = r"""
if degrade.current() is None:
    try:
        net = networks.create("ch08-net")
    except (pycont.PycontError, OSError) as err:  # a kernel without bridges or veths
        degrade.install("bridge and veth devices", f"this kernel refused a bridge ({err})")
        print("→ no bridge here: each experiment below prints one 'skipped' line")
    else:
        print(f"network ch08-net: subnet {net.subnet}, bridge {net.bridge} on the host")
"""
SECTIONS = [
    ("md", r"""
## 1. `ip a`, inside and outside

The seed's command, in a container on the default network (`bridge`, as `docker run` without
`--network`). Its address depends on the networks this machine already has, so it changes from
one machine to the next:
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
%%container --rm --name ch08-ipa busybox
ip a
"""),
    ("md", r"""
Two devices: `lo`, and `eth0` with an address of the bridge's subnet. The host has many more, and
none of them is visible inside. Among them, pycont's (their names start with `pc`):
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
!ip -br link | grep -v '^pc' | head -5
print("...")
!ip -br link | grep '^pc'
"""),
    ("md", r"""
`--network none` leaves the container only its own loopback (what chapter 02's `unshare --net`
gave), and `--network host` does not make a network namespace at all: the container sees the
host's devices, as any process on the host does.
"""),
    ("code", r"""
%%container --rm --name ch08-none --network none busybox
ip a
"""),
    ("code", r"""
r = pycont.run("busybox", ["ip", "-o", "link"], network="host", rm=True, name="ch08-host")
inside = sorted(line.split(": ")[1].split("@")[0] for line in r.output.splitlines())
print("--network host sees the host's devices:", inside == sorted(
    d["ifname"] for d in host_links().values()))
"""),
    ("md", r"""
**What happened.** Every container but the `host` one got a new network namespace
(`CLONE_NEWNET`, chapter 02): its own devices, addresses, routes, ports and firewall. A new one
holds only `lo`. For a bridge network pycont (like docker) then made a **veth pair** on the host,
moved one end into the container's namespace as `eth0`, gave it an address and a default route
through the bridge, and plugged the other end, `pcv…`, into the bridge. Section 2 looks at those
ends.

---
## 2. The veth pair and the bridge

A **veth pair** (`veth(4)`) is a virtual cable: what goes in one end comes out of the other. A
**bridge** is a virtual switch: the host ends of the cables are its ports. Run two containers on
the user-defined network `ch08-net` (made by the setup cell, as `docker network create ch08-net`)
and one on the default network:
"""),
    ("code", r"""
a = pycont.run("busybox", ["sleep", "1000"], network="ch08-net", name="ch08-a", detach=True)
b = pycont.run("busybox", ["sleep", "1000"], network="ch08-net", name="ch08-b", detach=True)
c = pycont.run("busybox", ["sleep", "1000"], name="ch08-c", detach=True)  # default: bridge
for name, info in a.inspect()["NetworkSettings"]["Networks"].items():
    print(f"ch08-a on {name}: {info['IPAddress']}/{info['IPPrefixLen']}, gateway {info['Gateway']},"
          f" {info['Device']} inside, bridge {info['Bridge']}")
"""),
    ("md", r"""
Now ask the kernel, not pycont. Inside, `/sys/class/net/eth0/iflink` is the index of the device
at the other end of the cable; on the host, `ip -j link` says which device has that index and
which bridge it is plugged into (its `master`):
"""),
    ("code", r"""
rows = []
for ctr in (a, b, c):
    ip, end, bridge = wiring(ctr)
    rows.append((ctr.name, ip, end, bridge))
    print(f"{ctr.name}: eth0 {ip} inside  <->  {end} on the host, in bridge {bridge}")
default_bridge = rows[2][3]
print("a and b share a bridge:", rows[0][3] == rows[1][3] == net.bridge,
      "| c is on another:", default_bridge != net.bridge)
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
draw(rows, {net.bridge: "ch08-net", default_bridge: "bridge (the default)"})
"""),
    ("md", r"""
**What happened.** Each container has one cable, `eth0` inside and `pcv<its id><n>` on the
host. `ch08-a` and `ch08-b` are plugged into the same bridge, `pcb…` (the bridge of `ch08-net`),
so they are on one Ethernet segment; `ch08-c` is plugged into the default network's bridge —
docker's `docker0`, here `pycont0`, or `pc0…` in a session like this one, which has a pycont root
of its own. The bridge also has an address, the **gateway**: the host's own place on that
segment. That is how the host reaches the containers, and how they reach the host.

---
## 3. By address and by name

From `ch08-b`, ping `ch08-a` by its address, then by its name; and ping `ch08-c`, on the other
network:
"""),
    ("code", r"""
a_ip = rows[0][1]
print("b -> a by address:", ping(b, a_ip).replace(a_ip, "its address"))
print("b -> a by name:   ", ping(b, "ch08-a"))
print("b -> c by name:   ", ping(b, "ch08-c"))
"""),
    ("md", r"""
And on the default network, from a new container there, `ch08-c` by address and by name:
"""),
    ("code", r"""
d = pycont.run("busybox", ["sleep", "1000"], name="ch08-d", detach=True)
c_ip = rows[2][1]
print("d -> c by address:", ping(d, c_ip).replace(c_ip, "its address"))
print("d -> c by name:   ", ping(d, "ch08-c"))
"""),
    ("md", r"""
Where do the names come from? Docker answers them from a DNS server of its own, at `127.0.0.11`
in every container of a user-defined network. pycont has no DNS server: it writes the names of
the other containers of the container's user-defined networks into its **`/etc/hosts`**, and
rewrites that file when a container joins or leaves. A stand-in with the same effect:
"""),
    ("code", r"""
print(sh(b, "cat /etc/hosts"))
"""),
    ("md", r"""
**What happened.** By address, `b` reaches `a` (same bridge) and `d` reaches `c` (same default
bridge). By name, only on the user-defined network: `ch08-a` is in `b`'s `/etc/hosts` (with its
short id, as docker's DNS also answers it), while the default network has no names at all —
docker's own rule, kept for compatibility: on `bridge`, containers find each other only by
address (or the old `--link`). And `b` cannot reach `c` by name: `ch08-c` is on another network.
By address neither: a packet from one bridge to another would have to be routed by the host,
and pycont turns routing off on each of its bridges (`net.ipv4.conf.<bridge>.forwarding = 0`:
IPv4 forwards only what comes in on a device with forwarding on), whatever the host's
`ip_forward` says. Docker keeps networks apart with firewall rules instead. A container on both
networks (`pycont network connect`) reaches both.
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
%pycont network ls
"""),
    ("code", r"""
doc = json.loads(subprocess.run([sys.executable, "-m", "pycont", "network", "inspect", "ch08-net"],
                                capture_output=True, text=True, check=True).stdout)[0]
print("ch08-net: driver", doc["Driver"], "| its bridge:", doc["Options"]["com.docker.network.bridge.name"])
print("its containers:", sorted(x["Name"] for x in doc["Containers"].values()))
"""),
    ("md", r"""
---
## 4. A web server, and a published port

> *"`EXPOSE 3000`"*

The seed's Dockerfile ends with `EXPOSE 3000`. Build a small site the same way: busybox's
`httpd` serving a page on port 3000.
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
%%dockerfile -t ch08-site:1.0
FROM busybox
RUN mkdir -p /www && echo 'hello from a container' > /www/index.html
EXPOSE 3000
CMD ["httpd", "-f", "-p", "3000", "-h", "/www"]
"""),
    ("md", r"""
`EXPOSE` only **documents** the port: it publishes nothing. `-P` (`publish_all=True`) publishes
every exposed port on a **random** free host port, and `-p 3000` does the same for one port
(`-p 8080:3000` would ask for 8080, and fail if something already has it). `pycont port` says
which port it got:
"""),
    ("code", r"""
web = pycont.run("ch08-site:1.0", network="ch08-net", publish_all=True, name="ch08-web",
                 detach=True)
print("exposed by the image:", Store().get("ch08-site:1.0").exposed_ports)
"""),
    ("code", r"""
%pycont port ch08-web
"""),
    ("code", r"""
PORT = host_port(web, 3000)
wait_for(lambda: listening(web, 3000))
print("from the notebook, 127.0.0.1:<PORT> ->", fetch(f"http://127.0.0.1:{PORT}/"))
"""),
    ("md", r"""
And from another container of `ch08-net`, by name, on the container's own port (published or
not, inside the network every port of a container is open):
"""),
    ("code", r"""
print("from ch08-a, http://ch08-web:3000 ->", sh(a, "wget -qO- http://ch08-web:3000/"))
"""),
    ("md", r"""
**What happened.** The notebook connected to `127.0.0.1`, on the host: nothing there is the
container. pycont bound that host port itself and handed the socket to a small relay process,
`pycont-proxy`, which opens a connection to the container's address on port 3000 for each one it
accepts — the role of docker's `docker-proxy` (docker also adds `iptables` DNAT rules, which pycont
does not touch). Between containers there is no relay: `ch08-a` reached `ch08-web` directly
across the bridge, by the name in its `/etc/hosts`.

What pycont does **not** do is docker's outbound NAT (a `MASQUERADE` rule for each network):
here the containers reach the bridge, each other, and the host — not the machines beyond it,
nor the internet. (On this course's machines they could reach nothing else anyway.)

---
## 5. *Rede*: why network limits are not a cgroup

> *"Cgroup: Isola recursos de hardware dos containers — … Rede."*

cgroups limit CPU, memory, I/O and processes (chapter 03). For the network, v1 has two
controllers, and neither limits anything:
"""),
    ("code", r"""
with open("/proc/cgroups") as f:
    known = [line.split()[0] for line in f if not line.startswith("#")]
print("network controllers this kernel knows:", [k for k in known if k.startswith("net_")])
"""),
    ("md", r"""
`net_cls` tags a cgroup's packets with a class id and `net_prio` sets their priority: both only
*mark* traffic, for the real tool to act on. cgroup v2 has no network controller at all. The real
tool is **traffic control** (`tc(8)`): a **queueing discipline** (qdisc) attached to a network
device decides when each packet leaving that device goes. A token bucket filter (`tc-tbf(8)`)
lets packets go at a set rate. pycont's `--network-rate 1mbit` (`network_rate="1mbit"`)
attaches one to both ends of the container's veth: the host end (what the container receives)
and `eth0` (what it sends).

Run two web servers on `ch08-net`, each with a 256 KiB file, one of them shaped to 1 Mbit/s:
"""),
    ("code", r"""
SERVE = f"mkdir -p /www && head -c {BLOB} /dev/zero > /www/blob && exec httpd -f -p 80 -h /www"
fast = pycont.run("busybox", ["sh", "-c", SERVE], network="ch08-net", name="ch08-fast", detach=True)
slow = pycont.run("busybox", ["sh", "-c", SERVE], network="ch08-net", name="ch08-slow", detach=True,
                  network_rate="1mbit")
print("ch08-slow:", slow.inspect()["NetworkSettings"]["Pycont"]["Shaping"])
print("the kernel holds, on its host end:", shaping.format_rate(rate_of(slow)))
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
_, end, _ = wiring(slow)
!tc qdisc show dev {end}
print(sh(slow, "tc qdisc show dev eth0"), "(inside: busybox's tc does not decode tbf)")
"""),
    ("md", r"""
Now fetch the file from each, from `ch08-a`, and time it (`time -p` in the container):
"""),
    ("code", r"""
def transfer(server):
    # Seconds `ch08-a` takes to fetch the blob from `server`, as busybox's time -p says.
    wait_for(lambda: listening(pycont.get(server), 80))
    out = sh(a, f"time -p wget -qO /dev/null http://{server}/blob 2>&1")
    return float(out.split()[1])  # "real 2.06"


took = {server: transfer(server) for server in ("ch08-fast", "ch08-slow")}
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
for server, s in took.items():
    print(f"{server}: {BLOB // 1024} KiB in {s:.2f} s = {BLOB * 8 / max(s, 0.01) / 1e6:.2f} Mbit/s")
"""),
    ("code", r"""
def described(mbits):
    if 0.8 <= mbits <= 1.25:
        return "about 1 Mbit/s: the tbf's rate"
    return "far more than 10 Mbit/s: unshaped" if mbits > 10 else f"{mbits:.1f} Mbit/s (?)"


for server, s in took.items():
    print(f"{server}: {described(BLOB * 8 / max(s, 0.01) / 1e6)}")
"""),
    ("md", r"""
Added **latency** is another qdisc, `netem` (`tc-netem(8)`), which pycont attaches for
`--network-latency 50ms`. Not every kernel has it: this one is asked, and if it lacks netem pycont
refuses the container with one line instead of starting it unshaped:
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
# (whether this kernel has netem depends on the machine)
ok, why = shaping.netem_available()
print("netem here:", ok, why)
try:
    r = pycont.run("busybox", ["ping", "-c", "3", "ch08-a"], network="ch08-net", rm=True,
                   name="ch08-lat", network_latency="50ms")
    print(r.output.strip().splitlines()[-1])
except pycont.NetworkError as err:
    print("refused:", err)
"""),
    ("md", r"""
**What happened.** The shaped server took about two seconds for 2 Mbit (256 KiB), the unshaped
one a few milliseconds: the tbf qdisc on `ch08-slow`'s `eth0` held its packets back to 1 Mbit/s
(its bucket lets the first 16 KiB go at once, which is why the rate comes out a little above 1).
No cgroup was involved: the limit belongs to a network **device**, not to a group of processes,
and `tc qdisc show dev …` on the host end shows it to anyone. Docker itself has no bandwidth
flag; on Kubernetes, the CNI `bandwidth` plugin does exactly this (a tbf on the host end of the
pod's veth) for the `kubernetes.io/egress-bandwidth` annotation.

---
## 6. An application of two services: Compose

> *"Docker Compose é uma ferramenta que permite a definição e execução de aplicações
> multi-container Docker."*

A counter service keeps a count in a **named volume** and answers each TCP connection with the
next number (`nc -ll -e`: busybox's netcat, one program per connection). A web service runs
`httpd` with a CGI script that asks `counter` — by its service name — for a number. Write the
project into a folder:
"""),
    ("code", r"""
APP = course.scratch("ch08-app")
os.makedirs(f"{APP}/app/www/cgi-bin")
files = {
    "compose.yaml": '''\
services:
  counter:
    image: busybox
    # PID 1 ignores SIGTERM without a handler (chapter 01): the trap makes `down` quick
    command: ["sh", "-c", "trap 'exit 0' TERM; nc -ll -p 7000 -e /app/count.sh & wait"]
    volumes:
      - counts:/data
      - ./app:/app:ro
  web:
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 3000 -h /app/www & wait"]
    ports:
      - "3000"
    volumes:
      - ./app:/app:ro
    depends_on:
      - counter
volumes:
  counts:
''',
    "app/count.sh": '''\
#!/bin/sh
# one connection, one visit: add 1 to the count kept in the volume, and say it
n=$(cat /data/count 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > /data/count
echo "$n"
''',
    "app/www/cgi-bin/visit": '''\
#!/bin/sh
n=$(nc counter 7000 </dev/null)
printf 'Content-Type: text/plain\\r\\n\\r\\n'
echo "web: you are visitor number $n"
''',
}
for path, text in files.items():
    with open(f"{APP}/{path}", "w") as f:
        f.write(text)
    os.chmod(f"{APP}/{path}", 0o755 if path.startswith("app/") else 0o644)
print(files["compose.yaml"])
"""),
    ("code", r"""
%pycont compose -f {APP}/compose.yaml -p ch08-app up -d
"""),
    ("code", r"""
# NBVAL_IGNORE_OUTPUT
%pycont compose -f {APP}/compose.yaml -p ch08-app ps
"""),
    ("code", r"""
site = pycont.get("ch08-app-web-1")
url = f"http://127.0.0.1:{host_port(site, 3000)}/cgi-bin/visit"
wait_for(lambda: listening(site, 3000))
for _ in range(3):
    print(fetch(url))
"""),
    ("md", r"""
What did `up` make? A network for the project, `ch08-app_default`, on which each service is
reachable by its service name; the volume `ch08-app_counts`; one container per service, named
`<project>-<service>-1`, the counter first (`depends_on`). Take it down **keeping** the volume,
then up again: the count goes on.
"""),
    ("code", r"""
%pycont compose -f {APP}/compose.yaml -p ch08-app down
"""),
    ("code", r"""
%pycont compose -f {APP}/compose.yaml -p ch08-app up -d
"""),
    ("code", r"""
site = pycont.get("ch08-app-web-1")
url = f"http://127.0.0.1:{host_port(site, 3000)}/cgi-bin/visit"
wait_for(lambda: listening(site, 3000))
print(fetch(url))
"""),
    ("code", r"""
%pycont compose -f {APP}/compose.yaml -p ch08-app down -v
"""),
    ("code", r"""
print("networks:", sorted(n.name for n in networks.ls() if n.user_defined))
print("containers of the project:", [x.name for x in pycont.containers(all=True)
                                     if x.name.startswith("ch08-app")])
"""),
    ("md", r"""
**What happened.** `compose up` did, in order, what you did by hand in the sections above:
`network create`, `volume create`, then `run -d` for each service with its network, its alias
(the service name), its volumes and its published port. The CGI in `web` found `counter` by the
name in its `/etc/hosts`; the count lived in the volume, so `down` and `up` (new containers)
kept it at 3 and went on to 4. `down -v` removed the containers, the network and the volume too.
The project's network isolates it: a container on `ch08-net` could not reach `counter`.
"""),
]
EXERCISES = [
    exercise(
        r"""
### Exercise 1 — a name on a network

Create a network named **`ch08-ex`**, and run a detached busybox container **`ch08-ex1`**
(`sleep 1000`) on it that the other containers of that network can reach as **`db`** (and as
`ch08-ex1`).
""",
        r"""
# exercise 1: your code here
""",
        r"""
def _ex1():
    if not networks.exists("ch08-ex") or "ch08-ex1" not in course.containers():
        return False
    r = pycont.run("busybox", ["ping", "-c", "1", "-W", "1", "db"], network="ch08-ex", rm=True,
                   name="ch08-check")
    return r.exit_code == 0


course.check("exercise 1", _ex1,
             "networks.create(...), then pycont.run(..., network=..., network_aliases=[...], "
             "detach=True)")
""",
        r"""
networks.create("ch08-ex")
pycont.run("busybox", ["sleep", "1000"], network="ch08-ex", network_aliases=["db"],
           name="ch08-ex1", detach=True)
""",
    ),
    exercise(
        r"""
### Exercise 2 — publish it

Run a detached container **`ch08-ex2`** of busybox with the command `SITE2` below (a web server on
its port **8080**), publishing that port on a host port chosen at random. Then put the host port
it got into `answer2`.
""",
        r"""
SITE2 = ["sh", "-c", "mkdir /www && echo ex2 > /www/index.html && exec httpd -f -p 8080 -h /www"]
# exercise 2: your code here
answer2 = None  # an int: the host port
""",
        r"""
def _ex2():
    if "ch08-ex2" not in course.containers() or not isinstance(answer2, int):
        return False
    wait_for(lambda: listening(pycont.get("ch08-ex2"), 8080))
    return fetch(f"http://127.0.0.1:{answer2}/") == "ex2"


course.check("exercise 2", _ex2,
             "publish=['8080'] (a container port alone: a random host port), then "
             "c.inspect()['NetworkSettings']['Ports'] or %pycont port ch08-ex2")
""",
        r"""
SITE2 = ["sh", "-c", "mkdir /www && echo ex2 > /www/index.html && exec httpd -f -p 8080 -h /www"]
ex2 = pycont.run("busybox", SITE2, publish=["8080"], name="ch08-ex2", detach=True)
answer2 = host_port(ex2, 8080)
""",
    ),
    exercise(
        r"""
### Exercise 3 — half a megabit

Run a detached busybox container **`ch08-ex3`** (`sleep 1000`) on `ch08-net` whose traffic is
limited to **512 kbit/s**.
""",
        r"""
# exercise 3: your code here
""",
        r"""
course.check("exercise 3",
             lambda: "ch08-ex3" in course.containers() and rate_of(pycont.get("ch08-ex3")) == 512_000,
             "network_rate=... with tc's units: kbit is 1000 bits per second (kbps would be bytes)")
""",
        r"""
pycont.run("busybox", ["sleep", "1000"], network="ch08-net", network_rate="512kbit",
           name="ch08-ex3", detach=True)
""",
    ),
    exercise(
        r"""
### Exercise 4 — one network namespace for two containers

Kubernetes runs the containers of a pod in **one** network namespace: they reach each other on
`127.0.0.1`. Docker's `--network container:NAME` does the same. Run a busybox container
(`rm=True`, named `ch08-ex4`) in the network namespace of `ch08-web` (section 4) that fetches
`http://127.0.0.1:3000/`, and put what it printed into `answer4`.
""",
        r"""
answer4 = None  # a str: what wget printed
""",
        r"""
course.check("exercise 4", lambda: isinstance(answer4, str) and answer4.strip() == fetch(f"http://127.0.0.1:{PORT}/"),
             "pycont.run('busybox', ['wget', '-qO-', 'http://127.0.0.1:3000/'], "
             "network='container:...', rm=True, name='ch08-ex4').output")
""",
        r"""
answer4 = pycont.run("busybox", ["wget", "-qO-", "http://127.0.0.1:3000/"],
                     network="container:ch08-web", rm=True, name="ch08-ex4").output
""",
        note="""
`127.0.0.1` inside `ch08-ex4` is the loopback of `ch08-web`'s namespace: the two share `lo`,
`eth0`, the ports (two of them cannot both listen on 3000) and `/etc/hosts`, but nothing else.
""",
    ),
]
QUESTIONNAIRE = r"""
1. `ip a` in a container shows `lo` and `eth0`. Where is the other end of that `eth0`, and how can
   you find it from inside?
2. What does a bridge do, and what is its address for?
3. Two containers on the default network cannot ping each other by name, but can on a network you
   created. Why, in docker and in pycont?
4. Where do the names come from in docker, and where in pycont?
5. `EXPOSE 3000` is in the image. Can you reach the container's port 3000 from the host's
   `127.0.0.1:3000`? What makes it reachable?
6. Why does `-p 3000` (no host port) never collide with another run, while `-p 8080:3000` can?
7. Why is there no cgroup controller that limits bandwidth? What limits it instead, and where?
8. What does `compose down` remove, and what does `down -v` add?

<details><summary>Answers</summary>

1. On the host: it is one end of a veth pair, whose other end (`pcv…`, docker's `veth…`) is
   plugged into a bridge. Inside, `/sys/class/net/eth0/iflink` (or the `@ifN` after `eth0` in
   `ip a`) is the index of the host end; `ip link` on the host shows that index, and its
   `master`, the bridge.
2. It is a virtual switch: it forwards frames between the ports plugged into it (the host ends of
   the containers' veths), so that the containers of a network are on one Ethernet segment. Its
   address is the network's gateway: the host's own place on it, the containers' default route.
3. Docker's default `bridge` network has no name resolution (a compatibility rule: before user
   networks there was only `--link`); user-defined networks have it. pycont follows the same rule.
4. Docker: its embedded DNS server at `127.0.0.11`, in each container of a user-defined network.
   pycont: the container's `/etc/hosts`, which pycont writes with the other containers of its
   networks and rewrites when one joins or leaves.
5. No: `EXPOSE` only documents the port. A published port (`-p`, or `-P` for every exposed one)
   makes a host socket that relays connections into the container (`docker-proxy`,
   `pycont-proxy`, plus DNAT rules in docker). Without publishing, only the host (through the
   bridge, at the container's address) and the containers of its networks reach it.
6. Without a host port the kernel picks a free one at `bind(2)` time (port 0); a fixed host port
   fails when something else already listens on it.
7. Bandwidth belongs to network devices, not to groups of processes: the kernel queues packets
   where they leave a device, and the queueing discipline (`tc`, e.g. `tbf`) decides when each
   goes. v1's `net_cls`/`net_prio` only tag packets for `tc` or the firewall; v2 has no network
   controller. pycont attaches a tbf to both ends of the container's veth.
8. `down` stops and removes the project's containers and its networks; `down -v` also removes
   its named volumes (here the count). Images stay.
</details>
"""
READING = r"""
- [`veth(4)`](https://man7.org/linux/man-pages/man4/veth.4.html),
  [`network_namespaces(7)`](https://man7.org/linux/man-pages/man7/network_namespaces.7.html),
  [`ip-link(8)`](https://man7.org/linux/man-pages/man8/ip-link.8.html) (bridges, `master`).
- [`tc(8)`](https://man7.org/linux/man-pages/man8/tc.8.html),
  [`tc-tbf(8)`](https://man7.org/linux/man-pages/man8/tc-tbf.8.html),
  [`tc-netem(8)`](https://man7.org/linux/man-pages/man8/tc-netem.8.html); the kernel's
  [v1 net_cls](https://docs.kernel.org/admin-guide/cgroup-v1/net_cls.html).
- Docker: [Networking overview](https://docs.docker.com/engine/network/),
  [Bridge network driver](https://docs.docker.com/engine/network/drivers/bridge/) (the default
  bridge's differences), [Published ports](https://docs.docker.com/engine/network/#published-ports),
  [`EXPOSE`](https://docs.docker.com/reference/dockerfile/#expose).
- [Compose file reference](https://docs.docker.com/reference/compose-file/) and
  [Networking in Compose](https://docs.docker.com/compose/how-tos/networking/).
- Kubernetes: the CNI [bandwidth plugin](https://www.cni.dev/plugins/current/meta/bandwidth/)
  — the same tbf, on a pod's veth.
"""
# fmt: on
