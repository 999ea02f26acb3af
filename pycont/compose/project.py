"""Running a compose project: ``up``, ``down``, ``ps``, ``logs`` over an :class:`Engine`.

The plan (which network, volume, image and container to make, in which order, and what to
undo when a step fails) is plain Python over the Engine protocol, so it is tested with a fake;
:class:`pycont.compose.engine.RealEngine` carries it out with pycont's own API.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pycont.compose.model import (
    NETWORK_LABEL,
    NUMBER_LABEL,
    PROJECT_LABEL,
    SERVICE_LABEL,
    Build,
    Project,
    Service,
)
from pycont.errors import PycontError, UsageError

Say = Callable[[str], None]


@dataclass(frozen=True)
class ContainerInfo:
    """What the plan needs to know of an existing container."""

    name: str
    image: str
    status: str  # created | running | paused | exited
    status_text: str = ""  # docker's STATUS column: "Up 3 seconds", "Exited (0) ..."
    labels: dict[str, str] = field(default_factory=dict)
    exit_code: int | None = None
    # The ports it publishes now, as docker ps shows them ("0.0.0.0:39547->3000/tcp").
    ports: tuple[str, ...] = ()

    @property
    def service(self) -> str:
        return self.labels.get(SERVICE_LABEL, "")


class Engine(Protocol):
    """The few operations compose needs from a container engine."""

    def network_exists(self, name: str) -> bool: ...
    def create_network(
        self, name: str, subnet: str | None, gateway: str | None, labels: dict[str, str]
    ) -> None: ...
    def remove_network(self, name: str) -> None: ...
    def project_networks(self, project: str) -> list[str]: ...
    def volume_exists(self, name: str) -> bool: ...
    def create_volume(self, name: str) -> None: ...
    def remove_volume(self, name: str) -> None: ...
    def image_exists(self, ref: str) -> bool: ...
    def pull(self, ref: str) -> None: ...
    def build(self, build: Build, tag: str) -> None: ...
    def container(self, name: str) -> ContainerInfo | None: ...
    def project_containers(self, project: str) -> list[ContainerInfo]: ...
    def create_container(self, service: Service, labels: dict[str, str]) -> None: ...
    def start(self, name: str) -> None: ...
    def stop(self, name: str) -> None: ...
    def remove(self, name: str) -> None: ...
    def logs(self, name: str, follow: bool) -> Iterator[str]: ...


def _quiet(_text: str) -> None:
    pass


def create_options(
    service: Service, labels: dict[str, str]
) -> tuple[list[str] | None, dict[str, Any]]:
    """The command and the keywords of ``pycont.create`` for a service (its image apart).

    An ``entrypoint`` replaces the image's ENTRYPOINT and drops its CMD (docker's rule);
    pycont.create has no entrypoint option, so it becomes the head of the command, and the
    engine refuses it for an image that has an ENTRYPOINT of its own."""
    command = list(service.command) if service.command is not None else None
    if service.entrypoint is not None:
        command = [*service.entrypoint, *(command or [])]
    net = service.networks[0] if service.networks else None
    options: dict[str, Any] = {
        "name": service.container_name,
        "detach": True,
        "env": list(service.environment),
        "volumes": [m.spec() for m in service.volumes],
        "publish": list(service.ports),
        "labels": {**service.labels, **labels},
    }
    if net is not None:
        options["network"] = net.name
        # Compose makes every service reachable by its name on its networks.
        options["network_aliases"] = [service.name, *net.aliases]
    for key, value in (
        ("hostname", service.hostname),
        ("workdir", service.working_dir),
        ("user", service.user),
        ("memory", service.mem_limit),
        ("cpus", service.cpus),
        ("pids_limit", service.pids_limit),
    ):
        if value is not None:
            options[key] = value
    return command, options


def selected(project: Project, names: Sequence[str] = ()) -> list[Service]:
    """The services named (all when none), with what they depend on, in dependency order."""
    if not names:
        return list(project.services)
    wanted: set[str] = set()
    todo = list(names)
    while todo:
        s = project.service(todo.pop())
        if s.name not in wanted:
            wanted.add(s.name)
            todo.extend(s.depends_on)
    return [s for s in project.services if s.name in wanted]


def up(
    project: Project,
    engine: Engine,
    *,
    detach: bool = True,
    build: bool = False,
    services: Sequence[str] = (),
    say: Say = _quiet,
    out: Say = print,
) -> int:
    """``docker compose up``: networks, volumes, images, then the containers in dependency
    order. A running container is left as it is; an exited one is made again. When a step
    fails, the containers and networks this call made are removed before the error goes up.
    Without ``detach``: follow every container's output until all have exited (Ctrl-C stops
    them, as docker compose does)."""
    chosen = selected(project, services)
    made_networks: list[str] = []
    made_containers: list[str] = []
    try:
        for key in sorted({a.key for s in chosen for a in s.networks}):
            net = project.networks[key]
            if engine.network_exists(net.name):
                continue
            if net.external:
                raise UsageError(
                    f"network {net.name} declared as external, but could not be found: "
                    f"create it first (pycont network create {net.name})"
                )
            labels = {**net.labels, PROJECT_LABEL: project.name, NETWORK_LABEL: key}
            engine.create_network(net.name, net.subnet, net.gateway, labels)
            made_networks.append(net.name)
            say(f"Network {net.name}  Created")
        for vol in project.volumes.values():
            if not any(m.source == vol.name for s in chosen for m in s.volumes):
                continue
            if engine.volume_exists(vol.name):
                continue
            if vol.external:
                raise UsageError(
                    f"volume {vol.name} declared as external, but could not be found: create "
                    f"it first (pycont volume create {vol.name})"
                )
            engine.create_volume(vol.name)
            say(f"Volume {vol.name}  Created")
        for s in chosen:
            if s.build is not None and (build or not engine.image_exists(s.image)):
                say(f"Service {s.name}  Building")
                engine.build(s.build, s.image)
            elif not engine.image_exists(s.image):
                say(f"Service {s.name}  Pulling")
                engine.pull(s.image)
        for s in chosen:
            if _ensure_container(project, engine, s, say):
                made_containers.append(s.container_name)
    except BaseException:
        for name in reversed(made_containers):
            with contextlib.suppress(PycontError):
                engine.remove(name)
        for name in reversed(made_networks):
            with contextlib.suppress(PycontError):
                engine.remove_network(name)
        raise
    if detach:
        return 0
    return attach(project, engine, chosen, say=say, out=out)


def _ensure_container(project: Project, engine: Engine, s: Service, say: Say) -> bool:
    """Create and start the service's container unless it runs; True if one was made."""
    name = s.container_name
    info = engine.container(name)
    if info is not None:
        if info.labels.get(PROJECT_LABEL) != project.name:
            raise UsageError(
                f'the container name "{name}" is already in use by a container outside project '
                f"{project.name}: remove it or set another container_name"
            )
        if info.status in ("running", "paused"):
            say(f"Container {name}  Running")
            return False
        engine.remove(name)  # exited or never started: made again from the file
    labels = {PROJECT_LABEL: project.name, SERVICE_LABEL: s.name, NUMBER_LABEL: "1"}
    engine.create_container(s, labels)
    say(f"Container {name}  Created")
    try:
        engine.start(name)
    except BaseException:
        with contextlib.suppress(PycontError):
            engine.remove(name)
        raise
    say(f"Container {name}  Started")
    return True


