#!/usr/bin/env python3
"""pycont's VM boot-to-exit against qemu alone, and container vs VM in the same run.

Contestants (each boots Debian's kernel with the busybox image's initrd, runs ``true`` and
waits for qemu to exit):

  pycont-vm   ``pycont.vm.run("busybox", ["true"], rm=True)`` from a warm Python process:
              checks, name, initrd (cached image root + boot files + the command), qemu
              ``-daemonize``, following the console, removal of the VM's folder
  qemu        the same qemu command line, kernel and initrd.img copied from a pycont VM's
              folder, run directly to its exit: no -daemonize/-pidfile, and the agent's
              socket chardev replaced by a null one (the guest still finds its port, so its
              init takes the same path; without the port it would wait 4 s for it)

Paired rounds in alternating order (A B, B A, ...); medians, the ratio of medians and the
paired ratio. Target: pycont's overhead over qemu alone within 10% (pycont-vm/qemu <= 1.10).
Then, in the same run, container vs VM with pycont.compare: start (echo hi), memory (an idle
sleep) and CPU (a shell loop and dd into /dev/shm), with their ratios.

Run as root:  python3 bench/vm.py [--rounds 8]
Writes every sample to bench/results/vm-<date>.json. Everything it starts is removed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS_DIR = os.path.join(HERE, "results")
TAG = "pycont-bench-vm"
RUN_TIMEOUT = 300.0
TARGET = 1.10


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def in_project_venv() -> None:
    """Re-exec under the project's venv when started by another interpreter."""
    venv_python = os.path.join(REPO, ".venv", "bin", "python")
    if os.path.exists(venv_python) and sys.prefix != os.path.join(REPO, ".venv"):
        os.execv(venv_python, [venv_python, os.path.abspath(__file__), *sys.argv[1:]])


def standalone_command(cmd: list[str], work: str) -> list[str]:
    """A pycont VM's qemu command line, made to run alone in the foreground from ``work``."""
    out: list[str] = []
    it = iter(cmd)
    for arg in it:
        if arg in ("-daemonize",):
            continue
        if arg == "-pidfile":
            next(it)
            continue
        if arg == "-name":
            out += ["-name", f"{TAG},process={TAG}"]
            next(it)
            continue
        if arg == "-initrd":
            out += ["-initrd", os.path.join(work, "initrd.img")]
            next(it)
            continue
        if arg == "-chardev":
            spec = next(it)
            if spec.startswith("socket,id=agent"):
                spec = "null,id=agent"  # no host end: the port exists, nobody listens
            elif spec.startswith("file,id=con"):
                spec = f"file,id=con,path={os.path.join(work, 'console.log')}"
            out += ["-chardev", spec]
            continue
        out.append(arg)
    return out


def prepare(work: str) -> tuple[list[str], dict[str, str]]:
    """Boot one pycont VM of ``true``; copy its initrd and qemu command line; remove it."""
    import pycont.vm as vm

    v = vm.run("busybox", ["true"], name=f"{TAG}-{os.getpid()}", rm=False)
    try:
        shutil.copy(os.path.join(v.folder, "initrd.img"), os.path.join(work, "initrd.img"))
        cmd = standalone_command(list(v.config.qemu_command), work)
        facts = {
            "accel": v.accel,
            "accel_reason": v.accel_reason,
            "guest_kernel": v.kernel_version,
            "memory": str(v.memory),
            "initrd_bytes": str(v.config.initrd_bytes),
        }
    finally:
        v.remove(force=True)
    return cmd, facts


