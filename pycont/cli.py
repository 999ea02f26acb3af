"""``pycont``: a docker-like command line over the Python API.

Verbs and flags follow docker's where docker has them, so a docker user needs no manual.
Errors print one line on stderr; exit codes are docker's: 125 for pycont's own errors, 126 when
the command cannot be executed, 127 when it is not found, otherwise the container's own code.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from pycont.errors import ContainerNotFound, InvalidState, PycontError, StartError, UsageError

PROG = "pycont"


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad usage as a UsageError (one line, exit 125) instead of exit 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _add_limit_flags(p: argparse.ArgumentParser) -> None:
    """docker's resource flags, kept as text: pycont.cgroups.units parses them in one place."""
    p.add_argument("-m", "--memory", help="memory limit, e.g. 64m, 1.5g")
    p.add_argument("--memory-swap", help="memory plus swap limit; -1 for unlimited swap")
    p.add_argument("--memory-reservation", help="memory soft limit")
    p.add_argument("--cpus", help="number of CPUs, e.g. 0.5")
    p.add_argument("-c", "--cpu-shares", help="CPU shares (relative weight, default 1024)")
    p.add_argument("--cpuset-cpus", help="CPUs allowed, e.g. 0-1 or 0,1")
    p.add_argument("--pids-limit", help="maximum number of processes (-1: unlimited)")
    p.add_argument(
        "--device-read-bps",
        action="append",
        metavar="DEV:RATE",
        help="limit read rate from a device, e.g. /dev/vda:1mb",
    )
    p.add_argument(
        "--device-write-bps",
        action="append",
        metavar="DEV:RATE",
        help="limit write rate to a device",
    )
    p.add_argument("--blkio-weight", help="block I/O weight, 10 to 1000")


def limit_options(a: argparse.Namespace) -> dict[str, Any]:
    from pycont.runtime.container import LIMIT_OPTIONS

    return {k: getattr(a, k) for k in LIMIT_OPTIONS if getattr(a, k, None) is not None}


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    _add_limit_flags(p)
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("-d", "--detach", action="store_true", help="run in the background")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("--name", help="assign a name to the container")
    p.add_argument("-h", "--hostname", help="container host name")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("-w", "--workdir", help="working directory inside the container")
    p.add_argument(
        "-v",
        "--volume",
        action="append",
        default=[],
        dest="volumes",
        metavar="NAME:/path or /host:/path[:ro]",
        help="mount a volume or a host dir",
    )
    for flag, dest in (
        ("--pid", "pid"),
        ("--network", "network"),
        ("--net", "network"),
        ("--ipc", "ipc"),
        ("--uts", "uts"),
        ("--userns", "userns"),
        ("--cgroupns", "cgroupns"),
    ):
        p.add_argument(
            flag,
            dest=dest,
            default="private",
            metavar="host|private",
            help=f"{dest} namespace: 'host' shares the host's",
        )
    p.add_argument(
        "--narrate",
        action="store_true",
        help="print each namespace/mount syscall as it is made (pycont only)",
    )
    p.add_argument("--help", action="help", help="show this help")


class _Unused:
    """Stands for the parser of a verb this run does not use: every call is a no-op."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: self


class _OnlyVerb:
    """Subparsers that build only the verb being run: argparse spends more time building
    forty subparsers (and looking up their translations) than pycont spends running a
    container, so ``pycont run`` builds just ``run``."""

    def __init__(self, real: Any, only: str | None) -> None:
        self.real = real
        self.only = only

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if self.only is None or name == self.only:
            return self.real.add_parser(name, **kwargs)
        return _Unused()


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The CLI's parser; with ``only``, just that verb's subparser is built."""
    parser = _Parser(prog=PROG, description="A small, real container runtime.")
    parser.add_argument("--version", action="version", version="pycont 0.1.0")
    real_sub = parser.add_subparsers(dest="verb", metavar="COMMAND", parser_class=_Parser)
    sub: Any = _OnlyVerb(real_sub, only)
    real_sub.required = True

    p = sub.add_parser("run", help="create and start a container", add_help=False)
    _add_run_flags(p)
    p.add_argument("image")
    p.add_argument("command", nargs=argparse.REMAINDER)

    p = sub.add_parser("exec", help="run a command in a running container")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("-d", "--detach", action="store_true")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("-w", "--workdir")
    p.add_argument("container")
    p.add_argument("command", nargs=argparse.REMAINDER)

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

    p = sub.add_parser("update", help="change the resource limits of containers, live")
    _add_limit_flags(p)
    p.add_argument("containers", nargs="+")

    p = sub.add_parser("stats", help="live CPU, memory, network, block I/O and pids of containers")
    p.add_argument("--no-stream", action="store_true", help="print one reading and exit")
    p.add_argument("-a", "--all", action="store_true", help="all containers (default: running)")
    p.add_argument("containers", nargs="*")

    for verb, what in (("pause", "freeze"), ("unpause", "thaw")):
        p = sub.add_parser(verb, help=f"{what} every process of containers (the freezer)")
        p.add_argument("containers", nargs="+")

    sub.add_parser("doctor", help="what this machine allows pycont to do, and why")

    from pycont.cli_images import add_parsers

    VERBS.update(add_parsers(sub))
    return parser


