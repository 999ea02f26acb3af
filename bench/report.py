#!/usr/bin/env python3
"""bench/REPORT.md and its figures, generated from the newest result of each benchmark.

Reads the newest ``bench/results/<bench>-<date>.json`` of start_latency, supervisor_memory and
cell_latency (tables, ratios, a PNG each under ``bench/report/``), and summarises the newest of
any other benchmark there (net, vm, build...): its date and its medians, as the JSON holds them.

  python3 bench/report.py            # writes bench/REPORT.md and bench/report/*.png
  python3 bench/report.py --check    # exit 1 if REPORT.md is older than the newest result

The figures use matplotlib (Agg backend, no display), from the project's venv.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import platform
import re
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import start_latency as sl  # noqa: E402  (read_text, cgroup_layout)

RESULTS = os.path.join(HERE, "results")
REPORT = os.path.join(HERE, "REPORT.md")
FIGURES = os.path.join(HERE, "report")
KNOWN = ("start_latency", "supervisor_memory", "cell_latency")
COMMAND = "python3 bench/report.py"


def newest(results: str) -> dict[str, str]:
    """bench name -> path of its newest result (the names end in a sortable date)."""
    found: dict[str, str] = {}
    for path in sorted(glob.glob(os.path.join(results, "*.json"))):
        m = re.match(r"(.+?)-\d{4}-\d\d-\d\dT\d+\.json$", os.path.basename(path))
        if m:
            found[m.group(1)] = path  # sorted: the last one wins
    return found


def load(path: str) -> dict[str, Any]:
    with open(path) as f:
        doc: dict[str, Any] = json.load(f)
    return doc


def ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def ratio_rows(ratios: dict[str, dict[str, float]]) -> list[str]:
    out = [
        "| ratio (< 1: pycont faster) | of medians | paired median [p10..p90] |",
        "|---|---:|---:|",
    ]
    for k, r in ratios.items():
        out.append(
            f"| {k} | {r['of_medians']:.2f}x | {r['paired_median']:.2f}x "
            f"[{r['paired_p10']:.2f}..{r['paired_p90']:.2f}] |"
        )
    return out


# -- machine and versions ----------------------------------------------------------------
def machine(docs: dict[str, dict[str, Any]]) -> list[str]:
    order = [*KNOWN, *sorted(docs)]  # the main benchmarks' facts first
    meta: dict[str, Any] = next((docs[n]["meta"] for n in order if "meta" in docs.get(n, {})), {})
    mem = sl.read_text("/proc/meminfo").split("\n", 1)[0].split()
    ram = f"{int(mem[1]) / 1024**2:.1f} GiB" if len(mem) > 1 else "?"
    layout = meta.get("cgroup_layout", sl.cgroup_layout())
    if meta.get("unified_controllers"):
        layout += f" (cgroup2 at /sys/fs/cgroup/unified holds: {meta['unified_controllers']})"
    return [
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {meta.get('cpu_model', '?')} |",
        f"| cores | {meta.get('cpus', os.cpu_count())} |",
        f"| RAM | {ram} (read when this report was generated) |",
        f"| kernel | {meta.get('kernel', platform.release())} |",
        f"| OS | {meta.get('os', '?')} |",
        f"| cgroup layout | {layout} |",
        f"| Python | {meta.get('python', '?')} |",
        "",
    ]


def versions(docs: dict[str, dict[str, Any]]) -> list[str]:
    rows: dict[str, set[str]] = {}
    for name, d in docs.items():
        meta = d.get("meta", {})
        pc = meta.get("pycont", {})
        if pc.get("commit"):
            dirty = pc.get("dirty_files_in_pycont", "0")
            rows.setdefault("pycont (git commit)", set()).add(
                f"{pc['commit']} ({name}; {dirty} uncommitted files under pycont/)"
            )
        for pkg, v in meta.get("packages", {}).items():
            rows.setdefault(pkg, set()).add(v)
    out = ["## Versions", "", "| contestant / tool | version |", "|---|---|"]
    out += [f"| {k} | {'; '.join(sorted(v))} |" for k, v in sorted(rows.items())]
    return [*out, ""]


# -- the three known benchmarks ------------------------------------------------------------
def strip_plot(
    names: list[str], vals: list[list[float]], ylabel: str, title: str, fig: str
) -> None:
    """A box per contestant with its samples strewn over it, log scale, written to ``fig``."""
    import matplotlib.pyplot as plt

    fig_, ax = plt.subplots(figsize=(8, 4.2))
    ax.boxplot(vals, showfliers=False)
    for i, v in enumerate(vals, 1):
        ax.scatter([i + (k % 7 - 3) * 0.03 for k in range(len(v))], v, s=9, alpha=0.6)
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", which="both", alpha=0.3)
    fig_.tight_layout()
    fig_.savefig(fig, dpi=110)
    plt.close(fig_)


def start_latency(d: dict[str, Any], fig: str) -> list[str]:
    stats, samples, fails = d["stats_ms"], d["samples_ms"], d.get("failures", {})
    out = [
        "| contestant | min ms | p10 ms | median ms | p90 ms | max ms | fails |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for n, s in stats.items():
        out.append(
            f"| {n} | {s['min']:.2f} | {s['p10']:.2f} | {s['median']:.2f} | {s['p90']:.2f} "
            f"| {s['max']:.2f} | {fails.get(n, 0)} |"
        )
    out += ["", *ratio_rows(d["ratios"]), ""]
    if "--network" not in " ".join(d["method"]["commands"].get("pycont-cli", [])):
        out += [
            "Note: the pycont contestants ran with pycont's default network (a bridge and a veth "
            "per container as root, since the networking work of 2026-12-07), while crun, runc "
            "and unshare get an empty network namespace; the network set-up is part of pycont's "
            "times here (see `net.py`'s set-up figures).",
            "",
        ]
    names = list(samples)
    strip_plot(
        names,
        [samples[n] for n in names],
        "ms (log scale)",
        f"start to exit of /bin/true, {d['method']['runs']} interleaved rounds",
        fig,
    )
    return out


def supervisor_memory(d: dict[str, Any], fig: str) -> list[str]:
    import matplotlib.pyplot as plt

    def mib(kib: float) -> str:
        return f"{kib / 1024:.2f}"

    counts = d.get("counts", [])
    out = []
    if counts:
        out += [
            "| N | pycont processes | pycont PSS MiB | per container | conmons | conmon PSS MiB "
            "| per container | PSS pycont/conmon | RSS pycont/conmon |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for c in counts:
            p, q = c["pycont"], c["podman"]
            out.append(
                f"| {c['n']} | {p['processes']} | {mib(p['pss_kib'])} | "
                f"{mib(p['per_container_pss_kib'])} | {q['processes']} | {mib(q['pss_kib'])} | "
                f"{mib(q['per_container_pss_kib'])} | {c['ratio_pss']:.2f}x | "
                f"{c['ratio_rss']:.2f}x |"
            )
        last = counts[-1]
        out += ["", f"What was counted at N={last['n']} (last sample; PSS / RSS MiB):", ""]
        for who in ("pycont", "podman"):
            for r in last[who]["samples"][-1]["processes"]:
                out.append(
                    f"- {who}: pid {r['pid']} `{r['comm']}` {mib(r['pss'])} / {mib(r['rss'])} "
                    f"({r['why']})"
                )
            for r in last[who]["samples"][-1].get("not_counted", []):
                out.append(f"- {who}, not counted: pid {r['pid']} `{r['comm']}` ({r['why']})")
        fig_, ax = plt.subplots(figsize=(7, 4))
        ns = [c["n"] for c in counts]
        for who, label in (("pycont", "pycont supervisors"), ("podman", "podman: conmon")):
            ax.plot(ns, [c[who]["pss_kib"] / 1024 for c in counts], "o-", label=label)
        ax.set_xlabel("detached containers (sleep 3600)")
        ax.set_ylabel("PSS sum, MiB")
        ax.set_xticks(ns)
        ax.set_title("host memory kept to supervise N containers")
        ax.grid(alpha=0.3)
        ax.legend()
        fig_.tight_layout()
        fig_.savefig(fig, dpi=110)
        plt.close(fig_)
    lr = d.get("live_restore")
    if lr:
        out += ["", f"**Live restore: {'PASS' if lr['pass'] else 'FAIL'}** "
                "(SIGKILL of every pycont supervisor of two detached containers):", ""]  # fmt: skip
        for c in lr["checks"]:
            seen = json.dumps(c["observed"], default=str)
            out.append(f"- {'PASS' if c['pass'] else 'FAIL'}: {c['check']} — `{seen[:300]}`")
    return out


def cell_latency(d: dict[str, Any], fig: str) -> list[str]:
    stats, fails = d["stats_ms"], d.get("failures", {})
    out = ["| contestant | p10 ms | median ms | p90 ms | fails |", "|---|---:|---:|---:|---:|"]
    for n, s in stats.items():
        row = f"{ms(s['p10'])} | {ms(s['median'])} | {ms(s['p90'])}" if s else "- | - | -"
        out.append(f"| {n} | {row} | {fails.get(n, 0)} |")
    out += ["", *ratio_rows(d["ratios"]), ""]
    timed = [r for r in d["rounds"] if not r["warmup"]]
    names = [n for n in d["method"]["order"] if stats.get(n)]
    vals = [[r["ms"][n] for r in timed if r["ms"][n] is not None] for n in names]
    strip_plot(
        names,
        vals,
        "ms to the first output line\n(api-kernel: to the return; log scale)",
        f"echo in busybox: {len(timed)} interleaved rounds",
        fig,
    )
    return out


# -- anything else --------------------------------------------------------------------------
def numeric_tables(d: dict[str, Any]) -> list[str]:
    """Every top-level entry whose key says median/stats and that maps names to numbers (or to
    name -> number maps): the figures such a benchmark chose to summarise itself."""
    out = []
    for key, val in d.items():
        if not isinstance(val, dict) or not re.search(r"median|stats|summary|ratio", key):
            continue
        flat = {k: v for k, v in val.items() if isinstance(v, int | float)}
        nested = {k: v for k, v in val.items() if isinstance(v, dict)}
        if flat:
            out += [f"`{key}`:", "", "| | value |", "|---|---:|"]
            out += [f"| {k} | {v:.4g} |" for k, v in flat.items()] + [""]
        cols = sorted(
            {c for v in nested.values() for c, x in v.items() if isinstance(x, int | float)}
        )
        if nested and cols:
            out += [
                f"`{key}`:",
                "",
                "| | " + " | ".join(cols) + " |",
                "|---|" + "---:|" * len(cols),
            ]
            for k, v in nested.items():
                cells = [f"{v[c]:.4g}" if isinstance(v.get(c), int | float) else "" for c in cols]
                out.append(f"| {k} | " + " | ".join(cells) + " |")
            out.append("")
    return out or ["(no summary figures found in this JSON: read it directly)", ""]


def render(found: dict[str, str]) -> str:
    docs = {name: load(path) for name, path in found.items()}
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "# pycont benchmark report",
        "",
        f"Generated by `{COMMAND}` on {now}, from the newest JSON of each benchmark in "
        "`bench/results/`. Do not edit by hand: rerun the benchmarks, then this command. "
        "How each figure is measured: `bench/README.md`.",
        "",
        "| benchmark | result file | run at |",
        "|---|---|---|",
    ]
    for name, path in found.items():
        date = docs[name].get("meta", {}).get("date", "?")
        out.append(f"| {name} | `{os.path.basename(path)}` | {date} |")
    out += ["", *machine(docs), *versions(docs)]
    os.makedirs(FIGURES, exist_ok=True)
    titles = {
        "start_latency": "Start latency: `/bin/true` in a busybox root (`start_latency.py`)",
        "supervisor_memory": "Supervisor memory: detached `sleep` containers "
        "(`supervisor_memory.py`)",
        "cell_latency": "`%%container` cell latency (`cell_latency.py`)",
    }
    makers = {"start_latency": start_latency, "supervisor_memory": supervisor_memory}
    makers["cell_latency"] = cell_latency
    for name in KNOWN:
        if name not in docs:
            out += [f"## {titles[name]}", "", f"No result yet: run `bench/{name}.py`.", ""]
            continue
        png = os.path.join(FIGURES, f"{name}.png")
        body = makers[name](docs[name], png)
        out += [f"## {titles[name]}", "", *body, ""]
        if os.path.exists(png):
            out += [f"![{name}](report/{name}.png)", ""]
    for name in sorted(set(docs) - set(KNOWN)):
        out += [
            f"## Other: `{name}` ({os.path.basename(found[name])})",
            "",
            *numeric_tables(docs[name]),
        ]
    return "\n".join(out).rstrip() + "\n"


def check(results: str) -> int:
    """Exit status 1 when REPORT.md is missing or older than the newest result."""
    paths = glob.glob(os.path.join(results, "*.json"))
    if not os.path.exists(REPORT):
        print(f"{REPORT} missing: run {COMMAND}")
        return 1
    stale = [p for p in paths if os.path.getmtime(p) > os.path.getmtime(REPORT)]
    if stale:
        print(f"REPORT.md is older than {len(stale)} result(s), e.g. {os.path.basename(stale[0])}: "
              f"run {COMMAND}")  # fmt: skip
        return 1
    print("REPORT.md is newer than every result")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if REPORT.md is stale")
    ap.add_argument(
        "--results", default=RESULTS, help="folder of result JSONs (default: %(default)s)"
    )
    a = ap.parse_args()
    if a.check:
        return check(a.results)
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on the machines that run this
    found = newest(a.results)
    if not found:
        raise SystemExit(f"no results in {a.results}: run the benchmarks first")
    text = render(found)
    with open(REPORT, "w") as f:
        f.write(text)
    print(
        f"wrote {os.path.relpath(REPORT)} and {os.path.relpath(FIGURES)}/*.png "
        f"from {len(found)} results"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
