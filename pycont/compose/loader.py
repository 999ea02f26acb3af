"""Reading compose.yaml: the Compose specification's core, checked into typed values.

The file is YAML (PyYAML's safe_load: no Python objects); its values are interpolated
(interpolate.py), then every key is checked: what pycont compose cannot honour is refused with
one line naming the key and what is accepted, never silently dropped. Names follow docker
compose v2: containers ``<project>-<service>-1``, networks and volumes ``<project>_<key>``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import yaml

from pycont.compose import services as svc
from pycont.compose.interpolate import Interpolator, environment
from pycont.compose.model import NetworkDef, Project, Service, VolumeDef
from pycont.compose.services import Ctx
from pycont.errors import UsageError

# The spec's lookup order (03-compose-file.md): compose.yaml first, the docker-compose names
# for older projects.
FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
TOP_KEYS = ("name", "services", "networks", "volumes", "version")
NETWORK_KEYS = ("driver", "ipam", "external", "name", "labels")
VOLUME_KEYS = ("driver", "external", "name", "labels")
# 04-version-and-name.md: lowercase letters, digits, '-' and '_', starting with a letter/digit.
PROJECT_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")


def find_file(directory: str) -> str:
    """The compose file in ``directory``, by the spec's order of names."""
    for name in FILES:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    raise UsageError(
        f"no compose file in {directory}: expected one of {', '.join(FILES)} (or give -f FILE)"
    )


def normalize_name(name: str) -> str:
    """docker compose's rule for a name taken from a folder: lowercase, only [a-z0-9_-],
    starting with a letter or digit."""
    return re.sub(r"[^a-z0-9_-]", "", name.lower()).lstrip("_-")


def check_name(name: str, source: str) -> str:
    if not PROJECT_RE.fullmatch(name):
        raise UsageError(
            f"invalid project name {name!r} ({source}): only lowercase letters, digits, '-' "
            "and '_', starting with a letter or digit"
        )
    return name


def project_name(explicit: str | None, top_level: Any, directory: str, file: str) -> str:
    """``-p``, else COMPOSE_PROJECT_NAME, else the file's ``name``, else the folder's name."""
    if explicit:
        return check_name(explicit, "-p")
    env = os.environ.get("COMPOSE_PROJECT_NAME")
    if env:
        return check_name(env, "COMPOSE_PROJECT_NAME")
    if top_level is not None:
        if not isinstance(top_level, str):
            raise UsageError(f"{file}: name must be a string, not {type(top_level).__name__}")
        return check_name(top_level, f"{file}: name")
    base = normalize_name(os.path.basename(os.path.abspath(directory)))
    if not base:
        raise UsageError(
            f"cannot make a project name from the folder {directory}: give -p NAME or `name:`"
        )
    return base


def load(
    file: str | None = None,
    name: str | None = None,
    cwd: str | None = None,
) -> Project:
    """Read and check a compose file (``-f FILE``, or the first of FILES in ``cwd``)."""
    cwd = os.path.abspath(cwd or os.getcwd())
    path = os.path.abspath(os.path.join(cwd, file)) if file else find_file(cwd)
    label = os.path.basename(path)
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except FileNotFoundError:
        raise UsageError(f"compose file {path} not found") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UsageError(f"{label}: invalid YAML{where}: {problem}") from None
    return parse(doc, os.path.dirname(path), label, name)


def parse(
    doc: Any, directory: str, label: str = "compose.yaml", name: str | None = None
) -> Project:
    """Check a compose document (already read from YAML) whose file is in ``directory``."""
    directory = os.path.abspath(directory)
    if not isinstance(doc, dict):
        raise UsageError(f"{label}: the top level must be a mapping with `services:`")
    env = environment(os.path.join(directory, ".env"))
    interp = Interpolator(env, label)
    top_name = interp.walk(doc.get("name"), "name")
    project = project_name(name, top_name, directory, label)
    env.setdefault("COMPOSE_PROJECT_NAME", project)  # the spec exposes it to interpolation
    doc = interp.walk({k: v for k, v in doc.items() if k != "name"}, "")
    ctx = Ctx(label, project, directory, env)
    ctx.keys(doc, "", TOP_KEYS, "the top level")

    raw_services = doc.get("services")
    if not isinstance(raw_services, dict) or not raw_services:
        raise UsageError(f"{label}: services must be a mapping of at least one service")
    networks = _networks(ctx, doc.get("networks"))
    volumes = _volumes(ctx, doc.get("volumes"))

    services = {
        str(sname): svc.parse_service(ctx, str(sname), body, networks, volumes)
        for sname, body in raw_services.items()
    }
    ordered = order(label, services)
    used_nets = {a.key for s in ordered for a in s.networks}
    used_vols = {m.source for s in ordered for m in s.volumes if m.type == "volume"}
    return Project(
        name=project,
        services=tuple(ordered),
        networks={k: n for k, n in networks.items() if k in used_nets},
        volumes={k: v for k, v in volumes.items() if v.name in used_vols},
        working_dir=directory,
        file=label,
        warnings=tuple(interp.warnings),
    )


