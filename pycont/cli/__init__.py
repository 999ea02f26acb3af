"""``pycont``: a docker-like command line over the Python API.

Verbs and flags follow docker's where docker has them, so a docker user needs no manual.
Errors print one line on stderr; exit codes are docker's: 125 for pycont's own errors, 126 when
the command cannot be executed, 127 when it is not found, otherwise the container's own code.

One module per group of verbs (containers, resources, images, volumes, system), all built on
:mod:`pycont.cli._common`; this module only picks the verb's module and runs it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from pycont.cli._common import (
    PROG,
    Parser,
    Verb,
    add_limit_flags,
    add_run_flags,
    exit_reason,
    limit_options,
    run_options,
    start_new,
)
from pycont.errors import PycontError

__all__ = [
    "PROG",
    "VERB_NAMES",
    "VERBS",
    "Parser",
    "add_limit_flags",
    "add_run_flags",
    "build_parser",
    "exit_reason",
    "limit_options",
    "main",
    "run_options",
    "start_new",
]

# Which module holds each verb, in the order `pycont --help` lists them. Written out rather
# than found by importing every module, so that a run imports only its own verb's module.
GROUPS: dict[str, tuple[str, ...]] = {
    "containers": (
        "run",
        "exec",
        "start",
        "restart",
        "ps",
        "logs",
        "stop",
        "kill",
        "rm",
        "wait",
        "inspect",
        "top",
        "container",
    ),
    "resources": ("update", "stats", "pause", "unpause"),
    "images": (
        "images",
        "history",
        "tag",
        "rmi",
        "image",
        "commit",
        "diff",
        "pull",
        "push",
        "save",
        "load",
    ),
    "build": ("build", "builder"),
    "volumes": ("volume",),
    "network": ("network", "port"),
    "compose": ("compose",),
    "vms": ("vm",),
    "lab": ("lab",),
    "system": ("system", "doctor"),
}
VERB_NAMES = frozenset(v for verbs in GROUPS.values() for v in verbs)

# Verb name -> handler, for the verbs the last build_parser() built.
VERBS: dict[str, Verb] = {}


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


_built: dict[str | None, Parser] = {}


def build_parser(only: str | None = None) -> Parser:
    """The CLI's parser; with ``only``, just that verb's subparser (and its module) is built.
    Kept once built: parse_args leaves a parser as it was, and the command server builds them
    all before it forks its workers (:func:`prebuild`)."""
    if only in _built:
        return _built[only]
    parser = Parser(prog=PROG, description="A small, real container runtime.")
    parser.add_argument("--version", action="version", version="pycont 0.1.0")
    real_sub = parser.add_subparsers(dest="verb", metavar="COMMAND", parser_class=Parser)
    real_sub.required = True
    sub = _OnlyVerb(real_sub, only)
    for group, verbs in GROUPS.items():
        if only is None or only in verbs:
            # __import__ rather than importlib.import_module: `python -X importtime` sees it.
            module = __import__(f"pycont.cli.{group}", fromlist=["add_parsers"])
            VERBS.update(module.add_parsers(sub))
    _built[only] = parser
    return parser


def prebuild() -> None:
    """Build every verb's parser now (~0.2 s), for a process that forks many commands."""
    for verb in (None, *VERB_NAMES):  # None: the whole parser (--help, --version)
        build_parser(verb)


def _verb_of(args: Sequence[str]) -> str | None:
    """The verb, when it is a known one and comes first; None means: build every verb."""
    if args and args[0] in VERB_NAMES:
        return args[0]
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pycont ARGS``; returns the exit code (the console script's entry point)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        ns = build_parser(_verb_of(args)).parse_args(args)
        return int(VERBS[ns.verb](ns) or 0)
    except PycontError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
