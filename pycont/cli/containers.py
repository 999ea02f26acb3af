"""The CLI's container verbs: run, exec, start, restart, ps, logs, stop, kill, rm, wait,
inspect, top.

Each verb is a few lines over pycont.runtime's Container: the CLI parses docker's flags and
prints docker's output; the runtime does the work.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from pycont.cli._common import (
    Verb,
    add_run_flags,
    add_user_flag,
    each,
    exit_reason,
    parse_signal,
    print_inspected,
    run_options,
    start_new,
    table,
)
from pycont.errors import ContainerNotFound, InvalidState, UsageError

if TYPE_CHECKING:
    from pycont.runtime.container import Container

# The CLI is a fresh, single-threaded process: it can fork the shim itself (the quickest way,
# see pycont.runtime.launcher); a notebook kernel, with its threads, must not.
VIA = "fork"

# Signals a terminal or a supervisor sends to the CLI that are meant for the container.
FORWARDED = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def attach(c: Container) -> int:
    """Wait for a container started attached to this terminal; return its exit code.

    The shim runs in our process group: a terminal's ^C reaches the container's process
    directly (so we ignore it here); a signal sent to the CLI alone is passed on."""
    shim = c.shim
    assert shim is not None, "attach() needs a container this process started"

    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(shim.pid, signum)

    for sig in FORWARDED:
        signal.signal(sig, forward)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    code = c.wait()
    reason = exit_reason(c)
    if reason:
        # docker prints nothing here (only `docker inspect` says OOMKilled): pycont says it.
        print(f"pycont: container {c.name} exited with code {code}: {reason}", file=sys.stderr)
    return code


# -- verbs ---------------------------------------------------------------------------------
def cmd_run(a: argparse.Namespace) -> int:
    narrate = (lambda line: print(f"[pycont] {line}", file=sys.stderr)) if a.narrate else False
    c = start_new(
        a.image,
        a.command or None,
        detach=a.detach,
        stdout=None,
        stderr=None,
        narrate=narrate,
        via=VIA,
        **run_options(a),
    )
    if a.detach:
        print(c.id)
        return 0
    return attach(c)


def cmd_exec(a: argparse.Namespace) -> int:
    import subprocess

    from pycont.runtime.container import ExecResult, get

    if not a.command:
        raise UsageError("pycont exec: requires a container and a command")
    c = get(a.container)
    proc = c.exec(
        a.command,
        env=a.env,
        workdir=a.workdir,
        user=a.user,
        stdin=None if a.interactive else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL if a.detach else None,
        stderr=subprocess.DEVNULL if a.detach else None,
        wait=False,
        via=VIA,
    )
    assert not isinstance(proc, ExecResult)
    if a.detach:
        return 0
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return proc.wait()


def status_text(rec: Any) -> str:
    """docker ps's STATUS column: ``Up 5 seconds``, ``Exited (0) 3 seconds ago``."""
    from pycont.format import ago

    if rec.status == "running":
        return f"Up {ago(rec.started_at)}"
    if rec.status == "paused":
        return f"Up {ago(rec.started_at)} (Paused)"
    if rec.status == "exited":
        return f"Exited ({rec.exit_code}) {ago(rec.finished_at or rec.created)} ago"
    if rec.status == "dead":
        return f"Dead ({rec.error})" if rec.error else "Dead"
    return "Created"