# -- verbs ---------------------------------------------------------------------------------
def cmd_run(a: argparse.Namespace) -> int:
    from pycont.runtime.container import create

    if a.detach and a.rm:
        pass  # docker allows --rm with -d: removed when it exits
    c = create(
        a.image,
        a.command or None,
        name=a.name,
        hostname=a.hostname,
        env=a.env,
        workdir=a.workdir,
        detach=a.detach,
        interactive=a.interactive,
        rm=a.rm,
        pid=a.pid,
        network=a.network,
        ipc=a.ipc,
        uts=a.uts,
        userns=a.userns,
        cgroupns=a.cgroupns,
        narrate=a.narrate,
        volumes=a.volumes,
        **limit_options(a),
    )
    narrate = (lambda line: print(f"[pycont] {line}", file=sys.stderr)) if a.narrate else False
    c._how = "fork"  # this process is fresh and single-threaded: fork the shim, no new interpreter
    try:
        c.start(narrate=narrate)
    except StartError:
        raise  # kept as an exited container, as docker does (gone with --rm)
    except BaseException:
        with contextlib.suppress(ContainerNotFound):
            c.remove(force=True)
        raise
    if a.detach:
        print(c.id)
        return 0
    # The helper runs in our process group: a terminal's ^C reaches the container's process
    # directly; a SIGTERM sent to us is passed on to it.
    proc = c._proc
    assert proc is not None

    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signum)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, forward)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return proc.wait()


def cmd_exec(a: argparse.Namespace) -> int:
    import subprocess

    from pycont.runtime.container import ExecResult, get

    c = get(a.container)
    c._how = "fork"
    proc = c.exec(
        a.command,
        env=a.env,
        workdir=a.workdir,
        stdin=None if a.interactive else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL if a.detach else None,
        stderr=subprocess.DEVNULL if a.detach else None,
        wait=False,
    )
    assert not isinstance(proc, ExecResult)
    if a.detach:
        return 0
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return proc.wait()


