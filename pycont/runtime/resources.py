"""A container's cgroup side: its limits, its meters, and the freezer.

The cgroup is made by the shim before the container's first process exists (so everything it
does is charged there) and removed when it exits; here a caller reads and changes it live:
``docker stats``, ``docker update``, ``docker pause``.

Pause, unpause, update and commit's freeze each change two things, the kernel (the cgroup) and
the record (``state.json``, ``config.json``), under the container's lock (state.locked), so two
commands never interleave. A command killed between the two leaves them apart; the kernel is the
truth, and the next reading of the container's state puts the record right (as runc reports
"paused" when the cgroup is frozen, whoever froze it):

- freezer frozen, record "running" (``pause`` killed, or ``rm -f`` in its kill loop): "paused";
  ``unpause``, ``stop``, ``kill`` and ``rm -f`` thaw it.
- freezer thawed, record "paused" (``unpause`` killed): "running".
- frozen by a ``commit`` that died (the ``commit-freeze`` file names a process that is gone):
  thawed, "running" -- the user never asked for a pause.
- ``update`` writes what it will set to ``pending-update.json`` first, and removes it once
  ``config.json`` has it: a journal left by a killed update is rolled forward (the kernel set
  again, then the config), so ``inspect`` shows what the cgroup enforces.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pycont import failpoints, procfs
from pycont.cgroups.base import Stats
from pycont.cgroups.limits import Limits
from pycont.errors import ContainerNotFound, InvalidState, PycontError, UsageError
from pycont.fsutil import read_json, write_json
from pycont.runtime import state as st
from pycont.runtime._facts import ContainerFacts
from pycont.runtime.spec import limits_from_json, limits_to_json, parse_limits
from pycont.runtime.state import ContainerState, Status

if TYPE_CHECKING:
    from pycont.cgroups import Cgroup

LIVE = (Status.RUNNING, Status.PAUSED)
PENDING_UPDATE = "pending-update.json"  # the limits an update is setting (a journal)
COMMIT_FREEZE = "commit-freeze"  # "<pid> <start time>" of the commit that froze it
# docker thaws a paused container after sending it its stop signal or SIGKILL (moby's
# daemon/kill.go), so it can act on it; any other signal stays pending until unpause.
ENDING = (signal.SIGTERM, signal.SIGKILL)


class Resources(ContainerFacts):
    """What :class:`~pycont.runtime.container.Container` does with its cgroup."""

    def cgroup(self) -> Cgroup:
        """The container's cgroup (pycont.cgroups), or UsageError saying why it has none."""
        from pycont import cgroups

        cfg = self.config
        if not cfg.cgroup:
            raise UsageError(f"container {cfg.name} has no cgroup: {cfg.cgroup_note}")
        cg: Cgroup | None = self.__dict__.get("_cgroup")
        if cg is None:  # found once: every state() reading asks the freezer
            cg = self.__dict__["_cgroup"] = cgroups.for_container(cfg.id)
        return cg

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

    # -- update ----------------------------------------------------------------------------
    def update(self, **options: Any) -> Limits:
        """Change limits of a running container live (docker update); returns the new ones.

        Under the container's lock, config.json is read, merged and written again: concurrent
        updates of different limits all stay."""
        new = parse_limits(options, update=True)
        if new.is_empty():
            raise UsageError("update: give at least one limit, e.g. memory='128m' or cpus=1")
        with self._locked():
            self._roll_forward_update()
            journal = os.path.join(self.dir, PENDING_UPDATE)
            write_json(journal, limits_to_json(new))
            failpoints.hit("update.journal-written")
            try:
                if st.load_state(self.dir).status in LIVE:
                    self.cgroup().apply(new)
            except BaseException:
                os.unlink(journal)  # the kernel refused: nothing is to be rolled forward
                raise
            failpoints.hit("update.kernel-set")
            cfg = self._merge_limits(new)
            os.unlink(journal)
        return cfg.limits

    def _merge_limits(self, new: Limits) -> st.ContainerConfig:
        """config.json read again (not this object's copy: another update may have written
        it), with ``new`` merged in, saved."""
        cfg = st.load_config(self.dir)
        cfg.limits = cfg.limits.merged(new)
        st.save_config(cfg)
        self._config = cfg
        return cfg

    def _roll_forward_update(self) -> None:
        """Finish an update that was killed (its journal is there); call under the lock."""
        try:
            new = limits_from_json(read_json(os.path.join(self.dir, PENDING_UPDATE)))
        except FileNotFoundError:
            return
        except (ValueError, PycontError):  # not one update wrote (write_json renames): dropped
            new = Limits()
        if not new.is_empty():
            if st.load_state(self.dir).status in LIVE:
                with contextlib.suppress(PycontError, OSError):  # exited meanwhile
                    self.cgroup().apply(new)
            self._merge_limits(new)
        os.unlink(os.path.join(self.dir, PENDING_UPDATE))

    # -- the freezer ---------------------------------------------------------------------------
    def pause(self) -> None:
        """Freeze every process of the container (the freezer: cgroup.freeze / freezer.state)."""
        st.check_transition(self.state().status, Status.PAUSED, self.name)
        cg = self.cgroup()
        with self._locked():
            rec = st.load_state(self.dir)
            st.check_transition(rec.status, Status.PAUSED, self.name)
            _unlink(self.dir, COMMIT_FREEZE)  # from now on the user's pause, not a commit's
            try:
                cg.freeze()
            except BaseException:
                cg.thaw()  # it could not freeze in time: leave nothing half frozen
                raise
            failpoints.hit("pause.frozen")
            st.transition_held(self.dir, Status.PAUSED)

    def unpause(self) -> None:
        st.check_transition(self.state().status, Status.RUNNING, self.name)
        cg = self.cgroup()
        with self._locked():
            rec = st.load_state(self.dir)
            st.check_transition(rec.status, Status.RUNNING, self.name)
            cg.thaw()
            failpoints.hit("unpause.thawed")
            st.transition_held(self.dir, Status.RUNNING)
            _unlink(self.dir, COMMIT_FREEZE)

    def _freeze_for_commit(self) -> bool:
        """Pause a running container for commit's snapshot; False if it was not running.

        The ``commit-freeze`` file says who froze it: if the commit dies, the next reading of
        the state thaws it (see the module's docstring)."""
        cg = self.cgroup()
        with self._locked():
            rec = st.load_state(self.dir)
            if rec.status is not Status.RUNNING:
                return False
            me = os.getpid()
            with open(os.path.join(self.dir, COMMIT_FREEZE), "w") as f:
                f.write(f"{me} {procfs.start_time(me)}\n")
            try:
                cg.freeze()
            except BaseException:
                cg.thaw()
                _unlink(self.dir, COMMIT_FREEZE)
                raise
            failpoints.hit("commit.frozen")
            st.transition_held(self.dir, Status.PAUSED)
        return True

    def _thaw_after_commit(self) -> None:
        """Undo :meth:`_freeze_for_commit`, unless someone else has unpaused, stopped or
        paused it meanwhile (then its ``commit-freeze`` file is gone), or removed it."""
        with contextlib.suppress(ContainerNotFound, FileNotFoundError), self._locked():
            if _commit_freezer(self.dir)[0] != os.getpid():
                return
            with contextlib.suppress(PycontError, OSError):  # exited and removed meanwhile
                self.cgroup().thaw()
            rec = st.load_state(self.dir)
            if rec.status is Status.PAUSED:
                st.transition_held(self.dir, Status.RUNNING)
            _unlink(self.dir, COMMIT_FREEZE)

    def _thaw_to_end(self, sig: int) -> None:
        """After ``sig`` was sent: a frozen container takes it only once thawed (docker kill and
        stop thaw a paused container; a frozen task cannot even die of SIGKILL in v1)."""
        if sig not in ENDING or not self._kernel_frozen():
            return
        with contextlib.suppress(ContainerNotFound, FileNotFoundError), self._locked():
            with contextlib.suppress(PycontError, OSError):
                self.cgroup().thaw()
            rec = st.load_state(self.dir)
            if rec.status is Status.PAUSED:
                st.transition_held(self.dir, Status.RUNNING)
            _unlink(self.dir, COMMIT_FREEZE)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The container's lock; ContainerNotFound if it was removed meanwhile."""
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(st.locked(self.dir))
            except FileNotFoundError:  # its folder, where the lock file is, is gone
                raise ContainerNotFound(f"no such container: {self.id} (removed)") from None
            if not os.path.isdir(self.dir):  # renamed aside by rm while we waited
                raise ContainerNotFound(f"no such container: {self.id} (removed)")
            yield

    def _kernel_frozen(self) -> bool | None:
        """Whether the freezer holds the container; None when there is no freezer to read
        (no cgroup, or it is gone with the container)."""
        try:
            return self.cgroup().frozen() if self.config.cgroup else None
        except (PycontError, OSError):
            return None

    def _kernel_truth(self, rec: ContainerState) -> ContainerState:
        """``rec`` put right from the kernel (see the module's docstring): the freezer decides
        running or paused, and a killed update is finished. Never under the lock."""
        if rec.status not in LIVE:
            return rec
        pending = os.path.exists(os.path.join(self.dir, PENDING_UPDATE))
        frozen = self._kernel_frozen()
        agree = frozen is None or frozen == (rec.status is Status.PAUSED)
        if not pending and agree and not (frozen and _frozen_by_dead_commit(self.dir)):
            return rec
        if _lock_held_here(self.dir):
            return rec  # read under our own lock: the next reading puts it right
        try:
            with self._locked():
                if pending:
                    self._roll_forward_update()
                return self._freezer_decides(st.load_state(self.dir))
        except (ContainerNotFound, FileNotFoundError):  # removed meanwhile
            return rec

    def _freezer_decides(self, rec: ContainerState) -> ContainerState:
        """Under the lock: the record of a live container made to say what the freezer does."""
        frozen = self._kernel_frozen()
        if rec.status not in LIVE or frozen is None:
            return rec
        if frozen and _frozen_by_dead_commit(self.dir):
            with contextlib.suppress(PycontError, OSError):
                self.cgroup().thaw()  # its commit died: nobody asked for this pause
                frozen = False
            _unlink(self.dir, COMMIT_FREEZE)
        want = Status.PAUSED if frozen else Status.RUNNING
        if rec.status is not want:
            rec = st.transition_held(self.dir, want)
        return rec


