"""What the build steps share: a stage's state while it builds, the builder they run in (as a
protocol, so that :mod:`pycont.builder.steps` needs no import of :mod:`pycont.builder.build`),
and the build's error."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Protocol

from pycont.builder import config as cfgmod
from pycont.builder.context import Context
from pycont.builder.progress import Progress
from pycont.errors import PycontError
from pycont.images.store import Store

__all__ = ["NETWORKS", "BuildError", "Builder", "State", "container_name"]

NETWORKS = ("default", "none", "host")


class BuildError(PycontError):
    """A build that failed: the step and why, in one line. Exit code 1, as docker build."""

    exit_code = 1


@dataclass
class State:
    """One stage while it builds: its config and layers so far, and the cache key of both."""

    name: str | None
    config: dict[str, Any]
    layers: list[dict[str, Any]]
    key: str
    args: dict[str, str | None] = field(default_factory=dict)  # ARGs in scope
    flags: dict[str, Any] = field(default_factory=dict)  # cmd_set

    @property
    def run(self) -> dict[str, Any]:
        cfg = self.config.setdefault("config", {})
        if cfg is None:
            cfg = self.config["config"] = {}
        return cfg

    @property
    def diff_ids(self) -> list[str]:
        return list(self.config.get("rootfs", {}).get("diff_ids") or [])

    def shell(self) -> list[str]:
        return list(self.run.get("Shell") or cfgmod.DEFAULT_SHELL)

    def substitution_env(self) -> dict[str, str]:
        """What ``$VAR`` sees: the ARGs in scope, overridden by ENV (docker's precedence)."""
        env = {k: v for k, v in self.args.items() if v is not None}
        env.update(cfgmod.env_dict(self.run))
        return env


class Builder(Protocol):
    """What a step needs from the build it is part of (:class:`pycont.builder.build._Builder`)."""

    ctx: Context
    store: Store
    progress: Progress
    network: str
    run_options: dict[str, Any]
    stages: dict[int, State]

    def stage_index(self, name: str, line: int) -> int | None: ...


def container_name() -> str:
    """The name of a RUN step's container (``pycont-build-…``: the leak check finds it)."""
    return f"pycont-build-{secrets.token_hex(6)}"