def attach(
    project: Project, engine: Engine, chosen: Sequence[Service], *, say: Say, out: Say
) -> int:
    """Follow the containers' output, prefixed, until all exit; Ctrl-C stops them."""
    names = [s.container_name for s in chosen]
    try:
        for line in follow(project, engine, names, follow_=True):
            out(line)
    except KeyboardInterrupt:
        say("Gracefully stopping... (press Ctrl+C again to force)")
        for name in reversed(names):
            with contextlib.suppress(PycontError):
                engine.stop(name)
                say(f"Container {name}  Stopped")
        return 130
    return 0


def prefix_of(project: Project, container: str) -> str:
    """docker compose's log prefix: ``web-1``, or the container_name a service sets."""
    for s in project.services:
        if s.container_name == container and container == f"{project.name}-{s.name}-1":
            return f"{s.name}-1"
    return container


def follow(
    project: Project, engine: Engine, names: Sequence[str], *, follow_: bool
) -> Iterator[str]:
    """The containers' log lines prefixed ``web-1  | ``; with ``follow_``, merged as they
    come (one reader thread per container), and ``web-1 exited with code 0`` at each end."""
    prefixes = {n: prefix_of(project, n) for n in names}
    width = max((len(p) for p in prefixes.values()), default=0)

    def lines(name: str) -> Iterator[str]:
        head = prefixes[name].ljust(width) + "  | "
        for line in engine.logs(name, follow_):
            yield head + line.rstrip("\n")

    if not follow_:
        for name in names:
            yield from lines(name)
        return
    q: queue.Queue[tuple[str, str | None]] = queue.Queue()

    def pump(name: str) -> None:
        try:
            for line in lines(name):
                q.put((name, line))
        except PycontError as err:
            q.put((name, f"{prefixes[name]}: {err}"))
        finally:
            q.put((name, None))

    for name in names:
        # Daemon threads: a Ctrl-C in the main thread must not wait for a blocked reader.
        threading.Thread(target=pump, args=(name,), daemon=True).start()
    running = len(names)
    while running:
        name, line = q.get()
        if line is not None:
            yield line
            continue
        running -= 1
        info = engine.container(name)
        if info is not None and info.status == "exited":
            yield f"{prefixes[name]} exited with code {info.exit_code}"


