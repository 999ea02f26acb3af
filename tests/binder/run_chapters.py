#!/usr/bin/env python3
"""Run every chapter, solutions in, with the course's kernel; count error cells and checks.

    python3 tests/binder/run_chapters.py [--expect lab|local|degraded] [--timeout S] [chNN ...]

Meant for inside ``tests/binder/sandbox.py`` (Binder's conditions), where the ``pycont``
kernel finds no isolation on the host and runs in the lab VM. Each chapter is the notebook
build.py makes, with every exercise replaced by its solution (as check_solutions.py does), so
that the chapter's own check cells prove the experiments really happened: a process alone in
its PID namespace, a memory limit that kills, a layer copied up, and so on.

Why nbclient and not nbval: the committed outputs come from a root host (cgroup v1 here, the
host's kernel); the lab VM is cgroup v2 under another kernel, so outputs differ by design.
What must hold everywhere is what is checked: no error output, every check ✓, and the chapter
saying where it ran (``--expect lab``: its "what this machine allows" line names the lab VM).

``--expect degraded`` is the machine where not even the lab VM starts: the cells must still
end without an error (each failing experiment says "skipped: needs X; here: Y"), the checks
cannot pass there.

One line per chapter with cell latencies (from nbclient's timing metadata) and the kernel's
start; exit status 1 if any chapter has an error cell, a ✗ check or the wrong backend.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "notebooks" / "_src"))
sys.path.insert(0, str(REPO))

LAB_MARK = "in pycont's lab VM"
VM_NEED = "a VM (qemu)"  # pycont.course.NEEDS["vm"]'s label


def _seconds(meta: dict[str, str], start: str, end: str) -> float | None:
    try:
        a = datetime.fromisoformat(meta[start].replace("Z", "+00:00"))
        b = datetime.fromisoformat(meta[end].replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    return (b - a).total_seconds()


def run_chapter(
    modname: str, kernel: str, timeout: float, expect: str | None, save: str | None = None
) -> tuple[bool, str]:
    """(passed, summary line) for one chapter."""
    from check_solutions import with_solutions
    from nbclient import NotebookClient

    nb, checks, file = with_solutions(modname)
    client = NotebookClient(
        nb,
        kernel_name=kernel,
        timeout=timeout,
        startup_timeout=300,
        allow_errors=True,
        record_timing=True,
        resources={"metadata": {"path": str(REPO / "notebooks")}},
    )
    t0 = time.monotonic()
    started = datetime.now().astimezone()
    try:
        client.execute()
    finally:
        if save:  # the executed notebook, to read what a failing cell printed
            import nbformat

            os.makedirs(save, exist_ok=True)
            nbformat.write(nb, os.path.join(save, file))
    total = time.monotonic() - t0
    problems: list[str] = []
    durations: list[float] = []
    texts: list[str] = []
    first_input = None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("execution", {})
        took = _seconds(meta, "iopub.execute_input", "shell.execute_reply")
        if took is not None:
            durations.append(took)
        if first_input is None and "iopub.execute_input" in meta:
            first_input = datetime.fromisoformat(meta["iopub.execute_input"].replace("Z", "+00:00"))
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                problems.append(f"cell {i}: {out.ename}: {out.evalue.strip()[:200]}")
            elif out.output_type == "stream":
                texts.append(out.text)
    skipped = sum(t.count("skipped: needs ") for t in texts)
    # in the lab VM, a VM is the one thing refused (it would be emulated twice): those skips
    # are the design; any other need skipped there is a failure
    vm_skips = sum(t.count(f"skipped: needs {VM_NEED};") for t in texts)
    for n, i in sorted(checks.items()):
        if expect == "degraded":
            break  # nothing ran: a check can only say so
        text = "".join(o.get("text", "") for o in nb.cells[i].get("outputs", [])).strip()
        if not text.startswith("✓") or "✗" in text:
            problems.append(f"exercise {n}: {text or 'the check printed nothing'}")
    in_lab = any(LAB_MARK in t for t in texts)
    if expect == "lab" and not in_lab:
        problems.append("the chapter does not say it ran in the lab VM")
    if expect in ("local", "degraded") and in_lab:
        problems.append("the chapter ran in the lab VM, expected this host")
    if expect == "lab" and skipped > vm_skips:
        problems.append(f"{skipped - vm_skips} cell(s) skipped in the lab VM")
    startup = (first_input - started).total_seconds() if first_input else float("nan")
    lat = sorted(durations) or [float("nan")]
    p90 = lat[min(len(lat) - 1, int(0.9 * len(lat)))]
    line = (
        f"{file}: {len(durations)} cells, {len(problems)} problem(s), "
        f"{len(checks)} check(s); kernel ready after {startup:.1f} s; cells median "
        f"{statistics.median(lat):.2f} s, p90 {p90:.2f} s, max {lat[-1]:.1f} s; "
        f"total {total:.0f} s; {'lab VM' if in_lab else 'this host'}"
        + (f"; {skipped} cell(s) skipped" if skipped else "")
    )
    return not problems, "\n".join([line, *(f"    {p}" for p in problems)])


def main(argv: list[str]) -> int:
    from build import SOURCES

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--expect",
        choices=("lab", "local", "degraded"),
        help="where the chapters must say they ran; degraded: no error cell, checks may not pass",
    )
    parser.add_argument("--kernel", default="pycont", help="kernelspec name (default pycont)")
    parser.add_argument("--timeout", type=float, default=900, help="per cell, seconds")
    parser.add_argument("--save", help="write each executed notebook into this folder")
    parser.add_argument("chapters", nargs="*")
    ns = parser.parse_args(argv)
    if ns.kernel == "pycont":
        from pycont.vm.labkernel import install

        install(user=True)  # in this user's Jupyter folder: what postBuild does on Binder
    failed = 0
    t0 = time.monotonic()
    for name in ns.chapters or SOURCES:
        ok, text = run_chapter(name, ns.kernel, ns.timeout, ns.expect, ns.save)
        print(text, flush=True)
        failed += not ok
    took = time.monotonic() - t0
    print(f"chapters: {failed} failed, in {took:.0f} s (uid {os.getuid()})", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
