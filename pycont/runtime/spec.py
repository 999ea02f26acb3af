"""What to run, checked once at the edge: the typed run spec every face of pycont builds.

The CLI's flags, the magics' options and the Python API's keywords all become one frozen
:class:`RunSpec` through :meth:`RunSpec.from_options`, which does all the checking (names,
hostname, paths, environment, volumes, limits); the runtime below trusts it and parses nothing.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pycont import volumes
from pycont.cgroups.limits import Limits
from pycont.errors import UsageError
from pycont.namespaces import NamespaceSet
from pycont.net import ports
from pycont.runtime import users
from pycont.runtime.argcheck import (
    NAMESPACE_OPTIONS,
    check_text,
    check_texts,
    check_types,
)
from pycont.security.options import SecurityOptions

# docker's rule for container names: [a-zA-Z0-9][a-zA-Z0-9_.-]+
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
# RFC 1123 host name label, as docker checks --hostname
HOSTNAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,61}[a-zA-Z0-9])?$")
ENV_KEY_RE = re.compile(r"^[^=\s]+$")
NETWORK_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$")

LIMIT_OPTIONS = (
    "memory",
    "memory_swap",
    "memory_reservation",
    "cpus",
    "cpu_shares",
    "cpuset_cpus",
    "pids_limit",
    "device_read_bps",
    "device_write_bps",
    "blkio_weight",
)
# docker run's network flags (pycont.net); "network" itself is among the namespace options.
NETWORK_OPTIONS = (
    "network_aliases",
    "publish",
    "publish_all",
    "dns",
    "add_host",
    "network_rate",
    "network_latency",
)
# docker run's security flags (pycont.security.options).
SECURITY_OPTIONS = ("cap_add", "cap_drop", "privileged", "security_opt", "read_only")
OPTIONS = (
    "name",
    "hostname",
    "env",
    "workdir",
    "user",
    "detach",
    "interactive",
    "rm",
    *NAMESPACE_OPTIONS,
    "narrate",
    "volumes",
    *LIMIT_OPTIONS,
    *SECURITY_OPTIONS,
    *NETWORK_OPTIONS,
    "labels",
)


def default_mode(namespace: str) -> str:
    """A namespace's mode when none is asked for: every one private, but the user namespace
    as root. Docker's default: root in the container is root on the host, held in by its
    capabilities, seccomp and masked paths (pycont.security), not by a user namespace that
    maps every id to itself. Without root, namespaces need a user namespace (rootless)."""
    if namespace == "user" and os.geteuid() == 0:
        return "host"
    return "private"


def default_modes() -> dict[str, str]:
    """Every namespace's mode when none is asked for (:func:`default_mode`)."""
    return NamespaceSet.from_modes({k: default_mode(k) for k in NAMESPACE_OPTIONS.values()}).modes()


def parse_network(value: str | None) -> str:
    """docker's ``--network``: "" for the default; ``private`` (pycont's older spelling: a
    namespace of its own, loopback only) is ``none``."""
    if not value or value == "default":
        return ""
    if value == "private":
        return "none"
    if value.startswith("container:"):
        if not value.partition(":")[2]:
            raise UsageError("invalid --network container:: expected container:NAME")
        return value
    if not NETWORK_RE.fullmatch(value):
        raise UsageError(
            f"invalid --network {value!r}: bridge, none, host, container:NAME or a network's name"
        )
    return value


