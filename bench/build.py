#!/usr/bin/env python3
"""Dockerfile builds: ``pycont build`` vs ``buildah bud`` vs ``podman build``, paired in one run.

The build is ``bench/build_fixture/`` (FROM busybox, WORKDIR, two COPY, two RUN, ENV, CMD),
with pycont's own busybox as the base: ``pycont save busybox`` writes a docker-archive that
buildah pulls and podman loads, so all three build offline from the same bytes. Every round
(order rotating over all permutations) times, for each contestant, spawn to exit of:

  cold    a build with ``--no-cache``
  cached  the same build again (every step a cache hit)
  change  a build after one line was appended to ``src/main.sh`` (hits up to ``COPY src/``)

and, around the ``change`` build, the growth of the tool's store in bytes (``du -sxb``; pycont:
``PYCONT_ROOT/images``; buildah, podman: their ``--root``) next to the size of the image's
top layer, the one the change rebuilt. Peers: ``--runtime runc`` (crun 1.8 refuses a hybrid
cgroup layout whose v2 part holds controllers), ``--network none``, overlay storage in a
private ``--root``/``--runroot``; buildah with ``--layers`` (its default keeps no step cache).

Run as root:  python3 bench/build.py [--rounds 5] [--json FILE] [--peers-only]
Prints versions, a table of medians and the ratios pycont/buildah, pycont/podman (of medians,
and paired: the median over rounds of A_i/B_i with its min..max); writes every sample to JSON.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FIXTURE = os.path.join(HERE, "build_fixture")
PYCONT_ROOT = "/tmp/pc-h5-root"
WORK = "/tmp/pc-h5-build"
IMAGE = "pc-h5-build"
PACKAGES = ("buildah", "podman", "runc", "busybox-static")
PHASES = ("cold", "cached", "change")
TIMEOUT = 900.0


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def sh(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT
    )


def must(argv: list[str], env: dict[str, str]) -> str:
    r = sh(argv, env)
    if r.returncode:
        raise SystemExit(f"{' '.join(argv)}: exit {r.returncode}\n{(r.stderr or r.stdout)[-800:]}")
    return r.stdout


def pkg_version(pkg: str) -> str:
    r = sh(["dpkg-query", "-W", "-f", "${Version}", pkg])
    return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else ""


def du_bytes(path: str) -> int:
    # -x: not into a mounted overlay of a running step; -b: apparent bytes, hardlinks once
    return int(must(["du", "-sxb", path], dict(os.environ)).split()[0])


class Contestant:
    """One build tool: its command line, the folder it stores images in, its top layer size."""

    def __init__(self, name: str, base: list[str], build: list[str], store: str) -> None:
        self.name, self.base, self.build, self.store = name, base, build, store
        self.ctx = os.path.join(WORK, f"ctx-{name}")

    def argv(self, no_cache: bool) -> list[str]:
        nc = ["--no-cache"] if no_cache else []
        df = os.path.join(self.ctx, "Dockerfile")
        return [*self.base, *self.build, *nc, "-t", IMAGE, "-f", df, self.ctx]

    def top_layer_size(self, env: dict[str, str]) -> int | None:
        """Bytes of the image's newest layer (the one ``COPY src/`` wrote), as the tool says."""
        try:
            if self.name == "buildah":
                out = must([*self.base, "inspect", "--type", "image", IMAGE], env)
                return int(json.loads(json.loads(out)["Manifest"])["layers"][-1]["size"])
            if self.name == "podman":
                hist = json.loads(must([*self.base, "history", "--format", "json", IMAGE], env))
                return next(int(h["size"]) for h in hist if h.get("size"))
            return pycont_top_layer(self.store)
        except (SystemExit, KeyError, ValueError, StopIteration, OSError) as err:
            log(f"{self.name}: top layer size unknown: {err}")
            return None


def pycont_top_layer(images: str) -> int | None:
    """The last layer descriptor's size in the manifest the OCI index names ``IMAGE:latest``."""
    with open(os.path.join(images, "index.json")) as f:
        index = json.load(f)
    for m in index["manifests"]:
        ref = (m.get("annotations") or {}).get("org.opencontainers.image.ref.name", "")
        if ref.rsplit("/", 1)[-1] == f"{IMAGE}:latest":
            algo, hexd = m["digest"].split(":", 1)
            with open(os.path.join(images, "blobs", algo, hexd)) as f:
                return int(json.load(f)["layers"][-1]["size"])
    return None


