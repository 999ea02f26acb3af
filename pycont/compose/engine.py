"""The Engine that compose's plan runs on: pycont's own API (runtime, networks, volumes).

Each method is one call of that API; the plan in project.py decides what to call and when.
Containers and networks carry docker compose's labels, which is how ``ps`` and ``down`` find
a project's objects again.
"""

from __future__ import annotations

from collections.abc import Iterator

import pycont
from pycont import volumes
from pycont.compose.model import PROJECT_LABEL, Build, Service
from pycont.compose.project import ContainerInfo, create_options
from pycont.errors import (
    ContainerNotFound,
    ImageNotFound,
    InvalidState,
    NetworkNotFound,
    UsageError,
)
from pycont.format import ago
from pycont.net import networks
from pycont.runtime.container import Container


def _info(c: Container) -> ContainerInfo:
    rec = c.state()
    status = str(rec.status)
    if status == "running":
        text = f"Up {ago(rec.started_at)}"
    elif status == "paused":
        text = f"Up {ago(rec.started_at)} (Paused)"
    elif status == "exited":
        text = f"Exited ({rec.exit_code}) {ago(rec.finished_at or rec.created)} ago"
    else:
        text = "Created"
    cfg = c.config
    return ContainerInfo(
        name=c.name,
        image=cfg.image,
        status=status,
        status_text=text,
        labels=dict(cfg.labels),
        exit_code=rec.exit_code,
        ports=tuple(
            f"{b.host_ip or '0.0.0.0'}:{b.host_port}->{b.container_port}/{b.proto}"
            for b in c.ports()
        ),
    )


class RealEngine:
    """:class:`pycont.compose.project.Engine` on pycont's API, in this PYCONT_ROOT."""

    # -- networks ------------------------------------------------------------------------
    def network_exists(self, name: str) -> bool:
        try:
            networks.get(name)
        except NetworkNotFound:
            return False
        return True

    def create_network(
        self, name: str, subnet: str | None, gateway: str | None, labels: dict[str, str]
    ) -> None:
        networks.create(name, subnet=subnet, gateway=gateway, labels=labels)

    def remove_network(self, name: str) -> None:
        networks.remove(name)

    def project_networks(self, project: str) -> list[str]:
        return [n.name for n in networks.ls() if n.labels.get(PROJECT_LABEL) == project]

    # -- volumes -------------------------------------------------------------------------
    def volume_exists(self, name: str) -> bool:
        return name in volumes.names()

    def create_volume(self, name: str) -> None:
        volumes.create(name)

    def remove_volume(self, name: str) -> None:
        volumes.remove(name)

    # -- images --------------------------------------------------------------------------
    def image_exists(self, ref: str) -> bool:
        from pycont import images

        try:
            images.resolve(ref)  # also makes the built-in busybox, offline
        except ImageNotFound:
            return False
        return True

    def pull(self, ref: str) -> None:
        pycont.pull(ref)

    def build(self, build: Build, tag: str) -> None:
        from pycont.builder.progress import for_mode

        pycont.build(
            build.context,
            tags=[tag],
            dockerfile=build.dockerfile,
            build_args=build.args,
            target=build.target,
            progress=for_mode("plain"),
        )

    # -- containers ----------------------------------------------------------------------
    def container(self, name: str) -> ContainerInfo | None:
        try:
            return _info(pycont.get(name))
        except ContainerNotFound:
            return None

    def project_containers(self, project: str) -> list[ContainerInfo]:
        out = []
        for c in pycont.containers(all=True):
            try:
                info = _info(c)
            except (ContainerNotFound, InvalidState):
                continue  # removed while we looked, or dead (its config unreadable)
            if info.labels.get(PROJECT_LABEL) == project:
                out.append(info)
        return out

    def create_container(self, service: Service, labels: dict[str, str]) -> None:
        from pycont import images

        command, options = create_options(service, labels)
        if service.entrypoint is not None and images.resolve(service.image).entrypoint:
            raise UsageError(
                f"services.{service.name}.entrypoint: image {service.image} has an ENTRYPOINT "
                "of its own, and pycont cannot replace it"
            )
        c = pycont.create(service.image, command, **options)
        try:
            for net in service.networks[1:]:  # the first one it was created on
                c.connect(net.name, aliases=[service.name, *net.aliases])
        except BaseException:
            c.remove(force=True)
            raise

    def start(self, name: str) -> None:
        pycont.get(name).start()

    def stop(self, name: str) -> None:
        pycont.get(name).stop()

    def remove(self, name: str) -> None:
        pycont.get(name).remove(force=True)

    def logs(self, name: str, follow: bool) -> Iterator[str]:
        return pycont.get(name).logs(follow=follow)
