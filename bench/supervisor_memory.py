#!/usr/bin/env python3
"""Host memory kept to supervise detached containers: pycont's supervisors against podman's conmon.

For N in (1, 2, 5, 10) the script starts N detached ``sleep 3600`` containers with pycont
(``pycont run -d``, in a private PYCONT_ROOT) and with podman (``podman run -d``, private store,
runc), waits for them to settle, and sums the PSS and RSS (``/proc/PID/smaps_rollup``) of the
processes that supervise them:

  podman  every ``conmon`` of those containers (``podman inspect``'s ConmonPid, and any conmon
          whose command line names one of the ids)
  pycont  every process outside the containers (not in their PID namespace nor their cgroup)
          whose ``/proc/PID/comm`` starts with ``pycont``, that did not exist when the script
          began and that belongs to this run (its environment holds our PYCONT_ROOT, or its
          cwd, command line or a descriptor points into it), plus each ``shim_pid`` recorded in
          ``containers/<id>/state.json``. Nothing about pycont's design is assumed.

``--live-restore`` then SIGKILLs pycont's supervisors of two containers, checks their ``sleep``
still runs, stops one (``pycont stop``) and kills the other's process, and checks that
``pycont inspect`` / ``pycont ps -a`` record their exit codes. PASS or FAIL is printed as seen.

Run as root:  python3 bench/supervisor_memory.py [--counts 1,2,5,10] [--live-restore]
Every process counted (pid, comm, PSS, RSS, why) goes to bench/results/supervisor_memory-*.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import start_latency as sl  # noqa: E402  (machine_facts, pkg_version, read_text)
from benchhost import (  # noqa: E402
    IMAGE,
    PACKAGES,
    PODMAN_RUN,
    PREFIX,
    belongs_to,
    cleanup,
    comm,
    libpod_cgroups,
    link,
    log,
    pids,
    podman_base,
    podman_image,
    proc_row,
    pycont_cli,
    save_and_judge,
    sh,
    snapshot,
    started,
)


# -- pycont ---------------------------------------------------------------------------------
def pycont_state(root: str, cid: str) -> dict[str, Any]:
    with open(os.path.join(root, "containers", cid, "state.json")) as f:
        doc: dict[str, Any] = json.load(f)
    return doc


def zombie(pid: int) -> bool:
    stat = sl.read_text(f"/proc/{pid}/stat")
    return stat[stat.rfind(")") + 2 : stat.rfind(")") + 3] == "Z"


def pycont_supervisors(
    root: str, before: set[tuple[int, str]], ids: list[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(counted, seen but not counted): see the module docstring for the rule."""
    mine = sl.read_text("/proc/self/cgroup")
    states = [pycont_state(root, cid) for cid in ids]
    ctr_ns = {link(f"/proc/{s['pid']}/ns/pid") for s in states if s.get("pid")} - {""}
    ctr_cg = {sl.read_text(f"/proc/{s['pid']}/cgroup") for s in states if s.get("pid")}
    ctr_cg -= {"", mine}  # a container without its own cgroup shares ours: no signal then
    shims = {int(s["shim_pid"]) for s in states if s.get("shim_pid")}
    counted, other = [], []
    for pid in sorted(pids()):
        inside = (
            link(f"/proc/{pid}/ns/pid") in ctr_ns or sl.read_text(f"/proc/{pid}/cgroup") in ctr_cg
        )
        if pid in shims:
            why = "shim_pid in state.json" + (" (inside a container)" if inside else "")
        elif started(pid) in before or inside or not comm(pid).startswith("pycont"):
            continue
        elif comm(pid).startswith("pycont-cli"):
            # The CLI's command server (and its workers): it runs commands, no container depends
            # on it, and it exits after a minute without one (README, "The command server").
            row = proc_row(pid, "the CLI's command server: supervises nothing, not counted")
            other += [row] if row else []
            continue
        else:
            why = belongs_to(pid, root)
            if not why:
                row = proc_row(pid, "new pycont* process of another PYCONT_ROOT: not counted")
                other += [row] if row else []
                continue
        row = proc_row(pid, why)
        counted += [row] if row else []
    return counted, other


