"""One service of compose.yaml, checked: the keys of the spec's 05-services.md pycont honours.

Each accepted key is converted to what ``pycont.create`` takes (``-p`` strings, ``-v``
strings, ``K=V`` environment); a key pycont cannot honour is an error naming it.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pycont.compose.model import Attachment, Build, Mount, NetworkDef, Service, VolumeDef
from pycont.errors import UsageError

SERVICE_KEYS = (
    "build",
    "command",
    "container_name",
    "cpus",
    "depends_on",
    "entrypoint",
    "environment",
    "expose",
    "hostname",
    "image",
    "labels",
    "mem_limit",
    "networks",
    "pids_limit",
    "ports",
    "restart",
    "stdin_open",
    "tty",
    "user",
    "volumes",
    "working_dir",
)
BUILD_KEYS = ("context", "dockerfile", "args", "target")
# docker's -p: [[IP:][HOST[-HOST]]:]CONTAINER[-CONTAINER][/PROTOCOL]
PORT_RE = re.compile(
    r"(?:(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):)?(?:\d*(?:-\d+)?:)?\d+(?:-\d+)?"
    r"(?:/(?:tcp|udp|sctp))?"
)


@dataclass
class Ctx:
    """What checking needs besides the value: the file's name for messages, the project."""

    file: str
    project: str
    directory: str
    env: Mapping[str, str]

    def fail(self, where: str, what: str) -> UsageError:
        return UsageError(f"{self.file}: {where}: {what}")

    def keys(self, body: Mapping[str, Any], where: str, allowed: Sequence[str], what: str) -> None:
        """Refuse the first key pycont does not support; ``x-`` keys are the spec's extensions."""
        for key in body:
            if str(key).startswith("x-") or key in allowed:
                continue
            at = f"{where}.{key}" if where else str(key)
            raise UsageError(
                f"{self.file}: {at} is not supported by pycont compose in {what} "
                f"(supported: {', '.join(allowed)})"
            )

    def mapping(self, value: Any, where: str) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, not {type(value).__name__}")
        return {str(k): v for k, v in value.items()}

    def boolean(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, f"expected true or false, not {value!r}")
        return value

    def string(self, value: Any, where: str) -> str | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.fail(where, f"expected a string, not {value!r}")
        return str(value)

    def strings(self, value: Any, where: str) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list, not {type(value).__name__}")
        return [self.string(v, f"{where}[{i}]") or "" for i, v in enumerate(value)]

    def words(self, value: Any, where: str) -> tuple[str, ...] | None:
        """command/entrypoint: a list, or a string split as a shell would (shlex)."""
        if value is None:
            return None
        if isinstance(value, str):
            try:
                return tuple(shlex.split(value))
            except ValueError as err:
                raise self.fail(where, f"cannot split {value!r}: {err}") from None
        return tuple(self.strings(value, where))

    def pairs(self, value: Any, where: str, from_env: bool) -> dict[str, str]:
        """environment/labels/args: a mapping, or a list of ``K=V``. A bare ``K`` takes the
        variable's value from the environment (and is left out when it is unset)."""
        out: dict[str, str] = {}
        if isinstance(value, list):
            items: list[tuple[str, Any]] = []
            for item in self.strings(value, where):
                k, eq, v = item.partition("=")
                items.append((k, v if eq else None))
        else:
            items = list(self.mapping(value, where).items())
        for k, v in items:
            if not k:
                raise self.fail(where, "an empty name")
            if v is None:
                if from_env and k in self.env:
                    out[k] = self.env[k]
                elif not from_env:
                    out[k] = ""
                continue
            out[k] = ("true" if v else "false") if isinstance(v, bool) else str(v)
        return out

    def labels(self, value: Any, where: str) -> dict[str, str]:
        out = self.pairs(value, where, from_env=False)
        for k in out:
            if k.startswith("com.docker.compose."):
                raise self.fail(where, f"{k}: the com.docker.compose. prefix is reserved")
        return out

    def host_path(self, path: str) -> str:
        return os.path.normpath(os.path.join(self.directory, os.path.expanduser(path)))