def _ago(ts: float) -> str:
    d = max(0.0, time.time() - ts)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if d >= size:
            n = int(d // size)
            return f"{n} {unit}{'s' if n > 1 else ''}"
    n = int(d)
    return "Less than a second" if n < 1 else f"{n} second{'s' if n > 1 else ''}"


def status_text(rec: Any) -> str:
    """docker ps's STATUS column: ``Up 5 seconds``, ``Exited (0) 3 seconds ago``."""
    if rec.status == "running":
        return f"Up {_ago(rec.started_at)}"
    if rec.status == "paused":
        return f"Up {_ago(rec.started_at)} (Paused)"
    if rec.status == "exited":
        return f"Exited ({rec.exit_code}) {_ago(rec.finished_at or rec.created)} ago"
    return "Created"


def cmd_ps(a: argparse.Namespace) -> int:
    from pycont.runtime.container import containers

    rows = []
    for c in containers(all=a.all):
        try:
            rec, cfg = c.state(), c.config
        except ContainerNotFound:
            continue
        if a.quiet:
            print(c.short_id)
            continue
        cmd = " ".join(cfg.args)
        cmd = f'"{cmd[:20]}…"' if len(cmd) > 20 else f'"{cmd}"'
        rows.append(
            (c.short_id, cfg.image, cmd, f"{_ago(rec.created)} ago", status_text(rec), cfg.name)
        )
    if not a.quiet:
        _table(("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"), rows)
    return 0


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    table = [tuple(header), *(tuple(r) for r in rows)]
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
    for r in table:
        print("   ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


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


def _each(names: Sequence[str], action: Any) -> int:
    """Apply ``action`` to each container; like docker, go on after an error and exit 1."""
    from pycont.runtime.container import get

    rc = 0
    for name in names:
        try:
            out = action(get(name))
            print(name if out is None else out)
        except PycontError as err:
            print(f"Error response from daemon: {err}", file=sys.stderr)
            rc = 1
    return rc


def cmd_stop(a: argparse.Namespace) -> int:
    if a.time < 0:
        raise UsageError(f"invalid --time {a.time}: must be >= 0")
    return _each(a.containers, lambda c: (c.stop(a.time), None)[1])


def parse_signal(text: str) -> int:
    t = text.upper().removeprefix("SIG")
    if t.isdigit() and 0 < int(t) < signal.NSIG:
        return int(t)
    try:
        return int(signal.Signals["SIG" + t])
    except KeyError:
        raise UsageError(
            f"invalid signal {text!r}: use a name (TERM, KILL, HUP) or a number"
        ) from None


def cmd_kill(a: argparse.Namespace) -> int:
    sig = parse_signal(a.signal)
    return _each(a.containers, lambda c: c.kill(sig))


def cmd_rm(a: argparse.Namespace) -> int:
    return _each(a.containers, lambda c: c.remove(force=a.force))


def cmd_wait(a: argparse.Namespace) -> int:
    return _each(a.containers, lambda c: c.wait())


_TEMPLATE = re.compile(r"\{\{\s*(json\s+)?\.([A-Za-z0-9_.]*)\s*\}\}")


def render_format(fmt: str, data: dict[str, Any]) -> str:
    """The small part of Go templates that ``inspect -f`` needs: ``{{.A.B}}``, ``{{json .A}}``."""

    def sub(m: re.Match[str]) -> str:
        value: Any = data
        for key in filter(None, m.group(2).split(".")):
            if not isinstance(value, dict) or key not in value:
                raise UsageError(f"template {fmt!r}: no field {key!r}")
            value = value[key]
        if m.group(1):
            return json.dumps(value)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            return "[" + " ".join(map(str, value)) + "]"
        return "<no value>" if value is None else str(value)

    return _TEMPLATE.sub(sub, fmt)


def print_inspected(names: Sequence[str], lookup: Any, fmt: str | None) -> int:
    """docker inspect's output: a JSON list, or one rendered template per object; a name
    that does not resolve prints an error and makes the exit code 1, the others still print."""
    found, rc = [], 0
    for name in names:
        try:
            found.append(lookup(name))
        except PycontError as err:
            print(f"Error: {err}", file=sys.stderr)
            rc = 1
    if fmt:
        for d in found:
            print(render_format(fmt, d))
    else:
        print(json.dumps(found, indent=4))
    return rc


def cmd_inspect(a: argparse.Namespace) -> int:
    from pycont.cli_images import image_inspect
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
        raise InvalidState(f"container {c.name} is not running")
    _table(
        ("PID", "PID IN CONTAINER", "CMD"),
        [(str(p["pid"]), str(p["nspid"]), p["cmd"]) for p in c.processes()],
    )
    return 0


def cmd_update(a: argparse.Namespace) -> int:
    opts = limit_options(a)
    if not opts:
        raise UsageError("update: give at least one limit flag, e.g. --cpus 1 or -m 128m")
    return _each(a.containers, lambda c: (c.update(**opts), None)[1])


def cmd_pause(a: argparse.Namespace) -> int:
    return _each(a.containers, lambda c: c.pause())


def cmd_unpause(a: argparse.Namespace) -> int:
    return _each(a.containers, lambda c: c.unpause())


def cmd_stats(a: argparse.Namespace) -> int:
    from pycont.stats_table import stats_loop

    return stats_loop(a.containers, stream=not a.no_stream, all=a.all)


def cmd_doctor(a: argparse.Namespace) -> int:
    from pycont.doctor import doctor_text
    from pycont.kernel.probe import probe

    print(doctor_text(probe()))
    return 0


VERBS = {
    "run": cmd_run,
    "exec": cmd_exec,
    "ps": cmd_ps,
    "logs": cmd_logs,
    "stop": cmd_stop,
    "kill": cmd_kill,
    "rm": cmd_rm,
    "wait": cmd_wait,
    "inspect": cmd_inspect,
    "top": cmd_top,
    "update": cmd_update,
    "stats": cmd_stats,
    "pause": cmd_pause,
    "unpause": cmd_unpause,
    "doctor": cmd_doctor,
}

# Every verb, this module's and cli_images', so a run can build only its own parser.
VERB_NAMES = frozenset(VERBS) | frozenset(__import__("pycont.cli_images").cli_images.VERB_NAMES)


def _verb_of(args: Sequence[str]) -> str | None:
    """The verb, when it is a known one and comes first; None means: build every verb."""
    if args and args[0] in VERB_NAMES:
        return args[0]
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        ns = build_parser(_verb_of(args)).parse_args(args)
        if ns.verb in ("run", "exec") and ns.verb == "exec" and not ns.command:
            raise UsageError("pycont exec: requires a container and a command")
        return int(VERBS[ns.verb](ns) or 0)
    except PycontError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
