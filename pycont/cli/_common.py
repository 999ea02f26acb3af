"""What every group of verbs shares: the parser class, docker's flags, the table printer.

docker's output conventions live here once: a table of left-aligned columns three spaces
apart, ``Error response from daemon: ...`` for one failed name among several, Go templates
for ``inspect -f``.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from pycont.errors import ContainerNotFound, PycontError, UsageError

if TYPE_CHECKING:
    from pycont.runtime.container import Container

PROG = "pycont"

Verb = Callable[[argparse.Namespace], int]


class Parser(argparse.ArgumentParser):
    """argparse that reports bad usage as a UsageError (one line, exit 125) instead of exit 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


# -- flags ---------------------------------------------------------------------------------
def add_limit_flags(p: argparse.ArgumentParser) -> None:
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
    """The limit flags that were given, as keyword arguments for create() or update()."""
    from pycont.runtime.container import LIMIT_OPTIONS

    return {k: getattr(a, k) for k in LIMIT_OPTIONS if getattr(a, k, None) is not None}


def add_user_flag(p: argparse.ArgumentParser) -> None:
    """docker's ``-u/--user`` (run, create and exec)."""
    p.add_argument(
        "-u",
        "--user",
        metavar="name|uid[:group|gid]",
        help="run as this user, looked up in the container's /etc/passwd (default: the "
        "image's USER, else root)",
    )


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """``docker run``'s flags (shared with ``%%container``), up to the image."""
    add_limit_flags(p)
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("-d", "--detach", action="store_true", help="run in the background")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    p.add_argument("--name", help="assign a name to the container")
    p.add_argument("-h", "--hostname", help="container host name")
    p.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("-w", "--workdir", help="working directory inside the container")
    add_user_flag(p)
    p.add_argument(
        "-v",
        "--volume",
        action="append",
        default=[],
        dest="volumes",
        metavar="NAME:/path or /host:/path[:ro]",
        help="mount a volume or a host dir",
    )
    p.add_argument(
        "--network",
        "--net",
        dest="network",
        default=None,
        metavar="NETWORK",
        help="bridge (default, as root), none (loopback only), host, container:NAME, or a "
        "network made with `pycont network create`",
    )
    p.add_argument(
        "--network-alias",
        action="append",
        default=[],
        dest="network_aliases",
        metavar="ALIAS",
        help="another name of the container on its user-defined network",
    )
    p.add_argument(
        "-p",
        "--publish",
        action="append",
        default=[],
        metavar="[IP:][HOSTPORT:]PORT[/PROTO]",
        help="publish a container's port on the host (a random host port when not given)",
    )
    p.add_argument(
        "-P",
        "--publish-all",
        action="store_true",
        help="publish every port the image EXPOSEs, on random host ports",
    )
    p.add_argument("--dns", action="append", default=[], metavar="IP", help="a DNS server")
    p.add_argument(
        "--add-host",
        action="append",
        default=[],
        metavar="NAME:IP",
        help="a line of the container's /etc/hosts",
    )
    p.add_argument(
        "--network-rate",
        metavar="RATE",
        help="pycont's own, not docker's: cap the container's bandwidth each way with a tc "
        "token bucket (tbf), e.g. 1mbit",
    )
    p.add_argument(
        "--network-latency",
        metavar="DELAY",
        help="pycont's own, not docker's: delay the container's packets with tc netem, e.g. 50ms",
    )
    p.add_argument("-l", "--label", action="append", default=[], dest="labels", metavar="KEY=VALUE")
    for flag, dest in (
        ("--pid", "pid"),
        ("--ipc", "ipc"),
        ("--uts", "uts"),
        ("--userns", "userns"),
        ("--cgroupns", "cgroupns"),
    ):
        p.add_argument(
            flag,
            dest=dest,
            default=None,
            metavar="host|private",
            help=f"{dest} namespace: 'host' shares the host's"
            + (" (default: host as root, as docker)" if dest == "userns" else ""),
        )
    p.add_argument(
        "--cap-add",
        action="append",
        default=[],
        metavar="CAP",
        help="add a capability to Docker's default 14 (ALL for every one)",
    )
    p.add_argument(
        "--cap-drop",
        action="append",
        default=[],
        metavar="CAP",
        help="drop a capability (ALL for every one)",
    )
    p.add_argument(
        "--privileged",
        action="store_true",
        help="every capability, no seccomp filter, no masked paths (docker's meaning)",
    )
    p.add_argument(
        "--security-opt",
        action="append",
        default=[],
        metavar="OPT",
        help="seccomp=unconfined|PROFILE.json, no-new-privileges",
    )
    p.add_argument("--read-only", action="store_true", help="mount the root read-only")
    p.add_argument(
        "--narrate",
        action="store_true",
        help="print each namespace/mount syscall as it is made (pycont only)",
    )
    p.add_argument("--help", action="help", help="show this help")


