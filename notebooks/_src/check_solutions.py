"""Run each chapter with its exercise cells replaced by their solutions; every check must say ✓.

    .venv/bin/python notebooks/_src/check_solutions.py      # as root, like the committed run

The committed notebooks keep the learner's empty answers (their check cells print ✗); this proves
the other half: that the solutions folded under each exercise really pass their check cells.
The notebooks on disk are not modified. Exit status 1 if any check is not ✓.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent

# notebook -> [(how the exercise cell starts, the solution that replaces it)]
SOLUTIONS = {
    "01-containers-are-processes.ipynb": [
        (
            "answer1 = None",
            "def is_it(p):\n"
            "    try:\n"
            '        return (cmdline(p) == "sleep 1000" and nspid(int(p))[-1] == 1\n'
            "                and ppid(int(p)) == ex.state().monitor_pid)\n"
            "    except OSError:\n"
            "        return False\n"
            'answer1 = next(int(p) for p in os.listdir("/proc") if p.isdigit() and is_it(p))',
        ),
        (
            "# your code here",
            'ex.exec(["sleep", "300"], wait=False)\nex.exec(["sleep", "301"], wait=False)',
        ),
        (
            "answer3 = None",
            'os.kill(ex.pid, signal.SIGTERM)\ntime.sleep(0.2)\nanswer3 = ex.status == "running"',
        ),
        ("command4 = None", 'command4 = ["sh", "-c", "exit 42"]'),
    ],
    "02-namespaces.ipynb": [
        ("answer1 = None", 'answer1 = os.stat(f"/proc/{box.pid}/ns/net").st_ino'),
        (
            "# your code here",
            'pycont.run("busybox", ["sleep", "1000"], name="ch02-ex2", detach=True,'
            ' uts="host", ipc="host")',
        ),
        ("answer3 = None", 'answer3 = "0 1000 1"'),
        ("answer4 = None", 'answer4 = "mnt"'),
    ],
    "03-cgroups.ipynb": [
        (
            "answer1 = None",
            'ex1 = pycont.run("busybox", BUSY, cpus=0.25, detach=True, name="ch03-ex1")\n'
            "(answer1,) = cpu_percent([ex1], 2)",
        ),
        (
            "answer2 = None",
            'cg = ex2.cgroup()\nanswer2 = os.path.join(cg.path, cg.files()["memory"])',
        ),
        ("answer3 = None", "answer3 = 10"),
        ("answer4 = None", 'answer4 = "memory.events"'),
    ],
}


def main() -> int:
    failed = 0
    for name, solutions in SOLUTIONS.items():
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        for prefix, code in solutions:
            cells = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith(prefix)]
            if len(cells) != 1:
                print(f"{name}: {len(cells)} cells start with {prefix!r}, expected 1")
                return 1
            cells[0].source = code
        NotebookClient(nb, timeout=120, resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
        for cell in nb.cells:
            text = "".join(o.get("text", "") for o in cell.get("outputs", []))
            if "correct" in text or "not yet" in text:
                ok = text.strip().startswith("✓")
                failed += not ok
                print(f"{name}: {text.strip()}")
    print("all solutions pass" if not failed else f"{failed} solution(s) fail")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