def start_pycont(pc: list[str], names: list[str]) -> list[str]:
    ids = []
    for name in names:
        out = sh(
            [*pc, "run", "-d", "--network", "none", "--name", name, "busybox", "sleep", "3600"]
        )
        ids.append(out.stdout.split()[-1])
    return ids


# -- podman ---------------------------------------------------------------------------------
def conmons(work: str, ids: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    P = podman_base(work)
    found: dict[int, str] = {}
    for cid in ids:
        pid = int(sh([*P, "inspect", "-f", "{{.State.ConmonPid}}", cid]).stdout.strip() or 0)
        if pid and comm(pid) == "conmon":
            found[pid] = "podman inspect ConmonPid"
    for pid in pids():  # a conmon inspect did not name (conmon double-forks once)
        if pid not in found and comm(pid) == "conmon":
            cmd = sl.read_text(f"/proc/{pid}/cmdline")
            if any(cid in cmd for cid in ids):
                found[pid] = "conmon naming one of the ids"
    return [r for r in (proc_row(p, why) for p, why in sorted(found.items())) if r], []


# -- measuring ------------------------------------------------------------------------------
def sample(find: Any, samples: int, pause: float = 0.5) -> dict[str, Any]:
    rows = []
    for i in range(samples):
        time.sleep(pause if i else 0)
        procs, other = find()
        pss, rss = sum(p["pss"] for p in procs), sum(p["rss"] for p in procs)
        rows.append({"pss_kib": pss, "rss_kib": rss, "processes": procs, "not_counted": other})
    return {
        "samples": rows,
        "pss_kib": statistics.median(r["pss_kib"] for r in rows),
        "rss_kib": statistics.median(r["rss_kib"] for r in rows),
        "processes": len(rows[-1]["processes"]),
    }


def one_count(n: int, first: str, ctx: dict[str, Any], a: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"n": n, "order": []}
    P, pc, root = podman_base(ctx["work"]), ctx["pc"], ctx["root"]
    for who in (first, "podman" if first == "pycont" else "pycont"):
        names = [f"{PREFIX}-m{n}-{who}-{i}" for i in range(n)]
        out["order"].append(who)
        log(f"N={n}: {who}: starting {n} containers")
        if who == "pycont":
            ids = start_pycont(pc, names)
            ctx["pycont_ids"] += ids
            time.sleep(a.settle)
            res = sample(functools.partial(pycont_supervisors, root, ctx["before"], ids), a.samples)
            sh([*pc, "rm", "-f", *names])
        else:
            ids = [sh([*P, "run", "-d", *PODMAN_RUN, "--name", x, IMAGE, "sleep", "3600"]).stdout
                   .split()[-1] for x in names]  # fmt: skip
            ctx["podman_ids"] += ids
            time.sleep(a.settle)
            res = sample(functools.partial(conmons, ctx["work"], ids), a.samples)
            sh([*P, "rm", "-f", "-t", "0", *names])
        res["per_container_pss_kib"] = res["pss_kib"] / n
        out[who] = res
    out["ratio_pss"] = out["pycont"]["pss_kib"] / max(out["podman"]["pss_kib"], 1)
    out["ratio_rss"] = out["pycont"]["rss_kib"] / max(out["podman"]["rss_kib"], 1)
    return out


# -- live restore ---------------------------------------------------------------------------
def inspect_state(pc: list[str], name: str) -> dict[str, Any]:
    r = sh([*pc, "inspect", name], check=False)
    try:
        doc = json.loads(r.stdout)
    except ValueError:
        return {"error": (r.stderr or r.stdout).strip()[-300:]}
    doc = doc[0] if isinstance(doc, list) and doc else doc
    st = doc.get("State", {}) if isinstance(doc, dict) else {}
    return {k: st.get(k) for k in ("Status", "Running", "Pid", "ExitCode", "Error")}


def ps_lines(pc: list[str], names: list[str]) -> list[str]:
    out = sh([*pc, "ps", "-a"], check=False).stdout.splitlines()
    return [ln for ln in out if any(n in ln for n in names)]


def live_restore(ctx: dict[str, Any]) -> dict[str, Any]:
    """SIGKILL the supervisors: the workloads must live on, and their exits still be recorded
    with their real codes (not a code pycont made up by killing them when it saw its shim gone)."""
    pc, root = ctx["pc"], ctx["root"]
    names = [f"{PREFIX}-lr-1", f"{PREFIX}-lr-2"]
    ids = start_pycont(pc, names)
    ctx["pycont_ids"] += ids
    time.sleep(1.0)
    work = {n: int(pycont_state(root, cid)["pid"]) for n, cid in zip(names, ids, strict=True)}
    ctx["workload_pids"] += list(work.values())
    sups, _ = pycont_supervisors(root, ctx["before"], ids)
    res: dict[str, Any] = {"supervisors_killed": sups, "checks": []}

    def alive() -> dict[str, bool]:
        # a zombie has ended: its parent (the host's init, once adopted) reaps it when it will
        return {n: comm(p) == "sleep" and not zombie(p) for n, p in work.items()}

    def check(what: str, ok: bool, seen: object) -> None:
        res["checks"].append({"check": what, "pass": ok, "observed": seen})
        print(f"  {'PASS' if ok else 'FAIL'}  {what}: {seen}")

    print("\n## live restore: SIGKILL every pycont supervisor of two detached containers")
    print(f"  killed: {[(p['pid'], p['comm']) for p in sups] or 'none found'}")
    for p in sups:
        os.kill(p["pid"], signal.SIGKILL)  # ours: found by belongs_to() or our state.json
    time.sleep(1.0)
    check("the workloads survive their supervisors' SIGKILL", all(alive().values()), alive())
    seen = {n: inspect_state(pc, n) for n in names}
    res["ps_after_kill"] = ps_lines(pc, names)
    check("inspect then says running, and the query leaves them running",
          all(s.get("Status") == "running" for s in seen.values()) and all(alive().values()),
          {"inspect": seen, "alive": alive()})  # fmt: skip
    r = sh([*pc, "stop", "-t", "2", names[0]], check=False)
    res["stop"] = {"rc": r.returncode, "stderr": r.stderr.strip()[-300:]}
    check("pycont stop exits 0 and the workload ends",
          r.returncode == 0 and not alive()[names[0]], res["stop"])  # fmt: skip
    killed_by_us = alive()[names[1]]
    if killed_by_us:
        os.kill(work[names[1]], signal.SIGKILL)
    deadline = time.monotonic() + 10
    states = {n: inspect_state(pc, n) for n in names}
    while time.monotonic() < deadline and any(s.get("Status") != "exited" for s in states.values()):
        time.sleep(0.25)  # a supervisor may record the exit a moment later
        states = {n: inspect_state(pc, n) for n in names}
    res["final"], res["ps_final"] = states, ps_lines(pc, names)
    s0, s1 = states[names[0]], states[names[1]]
    check("stopped: exited, code 137 or 143, no error",
          s0.get("Status") == "exited" and s0.get("ExitCode") in (137, 143)
          and not s0.get("Error"), s0)  # fmt: skip
    check("killed from outside while it ran: exited, code 137, no error",
          killed_by_us and s1.get("Status") == "exited" and s1.get("ExitCode") == 137
          and not s1.get("Error"), {"alive_before_our_kill": killed_by_us, **s1})  # fmt: skip
    check("ps -a shows both Exited",
          len(res["ps_final"]) == 2 and all("Exited" in ln for ln in res["ps_final"]),
          res["ps_final"])  # fmt: skip
    res["pass"] = all(c["pass"] for c in res["checks"])
    print(f"  live restore: {'PASS' if res['pass'] else 'FAIL'}")
    sh([*pc, "rm", "-f", *names], check=False)
    return res


# -- report ---------------------------------------------------------------------------------
def mib(kib: float) -> str:
    return f"{kib / 1024:.2f}"


def print_table(counts: list[dict[str, Any]]) -> None:
    print("\n## supervisor memory (median of the samples; MiB)")
    print("|  N | pycont procs | pycont PSS | per ctr | podman conmons | conmon PSS | per ctr "
          "| PSS pycont/conmon | RSS pycont/conmon |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in counts:
        p, q = c["pycont"], c["podman"]
        print(
            f"| {c['n']:2d} | {p['processes']} | {mib(p['pss_kib'])} | "
            f"{mib(p['per_container_pss_kib'])} | {q['processes']} | {mib(q['pss_kib'])} | "
            f"{mib(q['per_container_pss_kib'])} | {c['ratio_pss']:.2f}x | {c['ratio_rss']:.2f}x |"
        )
    last = counts[-1]["pycont"]["samples"][-1]
    print(f"\nprocesses counted for pycont at N={counts[-1]['n']} (last sample):")
    for r in last["processes"]:
        print(
            f"  {r['pid']:>7} {r['comm']:<16} PSS {mib(r['pss'])} RSS {mib(r['rss'])}  ({r['why']})"
        )
    for r in last["not_counted"]:
        print(f"  not counted: {r['pid']} {r['comm']} ({r['why']})")


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--counts", default="1,2,5,10", help="numbers of containers (default 1,2,5,10)")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds before sampling")
    ap.add_argument("--samples", type=int, default=3, help="samples per measure, 0.5 s apart")
    ap.add_argument("--live-restore", action="store_true", help="also the live-restore check")
    ap.add_argument("--no-memory", action="store_true", help="only the live-restore check")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    missing = [p for p in PACKAGES if sl.pkg_version(p) == "not installed"]
    if missing:
        raise SystemExit(f"missing packages: apt-get install -y {' '.join(missing)}")
    counts = [int(x) for x in a.counts.split(",") if x.strip()]
    work = tempfile.mkdtemp(prefix=f"{PREFIX}-mem.")
    os.chmod(work, 0o755)
    ctx: dict[str, Any] = {
        "work": work,
        "root": os.path.join(work, "pycont-root"),
        "pc": pycont_cli(),
        "before": snapshot(),  # what ran before the measurement began is never counted
        "pycont_ids": [],
        "podman_ids": [],
        "workload_pids": [],
    }
    os.environ["PYCONT_ROOT"] = ctx["root"]
    # the CLI's command server of this run's own, stopped at the end (bh.cleanup)
    os.environ["PYCONT_CLI_SERVER_DIR"] = os.path.join(work, "cli")
    meta: dict[str, Any] = dict(sl.machine_facts())
    meta["packages"] = {p: sl.pkg_version(p) for p in PACKAGES}
    meta["loadavg_before"] = os.getloadavg()
    cg_before = libpod_cgroups()
    doc: dict[str, Any] = {"meta": meta, "counts": [], "live_restore": None}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"# supervisor memory: {meta['date']}; kernel {meta['kernel']}; {meta['cpus']} cpus")
    print("packages: " + ", ".join(f"{k} {v}" for k, v in meta["packages"].items()))
    print(f"pycont {meta['pycont']['commit']}; cli: {' '.join(ctx['pc'])}")
    try:
        podman_image(work)
        sh([*ctx["pc"], "pull", "busybox"], check=False)  # the first run pays the image
        if not a.no_memory:
            for i, n in enumerate(counts):
                first = "pycont" if i % 2 == 0 else "podman"
                doc["counts"].append(one_count(n, first, ctx, a))
            print_table(doc["counts"])
        if a.live_restore:
            doc["live_restore"] = live_restore(ctx)
    finally:
        left = cleanup(ctx, cg_before)
    doc["method"] = {
        "settle_s": a.settle,
        "samples": a.samples,
        "pycont_run": "pycont run -d --network none --name NAME busybox sleep 3600",
        "podman_run": [
            "podman",
            "run",
            "-d",
            *PODMAN_RUN,
            "--name",
            "NAME",
            IMAGE,
            "sleep",
            "3600",
        ],
        "podman_flags": podman_base("$WORK")[1:],
        "counted": __doc__,
    }
    doc["leftovers"] = left
    return save_and_judge("supervisor_memory", doc, left)


if __name__ == "__main__":
    sys.exit(main())
