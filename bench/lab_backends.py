#!/usr/bin/env python3
"""Which kernel should the lab VM be? qemu (TCG) against User-Mode Linux, side by side.

Where a host gives a learner no isolation (Binder), pycont runs the course in a Linux kernel it
starts itself, unprivileged. Two ways to do that on such a host:

  qemu-tcg  Debian's kernel under qemu's TCG (no KVM on Binder), the host's files over 9p:
            pycont.vm.lab.boot_lab(), exactly what the course's kernel uses
  uml       Debian's user-mode-linux (a kernel that is a Linux process: no emulation, guest
            system calls trapped with ptrace), the host's files over hostfs, read-only

Each boots, then one Python process in the guest measures what a learner waits for: a pure
Python loop (what a cell that computes or draws costs), pycont and ipykernel imported (the
kernel's start), the first container (the busybox image built), then
``pycont.run("busybox", ["true"])`` N times, and one container with a 32 MiB memory limit
killed by the OOM killer (the limit is real). The host side samples the PSS of the whole
process tree (qemu, or UML's many processes) for the memory figure.

    python3 bench/lab_backends.py [--runs 10] [--rounds 2] [--sandbox]

``--sandbox`` runs the measurement under tests/binder/sandbox.py (uid 1000, no user namespaces,
1 CPU, 2 GB): Binder's conditions. Run as root; user-mode-linux is fetched with
``apt-get download`` into /var/cache/pycont/uml (never installed). Writes
bench/results/lab-backends-<date>.json.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

UML_CACHE = "/var/cache/pycont/uml"
MARK = "LABBENCH "
RESULT = "LABBENCH-RESULT "

GUEST_PY = r"""
import json, os, statistics, time
up = float(open("/proc/uptime").read().split()[0])
t = time.perf_counter()
total = 0
for i in range(2_000_000):
    total += i
t_loop = time.perf_counter() - t
t = time.perf_counter()
import pycont
t_pycont = time.perf_counter() - t
t = time.perf_counter()
import ipykernel.kernelapp
t_ipykernel = time.perf_counter() - t
t = time.perf_counter()
pycont.run("busybox", ["true"], rm=True)
t_first = time.perf_counter() - t
runs = []
for _ in range(RUNS):
    t = time.perf_counter()
    pycont.run("busybox", ["true"], rm=True)
    runs.append(time.perf_counter() - t)
oom = pycont.run("busybox", ["sh", "-c", "x=a; while :; do x=$x$x; done"], memory="32m")
killed = oom.inspect()["State"]["OOMKilled"]
oom.remove()
print("LABBENCH " + json.dumps({
    "uptime_at_python": up, "python_loop": t_loop, "import_pycont": t_pycont,
    "import_ipykernel": t_ipykernel,
    "first_container": t_first, "run_median": statistics.median(runs), "runs": runs,
    "oom_killed_at_32m": killed, "kernel": os.uname().release,
}))
"""


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""  # the process ended meanwhile


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in glob.glob(f"/proc/{p}/task/*/children"):
            todo += [int(c) for c in _read(task).split() if c.isdigit()]
    return out


def _pss_kib(pids: list[int]) -> int:
    total = 0
    for p in pids:
        for line in _read(f"/proc/{p}/smaps_rollup").splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1])
    return total


class PeakPss:
    """Samples the PSS of this process's children (and theirs) every 0.2 s; keeps the peak."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.2):
            kids = [p for p in _tree(me) if p != me]
            self.peak = max(self.peak, _pss_kib(kids))

    def __enter__(self) -> PeakPss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _parse(text: str) -> dict[str, Any]:
    for line in text.splitlines():
        if line.startswith(MARK):
            return dict(json.loads(line[len(MARK) :]))
    raise RuntimeError(f"no result from the guest; its last lines:\n{text[-1500:]}")


def measure_qemu(runs: int) -> dict[str, Any]:
    from pycont.vm.lab import boot_lab

    chunks: list[str] = []
    script = f"python3 - <<'PY'\n{GUEST_PY.replace('RUNS', str(runs))}\nPY\n"
    t0 = time.monotonic()
    with PeakPss() as peak:
        res = boot_lab(
            f"export PYCONT_ROOT=/tmp/labbench PYTHONDONTWRITEBYTECODE=1\n{script}",
            "bench",
            on_output=chunks.append,
            timeout=900,
        )
    got = _parse("".join(chunks))
    got.update(total=time.monotonic() - t0, peak_pss_mib=peak.peak / 1024, exit=res.exit_code)
    return got


def fetch_uml() -> str:
    """linux.uml from Debian's user-mode-linux package, unpacked in UML_CACHE."""
    found = glob.glob(f"{UML_CACHE}/x/usr/bin/linux.uml")
    if found:
        return found[0]
    os.makedirs(UML_CACHE, exist_ok=True)
    subprocess.run(["apt-get", "download", "user-mode-linux"], cwd=UML_CACHE, check=True)
    deb = sorted(glob.glob(f"{UML_CACHE}/user-mode-linux_*.deb"))[-1]
    subprocess.run(["dpkg", "-x", deb, f"{UML_CACHE}/x"], check=True)
    return glob.glob(f"{UML_CACHE}/x/usr/bin/linux.uml")[0]