def parse_service(
    ctx: Ctx,
    name: str,
    raw: Any,
    networks: Mapping[str, NetworkDef],
    volumes: Mapping[str, VolumeDef],
) -> Service:
    at = f"services.{name}"
    body = ctx.mapping(raw, at)
    ctx.keys(body, at, SERVICE_KEYS, "a service")
    for flag in ("tty", "stdin_open"):
        if body.get(flag):
            raise ctx.fail(
                f"{at}.{flag}",
                "a terminal or stdin is not supported by pycont compose: "
                "its containers run detached (remove it or set it to false)",
            )
    restart = body.get("restart", "no")
    if restart not in ("no", False):  # YAML 1.1 reads a bare `no` as false
        raise ctx.fail(
            f"{at}.restart", f'{restart!r} is not supported by pycont compose (supported: "no")'
        )
    build = _build(ctx, body.get("build"), f"{at}.build")
    image = ctx.string(body.get("image"), f"{at}.image")
    if image is None and build is None:
        raise ctx.fail(at, "needs an image or a build")
    container = ctx.string(body.get("container_name"), f"{at}.container_name")
    cpus = body.get("cpus")
    pids = body.get("pids_limit")
    if pids is not None and (isinstance(pids, bool) or not isinstance(pids, int)):
        raise ctx.fail(f"{at}.pids_limit", f"expected a number, not {pids!r}")
    try:
        cpus_value = None if cpus is None else float(cpus)
    except (TypeError, ValueError):
        raise ctx.fail(f"{at}.cpus", f"expected a number, not {cpus!r}") from None
    env = ctx.pairs(body.get("environment"), f"{at}.environment", from_env=True)
    return Service(
        name=name,
        # docker compose tags a built image <project>-<service> unless `image` names it.
        image=image or f"{ctx.project}-{name}",
        container_name=container or f"{ctx.project}-{name}-1",
        build=build,
        command=ctx.words(body.get("command"), f"{at}.command"),
        entrypoint=ctx.words(body.get("entrypoint"), f"{at}.entrypoint"),
        environment=tuple(f"{k}={v}" for k, v in env.items()),
        ports=tuple(_port(ctx, p, f"{at}.ports[{i}]") for i, p in _items(ctx, body, "ports", at)),
        volumes=tuple(
            _mount(ctx, v, f"{at}.volumes[{i}]", volumes)
            for i, v in _items(ctx, body, "volumes", at)
        ),
        depends_on=_depends_on(ctx, body.get("depends_on"), f"{at}.depends_on"),
        networks=_attachments(ctx, body.get("networks"), f"{at}.networks", networks),
        hostname=ctx.string(body.get("hostname"), f"{at}.hostname"),
        working_dir=ctx.string(body.get("working_dir"), f"{at}.working_dir"),
        user=ctx.string(body.get("user"), f"{at}.user"),
        mem_limit=ctx.string(body.get("mem_limit"), f"{at}.mem_limit"),
        cpus=cpus_value,
        pids_limit=pids,
        labels=ctx.labels(body.get("labels"), f"{at}.labels"),
        expose=tuple(ctx.strings(body.get("expose"), f"{at}.expose")),
    )


def _items(ctx: Ctx, body: Mapping[str, Any], key: str, at: str) -> list[tuple[int, Any]]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ctx.fail(f"{at}.{key}", f"expected a list, not {type(value).__name__}")
    return list(enumerate(value))


def _build(ctx: Ctx, raw: Any, where: str) -> Build | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return Build(ctx.host_path(raw))
    body = ctx.mapping(raw, where)
    ctx.keys(body, where, BUILD_KEYS, "a build")
    return Build(
        context=ctx.host_path(ctx.string(body.get("context"), f"{where}.context") or "."),
        dockerfile=ctx.string(body.get("dockerfile"), f"{where}.dockerfile"),
        args=ctx.pairs(body.get("args"), f"{where}.args", from_env=True),
        target=ctx.string(body.get("target"), f"{where}.target"),
    )