def setup(peers_only: bool, pycont_cli: list[str], env: dict[str, str]) -> list[Contestant]:
    for d in (WORK, PYCONT_ROOT):
        if os.path.exists(d):
            raise SystemExit(f"{d} exists (a previous run?): remove it first")
    os.makedirs(os.path.join(WORK, "tmp"))
    archive = os.path.join(WORK, "busybox.tar")
    must([*pycont_cli, "save", "busybox", "-o", archive], env)
    b, p = os.path.join(WORK, "buildah"), os.path.join(WORK, "podman")
    buildah = Contestant(
        "buildah",
        f"buildah --root {b}/root --runroot {b}/run --storage-driver overlay".split(),
        ["bud", "--layers", "--runtime", "runc", "--pull-never", "--network", "none"],
        f"{b}/root",
    )
    podman = Contestant(
        "podman",
        f"podman --root {p}/root --runroot {p}/run --tmpdir {p}/tmp --network-config-dir {p}/net "
        "--storage-driver overlay "
        "--cgroup-manager=cgroupfs --events-backend=file --runtime runc".split(),
        ["build", "--pull=never", "--network", "none"],
        f"{p}/root",
    )
    must([*buildah.base, "pull", "-q", f"docker-archive:{archive}"], env)
    must([*podman.base, "load", "-q", "-i", archive], env)
    out = [buildah, podman]
    if not peers_only:
        flags = ["build", "--progress", "plain", "--network", "none"]
        out.insert(0, Contestant("pycont", pycont_cli, flags, f"{PYCONT_ROOT}/images"))
    return out


def reset_context(c: Contestant) -> None:
    shutil.rmtree(c.ctx, ignore_errors=True)
    shutil.copytree(FIXTURE, c.ctx)


def run_rounds(cs: list[Contestant], rounds: int, warmup: int, env: dict[str, str]) -> list[dict]:
    orders = list(itertools.permutations(c.name for c in cs))
    by_name = {c.name: c for c in cs}
    for c in cs:  # untimed: page cache, first-use costs
        reset_context(c)
        for _ in range(warmup):
            sh(c.argv(no_cache=True), env)
    rows = []
    for r in range(rounds):
        order = list(orders[r % len(orders)])
        row: dict = {"round": r, "order": order, "s": {}, "ok": {}, "hits": {}}
        row |= {"growth": {}, "layer": {}}
        for c in cs:
            reset_context(c)
        for phase in PHASES:
            for name in order:
                c = by_name[name]
                if phase == "change":
                    with open(os.path.join(c.ctx, "src", "main.sh"), "a") as f:
                        f.write(f'echo "round {r}"\n')
                    before = du_bytes(c.store), du_bytes(PYCONT_ROOT)
                t0 = time.perf_counter()
                res = sh(c.argv(no_cache=phase == "cold"), env)
                t = time.perf_counter() - t0
                ok = res.returncode == 0
                row["s"].setdefault(phase, {})[name] = round(t, 4)
                row["ok"].setdefault(phase, {})[name] = ok
                # steps the tool says it took from its cache (docker: CACHED; buildah: Using cache)
                hits = len(re.findall(r"CACHED|Using cache", res.stdout + res.stderr))
                row["hits"].setdefault(phase, {})[name] = hits
                if not ok:
                    log(f"round {r} {name} {phase}: exit {res.returncode}: {res.stderr[-400:]}")
                if phase == "change" and ok:
                    row["growth"][name] = du_bytes(c.store) - before[0]
                    if name == "pycont":  # a build cache kept outside images/ would show here
                        row["pycont_root_growth"] = du_bytes(PYCONT_ROOT) - before[1]
                    row["layer"][name] = c.top_layer_size(env)
        rows.append(row)
        cold = ", ".join(f"{n} {row['s']['cold'][n]:.2f}s" for n in order)
        log(f"round {r + 1}/{rounds}: cold builds {cold}")
    return rows


def samples(rows: list[dict], key: str, phase: str | None, name: str) -> list[float | None]:
    if phase is None:
        return [row[key].get(name) for row in rows]
    return [row[key][phase][name] if row["ok"][phase][name] else None for row in rows]


def med(vals: list[float | None]) -> float | None:
    v = [x for x in vals if x is not None]
    return statistics.median(v) if v else None


def ratio_cell(a: list[float | None], b: list[float | None]) -> str:
    ma, mb = med(a), med(b)
    pairs = [x / y for x, y in zip(a, b, strict=True) if x is not None and y]
    if ma is None or not mb or not pairs:
        return "-"
    return f"{ma / mb:5.2f}x  {statistics.median(pairs):5.2f}x [{min(pairs):.2f}..{max(pairs):.2f}]"


