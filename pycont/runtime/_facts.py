"""What the parts of a container (its cgroup side, its read/write layer) may rely on.

:class:`~pycont.runtime.container.Container` is put together from mixins, one per concept; this
base declares, for the type checker only, the facts the Container class itself provides.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pycont.runtime.state import ContainerConfig, ContainerState


class ContainerFacts:
    """The Container's own facts, as the mixins see them."""

    if TYPE_CHECKING:  # provided by Container
        id: str
        dir: str
        _config: ContainerConfig | None

        @property
        def config(self) -> ContainerConfig: ...
        @property
        def name(self) -> str: ...
        @property
        def status(self) -> str: ...
        @property
        def pid(self) -> int: ...
        def state(self) -> ContainerState: ...
        def pause(self) -> None: ...
        def unpause(self) -> None: ...
        def _freeze_for_commit(self) -> bool: ...
        def _thaw_after_commit(self) -> None: ...