def down(project: Project, engine: Engine, *, volumes: bool = False, say: Say = _quiet) -> None:
    """``docker compose down``: stop and remove the project's containers (dependents first),
    its networks, and with ``volumes`` its named volumes (never external ones)."""
    rank = {s.container_name: i for i, s in enumerate(project.services)}
    found = engine.project_containers(project.name)
    for info in sorted(found, key=lambda c: rank.get(c.name, -1), reverse=True):
        if info.status in ("running", "paused"):
            engine.stop(info.name)
            say(f"Container {info.name}  Stopped")
        engine.remove(info.name)
        say(f"Container {info.name}  Removed")
    external = {n.name for n in project.networks.values() if n.external}
    for name in engine.project_networks(project.name):
        if name not in external:
            engine.remove_network(name)
            say(f"Network {name}  Removed")
    if volumes:
        for vol in project.volumes.values():
            if not vol.external and engine.volume_exists(vol.name):
                engine.remove_volume(vol.name)
                say(f"Volume {vol.name}  Removed")


def port_text(spec: str) -> str:
    """docker ps's PORTS form of a ``-p`` spec: ``8080:80`` -> ``0.0.0.0:8080->80/tcp``."""
    spec, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if spec.startswith("["):  # an IPv6 host address: [::1]:8080:80
        end = spec.index("]")
        ip, rest = spec[: end + 1], spec[end + 2 :].split(":")
    else:
        parts = spec.split(":")
        ip = parts.pop(0) if len(parts) == 3 else ""
        rest = parts
    if len(rest) == 1 or not rest[0]:
        return f"{rest[-1]}/{proto}"
    return f"{ip or '0.0.0.0'}:{rest[0]}->{rest[1]}/{proto}"


def ps_rows(
    project: Project, engine: Engine, *, all: bool = False, services: Iterable[str] = ()
) -> list[tuple[str, str, str, str, str]]:
    """``docker compose ps``: NAME, IMAGE, SERVICE, STATUS, PORTS, running ones unless
    ``all``. PORTS are those the container publishes, host ports resolved (``-p 3000``
    gets one the kernel picks); an engine that cannot tell gives the file's."""
    wanted = set(services)
    rows = []
    for info in sorted(engine.project_containers(project.name), key=lambda c: c.name):
        if not all and info.status not in ("running", "paused"):
            continue
        if wanted and info.service not in wanted:
            continue
        ports = ", ".join(info.ports)
        if not ports and info.status in ("running", "paused"):
            with contextlib.suppress(UsageError):
                ports = ", ".join(port_text(p) for p in project.service(info.service).ports)
        rows.append((info.name, info.image, info.service, info.status_text, ports))
    return rows