def order(label: str, services: Mapping[str, Service]) -> list[Service]:
    """Services in dependency order (depth first, the file's order between equals); an
    unknown service or a cycle is an error naming it."""
    done: list[Service] = []
    state: dict[str, str] = {}  # name -> "visiting" | "done"

    def visit(name: str, chain: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = chain[chain.index(name) :] + [name]
            raise UsageError(f"{label}: dependency cycle between services: {' -> '.join(cycle)}")
        state[name] = "visiting"
        for dep in services[name].depends_on:
            if dep not in services:
                raise UsageError(
                    f"{label}: services.{name}.depends_on: no such service {dep!r} "
                    f"(services: {', '.join(services)})"
                )
            visit(dep, [*chain, name])
        state[name] = "done"
        done.append(services[name])

    for name in services:
        visit(name, [])
    return done


def _networks(ctx: Ctx, raw: Any) -> dict[str, NetworkDef]:
    """Top-level networks, plus the implicit ``default`` unless the file redefines it."""
    raw = ctx.mapping(raw, "networks")
    out: dict[str, NetworkDef] = {}
    for key, body in raw.items():
        where = f"networks.{key}"
        body = ctx.mapping(body, where)
        ctx.keys(body, where, NETWORK_KEYS, "a network")
        external = ctx.boolean(body.get("external", False), f"{where}.external")
        name = body.get("name")
        if name is not None and not isinstance(name, str):
            raise UsageError(f"{ctx.file}: {where}.name must be a string")
        if external:
            extra = sorted(set(body) - {"external", "name"})
            if extra:
                raise UsageError(
                    f"{ctx.file}: {where}: an external network takes only `name`, not "
                    f"{', '.join(extra)} (it exists already: pycont compose does not configure it)"
                )
            out[key] = NetworkDef(key, name or key, external=True)
            continue
        driver = body.get("driver", "bridge")
        if driver != "bridge":
            raise UsageError(
                f"{ctx.file}: {where}.driver {driver!r} is not supported by pycont compose "
                "(supported: bridge)"
            )
        subnet, gateway = _ipam(ctx, body.get("ipam"), f"{where}.ipam")
        out[key] = NetworkDef(
            key,
            name or f"{ctx.project}_{key}",
            subnet=subnet,
            gateway=gateway,
            labels=ctx.labels(body.get("labels"), f"{where}.labels"),
        )
    out.setdefault("default", NetworkDef("default", f"{ctx.project}_default"))
    return out


def _ipam(ctx: Ctx, raw: Any, where: str) -> tuple[str | None, str | None]:
    body = ctx.mapping(raw, where)
    ctx.keys(body, where, ("driver", "config"), "ipam")
    if body.get("driver", "default") != "default":
        raise UsageError(f"{ctx.file}: {where}.driver: only the default IPAM driver is supported")
    configs = body.get("config") or []
    if not isinstance(configs, list) or len(configs) > 1:
        raise UsageError(f"{ctx.file}: {where}.config: a list of at most one subnet")
    if not configs:
        return None, None
    conf = ctx.mapping(configs[0], f"{where}.config[0]")
    ctx.keys(conf, f"{where}.config[0]", ("subnet", "gateway"), "an ipam config")
    subnet, gateway = conf.get("subnet"), conf.get("gateway")
    return (None if subnet is None else str(subnet)), (None if gateway is None else str(gateway))


def _volumes(ctx: Ctx, raw: Any) -> dict[str, VolumeDef]:
    raw = ctx.mapping(raw, "volumes")
    out: dict[str, VolumeDef] = {}
    for key, body in raw.items():
        where = f"volumes.{key}"
        body = ctx.mapping(body, where)
        ctx.keys(body, where, VOLUME_KEYS, "a volume")
        if body.get("driver", "local") != "local":
            raise UsageError(
                f"{ctx.file}: {where}.driver {body['driver']!r} is not supported by pycont "
                "compose (supported: local)"
            )
        if body.get("labels"):
            raise UsageError(
                f"{ctx.file}: {where}.labels is not supported by pycont compose: pycont's "
                "volumes carry no labels"
            )
        external = ctx.boolean(body.get("external", False), f"{where}.external")
        name = body.get("name")
        if name is not None and not isinstance(name, str):
            raise UsageError(f"{ctx.file}: {where}.name must be a string")
        out[key] = VolumeDef(key, name or (key if external else f"{ctx.project}_{key}"), external)
    return out