def _port(ctx: Ctx, raw: Any, where: str) -> str:
    """A port as docker's ``-p`` string; the long syntax is converted to it."""
    if isinstance(raw, dict):
        body = ctx.mapping(raw, where)
        ctx.keys(body, where, ("target", "published", "host_ip", "protocol", "mode"), "a port")
        if body.get("mode", "ingress") not in ("ingress", "host"):
            raise ctx.fail(f"{where}.mode", "expected ingress or host")
        target = ctx.string(body.get("target"), f"{where}.target")
        if target is None:
            raise ctx.fail(where, "needs a target (the container's port)")
        text = target
        published = ctx.string(body.get("published"), f"{where}.published")
        host_ip = ctx.string(body.get("host_ip"), f"{where}.host_ip")
        if published or host_ip:
            text = f"{published or ''}:{text}"
        if host_ip:
            text = f"{host_ip}:{text}"
        protocol = ctx.string(body.get("protocol"), f"{where}.protocol")
        if protocol:
            text = f"{text}/{protocol}"
    else:
        text = ctx.string(raw, where) or ""
    if not PORT_RE.fullmatch(text):
        raise ctx.fail(
            where,
            f"invalid port {text!r}: expected [[IP:][HOST]:]CONTAINER[/tcp|udp], "
            "e.g. 8080:80 (quote it: YAML reads some bare a:b as a number)",
        )
    return text


def _mount(ctx: Ctx, raw: Any, where: str, volumes: Mapping[str, VolumeDef]) -> Mount:
    if isinstance(raw, dict):
        body = ctx.mapping(raw, where)
        ctx.keys(body, where, ("type", "source", "target", "read_only"), "a volume")
        kind = body.get("type")
        if kind not in ("volume", "bind"):
            raise ctx.fail(f"{where}.type", f"{kind!r} is not supported (supported: volume, bind)")
        source = ctx.string(body.get("source"), f"{where}.source")
        target = ctx.string(body.get("target"), f"{where}.target")
        read_only = ctx.boolean(body.get("read_only", False), f"{where}.read_only")
    else:
        text = ctx.string(raw, where) or ""
        parts = text.split(":")
        mode = parts.pop() if len(parts) == 3 else ""
        if len(parts) != 2 or mode not in ("", "ro", "rw"):
            raise ctx.fail(
                where,
                f"invalid volume {text!r}: expected SOURCE:/path[:ro] (SOURCE: a named "
                "volume, or a host path starting with /, . or ~; anonymous volumes are not "
                "supported)",
            )
        source, target = parts
        kind = "bind" if source.startswith(("/", ".", "~")) else "volume"
        read_only = mode == "ro"
    if not source or not target or not target.startswith("/"):
        raise ctx.fail(where, "needs a source and an absolute target")
    if kind == "bind":
        return Mount("bind", ctx.host_path(source), target, read_only)
    if source not in volumes:
        raise ctx.fail(
            where,
            f"refers to undefined volume {source!r}: declare it under the top-level `volumes:`",
        )
    return Mount("volume", volumes[source].name, target, read_only)


def _depends_on(ctx: Ctx, raw: Any, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, list):
        return tuple(ctx.strings(raw, where))
    out = []
    for dep, body in ctx.mapping(raw, where).items():
        conf = ctx.mapping(body, f"{where}.{dep}")
        ctx.keys(conf, f"{where}.{dep}", ("condition", "required"), "depends_on")
        condition = conf.get("condition", "service_started")
        if condition != "service_started":
            raise ctx.fail(
                f"{where}.{dep}.condition",
                f"{condition!r} is not supported by pycont compose (supported: "
                "service_started; pycont has no healthchecks or waits)",
            )
        if not ctx.boolean(conf.get("required", True), f"{where}.{dep}.required"):
            raise ctx.fail(f"{where}.{dep}.required", "false is not supported (supported: true)")
        out.append(dep)
    return tuple(out)


def _attachments(
    ctx: Ctx, raw: Any, where: str, networks: Mapping[str, NetworkDef]
) -> tuple[Attachment, ...]:
    """The service's networks; none named means the project's ``default``. The first is the
    one the container is created on, the others are connected before it starts."""
    if raw is None:
        wanted: dict[str, Any] = {"default": None}
    elif isinstance(raw, list):
        wanted = {n: None for n in ctx.strings(raw, where)}
    else:
        wanted = ctx.mapping(raw, where)
    if not wanted:
        raise ctx.fail(where, "an empty list: name at least one network, or leave the key out")
    out = []
    for key, body in wanted.items():
        if key not in networks:
            raise ctx.fail(
                where,
                f"refers to undefined network {key!r}: declare it under the top-level `networks:`",
            )
        conf = ctx.mapping(body, f"{where}.{key}")
        ctx.keys(conf, f"{where}.{key}", ("aliases",), "a service's network")
        aliases = ctx.strings(conf.get("aliases"), f"{where}.{key}.aliases")
        out.append(Attachment(key, networks[key].name, tuple(aliases)))
    return tuple(out)
