"""``pycont build`` and ``pycont builder prune``: docker's Dockerfile build and its cache."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pycont.cli._common import Verb, add_limit_flags, limit_options, with_containers
from pycont.errors import PycontError, UsageError


def _build_args(items: list[str]) -> dict[str, str]:
    import os

    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise UsageError(
                f"invalid --build-arg {item!r}: KEY=VALUE or KEY (from the environment)"
            )
        if not eq:  # docker: --build-arg KEY takes the value from the environment, if set
            if key not in os.environ:
                continue
            value = os.environ[key]
        out[key] = value
    return out


def cmd_build(a: argparse.Namespace) -> int:
    """docker build; every error exits 1, as docker build's do (a RUN's own code included)."""
    from pycont.builder.build import BuildError

    try:
        return _build(a)
    except BuildError:
        raise
    except PycontError as err:
        raise BuildError(str(err)) from None


def _build(a: argparse.Namespace) -> int:
    from pycont.builder.build import build
    from pycont.builder.progress import for_mode

    with_containers()
    progress = for_mode("quiet" if a.quiet else a.progress)
    text = None
    dockerfile = a.file
    if dockerfile == "-":
        text, dockerfile = sys.stdin.read(), None
    result = build(
        a.context,
        a.tag,
        dockerfile=dockerfile,
        text=text,
        build_args=_build_args(a.build_arg),
        target=a.target,
        no_cache=a.no_cache,
        network=a.network,
        progress=progress,
        **limit_options(a),
    )
    if a.quiet:
        print(result.id)
    return 0


def cmd_builder(a: argparse.Namespace) -> int:
    from pycont.format import decimal_size
    from pycont.images import Store

    if a.builder_verb != "prune":
        raise UsageError("builder: expected prune")
    with_containers()
    if not a.force:
        print("WARNING! This removes the build cache (use -f to skip this note)", file=sys.stderr)
    reclaimed = Store().prune(dangling=False, build_cache=True)
    print(f"Total reclaimed space: {decimal_size(reclaimed)}")
    return 0


def add_parsers(sub: Any) -> dict[str, Verb]:
    """Add the build verbs; returns verb name -> handler."""
    p = sub.add_parser(
        "build",
        help="build an image from a Dockerfile",
        description="Build an image from a Dockerfile and a context folder, as docker build. "
        "Python: pycont.build(CONTEXT, TAG, ...).",
    )
    p.add_argument("-t", "--tag", action="append", default=[], help="name:tag (repeatable)")
    p.add_argument("-f", "--file", help="the Dockerfile (default CONTEXT/Dockerfile; - is stdin)")
    p.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--target", help="build up to this stage")
    p.add_argument("--no-cache", action="store_true", help="do not use the build cache")
    p.add_argument(
        "--network",
        default="default",
        choices=("default", "none", "host"),
        help="RUN steps' network: default/none (only lo), host (to reach package registries)",
    )
    p.add_argument(
        "--progress",
        default="auto",
        choices=("auto", "plain", "tty", "quiet"),
        help="progress output (auto: tty on a terminal, plain otherwise)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    add_limit_flags(p)
    p.add_argument("context", help="the build context: a folder")

    q = sub.add_parser("builder", help="the build cache: prune")
    qsub = q.add_subparsers(dest="builder_verb", metavar="COMMAND")
    qsub.required = True
    r = qsub.add_parser("prune", help="remove the build cache")
    r.add_argument("-f", "--force", action="store_true")
    r.add_argument("-a", "--all", action="store_true", help="(docker's flag; the whole cache goes)")
    return {"build": cmd_build, "builder": cmd_builder}
