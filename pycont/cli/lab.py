"""``pycont lab COMMAND...``: run a command in pycont's lab VM, where this host gives no isolation.

On Binder a learner's terminal is uid 1000 without user namespaces: ``pycont run`` cannot make
a container there. ``pycont lab pycont run --rm busybox echo hi`` boots the lab VM (the one the
course's kernel runs in: this machine's files, root, cgroup v2), runs the command there and
powers off: its output is the command's, its exit code is the command's. Each call is a fresh
VM, so chain what belongs together in one: ``pycont lab sh -c 'pycont run -d --name web busybox
sleep 60; pycont ps'``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pycont.cli._common import Verb
from pycont.errors import UsageError


def lab(ns: argparse.Namespace) -> int:
    from pycont.vm.errors import VMError
    from pycont.vm.lab import choose_backend, lab_available, run_command

    if not ns.command:
        raise UsageError(
            "pycont lab needs a command to run in the lab VM, e.g. "
            "pycont lab pycont run --rm busybox echo hi"
        )
    ok, why = lab_available()
    if not ok:
        raise VMError(f"no lab VM on this machine: {why}")
    backend = choose_backend()
    reason = backend.reason if backend.name == "vm" else "pycont lab was asked for"
    print(f"pycont lab: booting the lab VM ({reason})", file=sys.stderr, flush=True)
    return run_command(ns.command, reason, sys.stdout.write)


def add_parsers(sub: Any) -> dict[str, Verb]:
    p = sub.add_parser(
        "lab", help="run a command in pycont's lab VM (for hosts that give no isolation)"
    )
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command and its arguments")
    return {"lab": lab}
