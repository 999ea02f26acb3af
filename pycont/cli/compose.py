"""The CLI's compose verb: ``pycont compose [-f FILE] [-p NAME] up|down|ps|logs|config``.

docker compose's core on pycont: the project's services, networks and volumes come from
compose.yaml (pycont.compose.loader) and are made by pycont's own API
(pycont.compose.engine). Progress lines go to stderr, container output to stdout, as docker
compose does.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from pycont.cli._common import Verb, table


def _say(text: str) -> None:
    print(f" ✔ {text}", file=sys.stderr, flush=True)


def _out(text: str) -> None:
    print(text, flush=True)


def cmd_compose(a: argparse.Namespace) -> int:
    from pycont.compose import load, project
    from pycont.compose.engine import RealEngine

    proj = load(a.file, a.project_name)
    for warning in proj.warnings:
        print(f"WARN[0000] {warning}", file=sys.stderr)
    engine = RealEngine()
    verb = a.compose_verb
    if verb == "up":
        return project.up(
            proj,
            engine,
            detach=a.detach,
            build=a.build,
            services=a.services,
            say=_say,
            out=_out,
        )
    if verb == "down":
        project.down(proj, engine, volumes=a.volumes, say=_say)
    elif verb == "ps":
        rows = project.ps_rows(proj, engine, all=a.all, services=a.services)
        table(("NAME", "IMAGE", "SERVICE", "STATUS", "PORTS"), rows)
    elif verb == "logs":
        names = [s.container_name for s in project.selected(proj, a.services)]
        if a.services:  # logs SERVICE shows that service only, not what it depends on
            names = [proj.service(s).container_name for s in a.services]
        found = {c.name for c in engine.project_containers(proj.name)}
        names = [n for n in names if n in found]
        for line in project.follow(proj, engine, names, follow_=a.follow):
            _out(line)
    elif verb == "config":
        _print_config(proj, a.services_only)
    return 0


def _print_config(proj: Any, services_only: bool) -> None:
    """The project as pycont understood it: names resolved, variables expanded."""
    import yaml

    if services_only:
        for s in proj.services:
            print(s.name)
        return
    doc = {
        "name": proj.name,
        "services": {s.name: _clean(dataclasses.asdict(s)) for s in proj.services},
        "networks": {k: _clean(dataclasses.asdict(n)) for k, n in proj.networks.items()},
        "volumes": {k: _clean(dataclasses.asdict(v)) for k, v in proj.volumes.items()},
    }
    sys.stdout.write(yaml.safe_dump(doc, sort_keys=False))


def _clean(value: Any) -> Any:
    """asdict's output without empty values, tuples as lists (what YAML can show)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v not in (None, (), [], {}, "")}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def add_parsers(sub: Any) -> dict[str, Verb]:
    """Add the compose verb; returns verb name -> handler."""
    p = sub.add_parser("compose", help="run a compose.yaml project: up, down, ps, logs, config")
    p.add_argument("-f", "--file", help="the compose file (default: ./compose.yaml)")
    p.add_argument("-p", "--project-name", help="the project's name (default: the folder's)")
    csub = p.add_subparsers(dest="compose_verb", metavar="COMMAND")
    csub.required = True
    q = csub.add_parser("up", help="create and start the services' containers")
    q.add_argument("-d", "--detach", action="store_true", help="return once they run")
    q.add_argument("--build", action="store_true", help="build images before starting")
    q.add_argument("services", nargs="*", metavar="SERVICE")
    q = csub.add_parser("down", help="stop and remove the containers and networks")
    q.add_argument("-v", "--volumes", action="store_true", help="remove the named volumes too")
    q = csub.add_parser("ps", help="list the project's containers")
    q.add_argument("-a", "--all", action="store_true", help="stopped ones too")
    q.add_argument("services", nargs="*", metavar="SERVICE")
    q = csub.add_parser("logs", help="the containers' output, prefixed by service")
    q.add_argument("-f", "--follow", action="store_true", help="follow the output")
    q.add_argument("services", nargs="*", metavar="SERVICE")
    q = csub.add_parser("config", help="the project as pycont reads it")
    q.add_argument("--services", dest="services_only", action="store_true", help="names only")
    return {"compose": cmd_compose}
