#!/usr/bin/env python3
"""Latency of a ``%%container`` cell in a real IPython kernel, next to the API, the CLI and podman.

Contestants, every round runs each once (interleaved, Williams design as start_latency.py):

  magic       ``%%container busybox`` / ``echo pcbench-hi`` in a kernel started with
              jupyter_client: from sending execute_request to the first iopub ``stream``
              message holding the line ``pcbench-hi``
  api-kernel  ``pycont.run("busybox", ["echo", "hi"], rm=True)`` in the same kernel: the time
              the call takes to return, measured in the kernel (``time.perf_counter()``)
  cli         ``pycont run --rm busybox echo hi``: spawn to the first stdout line
  cli-nonet   the same with ``--network none``, as podman runs here
  podman      ``podman run --rm --network none busybox echo hi`` (private store, runc, an image
              imported from busybox-static): spawn to the first stdout line, the docker habit

pycont's contestants use pycont's default network (a bridge and a veth, as docker's); podman's
default (a CNI bridge network) would add iptables rules to this shared host, so it runs with
``--network none``: ``cli-nonet`` is the like-for-like CLI row.

Run as root, with the project's venv (jupyter_client):
  .venv/bin/python bench/cell_latency.py [--rounds 20] [--warmup 2]
Every sample goes to bench/results/cell_latency-<date>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import benchhost as bh  # noqa: E402  (podman store and image, clean-up)
import start_latency as sl  # noqa: E402  (machine_facts, summary, round_orders)

ORDER = ("magic", "api-kernel", "cli", "cli-nonet", "podman")
MARK = "pcbench-hi"
MAGIC_CELL = f"%%container busybox\necho {MARK}"
API_CELL = (
    "_pcb_t0 = _pcb_time.perf_counter()\n"
    '_pcb_c = pycont.run("busybox", ["echo", "hi"], rm=True)\n'
    "print('pcbench-api', _pcb_time.perf_counter() - _pcb_t0, _pcb_c.exit_code, "
    "repr(_pcb_c.output))"
)
TIMEOUT = 60.0


log = bh.log


def execute(kc: Any, code: str, mark: str = "") -> dict[str, Any]:
    """Send a cell; seconds to the first stream line equal to ``mark`` and to the kernel's idle.

    iopub messages carry their request's msg_id in parent_header (jupyter messaging spec)."""
    t0 = time.perf_counter()
    msg_id = kc.execute(code, store_history=False)
    first, out, errors = None, "", []
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=TIMEOUT)
        except queue.Empty:
            errors.append("no iopub message within the timeout")
            break
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            out += content["text"]
            if first is None and mark and mark in out.splitlines():
                first = time.perf_counter() - t0
        elif kind == "error":
            errors.append(f"{content['ename']}: {content['evalue']}")
        elif kind == "status" and content["execution_state"] == "idle":
            break
    idle = time.perf_counter() - t0
    while True:  # the shell reply, so the next request starts on an empty channel
        reply = kc.get_shell_msg(timeout=TIMEOUT)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    if reply["content"]["status"] != "ok":
        errors.append(f"reply status {reply['content']['status']}")
    return {"first_s": first, "idle_s": idle, "output": out[-300:], "errors": errors}