def run_qemu(cmd: list[str], work: str) -> float:
    """Wall seconds from spawn to qemu's exit; the guest must have said PYCONT-VM-EXIT 0."""
    console = os.path.join(work, "console.log")
    with open(console, "w"):
        pass
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        proc.wait(RUN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    took = time.perf_counter() - t0
    with open(console, errors="replace") as f:
        if "PYCONT-VM-EXIT 0" not in f.read():
            raise SystemExit(f"standalone qemu did not run the command (exit {proc.returncode})")
    return took


def run_pycont() -> float:
    import pycont.vm as vm

    t0 = time.perf_counter()
    v = vm.run("busybox", ["true"], rm=True)
    took = time.perf_counter() - t0
    if v.exit_code != 0:
        raise SystemExit(f"pycont VM exited {v.exit_code} ({v.exit_reason})")
    return took


def summary(vals: list[float]) -> dict[str, float]:
    s = sorted(vals)
    q = statistics.quantiles(s, n=10, method="inclusive") if len(s) > 1 else [s[0]] * 9
    return {"n": len(s), "min": s[0], "p10": q[0], "median": statistics.median(s), "p90": q[8]}


def machine() -> dict[str, str]:
    from pycont.compare._measure import machine as facts

    m = facts()
    qemu = subprocess.run(
        ["qemu-system-x86_64", "--version"], capture_output=True, text=True, check=False
    )
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu": m.cpu_model,
        "cores": str(m.cores),
        "ram_gib": f"{m.ram / (1 << 30):.1f}",
        "kernel": platform.release(),
        "qemu": qemu.stdout.splitlines()[0] if qemu.stdout else "?",
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def main() -> int:
    in_project_venv()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=8, help="paired rounds (default 8)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    ap.add_argument("--no-compare", action="store_true", help="skip container vs VM")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: containers and the store need it here")
    if a.rounds < 2 or a.warmup < 0:
        sys.exit("--rounds must be at least 2, --warmup at least 0")
    work = tempfile.mkdtemp(prefix=f"{TAG}.")
    os.environ["PYCONT_ROOT"] = os.path.join(work, "root")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        from pycont import compare

        ok, why = compare.available()
        if not ok:
            sys.exit(f"no VM here: {why}")
        meta = machine()
        log(f"{why}; preparing the standalone command from a pycont VM")
        cmd, facts = prepare(work)
        rounds = []
        for r in range(a.warmup + a.rounds):
            order = ["pycont-vm", "qemu"] if r % 2 == 0 else ["qemu", "pycont-vm"]
            row = {"round": r - a.warmup, "warmup": r < a.warmup, "order": order, "s": {}}
            for name in order:
                row["s"][name] = run_pycont() if name == "pycont-vm" else run_qemu(cmd, work)
            rounds.append(row)
            log(
                f"round {r + 1}/{a.warmup + a.rounds}: "
                + ", ".join(f"{k} {v:.3f} s" for k, v in row["s"].items())
            )
        timed = [r for r in rounds if not r["warmup"]]
        stats = {n: summary([r["s"][n] for r in timed]) for n in ("pycont-vm", "qemu")}
        paired = summary([r["s"]["pycont-vm"] / r["s"]["qemu"] for r in timed])
        of_medians = stats["pycont-vm"]["median"] / stats["qemu"]["median"]
        compared: dict[str, Any] = {}
        if not a.no_compare:
            log("container vs VM: start, memory, CPU")
            start = compare.measure_start(prefix=TAG)
            mem = compare.measure_memory(prefix=TAG)
            cpu = compare.measure_cpu(prefix=TAG)
            compared = {"start": start, "memory": mem, "cpu": cpu}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print()
    print("# pycont VM boot-to-exit of `true` vs qemu alone (same kernel, initrd, command line)")
    print(
        f"date {meta['date']}; {meta['cpu']}, {meta['cores']} cores, {meta['ram_gib']} GiB; "
        f"kernel {meta['kernel']}; {meta['qemu']}; load before {meta['load_before']}"
    )
    print(
        f"accel {facts['accel']} ({facts['accel_reason']}); guest kernel {facts['guest_kernel']};"
        f" -m {int(facts['memory']) >> 20}M; initrd {int(facts['initrd_bytes']) >> 10} KiB"
    )
    print(f"rounds: {a.rounds} timed after {a.warmup} warm-up, order alternating A B / B A")
    print()
    print("| contestant |  min s | median s |  p90 s |")
    print("|------------|-------:|---------:|-------:|")
    for n, s in stats.items():
        print(f"| {n:<10} | {s['min']:6.3f} | {s['median']:8.3f} | {s['p90']:6.3f} |")
    print()
    verdict = "MET" if of_medians <= TARGET else "not met"
    print(
        f"pycont-vm/qemu: {of_medians:.3f}x of medians, paired {paired['median']:.3f}x "
        f"[{paired['p10']:.3f}..{paired['p90']:.3f}]   target (<= {TARGET}x): {verdict}"
    )
    for res in compared.values():
        print()
        print(res)
    os.makedirs(RESULTS_DIR, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y-%m-%dT%H%M%S")
    path = os.path.join(RESULTS_DIR, f"vm-{stamp}.json")
    doc = {
        "meta": meta,
        "vm": facts,
        "standalone_command": cmd,
        "rounds": rounds,
        "stats_s": stats,
        "ratio": {"of_medians": of_medians, "paired": paired},
        "compare": {k: {"text": str(v), "ratios": v.ratios} for k, v in compared.items()},
    }
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    print(f"\nall samples: {os.path.relpath(path, os.getcwd())}")
    left = subprocess.run(["pgrep", "-f", f"process={TAG}"], capture_output=True, text=True)
    if left.stdout.strip() or os.path.exists(work):
        print(f"LEAK CHECK FAILED: qemu {left.stdout.split()} or {work} left", file=sys.stderr)
        return 1
    log("leak check: no standalone qemu left, temp dir gone")
    return 0


if __name__ == "__main__":
    sys.exit(main())