def cmd_ps(a: argparse.Namespace) -> int:
    from pycont.format import ago
    from pycont.runtime.container import containers

    rows = []
    for c in containers(all=a.all):
        try:
            rec, published = c.state(), c.ports()
        except ContainerNotFound:
            continue
        if a.quiet:
            print(c.short_id)
            continue
        try:
            cfg = c.config
            image, args, name = cfg.image, cfg.args, cfg.name
        except InvalidState:  # dead: its config cannot be read; the status says why
            image, args, name = "<unknown>", [], ""
        except ContainerNotFound:
            continue
        cmd = " ".join(args)
        cmd = f'"{cmd[:20]}…"' if len(cmd) > 20 else f'"{cmd}"'
        ports = ", ".join(
            f"{b.host_ip or '0.0.0.0'}:{b.host_port}->{b.container_port}/{b.proto}"
            for b in published
        )
        rows.append(
            (c.short_id, image, cmd, f"{ago(rec.created)} ago", status_text(rec), ports, name)
        )
    if not a.quiet:
        table(("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"), rows)
    return 0


def cmd_container(a: argparse.Namespace) -> int:
    """``container prune|ls|rm``: docker's management-command spellings."""
    if a.container_verb == "prune":
        if not a.force:
            print(
                "WARNING! This removes all stopped containers (use -f to skip this note)",
                file=sys.stderr,
            )
        from pycont.runtime.api import prune

        removed = prune()
        if removed:
            print("Deleted Containers:")
            for cid in removed:
                print(cid)
        print("Total reclaimed space: 0B")  # docker's last line; the layers go with rmi
        return 0
    if a.container_verb in ("ls", "ps"):
        return cmd_ps(a)
    return cmd_rm(a)


def cmd_logs(a: argparse.Namespace) -> int:
    from pycont.runtime.container import get

    c = get(a.container)
    if not c.config.detach:
        raise UsageError(
            f"container {c.name} was not detached: its output went to the terminal that ran it"
        )
    for line in c.logs(follow=a.follow):
        sys.stdout.write(line)
        sys.stdout.flush()
    return 0


def _start_unattached(c: Container) -> None:
    """Start ``c`` and return, as ``docker start`` without ``-a``: a container first run
    attached has no terminal to write to now, so its output goes nowhere (a detached one's
    goes to its log, whatever is given here)."""
    import subprocess

    quiet = subprocess.DEVNULL
    c.start(stdin=quiet, stdout=quiet, stderr=quiet, via=VIA)


def cmd_start(a: argparse.Namespace) -> int:
    if a.attach:
        if len(a.containers) != 1:
            raise UsageError("start: --attach takes one container")
        from pycont.runtime.container import get

        c = get(a.containers[0])
        c.start(via=VIA)
        return attach(c)

    def start(c: Container) -> None:
        if c.status != "running":  # docker: starting a running one does nothing but say so
            _start_unattached(c)

    return each(a.containers, start)


def cmd_restart(a: argparse.Namespace) -> int:
    if a.time < 0:
        raise UsageError(f"invalid --time {a.time}: must be >= 0")

    def restart(c: Container) -> None:
        # docker restart is stop, then start. Not Container.restart(): it takes no stdio, and
        # its start would hand this terminal to a container that outlives the command.
        c.stop(a.time)
        _start_unattached(c)

    return each(a.containers, restart)


def cmd_stop(a: argparse.Namespace) -> int:
    if a.time < 0:
        raise UsageError(f"invalid --time {a.time}: must be >= 0")
    return each(a.containers, lambda c: (c.stop(a.time), None)[1])


def cmd_kill(a: argparse.Namespace) -> int:
    sig = parse_signal(a.signal)
    return each(a.containers, lambda c: c.kill(sig))


def cmd_rm(a: argparse.Namespace) -> int:
    return each(a.containers, lambda c: c.remove(force=a.force))


def cmd_wait(a: argparse.Namespace) -> int:
    return each(a.containers, lambda c: c.wait())


def cmd_inspect(a: argparse.Namespace) -> int:
    from pycont.cli.images import image_inspect
    from pycont.runtime.container import get

    def lookup(name: str) -> dict[str, Any]:
        try:
            return get(name).inspect()
        except ContainerNotFound:
            return image_inspect(name)  # docker inspect also finds images

    return print_inspected(a.containers, lookup, a.format)