def first_line(argv: list[str], want: str) -> dict[str, Any]:
    """Seconds from spawn to the first stdout line equal to ``want``, and to the exit."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    first, lines = None, []
    assert p.stdout is not None
    for line in p.stdout:
        lines.append(line)
        if first is None and line.rstrip("\n") == want:
            first = time.perf_counter() - t0
    rc = p.wait(timeout=TIMEOUT)
    return {"first_s": first, "exit_s": time.perf_counter() - t0, "rc": rc, "out": lines[-3:]}


def start_kernel(work: str, root: str) -> tuple[Any, Any]:
    """A kernel on this interpreter (the venv's), from a kernelspec in our temp folder, talking
    over unix sockets there."""
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    kdir = os.path.join(work, "kernels", "pcbench")
    os.makedirs(kdir)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "pcbench",
        "language": "python",
    }
    with open(os.path.join(kdir, "kernel.json"), "w") as f:
        json.dump(spec, f)
    ksm = KernelSpecManager(kernel_dirs=[os.path.join(work, "kernels")])
    # ZeroMQ over unix sockets in our folder (ipc transport): no TCP port on the shared host
    km = KernelManager(kernel_name="pcbench", kernel_spec_manager=ksm, transport="ipc")
    km.ip = os.path.join(work, "kernel-ipc")
    km.connection_file = os.path.join(work, "kernel-connection.json")
    env = dict(os.environ, PYCONT_ROOT=root, PYTHONPATH=REPO)
    km.start_kernel(env=env, cwd=work)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=TIMEOUT)
    return km, kc


def once(name: str, kc: Any, cmds: dict[str, list[str]]) -> dict[str, Any]:
    if name == "magic":
        r = execute(kc, MAGIC_CELL, MARK)
        return {**r, "ms": r["first_s"] * 1e3 if r["first_s"] is not None else None}
    if name == "api-kernel":
        r = execute(kc, API_CELL)
        words = r["output"].split()
        ok = words[:1] == ["pcbench-api"] and words[2:3] == ["0"]
        return {**r, "ms": float(words[1]) * 1e3 if ok else None}
    r = first_line(cmds[name], "hi")
    return {**r, "ms": r["first_s"] * 1e3 if r["first_s"] is not None and r["rc"] == 0 else None}


def report(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    timed = [r for r in rounds if not r["warmup"]]
    stats: dict[str, dict[str, float] | None] = {}
    fails: dict[str, int] = {}
    for n in ORDER:
        vals = [r["ms"][n] for r in timed if r["ms"][n] is not None]
        fails[n] = len(timed) - len(vals)
        stats[n] = sl.summary(vals) if vals else None
    ratios = {}
    for n in ORDER[:-1]:
        pairs = [r["ms"][n] / r["ms"]["podman"] for r in timed if r["ms"][n] and r["ms"]["podman"]]
        mine, theirs = stats[n], stats["podman"]
        if mine and theirs and pairs:
            p = sl.summary(pairs)
            ratios[f"{n}/podman"] = {
                "of_medians": mine["median"] / theirs["median"],
                "paired_median": p["median"],
                "paired_p10": p["p10"],
                "paired_p90": p["p90"],
            }
    print("\n| contestant | p10 ms | median ms | p90 ms | fails |")
    print("|---|---:|---:|---:|---:|")
    for n in ORDER:
        s = stats[n]
        row = f"{s['p10']:.1f} | {s['median']:.1f} | {s['p90']:.1f}" if s else "- | - | -"
        print(f"| {n} | {row} | {fails[n]} |")
    print("\nratio to podman (< 1: faster)   of medians   paired: median [p10..p90]")
    for k, r in ratios.items():
        print(
            f"  {k:<22} {r['of_medians']:8.2f}x   {r['paired_median']:6.2f}x "
            f"[{r['paired_p10']:.2f}..{r['paired_p90']:.2f}]"
        )
    return {"stats_ms": stats, "failures": fails, "ratios": ratios}


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20, help="timed rounds (default 20)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    try:
        import jupyter_client  # noqa: F401
    except ImportError:
        raise SystemExit("jupyter_client missing: run with the project's venv python") from None
    missing = [p for p in bh.PACKAGES if sl.pkg_version(p) == "not installed"]
    if missing:
        raise SystemExit(f"missing packages: apt-get install -y {' '.join(missing)}")
    work = tempfile.mkdtemp(prefix=f"{bh.PREFIX}-cell.")
    os.chmod(work, 0o755)
    root = os.path.join(work, "pycont-root")
    os.environ["PYCONT_ROOT"] = root
    os.environ["PYCONT_CLI_SERVER_DIR"] = os.path.join(work, "cli")  # stopped by bh.cleanup
    pc = bh.pycont_cli()
    ctx: dict[str, Any] = {"work": work, "root": root, "pc": pc, "workload_pids": []}
    ctx.update(pycont_ids=[], podman_ids=[])
    meta: dict[str, Any] = dict(sl.machine_facts())
    meta["packages"] = {p: sl.pkg_version(p) for p in bh.PACKAGES}
    meta["loadavg_before"] = os.getloadavg()
    cg_before = bh.libpod_cgroups()
    cmds = {
        "cli": [*pc, "run", "--rm", "busybox", "echo", "hi"],
        "cli-nonet": [*pc, "run", "--rm", "--network", "none", "busybox", "echo", "hi"],
        "podman": [*bh.podman_base(work), "run", "--rm", *bh.PODMAN_RUN, bh.IMAGE, "echo", "hi"],
    }
    rounds: list[dict[str, Any]] = []
    km = None
    print(f"# %%container cell latency: {meta['date']}; kernel {meta['kernel']}")
    print("packages: " + ", ".join(f"{k} {v}" for k, v in meta["packages"].items()))
    try:
        bh.podman_image(work)
        bh.sh([*pc, "pull", "busybox"], check=False)
        km, kc = start_kernel(work, root)
        meta["ipython_kernel"] = sys.executable
        for code in ("%load_ext pycont", "import pycont, time as _pcb_time"):
            r = execute(kc, code)
            if r["errors"]:
                raise SystemExit(f"kernel: {code}: {r['errors']}")
        orders = sl.round_orders(list(ORDER))
        for i in range(a.warmup + a.rounds):
            order = orders[(i - a.warmup) % len(orders)]
            row: dict[str, Any] = {"round": i - a.warmup, "warmup": i < a.warmup, "order": order}
            row["ms"], row["detail"] = {}, {}
            for name in order:
                res = once(name, kc, cmds)
                row["ms"][name] = res.pop("ms")
                row["detail"][name] = res
            rounds.append(row)
            bad = [n for n in order if row["ms"][n] is None]
            log(f"round {i + 1}/{a.warmup + a.rounds}" + (f" FAILED: {bad}" if bad else ""))
            if bad:
                log(json.dumps({n: row["detail"][n] for n in bad})[:600])
        summary = report(rounds)
    finally:
        if km is not None:
            km.shutdown_kernel(now=False)  # the extension removes its cells' containers at exit
        cdir = os.path.join(root, "containers")
        ctx["pycont_ids"] = os.listdir(cdir) if os.path.isdir(cdir) else []
        left = bh.cleanup(ctx, cg_before)
    doc = {
        "meta": meta,
        "method": {
            "rounds": a.rounds,
            "warmup": a.warmup,
            "order": list(ORDER),
            "magic_cell": MAGIC_CELL,
            "api_cell": API_CELL,
            "commands": cmds,
            "clock": "perf_counter: execute_request sent .. first stream line (magic); in the "
            "kernel around pycont.run (api-kernel); Popen .. first stdout line (cli, podman)",
        },
        "rounds": rounds,
        **summary,
        "leftovers": left,
    }
    return bh.save_and_judge("cell_latency", doc, left)


if __name__ == "__main__":
    sys.exit(main())