def measure_uml(runs: int) -> dict[str, Any]:
    uml = fetch_uml()
    overlay = glob.glob(f"{UML_CACHE}/x/usr/lib/uml/modules/*/kernel/fs/overlayfs/overlay.ko")
    with tempfile.TemporaryDirectory(prefix="pycont-labbench-") as tmp:
        init = os.path.join(tmp, "init")
        py = os.path.join(tmp, "bench.py")
        with open(py, "w") as f:
            f.write(GUEST_PY.replace("RUNS", str(runs)))
        with open(init, "w") as f:
            f.write(
                "#!/bin/sh\nexport PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp\n"
                "mount -t proc proc /proc; mount -t sysfs sysfs /sys\n"
                "mount -t devtmpfs devtmpfs /dev 2>/dev/null\n"
                # the script is copied before /tmp is hidden under the guest's own tmpfs
                f"mount -t tmpfs tmpfs /run; cp {py} /run/bench.py\n"
                "mount -t tmpfs tmpfs /tmp\n"
                "mount -t cgroup2 cgroup2 /sys/fs/cgroup\n"
                "for c in $(cat /sys/fs/cgroup/cgroup.controllers); do"
                " echo +$c > /sys/fs/cgroup/cgroup.subtree_control; done\n"
                + (f"busybox insmod {overlay[0]}\n" if overlay else "")
                + "export PYCONT_ROOT=/tmp/labbench PYTHONDONTWRITEBYTECODE=1\n"
                f"{sys.executable} /run/bench.py\n"
                "busybox poweroff -f\n"
            )
        os.chmod(init, 0o755)
        os.chmod(tmp, 0o755)
        cmd = [
            uml,
            "mem=1G",
            "root=/dev/root",
            "rootfstype=hostfs",
            "rootflags=/",
            "ro",
            f"init={init}",
            "con=null",
            "con0=null,fd:1",
            "quiet",
        ]
        t0 = time.monotonic()
        with PeakPss() as peak:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        got = _parse(res.stdout)
        got.update(total=time.monotonic() - t0, peak_pss_mib=peak.peak / 1024, exit=0)
        return got


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="containers timed per boot")
    parser.add_argument("--rounds", type=int, default=2, help="boots per backend, alternating")
    parser.add_argument("--sandbox", action="store_true", help="under Binder's conditions")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    if ns.sandbox and not ns.inside:
        fetch_uml()  # as root, before dropping to uid 1000
        proc = subprocess.Popen(
            [sys.executable, os.path.join(REPO, "tests/binder/sandbox.py"), "--",
             sys.executable, os.path.abspath(__file__), "--inside", "--sandbox",
             "--runs", str(ns.runs), "--rounds", str(ns.rounds)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:  # uid 1000 cannot write here: its results come back as a line
            if line.startswith(RESULT):
                _write(json.loads(line[len(RESULT) :]))
            else:
                print(line, end="", flush=True)
        return proc.wait()
    results: dict[str, list[dict[str, Any]]] = {"qemu-tcg": [], "uml": []}
    for r in range(ns.rounds):
        order = ["qemu-tcg", "uml"] if r % 2 == 0 else ["uml", "qemu-tcg"]
        for name in order:
            try:
                got = measure_qemu(ns.runs) if name == "qemu-tcg" else measure_uml(ns.runs)
            except Exception as err:  # a backend that cannot run here: say so, go on
                got = {"error": f"{type(err).__name__}: {err}"}
            results[name].append(got)
            print(name, json.dumps(got)[:400], flush=True)
    keys = [
        ("uptime_at_python", "boot (guest uptime at Python)", "s"),
        ("python_loop", "Python loop, 2M additions", "s"),
        ("import_ipykernel", "import ipykernel (kernel start)", "s"),
        ("first_container", "first container (image built)", "s"),
        ("run_median", "pycont.run('busybox', ['true'])", "s"),
        ("total", "whole run, host wall clock", "s"),
        ("peak_pss_mib", "peak PSS of the backend", "MiB"),
    ]
    print(f"\n{'median of rounds':36} {'qemu-tcg':>10} {'uml':>10} {'uml/qemu':>9}")
    summary: dict[str, Any] = {}
    for key, label, unit in keys:
        vals = {}
        for name, rows in results.items():
            xs = [row[key] for row in rows if key in row]
            vals[name] = statistics.median(xs) if xs else float("nan")
        ratio = vals["uml"] / vals["qemu-tcg"] if vals["qemu-tcg"] else float("nan")
        summary[key] = {**vals, "ratio": ratio}
        print(f"{label:36} {vals['qemu-tcg']:>9.2f}{unit[0]} {vals['uml']:>9.2f}{unit[0]} "
              f"{ratio:>8.2f}x")  # fmt: skip
    oom = {n: [row.get("oom_killed_at_32m") for row in rows] for n, rows in results.items()}
    print(f"OOM kill at a 32 MiB limit: {oom}")
    record = {"sandbox": ns.sandbox, "results": results, "summary": summary}
    if ns.inside:
        print(RESULT + json.dumps(record), flush=True)
    else:
        _write(record)
    return 0


def _write(record: dict[str, Any]) -> None:
    out = os.path.join(HERE, "results", f"lab-backends-{datetime.date.today()}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(record, f, indent=1)
    print(f"written {out}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