def _check_ip(text: str, flag: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise UsageError(f"invalid {flag} {text!r}: expected an IP address") from None


def parse_add_host(item: str) -> str:
    """docker's ``--add-host NAME:IP`` (also ``NAME=IP``); ``host-gateway`` is not known here."""
    name, sep, ip = item.replace("=", ":", 1).partition(":")
    if not sep or not HOSTNAME_RE.fullmatch(name):
        raise UsageError(f"invalid --add-host {item!r}: expected NAME:IP")
    return f"{name}:{_check_ip(ip, '--add-host')}"


def parse_shaping(rate: str | None, latency: str | None) -> dict[str, Any]:
    """pycont's ``--network-rate 1mbit`` and ``--network-latency 50ms`` (not docker's)."""
    if not rate and not latency:
        return {}
    from pycont.net import shaping

    return shaping.Shaping(
        rate=shaping.parse_rate(rate) if rate else 0,
        latency=shaping.parse_latency(latency) if latency else 0.0,
    ).to_json()


def parse_labels(labels: Mapping[str, str] | Sequence[str] | None) -> dict[str, str]:
    """docker's ``--label K=V`` (a list) or a mapping."""
    if not labels:
        return {}
    if isinstance(labels, Mapping):
        return {str(k): str(v) for k, v in labels.items()}
    out = {}
    for item in labels:
        key, _, value = item.partition("=")
        if not key:
            raise UsageError(f"invalid label {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def validate_name(name: str) -> None:
    if not NAME_RE.fullmatch(name) or len(name) > 128:
        raise UsageError(
            f"invalid container name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, "
            "at least 2 characters"
        )


def validate_workdir(workdir: str | None) -> None:
    if workdir is not None and not check_text("working directory ", workdir).startswith("/"):
        raise UsageError(f"invalid working directory {workdir!r}: it must be an absolute path")


def parse_env(items: Sequence[str]) -> tuple[str, ...]:
    """docker's ``-e KEY=VALUE``; ``-e KEY`` passes the caller's value, or nothing when unset."""
    env = []
    for item in check_texts("env", items):
        key, eq, value = item.partition("=")
        if not key or not ENV_KEY_RE.fullmatch(key):
            raise UsageError(f"invalid environment variable {item!r}: expected KEY=VALUE")
        if not eq:
            if key not in os.environ:
                continue
            value = os.environ[key]
        env.append(f"{key}={value}")
    return tuple(env)


def parse_limits(options: Mapping[str, Any], update: bool = False) -> Limits:
    """docker's resource flags (``memory="64m"``, ``cpus=0.5``) to Limits, or UsageError."""
    unknown = sorted(set(options) - set(LIMIT_OPTIONS))
    if unknown:
        raise UsageError(
            f"unknown option {unknown[0]!r}: accepted limits are {', '.join(LIMIT_OPTIONS)}"
        )
    given = {k: v for k, v in options.items() if v is not None and v != []}
    return Limits.from_options(update=update, **given)


def limits_to_json(lim: Limits) -> dict[str, Any]:
    """Limits as config.json keeps them: the kernel's numbers, only those that are set."""
    return lim.to_json()


def limits_from_json(doc: Mapping[str, Any]) -> Limits:
    """The inverse of :func:`limits_to_json`; also reads the docker strings that configs
    written by pycont 0.1 hold (``{"memory": "67108864", "cpus": "0.5"}``)."""
    if _docker_strings(doc):
        return Limits.from_options(**doc)
    return Limits.from_json(doc)


def _docker_strings(doc: Mapping[str, Any]) -> bool:
    if "cpus" in doc:  # the typed form says nano_cpus
        return True
    for name, value in doc.items():
        if name == "cpuset_cpus":  # a string in both forms
            continue
        if isinstance(value, str) or (
            isinstance(value, list) and value and isinstance(value[0], str)
        ):
            return True
    return False


@dataclass(frozen=True)
class RunSpec:
    """Everything ``docker run`` is told, checked: what :func:`create_from_spec` needs."""

    image: str
    command: tuple[str, ...] | None = None
    name: str | None = None
    hostname: str | None = None
    env: tuple[str, ...] = ()  # KEY=VALUE, -e KEY already resolved
    workdir: str | None = None
    # docker's --user name|uid[:group|gid], resolved inside the container when it starts;
    # "" leaves the image's USER (root when it has none).
    user: str = ""
    detach: bool = False
    interactive: bool = False
    rm: bool = False
    # Namespace modes by kernel name (pid, net, ipc, uts, user, cgroup): "private" or "host".
    namespaces: Mapping[str, str] = field(default_factory=lambda: default_modes())
    volumes: tuple[volumes.Mount, ...] = ()
    limits: Limits = field(default_factory=Limits)
    narrate: bool = False
    security: SecurityOptions = field(default_factory=SecurityOptions)
    # docker's --network: "" (the default: bridge as root), bridge, none, host,
    # container:NAME or a user-defined network's name; and the flags that go with it.
    network: str = ""
    network_aliases: tuple[str, ...] = ()
    publish: tuple[ports.PortBinding, ...] = ()
    publish_all: bool = False
    dns: tuple[str, ...] = ()
    add_hosts: tuple[str, ...] = ()  # "name:ip"
    shaping: Mapping[str, Any] = field(default_factory=dict)  # shaping.Shaping.to_json()
    labels: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_options(
        cls, image: str, command: Sequence[str] | None = None, **options: Any
    ) -> RunSpec:
        """docker run's options as keywords (see :func:`pycont.create`) to a checked spec."""
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise UsageError(f"unknown option {unknown[0]!r}: accepted are {', '.join(OPTIONS)}")
        check_text("image ", image)
        check_types(command, options)
        name = options.get("name")
        if name is not None:
            validate_name(name)
        hostname = options.get("hostname")
        if hostname is not None and not HOSTNAME_RE.fullmatch(hostname):
            raise UsageError(
                f"invalid hostname {hostname!r}: letters, digits, '-' and '.', "
                "at most 63 characters"
            )
        workdir = options.get("workdir")
        validate_workdir(workdir)
        raw_user = options.get("user")  # an int is a uid: user=0 asks for root
        user = "" if raw_user is None else str(raw_user)
        if user:
            users.validate(user)
        network = parse_network(options.get("network"))
        modes = {
            key: options.get(opt) or default_mode(key) for opt, key in NAMESPACE_OPTIONS.items()
        }
        # The kernel's view: a namespace of its own, but for the host's or another container's.
        modes["net"] = (
            "host" if network == "host" or network.startswith("container:") else "private"
        )
        nsset = NamespaceSet.from_modes(modes)
        given_volumes = list(options.get("volumes") or ())
        mounts = tuple(volumes.parse(v) for v in given_volumes)
        targets = [m.target for m in mounts]
        if len(set(targets)) != len(targets):
            raise UsageError(f"duplicate mount point in {given_volumes}: each path once")
        limits = parse_limits({k: v for k, v in options.items() if k in LIMIT_OPTIONS})
        return cls(
            image=image,
            command=tuple(command) if command else None,
            name=name,
            hostname=hostname,
            env=parse_env(options.get("env") or ()),
            workdir=workdir,
            user=user,
            detach=bool(options.get("detach")),
            interactive=bool(options.get("interactive")),
            rm=bool(options.get("rm")),
            namespaces=nsset.modes(),
            volumes=mounts,
            limits=limits,
            narrate=bool(options.get("narrate")),
            security=SecurityOptions.from_options(
                cap_add=options.get("cap_add") or (),
                cap_drop=options.get("cap_drop") or (),
                privileged=bool(options.get("privileged")),
                security_opt=options.get("security_opt") or (),
                read_only=bool(options.get("read_only")),
            ),
            network=network,
            network_aliases=tuple(options.get("network_aliases") or ()),
            publish=ports.parse_all(list(options.get("publish") or ())),
            publish_all=bool(options.get("publish_all")),
            dns=tuple(_check_ip(d, "--dns") for d in options.get("dns") or ()),
            add_hosts=tuple(parse_add_host(h) for h in options.get("add_host") or ()),
            shaping=parse_shaping(options.get("network_rate"), options.get("network_latency")),
            labels=parse_labels(options.get("labels")),
        )
