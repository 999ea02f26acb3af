"""A container's cgroup side: its limits, its meters, and the freezer.

The cgroup is made by the shim before the container's first process exists (so everything it
does is charged there) and removed when it exits; here a caller reads and changes it live:
``docker stats``, ``docker update``, ``docker pause``.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from pycont.cgroups.base import Stats
from pycont.cgroups.limits import Limits
from pycont.errors import InvalidState, UsageError
from pycont.runtime import state as st
from pycont.runtime._facts import ContainerFacts
from pycont.runtime.spec import parse_limits
from pycont.runtime.state import Status

if TYPE_CHECKING:
    from pycont.cgroups import Cgroup

LIVE = (Status.RUNNING, Status.PAUSED)


class Resources(ContainerFacts):
    """What :class:`~pycont.runtime.container.Container` does with its cgroup."""

    def cgroup(self) -> Cgroup:
        """The container's cgroup (pycont.cgroups), or UsageError saying why it has none."""
        from pycont import cgroups

        cfg = self.config
        if not cfg.cgroup:
            raise UsageError(f"container {cfg.name} has no cgroup: {cfg.cgroup_note}")
        return cgroups.for_container(cfg.id)

    def limits(self) -> Limits:
        return self.config.limits

    def stats(self) -> Stats:
        """One reading of the container's cgroup counters (CPU, memory, pids, I/O)."""
        rec = self.state()
        if rec.status not in LIVE:
            raise InvalidState(f"container {self.name} is not running (status: {rec.status})")
        return self.cgroup().stats()

    def net_io(self) -> tuple[int, int]:
        """Bytes received and sent by the container's network devices but lo (proc(5): the
        /proc/<pid>/net/dev of a process shows its network namespace)."""
        rx = tx = 0
        with contextlib.suppress(OSError), open(f"/proc/{self.pid}/net/dev") as f:
            for line in f.readlines()[2:]:
                name, _, data = line.partition(":")
                if name.strip() != "lo":
                    fields = data.split()
                    rx, tx = rx + int(fields[0]), tx + int(fields[8])
        return rx, tx

    def update(self, **options: Any) -> Limits:
        """Change limits of a running container live (docker update); returns the new ones."""
        new = parse_limits(options, update=True)
        if new.is_empty():
            raise UsageError("update: give at least one limit, e.g. memory='128m' or cpus=1")
        if self.state().status in LIVE:
            self.cgroup().apply(new)
        cfg = self.config
        cfg.limits = cfg.limits.merged(new)
        st.save_config(cfg)
        return cfg.limits

    def pause(self) -> None:
        """Freeze every process of the container (the freezer: cgroup.freeze / freezer.state)."""
        st.check_transition(self.state().status, Status.PAUSED, self.name)
        cg = self.cgroup()
        cg.freeze()
        try:
            st.transition(self.dir, Status.PAUSED)
        except BaseException:
            cg.thaw()  # it exited meanwhile: leave nothing frozen
            raise

    def unpause(self) -> None:
        st.check_transition(self.state().status, Status.RUNNING, self.name)
        self.cgroup().thaw()
        st.transition(self.dir, Status.RUNNING)