def run_options(a: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of pycont.runtime's create()/run() that ``docker run``'s flags
    give, limits included (the image and the command aside)."""
    return {
        "name": a.name,
        "hostname": a.hostname,
        "env": a.env,
        "workdir": a.workdir,
        "user": a.user,
        "interactive": a.interactive,
        "rm": a.rm,
        "pid": a.pid,
        "network": a.network,
        "ipc": a.ipc,
        "uts": a.uts,
        "userns": a.userns,
        "cgroupns": a.cgroupns,
        "volumes": a.volumes,
        "cap_add": a.cap_add,
        "cap_drop": a.cap_drop,
        "privileged": a.privileged,
        "security_opt": a.security_opt,
        "read_only": a.read_only,
        "network_aliases": a.network_aliases,
        "publish": a.publish,
        "publish_all": a.publish_all,
        "dns": a.dns,
        "add_host": a.add_host,
        "network_rate": a.network_rate,
        "network_latency": a.network_latency,
        "labels": a.labels,
        **limit_options(a),
    }


def parse_signal(text: str) -> int:
    """A signal as kill(1) takes it: ``TERM``, ``SIGTERM``, ``term`` or ``15``."""
    t = text.upper().removeprefix("SIG")
    if t.isdigit() and 0 < int(t) < signal.NSIG:
        return int(t)
    try:
        return int(signal.Signals["SIG" + t])
    except KeyError:
        raise UsageError(
            f"invalid signal {text!r}: use a name (TERM, KILL, HUP) or a number"
        ) from None


def exit_reason(c: Container) -> str:
    """Why the container ended, when its exit code alone does not say: an OOM kill shows as
    a bare 137 (128 + SIGKILL), the same as ``docker kill``; the cgroup's OOM counter
    (memory.oom_control, memory.events) tells them apart."""
    from pycont.format import binary_size

    try:
        if not c.state().oom_killed:
            return ""
        memory = c.limits().memory
    except ContainerNotFound:
        return ""
    limit = f" (memory limit {binary_size(memory)})" if memory else ""
    return f"killed by the kernel's OOM killer{limit}"


def start_new(
    image: str,
    command: Sequence[str] | None,
    *,
    detach: bool,
    stdout: Any,
    stderr: Any,
    narrate: Any,
    via: str | None,
    **options: Any,
) -> Container:
    """pycont.runtime's run() without the wait: ``docker run`` up to the point where the
    caller streams the output or waits for the exit."""
    from pycont.runtime.container import run

    return run(
        image,
        command,
        detach=detach,
        stdout=stdout,
        stderr=stderr,
        narrate=narrate,
        via=via,
        wait=False,
        **options,
    )


def with_containers() -> None:
    """Load the runtime: it tells the image store which images containers still use."""
    import pycont.runtime.container  # noqa: F401


# -- output --------------------------------------------------------------------------------
def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print docker's kind of table: left-aligned columns three spaces apart."""
    cells = [tuple(header), *(tuple(r) for r in rows)]
    widths = [max(len(str(r[i])) for r in cells) for i in range(len(header))]
    for r in cells:
        print("   ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def created_ago(ts: float) -> str:
    """docker's CREATED column: ``5 minutes ago``, or ``N/A`` for an unknown time."""
    from pycont.format import ago

    return f"{ago(ts)} ago" if ts else "N/A"


def each(
    names: Sequence[str],
    action: Callable[[Any], object],
    find: Callable[[str], Any] | None = None,
) -> int:
    """Apply ``action`` to each named container (or what ``find`` finds by name: a VM), print
    what it returns (the name when None); like docker, go on after an error and exit 1."""
    if find is None:
        from pycont.runtime.container import get

        find = get
    rc = 0
    for name in names:
        try:
            out = action(find(name))
            print(name if out is None else out)
        except PycontError as err:
            print(f"Error response from daemon: {err}", file=sys.stderr)
            rc = 1
    return rc


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


def print_inspected(
    names: Sequence[str], lookup: Callable[[str], dict[str, Any]], fmt: str | None
) -> int:
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