def report(cs: list[Contestant], rows: list[dict]) -> dict:
    names = [c.name for c in cs]
    pairs = (
        [("pycont", "buildah"), ("pycont", "podman")]
        if "pycont" in names
        else [("podman", "buildah")]
    )
    lines = [
        ("cold build (s)", "s", "cold"),
        ("cached rebuild (s)", "s", "cached"),
        ("one-file change (s)", "s", "change"),
        ("store growth (KiB)", "growth", None),
        ("changed layer (KiB)", "layer", None),
    ]
    head = f"{'median':<22}" + "".join(f"{n:>10}" for n in names)
    head += "".join(f"   {a}/{b} of medians, paired [min..max]" for a, b in pairs)
    print(head)
    summary: dict = {}
    for label, key, phase in lines:
        scale = 1.0 if key == "s" else 1 / 1024
        cells, meds = "", {}
        for n in names:
            m = med(samples(rows, key, phase, n))
            meds[n] = m
            cells += f"{m * scale:>10.2f}" if m is not None else f"{'-':>10}"
        for a, b in pairs:
            cell = ratio_cell(samples(rows, key, phase, a), samples(rows, key, phase, b))
            cells += f"   {cell:<38}"
        print(f"{label:<22}{cells}")
        summary[label] = meds
    for phase in PHASES:
        hits = ", ".join(
            f"{n} {'/'.join(str(row['hits'][phase][n]) for row in rows)}" for n in names
        )
        print(f"steps from cache, {phase}, per round: {hits}")
    fails = {n: sum(not ok[n] for row in rows for ok in row["ok"].values()) for n in names}
    print("failed builds: " + ", ".join(f"{n} {k}" for n, k in fails.items()))
    return {"medians": summary, "failed_builds": fails}


def machine_facts(pycont_cli: list[str]) -> dict:
    with open("/proc/cpuinfo") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    git = sh(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]).stdout.strip()
    dirty = sh(["git", "-C", REPO, "status", "--porcelain", "--", "pycont"]).stdout
    with open("/etc/debian_version") as f:
        debian = f.read().strip()
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "kernel": platform.release(),
        "os": f"Debian {debian}",
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "loadavg_before": os.getloadavg(),
        "packages": {p: pkg_version(p) or "not installed" for p in PACKAGES},
        "pycont": {
            "commit": git,
            "dirty_files_in_pycont": len(dirty.splitlines()),
            "cli": " ".join(pycont_cli).replace(REPO + "/", ""),
        },
    }


def cleanup() -> None:
    """Unmount whatever is left under our folders (deepest first), then remove them."""
    ours = (WORK, PYCONT_ROOT)
    with open("/proc/self/mountinfo") as f:
        mounts = [ln.split()[4] for ln in f]
    for m in sorted((m for m in mounts if m.startswith(ours)), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], stderr=subprocess.DEVNULL)
    for d in ours:
        shutil.rmtree(d, ignore_errors=True)
    with open("/proc/self/mountinfo") as f:
        left = [ln.split()[4] for ln in f if "pc-h5" in ln]
    if left:
        log(f"mounts left: {left}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1, help="untimed cold builds per tool first")
    ap.add_argument("--json", help="where to write the samples (default bench/results/...)")
    ap.add_argument("--peers-only", action="store_true", help="buildah and podman only")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    missing = [p for p in PACKAGES if not pkg_version(p)]
    if missing:
        raise SystemExit(f"missing packages: apt-get install -y {' '.join(missing)}")
    venv_cli = os.path.join(REPO, ".venv", "bin", "pycont")
    pycont_cli = [venv_cli] if os.path.exists(venv_cli) else [sys.executable, "-m", "pycont"]
    env = dict(os.environ, PYCONT_ROOT=PYCONT_ROOT, TMPDIR=os.path.join(WORK, "tmp"))
    env["PYTHONPATH"] = REPO  # for `python -m pycont` without the venv
    if not a.peers_only and sh([*pycont_cli, "build", "--help"], env).returncode:
        raise SystemExit("`pycont build` is not available: run with --peers-only")
    meta = machine_facts(pycont_cli)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        cs = setup(a.peers_only, pycont_cli, env)
        print(
            f"# Dockerfile builds, {a.rounds} rounds; {meta['date']}; {meta['os']}; kernel "
            f"{meta['kernel']}; {meta['cpus']} cpus ({meta['cpu_model']})"
        )
        print("packages: " + ", ".join(f"{k} {v}" for k, v in meta["packages"].items()))
        print(
            f"pycont {meta['pycont']['commit']} ({meta['pycont']['dirty_files_in_pycont']} "
            f"uncommitted files under pycont/); cli: {meta['pycont']['cli']}"
        )
        for c in cs:
            print(f"$ {' '.join(c.argv(no_cache=False)).replace(WORK, '$WORK')}")
        rows = run_rounds(cs, a.rounds, a.warmup, env)
        res = report(cs, rows)
    finally:
        cleanup()
    stamp = datetime.datetime.now().strftime("%Y-%m-%dT%H%M%S")
    path = a.json or os.path.join(HERE, "results", f"build-{stamp}.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"meta": meta, "rounds": rows, **res}, f, indent=1)
    print(f"samples: {path}")
    return 1 if any(res["failed_builds"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