def _lock_held_here(cdir: str) -> bool:
    """Whether this process holds the container's lock already: flock(2) on a new file
    description would wait for ourselves forever. /proc/locks (proc(5)) lists each lock as
    ``N: FLOCK ADVISORY WRITE <pid> <maj>:<min>:<inode> ...``, a waiter with ``->`` first."""
    try:
        inode = os.stat(os.path.join(cdir, "lock")).st_ino
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return False
    mine = ("FLOCK", str(os.getpid()), str(inode))
    return any(
        (f[1], f[4], f[5].rsplit(":", 1)[-1]) == mine
        for f in (line.split() for line in lines)
        if len(f) > 5
    )


def _unlink(cdir: str, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(cdir, name))


def _commit_freezer(cdir: str) -> tuple[int, int]:
    """(pid, start time) of the commit that froze the container; (0, 0) if none did."""
    try:
        with open(os.path.join(cdir, COMMIT_FREEZE)) as f:
            pid, start = f.read().split()
        return int(pid), int(start)
    except (OSError, ValueError):  # none, or killed before writing it (then nothing froze)
        return 0, 0


def _frozen_by_dead_commit(cdir: str) -> bool:
    pid, start = _commit_freezer(cdir)
    return pid > 0 and not procfs.alive(pid, start)