def cmd_top(a: argparse.Namespace) -> int:
    from pycont.runtime.container import get

    c = get(a.container)
    if c.status != "running":
        raise InvalidState(f"container {c.name or c.short_id} is not running")
    table(
        ("PID", "PID IN CONTAINER", "CMD"),
        [(str(p["pid"]), str(p["nspid"]), p["cmd"]) for p in c.processes()],
    )
    return 0


# -- parser --------------------------------------------------------------------------------
def add_parsers(sub: Any) -> dict[str, Verb]:
    """Add the container verbs; returns verb name -> handler."""
    p = sub.add_parser("run", help="create and start a container", add_help=False)
    add_run_flags(p)
    p.add_argument("image")
    p.add_argument("command", nargs=argparse.REMAINDER)

    p = sub.add_parser("exec", help="run a command in a running container")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("-w", "--workdir")
    add_user_flag(p)
    p.add_argument("container")
    p.add_argument("command", nargs=argparse.REMAINDER)

    p = sub.add_parser("start", help="start created or exited containers again")
    p.add_argument(
        "-a", "--attach", action="store_true", help="attach its output and wait for its exit"
    )
    p.add_argument("containers", nargs="+")

    p = sub.add_parser(
        "restart", help="stop containers (SIGTERM, SIGKILL after -t s) and start them again"
    )
    p.add_argument("-t", "--time", type=float, default=10.0)
    p.add_argument("containers", nargs="+")

    p = sub.add_parser("ps", help="list containers")
    p.add_argument("-a", "--all", action="store_true", help="show all containers, not only running")
    p.add_argument("-q", "--quiet", action="store_true", help="only ids")

    p = sub.add_parser("logs", help="show a detached container's output")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("container")

    p = sub.add_parser("stop", help="stop containers: SIGTERM, then SIGKILL after -t seconds")
    p.add_argument("-t", "--time", type=float, default=10.0)
    p.add_argument("containers", nargs="+")

    p = sub.add_parser("kill", help="send a signal to containers (default SIGKILL)")
    p.add_argument("-s", "--signal", default="KILL")
    p.add_argument("containers", nargs="+")

    p = sub.add_parser("rm", help="remove containers")
    p.add_argument("-f", "--force", action="store_true", help="kill a running container first")
    p.add_argument("containers", nargs="+")

    p = sub.add_parser("wait", help="wait for containers to exit and print their exit codes")
    p.add_argument("containers", nargs="+")

    p = sub.add_parser("inspect", help="low-level information on containers, as JSON")
    p.add_argument("-f", "--format", help="a template such as '{{.State.Pid}}'")
    p.add_argument("containers", nargs="+")

    p = sub.add_parser("top", help="the processes of a container, host pid and pid inside")
    p.add_argument("container")

    p = sub.add_parser("container", help="manage containers: ls, rm, prune")
    csub = p.add_subparsers(dest="container_verb", metavar="COMMAND")
    csub.required = True
    q = csub.add_parser("prune", help="remove every stopped (exited or dead) container")
    q.add_argument("-f", "--force", action="store_true", help="do not print the warning")
    for verb in ("ls", "ps"):
        q = csub.add_parser(verb, help="list containers")
        q.add_argument("-a", "--all", action="store_true")
        q.add_argument("-q", "--quiet", action="store_true")
    q = csub.add_parser("rm", help="remove containers")
    q.add_argument("-f", "--force", action="store_true", help="kill a running container first")
    q.add_argument("containers", nargs="+")

    return {
        "container": cmd_container,
        "run": cmd_run,
        "exec": cmd_exec,
        "start": cmd_start,
        "restart": cmd_restart,
        "ps": cmd_ps,
        "logs": cmd_logs,
        "stop": cmd_stop,
        "kill": cmd_kill,
        "rm": cmd_rm,
        "wait": cmd_wait,
        "inspect": cmd_inspect,
        "top": cmd_top,
    }
