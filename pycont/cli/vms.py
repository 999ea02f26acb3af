"""The CLI's VM verbs: ``pycont vm run|ls|stop|kill|rm|exec|logs|inspect|prune``.

The same image as a container, booted under its own kernel by qemu (pycont.vm). The verbs
mirror the container verbs (docker's flags, output and exit codes) where a VM has the same
thing; a VM's own facts (accelerator, guest RAM, whole vCPUs, how it ended) show beside them.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import math
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pycont.cli._common import Verb, created_ago, print_inspected, table
from pycont.errors import InvalidState, PycontError, UsageError

if TYPE_CHECKING:
    from pycont.vm.machine import VM

# Signals a terminal or a supervisor sends to an attached `vm run`: they end it as Ctrl-C does,
# so the VM is killed (qemu runs daemonized: nothing else would end it with us).
ENDING = (signal.SIGTERM, signal.SIGHUP)


# -- flags -----------------------------------------------------------------------------------
def vcpus(text: str) -> int:
    """--cpus for a VM: qemu's -smp takes whole vCPUs, unlike a container's CPU quota.
    The upper bound (this machine's CPUs) is checked at boot, by pycont.vm.machine."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not math.isfinite(value) or value < 1 or value != int(value):
        raise UsageError(
            f"invalid VM --cpus {text!r}: a whole number of vCPUs, at least 1 "
            "(a VM has whole virtual CPUs; --cpus 0.5 is a container's CPU quota)"
        )
    return int(value)


def seconds(text: str) -> float:
    """--timeout: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"invalid --timeout {text!r}: a number of seconds greater than 0")
    return value


def env_flag(text: str) -> str:
    """-e KEY=VALUE: a VM's environment is written into its initrd, so the value is needed
    now (docker's bare ``-e KEY``, which copies the caller's value, is taken too)."""
    key, eq, _ = text.partition("=")
    if not key or any(c.isspace() for c in key):
        raise UsageError(f"invalid -e {text!r}: KEY=VALUE, with a KEY of no spaces")
    if not eq:
        if key not in os.environ:
            raise UsageError(f"invalid -e {text!r}: {key} is not set here; give KEY=VALUE")
        return f"{key}={os.environ[key]}"
    return text


def add_vm_run_flags(p: argparse.ArgumentParser) -> None:
    """``vm run``'s flags up to the image (shared with ``%%vm``)."""
    p.add_argument("--rm", action="store_true", help="remove the VM when it ends")
    p.add_argument("-d", "--detach", action="store_true", help="boot it and return (print its id)")
    p.add_argument("--name", help="assign a name to the VM")
    p.add_argument("-m", "--memory", help="guest RAM, e.g. 128m, 1g (default 128m)")
    p.add_argument("--cpus", type=vcpus, default=1, help="number of vCPUs, a whole number")
    p.add_argument("-e", "--env", action="append", type=env_flag, default=[], metavar="KEY=VALUE")
    p.add_argument("-w", "--workdir", help="working directory of the command in the guest")
    p.add_argument(
        "--timeout",
        type=seconds,
        help="kill the VM when its command still runs after this many seconds",
    )


def boot_options(a: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of pycont.vm's boot()/run() that the flags give."""
    options: dict[str, Any] = {"name": a.name, "cpus": a.cpus, "env": a.env, "rm": a.rm}
    if a.memory is not None:
        options["memory"] = a.memory  # text: boot() parses it and knows a VM's minimum
    if getattr(a, "workdir", None):
        options["workdir"] = a.workdir
    if a.detach and a.timeout is not None:
        raise UsageError("--timeout applies to an attached run: -d returns once the VM booted")
    return options


# -- what the table and inspect show ---------------------------------------------------------
def status_text(st: dict[str, Any], now: float | None = None) -> str:
    """The STATUS column: ``Up 3 seconds``, ``Exited (0) 5 seconds ago``, and for a guest
    that left no exit code, why: ``Exited (kernel panic) 5 seconds ago``."""
    from pycont.format import ago

    status = st.get("status")
    if status == "running":
        return f"Up {ago(float(st.get('started') or 0), now)}"
    if status == "exited":
        code = st.get("exit_code")
        why = str(code) if code is not None else (st.get("exit_reason") or "unknown")
        finished = st.get("finished")
        return f"Exited ({why})" + (f" {ago(float(finished), now)} ago" if finished else "")
    return "Created"


def _command_text(argv: Sequence[str]) -> str:
    cmd = " ".join(argv)
    return f'"{cmd[:20]}…"' if len(cmd) > 20 else f'"{cmd}"'


def _iso(ts: float | None) -> str:
    """RFC 3339 in UTC as docker prints it; the zero time for "never"."""
    if not ts:
        return "0001-01-01T00:00:00Z"
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat().replace("+00:00", "Z")


def vm_inspect(v: VM) -> dict[str, Any]:
    """docker inspect's layout (Id, Name, Config, State) with a VM's own facts."""
    cfg, st = v.config, v.state()
    return {
        "Id": cfg.id,
        "Name": cfg.name,
        "Created": _iso(cfg.created),
        "Image": cfg.image,
        "ImageId": cfg.image_id,
        "Path": cfg.command[0] if cfg.command else "",
        "Args": cfg.command[1:],
        "Config": {
            "Cmd": cfg.command,
            "Env": [f"{k}={val}" for k, val in cfg.env.items()],
            "WorkingDir": cfg.workdir,
            "Memory": cfg.memory,
            "Cpus": cfg.cpus,
            "AutoRemove": cfg.rm,
        },
        "State": {
            "Status": st.get("status", "created"),
            "Running": st.get("status") == "running",
            "Pid": st.get("pid") or 0,
            "ExitCode": st.get("exit_code"),
            "ExitReason": st.get("exit_reason") or "",
            "StartedAt": _iso(st.get("started")),
            "FinishedAt": _iso(st.get("finished")),
            "Marks": st.get("marks") or {},
        },
        "Machine": {
            "Accel": cfg.accel,
            "AccelReason": cfg.accel_reason,
            "KernelVersion": cfg.kernel_version,
            "Kernel": cfg.kernel,
            "InitrdBytes": cfg.initrd_bytes,
            "QemuCommand": cfg.qemu_command,
        },
        "LogPath": f"{v.folder}/console.log",
    }


def _each(names: Sequence[str], action: Callable[[VM], object]) -> int:
    """:func:`pycont.cli._common.each` over VMs."""
    from pycont.cli._common import each
    from pycont.vm.machine import get

    return each(names, action, get)


# -- verbs -----------------------------------------------------------------------------------
def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _end_like_ctrl_c(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def cmd_run(a: argparse.Namespace) -> int:
    import pycont.vm as vm

    options = boot_options(a)
    command = a.command or None
    if a.detach:
        v = vm.boot(a.image, command, **options)
        print(v.id)
        return 0
    for sig in ENDING:
        signal.signal(sig, _end_like_ctrl_c)
    # Ctrl-C (KeyboardInterrupt) in run(): the VM is killed, and removed with --rm; main()
    # then exits 130.
    v = vm.run(a.image, command, timeout=a.timeout, on_output=_write, **options)
    if v.exit_code is None:
        print(f"pycont: VM {v.name} ended without an exit code: {v.exit_reason}", file=sys.stderr)
        return 125
    return v.exit_code


def cmd_ls(a: argparse.Namespace) -> int:
    from pycont.format import binary_size
    from pycont.vm.machine import vms

    rows = []
    for v in vms(all=a.all):
        if a.quiet:
            print(v.short_id)
            continue
        cfg = v.config
        rows.append(
            (
                v.short_id,
                cfg.name,
                cfg.image,
                _command_text(cfg.command),
                created_ago(cfg.created),
                status_text(v.state()),
                cfg.accel,
                binary_size(cfg.memory),
                str(cfg.cpus),
            )
        )
    if not a.quiet:
        header = ("VM ID", "NAME", "IMAGE", "COMMAND", "CREATED", "STATUS", "ACCEL", "MEMORY")
        table((*header, "CPUS"), rows)
    return 0


def cmd_stop(a: argparse.Namespace) -> int:
    if a.time < 0:
        raise UsageError(f"invalid --time {a.time:g}: must be >= 0")
    return _each(a.names, lambda v: v.stop(a.time))


def _kill(v: VM) -> None:
    if v.status != "running":  # docker kill refuses a container that is not running
        raise InvalidState(f"cannot kill VM {v.name}: it is {v.status}, not running")
    v.kill()


def cmd_kill(a: argparse.Namespace) -> int:
    return _each(a.names, _kill)


def cmd_rm(a: argparse.Namespace) -> int:
    return _each(a.names, lambda v: v.remove(force=a.force))


def cmd_exec(a: argparse.Namespace) -> int:
    from pycont.vm.machine import get

    if not a.command:
        raise UsageError("pycont vm exec: requires a VM and a command")
    v = get(a.vm)
    streams = {"stdout": sys.stdout, "stderr": sys.stderr}

    def show(stream: str, text: str) -> None:
        streams[stream].write(text)
        streams[stream].flush()

    # docker exec runs with the container's environment, -e on top: the same for a VM.
    env = {**v.config.env, **dict(e.split("=", 1) for e in a.env)}
    # Ctrl-C: the agent kills the command in the guest before KeyboardInterrupt reaches main().
    return v.exec(a.command, env=env, workdir=a.workdir, on_output=show).exit_code


def cmd_logs(a: argparse.Namespace) -> int:
    from pycont.vm.machine import get

    _write(get(a.vm).logs())
    return 0


def cmd_inspect(a: argparse.Namespace) -> int:
    from pycont.vm.machine import get

    return print_inspected(a.names, lambda n: vm_inspect(get(n)), a.format)


def cmd_prune(a: argparse.Namespace) -> int:
    from pycont.vm.machine import vms

    gone = []
    for v in vms(all=True):
        if v.status == "exited":
            with contextlib.suppress(PycontError, OSError):
                v.remove()
                gone.append(v.id)
    if gone:
        print("Deleted VMs:")
        print("\n".join(gone))
    print(f"Total: {len(gone)} VM{'s' if len(gone) != 1 else ''} removed")
    return 0


VM_VERBS: dict[str, Verb] = {
    "run": cmd_run,
    "ls": cmd_ls,
    "stop": cmd_stop,
    "kill": cmd_kill,
    "rm": cmd_rm,
    "exec": cmd_exec,
    "logs": cmd_logs,
    "inspect": cmd_inspect,
    "prune": cmd_prune,
}


def cmd_vm(a: argparse.Namespace) -> int:
    return VM_VERBS[a.vm_verb](a)


# -- parser ----------------------------------------------------------------------------------
def add_parsers(sub: Any) -> dict[str, Verb]:
    """Add the vm verb and its sub-verbs; returns verb name -> handler."""
    from pycont.cli._common import Parser

    p = sub.add_parser("vm", help="run images as VMs: run, ls, exec, logs, stop, kill, rm, ...")
    vsub = p.add_subparsers(dest="vm_verb", metavar="COMMAND", parser_class=Parser)
    vsub.required = True

    q = vsub.add_parser("run", help="boot an image as a VM and run a command in it")
    add_vm_run_flags(q)
    q.add_argument("image")
    q.add_argument("command", nargs=argparse.REMAINDER)

    q = vsub.add_parser("ls", help="list VMs")
    q.add_argument("-a", "--all", action="store_true", help="show all VMs, not only running")
    q.add_argument("-q", "--quiet", action="store_true", help="only ids")

    q = vsub.add_parser("stop", help="stop VMs: SIGTERM to the command, qemu killed after -t s")
    q.add_argument("-t", "--time", type=float, default=10.0)
    q.add_argument("names", nargs="+", metavar="VM")

    q = vsub.add_parser("kill", help="kill VMs' qemu (the guest gets no say)")
    q.add_argument("names", nargs="+", metavar="VM")

    q = vsub.add_parser("rm", help="remove VMs")
    q.add_argument("-f", "--force", action="store_true", help="kill a running VM first")
    q.add_argument("names", nargs="+", metavar="VM")

    q = vsub.add_parser("exec", help="run a command in a running VM (through its agent)")
    q.add_argument("-e", "--env", action="append", type=env_flag, default=[], metavar="KEY=VALUE")
    q.add_argument("-w", "--workdir")
    q.add_argument("vm")
    q.add_argument("command", nargs=argparse.REMAINDER)

    q = vsub.add_parser("logs", help="a VM's output (its serial console without pycont's marks)")
    q.add_argument("vm")

    q = vsub.add_parser("inspect", help="low-level information on VMs, as JSON")
    q.add_argument("-f", "--format", help="a template such as '{{.State.Pid}}'")
    q.add_argument("names", nargs="+", metavar="VM")

    vsub.add_parser("prune", help="remove every exited VM")

    return {"vm": cmd_vm}
