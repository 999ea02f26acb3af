"""``pycont-oci``: the OCI runtime command line (runtime.md's operations, runc's flags).

podman drives it through conmon: ``podman --runtime .venv/bin/pycont-oci run ...``. Global
options come before the verb (``--root DIR --log FILE --log-format json --systemd-cgroup``);
an error is one line on stderr and exit status 1, as runc does.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Sequence

from pycont.errors import PycontError, UsageError
from pycont.oci.state import DEFAULT_ROOT, OCI_VERSION

__all__ = ["main"]

PROG = "pycont-oci"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="An OCI runtime made with pycont's engine.")
    p.add_argument("--root", default=DEFAULT_ROOT, help="state directory (%(default)s)")
    p.add_argument("--log", help="also write errors to this file")
    p.add_argument("--log-format", default="text", choices=("text", "json"))
    p.add_argument("--systemd-cgroup", action="store_true", help="cgroupsPath is slice:prefix:name")
    p.add_argument("--debug", action="store_true")
    p.add_argument("--rootless", default="auto")
    p.add_argument("-v", "--version", action="store_true")
    sub = p.add_subparsers(dest="verb", metavar="COMMAND")

    c = sub.add_parser("create", help="create a container, waiting for start")
    c.add_argument("-b", "--bundle", default=".")
    c.add_argument("--pid-file")
    c.add_argument("--console-socket")
    c.add_argument("--no-pivot", action="store_true")
    c.add_argument("--no-new-keyring", action="store_true")
    c.add_argument("--preserve-fds", type=int, default=0)
    c.add_argument("id")

    for verb, what in (
        ("start", "run the created container's process"),
        ("state", "print the container's state as JSON"),
        ("pause", "freeze every process of the container"),
        ("resume", "thaw a paused container"),
    ):
        s = sub.add_parser(verb, help=what)
        s.add_argument("id")

    k = sub.add_parser("kill", help="send a signal to the container's init (default TERM)")
    k.add_argument("-a", "--all", action="store_true")
    k.add_argument("id")
    k.add_argument("signal", nargs="?", default="TERM")

    d = sub.add_parser("delete", help="remove a stopped container (--force: any)")
    d.add_argument("-f", "--force", action="store_true")
    d.add_argument("id")

    sub.add_parser("features", help="what this runtime supports, as JSON")

    e = sub.add_parser("exec", help="run one more process in the container")
    e.add_argument("-p", "--process")
    e.add_argument("--pid-file")
    e.add_argument("-d", "--detach", action="store_true")
    e.add_argument("-t", "--tty", action="store_true")
    e.add_argument("--console-socket")
    e.add_argument("--preserve-fds", type=int, default=0)
    e.add_argument("--process-label")
    e.add_argument("--apparmor")
    e.add_argument("--no-new-privs", action="store_true")
    e.add_argument("id")
    e.add_argument("command", nargs=argparse.REMAINDER)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = None
    try:
        args = _parser().parse_args(argv)
        return _run(args)
    except (PycontError, OSError) as err:
        _error(str(err), args)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader of our output went away (| head)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.version:
        print(f"{PROG} version 0.1\nspec: {OCI_VERSION}")
        return 0
    verb = args.verb
    if verb is None:
        raise UsageError("a command is required: create, start, state, kill, delete, exec")
    if verb == "create":
        from pycont.oci.create import create

        if args.preserve_fds:
            raise UsageError("--preserve-fds is not supported")
        create(
            args.root, args.id, args.bundle, args.pid_file, args.console_socket, args.systemd_cgroup
        )
    elif verb == "start":
        from pycont.oci.lifecycle import start

        start(args.root, args.id)
    elif verb == "state":
        from pycont.oci.lifecycle import state

        print(json.dumps(state(args.root, args.id), indent=2))
    elif verb == "kill":
        from pycont.oci.lifecycle import kill, parse_signal

        kill(args.root, args.id, parse_signal(args.signal), args.all)
    elif verb == "delete":
        from pycont.oci.lifecycle import delete

        delete(args.root, args.id, args.force)
    elif verb in ("pause", "resume"):
        from pycont.oci import lifecycle

        (lifecycle.pause if verb == "pause" else lifecycle.resume)(args.root, args.id)
    elif verb == "features":
        from pycont.oci.features import features

        print(json.dumps(features(), indent=2))
    elif verb == "exec":
        return _exec(args)
    return 0


def _exec(args: argparse.Namespace) -> int:
    from pycont.oci.execin import exec_in, load_process
    from pycont.oci.state import StateDir

    if args.preserve_fds:
        raise UsageError("--preserve-fds is not supported")
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    sd = StateDir(args.root, args.id)
    sd.load()  # ContainerNotFound before anything else
    config = sd.config() if not args.process else {}
    proc = load_process(args.process, command, config)
    if args.tty and not proc.terminal:
        from dataclasses import replace

        proc = replace(proc, terminal=True)
    return exec_in(args.root, args.id, proc, args.pid_file, args.detach, args.console_socket)


def _error(msg: str, args: argparse.Namespace | None) -> None:
    print(f"{PROG}: {msg}", file=sys.stderr)
    log = getattr(args, "log", None)
    if not log:
        return
    now = datetime.datetime.now(datetime.UTC).isoformat()
    if getattr(args, "log_format", "text") == "json":
        line = json.dumps({"level": "error", "msg": msg, "time": now})
    else:
        line = f'time="{now}" level=error msg="{msg}"'
    try:
        with open(log, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
