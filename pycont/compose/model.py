"""A compose project as checked, typed values: what the loader makes and ``up`` reads.

Every name here is already the real one (``<project>_default``, ``<project>-web-1``,
``/abs/path`` for a bind): nothing below the loader needs to know compose's naming rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pycont.errors import UsageError

# The labels docker compose v2 puts on what it makes; ``ps`` and ``down`` find a project's
# objects by them, never by name alone.
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
NUMBER_LABEL = "com.docker.compose.container-number"
NETWORK_LABEL = "com.docker.compose.network"
VOLUME_LABEL = "com.docker.compose.volume"


@dataclass(frozen=True)
class Build:
    context: str  # absolute
    dockerfile: str | None = None  # as given, relative to the context
    args: dict[str, str] = field(default_factory=dict)
    target: str | None = None


@dataclass(frozen=True)
class Mount:
    """One of a service's volumes: a named volume (by its real name) or a host folder."""

    type: str  # "volume" or "bind"
    source: str  # the volume's real name, or an absolute host path
    target: str
    read_only: bool = False

    def spec(self) -> str:
        """docker's ``-v`` form, which pycont.create takes."""
        return f"{self.source}:{self.target}" + (":ro" if self.read_only else "")


@dataclass(frozen=True)
class Attachment:
    """A service on one network: the network's key in the file, its real name, aliases."""

    key: str
    name: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Service:
    name: str
    image: str  # the image to run; for a build, the tag it is built under
    container_name: str  # the real one: container_name, or <project>-<service>-1
    build: Build | None = None
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    environment: tuple[str, ...] = ()  # "K=V"
    ports: tuple[str, ...] = ()  # docker's -p short form
    volumes: tuple[Mount, ...] = ()
    depends_on: tuple[str, ...] = ()
    networks: tuple[Attachment, ...] = ()
    hostname: str | None = None
    working_dir: str | None = None
    user: str | None = None
    mem_limit: str | None = None
    cpus: float | None = None
    pids_limit: int | None = None
    restart: str = "no"
    labels: dict[str, str] = field(default_factory=dict)
    expose: tuple[str, ...] = ()  # informational, as in docker: no port is opened for it


@dataclass(frozen=True)
class NetworkDef:
    key: str  # as the file names it ("default" for the implicit one)
    name: str  # the real name: <project>_<key>, or its `name:`
    external: bool = False
    subnet: str | None = None
    gateway: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VolumeDef:
    key: str
    name: str  # <project>_<key>, or its `name:`
    external: bool = False


@dataclass(frozen=True)
class Project:
    name: str
    services: tuple[Service, ...]  # in dependency order: each after what it depends on
    networks: dict[str, NetworkDef]  # only those some service uses (compose creates no other)
    volumes: dict[str, VolumeDef]
    working_dir: str
    file: str = "compose.yaml"
    warnings: tuple[str, ...] = ()

    def service(self, name: str) -> Service:
        for s in self.services:
            if s.name == name:
                return s
        raise UsageError(
            f"no such service: {name} (the project has {', '.join(self.service_names())})"
        )

    def service_names(self) -> list[str]:
        return [s.name for s in self.services]
